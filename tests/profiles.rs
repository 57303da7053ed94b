//! Exposition profiles and the series budget as properties, over a rich
//! stream folded into three shards (teams spread like partitions):
//!
//! - a profile exports exactly the full exposition's series whose level,
//!   family and window it names, with the same values (the team's active
//!   reps still come from every rep, exported or not);
//! - under any `limits.max_series`, the result does not depend on the order
//!   shards are added, is a subset of the full exposition with the same
//!   values, removes whole groups (level × family × window) only, drops them
//!   in the order of `docs/metrics.md` (rep level before team level; within
//!   a level the detail tier in every window, then the dashboard tier, then
//!   the alert tier; windows 1h, today, wtd, 1d, 30d, qtd, mtd, 7d; the
//!   families without a window after each tier's windows), and drops no
//!   more than needed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use salespulse::engine::{Clock, Core, Shard};
use salespulse::exposition::{slot_names, Tier, CURRENT_FAMILIES, DROP_ORDER};
use salespulse::gen::{GenConfig, Generator};

const WINDOWS: [&str; 8] = ["1h", "1d", "7d", "30d", "today", "wtd", "mtd", "qtd"];
const WINDOW_DROP_ORDER: [&str; 8] = ["1h", "today", "wtd", "1d", "30d", "qtd", "mtd", "7d"];
const TEAM_ONLY: [&str; 12] = [
    "sales_spend",
    "sales_active_reps",
    "sales_cost_per_lead",
    "sales_cac",
    "sales_revenue_per_rep",
    "sales_deals_created_by_product",
    "sales_pipeline_added_by_product",
    "sales_deals_won_by_product",
    "sales_deals_lost_by_product",
    "sales_revenue_by_product",
    "sales_win_ratio_by_product",
    "sales_team_info",
];

struct Data {
    core: Core,
    shards: Vec<Shard>,
    t: i64,
    full: BTreeMap<String, f64>,
}

fn data() -> &'static Data {
    static D: OnceLock<Data> = OnceLock::new();
    D.get_or_init(|| {
        let core = core_from("[benchmarks.teams.emea-smb]\nreach_ratio_min = 0.3\n", Clock::Event);
        let mut shards: Vec<Shard> = (0..3).map(|_| Shard::new()).collect();
        let wall = ts("2026-12-31T00:00:00Z");
        let cfg = GenConfig { days: 21, teams: 5, reps_per_team: 4, ..GenConfig::default() };
        let lines = include_str!("fixtures/contract/examples.ndjson").lines().map(str::to_owned).chain(Generator::new(cfg).map(|e| e.line));
        for line in lines {
            let team = line.split("\"team_id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_owned();
            let i = team.bytes().map(usize::from).sum::<usize>() % 3;
            shards[i].ingest(&core, line.as_bytes(), wall);
        }
        let t = shards.iter().filter_map(|s| s.event_clock).max().expect("events applied");
        let refs: Vec<&Shard> = shards.iter().collect();
        let full = parse_exposition(&salespulse::render::render_string(&refs, &core, t));
        Data { core, shards, t, full }
    })
}

/// (level, family, window) of a KPI series; `None` for `sales_benchmark`.
fn group(key: &str) -> Option<(u8, &str, Option<&str>)> {
    let f = family(key);
    (f != "sales_benchmark").then(|| (u8::from(label(key, "rep").is_none()), f, label(key, "window")))
}

fn render(core: &Core, order: &[usize]) -> (BTreeMap<String, f64>, salespulse::exposition::Report) {
    let d = data();
    let refs: Vec<&Shard> = order.iter().map(|&i| &d.shards[i]).collect();
    let mut out = String::new();
    let report = salespulse::render::render(&refs, core, d.t, &mut out);
    (parse_exposition(&out), report)
}

fn toml_list(v: &[&str]) -> String {
    format!("[{}]", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "))
}

fn subset(all: Vec<&'static str>) -> impl Strategy<Value = Vec<&'static str>> {
    let n = all.len();
    proptest::collection::vec(any::<bool>(), n).prop_map(move |mask| all.iter().zip(&mask).filter(|(_, m)| **m).map(|(s, _)| *s).collect())
}

fn rep_families() -> Vec<&'static str> {
    slot_names().into_iter().filter(|n| !TEAM_ONLY.contains(n)).collect()
}

/// The documented drop order of groups, as (level, family, window).
fn documented_order() -> Vec<(u8, &'static str, Option<&'static str>)> {
    let mut order = Vec::new();
    for level in [0u8, 1] {
        for tier in [Tier::Detail, Tier::Dashboard, Tier::Alert] {
            let fams: Vec<&str> = DROP_ORDER.iter().filter(|(_, t)| *t == tier).map(|(f, _)| *f).collect();
            for w in WINDOW_DROP_ORDER {
                for f in fams.iter().filter(|f| !CURRENT_FAMILIES.contains(f)) {
                    order.push((level, *f, Some(w)));
                }
            }
            for f in fams.iter().filter(|f| CURRENT_FAMILIES.contains(f)) {
                order.push((level, *f, None));
            }
        }
    }
    order
}

#[test]
fn the_default_profile_is_the_full_contract() {
    let d = data();
    let spelled = core_from(
        "[benchmarks.teams.emea-smb]\nreach_ratio_min = 0.3\n[exposition.rep]\nfamilies = [\"*\"]\nwindows = [\"*\"]\n[exposition.team]\nfamilies = [\"*\"]\nwindows = [\"*\"]\n",
        Clock::Event,
    );
    let refs: Vec<&Shard> = d.shards.iter().collect();
    assert_eq!(salespulse::render::render_string(&refs, &spelled, d.t), salespulse::render::render_string(&refs, &d.core, d.t));
    let (_, report) = render(&d.core, &[0, 1, 2]);
    assert_eq!((report.series, report.dropped), (d.full.len(), 0));
    // the data is rich enough for the properties to mean something
    let groups: BTreeSet<_> = d.full.keys().filter_map(|k| group(k)).collect();
    assert!(groups.len() > 500, "{} groups", groups.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_profile_exports_what_it_names(
        rf in subset(rep_families()),
        rw in subset(WINDOWS.to_vec()),
        tf in subset(slot_names()),
        tw in subset(WINDOWS.to_vec()),
    ) {
        let d = data();
        let toml = format!(
            "[benchmarks.teams.emea-smb]\nreach_ratio_min = 0.3\n[exposition.rep]\nfamilies = {}\nwindows = {}\n[exposition.team]\nfamilies = {}\nwindows = {}\n",
            toml_list(&rf), toml_list(&rw), toml_list(&tf), toml_list(&tw)
        );
        let core = core_from(&toml, Clock::Event);
        let (got, report) = render(&core, &[2, 0, 1]);
        let want: BTreeMap<String, f64> = d.full.iter().filter(|(k, _)| match group(k) {
            None => true,
            Some((level, f, w)) => {
                let (fams, wins) = if level == 0 { (&rf, &rw) } else { (&tf, &tw) };
                fams.contains(&f) && w.map_or(true, |w| wins.contains(&w))
            }
        }).map(|(k, v)| (k.clone(), *v)).collect();
        let dif = diff(&want, &got);
        prop_assert!(dif.is_empty(), "{} differences: {:?}", dif.len(), &dif[..dif.len().min(5)]);
        prop_assert_eq!(report.series, got.len());
        prop_assert_eq!(report.dropped, 0);
    }

    #[test]
    fn the_budget_drops_whole_groups_in_order(max in 1usize..4000, order in Just(vec![0usize, 1, 2]).prop_shuffle()) {
        let d = data();
        let core = core_from(&format!("[benchmarks.teams.emea-smb]\nreach_ratio_min = 0.3\n[limits]\nmax_series = {max}\n"), Clock::Event);
        let (got, report) = render(&core, &order);
        // independent of the order shards are added
        let (first, _) = render(&core, &[0, 1, 2]);
        prop_assert_eq!(&got, &first);
        let benchmarks = d.full.keys().filter(|k| family(k) == "sales_benchmark").count();
        prop_assert!(got.len() <= max.max(benchmarks), "{} > {max}", got.len());
        prop_assert_eq!(report.series, got.len());
        prop_assert_eq!(report.series + report.dropped, d.full.len());
        // a subset with the same values, whole groups only
        for (k, v) in &got {
            prop_assert_eq!(d.full.get(k), Some(v), "{}", k);
        }
        let mut size: BTreeMap<_, usize> = BTreeMap::new();
        let mut kept: BTreeMap<_, usize> = BTreeMap::new();
        for k in d.full.keys().filter_map(|k| group(k)) {
            *size.entry(k).or_default() += 1;
        }
        for k in got.keys().filter_map(|k| group(k)) {
            *kept.entry(k).or_default() += 1;
        }
        for (g, n) in &kept {
            prop_assert_eq!(size[g], *n, "group {:?} partly dropped", g);
        }
        // a prefix of the documented order, and no more than needed
        let order = documented_order();
        let dropped: Vec<usize> = order.iter().enumerate().filter(|(_, g)| size.contains_key(*g) && !kept.contains_key(*g)).map(|(i, _)| i).collect();
        if let Some(&last) = dropped.last() {
            for g in &order[..last] {
                prop_assert!(!kept.contains_key(g), "{:?} kept although {:?} was dropped", g, order[last]);
            }
            prop_assert!(got.len() + size[&order[last]] > max, "dropping {:?} was not needed", order[last]);
            let r = report.dropped_groups.last().expect("report names the groups");
            prop_assert_eq!((r.level.as_str(), r.family, r.window.as_deref()), (["rep", "team"][usize::from(order[last].0)], order[last].1, order[last].2));
        } else {
            prop_assert_eq!(got.len(), d.full.len());
        }
    }
}
