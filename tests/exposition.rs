//! The exposition is valid Prometheus text format: `promtool check metrics`
//! (Debian package `prometheus`, installed by `.ci/run`) finds nothing to
//! complain about, and the structure rules hold (HELP and TYPE once per
//! family, a family's series contiguous, no duplicate series).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use salespulse::engine::{Clock, Shard};
use salespulse::gen::{GenConfig, Generator};

fn rich_exposition() -> String {
    let core = core_from("[benchmarks.teams.emea-smb]\nreach_ratio_min = 0.3\n", Clock::Event);
    let mut shard = Shard::new();
    for line in include_str!("fixtures/contract/examples.ndjson").lines() {
        shard.ingest(&core, line.as_bytes(), ts("2026-11-22T00:00:00Z"));
    }
    let cfg = GenConfig { days: 21, teams: 3, reps_per_team: 4, ..GenConfig::default() };
    for ev in Generator::new(cfg) {
        shard.ingest(&core, ev.line.as_bytes(), ts("2026-12-31T00:00:00Z"));
    }
    let t = shard.clock(&core, 0).expect("events applied");
    salespulse::render::render_string(&[&shard], &core, t)
}

#[test]
fn structure_help_type_contiguous_unique() {
    let text = rich_exposition();
    let mut seen_families = HashSet::new();
    let mut series = HashSet::new();
    let mut current = String::new();
    let mut typed = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default().to_string();
            assert!(seen_families.insert(name.clone()), "family {name} appears twice");
            current = name;
            typed = false;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            assert!(rest.starts_with(&current), "TYPE without HELP: {line}");
            typed = true;
        } else {
            let name = line.split('{').next().unwrap_or_default();
            assert_eq!(name, current, "series outside its family: {line}");
            assert!(typed);
            assert!(series.insert(line.rsplit_once(' ').map(|x| x.0).unwrap_or(line).to_string()), "duplicate {line}");
        }
    }
    // every family of the contract shows up in a rich stream
    let mut all: HashSet<String> = salespulse::kpi::WINDOW_FAMILIES.iter().map(|f| f.name.to_string()).collect();
    for f in ["sales_open_deals", "sales_pipeline_value", "sales_quota", "sales_benchmark", "sales_events_total"] {
        all.insert(f.to_string());
    }
    let missing: Vec<&String> = all.iter().filter(|f| !seen_families.contains(*f)).collect();
    assert!(missing.is_empty(), "families missing from the exposition: {missing:?}");
    assert_eq!(all.len(), 76, "metrics.md defines 76 families here (v1.1 adds 14 windowed ones)");
}

#[test]
fn promtool_check_metrics_is_clean() {
    let text = rich_exposition();
    let child = Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("promtool is required in CI (apt-get install prometheus): {e}");
            }
            eprintln!("\n*** SKIPPED promtool_check_metrics_is_clean: promtool not found ({e}); run scripts/install-deps.sh ***\n");
            return;
        }
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}");
}
