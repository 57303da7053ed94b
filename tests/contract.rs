//! The contract's worked example (`tests/fixtures/contract/`, see `docs/metrics.md`): replaying
//! `examples.ndjson` must print exactly the series of
//! `examples.expected.txt` (names, labels, values).

mod common;

use common::*;
use salespulse::engine::Clock;

#[test]
fn worked_example_matches_expected_exposition() {
    let events = include_str!("fixtures/contract/examples.ndjson");
    let expected = parse_exposition(include_str!("fixtures/contract/examples.expected.txt"));
    let core = core_from("", Clock::Event);
    let lines: Vec<String> = events.lines().map(str::to_owned).collect();
    let (shard, got) = fold_render(&core, &lines, ts("2026-11-22T00:00:00Z"));
    assert_eq!(shard.stats.applied, 14);
    assert_eq!(shard.event_clock, Some(ts("2026-11-15T08:00:00Z")));
    let d = diff(&expected, &sales_only(&got));
    assert!(d.is_empty(), "{} differences:\n{}", d.len(), d.join("\n"));
}
