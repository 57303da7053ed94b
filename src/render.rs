//! Exposition: the `sales_*` families in Prometheus text format 0.0.4,
//! streamed straight from shard state.
//!
//! Owns: label sets, family grouping, HELP/TYPE lines, number formatting, and
//! the per-team aggregation done at render time (active reps, team quota,
//! open deals); applying the exposition profile and the series budget while
//! writing.
//! Must not touch: state (read-only), formulas (in [`crate::kpi`]), what the
//! profile and the budget decide (in [`crate::exposition`]).
//!
//! Why not the `prometheus` crate for these: the KPI families can reach
//! hundreds of thousands of series, and building them as registry metrics
//! then gathering and encoding costs ~880 ns/series (measured on the
//! development machine) and holds a second copy of the state. Writing the
//! text directly from the state costs ~100 ns/series and no extra memory
//! beyond the output. The `prometheus` crate is used for the engine's own
//! self-metrics, where the series are few.

use std::fmt::Write as _;

use crate::engine::{quota_days, Core, Shard, Team};
use crate::event::{EventType, QuotaPeriod};
use crate::exposition::{slot_names, Budget, Group, Level, Report, CURRENT_FAMILIES};
use crate::kpi::{Scope, WindowView, WINDOW_FAMILIES};
use crate::measures::Totals;
use crate::time::Micros;
use crate::window::{Calendar, WindowKind};

/// Appends a value: integers without a fraction, other values shortest-exact.
fn push_value(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else if v.is_finite() {
        out.push_str(ryu::Buffer::new().format_finite(v));
    } else if v.is_nan() {
        out.push_str("NaN");
    } else if v > 0.0 {
        out.push_str("+Inf");
    } else {
        out.push_str("-Inf");
    }
}

/// Output buffers, one per family slot (see [`crate::exposition::slot_names`]),
/// with the group of every line so that a group the budget drops can be
/// taken out again.
struct Families {
    /// For each entry of [`WINDOW_FAMILIES`], the index of its slot.
    slot: Vec<usize>,
    bufs: Vec<String>,
    /// Group id of each line of `bufs[s]`, in order.
    tags: Vec<Vec<u32>>,
    /// Bytes of `bufs[s]` that belong to dropped groups.
    dead: Vec<usize>,
}

/// Slots of the families without a `window` label (after the windowed ones).
const OPEN_DEALS: usize = 0;
const PIPELINE_VALUE: usize = 1;
const QUOTA: usize = 2;
const EVENTS: usize = 3;

impl Families {
    fn new() -> Self {
        let mut slot = Vec::with_capacity(WINDOW_FAMILIES.len());
        let mut n = 0;
        for (i, f) in WINDOW_FAMILIES.iter().enumerate() {
            if i > 0 && WINDOW_FAMILIES[i - 1].name == f.name {
                slot.push(n - 1);
            } else {
                slot.push(n);
                n += 1;
            }
        }
        let slots = slot_names().len();
        debug_assert_eq!(slots, n + CURRENT_FAMILIES.len());
        Families { slot, bufs: vec![String::new(); slots], tags: vec![Vec::new(); slots], dead: vec![0; slots] }
    }

    fn current(&self, c: usize) -> usize {
        self.bufs.len() - CURRENT_FAMILIES.len() + c
    }

    /// Removes the lines of dropped groups from slot `s`.
    fn compact(&mut self, s: usize, budget: &Budget) {
        let buf = std::mem::take(&mut self.bufs[s]);
        let tags = std::mem::take(&mut self.tags[s]);
        let mut kept = String::with_capacity(buf.len().saturating_sub(self.dead[s]));
        let mut kept_tags = Vec::with_capacity(tags.len());
        for (line, &id) in buf.split_inclusive('\n').zip(&tags) {
            if budget.live(id) {
                kept.push_str(line);
                kept_tags.push(id);
            }
        }
        self.bufs[s] = kept;
        self.tags[s] = kept_tags;
        self.dead[s] = 0;
    }
}

/// Per-window render context shared by all keys.
struct WindowCtx<'a> {
    name: &'a str,
    /// Quota period for `mtd` / `qtd`.
    quota: Option<(QuotaPeriod, i64)>,
    /// Whether reps' windows are read (for their series or the team's active
    /// reps) and whether rep-level and team-level series are written.
    rep_read: bool,
    rep_emit: bool,
    team_emit: bool,
    /// Group id of each entry of [`WINDOW_FAMILIES`] at rep and at team
    /// level in this window (`None`: not in the profile).
    rep_ids: Vec<Option<u32>>,
    team_ids: Vec<Option<u32>>,
}

/// Where series go: the buffers and the budget that counts them.
struct Out {
    fams: Families,
    budget: Budget,
}

impl Out {
    /// Drops groups while over budget and reclaims their lines once a quarter
    /// of a slot is dead (so the buffers stay within a few tenths above the
    /// budget's bytes).
    fn enforce(&mut self) {
        let Out { fams, budget } = self;
        let mut any = false;
        budget.enforce(|s, bytes| {
            fams.dead[s] += bytes;
            any = true;
        });
        if any {
            for s in 0..fams.bufs.len() {
                if fams.dead[s] > 0 && fams.dead[s] * 4 >= fams.bufs[s].len() {
                    fams.compact(s, budget);
                }
            }
        }
    }

    /// A series of a family without a `window` label, `labels` in order.
    fn series(&mut self, c: usize, level: Level, name: &str, labels: &[(&str, &str)], v: f64) {
        let s = self.fams.current(c);
        let Some(id) = self.budget.enabled(Group { level, window: None, slot: s }) else { return };
        if !self.budget.live(id) {
            self.budget.skipped(id);
            return;
        }
        let out = &mut self.fams.bufs[s];
        let start = out.len();
        series(out, name, labels, v);
        self.fams.tags[s].push(id);
        self.budget.kept(id, out.len() - start);
    }
}

fn emit_window_series(o: &mut Out, ids: &[Option<u32>], team: &str, rep: Option<&str>, window: &str, view: &WindowView) {
    for (i, f) in WINDOW_FAMILIES.iter().enumerate() {
        let Some(id) = ids[i] else { continue };
        let Some(v) = (f.value)(view) else { continue };
        if !o.budget.live(id) {
            o.budget.skipped(id);
            continue;
        }
        let s = o.fams.slot[i];
        let out = &mut o.fams.bufs[s];
        let start = out.len();
        out.push_str(f.name);
        out.push_str("{team=\"");
        out.push_str(team);
        if let Some(r) = rep {
            out.push_str("\",rep=\"");
            out.push_str(r);
        }
        out.push_str("\",window=\"");
        out.push_str(window);
        if let Some((k, lv)) = f.label {
            out.push_str("\",");
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(lv);
        }
        out.push_str("\"} ");
        push_value(out, v);
        out.push('\n');
        o.fams.tags[s].push(id);
        o.budget.kept(id, out.len() - start);
    }
}

fn series(out: &mut String, name: &str, labels: &[(&str, &str)], v: f64) {
    out.push_str(name);
    out.push('{');
    for (i, (k, lv)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        out.push_str(lv);
        out.push('"');
    }
    out.push_str("} ");
    push_value(out, v);
    out.push('\n');
}

/// Per-window sums of a team's reps, reused from team to team.
struct TeamSums {
    tot: Vec<Totals>,
    prev: Vec<Option<f64>>,
    active: Vec<u64>,
}

impl TeamSums {
    fn new(windows: usize) -> Self {
        TeamSums { tot: vec![Totals::default(); windows], prev: vec![None; windows], active: vec![0; windows] }
    }
    fn clear(&mut self) {
        self.tot.iter_mut().for_each(Totals::clear);
        self.prev.iter_mut().for_each(|p| *p = None);
        self.active.iter_mut().for_each(|a| *a = 0);
    }
}

fn add_prev(sum: &mut Option<f64>, p: Option<f64>) {
    if let Some(p) = p {
        *sum = Some(sum.unwrap_or(0.0) + p);
    }
}

fn render_team(team: &Team, core: &Core, t: Micros, wins: &[WindowCtx], o: &mut Out, tot: &mut Totals, sums: &mut TeamSums) {
    let w = &core.cfg.windows;
    let pt = w.periods(t);
    let qdays = quota_days(&pt);
    sums.clear();

    for rep in &team.reps {
        for (di, wc) in wins.iter().enumerate() {
            if !wc.rep_read {
                continue;
            }
            tot.clear();
            let read = rep.state.window(w, di, t, &pt, tot);
            if tot.act.active > 0 {
                sums.active[di] += 1;
            }
            if wc.rep_emit {
                let quota = wc.quota.and_then(|(p, day)| rep.quotas.get(p, day));
                let view = WindowView { t: tot, prev_revenue: read.prev_revenue, active_reps: None, quota };
                emit_window_series(o, &wc.rep_ids, &team.id, Some(&rep.id), wc.name, &view);
            }
            sums.tot[di].add_totals(tot);
            add_prev(&mut sums.prev[di], read.prev_revenue);
        }
        o.enforce();
    }

    // Team quota: the team's own, else the sum of its reps' for the period.
    let team_quota = |p: QuotaPeriod, day: i64| -> Option<f64> {
        team.quotas.get(p, day).or_else(|| {
            let mut any = false;
            let s: f64 = team.reps.iter().filter_map(|r| r.quotas.get(p, day)).inspect(|_| any = true).sum();
            any.then_some(s)
        })
    };
    // The team: its reps' sums plus its own events without a rep.
    for (di, wc) in wins.iter().enumerate() {
        if !wc.team_emit {
            continue;
        }
        let tot = &mut sums.tot[di];
        let read = team.state.window(w, di, t, &pt, tot);
        let mut prev = sums.prev[di];
        add_prev(&mut prev, read.prev_revenue);
        let quota = wc.quota.and_then(|(p, day)| team_quota(p, day));
        let view = WindowView { t: tot, prev_revenue: prev, active_reps: Some(sums.active[di]), quota };
        emit_window_series(o, &wc.team_ids, &team.id, None, wc.name, &view);
    }

    // Open deals by owner and for the team.
    let mut per_rep: Vec<(u64, f64)> = vec![(0, 0.0); team.reps.len()];
    let (mut n, mut value) = (0u64, 0.0);
    let retention = crate::joins::Retention { joins: core.cfg.join_horizon, deal_ttl: core.cfg.deal_ttl };
    for d in team.joins.open_deals(t, retention) {
        n += 1;
        value += d.amount;
        if let Some(slot) = per_rep.get_mut(d.owner as usize) {
            slot.0 += 1;
            slot.1 += d.amount;
        }
    }
    for (rep, (rn, rv)) in team.reps.iter().zip(&per_rep) {
        if *rn > 0 {
            o.series(OPEN_DEALS, Level::Rep, "sales_open_deals", &[("team", &team.id), ("rep", &rep.id)], *rn as f64);
            o.series(PIPELINE_VALUE, Level::Rep, "sales_pipeline_value", &[("team", &team.id), ("rep", &rep.id)], *rv);
        }
    }
    if n > 0 {
        o.series(OPEN_DEALS, Level::Team, "sales_open_deals", &[("team", &team.id)], n as f64);
        o.series(PIPELINE_VALUE, Level::Team, "sales_pipeline_value", &[("team", &team.id)], value);
    }

    // Quotas in force.
    for (p, day) in qdays {
        for rep in &team.reps {
            if let Some(q) = rep.quotas.get(p, day) {
                o.series(QUOTA, Level::Rep, "sales_quota", &[("team", &team.id), ("rep", &rep.id), ("period", p.as_str())], q);
            }
        }
        if let Some(q) = team_quota(p, day) {
            o.series(QUOTA, Level::Team, "sales_quota", &[("team", &team.id), ("period", p.as_str())], q);
        }
    }

    // Applied events.
    for rep in &team.reps {
        for ty in EventType::ALL {
            let c = rep.events[ty.index()];
            if c > 0 {
                o.series(EVENTS, Level::Rep, "sales_events_total", &[("team", &team.id), ("rep", &rep.id), ("type", ty.as_str())], c as f64);
            }
        }
    }
    for ty in EventType::ALL {
        let c = team.events[ty.index()];
        if c > 0 {
            o.series(EVENTS, Level::Team, "sales_events_total", &[("team", &team.id), ("type", ty.as_str())], c as f64);
        }
    }
    o.enforce();
}

fn family(out: &mut String, name: &str, help: &str, kind: &str, body: &str) {
    if body.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    out.push_str(body);
}

/// Renders every `sales_*` family of `shards` at clock `t` into `out`.
pub fn render(shards: &[&Shard], core: &Core, t: Micros, out: &mut String) -> Report {
    let mut r = Renderer::new(core, t);
    for shard in shards {
        r.add(shard);
    }
    r.finish(out)
}

/// An exposition built one shard at a time, so that a caller holding each
/// shard behind its own lock needs only that lock while the shard is added
/// (the live engine: a scrape never stops more than one partition at once).
/// Families stay grouped: [`Renderer::finish`] writes each once.
///
/// The exposition profile (`[exposition]`) decides which families and
/// windows are written at each level; the series budget
/// (`limits.max_series`) drops whole rep-level groups, then team-level ones,
/// in the order of [`crate::exposition`] while shards are added, so memory
/// stays bounded by the budget whatever the number of reps.
pub struct Renderer<'c> {
    core: &'c Core,
    t: Micros,
    wins: Vec<WindowCtx<'c>>,
    out: Out,
    tot: Totals,
    sums: TeamSums,
}

impl<'c> Renderer<'c> {
    /// An empty exposition at clock `t`.
    pub fn new(core: &'c Core, t: Micros) -> Self {
        let w = &core.cfg.windows;
        let qdays = quota_days(&w.periods(t));
        let budget = Budget::new(&core.cfg.profile, w, core.cfg.max_series, core.cfg.benchmarks.len());
        let fams = Families::new();
        let ids = |level: Level, di: usize| -> Vec<Option<u32>> {
            WINDOW_FAMILIES
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if level == Level::Rep && f.scope == Scope::TeamOnly {
                        return None;
                    }
                    budget.enabled(Group { level, window: Some(di), slot: fams.slot[i] })
                })
                .collect()
        };
        let wins: Vec<WindowCtx> = w
            .defs
            .iter()
            .enumerate()
            .map(|(di, d)| {
                let rep_ids = ids(Level::Rep, di);
                let team_ids = ids(Level::Team, di);
                let rep_emit = rep_ids.iter().any(Option::is_some);
                let team_emit = team_ids.iter().any(Option::is_some);
                WindowCtx {
                    name: &d.name,
                    quota: match d.kind {
                        WindowKind::Calendar(Calendar::Mtd) => Some(qdays[0]),
                        WindowKind::Calendar(Calendar::Qtd) => Some(qdays[1]),
                        _ => None,
                    },
                    // A team's windows (and its active reps) are sums of its
                    // reps' windows (each event is stored once, in its rep):
                    // read them for the team's series too.
                    rep_read: rep_emit || team_emit,
                    rep_emit,
                    team_emit,
                    rep_ids,
                    team_ids,
                }
            })
            .collect();
        let sums = TeamSums::new(wins.len());
        Renderer { core, t, wins, out: Out { fams, budget }, tot: Totals::default(), sums }
    }

    /// Adds the series of every team of `shard`.
    pub fn add(&mut self, shard: &Shard) {
        for team in &shard.teams {
            render_team(team, self.core, self.t, &self.wins, &mut self.out, &mut self.tot, &mut self.sums);
        }
    }

    /// Writes every family (HELP, TYPE, series) into `out` and says what was
    /// exported and what the budget dropped.
    pub fn finish(self, out: &mut String) -> Report {
        let Renderer { core, out: Out { mut fams, budget }, .. } = self;
        for s in 0..fams.bufs.len() {
            if fams.dead[s] > 0 {
                fams.compact(s, &budget);
            }
            // Growth slack goes before the output is allocated.
            fams.bufs[s].shrink_to_fit();
        }
        let current = fams.current(0);
        let slot = fams.slot.clone();
        let fams_slot = |i: usize| slot[i];
        // One allocation for the output; each buffer is freed once written.
        out.reserve(fams.bufs.iter().map(String::len).sum::<usize>() + 200 * fams.bufs.len());
        let mut take = |s: usize| {
            fams.tags[s] = Vec::new();
            std::mem::take(&mut fams.bufs[s])
        };
        let mut last = "";
        for (i, f) in WINDOW_FAMILIES.iter().enumerate() {
            if f.name == last {
                continue;
            }
            last = f.name;
            family(out, f.name, f.help, "gauge", &take(fams_slot(i)));
        }
        family(out, "sales_open_deals", "Deals created and not yet won, lost or expired.", "gauge", &take(current + OPEN_DEALS));
        family(out, "sales_pipeline_value", "Sum of the amounts of the open deals.", "gauge", &take(current + PIPELINE_VALUE));
        family(out, "sales_quota", "Quota in force for the current month or quarter.", "gauge", &take(current + QUOTA));
        let mut bench = String::new();
        for b in &core.cfg.benchmarks {
            let mut labels = vec![("kpi", b.kpi.as_str()), ("bound", b.bound.as_str())];
            if let Some(team) = &b.team {
                labels.push(("team", team.as_str()));
            }
            series(&mut bench, "sales_benchmark", &labels, b.value);
        }
        family(out, "sales_benchmark", "Configured benchmark of a KPI (bound min, target or max); a team override has a team label.", "gauge", &bench);
        family(out, "sales_events_total", "Applied events by team, rep and type.", "counter", &take(current + EVENTS));
        budget.report(&core.cfg.windows)
    }
}

/// Renders into a fresh string.
pub fn render_string(shards: &[&Shard], core: &Core, t: Micros) -> String {
    let mut s = String::new();
    render(shards, core, t, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let mut s = String::new();
        for v in [1.0, 0.0, 0.5, 12000.0, 0.35004166666666664, -25.0, 1e20] {
            push_value(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "1 0 0.5 12000 0.35004166666666664 -25 1e20 ");
    }
}
