//! Rolling upgrades: the shard layout of checkpoint format 7, frozen, and
//! its conversion into today's state.
//!
//! Owns: the serde types that read a format-7 snapshot body (bincode) and
//! the translation of its windows, dedup set and joins.
//! Must not touch: the live layout (it only calls the constructors the state
//! modules offer for restoring) or I/O.
//!
//! Format 7 stored every event in every bucket size that kept it (1 minute,
//! 1 hour and 1 day buckets each held it in full), a team's buckets held its
//! reps' events too, and each calendar period (today, week, month, quarter)
//! had its own full accumulator. Today an event is stored once: in its rep
//! (a team keeps only its events without a rep), in the finest bucket size of
//! its roll-up chain, and in its day's calendar accumulator. So each old
//! bucket becomes what it held minus what the finer size (or the reps, or the
//! day accumulators) keeps: counts and sketch bins subtract exactly; sums
//! subtract to the same totals up to rounding in the last bits; a sketch's
//! minimum and maximum stay those of the old bucket, which is always read
//! together with the parts subtracted from it, so quantiles are unchanged.
//!
//! The types here must never change: they are the bytes old releases wrote.
//! The measures of a bucket reuse [`crate::measures::Measures`] (and its
//! `Funnel`, `Activity`, [`crate::sketch::Sketch`]), whose serialized form is
//! frozen for this reason.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::dedup::Dedup;
use crate::engine::{Quotas, Rep, Team};
use crate::event::EventType;
use crate::joins::{Joins, Lead, PackedDeal};
use crate::measures::{Measures, Totals};
use crate::sketch::Sketch;
use crate::state::{periods_of_day, KeyState};
use crate::time::Micros;
use crate::window::{Calendar, Windows};

#[derive(Debug, Clone, Deserialize)]
pub struct ShardV7 {
    teams: Vec<TeamV7>,
    dedup: DedupV7,
    event_clock: Option<Micros>,
    next_compact: Micros,
    next_join_sweep: Micros,
}

#[derive(Debug, Clone, Deserialize)]
struct TeamV7 {
    id: Box<str>,
    state: KeyStateV7,
    events: [u64; EventType::COUNT],
    reps: Vec<RepV7>,
    joins: JoinsV7,
    quotas: Quotas,
}

#[derive(Debug, Clone, Deserialize)]
struct RepV7 {
    id: Box<str>,
    state: KeyStateV7,
    events: [u64; EventType::COUNT],
    quotas: Quotas,
}

#[derive(Debug, Clone, Deserialize)]
struct KeyStateV7 {
    rings: Vec<RingV7>,
    cal: Vec<CalSlotV7>,
}

#[derive(Debug, Clone, Deserialize)]
struct RingV7 {
    compacted_at: i64,
    cur: Vec<(i64, Measures)>,
    prev: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, Deserialize)]
struct CalSlotV7 {
    cal: Calendar,
    period: i64,
    m: Measures,
}

#[derive(Debug, Clone, Deserialize)]
struct DedupV7 {
    /// A hash map in format 7: the same bytes as a list of entries.
    seen: Vec<([u32; 3], i32)>,
    base: i64,
    next_sweep: Micros,
}

#[derive(Debug, Clone, Deserialize)]
struct JoinsV7 {
    leads: Vec<(u64, Lead)>,
    deals: Vec<(u64, PackedDeal)>,
}

/// The parts of a shard restored from format 7.
pub struct ShardParts {
    pub teams: Vec<Team>,
    pub dedup: Dedup,
    pub event_clock: Option<Micros>,
    pub next_compact: Micros,
    pub next_join_sweep: Micros,
}

/// A key's windows as totals: per bucket size (clock bucket at the last
/// compaction, buckets, previous-window revenue), and calendar accumulators.
#[derive(Debug, Clone, Default)]
struct Buckets {
    rings: Vec<(i64, BTreeMap<i64, Totals>, BTreeMap<i64, f64>)>,
    cal: BTreeMap<(u8, i64), (Calendar, Totals)>,
}

fn totals(m: &Measures) -> Totals {
    let mut t = Totals::default();
    t.add(m);
    t
}

/// `a - b`, field by field; sketch bins subtract (never below 0), and the
/// minimum and maximum of `a` stay.
fn subtract(a: &mut Totals, b: &Totals) {
    let (x, y) = (&mut a.act, &b.act);
    x.outbound = x.outbound.saturating_sub(y.outbound);
    x.inbound = x.inbound.saturating_sub(y.inbound);
    x.outbound_calls = x.outbound_calls.saturating_sub(y.outbound_calls);
    x.connects = x.connects.saturating_sub(y.connects);
    x.meaningful = x.meaningful.saturating_sub(y.meaningful);
    x.active = x.active.saturating_sub(y.active);
    let mut bf = b.f.clone();
    for (p, q) in a.f.count_fields().into_iter().zip(bf.count_fields()) {
        *p = p.saturating_sub(*q);
    }
    for (p, q) in a.f.sum_fields().into_iter().zip(bf.sum_fields()) {
        *p -= *q;
    }
    let sub = |s: &Sketch, o: &Sketch| {
        let (bins, min, max) = s.parts();
        let (other, _, _) = o.parts();
        let left: Vec<(i16, u32)> = bins
            .iter()
            .map(|&(bin, n)| (bin, n.saturating_sub(other.iter().find(|&&(ob, _)| ob == bin).map_or(0, |&(_, m)| m))))
            .filter(|&(_, n)| n > 0)
            .collect();
        Sketch::from_parts(left, min, max)
    };
    a.f.response = sub(&a.f.response, &b.f.response);
    a.f.cycle = sub(&a.f.cycle, &b.f.cycle);
}

fn cal_key(c: Calendar, period: i64) -> (u8, i64) {
    (c.index() as u8, period)
}

impl KeyStateV7 {
    fn buckets(&self) -> Buckets {
        Buckets {
            rings: self
                .rings
                .iter()
                .map(|r| (r.compacted_at, r.cur.iter().map(|(i, m)| (*i, totals(m))).collect(), r.prev.iter().copied().collect()))
                .collect(),
            cal: self.cal.iter().map(|s| (cal_key(s.cal, s.period), (s.cal, totals(&s.m)))).collect(),
        }
    }
}

impl Buckets {
    /// Removes what `other` (a rep of this team) holds from each bucket.
    fn subtract_key(&mut self, other: &Buckets) {
        for ((_, cur, prev), (_, ocur, oprev)) in self.rings.iter_mut().zip(&other.rings) {
            for (idx, t) in cur.iter_mut() {
                if let Some(o) = ocur.get(idx) {
                    subtract(t, o);
                }
            }
            // A rep compacted less recently may still hold in full what the
            // team keeps as revenue only.
            for (idx, r) in prev.iter_mut() {
                *r -= oprev.get(idx).copied().unwrap_or(0.0) + ocur.get(idx).map_or(0.0, |t| t.f.revenue);
            }
        }
        for (k, (_, t)) in self.cal.iter_mut() {
            if let Some((_, o)) = other.cal.get(k) {
                subtract(t, o);
            }
        }
    }

    /// Lays the buckets out as today's state: each bucket keeps what its
    /// finer size in the roll-up chain does not, each week, month and
    /// quarter accumulator what its day accumulators do not.
    fn into_state(mut self, w: &Windows) -> KeyState {
        for chain in &w.chains {
            for pair in chain.windows(2).rev() {
                let (fine, coarse) = (pair[0], pair[1]);
                let (fb, cb) = (w.grans[fine].bucket, w.grans[coarse].bucket);
                let parts: Vec<(i64, Totals)> = self.rings[fine].1.iter().map(|(i, t)| ((i * fb).div_euclid(cb), t.clone())).collect();
                for (ci, t) in parts {
                    if let Some(c) = self.rings[coarse].1.get_mut(&ci) {
                        subtract(c, &t);
                    }
                }
            }
        }
        let days: Vec<(i64, Totals)> =
            self.cal.iter().filter(|(_, (c, _))| *c == Calendar::Today).map(|(k, (_, t))| (k.1, t.clone())).collect();
        for (k, (c, t)) in self.cal.iter_mut() {
            if *c == Calendar::Today {
                continue;
            }
            for (day, d) in &days {
                if periods_of_day(*day).get(*c) == k.1 {
                    subtract(t, d);
                }
            }
        }
        let rings = self.rings.into_iter().map(|(at, cur, prev)| (at, cur.into_iter().collect(), prev.into_iter().collect())).collect();
        let cal = self.cal.into_iter().map(|((_, p), (c, t))| (c, p, t)).collect();
        KeyState::from_totals(rings, cal)
    }
}

impl ShardV7 {
    /// Today's shard parts for this snapshot, with the deployment's windows.
    pub fn into_parts(self, w: &Windows) -> ShardParts {
        let teams = self
            .teams
            .into_iter()
            .map(|t| {
                let mut own = t.state.buckets();
                let reps: Vec<(RepV7, Buckets)> = t.reps.into_iter().map(|r| (r.state.buckets(), r)).map(|(b, r)| (r, b)).collect();
                for (_, b) in &reps {
                    own.subtract_key(b);
                }
                let reps = reps
                    .into_iter()
                    .map(|(r, b)| Rep { id: r.id, state: b.into_state(w), events: r.events, quotas: r.quotas })
                    .collect();
                Team::restore(t.id, own.into_state(w), t.events, reps, Joins::from_v7(t.joins.leads, t.joins.deals), t.quotas)
            })
            .collect();
        let seen = self.dedup.seen.into_iter().map(|(f, off)| (u64::from(f[0]) | u64::from(f[1]) << 32, off)).collect();
        ShardParts {
            teams,
            dedup: Dedup::from_parts(seen, self.dedup.base, self.dedup.next_sweep),
            event_clock: self.event_clock,
            next_compact: self.next_compact,
            next_join_sweep: self.next_join_sweep,
        }
    }
}
