//! The series budget against the flood of issue 11: a bridge bug puts lead
//! ids in `rep_id`, so 300 k `call.logged` events each bring a new rep.
//!
//! - Into the org's own 4 teams: `limits.max_reps_per_team` (1,000) holds
//!   each team, the rest is `cardinality`, nothing is dropped.
//! - Spread over 300 teams: `limits.max_reps` (100 k) holds, 100 k reps would
//!   emit ~6.5 M series; the exposition keeps at most `limits.max_series`
//!   (2 M), drops whole rep-level groups in the documented order (never a
//!   team-level series), and the render's memory is bounded by the budget,
//!   not by the reps (measured with a counting allocator).
//!
//! In both, team-level KPIs are exact: equal to a fold of the same applied
//! events all from one rep (`call.logged` needs a `rep_id`), except
//! `sales_active_reps`, more by the team's flood reps less that one rep
//! and so `sales_revenue_per_rep`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::*;
use salespulse::engine::{Clock, Outcome, Shard};
use salespulse::event::InvalidReason;
use salespulse::gen::{GenConfig, Generator};
use salespulse::time::format_rfc3339;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new >= l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + (new - l.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests measure the process's heap: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const BASE_TEAMS: [&str; 4] = ["emea-smb", "na-ent", "apac-mid", "latam-smb"];

fn base_lines() -> Vec<String> {
    let cfg = GenConfig { teams: 4, reps_per_team: 8, days: 14, ..GenConfig::default() };
    Generator::new(cfg).map(|e| e.line).collect()
}

/// Flood event `i`; `one_rep`: every event from the same rep (the fold
/// without the flood's rep dimension: `call.logged` needs a `rep_id`).
fn flood_event(i: usize, team: &str, at: &str, one_rep: bool) -> String {
    let rep = if one_rep { "bridge".to_string() } else { format!("lead-{i}") };
    format!(r#"{{"event_id":"flood-{i}","type":"call.logged","occurred_at":"{at}","team_id":"{team}","rep_id":"{rep}","outcome":"meaningful"}}"#)
}

struct Flood {
    /// The fold with the flood, and its exposition.
    shard: Shard,
    text: String,
    report: salespulse::exposition::Report,
    /// The fold of the same applied events, all from one rep per team.
    plain: BTreeMap<String, f64>,
    /// Applied flood events per team.
    applied: BTreeMap<String, u64>,
    cardinality: u64,
    /// Heap bytes after the last applied flood event (the limits are reached)
    /// and after the whole flood.
    heap_at_limit: usize,
    heap_after: usize,
    /// Extra heap the render needed at its peak.
    render_peak: usize,
}

fn flood(team_of: impl Fn(usize) -> String) -> Flood {
    let core = core_from("", Clock::Event);
    let plain_core = core_from("", Clock::Event);
    let wall = ts("2026-12-31T00:00:00Z");
    let mut shard = Shard::new();
    let mut plain = Shard::new();
    for l in base_lines() {
        assert_eq!(shard.ingest(&core, l.as_bytes(), wall), plain.ingest(&plain_core, l.as_bytes(), wall));
    }
    let clock = shard.event_clock.expect("base applied");
    // Ten minutes before the clock: in every window, and the clock stays.
    let at = format_rfc3339(clock - 600_000_000);
    let mut applied: BTreeMap<String, u64> = BTreeMap::new();
    let mut cardinality = 0;
    let mut heap_at_limit = None;
    for i in 0..300_000 {
        let team = team_of(i);
        match shard.ingest(&core, flood_event(i, &team, &at, false).as_bytes(), wall) {
            Outcome::Applied => {
                *applied.entry(team.clone()).or_default() += 1;
                assert_eq!(plain.ingest(&plain_core, flood_event(i, &team, &at, true).as_bytes(), wall), Outcome::Applied);
                heap_at_limit = Some(LIVE.load(Ordering::Relaxed));
            }
            Outcome::Invalid(inv) if inv.reason == InvalidReason::Cardinality => {
                cardinality += 1;
            }
            other => panic!("flood event {i}: {other:?}"),
        }
    }
    assert_eq!(shard.event_clock, Some(clock));
    let heap_after = LIVE.load(Ordering::Relaxed);
    let t = shard.clock(&core, wall).expect("clock");
    let mut text = String::new();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let report = salespulse::render::render(&[&shard], &core, t, &mut text);
    let render_peak = PEAK.load(Ordering::Relaxed) - before;
    let plain = parse_exposition(&salespulse::render::render_string(&[&plain], &plain_core, t));
    Flood { shard, text, report, plain, applied, cardinality, heap_at_limit: heap_at_limit.unwrap_or(heap_after), heap_after, render_peak }
}

/// Team-level series of the flooded fold against the fold without rep ids.
fn assert_team_kpis_exact(f: &Flood, got: &BTreeMap<String, f64>) {
    let team_level = |m: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        m.iter().filter(|(k, _)| k.starts_with("sales_") && label(k, "rep").is_none()).map(|(k, v)| (k.clone(), *v)).collect()
    };
    let got = team_level(got);
    let mut want = team_level(&f.plain);
    let mut checked_active = 0;
    for (k, v) in want.iter_mut() {
        let Some(team) = label(k, "team") else { continue };
        let flood = f.applied.get(team).copied().unwrap_or(0) as f64;
        if family(k) == "sales_active_reps" && flood > 0.0 {
            *v += flood - 1.0;
            checked_active += 1;
        }
    }
    // revenue per active rep, with the active reps above
    let fixed: Vec<(String, f64)> = want
        .iter()
        .filter(|(k, _)| family(k) == "sales_revenue_per_rep")
        .map(|(k, _)| {
            let revenue = want.get(&k.replace("sales_revenue_per_rep", "sales_revenue")).copied().unwrap_or(0.0);
            (k.clone(), revenue / want[&k.replace("sales_revenue_per_rep", "sales_active_reps")])
        })
        .collect();
    want.extend(fixed);
    assert!(checked_active > 0);
    let d = diff(&want, &got);
    assert!(d.is_empty(), "{} team-level differences, first: {:?}", d.len(), &d[..d.len().min(10)]);
}

#[test]
fn flood_into_the_org_is_held_per_team() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = flood(|i| BASE_TEAMS[i % 4].to_string());
    // 8 reps of each team exist: 992 new ones each, the rest is cardinality.
    for t in BASE_TEAMS {
        assert_eq!(f.shard.team(t).map(|t| t.reps.len()), Some(1000), "{t}");
        assert_eq!(f.applied.get(t), Some(&992));
    }
    assert_eq!(f.cardinality, 300_000 - 4 * 992);
    assert_eq!(f.report.dropped, 0);
    let got = parse_exposition(&f.text);
    assert_eq!(got.len(), f.report.series);
    assert_team_kpis_exact(&f, &got);
    // nothing grows once the teams are full
    assert!(f.heap_after - f.heap_at_limit.min(f.heap_after) < 1 << 20, "heap grew {} bytes after the limit", f.heap_after - f.heap_at_limit);
}

#[test]
fn flood_over_many_teams_stays_within_the_series_budget() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = flood(|i| match i / 1000 {
        k if k < 4 => BASE_TEAMS[k].to_string(),
        k => format!("bridge-{k}"),
    });
    // max_reps: 32 base reps + 4 x 992 + 96 x 1000 flood reps = 100,000.
    assert_eq!(f.shard.rep_count(), 100_000);
    assert_eq!(f.applied.values().sum::<u64>(), 4 * 992 + 96_000);
    assert_eq!(f.cardinality, 300_000 - (4 * 992 + 96_000));
    let state_after_limit = f.heap_after.saturating_sub(f.heap_at_limit);
    assert!(state_after_limit < 1 << 20, "heap grew {state_after_limit} bytes after the rep limit");

    let got = parse_exposition(&f.text);
    let max = 2_000_000;
    assert_eq!(got.len(), f.report.series);
    assert!(got.len() <= max, "{} series", got.len());
    assert!(f.report.dropped > 4_000_000, "dropped {}", f.report.dropped);
    // Minimal: putting the last dropped group back would exceed the budget.
    let last = f.report.dropped_groups.last().expect("something dropped");
    assert!(f.report.series + last.series > max, "{} + {} <= {max}", f.report.series, last.series);
    // Team level is never dropped, and is exact.
    assert!(f.report.dropped_groups.iter().all(|d| d.level == salespulse::exposition::Level::Rep));
    assert_team_kpis_exact(&f, &got);
    // The order of docs/metrics.md: detail families first in every window
    // (the flood's outbound_calls, connect_ratio), then the dashboard tier
    // window by window from 1h; the alert tier (outbound activities, reach
    // upper bound) is kept in every window.
    let rep_windows = |name: &str| -> std::collections::BTreeSet<&str> {
        got.keys().filter(|k| family(k) == name && label(k, "rep").is_some()).filter_map(|k| label(k, "window")).collect()
    };
    assert!(rep_windows("sales_outbound_calls").is_empty());
    assert!(rep_windows("sales_connect_ratio").is_empty());
    assert_eq!(rep_windows("sales_outbound_activities").len(), 8);
    assert_eq!(rep_windows("sales_reach_upper95_ratio").len(), 8);
    let reach: Vec<&str> = rep_windows("sales_reach_ratio").into_iter().collect();
    assert!(!reach.contains(&"1h") && !reach.contains(&"today") && reach.contains(&"7d"), "{reach:?}");
    // Every flood rep keeps its series in the groups that are kept: whole
    // groups go, never single reps.
    let kept_7d = got.keys().filter(|k| family(k) == "sales_outbound_activities" && label(k, "window") == Some("7d") && label(k, "rep").is_some()).count();
    assert_eq!(kept_7d, 100_000);
    // Memory: the render's peak follows the budget, not the 6.5 M series
    // the reps would emit (~450 MB of text without the budget).
    let per_series = f.render_peak / max;
    eprintln!(
        "render: {} series ({} MiB), {} dropped, peak {} MiB ({per_series} bytes per budgeted series); state {} MiB",
        f.report.series,
        f.text.len() >> 20,
        f.report.dropped,
        f.render_peak >> 20,
        f.shard.heap_bytes() >> 20
    );
    assert!(f.text.len() < max * 80, "{} bytes", f.text.len());
    assert!(f.render_peak < f.text.len() * 5 / 2 + (32 << 20), "render peak {} for {} bytes of output", f.render_peak, f.text.len());
}
