//! Follow-up persistence and touches to SQL (contract v1.1): what a lead's
//! touches and SQL add to the windows, in event time.
//!
//! Owns: the per-lead follow-up state ([`LeadFollow`], kept inside the lead
//! join of [`crate::joins`] and packed there into 8 bytes), the decisions
//! "this touch counts for the lead's horizon / for its SQL", the observation
//! a lead makes at `L + H`, and the due queue ([`Due`]) that makes each
//! observation once the clock passes `L + H` without scanning leads.
//! Must not touch: windows, buckets, clocks: it returns [`Observation`]s
//! (what to add, at which event time, to which rep) and the engine adds them.
//!
//! Every value is kept as counts that only grow, so a touch or an SQL that
//! arrives after the observation (but occurred before `L + H`) only ever adds
//! to the observation's bucket: `followed_ge1` counts the observed leads with
//! at least one touch *or* an SQL, `followed_ge2` those with at least two *or*
//! an SQL. Then "gave up after one" (exactly one touch, no SQL) is
//! `ge1 - ge2` and "untouched" (no touch, no SQL) is `followed - ge1`.

use std::collections::BTreeMap;

use crate::time::{Micros, MICROS_PER_DAY, MICROS_PER_SEC};

/// Touches (and activities before the SQL) are counted up to this value.
const COUNT_MAX: u32 = (1 << 8) - 1;
/// Rep indexes above this are not stored (the lead counts at team level only).
const REP_MAX: u32 = (1 << 13) - 2;
/// Bits of a packed lead (see [`LeadFollow::pack`]).
const REP_BITS: u32 = 13;
const COUNT_BITS: u32 = 8;
const FLAGS_AT: u32 = REP_BITS + COUNT_BITS;
const UNION_AT: u32 = FLAGS_AT + 3;
/// After the SQL: its second, relative to the lead's, in this many bits
/// (two's complement; the lowest value: not kept).
const SQL_SECS_BITS: u32 = 64 - UNION_AT - REP_BITS;

/// A lead's follow-up state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadFollow {
    /// The rep of its `lead.created` (index within the team).
    pub owner: Option<u32>,
    /// Touches (outbound activities applied after its creation) that occurred before `L + H`.
    pub touches: u32,
    /// Observed at `L + H`.
    pub observed: bool,
    /// An SQL applied after its creation occurred before `L + H`.
    pub sql_in_horizon: bool,
    /// Its first SQL (after its creation) has been applied: `time` is that SQL's time.
    pub sql_seen: bool,
    /// Before the SQL: activities applied after its creation.
    pub acts: u32,
    /// After the SQL: the rep of the qualifying event.
    pub sql_rep: Option<u32>,
    /// Before the SQL: the latest `occurred_at` of those activities
    /// (`Micros::MIN`: none); after: the SQL's `occurred_at` (`Micros::MIN`:
    /// not kept). Kept to the second (the start of its second).
    pub time: Micros,
}

impl Default for LeadFollow {
    fn default() -> Self {
        LeadFollow { owner: None, touches: 0, observed: false, sql_in_horizon: false, sql_seen: false, acts: 0, sql_rep: None, time: Micros::MIN }
    }
}

fn rep_code(r: Option<u32>) -> u64 {
    r.filter(|&r| r <= REP_MAX).map_or(0, |r| u64::from(r) + 1)
}

fn rep_of(code: u64) -> Option<u32> {
    (code != 0).then(|| (code - 1) as u32)
}

fn mask(bits: u32) -> u64 {
    (1 << bits) - 1
}

/// The second of `t` (floor).
fn second(t: Micros) -> i64 {
    t.div_euclid(MICROS_PER_SEC)
}

/// `t`'s second relative to `created`'s in `bits` bits of two's complement;
/// the lowest value stands for `Micros::MIN` and for what does not fit.
fn encode_secs(t: Micros, created: Micros, bits: u32) -> u64 {
    let lo = -(1i64 << (bits - 1));
    let d = if t == Micros::MIN { lo } else { second(t).saturating_sub(second(created)) };
    let d = if d <= lo || d >= -lo { lo } else { d };
    (d as u64) & mask(bits)
}

fn decode_secs(code: u64, created: Micros, bits: u32) -> Micros {
    let d = ((code << (64 - bits)) as i64) >> (64 - bits);
    if d == -(1i64 << (bits - 1)) {
        Micros::MIN
    } else {
        (second(created) + d) * MICROS_PER_SEC
    }
}

impl LeadFollow {
    /// The 64 bits of a lead created at `created`: bits 0-12 owner + 1,
    /// 13-20 touches, 21 observed, 22 SQL in horizon, 23 SQL seen; then
    /// before the SQL 8 bits of activities and 32 of the latest one's second
    /// (relative to the lead's), after it the SQL's rep + 1 (13 bits) and its
    /// second (27 bits: within 776 days of the lead's; beyond, not kept).
    pub fn pack(&self, created: Micros) -> u64 {
        let union = if self.sql_seen {
            rep_code(self.sql_rep) | encode_secs(self.time, created, SQL_SECS_BITS) << REP_BITS
        } else {
            u64::from(self.acts.min(COUNT_MAX)) | encode_secs(self.time, created, 32) << COUNT_BITS
        };
        rep_code(self.owner)
            | u64::from(self.touches.min(COUNT_MAX)) << REP_BITS
            | u64::from(self.observed) << FLAGS_AT
            | u64::from(self.sql_in_horizon) << (FLAGS_AT + 1)
            | u64::from(self.sql_seen) << (FLAGS_AT + 2)
            | union << UNION_AT
    }

    pub fn unpack(created: Micros, bits: u64) -> Self {
        let sql_seen = bits >> (FLAGS_AT + 2) & 1 == 1;
        let union = bits >> UNION_AT;
        let (acts, sql_rep, time) = if sql_seen {
            (0, rep_of(union & mask(REP_BITS)), decode_secs(union >> REP_BITS, created, SQL_SECS_BITS))
        } else {
            ((union & mask(COUNT_BITS)) as u32, None, decode_secs(union >> COUNT_BITS, created, 32))
        };
        LeadFollow {
            owner: rep_of(bits & mask(REP_BITS)),
            touches: (bits >> REP_BITS & mask(COUNT_BITS)) as u32,
            observed: bits >> FLAGS_AT & 1 == 1,
            sql_in_horizon: bits >> (FLAGS_AT + 1) & 1 == 1,
            sql_seen,
            acts,
            sql_rep,
            time,
        }
    }

    /// An outbound activity at `e` on the lead created at `created`, with
    /// persistence horizon `h`: what it adds to observations already made
    /// (the lead's persistence observation, its SQL observation).
    pub fn touch(&mut self, created: Micros, e: Micros, h: Micros) -> [Option<Observation>; 2] {
        let due = created.saturating_add(h);
        let mut out = [None, None];
        if e < due {
            let old = self.touches;
            self.touches = (old + 1).min(COUNT_MAX);
            if self.observed && old < COUNT_MAX {
                let first = !self.sql_in_horizon;
                let add = FollowAdd { touches: 1, ge1: u32::from(first && old == 0), ge2: u32::from(first && old == 1), ..FollowAdd::default() };
                out[0] = Some(Observation { rep: self.owner, at: due, add });
            }
        }
        if !self.sql_seen {
            self.acts = (self.acts + 1).min(COUNT_MAX);
            self.time = self.time.max(e);
        } else if self.time != Micros::MIN && second(e) <= second(self.time) {
            // at or before the SQL, to the second (the SQL's time is kept to the second)
            out[1] = Some(Observation { rep: self.sql_rep, at: self.time, add: FollowAdd { sql_touches: 1, ..FollowAdd::default() } });
        }
        out
    }

    /// A `lead.qualified` with stage `sql` at `e` by rep `rep`: the touches
    /// to SQL if it is the lead's first applied SQL (its observation goes
    /// with the event itself), and what it adds to the persistence
    /// observation if that is already made.
    ///
    /// The touches are the activities applied so far, less one when the
    /// latest of them occurred after the SQL: exact unless two or more
    /// activities that occurred after the SQL were applied before it (see
    /// `docs/decisions.md`).
    pub fn sql(&mut self, created: Micros, e: Micros, rep: Option<u32>, h: Micros) -> (Option<u32>, Option<Observation>) {
        let due = created.saturating_add(h);
        let mut persist = None;
        if e < due && !self.sql_in_horizon {
            self.sql_in_horizon = true;
            if self.observed {
                let add = FollowAdd { ge1: u32::from(self.touches == 0), ge2: u32::from(self.touches <= 1), ..FollowAdd::default() };
                persist = Some(Observation { rep: self.owner, at: due, add });
            }
        }
        let mut conversion = None;
        if !self.sql_seen {
            let n = if self.acts > 0 && self.time > e { self.acts - 1 } else { self.acts };
            conversion = Some(n);
            self.sql_seen = true;
            self.sql_rep = rep;
            self.acts = 0;
            self.time = e;
        }
        (conversion, persist)
    }

    /// The persistence observation at `L + H` (the clock has reached it).
    pub fn observe(&mut self, created: Micros, h: Micros) -> Option<Observation> {
        if self.observed {
            return None;
        }
        self.observed = true;
        let n = self.touches;
        let s = self.sql_in_horizon;
        let add = FollowAdd { followed: 1, touches: n, ge1: u32::from(n >= 1 || s), ge2: u32::from(n >= 2 || s), ..FollowAdd::default() };
        Some(Observation { rep: self.owner, at: created.saturating_add(h), add })
    }
}

/// What an observation adds to one bucket (the v1.1 counts of
/// [`crate::measures::FunnelDelta`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowAdd {
    pub followed: u32,
    pub touches: u32,
    pub ge1: u32,
    pub ge2: u32,
    pub sql_conversions: u32,
    pub sql_touches: u32,
}

/// An addition to the windows at event time `at` of rep `rep` (index in its
/// team; `None`: the team only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub rep: Option<u32>,
    pub at: Micros,
    pub add: FollowAdd,
}

/// Leads waiting for their observation at `L + H`, by UTC day of `L + H`.
///
/// Each lead is pushed once (at its creation) and popped once, as 12 bytes
/// (its key and team; its `L + H` is read back from the lead book, see
/// [`Due::pop_due`]). The earliest day's leads are moved to a sorted list
/// (with their times) when the clock first reaches that day. Days lie
/// between the clock and the clock plus `H` plus the future tolerance (a
/// lead whose `L + H` has passed goes to the sorted list at once), so the
/// map holds about `H / 1 day` keys and each operation costs a bounded
/// number of steps (amortized).
#[derive(Debug, Clone, Default)]
pub struct Due {
    by_day: BTreeMap<i64, Vec<[u32; 3]>>,
    /// The days up to `open_day` already moved here: `(L + H, team, key)`, latest first.
    ready: Vec<(Micros, u32, u64)>,
    open_day: Option<i64>,
    len: usize,
}

fn day_of(t: Micros) -> i64 {
    t.div_euclid(MICROS_PER_DAY)
}

impl Due {
    /// Queues lead `lead` (key) of team `team` due at `at`.
    pub fn push(&mut self, at: Micros, team: u32, lead: u64) {
        self.len += 1;
        if self.open_day.is_some_and(|d| day_of(at) <= d) {
            let x = (at, team, lead);
            let i = self.ready.partition_point(|y| *y > x);
            self.ready.insert(i, x);
        } else {
            self.by_day.entry(day_of(at)).or_default().push([lead as u32, (lead >> 32) as u32, team]);
        }
    }

    /// The earliest time at which [`Due::pop_due`] may find a lead due.
    fn next(&self) -> Option<Micros> {
        let ready = self.ready.last().map(|x| x.0);
        let day = self.by_day.first_key_value().map(|(d, _)| d.saturating_mul(MICROS_PER_DAY));
        match (ready, day) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether some lead may be due at clock `t` (a couple of comparisons).
    #[inline]
    pub fn any_due(&self, t: Micros) -> bool {
        self.next().is_some_and(|n| n <= t)
    }

    /// Takes every lead due at clock `t`, earliest first. `due_of(team, key)`
    /// is the `L + H` of the lead still waiting under that key (`None`: no
    /// longer waiting; its entry is dropped).
    pub fn pop_due(&mut self, t: Micros, due_of: impl Fn(u32, u64) -> Option<Micros>, out: &mut Vec<(Micros, u32, u64)>) {
        loop {
            while self.ready.last().is_some_and(|x| x.0 <= t) {
                if let Some(x) = self.ready.pop() {
                    out.push(x);
                    self.len -= 1;
                }
            }
            let Some(entry) = self.by_day.first_entry() else { break };
            let day = *entry.key();
            if day.saturating_mul(MICROS_PER_DAY) > t {
                break;
            }
            for [lo, hi, team] in entry.remove() {
                let key = u64::from(lo) | u64::from(hi) << 32;
                match due_of(team, key) {
                    Some(at) => self.ready.push((at, team, key)),
                    None => self.len -= 1,
                }
            }
            self.ready.sort_unstable_by(|a, b| b.cmp(a));
            self.open_day = Some(self.open_day.map_or(day, |d| d.max(day)));
        }
    }

    /// Gives back the spare capacity of the days no new lead is expected in
    /// (those before `t + h`, `h` the persistence horizon); run from
    /// maintenance.
    pub fn shrink(&mut self, t: Micros, h: Micros) {
        let last = day_of(t.saturating_add(h));
        for (_, v) in self.by_day.range_mut(..last) {
            v.shrink_to_fit();
        }
        self.ready.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        let days: usize = self.by_day.values().map(|v| 48 + v.capacity() * std::mem::size_of::<[u32; 3]>()).sum();
        days + self.ready.capacity() * std::mem::size_of::<(Micros, u32, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MICROS_PER_DAY, MICROS_PER_SEC};

    const H: Micros = 14 * MICROS_PER_DAY;
    const S: Micros = MICROS_PER_SEC;

    #[test]
    fn packing_round_trips() {
        let created = 1_790_000_000_123_457;
        let sec = created - 123_457;
        for owner in [None, Some(0), Some(7), Some(REP_MAX)] {
            for sql_seen in [false, true] {
                for touches in [0, 1, COUNT_MAX] {
                    // times are kept to the second; before the SQL within 68 years of the lead, after it 776 days
                    for time in [Micros::MIN, -5 * S, sec - 3 * S, sec + 9 * S, sec + 775 * MICROS_PER_DAY] {
                        let f = LeadFollow {
                            owner,
                            touches,
                            observed: touches == 1,
                            sql_in_horizon: sql_seen && touches == 0,
                            sql_seen,
                            acts: if sql_seen { 0 } else { COUNT_MAX },
                            sql_rep: if sql_seen { owner } else { None },
                            time,
                        };
                        let kept = !(sql_seen && time == -5 * S);
                        let want = LeadFollow { time: if kept { time } else { Micros::MIN }, ..f };
                        assert_eq!(LeadFollow::unpack(created, f.pack(created)), want, "{f:?}");
                    }
                }
            }
        }
        assert_eq!(LeadFollow::unpack(7, 0).owner, None);
        assert_eq!(LeadFollow::unpack(created, LeadFollow::default().pack(created)), LeadFollow::default());
        // a time within a second is kept as its second's start
        let f = LeadFollow { sql_seen: true, time: sec + 9 * S + 999_999, ..LeadFollow::default() };
        assert_eq!(LeadFollow::unpack(created, f.pack(created)).time, sec + 9 * S);
        // a rep index beyond the stored range counts at team level only
        assert_eq!(LeadFollow::unpack(0, LeadFollow { owner: Some(REP_MAX + 1), ..LeadFollow::default() }.pack(0)).owner, None);
    }

    #[test]
    fn late_touch_inside_the_horizon_changes_the_observation() {
        let mut f = LeadFollow { owner: Some(2), ..LeadFollow::default() };
        f.touch(0, 10 * S, H);
        let o = f.observe(0, H).unwrap();
        assert_eq!((o.rep, o.at), (Some(2), H));
        assert_eq!(o.add, FollowAdd { followed: 1, touches: 1, ge1: 1, ge2: 0, ..FollowAdd::default() });
        assert_eq!(f.observe(0, H), None);
        // occurred before L + H: one more touch, and no longer "gave up after one"
        let [p, s] = f.touch(0, H - 1, H);
        assert_eq!(p.unwrap().add, FollowAdd { touches: 1, ge2: 1, ..FollowAdd::default() });
        assert_eq!(s, None);
        // at L + H: not a touch of the horizon
        assert_eq!(f.touch(0, H, H), [None, None]);
        assert_eq!(f.touches, 2);
    }

    #[test]
    fn late_sql_inside_the_horizon_moves_an_untouched_lead() {
        let mut f = LeadFollow::default();
        let o = f.observe(0, H).unwrap();
        assert_eq!(o.add, FollowAdd { followed: 1, ..FollowAdd::default() });
        let (conv, p) = f.sql(0, 5 * S, Some(1), H);
        assert_eq!(conv, Some(0));
        assert_eq!(p.unwrap().add, FollowAdd { ge1: 1, ge2: 1, ..FollowAdd::default() });
        // a second SQL changes nothing
        assert_eq!(f.sql(0, 6 * S, Some(1), H), (None, None));
    }

    #[test]
    fn touches_to_sql_count_what_occurred_before_it() {
        let mut f = LeadFollow::default();
        f.touch(0, 10 * S, H);
        f.touch(0, 20 * S, H);
        // the SQL occurred between the two: the later one does not count
        let (conv, _) = f.sql(0, 15 * S, Some(3), H);
        assert_eq!(conv, Some(1));
        // a late activity that occurred before the SQL adds to its observation
        let [_, s] = f.touch(0, 12 * S, H);
        assert_eq!(s.unwrap(), Observation { rep: Some(3), at: 15 * S, add: FollowAdd { sql_touches: 1, ..FollowAdd::default() } });
        // at the SQL's time still counts, after it does not
        assert!(f.touch(0, 15 * S, H)[1].is_some());
        assert!(f.touch(0, 16 * S, H)[1].is_none());
        // the SQL's time is kept to the second: later within its second still counts (a reading)
        assert!(f.touch(0, 15 * S + S / 2, H)[1].is_some());
    }

    #[test]
    fn due_queue_pops_in_time_order() {
        let mut d = Due::default();
        let m = 60 * S;
        let day = MICROS_PER_DAY;
        let times: std::collections::HashMap<u64, Micros> =
            [(1, 5 * m + 30 * S), (2, 5 * m + 10 * S), (3, 2 * m), (4, 90 * m), (5, 3 * day + m), (6, day / 2)].into();
        let due_of = |_team: u32, key: u64| times.get(&key).copied();
        for k in [1, 2, 3, 4, 5] {
            d.push(times[&k], u32::from(k == 3), k);
        }
        // a lead no longer waiting (forgotten) is dropped when its day is opened
        d.push(7 * m, 0, 99);
        assert!(!d.any_due(-1));
        let mut out = Vec::new();
        d.pop_due(2 * m - 1, due_of, &mut out);
        assert!(out.is_empty());
        assert!(!d.any_due(2 * m - 1) && d.any_due(2 * m));
        d.pop_due(5 * m + 20 * S, due_of, &mut out);
        assert_eq!(out.iter().map(|x| (x.2, x.1)).collect::<Vec<_>>(), [(3, 1), (2, 0)]);
        assert_eq!(d.len(), 3);
        assert!(!d.any_due(5 * m + 29 * S));
        // a lead due in a day already opened goes to the sorted list
        d.push(times[&6], 0, 6);
        out.clear();
        d.pop_due(day, due_of, &mut out);
        assert_eq!(out.iter().map(|x| x.2).collect::<Vec<_>>(), [1, 4, 6]);
        assert!(!d.any_due(3 * day - 1));
        out.clear();
        d.pop_due(Micros::MAX, due_of, &mut out);
        assert_eq!(out.iter().map(|x| x.2).collect::<Vec<_>>(), [5]);
        assert!(d.is_empty() && !d.any_due(Micros::MAX));
    }
}
