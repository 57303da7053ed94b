//! The fold: one event at a time into the state of one shard (one Kafka
//! partition, or everything in `replay`).
//!
//! Owns: the order of the pipeline of `events.md` (parse and validate →
//! `future` → `cardinality` → duplicate → `late` → apply), the clock, the
//! mapping of an event to the [`Delta`] it adds to its rep and team, teams and
//! reps (interned ids), quotas, and periodic compaction.
//! Must not touch: I/O, threads, async. `replay` and `run` both call
//! [`Shard::ingest`]; `run` keeps one shard per assigned partition so a
//! partition's state can be checkpointed and moved on its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::config::CoreConfig;
use crate::dedup::{fingerprint, Dedup};
use crate::event::{
    parse_event, ChurnReason, Direction, Event, EventType, Invalid, InvalidReason, MeetingStatus, Outcome as Touch, Payload,
    QuotaPeriod, RescheduledBy, SpendCategory, Stage, WonKind,
};
use crate::follow::{Due, Observation};
use crate::joins::{lead_key, Joins, Retention};
use crate::measures::Delta;
use crate::products::Products;
use crate::state::KeyState;
use crate::time::{Micros, MICROS_PER_DAY, MICROS_PER_HOUR};
use crate::window::{local_midnight, periods_in, Periods, Windows};

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    Late,
    Invalid(Invalid),
}

impl Outcome {
    /// The `result` label value.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Late => "late",
            Outcome::Invalid(_) => "invalid",
        }
    }
}

/// Which clock windows end at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock passed to each call.
    Wall,
    /// The largest applied `occurred_at` of the shard.
    Event,
    /// A fixed instant (`replay --now`): also the wall clock for `future`.
    Fixed(Micros),
}

/// Rep and team counts shared by all shards of a process, for the
/// cardinality limits.
#[derive(Debug, Default)]
pub struct Cardinality {
    pub reps: AtomicUsize,
    pub teams: AtomicUsize,
}

/// What every shard of a process shares: configuration, clock mode, counts.
#[derive(Debug)]
pub struct Core {
    pub cfg: CoreConfig,
    pub clock: Clock,
    pub card: Cardinality,
}

impl Core {
    pub fn new(cfg: CoreConfig, clock: Clock) -> Self {
        Core { cfg, clock, card: Cardinality::default() }
    }
    pub fn retention(&self) -> Retention {
        Retention { joins: self.cfg.join_horizon, deal_ttl: self.cfg.deal_ttl, persistence: self.cfg.persistence }
    }
}

/// Counts of outcomes, for summaries and self-metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub applied: u64,
    pub duplicate: u64,
    pub late: u64,
    pub invalid: [u64; 8],
}

impl Stats {
    pub fn count(&mut self, o: &Outcome) {
        match o {
            Outcome::Applied => self.applied += 1,
            Outcome::Duplicate => self.duplicate += 1,
            Outcome::Late => self.late += 1,
            Outcome::Invalid(i) => self.invalid[i.reason.index()] += 1,
        }
    }
    pub fn invalid_total(&self) -> u64 {
        self.invalid.iter().sum()
    }
    pub fn total(&self) -> u64 {
        self.applied + self.duplicate + self.late + self.invalid_total()
    }
}

/// Where a shard's memory goes (bytes, as [`Shard::heap_bytes`] counts them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeapBreakdown {
    /// The reps' windows: ring and calendar indexes.
    pub rep_index: usize,
    /// The reps' windows: their arenas (records, garbage, spare capacity).
    pub rep_arena: usize,
    /// Live record bytes of the reps by bucket size (configuration order),
    /// then calendar accumulators (part of `rep_arena`).
    pub rep_records: Vec<usize>,
    /// The teams' own windows (events without a rep).
    pub team_windows: usize,
    pub leads: usize,
    pub deals: usize,
    pub dedup: usize,
    /// Team and rep structs, ids, indexes.
    pub keys: usize,
}

impl HeapBreakdown {
    pub fn total(&self) -> usize {
        self.rep_index + self.rep_arena + self.team_windows + self.leads + self.deals + self.dedup + self.keys
    }
}

/// Quotas of one rep or team: `(period, first day, amount)`, last set wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quotas(Vec<(QuotaPeriod, i64, f64)>);


impl Quotas {
    fn set(&mut self, p: QuotaPeriod, day: i64, amount: f64) {
        match self.0.iter_mut().find(|q| q.0 == p && q.1 == day) {
            Some(q) => q.2 = amount,
            None => self.0.push((p, day, amount)),
        }
    }
    pub fn get(&self, p: QuotaPeriod, day: i64) -> Option<f64> {
        self.0.iter().find(|q| q.0 == p && q.1 == day).map(|q| q.2)
    }
    fn prune(&mut self, before_day: i64) {
        self.0.retain(|q| q.1 >= before_day);
    }
}

/// First day (day number) of the month and of the quarter of periods `p`.
pub fn quota_days(p: &Periods) -> [(QuotaPeriod, i64); 2] {
    let first = |month: i64| crate::time::days_from_civil(month.div_euclid(12), (month.rem_euclid(12) + 1) as u32, 1);
    [(QuotaPeriod::Month, first(p.month)), (QuotaPeriod::Quarter, first(p.quarter * 3))]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rep {
    pub id: Box<str>,
    pub state: KeyState,
    /// Applied events by type (`sales_events_total`).
    pub events: [u64; EventType::COUNT],
    pub quotas: Quotas,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Team {
    pub id: Box<str>,
    /// The windows of the team's events without a rep (spend, churn, ...):
    /// the team's own windows are these plus the sum of its reps' (summed at
    /// render time), so an event updates one key, not two.
    pub state: KeyState,
    /// Applied events without a rep, by type.
    pub events: [u64; EventType::COUNT],
    pub reps: Vec<Rep>,
    #[serde(skip)]
    rep_index: HashMap<Box<str>, u32>,
    pub joins: Joins,
    /// The team's own quotas.
    pub quotas: Quotas,
    /// Product lines and their windows (v1.1, team level only).
    pub products: Products,
}

impl Team {
    /// A team restored from an earlier snapshot format (no product lines).
    pub(crate) fn restore(id: Box<str>, state: KeyState, events: [u64; EventType::COUNT], reps: Vec<Rep>, joins: Joins, quotas: Quotas) -> Team {
        Team { id, state, events, reps, rep_index: HashMap::new(), joins, quotas, products: Products::default() }
    }

    fn new(id: &str, w: &Windows) -> Team {
        Team::restore(id.into(), KeyState::new(w), [0; EventType::COUNT], Vec::new(), Joins::default(), Quotas::default())
    }

    /// The windows an observation for rep `rep` (index) goes to: the rep's,
    /// else the team's own.
    fn state_of(&mut self, rep: Option<u32>) -> &mut KeyState {
        match rep.and_then(|r| self.reps.get_mut(r as usize)) {
            Some(r) => &mut r.state,
            None => &mut self.state,
        }
    }
}

/// What an event does besides its own delta: follow-up observations that
/// belong to other times or reps, a lead to queue for its observation, and
/// the team's product-line windows.
#[derive(Debug, Default)]
struct Effects {
    obs: [Option<Observation>; 3],
    due: Option<(Micros, u64)>,
    product: Option<(usize, Delta)>,
}

impl Effects {
    fn observe(&mut self, o: Option<Observation>) {
        if let (Some(o), Some(slot)) = (o, self.obs.iter_mut().find(|s| s.is_none())) {
            *slot = Some(o);
        }
    }
}

/// The delta of a follow-up observation.
fn follow_delta(o: &Observation) -> Delta {
    let mut d = Delta::default();
    let f = d.funnel();
    f.followed_leads = o.add.followed;
    f.followed_touches = o.add.touches;
    f.followed_ge1 = o.add.ge1;
    f.followed_ge2 = o.add.ge2;
    f.sql_conversions = o.add.sql_conversions;
    f.sql_touches = o.add.sql_touches;
    d
}

/// Caches the calendar periods of the two local days looked up last (the
/// event's and the clock's, usually the same) and the late horizon, whose
/// computation needs time-zone conversions.
#[derive(Debug, Clone, Default)]
struct TimeCache {
    /// `(from, to, periods)`: periods of every instant in `[from, to)`.
    days: [Option<(Micros, Micros, Periods)>; 2],
    next: usize,
    /// `(from, until, kept_from)`.
    kept: Option<(Micros, Micros, Micros)>,
}

impl TimeCache {
    fn periods(&mut self, w: &Windows, e: Micros) -> Periods {
        for (from, to, p) in self.days.iter().flatten() {
            if e >= *from && e < *to {
                return *p;
            }
        }
        let p = periods_in(w.tz, e);
        self.days[self.next] = Some((local_midnight(w.tz, p.day), local_midnight(w.tz, p.day + 1), p));
        self.next = 1 - self.next;
        p
    }

    fn kept_from(&mut self, w: &Windows, t: Micros) -> Micros {
        if let Some((from, until, v)) = self.kept {
            if t >= from && t < until {
                return v;
            }
        }
        let (v, until) = w.kept_from_until(t);
        self.kept = Some((t, until, v));
        v
    }
}

/// Clock time between two sweeps from [`Shard::ingest`]. A key that is
/// written expires its own buckets then (so its memory does not depend on
/// the sweep); the sweep is for keys that went quiet, whose buckets only
/// wait to be merged into coarser ones. Every hour, touching every key cost
/// a tenth of the fold on the realistic profile.
pub const SWEEP_EVERY: Micros = 6 * MICROS_PER_HOUR;

/// The state of one shard.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shard {
    pub teams: Vec<Team>,
    #[serde(skip)]
    team_index: HashMap<Box<str>, u32>,
    dedup: Dedup,
    /// Largest applied `occurred_at`.
    pub event_clock: Option<Micros>,
    next_compact: Micros,
    next_join_sweep: Micros,
    /// Clock of the next daily tidy (not saved: a restored shard tidies at
    /// its first sweep).
    #[serde(skip)]
    next_tidy: Micros,
    #[serde(skip)]
    pub stats: Stats,
    #[serde(skip)]
    cache: TimeCache,
    /// Leads waiting for their follow-up observation (rebuilt from the
    /// leads on restore).
    #[serde(skip)]
    due: Due,
    /// A snapshot of checkpoint format 7, converted by [`Shard::restored`]
    /// (which knows the windows the conversion needs).
    #[serde(skip)]
    v7: Option<Box<crate::legacy::ShardV7>>,
}

impl Shard {
    pub fn new() -> Self {
        Self::default()
    }

    /// A shard holding a format-7 snapshot until [`Shard::restored`].
    pub fn from_v7(v7: crate::legacy::ShardV7) -> Self {
        Shard { v7: Some(Box::new(v7)), ..Shard::default() }
    }

    /// A shard of a format-8 snapshot (no v1.1 state).
    pub fn from_v8(v8: crate::legacy::ShardV8) -> Self {
        let p = v8.into_parts();
        Shard {
            teams: p.teams,
            dedup: p.dedup,
            event_clock: p.event_clock,
            next_compact: p.next_compact,
            next_join_sweep: p.next_join_sweep,
            ..Shard::default()
        }
    }

    /// Rebuilds lookup indexes after deserialization and re-registers the
    /// shard's reps and teams with the process-wide cardinality counts.
    pub fn restored(mut self, core: &Core) -> Self {
        if let Some(v7) = self.v7.take() {
            let p = v7.into_parts(&core.cfg.windows);
            self.teams = p.teams;
            self.dedup = p.dedup;
            self.event_clock = p.event_clock;
            self.next_compact = p.next_compact;
            self.next_join_sweep = p.next_join_sweep;
        }
        self.team_index = self.teams.iter().enumerate().map(|(i, t)| (t.id.clone(), i as u32)).collect();
        let r = core.retention();
        self.due = Due::default();
        for (ti, t) in self.teams.iter().enumerate() {
            for (key, at) in t.joins.unobserved(r) {
                self.due.push(at, ti as u32, key);
            }
        }
        for t in &mut self.teams {
            t.rep_index = t.reps.iter().enumerate().map(|(i, r)| (r.id.clone(), i as u32)).collect();
            t.state.fit_windows(&core.cfg.windows);
            for r in &mut t.reps {
                r.state.fit_windows(&core.cfg.windows);
            }
            for p in t.products.states_mut() {
                p.fit_windows(&core.cfg.windows);
            }
        }
        self.register(core);
        self
    }

    /// Checks a shard read back from a snapshot (see [`KeyState::check`]).
    pub fn check(&self) -> Result<(), String> {
        for t in &self.teams {
            t.state.check().map_err(|e| format!("team {}: {e}", t.id))?;
            for r in &t.reps {
                r.state.check().map_err(|e| format!("team {} rep {}: {e}", t.id, r.id))?;
            }
            t.products.check().map_err(|e| format!("team {}: {e}", t.id))?;
        }
        Ok(())
    }

    fn register(&self, core: &Core) {
        core.card.teams.fetch_add(self.teams.len(), Ordering::Relaxed);
        core.card.reps.fetch_add(self.rep_count(), Ordering::Relaxed);
    }

    /// Gives this shard's reps and teams back to the cardinality budget (the
    /// partition moved away).
    pub fn release(&self, core: &Core) {
        core.card.teams.fetch_sub(self.teams.len(), Ordering::Relaxed);
        core.card.reps.fetch_sub(self.rep_count(), Ordering::Relaxed);
    }

    pub fn rep_count(&self) -> usize {
        self.teams.iter().map(|t| t.reps.len()).sum()
    }

    /// The clock windows end at for this shard, given the wall clock.
    pub fn clock(&self, core: &Core, wall: Micros) -> Option<Micros> {
        match core.clock {
            Clock::Wall => Some(wall),
            Clock::Fixed(t) => Some(t),
            Clock::Event => self.event_clock,
        }
    }

    /// Folds one message. `wall` is the wall clock (ignored with a fixed clock).
    pub fn ingest(&mut self, core: &Core, bytes: &[u8], wall: Micros) -> Outcome {
        let outcome = match parse_event(bytes, &core.cfg.rules) {
            Ok(ev) => self.apply_event(core, &ev, wall),
            Err(inv) => Outcome::Invalid(inv),
        };
        self.stats.count(&outcome);
        outcome
    }

    /// Steps 2–6 of the pipeline for a parsed, valid event.
    pub fn apply_event(&mut self, core: &Core, ev: &Event<'_>, wall: Micros) -> Outcome {
        let cfg = &core.cfg;
        let wall = if let Clock::Fixed(t) = core.clock { t } else { wall };
        let e = ev.occurred_at;
        if e > wall.saturating_add(cfg.future_tolerance) {
            return Outcome::Invalid(Invalid::bare(InvalidReason::Future));
        }

        // Cardinality: would this create a team or rep beyond the limits?
        let team_idx = self.team_index.get(&*ev.team).copied();
        let rep_known = match (team_idx, &ev.rep) {
            (Some(ti), Some(r)) => self.teams[ti as usize].rep_index.contains_key(&**r),
            (_, None) => true,
            (None, Some(_)) => false,
        };
        if team_idx.is_none() && core.card.teams.load(Ordering::Relaxed) >= cfg.max_teams {
            return Outcome::Invalid(Invalid::bare(InvalidReason::Cardinality));
        }
        if !rep_known
            && (core.card.reps.load(Ordering::Relaxed) >= cfg.max_reps
                || team_idx.is_some_and(|ti| self.teams[ti as usize].reps.len() >= cfg.max_reps_per_team))
        {
            return Outcome::Invalid(Invalid::bare(InvalidReason::Cardinality));
        }

        let t = match core.clock {
            Clock::Wall => wall,
            Clock::Fixed(t) => t,
            Clock::Event => self.event_clock.map_or(e, |c| c.max(e)),
        };
        let fp = fingerprint(&ev.event_id);
        if self.dedup.is_duplicate(fp, t, cfg.dedup_horizon) {
            return Outcome::Duplicate;
        }
        if e < self.cache.kept_from(&cfg.windows, t) {
            return Outcome::Late;
        }

        // Apply.
        let ti = match team_idx {
            Some(i) => i as usize,
            None => {
                core.card.teams.fetch_add(1, Ordering::Relaxed);
                self.teams.push(Team::new(&ev.team, &cfg.windows));
                self.team_index.insert(ev.team.as_ref().into(), (self.teams.len() - 1) as u32);
                self.teams.len() - 1
            }
        };
        let team = &mut self.teams[ti];
        let ri = ev.rep.as_ref().map(|r| match team.rep_index.get(&**r) {
            Some(&i) => i as usize,
            None => {
                core.card.reps.fetch_add(1, Ordering::Relaxed);
                team.reps.push(Rep {
                    id: r.as_ref().into(),
                    state: KeyState::new(&cfg.windows),
                    events: [0; EventType::COUNT],
                    quotas: Quotas::default(),
                });
                team.rep_index.insert(r.as_ref().into(), (team.reps.len() - 1) as u32);
                team.reps.len() - 1
            }
        });

        let mut fx = Effects::default();
        let delta = delta_of(ev, ri, team, t, core.retention(), cfg.max_product_lines_per_team, &mut fx);
        let pt = self.cache.periods(&cfg.windows, t);
        if let Some((slot, d)) = &fx.product {
            let pe = self.cache.periods(&cfg.windows, e);
            team.products.add(&cfg.windows, *slot, e, &pe, t, &pt, d);
        }
        if fx.obs.iter().any(Option::is_some) {
            let kept = self.cache.kept_from(&cfg.windows, t);
            for o in fx.obs.iter().flatten().filter(|o| o.at >= kept) {
                let po = self.cache.periods(&cfg.windows, o.at);
                team.state_of(o.rep).add(&cfg.windows, o.at, &po, t, &pt, &follow_delta(o));
            }
        }
        if let Some((at, key)) = fx.due {
            self.due.push(at, ti as u32, key);
        }
        if let Some(d) = delta {
            let pe = self.cache.periods(&cfg.windows, e);
            // A team's windows are its reps' plus its own state, which holds
            // only the events without a rep (see `Team::state`).
            let state = match ri {
                Some(ri) => &mut team.reps[ri].state,
                None => &mut team.state,
            };
            state.add(&cfg.windows, e, &pe, t, &pt, &d);
        }
        match ri {
            Some(ri) => team.reps[ri].events[ev.ty.index()] += 1,
            None => team.events[ev.ty.index()] += 1,
        }
        self.dedup.record(fp, t, cfg.dedup_horizon);
        if core.clock == Clock::Event {
            self.event_clock = Some(t);
        } else {
            self.event_clock = Some(self.event_clock.map_or(e, |c| c.max(e)));
        }
        if self.due.any_due(t) {
            self.observe_due(core, t);
        }
        if t >= self.next_compact {
            self.maintain(core, t);
        }
        Outcome::Applied
    }

    /// Makes the follow-up observation of every lead whose `L + H` the clock
    /// `t` has reached (at `L + H`, for its `lead.created`'s rep and team).
    pub fn observe_due(&mut self, core: &Core, t: Micros) {
        let w = &core.cfg.windows;
        let r = core.retention();
        let mut due = Vec::new();
        let teams = &self.teams;
        self.due.pop_due(t, |ti, key| teams.get(ti as usize)?.joins.due_of(key, r), &mut due);
        let kept = self.cache.kept_from(w, t);
        let pt = self.cache.periods(w, t);
        for (at, ti, key) in due {
            let Some(team) = self.teams.get_mut(ti as usize) else { continue };
            let Some(o) = team.joins.observe(key, at, r) else { continue };
            if o.at >= kept {
                let po = self.cache.periods(w, o.at);
                team.state_of(o.rep).add(w, o.at, &po, t, &pt, &follow_delta(&o));
            }
        }
    }

    /// Frees state no window, join or quota can use at clock `t`. Runs every
    /// [`SWEEP_EVERY`] of clock time from [`Shard::ingest`]; `run` also calls
    /// it when idle.
    /// Once a day of clock time it also returns spare memory of every key
    /// ([`KeyState::tidy`], which copies the key's records: hourly it cost a
    /// sixth of the fold on the realistic profile).
    pub fn maintain(&mut self, core: &Core, t: Micros) {
        if self.due.any_due(t) {
            self.observe_due(core, t);
        }
        let tidy = t >= self.next_tidy;
        self.sweep(core, t, tidy);
    }

    /// [`Shard::maintain`] with the memory returned now, whatever the time
    /// of the last daily tidy (for measurements of state size).
    pub fn maintain_and_tidy(&mut self, core: &Core, t: Micros) {
        if self.due.any_due(t) {
            self.observe_due(core, t);
        }
        self.sweep(core, t, true);
    }

    fn sweep(&mut self, core: &Core, t: Micros, tidy: bool) {
        if tidy {
            self.due.shrink(t, core.retention().persistence);
        }
        let w = &core.cfg.windows;
        let pt = periods_in(w.tz, t);
        let keep_quota_from = quota_days(&pt)[1].1;
        let sweep_joins = t >= self.next_join_sweep;
        for team in &mut self.teams {
            team.state.expire(w, t, &pt);
            team.quotas.prune(keep_quota_from);
            for p in team.products.states_mut() {
                p.compact(w, t, &pt);
            }
            for rep in &mut team.reps {
                rep.state.expire(w, t, &pt);
                rep.quotas.prune(keep_quota_from);
                if tidy {
                    rep.state.tidy();
                }
            }
            if tidy {
                team.state.tidy();
            }
            if sweep_joins {
                team.joins.sweep(t, core.retention());
            }
        }
        if sweep_joins {
            self.next_join_sweep = t + MICROS_PER_DAY;
        }
        if tidy {
            self.next_tidy = t + MICROS_PER_DAY;
        }
        self.next_compact = t + SWEEP_EVERY;
    }

    /// Approximate bytes of state, for `salespulse_state_bytes` and benches.
    pub fn heap_bytes(&self) -> usize {
        let teams: usize = self
            .teams
            .iter()
            .map(|t| {
                std::mem::size_of::<Team>()
                    + t.state.heap_bytes()
                    + t.joins.heap_bytes()
                    + t.products.heap_bytes()
                    + t.reps.capacity() * std::mem::size_of::<Rep>()
                    + t.reps.iter().map(|r| r.state.heap_bytes() + r.id.len()).sum::<usize>()
                    + t.rep_index.capacity() * 24
            })
            .sum();
        teams + self.dedup.heap_bytes() + self.team_index.capacity() * 24 + self.due.heap_bytes()
    }

    /// [`Shard::heap_bytes`] by component, for the memory bench.
    pub fn heap_breakdown(&self) -> HeapBreakdown {
        let mut b = HeapBreakdown { dedup: self.dedup.heap_bytes(), keys: self.team_index.capacity() * 24, ..HeapBreakdown::default() };
        b.leads += self.due.heap_bytes();
        for t in &self.teams {
            let (leads, deals) = t.joins.heap_parts();
            b.leads += leads;
            b.deals += deals;
            b.team_windows += t.state.heap_bytes() + t.products.heap_bytes();
            b.keys += std::mem::size_of::<Team>()
                + t.reps.capacity() * std::mem::size_of::<Rep>()
                + t.rep_index.capacity() * 24
                + t.id.len()
                + t.reps.iter().map(|r| r.id.len()).sum::<usize>();
            for r in &t.reps {
                let (index, arena) = r.state.heap_parts();
                b.rep_index += index;
                b.rep_arena += arena;
                let rec = r.state.record_bytes();
                if b.rep_records.len() < rec.len() {
                    b.rep_records.resize(rec.len(), 0);
                }
                b.rep_records.iter_mut().zip(rec).for_each(|(x, y)| *x += y);
            }
        }
        b
    }

    pub fn team(&self, id: &str) -> Option<&Team> {
        self.team_index.get(id).map(|&i| &self.teams[i as usize])
    }
}

/// What `ev` adds to its rep's and team's windows (`None`: nothing windowed,
/// e.g. `quota.set`), updating joins and quotas on the way.
fn delta_of(ev: &Event<'_>, rep: Option<usize>, team: &mut Team, t: Micros, r: Retention, max_products: usize, fx: &mut Effects) -> Option<Delta> {
    let e = ev.occurred_at;
    let mut d = Delta::default();
    d.act.active = u32::from(rep.is_some());
    let rep32 = rep.map(|r| r as u32);
    match &ev.payload {
        Payload::LeadCreated { lead, .. } => {
            if team.joins.lead_created(lead, e, t, r, rep32) {
                d.funnel().leads_created = 1;
                fx.due = Some((e.saturating_add(r.persistence), lead_key(lead)));
            }
        }
        Payload::LeadQualified { stage, lead } => match stage {
            Stage::Mql => d.funnel().mqls = 1,
            Stage::Sql => {
                d.funnel().sqls = 1;
                let (conversion, persist) = team.joins.sql(lead, e, t, r, rep32);
                if let Some(n) = conversion {
                    d.funnel().sql_conversions = 1;
                    d.funnel().sql_touches = n;
                }
                fx.observe(persist);
            }
        },
        Payload::Touch { call, lead, direction, outcome } => match direction {
            Direction::Inbound => d.act.inbound = 1,
            Direction::Outbound => {
                d.act.outbound = 1;
                if *call {
                    d.act.outbound_calls = 1;
                    d.act.connects = u32::from(matches!(outcome, Touch::Connected | Touch::Meaningful));
                }
                d.act.meaningful = u32::from(*outcome == Touch::Meaningful);
                let (response, obs) = lead.as_ref().map_or((None, [None, None]), |l| team.joins.outbound_activity(l, e, t, r));
                for o in obs {
                    fx.observe(o);
                }
                if let Some(secs) = response {
                    let f = d.funnel();
                    f.lead_responses = 1;
                    f.lead_responses_within_1h = u32::from(secs <= 3600.0);
                    f.response_seconds = secs;
                    f.response_obs = Some((secs, crate::sketch::bin_of(secs)));
                }
            }
        },
        Payload::MeetingBooked => d.funnel().meetings_booked = 1,
        Payload::MeetingCompleted { status, rescheduled_by } => {
            let f = d.funnel();
            match status {
                MeetingStatus::Held => f.meetings_held = 1,
                MeetingStatus::NoShow => f.meetings_no_show = 1,
                MeetingStatus::Rescheduled => {
                    f.meetings_rescheduled_by_rep = u32::from(*rescheduled_by == Some(RescheduledBy::Rep));
                }
                MeetingStatus::Canceled => {}
            }
        }
        Payload::DealCreated { deal, lead, amount, product } => {
            // deal.created always has a rep (validated).
            let owner = rep.unwrap_or_default() as u32;
            let slot = team.products.slot(product.as_deref(), max_products);
            let named = if product.is_some() { slot as u16 + 1 } else { 0 };
            if team.joins.deal_created_in(deal, lead.as_deref(), *amount, owner, named, e, t, r).counts() {
                let f = d.funnel();
                f.deals_created = 1;
                f.pipeline_added = *amount;
                let mut p = Delta::default();
                p.funnel().deals_created = 1;
                p.funnel().pipeline_added = *amount;
                fx.product = Some((slot, p));
            }
        }
        Payload::QuoteSent { product } => {
            // Takes its slot (the order of applied events), counts in no product family.
            team.products.slot(product.as_deref(), max_products);
            d.funnel().quotes_sent = 1
        }
        Payload::DealWon { deal, lead, amount, kind, margin, product } => {
            let slot = deal_slot(team, deal, product.as_deref(), t, r, max_products);
            let mut p = Delta::default();
            p.funnel().deals_won = 1;
            p.funnel().revenue = *amount;
            fx.product = Some((slot, p));
            let cycle = team.joins.deal_won(deal, lead.as_deref(), e, t, r);
            let f = d.funnel();
            f.deals_won = 1;
            f.revenue = *amount;
            match kind {
                WonKind::New => f.new_customers = 1,
                WonKind::Upsell | WonKind::CrossSell => f.upsell_deals = 1,
                WonKind::Renewal => {}
            }
            if let Some(m) = margin {
                f.margin = *m;
                f.margin_base = *amount;
            }
            if let Some(secs) = cycle {
                f.cycles = 1;
                f.cycle_seconds = secs;
                f.cycle_obs = Some((secs, crate::sketch::bin_of(secs)));
            }
        }
        Payload::DealLost { deal, product } => {
            let slot = deal_slot(team, deal, product.as_deref(), t, r, max_products);
            let mut p = Delta::default();
            p.funnel().deals_lost = 1;
            fx.product = Some((slot, p));
            team.joins.deal_lost(deal, e, t, r);
            d.funnel().deals_lost = 1;
        }
        Payload::Nps { score } => {
            let f = d.funnel();
            f.nps_responses = 1;
            f.nps_promoters = u32::from(*score >= 9);
            f.nps_detractors = u32::from(*score <= 6);
        }
        Payload::Churned { reason, mrr } => {
            let f = d.funnel();
            match reason {
                ChurnReason::Voluntary => f.churned_voluntary = 1,
                ChurnReason::Involuntary => f.churned_involuntary = 1,
            }
            f.churned_mrr = mrr.unwrap_or(0.0);
        }
        Payload::Spend { amount, category } => {
            let f = d.funnel();
            match category {
                SpendCategory::Marketing => f.spend_marketing = *amount,
                SpendCategory::Sales => f.spend_sales = *amount,
            }
        }
        Payload::Quota { period, period_start_day, amount } => {
            match rep {
                Some(ri) => team.reps[ri].quotas.set(*period, *period_start_day, *amount),
                None => team.quotas.set(*period, *period_start_day, *amount),
            }
            return None;
        }
    }
    Some(d)
}

/// The product-line slot of a won or lost deal: the event's product line,
/// else the one the deal's `deal.created` named, else `none`.
fn deal_slot(team: &mut Team, deal: &str, product: Option<&str>, t: Micros, r: Retention, max: usize) -> usize {
    match product {
        Some(_) => team.products.slot(product, max),
        None => match team.joins.deal_product(deal, t, r) {
            0 => crate::products::NONE,
            named => usize::from(named - 1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn core(clock: Clock) -> Core {
        Core::new(CoreConfig::default(), clock)
    }

    fn line(id: &str, ty: &str, at: &str, extra: &str) -> String {
        format!(r#"{{"event_id":"{id}","type":"{ty}","occurred_at":"{at}","team_id":"t1","rep_id":"r1"{extra}}}"#)
    }

    const NOW: &str = "2026-11-15T08:00:00Z";

    fn wall() -> Micros {
        parse_rfc3339(NOW).unwrap()
    }

    #[test]
    fn pipeline_order_and_counts() {
        let c = core(Clock::Event);
        let mut s = Shard::new();
        let call = line("a", "call.logged", "2026-11-15T07:00:00Z", r#","outcome":"meaningful""#);
        assert_eq!(s.ingest(&c, call.as_bytes(), wall()), Outcome::Applied);
        assert_eq!(s.ingest(&c, call.as_bytes(), wall()), Outcome::Duplicate);
        // future: more than 5 minutes after the wall clock
        let fut = line("b", "call.logged", "2026-11-15T08:05:01Z", r#","outcome":"meaningful""#);
        assert!(matches!(s.ingest(&c, fut.as_bytes(), wall()), Outcome::Invalid(i) if i.reason == InvalidReason::Future));
        let ok = line("b2", "call.logged", "2026-11-15T08:05:00Z", r#","outcome":"meaningful""#);
        assert_eq!(s.ingest(&c, ok.as_bytes(), wall()), Outcome::Applied);
        // late: before the 30d previous window (day floor - 59) and the quarter start
        let late = line("c", "call.logged", "2026-09-16T23:59:59Z", r#","outcome":"meaningful""#);
        assert_eq!(s.ingest(&c, late.as_bytes(), wall()), Outcome::Late);
        let kept = line("d", "call.logged", "2026-09-17T00:00:00Z", r#","outcome":"meaningful""#);
        assert_eq!(s.ingest(&c, kept.as_bytes(), wall()), Outcome::Applied);
        assert_eq!(s.stats, Stats { applied: 3, duplicate: 1, late: 1, invalid: [0, 0, 0, 0, 0, 1, 0, 0] });
        assert_eq!(s.team("t1").unwrap().reps[0].events[EventType::CallLogged.index()], 3);
    }

    #[test]
    fn cardinality_limits() {
        let mut cfg = CoreConfig::default();
        cfg.max_reps = 1;
        cfg.max_teams = 1;
        let c = Core::new(cfg, Clock::Fixed(wall()));
        let mut s = Shard::new();
        let ok = line("a", "quote.sent", "2026-11-15T07:00:00Z", "");
        assert_eq!(s.ingest(&c, ok.as_bytes(), 0), Outcome::Applied);
        let new_rep = ok.replace("\"r1\"", "\"r2\"").replace("\"a\"", "\"b\"");
        assert!(matches!(s.ingest(&c, new_rep.as_bytes(), 0), Outcome::Invalid(i) if i.reason == InvalidReason::Cardinality));
        let new_team = ok.replace("\"t1\"", "\"t2\"").replace("\"a\"", "\"c\"");
        assert!(matches!(s.ingest(&c, new_team.as_bytes(), 0), Outcome::Invalid(i) if i.reason == InvalidReason::Cardinality));
        // cardinality is checked before dedup: a duplicate from a new rep is still cardinality
        let dup_new_rep = ok.replace("\"r1\"", "\"r2\"");
        assert!(matches!(s.ingest(&c, dup_new_rep.as_bytes(), 0), Outcome::Invalid(i) if i.reason == InvalidReason::Cardinality));
        // an event without a rep on the known team is fine
        let team_only = r#"{"event_id":"z","type":"spend.recorded","occurred_at":"2026-11-15T07:00:00Z","team_id":"t1","amount":5,"category":"sales"}"#;
        assert_eq!(s.ingest(&c, team_only.as_bytes(), 0), Outcome::Applied);
    }

    #[test]
    fn reps_per_team_limit() {
        let mut cfg = CoreConfig::default();
        cfg.max_reps_per_team = 2;
        let c = Core::new(cfg, Clock::Fixed(wall()));
        let mut s = Shard::new();
        let ev = |id: &str, team: &str, rep: &str| {
            line(id, "quote.sent", "2026-11-15T07:00:00Z", "").replace("\"t1\"", &format!("\"{team}\"")).replace("\"r1\"", &format!("\"{rep}\""))
        };
        assert_eq!(s.ingest(&c, ev("a", "t1", "r1").as_bytes(), 0), Outcome::Applied);
        assert_eq!(s.ingest(&c, ev("b", "t1", "r2").as_bytes(), 0), Outcome::Applied);
        // a third rep of t1 is refused, known reps and other teams are not
        assert!(matches!(s.ingest(&c, ev("c", "t1", "r3").as_bytes(), 0), Outcome::Invalid(i) if i.reason == InvalidReason::Cardinality));
        assert_eq!(s.ingest(&c, ev("d", "t1", "r1").as_bytes(), 0), Outcome::Applied);
        assert_eq!(s.ingest(&c, ev("e", "t2", "r3").as_bytes(), 0), Outcome::Applied);
        assert_eq!(s.team("t1").unwrap().reps.len(), 2);
        assert_eq!(c.card.reps.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn dedup_uses_the_application_clock() {
        let c = core(Clock::Event);
        let mut s = Shard::new();
        let old = line("old", "quote.sent", "2026-11-01T00:00:00Z", "");
        let recent = line("recent", "quote.sent", "2026-11-20T00:00:00Z", "");
        let w = parse_rfc3339("2026-11-20T00:00:00Z").unwrap();
        assert_eq!(s.ingest(&c, recent.as_bytes(), w), Outcome::Applied);
        // applied at clock Nov 20 although it happened Nov 1: a re-delivery right after is a duplicate
        assert_eq!(s.ingest(&c, old.as_bytes(), w), Outcome::Applied);
        assert_eq!(s.ingest(&c, old.as_bytes(), w), Outcome::Duplicate);
        // 7 days and a second later it is forgotten
        let later = line("later", "quote.sent", "2026-11-27T00:00:01Z", "");
        let w2 = parse_rfc3339("2026-11-27T00:00:01Z").unwrap();
        assert_eq!(s.ingest(&c, later.as_bytes(), w2), Outcome::Applied);
        assert_eq!(s.ingest(&c, recent.as_bytes(), w2), Outcome::Applied);
    }
}
