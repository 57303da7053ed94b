//! Exposition: the `sales_*` families in Prometheus text format 0.0.4,
//! streamed straight from shard state.
//!
//! Owns: label sets, family grouping, HELP/TYPE lines, number formatting, and
//! the per-team aggregation done at render time (active reps, team quota,
//! open deals).
//! Must not touch: state (read-only), formulas (in [`crate::kpi`]).
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

/// Output buffers, one per family.
struct Families {
    /// For each entry of [`WINDOW_FAMILIES`], the index of its buffer.
    slot: Vec<usize>,
    bufs: Vec<String>,
}

impl Families {
    fn new() -> Self {
        let mut slot = Vec::with_capacity(WINDOW_FAMILIES.len());
        let mut bufs = Vec::new();
        for (i, f) in WINDOW_FAMILIES.iter().enumerate() {
            if i > 0 && WINDOW_FAMILIES[i - 1].name == f.name {
                slot.push(bufs.len() - 1);
            } else {
                slot.push(bufs.len());
                bufs.push(String::new());
            }
        }
        Families { slot, bufs }
    }
}

/// Per-window render context shared by all keys.
struct WindowCtx<'a> {
    name: &'a str,
    /// Quota period for `mtd` / `qtd`.
    quota: Option<(QuotaPeriod, i64)>,
}

fn emit_window_series(
    fams: &mut Families,
    team: &str,
    rep: Option<&str>,
    window: &str,
    view: &WindowView,
) {
    for (i, f) in WINDOW_FAMILIES.iter().enumerate() {
        if rep.is_some() && f.scope == Scope::TeamOnly {
            continue;
        }
        let Some(v) = (f.value)(view) else { continue };
        let out = &mut fams.bufs[fams.slot[i]];
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

/// Buffers of the families without a `window` label.
#[derive(Default)]
struct Current {
    open_deals: String,
    pipeline_value: String,
    quota: String,
    events: String,
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

#[allow(clippy::too_many_arguments)]
fn render_team(
    team: &Team,
    core: &Core,
    t: Micros,
    wins: &[WindowCtx],
    fams: &mut Families,
    cur: &mut Current,
    tot: &mut Totals,
    sums: &mut TeamSums,
) {
    let w = &core.cfg.windows;
    let pt = w.periods(t);
    let qdays = quota_days(&pt);
    sums.clear();

    for rep in &team.reps {
        for (di, wc) in wins.iter().enumerate() {
            tot.clear();
            let read = rep.state.window(w, di, t, &pt, tot);
            if tot.act.active > 0 {
                sums.active[di] += 1;
            }
            let quota = wc.quota.and_then(|(p, day)| rep.quotas.get(p, day));
            let view = WindowView { t: tot, prev_revenue: read.prev_revenue, active_reps: None, quota };
            emit_window_series(fams, &team.id, Some(&rep.id), wc.name, &view);
            sums.tot[di].add_totals(tot);
            add_prev(&mut sums.prev[di], read.prev_revenue);
        }
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
        let tot = &mut sums.tot[di];
        let read = team.state.window(w, di, t, &pt, tot);
        let mut prev = sums.prev[di];
        add_prev(&mut prev, read.prev_revenue);
        let quota = wc.quota.and_then(|(p, day)| team_quota(p, day));
        let view = WindowView { t: tot, prev_revenue: prev, active_reps: Some(sums.active[di]), quota };
        emit_window_series(fams, &team.id, None, wc.name, &view);
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
            series(&mut cur.open_deals, "sales_open_deals", &[("team", &team.id), ("rep", &rep.id)], *rn as f64);
            series(&mut cur.pipeline_value, "sales_pipeline_value", &[("team", &team.id), ("rep", &rep.id)], *rv);
        }
    }
    if n > 0 {
        series(&mut cur.open_deals, "sales_open_deals", &[("team", &team.id)], n as f64);
        series(&mut cur.pipeline_value, "sales_pipeline_value", &[("team", &team.id)], value);
    }

    // Quotas in force.
    for (p, day) in qdays {
        for rep in &team.reps {
            if let Some(q) = rep.quotas.get(p, day) {
                series(&mut cur.quota, "sales_quota", &[("team", &team.id), ("rep", &rep.id), ("period", p.as_str())], q);
            }
        }
        if let Some(q) = team_quota(p, day) {
            series(&mut cur.quota, "sales_quota", &[("team", &team.id), ("period", p.as_str())], q);
        }
    }

    // Applied events.
    for rep in &team.reps {
        for ty in EventType::ALL {
            let c = rep.events[ty.index()];
            if c > 0 {
                series(&mut cur.events, "sales_events_total", &[("team", &team.id), ("rep", &rep.id), ("type", ty.as_str())], c as f64);
            }
        }
    }
    for ty in EventType::ALL {
        let c = team.events[ty.index()];
        if c > 0 {
            series(&mut cur.events, "sales_events_total", &[("team", &team.id), ("type", ty.as_str())], c as f64);
        }
    }
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
pub fn render(shards: &[&Shard], core: &Core, t: Micros, out: &mut String) {
    let mut r = Renderer::new(core, t);
    for shard in shards {
        r.add(shard);
    }
    r.finish(out);
}

/// An exposition built one shard at a time, so that a caller holding each
/// shard behind its own lock needs only that lock while the shard is added
/// (the live engine: a scrape never stops more than one partition at once).
/// Families stay grouped: [`Renderer::finish`] writes each once.
pub struct Renderer<'c> {
    core: &'c Core,
    t: Micros,
    wins: Vec<WindowCtx<'c>>,
    fams: Families,
    cur: Current,
    tot: Totals,
    sums: TeamSums,
}

impl<'c> Renderer<'c> {
    /// An empty exposition at clock `t`.
    pub fn new(core: &'c Core, t: Micros) -> Self {
        let w = &core.cfg.windows;
        let qdays = quota_days(&w.periods(t));
        let wins: Vec<WindowCtx> = w
            .defs
            .iter()
            .map(|d| WindowCtx {
                name: &d.name,
                quota: match d.kind {
                    WindowKind::Calendar(Calendar::Mtd) => Some(qdays[0]),
                    WindowKind::Calendar(Calendar::Qtd) => Some(qdays[1]),
                    _ => None,
                },
            })
            .collect();
        let sums = TeamSums::new(wins.len());
        Renderer { core, t, wins, fams: Families::new(), cur: Current::default(), tot: Totals::default(), sums }
    }

    /// Adds the series of every team of `shard`.
    pub fn add(&mut self, shard: &Shard) {
        for team in &shard.teams {
            render_team(team, self.core, self.t, &self.wins, &mut self.fams, &mut self.cur, &mut self.tot, &mut self.sums);
        }
    }

    /// Writes every family (HELP, TYPE, series) into `out`.
    pub fn finish(self, out: &mut String) {
        let Renderer { core, fams, cur, .. } = self;
        let mut last = "";
        for (i, f) in WINDOW_FAMILIES.iter().enumerate() {
            if f.name == last {
                continue;
            }
            last = f.name;
            family(out, f.name, f.help, "gauge", &fams.bufs[fams.slot[i]]);
        }
        family(out, "sales_open_deals", "Deals created and not yet won, lost or expired.", "gauge", &cur.open_deals);
        family(out, "sales_pipeline_value", "Sum of the amounts of the open deals.", "gauge", &cur.pipeline_value);
        family(out, "sales_quota", "Quota in force for the current month or quarter.", "gauge", &cur.quota);
        let mut bench = String::new();
        for b in &core.cfg.benchmarks {
            let mut labels = vec![("kpi", b.kpi.as_str()), ("bound", b.bound.as_str())];
            if let Some(team) = &b.team {
                labels.push(("team", team.as_str()));
            }
            series(&mut bench, "sales_benchmark", &labels, b.value);
        }
        family(out, "sales_benchmark", "Configured benchmark of a KPI (bound min, target or max); a team override has a team label.", "gauge", &bench);
        family(out, "sales_events_total", "Applied events by team, rep and type.", "counter", &cur.events);
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
