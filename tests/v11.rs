//! Contract v1.1, hand-computed: follow-up persistence, touches to SQL,
//! product lines, pipeline coverage, projected attainment, regions and
//! `product_line` validation (docs/metrics.md, "v1.1"). Every expected value
//! below is worked out by hand in the comment next to it.

mod common;

use std::collections::BTreeMap;

use common::*;
use salespulse::engine::{Clock, Core, Outcome, Shard};
use salespulse::event::InvalidReason;

const WALL: i64 = 4_000_000_000_000_000;

/// One event line of team `t`; `rep` "" for none.
fn ev(id: &str, ty: &str, at: &str, rep: &str, extra: &str) -> String {
    let rep = if rep.is_empty() { String::new() } else { format!(r#","rep_id":"{rep}""#) };
    format!(r#"{{"event_id":"{id}","type":"{ty}","occurred_at":"{at}","team_id":"t"{rep}{extra}}}"#)
}

fn call(id: &str, at: &str, rep: &str, lead: &str) -> String {
    ev(id, "call.logged", at, rep, &format!(r#","lead_id":"{lead}","outcome":"no_answer""#))
}

fn lead(id: &str, at: &str, rep: &str, lead: &str) -> String {
    ev(id, "lead.created", at, rep, &format!(r#","lead_id":"{lead}""#))
}

fn tick(id: &str, at: &str) -> String {
    ev(id, "spend.recorded", at, "", r#","amount":1,"category":"sales""#)
}

fn fold(core: &Core, lines: &[String]) -> (Shard, BTreeMap<String, f64>) {
    let (s, m) = fold_render(core, lines, WALL);
    (s, sales_only(&m))
}

fn get(m: &BTreeMap<String, f64>, name: &str, labels: &str) -> Option<f64> {
    m.get(&canonical(name, labels)).copied()
}

/// Series of family `name` with a rep label `rep`.
fn of_rep<'a>(m: &'a BTreeMap<String, f64>, name: &'a str, rep: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    m.keys().filter(move |k| family(k) == name && label(k, "rep") == Some(rep))
}

#[test]
fn late_touch_before_the_horizon_counts_after_it_does_not() {
    let core = core_from("", Clock::Event);
    let lines = vec![
        // L1 of r1 at Nov 1 00:00: observed at Nov 15 00:00 (H = 14 d)
        lead("a", "2026-11-01T00:00:00Z", "r1", "L1"),
        call("b", "2026-11-02T10:00:00Z", "r1", "L1"),
        // the clock passes L + H: observed with 1 touch, no SQL: gave up after one
        tick("c", "2026-11-16T00:00:00Z"),
    ];
    let (_, m) = fold(&core, &lines);
    assert_eq!(get(&m, "sales_followed_leads", r#"rep="r1",team="t",window="7d""#), Some(1.0));
    assert_eq!(get(&m, "sales_leads_single_touch_ratio", r#"rep="r1",team="t",window="7d""#), Some(1.0));
    assert_eq!(get(&m, "sales_lead_touches_mean", r#"rep="r1",team="t",window="7d""#), Some(1.0));

    let mut more = lines.clone();
    // by another rep, occurred one second before L + H, arrives after the observation: counts, for the lead's rep
    more.push(call("d", "2026-11-14T23:59:59Z", "r2", "L1"));
    // occurred at L + H: not a touch of the horizon
    more.push(call("e", "2026-11-15T00:00:00Z", "r1", "L1"));
    let (_, m) = fold(&core, &more);
    // touches 2: mean 2, no longer single-touch
    assert_eq!(get(&m, "sales_lead_touches_mean", r#"rep="r1",team="t",window="7d""#), Some(2.0));
    assert_eq!(get(&m, "sales_leads_single_touch_ratio", r#"rep="r1",team="t",window="7d""#), Some(0.0));
    assert_eq!(get(&m, "sales_leads_untouched_ratio", r#"rep="r1",team="t",window="7d""#), Some(0.0));
    assert_eq!(get(&m, "sales_lead_touches_mean", r#"team="t",window="7d""#), Some(2.0));
    // the observation is r1's: r2 has none
    assert_eq!(of_rep(&m, "sales_followed_leads", "r2").count(), 0);
    // the observation is at Nov 15 00:00: in 7d and 30d, not in 1d (Nov 15 01:00 .. Nov 16 00:59)
    assert_eq!(get(&m, "sales_followed_leads", r#"rep="r1",team="t",window="1d""#), None);
    assert_eq!(get(&m, "sales_followed_leads", r#"rep="r1",team="t",window="30d""#), Some(1.0));
}

#[test]
fn a_lead_without_a_rep_is_observed_at_team_level_only() {
    let core = core_from("", Clock::Event);
    let lines = vec![lead("a", "2026-11-01T00:00:00Z", "", "L2"), call("b", "2026-11-03T10:00:00Z", "r1", "L2"), tick("c", "2026-11-16T00:00:00Z")];
    let (_, m) = fold(&core, &lines);
    assert_eq!(get(&m, "sales_followed_leads", r#"team="t",window="7d""#), Some(1.0));
    assert_eq!(get(&m, "sales_leads_single_touch_ratio", r#"team="t",window="7d""#), Some(1.0));
    assert_eq!(of_rep(&m, "sales_followed_leads", "r1").count(), 0);
    assert_eq!(of_rep(&m, "sales_lead_touches_mean", "r1").count(), 0);
}

#[test]
fn sql_before_the_first_touch() {
    let core = core_from("", Clock::Event);
    let lines = vec![
        lead("a", "2026-11-01T00:00:00Z", "r1", "L3"),
        ev("b", "lead.qualified", "2026-11-01T01:00:00Z", "r1", r#","lead_id":"L3","stage":"sql""#),
        call("c", "2026-11-01T02:00:00Z", "r1", "L3"),
        tick("d", "2026-11-16T00:00:00Z"),
    ];
    let (_, m) = fold(&core, &lines);
    // one SQL observation with 0 touches before it: the mean 0 is exported
    assert_eq!(get(&m, "sales_sql_conversions", r#"rep="r1",team="t",window="30d""#), Some(1.0));
    assert_eq!(get(&m, "sales_touches_to_sql_mean", r#"rep="r1",team="t",window="30d""#), Some(0.0));
    // persistence: 1 touch but it reached SQL: neither single-touch nor untouched
    assert_eq!(get(&m, "sales_lead_touches_mean", r#"rep="r1",team="t",window="7d""#), Some(1.0));
    assert_eq!(get(&m, "sales_leads_single_touch_ratio", r#"rep="r1",team="t",window="7d""#), Some(0.0));
    assert_eq!(get(&m, "sales_leads_untouched_ratio", r#"rep="r1",team="t",window="7d""#), Some(0.0));
    // a second SQL is no new conversion
    let mut more = lines.clone();
    more.push(ev("e", "lead.qualified", "2026-11-02T01:00:00Z", "r1", r#","lead_id":"L3","stage":"sql""#));
    let (_, m) = fold(&core, &more);
    assert_eq!(get(&m, "sales_sql_conversions", r#"rep="r1",team="t",window="30d""#), Some(1.0));
    // an activity that occurred before the SQL, applied after it, counts for it
    more.push(call("f", "2026-11-01T00:30:00Z", "r2", "L3"));
    let (_, m) = fold(&core, &more);
    assert_eq!(get(&m, "sales_touches_to_sql_mean", r#"rep="r1",team="t",window="30d""#), Some(1.0));
    // an SQL of an unknown lead is no conversion
    let (_, m) = fold(&core, &[ev("g", "lead.qualified", "2026-11-01T01:00:00Z", "r1", r#","lead_id":"X","stage":"sql""#)]);
    assert_eq!(get(&m, "sales_sql_conversions", r#"rep="r1",team="t",window="30d""#), None);
}

#[test]
fn a_lead_created_long_after_its_horizon_is_observed_at_once() {
    let core = core_from("", Clock::Event);
    let lines = vec![tick("a", "2026-12-01T00:00:00Z"), lead("b", "2026-11-10T00:00:00Z", "r1", "L4")];
    let (_, m) = fold(&core, &lines);
    // L + H = Nov 24, already past: observed at once with 0 touches
    assert_eq!(get(&m, "sales_followed_leads", r#"rep="r1",team="t",window="30d""#), Some(1.0));
    assert_eq!(get(&m, "sales_leads_untouched_ratio", r#"rep="r1",team="t",window="30d""#), Some(1.0));
    assert_eq!(get(&m, "sales_lead_touches_mean", r#"rep="r1",team="t",window="30d""#), Some(0.0));
    // a late touch from before L + H still counts: 1 touch, gave up after one
    let mut more = lines;
    more.push(call("c", "2026-11-12T00:00:00Z", "r1", "L4"));
    let (_, m) = fold(&core, &more);
    assert_eq!(get(&m, "sales_lead_touches_mean", r#"rep="r1",team="t",window="30d""#), Some(1.0));
    assert_eq!(get(&m, "sales_leads_untouched_ratio", r#"rep="r1",team="t",window="30d""#), Some(0.0));
    assert_eq!(get(&m, "sales_leads_single_touch_ratio", r#"rep="r1",team="t",window="30d""#), Some(1.0));
}

#[test]
fn maintenance_observes_without_events() {
    let core = core_from("", Clock::Wall);
    let mut s = Shard::new();
    let l = lead("a", "2026-11-01T00:00:00Z", "r1", "L5");
    assert_eq!(s.ingest(&core, l.as_bytes(), ts("2026-11-01T00:00:01Z")), Outcome::Applied);
    let t = ts("2026-11-15T00:30:00Z");
    let m = sales_only(&parse_exposition(&salespulse::render::render_string(&[&s], &core, t)));
    assert_eq!(get(&m, "sales_followed_leads", r#"rep="r1",team="t",window="1h""#), None);
    // the engine's periodic maintenance with the wall clock makes the observation
    s.maintain(&core, t);
    let m = sales_only(&parse_exposition(&salespulse::render::render_string(&[&s], &core, t)));
    assert_eq!(get(&m, "sales_followed_leads", r#"rep="r1",team="t",window="1h""#), Some(1.0));
    assert_eq!(get(&m, "sales_leads_untouched_ratio", r#"rep="r1",team="t",window="1h""#), Some(1.0));
}

#[test]
fn product_line_flood_none_and_other() {
    let core = core_from("", Clock::Event);
    let mut lines: Vec<String> = (1..=21)
        .map(|i| ev(&format!("d{i}"), "deal.created", "2026-11-10T10:00:00Z", "r1", &format!(r#","deal_id":"D{i}","amount":10,"product_line":"p{i:02}""#)))
        .collect();
    lines.push(ev("d0", "deal.created", "2026-11-10T10:00:00Z", "r1", r#","deal_id":"D0","amount":5"#));
    let (_, m) = fold(&core, &lines);
    let by: BTreeMap<&str, f64> = m
        .iter()
        .filter(|(k, _)| family(k) == "sales_deals_created_by_product" && label(k, "window") == Some("30d"))
        .map(|(k, v)| (label(k, "product_line").unwrap_or("?"), *v))
        .collect();
    // the first 20 keep their name, the 21st is other, the one without is none
    assert_eq!(by.len(), 22, "{by:?}");
    assert!((1..=20).all(|i| by.get(format!("p{i:02}").as_str()) == Some(&1.0)));
    assert_eq!((by.get("other"), by.get("none"), by.get("p21")), (Some(&1.0), Some(&1.0), None));
    assert_eq!(get(&m, "sales_pipeline_added_by_product", r#"product_line="none",team="t",window="30d""#), Some(5.0));
    // team level only
    assert_eq!(m.keys().filter(|k| k.contains("_by_product") && label(k, "rep").is_some()).count(), 0);
    // the limit is configurable
    let core = core_from("[limits]\nmax_product_lines_per_team = 1\n", Clock::Event);
    let (_, m) = fold(&core, &lines[..3]);
    assert_eq!(get(&m, "sales_deals_created_by_product", r#"product_line="p01",team="t",window="30d""#), Some(1.0));
    assert_eq!(get(&m, "sales_deals_created_by_product", r#"product_line="other",team="t",window="30d""#), Some(2.0));
}

#[test]
fn a_won_deal_inherits_its_created_deals_product_line() {
    let core = core_from("", Clock::Event);
    let lines = vec![
        ev("a", "deal.created", "2026-11-10T10:00:00Z", "r1", r#","deal_id":"D1","amount":100,"product_line":"core""#),
        // an update naming another line does not change the deal's (the first that named one)
        ev("b", "deal.created", "2026-11-10T11:00:00Z", "r1", r#","deal_id":"D1","amount":120,"product_line":"addon""#),
        ev("c", "deal.won", "2026-11-11T10:00:00Z", "r1", r#","deal_id":"D1","amount":120"#),
        // lost without a product line and no deal.created: none
        ev("d", "deal.lost", "2026-11-11T11:00:00Z", "r1", r#","deal_id":"D2""#),
        // the event's own product line wins
        ev("e", "deal.created", "2026-11-10T10:00:00Z", "r1", r#","deal_id":"D3","amount":50,"product_line":"core""#),
        ev("f", "deal.lost", "2026-11-11T12:00:00Z", "r1", r#","deal_id":"D3","product_line":"addon""#),
    ];
    let (_, m) = fold(&core, &lines);
    let w = |p: &str| format!(r#"product_line="{p}",team="t",window="7d""#);
    assert_eq!(get(&m, "sales_deals_won_by_product", &w("core")), Some(1.0));
    assert_eq!(get(&m, "sales_revenue_by_product", &w("core")), Some(120.0));
    // core: 1 won, 0 lost; none: 0 won 1 lost; addon: 0 won, 1 lost
    assert_eq!(get(&m, "sales_win_ratio_by_product", &w("core")), Some(1.0));
    assert_eq!(get(&m, "sales_win_ratio_by_product", &w("none")), Some(0.0));
    assert_eq!(get(&m, "sales_deals_lost_by_product", &w("addon")), Some(1.0));
    // deals created: D1 once (the update does not count), D3: core 2
    assert_eq!(get(&m, "sales_deals_created_by_product", &w("core")), Some(2.0));
    assert_eq!(get(&m, "sales_deals_created_by_product", &w("addon")), None);
}

#[test]
fn coverage_with_no_open_deal_is_zero_and_needs_a_remainder() {
    let core = core_from("", Clock::Event);
    let quota = ev("q", "quota.set", "2026-10-31T00:00:00Z", "r1", r#","period":"month","period_start":"2026-11-01","amount":1000"#);
    let lines = vec![quota.clone(), tick("a", "2026-11-10T00:00:00Z")];
    let (_, m) = fold(&core, &lines);
    assert_eq!(get(&m, "sales_pipeline_coverage_ratio", r#"period="month",rep="r1",team="t""#), Some(0.0));
    assert_eq!(get(&m, "sales_pipeline_coverage_ratio", r#"period="month",team="t""#), Some(0.0));
    // no quarter quota: no quarter coverage
    assert_eq!(get(&m, "sales_pipeline_coverage_ratio", r#"period="quarter",rep="r1",team="t""#), None);
    // open 900, won 400: 900 / (1000 - 400) = 1.5
    let mut more = lines.clone();
    more.push(ev("b", "deal.created", "2026-11-10T00:00:00Z", "r1", r#","deal_id":"D1","amount":900"#));
    more.push(ev("c", "deal.won", "2026-11-10T00:00:00Z", "r1", r#","deal_id":"D2","amount":400"#));
    let (_, m) = fold(&core, &more);
    assert_eq!(get(&m, "sales_pipeline_coverage_ratio", r#"period="month",rep="r1",team="t""#), Some(1.5));
    // quota reached: remainder 0, not exported
    more.push(ev("d", "deal.won", "2026-11-10T00:00:00Z", "r1", r#","deal_id":"D3","amount":600"#));
    let (_, m) = fold(&core, &more);
    assert_eq!(get(&m, "sales_pipeline_coverage_ratio", r#"period="month",rep="r1",team="t""#), None);
}

#[test]
fn projected_attainment_absent_in_the_first_day() {
    let core = core_from("", Clock::Event);
    let lines = vec![
        ev("q", "quota.set", "2026-10-31T00:00:00Z", "r1", r#","period":"month","period_start":"2026-11-01","amount":1000"#),
        ev("a", "deal.won", "2026-11-01T10:00:00Z", "r1", r#","deal_id":"D1","amount":100"#),
    ];
    let (_, m) = fold(&core, &lines);
    assert_eq!(get(&m, "sales_quota_attainment_ratio", r#"rep="r1",team="t",window="mtd""#), Some(0.1));
    assert_eq!(get(&m, "sales_projected_quota_attainment_ratio", r#"rep="r1",team="t",window="mtd""#), None);
    // exactly 24 hours in: 0.1 x 720 h / 24 h = 3
    let mut more = lines;
    more.push(tick("b", "2026-11-02T00:00:00Z"));
    let (_, m) = fold(&core, &more);
    let p = get(&m, "sales_projected_quota_attainment_ratio", r#"rep="r1",team="t",window="mtd""#).expect("projected");
    assert!((p - 3.0).abs() < 1e-12, "{p}");
}

#[test]
fn projected_attainment_across_a_dst_change() {
    // Europe/Berlin: October 2026 runs from Sep 30 22:00Z to Oct 31 23:00Z
    // (DST ends Oct 25): 745 hours. At Oct 26 23:00Z (Oct 27 00:00 local) 625
    // hours have passed. 250 of 1000: 0.25 x 745 / 625 = 0.298.
    let core = core_from("[windows]\ntime_zone = \"Europe/Berlin\"\n", Clock::Event);
    let lines = vec![
        ev("q", "quota.set", "2026-09-30T00:00:00Z", "r1", r#","period":"month","period_start":"2026-10-01","amount":1000"#),
        ev("a", "deal.won", "2026-10-26T12:00:00Z", "r1", r#","deal_id":"D1","amount":250"#),
        tick("b", "2026-10-26T23:00:00Z"),
    ];
    let (_, m) = fold(&core, &lines);
    let p = get(&m, "sales_projected_quota_attainment_ratio", r#"rep="r1",team="t",window="mtd""#).expect("projected");
    assert!((p - 0.25 * 745.0 / 625.0).abs() < 1e-12, "{p}");
    assert_eq!(get(&m, "sales_projected_quota_attainment_ratio", r#"team="t",window="mtd""#), Some(p));
}

#[test]
fn regions_and_benchmarks() {
    let core = core_from("[segments.regions]\nt = \"emea\"\nother = \"apac\"\n", Clock::Event);
    let (_, m) = fold(&core, &[tick("a", "2026-11-10T00:00:00Z")]);
    assert_eq!(get(&m, "sales_team_info", r#"region="emea",team="t""#), Some(1.0));
    // a team without state exports nothing
    assert_eq!(m.keys().filter(|k| family(k) == "sales_team_info").count(), 1);
    assert_eq!(get(&m, "sales_benchmark", r#"bound="target",kpi="lead_touches_mean""#), Some(16.0));
    assert_eq!(get(&m, "sales_benchmark", r#"bound="target",kpi="pipeline_coverage_ratio""#), Some(3.0));
}

#[test]
fn product_line_is_validated() {
    let core = core_from("", Clock::Event);
    let mut s = Shard::new();
    for (i, bad) in [r#""a b""#, r#""""#, "5", &format!("\"{}\"", "x".repeat(65))].iter().enumerate() {
        let l = ev(&format!("x{i}"), "deal.created", "2026-11-10T10:00:00Z", "r1", &format!(r#","deal_id":"D","amount":1,"product_line":{bad}"#));
        match s.ingest(&core, l.as_bytes(), WALL) {
            Outcome::Invalid(inv) => assert_eq!(inv.reason, InvalidReason::BadField, "{bad}"),
            o => panic!("{bad}: {o:?}"),
        }
    }
    let ok = ev("y", "quote.sent", "2026-11-10T10:00:00Z", "r1", r#","product_line":"core.v2:eu@x_y-z""#);
    assert_eq!(s.ingest(&core, ok.as_bytes(), WALL), Outcome::Applied);
}
