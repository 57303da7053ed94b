//! Follow-up persistence and touches to SQL (contract v1.1): what a lead's
//! touches and SQL add to the windows, in event time.
//!
//! Owns: the per-lead follow-up state ([`LeadFollow`], kept inside the lead
//! join of [`crate::joins`] and packed there into 16 bytes), the decisions
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

use crate::time::{Micros, MICROS_PER_MIN};

/// Touches (and activities before the SQL) are counted up to this value.
const COUNT_MAX: u32 = (1 << 12) - 1;
/// Rep indexes at or above this are not stored (the lead counts at team level only).
const REP_MAX: u32 = (1 << 24) - 2;

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
    /// (`Micros::MIN`: none); after: the SQL's `occurred_at`.
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

impl LeadFollow {
    /// `(time, bits)`: bits 0-23 owner + 1, 24-35 touches, 36 observed, 37
    /// SQL in horizon, 38 SQL seen, 39-62 the activities (before the SQL) or
    /// the SQL's rep + 1 (after).
    pub fn pack(&self) -> (Micros, u64) {
        let union = if self.sql_seen { rep_code(self.sql_rep) } else { u64::from(self.acts.min(COUNT_MAX)) };
        let bits = rep_code(self.owner)
            | u64::from(self.touches.min(COUNT_MAX)) << 24
            | u64::from(self.observed) << 36
            | u64::from(self.sql_in_horizon) << 37
            | u64::from(self.sql_seen) << 38
            | union << 39;
        (self.time, bits)
    }

    pub fn unpack(time: Micros, bits: u64) -> Self {
        let sql_seen = bits >> 38 & 1 == 1;
        let union = bits >> 39 & ((1 << 24) - 1);
        LeadFollow {
            owner: rep_of(bits & ((1 << 24) - 1)),
            touches: (bits >> 24 & u64::from(COUNT_MAX)) as u32,
            observed: bits >> 36 & 1 == 1,
            sql_in_horizon: bits >> 37 & 1 == 1,
            sql_seen,
            acts: if sql_seen { 0 } else { union as u32 },
            sql_rep: if sql_seen { rep_of(union) } else { None },
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
        } else if e <= self.time {
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

/// Leads waiting for their observation at `L + H`, by minute of `L + H`.
///
/// Each lead is pushed once (at its creation) and popped once; a minute's
/// leads are sorted when the clock first reaches that minute. Keys lie
/// between the clock and the clock plus `H` plus the future tolerance (a
/// lead whose `L + H` has passed is observed at once), so the map holds at
/// most `H / 1 min` keys and each operation costs a bounded number of steps.
#[derive(Debug, Clone, Default)]
pub struct Due {
    by_minute: BTreeMap<i64, Vec<(Micros, u32, u64)>>,
    /// Earliest `L + H` queued (`Micros::MAX`: none).
    next: Option<Micros>,
    len: usize,
}

impl Due {
    /// Queues lead `lead` (fingerprint) of team `team` due at `at`.
    pub fn push(&mut self, at: Micros, team: u32, lead: u64) {
        self.by_minute.entry(at.div_euclid(MICROS_PER_MIN)).or_default().push((at, team, lead));
        self.next = Some(self.next.map_or(at, |n| n.min(at)));
        self.len += 1;
    }

    /// Whether some lead is due at clock `t` (one comparison).
    #[inline]
    pub fn any_due(&self, t: Micros) -> bool {
        self.next.is_some_and(|n| n <= t)
    }

    /// Takes every lead due at clock `t`, earliest first.
    pub fn pop_due(&mut self, t: Micros, out: &mut Vec<(Micros, u32, u64)>) {
        while let Some(mut entry) = self.by_minute.first_entry() {
            if entry.key().saturating_mul(MICROS_PER_MIN) > t {
                break;
            }
            let v = entry.get_mut();
            v.sort_unstable_by(|a, b| b.cmp(a));
            while v.last().is_some_and(|x| x.0 <= t) {
                if let Some(x) = v.pop() {
                    out.push(x);
                    self.len -= 1;
                }
            }
            if v.is_empty() {
                entry.remove();
            } else {
                break;
            }
        }
        self.next = self.by_minute.first_key_value().and_then(|(_, v)| v.iter().map(|x| x.0).min());
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.by_minute.values().map(|v| 48 + v.capacity() * std::mem::size_of::<(Micros, u32, u64)>()).sum()
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
        for owner in [None, Some(0), Some(7), Some(REP_MAX)] {
            for sql_seen in [false, true] {
                for touches in [0, 1, 4095] {
                    let f = LeadFollow {
                        owner,
                        touches,
                        observed: touches == 1,
                        sql_in_horizon: sql_seen && touches == 0,
                        sql_seen,
                        acts: if sql_seen { 0 } else { 4095 },
                        sql_rep: if sql_seen { owner } else { None },
                        time: -5,
                    };
                    let (t, b) = f.pack();
                    assert_eq!(LeadFollow::unpack(t, b), f);
                }
            }
        }
        assert_eq!(LeadFollow::unpack(Micros::MIN, 0), LeadFollow::default());
        // a rep index beyond the stored range counts at team level only
        assert_eq!(LeadFollow::unpack(0, LeadFollow { owner: Some(REP_MAX + 1), ..LeadFollow::default() }.pack().1).owner, None);
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
    }

    #[test]
    fn due_queue_pops_in_time_order() {
        let mut d = Due::default();
        let m = MICROS_PER_MIN;
        d.push(5 * m + 30 * S, 0, 1);
        d.push(5 * m + 10 * S, 0, 2);
        d.push(2 * m, 1, 3);
        d.push(90 * m, 0, 4);
        assert!(!d.any_due(2 * m - 1));
        assert!(d.any_due(2 * m));
        let mut out = Vec::new();
        d.pop_due(5 * m + 20 * S, &mut out);
        assert_eq!(out.iter().map(|x| x.2).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(d.len(), 2);
        assert!(!d.any_due(5 * m + 29 * S));
        out.clear();
        d.pop_due(100 * m, &mut out);
        assert_eq!(out.iter().map(|x| x.2).collect::<Vec<_>>(), [1, 4]);
        assert!(d.is_empty() && !d.any_due(Micros::MAX));
    }
}
