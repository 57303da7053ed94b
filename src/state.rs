//! Windowed state of one key (a rep, or the events of a team without a rep):
//! sparse bucket rings per bucket size, rolled up from fine to coarse, and
//! calendar accumulators (days rolled up into their week, month and
//! quarter), all packed in one arena.
//!
//! Owns: where a [`Delta`] is stored so that every configured window (and the
//! previous window of every rolling one) can be summed at any later clock,
//! dropping what no window can see any more.
//! Must not touch: events, joins, KPI formulas, rendering.
//!
//! Each bucket size `g` (1 minute, 1 hour, 1 day by default) has a ring of
//! non-empty buckets sorted by index, holding the events of `g`'s current
//! range (the longest window of that size) in full; older buckets only
//! matter for the previous window of growth, so the ring keeps only their
//! revenue. Sizes form roll-up chains ([`Windows::chains`]: 1 minute → 1 hour
//! → 1 day): an event is stored once per chain, in the finest size whose
//! range holds it, and a bucket that leaves that range is merged into its
//! bucket of the next size. So a recent event costs one bucket update
//! instead of one per size, and the last hour is not kept three times. A
//! window of size `g` sums `g`'s buckets and those of the finer sizes of its
//! chain that fall in it. Windows advance with the clock at read time
//! ([`KeyState::window`]), so a key that receives no events still shows
//! correct, shrinking windows; [`KeyState::compact`] frees what fell out and
//! runs whenever the key is written and in the engine's periodic sweep.
//!
//! Buckets and calendar periods are records of [`crate::packed`] in the key's
//! [`Arena`]; a ring names them by offset, with bucket indexes relative to a
//! base in 32 bits (see [`crate::window::MAX_BUCKETS`]).

use serde::{Deserialize, Serialize};

use crate::measures::{Delta, Totals};
use crate::packed::{Arena, PackedDelta};
use crate::time::Micros;
use crate::window::{Calendar, Periods, WindowKind, Windows};

/// Bucket indexes are stored as `idx - base`, with `base` half the 32-bit
/// range below the first index seen.
const HALF: i64 = 1 << 31;

/// Buckets of one size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ring {
    /// Bucket index of `cur`'s relative index 0.
    base: i64,
    /// The bucket index of the clock at the last compaction: compaction is
    /// skipped while it is unchanged.
    compacted_at: i64,
    /// Buckets of the current range, sorted: (index - base, record).
    cur: Vec<(u32, u32)>,
    /// Revenue of older buckets still inside some previous window, sorted.
    prev: Vec<(i64, f64)>,
}

/// A calendar accumulator: `Today` is one local day (`period` = day
/// number); `Wtd`, `Mtd`, `Qtd` hold the days of that week, month or quarter
/// before the day accumulators still kept (see [`KeyState::roll_days`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct CalSlot {
    cal: Calendar,
    period: i32,
    rec: u32,
}

/// Week, month and quarter numbers of local day `day` (as [`crate::window::periods_in`]).
pub(crate) fn periods_of_day(day: i64) -> Periods {
    let (y, m, _) = crate::time::civil_from_days(day);
    let month = y * 12 + i64::from(m) - 1;
    Periods { day, week: (day + 3).div_euclid(7), month, quarter: month.div_euclid(3) }
}

/// A period id as stored (day, week, month and quarter numbers of years
/// 0000–9999 are far inside `i32`).
fn period32(p: i64) -> i32 {
    p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyState {
    rings: Vec<Ring>,
    cal: Vec<CalSlot>,
    arena: Arena,
}

/// Sum of one window at a clock, with the previous window's revenue for
/// rolling windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowRead {
    pub prev_revenue: Option<f64>,
}

/// Inserts into a vector growing it by a quarter when full (not doubling:
/// spare capacity is memory of every key).
fn insert_lean<T>(v: &mut Vec<T>, pos: usize, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 4 + 2);
    }
    v.insert(pos, x);
}

/// Returns spare capacity above a quarter.
fn shrink_lean<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() + v.len() / 4 + 2 {
        v.shrink_to_fit();
    }
}

impl Ring {
    fn idx(&self, rel: u32) -> i64 {
        self.base + i64::from(rel)
    }

    /// Position of bucket `idx` in `cur`: `Ok` if present, else where it goes.
    /// Buckets arrive mostly in order: search from the back.
    fn find(&self, idx: i64) -> Result<usize, usize> {
        match self.cur.last() {
            None => Err(0),
            Some(&(rel, _)) if self.idx(rel) < idx => Err(self.cur.len()),
            Some(&(rel, _)) if self.idx(rel) == idx => Ok(self.cur.len() - 1),
            _ => self.cur.binary_search_by_key(&idx, |&(rel, _)| self.base + i64::from(rel)),
        }
    }

    /// Revenue of bucket `idx` into `prev`, kept sorted.
    fn add_prev(&mut self, idx: i64, r: f64) {
        let mut pos = self.prev.len();
        while pos > 0 && self.prev[pos - 1].0 > idx {
            pos -= 1;
        }
        if pos > 0 && self.prev[pos - 1].0 == idx {
            self.prev[pos - 1].1 += r;
        } else {
            insert_lean(&mut self.prev, pos, (idx, r));
        }
    }
}

impl KeyState {
    pub fn new(w: &Windows) -> Self {
        KeyState { rings: vec![Ring::default(); w.grans.len()], cal: Vec::new(), arena: Arena::default() }
    }

    /// Adds `d` for an event at `e` (calendar periods `pe`) with the clock at
    /// `t` (periods `pt`). The caller has already rejected late events; a
    /// bucket size whose kept range does not reach `e` is skipped.
    pub fn add(&mut self, w: &Windows, e: Micros, pe: &Periods, t: Micros, pt: &Periods, d: &Delta) {
        let pd = PackedDelta::new(d);
        let r = pd.revenue();
        for chain in &w.chains {
            self.compact_chain(w, chain, t);
            let mut stored = false;
            for &g in chain {
                let gran = &w.grans[g];
                let (now, idx, n) = (t.div_euclid(gran.bucket), e.div_euclid(gran.bucket), gran.current_buckets);
                if idx > now - n {
                    if !stored {
                        self.bucket_add(g, idx, &pd);
                        stored = true;
                    }
                } else if idx > now - 2 * n && r != 0.0 {
                    self.rings[g].add_prev(idx, r);
                }
            }
        }
        if !w.calendars.is_empty() {
            self.roll_days(w, pt);
            if pe.day >= pt.day {
                // Today (or a day ahead, within the future tolerance).
                self.cal_add(Calendar::Today, pe.day, &pd);
            } else {
                // An earlier day of the current periods: straight to them.
                for &c in &w.calendars {
                    if c != Calendar::Today && pe.get(c) >= pt.get(c) {
                        self.cal_add(c, pe.get(c), &pd);
                    }
                }
            }
        }
        if self.arena.wants_collect() {
            self.collect();
        }
    }

    /// Adds `pd` to calendar accumulator `(c, period)`.
    fn cal_add(&mut self, c: Calendar, period: i64, pd: &PackedDelta) {
        let p = period32(period);
        match self.cal.iter_mut().find(|s| s.cal == c && s.period == p) {
            Some(s) => self.arena.add(&mut s.rec, pd),
            None => {
                let rec = self.arena.create(pd);
                let n = self.cal.len();
                insert_lean(&mut self.cal, n, CalSlot { cal: c, period: p, rec });
            }
        }
    }

    /// Brings the calendar accumulators to the clock's periods `pt`: a day
    /// before the clock's day is merged into the week, month and quarter
    /// accumulators of the clock's periods that it belongs to, and whatever
    /// is of an earlier period is dropped. So an event updates one calendar
    /// accumulator (its day's) and each window reads at most a day or two
    /// and its period's accumulator.
    fn roll_days(&mut self, w: &Windows, pt: &Periods) {
        let today = period32(pt.day);
        if self.cal.iter().all(|s| s.cal != Calendar::Today || s.period >= today) {
            let old = |s: &CalSlot| s.cal != Calendar::Today && i64::from(s.period) < pt.get(s.cal);
            if !self.cal.iter().any(old) {
                return;
            }
        }
        let mut k = 0;
        while k < self.cal.len() {
            let s = self.cal[k];
            if s.cal == Calendar::Today && s.period < today {
                let pd = periods_of_day(i64::from(s.period));
                for &c in &w.calendars {
                    if c == Calendar::Today || pd.get(c) != pt.get(c) {
                        continue;
                    }
                    let p = period32(pt.get(c));
                    match self.cal.iter().position(|x| x.cal == c && x.period == p) {
                        Some(i) => {
                            let mut rec = self.cal[i].rec;
                            self.arena.merge(&mut rec, s.rec);
                            self.cal[i].rec = rec;
                        }
                        None => {
                            let rec = self.arena.create(&PackedDelta::default());
                            let mut r = rec;
                            self.arena.merge(&mut r, s.rec);
                            let n = self.cal.len();
                            insert_lean(&mut self.cal, n, CalSlot { cal: c, period: p, rec: r });
                        }
                    }
                }
                self.arena.free(s.rec);
                self.cal.remove(k);
            } else if s.cal != Calendar::Today && i64::from(s.period) < pt.get(s.cal) {
                self.arena.free(s.rec);
                self.cal.remove(k);
            } else {
                k += 1;
            }
        }
    }

    /// Adds `pd` to bucket `idx` of ring `g`.
    fn bucket_add(&mut self, g: usize, idx: i64, pd: &PackedDelta) {
        self.ensure_fits(g, idx);
        let ring = &mut self.rings[g];
        match ring.find(idx) {
            Ok(pos) => self.arena.add(&mut ring.cur[pos].1, pd),
            Err(pos) => {
                let rec = self.arena.create(pd);
                let rel = (idx - ring.base) as u32;
                insert_lean(&mut ring.cur, pos, (rel, rec));
            }
        }
    }

    /// Merges record `rec` (a bucket of a finer size) into bucket `idx` of
    /// ring `g`; `rec` is consumed.
    fn bucket_merge(&mut self, g: usize, idx: i64, rec: u32) {
        self.ensure_fits(g, idx);
        let ring = &mut self.rings[g];
        match ring.find(idx) {
            Ok(pos) => {
                self.arena.merge(&mut ring.cur[pos].1, rec);
                self.arena.free(rec);
            }
            Err(pos) => {
                let rel = (idx - ring.base) as u32;
                insert_lean(&mut ring.cur, pos, (rel, rec));
            }
        }
    }

    /// Makes `idx` representable relative to ring `g`'s base, moving the
    /// base if needed. Buckets that do not fit the new base are more than
    /// 2^31 buckets from `idx`, beyond every window (`MAX_BUCKETS`): dropped.
    fn ensure_fits(&mut self, g: usize, idx: i64) {
        let ring = &mut self.rings[g];
        if ring.cur.is_empty() {
            ring.base = idx - HALF;
            return;
        }
        if (0..1i64 << 32).contains(&(idx - ring.base)) {
            return;
        }
        let base = idx - HALF;
        let (old, arena) = (ring.base, &mut self.arena);
        ring.cur.retain_mut(|(rel, rec)| {
            let at = old + i64::from(*rel) - base;
            match u32::try_from(at) {
                Ok(r) => {
                    *rel = r;
                    true
                }
                Err(_) => {
                    arena.free(*rec);
                    false
                }
            }
        });
        ring.base = base;
    }

    /// Brings the rings of `chain` to clock `t`: buckets that left a size's
    /// range keep their revenue for its previous window and are merged into
    /// the next size that still holds them in full.
    fn compact_chain(&mut self, w: &Windows, chain: &[usize], t: Micros) {
        for (pos, &g) in chain.iter().enumerate() {
            let gran = &w.grans[g];
            let (now, n) = (t.div_euclid(gran.bucket), gran.current_buckets);
            let ring = &mut self.rings[g];
            if now == ring.compacted_at {
                continue;
            }
            ring.compacted_at = now;
            let base = ring.base;
            let leaving = ring.cur.partition_point(|&(rel, _)| base + i64::from(rel) <= now - n);
            for k in 0..leaving {
                let (rel, rec) = self.rings[g].cur[k];
                let idx = base + i64::from(rel);
                let r = self.arena.revenue(rec);
                if r != 0.0 && idx > now - 2 * n {
                    self.rings[g].add_prev(idx, r);
                }
                self.deliver(w, &chain[pos + 1..], idx * gran.bucket, rec, r, t);
            }
            let ring = &mut self.rings[g];
            ring.cur.drain(..leaving);
            let gone = ring.prev.partition_point(|&(idx, _)| idx <= now - 2 * n);
            ring.prev.drain(..gone);
        }
    }

    /// Hands the record `rec` (revenue `r`) of a bucket starting at `start`
    /// that left its size's range to the coarser sizes `up`: merged into the
    /// first whose range holds it, its revenue kept by those whose previous
    /// range holds it on the way; freed when none holds it.
    fn deliver(&mut self, w: &Windows, up: &[usize], start: Micros, rec: u32, r: f64, t: Micros) {
        for &a in up {
            let gran = &w.grans[a];
            let (now, idx, n) = (t.div_euclid(gran.bucket), start.div_euclid(gran.bucket), gran.current_buckets);
            if idx > now - n {
                return self.bucket_merge(a, idx, rec);
            }
            if idx > now - 2 * n && r != 0.0 {
                self.rings[a].add_prev(idx, r);
            }
        }
        self.arena.free(rec);
    }

    /// Frees buckets and periods that no window can see at clock `t`, and
    /// returns spare memory ([`KeyState::tidy`]).
    pub fn compact(&mut self, w: &Windows, t: Micros, pt: &Periods) {
        self.expire(w, t, pt);
        self.tidy();
    }

    /// Brings the rings and calendar accumulators to clock `t`: what no
    /// window can see any more is merged on or marked as garbage (cheap: the
    /// sweep runs it on every key every 6 h of clock time).
    pub fn expire(&mut self, w: &Windows, t: Micros, pt: &Periods) {
        for chain in &w.chains {
            self.compact_chain(w, chain, t);
        }
        self.roll_days(w, pt);
    }

    /// Returns spare capacity and rewrites the arena when its garbage is
    /// above an eighth of the live bytes (the daily sweep; it copies every
    /// record of the key, so it is not run per event or per hour).
    pub fn tidy(&mut self) {
        for ring in &mut self.rings {
            shrink_lean(&mut ring.cur);
            shrink_lean(&mut ring.prev);
        }
        shrink_lean(&mut self.cal);
        if self.arena.wants_tidy() {
            self.collect();
        } else {
            self.arena.shrink();
        }
    }

    /// Rewrites the arena with only the live records.
    fn collect(&mut self) {
        let recs = self.rings.iter_mut().flat_map(|r| r.cur.iter_mut().map(|(_, rec)| rec));
        self.arena.collect(recs.chain(self.cal.iter_mut().map(|s| &mut s.rec)));
    }

    /// A key state from accumulated totals (restoring an earlier format):
    /// for each bucket size its clock bucket at the last compaction, full
    /// buckets and previous-window revenue, laid out as [`KeyState::add`]
    /// keeps them (the caller has removed from each bucket what a finer size
    /// of its chain holds); then the calendar accumulators.
    pub(crate) fn from_totals(rings: Vec<(i64, Vec<(i64, Totals)>, Vec<(i64, f64)>)>, cal: Vec<(Calendar, i64, Totals)>) -> Self {
        let mut k = KeyState { rings: Vec::with_capacity(rings.len()), cal: Vec::new(), arena: Arena::default() };
        for (compacted_at, cur, prev) in rings {
            let mut ring = Ring { compacted_at, prev, ..Ring::default() };
            ring.base = cur.first().map_or(0, |(idx, _)| idx - HALF);
            for (idx, t) in cur {
                if let (Some(rec), Ok(rel)) = (k.arena.create_from_totals(&t), u32::try_from(idx - ring.base)) {
                    ring.cur.push((rel, rec));
                }
            }
            k.rings.push(ring);
        }
        for (c, period, t) in cal {
            if let Some(rec) = k.arena.create_from_totals(&t) {
                k.cal.push(CalSlot { cal: c, period: period32(period), rec });
            }
        }
        k
    }

    /// Checks a state read back from a snapshot: every record parses, every
    /// ring is sorted.
    pub fn check(&self) -> Result<(), String> {
        for (g, r) in self.rings.iter().enumerate() {
            if r.cur.windows(2).any(|p| p[0].0 >= p[1].0) || r.prev.windows(2).any(|p| p[0].0 >= p[1].0) {
                return Err(format!("bucket ring {g} is not sorted"));
            }
        }
        let recs = self.rings.iter().flat_map(|r| r.cur.iter().map(|&(_, rec)| rec)).chain(self.cal.iter().map(|s| s.rec));
        for rec in recs {
            if !self.arena.check(rec) {
                return Err(format!("record at {rec} does not parse"));
            }
        }
        Ok(())
    }

    /// Gives the state exactly one ring per bucket size of `w` (a snapshot
    /// written with other windows keeps what fits).
    pub fn fit_windows(&mut self, w: &Windows) {
        self.rings.resize_with(w.grans.len(), Ring::default);
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.cal.is_empty() && self.rings.iter().all(|r| r.cur.is_empty() && r.prev.is_empty())
    }

    /// Sums window `def` of `w` at clock `t` (calendar periods `pt`) into
    /// `out`, which the caller has cleared.
    pub fn window(&self, w: &Windows, def: usize, t: Micros, pt: &Periods, out: &mut Totals) -> WindowRead {
        match w.defs[def].kind {
            WindowKind::Rolling { len, bucket, gran } => {
                let now = t.div_euclid(bucket);
                let n = len / bucket;
                let mut prev = 0.0;
                for &g in w.finer_or_same(gran) {
                    let ring = &self.rings[g];
                    let size = w.grans[g].bucket;
                    for &(rel, rec) in ring.cur.iter().rev() {
                        let idx = ring.idx(rel);
                        let idx = if g == gran { idx } else { (idx * size).div_euclid(bucket) };
                        if idx > now {
                            continue;
                        }
                        if idx > now - n {
                            self.arena.read(rec, out);
                        } else if idx > now - 2 * n {
                            prev += self.arena.revenue(rec);
                        } else {
                            break;
                        }
                    }
                }
                for &(idx, r) in self.rings[gran].prev.iter().rev() {
                    if idx > now - n {
                        continue;
                    }
                    if idx > now - 2 * n {
                        prev += r;
                    } else {
                        break;
                    }
                }
                WindowRead { prev_revenue: Some(prev) }
            }
            WindowKind::Calendar(c) => {
                // The period's accumulator and its days not rolled into it yet.
                let p = pt.get(c);
                for s in &self.cal {
                    let of_period = if s.cal == Calendar::Today {
                        if c == Calendar::Today {
                            i64::from(s.period) == p
                        } else {
                            periods_of_day(i64::from(s.period)).get(c) == p
                        }
                    } else {
                        s.cal == c && i64::from(s.period) == p
                    };
                    if of_period {
                        self.arena.read(s.rec, out);
                    }
                }
                WindowRead { prev_revenue: None }
            }
        }
    }

    /// Bytes of live records by what they hold: one entry per bucket size
    /// (in [`Windows::grans`] order), then the calendar accumulators.
    pub fn record_bytes(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self.rings.iter().map(|r| r.cur.iter().map(|&(_, rec)| self.arena.len_of(rec)).sum()).collect();
        out.push(self.cal.iter().map(|s| self.arena.len_of(s.rec)).sum());
        out
    }

    /// Bytes of the index (rings, calendar slots) and of the arena (records,
    /// garbage and spare capacity): [`KeyState::heap_bytes`] in two parts.
    pub fn heap_parts(&self) -> (usize, usize) {
        let all = self.heap_bytes();
        (all - self.arena.capacity(), self.arena.capacity())
    }

    /// Approximate bytes owned, for the state-size gauge and the memory bench.
    pub fn heap_bytes(&self) -> usize {
        let rings: usize = self
            .rings
            .iter()
            .map(|r| r.cur.capacity() * std::mem::size_of::<(u32, u32)>() + r.prev.capacity() * std::mem::size_of::<(i64, f64)>())
            .sum();
        self.rings.capacity() * std::mem::size_of::<Ring>()
            + rings
            + self.cal.capacity() * std::mem::size_of::<CalSlot>()
            + self.arena.capacity()
    }
}

/// The serialized form: the arena without garbage.
#[derive(Serialize)]
struct WireRef<'a> {
    rings: &'a [Ring],
    cal: &'a [CalSlot],
    arena: &'a Arena,
}

#[derive(Deserialize)]
struct Wire {
    rings: Vec<Ring>,
    cal: Vec<CalSlot>,
    arena: Arena,
}

impl Serialize for KeyState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.arena.garbage() == 0 {
            WireRef { rings: &self.rings, cal: &self.cal, arena: &self.arena }.serialize(s)
        } else {
            let mut c = self.clone();
            c.collect();
            WireRef { rings: &c.rings, cal: &c.cal, arena: &c.arena }.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for KeyState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        Ok(KeyState { rings: w.rings, cal: w.cal, arena: w.arena })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn t(s: &str) -> Micros {
        parse_rfc3339(s).unwrap()
    }

    fn outbound_and_revenue(r: f64) -> Delta {
        let mut d = Delta::default();
        d.act.outbound = 1;
        if r != 0.0 {
            d.funnel().revenue = r;
            d.funnel().deals_won = 1;
        }
        d
    }

    fn read(s: &KeyState, w: &Windows, name: &str, clock: Micros) -> (u64, f64, Option<f64>) {
        let def = w.defs.iter().position(|d| d.name == name).unwrap();
        let mut tot = Totals::default();
        let r = s.window(w, def, clock, &w.periods(clock), &mut tot);
        (tot.act.outbound, tot.f.revenue, r.prev_revenue)
    }

    fn add(s: &mut KeyState, w: &Windows, e: &str, clock: &str, d: &Delta) {
        let (e, c) = (t(e), t(clock));
        s.add(w, e, &w.periods(e), c, &w.periods(c), d);
    }

    #[test]
    fn rolling_bucket_edges() {
        let w = Windows::default_utc();
        let mut s = KeyState::new(&w);
        // 1h window = the 60 minute buckets ending with the one holding t.
        add(&mut s, &w, "2026-11-15T07:00:59Z", "2026-11-15T07:00:59Z", &outbound_and_revenue(0.0));
        add(&mut s, &w, "2026-11-15T07:01:00Z", "2026-11-15T07:01:00Z", &outbound_and_revenue(0.0));
        // at 07:59:59 both are in; at 08:00:00 the 07:00 bucket left; at 08:01:00 both left.
        assert_eq!(read(&s, &w, "1h", t("2026-11-15T07:59:59Z")).0, 2);
        assert_eq!(read(&s, &w, "1h", t("2026-11-15T08:00:00Z")).0, 1);
        assert_eq!(read(&s, &w, "1h", t("2026-11-15T08:00:59.999Z")).0, 1);
        assert_eq!(read(&s, &w, "1h", t("2026-11-15T08:01:00Z")).0, 0);
        // 1d = 24 hourly buckets: 07:xx is in until 07:00 next day.
        assert_eq!(read(&s, &w, "1d", t("2026-11-16T06:59:59Z")).0, 2);
        assert_eq!(read(&s, &w, "1d", t("2026-11-16T07:00:00Z")).0, 0);
        // 30d = 30 daily buckets.
        assert_eq!(read(&s, &w, "30d", t("2026-12-14T23:59:59Z")).0, 2);
        assert_eq!(read(&s, &w, "30d", t("2026-12-15T00:00:00Z")).0, 0);
    }

    #[test]
    fn previous_window_revenue_survives_compaction() {
        let w = Windows::default_utc();
        let mut s = KeyState::new(&w);
        add(&mut s, &w, "2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z", &outbound_and_revenue(100.0));
        add(&mut s, &w, "2026-11-09T10:00:00Z", "2026-11-09T10:00:00Z", &outbound_and_revenue(150.0));
        // 7d at Nov 9 10:00: current (Nov 2 11:00, Nov 9 10:00], previous (Oct 26 11:00, Nov 2 11:00].
        assert_eq!(read(&s, &w, "7d", t("2026-11-09T10:00:00Z")), (1, 150.0, Some(100.0)));
        // an event compacts the ring; the old bucket is revenue-only now and still counted
        add(&mut s, &w, "2026-11-09T10:30:00Z", "2026-11-09T10:30:00Z", &outbound_and_revenue(0.0));
        assert_eq!(read(&s, &w, "7d", t("2026-11-09T10:30:00Z")), (2, 150.0, Some(100.0)));
        // a late-arriving event in the previous range only adds revenue
        add(&mut s, &w, "2026-10-30T10:00:00Z", "2026-11-09T10:30:00Z", &outbound_and_revenue(7.0));
        assert_eq!(read(&s, &w, "7d", t("2026-11-09T10:30:00Z")), (2, 150.0, Some(107.0)));
        // two windows later everything is gone
        s.compact(&w, t("2026-11-24T00:00:00Z"), &w.periods(t("2026-11-24T00:00:00Z")));
        assert_eq!(read(&s, &w, "7d", t("2026-11-24T00:00:00Z")), (0, 0.0, Some(0.0)));
    }

    #[test]
    fn calendar_periods_in_a_zone() {
        let w = Windows::new(&Windows::DEFAULT, "America/New_York").unwrap();
        let mut s = KeyState::new(&w);
        // 03:30Z on Nov 16 is 22:30 on Nov 15 in New York (EST, UTC-5): Sunday.
        add(&mut s, &w, "2026-11-16T03:30:00Z", "2026-11-16T03:30:00Z", &outbound_and_revenue(0.0));
        let clock = t("2026-11-16T04:59:59Z");
        assert_eq!(read(&s, &w, "today", clock).0, 1);
        assert_eq!(read(&s, &w, "wtd", clock).0, 1);
        // 05:00Z is midnight Monday in New York: a new day and a new week.
        let clock = t("2026-11-16T05:00:00Z");
        assert_eq!(read(&s, &w, "today", clock).0, 0);
        assert_eq!(read(&s, &w, "wtd", clock).0, 0);
        assert_eq!(read(&s, &w, "mtd", clock).0, 1);
        // an event from the previous local day still counts in mtd, not today
        add(&mut s, &w, "2026-11-16T04:00:00Z", "2026-11-16T05:00:00Z", &outbound_and_revenue(0.0));
        assert_eq!(read(&s, &w, "today", clock).0, 0);
        assert_eq!(read(&s, &w, "mtd", clock).0, 2);
        assert_eq!(read(&s, &w, "qtd", clock).0, 2);
    }

    #[test]
    fn out_of_order_buckets_stay_sorted() {
        let w = Windows::default_utc();
        let mut s = KeyState::new(&w);
        for e in ["2026-11-15T07:30:00Z", "2026-11-15T07:10:00Z", "2026-11-15T07:50:00Z", "2026-11-15T07:10:30Z"] {
            add(&mut s, &w, e, "2026-11-15T07:50:00Z", &outbound_and_revenue(0.0));
        }
        assert_eq!(read(&s, &w, "1h", t("2026-11-15T08:09:59Z")).0, 4);
        assert_eq!(read(&s, &w, "1h", t("2026-11-15T08:10:00Z")).0, 2);
        assert_eq!(read(&s, &w, "1h", t("2026-11-15T08:30:00Z")).0, 1);
    }
}
