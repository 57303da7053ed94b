//! Windowed state of one key (a rep or a team): sparse bucket rings per
//! bucket size and one accumulator per calendar period.
//!
//! Owns: where a [`Delta`] is stored so that every configured window (and the
//! previous window of every rolling one) can be summed at any later clock,
//! dropping what no window can see any more.
//! Must not touch: events, joins, KPI formulas, rendering.
//!
//! Each bucket size `g` (1 minute, 1 hour, 1 day by default) has a ring of
//! non-empty buckets sorted by index. Buckets inside the longest window of
//! that size keep full [`Measures`]; older ones, needed only by the previous
//! window of growth, keep only their revenue. Windows advance with the clock
//! at read time ([`KeyState::window`]), so a key that receives no events still
//! shows correct, shrinking windows; [`KeyState::compact`] frees what fell out
//! and runs whenever the key is written and in the engine's periodic sweep.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::measures::{Delta, Measures, Totals};
use crate::time::Micros;
use crate::window::{Calendar, Periods, WindowKind, Windows};

/// Buckets of one size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ring {
    /// The bucket index of the clock at the last compaction: compaction is
    /// skipped while it is unchanged.
    #[serde(default)]
    compacted_at: i64,
    /// Full buckets, sorted by bucket index.
    cur: VecDeque<(i64, Measures)>,
    /// Revenue of older buckets still inside some previous window, sorted.
    prev: VecDeque<(i64, f64)>,
}

/// Accumulator of one calendar period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CalSlot {
    cal: Calendar,
    period: i64,
    m: Measures,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    rings: Vec<Ring>,
    cal: Vec<CalSlot>,
}

fn insert_sorted<T>(q: &mut VecDeque<(i64, T)>, idx: i64, fresh: impl FnOnce() -> T) -> &mut T {
    // Buckets arrive mostly in order: search from the back.
    let mut pos = q.len();
    while pos > 0 && q[pos - 1].0 > idx {
        pos -= 1;
    }
    if pos == 0 || q[pos - 1].0 != idx {
        q.insert(pos, (idx, fresh()));
        return &mut q[pos].1;
    }
    &mut q[pos - 1].1
}

/// Sum of one window at a clock, with the previous window's revenue for
/// rolling windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowRead {
    pub prev_revenue: Option<f64>,
}

impl KeyState {
    pub fn new(w: &Windows) -> Self {
        KeyState { rings: vec![Ring::default(); w.grans.len()], cal: Vec::new() }
    }

    /// Adds `d` for an event at `e` (calendar periods `pe`) with the clock at
    /// `t` (periods `pt`). The caller has already rejected late events; a
    /// bucket size whose kept range does not reach `e` is skipped.
    pub fn add(&mut self, w: &Windows, e: Micros, pe: &Periods, t: Micros, pt: &Periods, d: &Delta) {
        for (ring, g) in self.rings.iter_mut().zip(&w.grans) {
            let now = t.div_euclid(g.bucket);
            let idx = e.div_euclid(g.bucket);
            ring.compact(now, g.current_buckets, false);
            if idx > now - g.current_buckets {
                insert_sorted(&mut ring.cur, idx, Measures::default).add(d);
            } else if idx > now - 2 * g.current_buckets {
                let r = d.revenue();
                if r != 0.0 {
                    *insert_sorted(&mut ring.prev, idx, || 0.0) += r;
                }
            }
        }
        self.cal.retain(|s| s.period >= pt.get(s.cal));
        for &c in &w.calendars {
            let p = pe.get(c);
            if p < pt.get(c) {
                continue;
            }
            match self.cal.iter_mut().find(|s| s.cal == c && s.period == p) {
                Some(s) => s.m.add(d),
                None => {
                    let mut m = Measures::default();
                    m.add(d);
                    self.cal.push(CalSlot { cal: c, period: p, m });
                }
            }
        }
    }

    /// Frees buckets and periods that no window can see at clock `t`.
    pub fn compact(&mut self, w: &Windows, t: Micros, pt: &Periods) {
        for (ring, g) in self.rings.iter_mut().zip(&w.grans) {
            ring.compact(t.div_euclid(g.bucket), g.current_buckets, true);
        }
        self.cal.retain(|s| s.period >= pt.get(s.cal));
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
                let ring = &self.rings[gran];
                let now = t.div_euclid(bucket);
                let n = len / bucket;
                let mut prev = 0.0;
                for (idx, m) in ring.cur.iter().rev() {
                    if *idx > now {
                        continue;
                    }
                    if *idx > now - n {
                        out.add(m);
                    } else if *idx > now - 2 * n {
                        prev += m.revenue();
                    } else {
                        break;
                    }
                }
                for (idx, r) in ring.prev.iter().rev() {
                    if *idx > now - n {
                        continue;
                    }
                    if *idx > now - 2 * n {
                        prev += r;
                    } else {
                        break;
                    }
                }
                WindowRead { prev_revenue: Some(prev) }
            }
            WindowKind::Calendar(c) => {
                let p = pt.get(c);
                if let Some(s) = self.cal.iter().find(|s| s.cal == c && s.period == p) {
                    out.add(&s.m);
                }
                WindowRead { prev_revenue: None }
            }
        }
    }

    /// Approximate bytes owned, for the state-size gauge and the memory bench.
    pub fn heap_bytes(&self) -> usize {
        let ring_bytes: usize = self
            .rings
            .iter()
            .map(|r| {
                r.cur.capacity() * std::mem::size_of::<(i64, Measures)>()
                    + r.cur.iter().map(|(_, m)| m.heap_bytes()).sum::<usize>()
                    + r.prev.capacity() * std::mem::size_of::<(i64, f64)>()
            })
            .sum();
        let cal_bytes: usize =
            self.cal.capacity() * std::mem::size_of::<CalSlot>() + self.cal.iter().map(|s| s.m.heap_bytes()).sum::<usize>();
        self.rings.capacity() * std::mem::size_of::<Ring>() + ring_bytes + cal_bytes
    }
}

impl Ring {
    /// Moves buckets out of the current range into revenue-only ones and
    /// drops what left the previous range; `shrink` also returns spare
    /// capacity (done in the periodic sweep, not on every write).
    fn compact(&mut self, now: i64, n: i64, shrink: bool) {
        if now == self.compacted_at && !shrink {
            return;
        }
        self.compacted_at = now;
        while let Some((idx, _)) = self.cur.front() {
            if *idx > now - n {
                break;
            }
            let Some((idx, m)) = self.cur.pop_front() else { break };
            let r = m.revenue();
            if r != 0.0 && idx > now - 2 * n {
                *insert_sorted(&mut self.prev, idx, || 0.0) += r;
            }
        }
        while self.prev.front().is_some_and(|(idx, _)| *idx <= now - 2 * n) {
            self.prev.pop_front();
        }
        if shrink && self.cur.capacity() > 2 * self.cur.len() + 16 {
            self.cur.shrink_to_fit();
        }
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
