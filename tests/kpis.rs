//! Hand-computed expectations for every KPI family, window edge, bad-input
//! path and join. Each expected number is worked out in the comment above it
//! from the contract, not taken from the engine's output.

mod common;

use std::collections::BTreeMap;

use common::*;
use salespulse::engine::{Clock, Outcome};
use salespulse::event::InvalidReason;

/// One NDJSON line. `rep` may be empty for rep-less events.
fn ev(id: &str, ty: &str, at: &str, team: &str, rep: &str, extra: &str) -> String {
    let rep = if rep.is_empty() { String::new() } else { format!(r#","rep_id":"{rep}""#) };
    format!(r#"{{"event_id":"{id}","type":"{ty}","occurred_at":"{at}","team_id":"{team}"{rep}{extra}}}"#)
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> Option<f64> {
    m.get(key).copied()
}

fn k(name: &str, labels: &str) -> String {
    canonical(name, labels)
}

/// A day of one SDR (rep s1, team t) plus a teammate, at clock 2026-11-18T12:00Z (Wednesday).
fn sdr_day() -> Vec<String> {
    let mut v = Vec::new();
    // 10 outbound calls: 4 no_answer, 2 voicemail, 1 connected, 3 meaningful
    let outcomes = ["no_answer", "no_answer", "no_answer", "no_answer", "voicemail", "voicemail", "connected", "meaningful", "meaningful", "meaningful"];
    for (i, o) in outcomes.iter().enumerate() {
        v.push(ev(&format!("c{i}"), "call.logged", &format!("2026-11-18T09:{:02}:00Z", i * 5), "t", "s1", &format!(r#","outcome":"{o}""#)));
    }
    // 6 outbound emails: 4 sent, 1 replied, 1 meaningful; and 2 inbound (1 meaningful call, 1 email)
    for (i, o) in ["sent", "sent", "sent", "sent", "replied", "meaningful"].iter().enumerate() {
        v.push(ev(&format!("m{i}"), "email.logged", &format!("2026-11-18T10:{:02}:00Z", i * 5), "t", "s1", &format!(r#","outcome":"{o}""#)));
    }
    v.push(ev("in1", "call.logged", "2026-11-18T10:40:00Z", "t", "s1", r#","outcome":"meaningful","direction":"inbound""#));
    v.push(ev("in2", "email.logged", "2026-11-18T10:41:00Z", "t", "s1", r#","outcome":"replied","direction":"inbound""#));
    // leads: 4 created, 2 MQL, 1 SQL (by s1)
    for i in 0..4 {
        v.push(ev(&format!("l{i}"), "lead.created", &format!("2026-11-18T08:0{i}:00Z"), "t", "s1", &format!(r#","lead_id":"L{i}""#)));
    }
    v.push(ev("q1", "lead.qualified", "2026-11-18T11:00:00Z", "t", "s1", r#","lead_id":"L0","stage":"mql""#));
    v.push(ev("q2", "lead.qualified", "2026-11-18T11:01:00Z", "t", "s1", r#","lead_id":"L1","stage":"mql""#));
    v.push(ev("q3", "lead.qualified", "2026-11-18T11:02:00Z", "t", "s1", r#","lead_id":"L0","stage":"sql""#));
    // meetings: 3 booked; held, no_show, rescheduled by rep, rescheduled by prospect, canceled
    for i in 0..3 {
        v.push(ev(&format!("b{i}"), "meeting.booked", "2026-11-18T11:10:00Z", "t", "s1", &format!(r#","meeting_id":"M{i}""#)));
    }
    for (i, (st, by)) in [("held", ""), ("no_show", ""), ("rescheduled", "rep"), ("rescheduled", "prospect"), ("canceled", "")].iter().enumerate() {
        let by = if by.is_empty() { String::new() } else { format!(r#","rescheduled_by":"{by}""#) };
        v.push(ev(&format!("mc{i}"), "meeting.completed", "2026-11-18T11:20:00Z", "t", "s1", &format!(r#","meeting_id":"M{i}","status":"{st}"{by}"#)));
    }
    v
}

#[test]
fn activity_funnel_and_ratios() {
    let core = core_from("", Clock::Event);
    let mut lines = sdr_day();
    lines.push(ev("clock", "quote.sent", "2026-11-18T12:00:00Z", "t", "s2", ""));
    let (_, m) = fold_render(&core, &lines, ts("2026-11-18T12:00:00Z"));
    let rep = |name: &str, w: &str| get(&m, &k(name, &format!("team=\"t\",rep=\"s1\",window=\"{w}\"")));
    let team = |name: &str, w: &str| get(&m, &k(name, &format!("team=\"t\",window=\"{w}\"")));
    for w in ["1d", "7d", "30d", "today", "wtd", "mtd", "qtd"] {
        // outbound = 10 calls + 6 emails; inbound 2
        assert_eq!(rep("sales_outbound_activities", w), Some(16.0), "{w}");
        assert_eq!(rep("sales_inbound_activities", w), Some(2.0));
        assert_eq!(rep("sales_outbound_calls", w), Some(10.0));
        // connects: outbound calls connected or meaningful = 1 + 3
        assert_eq!(rep("sales_connects", w), Some(4.0));
        // meaningful outbound: 3 calls + 1 email (the inbound meaningful call does not count)
        assert_eq!(rep("sales_meaningful_conversations", w), Some(4.0));
        assert_eq!(rep("sales_reach_ratio", w), Some(0.25));
        assert_eq!(rep("sales_connect_ratio", w), Some(0.4));
        assert_eq!(rep("sales_leads_created", w), Some(4.0));
        assert_eq!(rep("sales_mqls", w), Some(2.0));
        assert_eq!(rep("sales_sqls", w), Some(1.0));
        assert_eq!(rep("sales_lead_to_mql_ratio", w), Some(0.5));
        assert_eq!(rep("sales_mql_to_sql_ratio", w), Some(0.5));
        // pass = sqls / meaningful = 1/4
        assert_eq!(rep("sales_pass_ratio", w), Some(0.25));
        // no deals created: pipe ratio 0 of 1 SQL
        assert_eq!(rep("sales_pipe_ratio", w), Some(0.0));
        assert_eq!(rep("sales_meetings_booked", w), Some(3.0));
        assert_eq!(rep("sales_meetings_held", w), Some(1.0));
        assert_eq!(rep("sales_meetings_no_show", w), Some(1.0));
        assert_eq!(rep("sales_meetings_rescheduled_by_rep", w), Some(1.0));
        // no-show = 1 / (1 + 1)
        assert_eq!(rep("sales_no_show_ratio", w), Some(0.5));
        // Wilson upper, z = 1.96, 4 of 16: p=.25, (p + z²/32 + z·sqrt(p(1-p)/16 + z²/1024)) / (1 + z²/16)
        let z2 = 1.96f64 * 1.96;
        let want = (0.25 + z2 / 32.0 + 1.96 * (0.25 * 0.75 / 16.0 + z2 / 1024.0).sqrt()) / (1.0 + z2 / 16.0);
        assert!(close(rep("sales_reach_upper95_ratio", w).unwrap(), want));
        // pipe upper: 0 of 1: (z²/2 + z·sqrt(z²/4)) / (1 + z²) = z² / (1 + z²)
        assert!(close(rep("sales_pipe_upper95_ratio", w).unwrap(), z2 / (1.0 + z2)));
        // the team has the same activities (s2 only sent a quote)
        assert_eq!(team("sales_outbound_activities", w), Some(16.0));
        assert_eq!(team("sales_reach_ratio", w), Some(0.25));
        // both reps active
        assert_eq!(team("sales_active_reps", w), Some(2.0));
    }
    // 1h window at 12:00: buckets 11:01..12:00 hold only qualifications at 11:01 and 11:02, meetings at 11:10/11:20 and the quote
    assert_eq!(rep("sales_outbound_activities", "1h"), None);
    assert_eq!(rep("sales_reach_ratio", "1h"), None);
    assert_eq!(rep("sales_mqls", "1h"), Some(1.0));
    assert_eq!(rep("sales_sqls", "1h"), Some(1.0));
    assert_eq!(rep("sales_meetings_booked", "1h"), Some(3.0));
    // a zero count is omitted
    assert_eq!(rep("sales_deals_won", "30d"), None);
    assert_eq!(rep("sales_win_ratio", "30d"), None);
    // team-only families never carry a rep label
    assert!(!m.keys().any(|k| k.starts_with("sales_active_reps{") && k.contains("rep=")));
}

#[test]
fn deals_money_and_nps() {
    let core = core_from("", Clock::Event);
    let t = "t";
    let lines = vec![
        ev("d1", "deal.created", "2026-11-16T09:00:00Z", t, "a", r#","deal_id":"D1","amount":1000"#),
        // same deal again: updates amount and owner, not a new deal
        ev("d1b", "deal.created", "2026-11-16T10:00:00Z", t, "b", r#","deal_id":"D1","amount":1500"#),
        ev("d2", "deal.created", "2026-11-16T09:30:00Z", t, "a", r#","deal_id":"D2","amount":2000.25"#),
        ev("d3", "deal.created", "2026-11-16T09:40:00Z", t, "a", r#","deal_id":"D3","amount":300"#),
        ev("qs1", "quote.sent", "2026-11-16T11:00:00Z", t, "a", r#","deal_id":"D2""#),
        ev("qs2", "quote.sent", "2026-11-16T11:00:00Z", t, "a", ""),
        ev("qs3", "quote.sent", "2026-11-16T11:00:00Z", t, "a", ""),
        ev("qs4", "quote.sent", "2026-11-16T11:00:00Z", t, "a", ""),
        // won: D2 new with margin, D9 (never created) upsell without margin, D8 renewal with margin
        ev("w1", "deal.won", "2026-11-17T09:00:00Z", t, "a", r#","deal_id":"D2","amount":2000,"margin":500"#),
        ev("w2", "deal.won", "2026-11-17T09:00:00Z", t, "a", r#","deal_id":"D9","amount":1000,"kind":"upsell""#),
        ev("w3", "deal.won", "2026-11-17T09:00:00Z", t, "a", r#","deal_id":"D8","amount":3000,"kind":"renewal","margin":600"#),
        ev("l1", "deal.lost", "2026-11-17T09:30:00Z", t, "a", r#","deal_id":"D3","reason":"price""#),
        ev("n1", "nps.recorded", "2026-11-17T10:00:00Z", t, "a", r#","score":10"#),
        ev("n2", "nps.recorded", "2026-11-17T10:00:00Z", t, "a", r#","score":9"#),
        ev("n3", "nps.recorded", "2026-11-17T10:00:00Z", t, "a", r#","score":7"#),
        ev("n4", "nps.recorded", "2026-11-17T10:00:00Z", t, "a", r#","score":6"#),
        ev("n5", "nps.recorded", "2026-11-17T10:00:00Z", t, "", r#","score":0"#),
        ev("ch1", "customer.churned", "2026-11-17T11:00:00Z", t, "a", r#","customer_id":"C1","reason":"voluntary","mrr":99.5"#),
        ev("ch2", "customer.churned", "2026-11-17T11:00:00Z", t, "", r#","customer_id":"C2","reason":"involuntary""#),
        ev("sp1", "spend.recorded", "2026-11-17T00:00:00Z", t, "a", r#","amount":400,"category":"marketing""#),
        ev("sp2", "spend.recorded", "2026-11-17T00:00:00Z", t, "", r#","amount":600,"category":"sales""#),
        ev("lc", "lead.created", "2026-11-17T12:00:00Z", t, "", r#","lead_id":"Lx""#),
        ev("lc2", "lead.created", "2026-11-17T12:00:00Z", t, "", r#","lead_id":"Ly""#),
    ];
    let (_, m) = fold_render(&core, &lines, ts("2026-11-17T12:00:00Z"));
    let rep = |name: &str, who: &str| get(&m, &k(name, &format!("team=\"t\",rep=\"{who}\",window=\"7d\"")));
    let team = |name: &str| get(&m, &k(name, "team=\"t\",window=\"7d\""));
    // D1 (once), D2, D3 created by a; the update by b is not a new deal
    assert_eq!(rep("sales_deals_created", "a"), Some(3.0));
    assert_eq!(rep("sales_deals_created", "b"), None);
    // pipeline added: 1000 + 2000.25 + 300 (the first amounts)
    assert!(close(rep("sales_pipeline_added", "a").unwrap(), 3300.25));
    assert_eq!(rep("sales_quotes_sent", "a"), Some(4.0));
    assert_eq!(rep("sales_deals_won", "a"), Some(3.0));
    assert_eq!(rep("sales_deals_lost", "a"), Some(1.0));
    assert_eq!(rep("sales_win_ratio", "a"), Some(0.75));
    assert_eq!(rep("sales_close_ratio", "a"), Some(0.75));
    assert_eq!(rep("sales_revenue", "a"), Some(6000.0));
    assert_eq!(rep("sales_avg_deal_size", "a"), Some(2000.0));
    assert_eq!(rep("sales_new_customers", "a"), Some(1.0));
    assert_eq!(rep("sales_upsell_deals", "a"), Some(1.0));
    assert_eq!(rep("sales_upsell_ratio", "a"), Some(1.0 / 3.0));
    // margin 500 + 600 over the amounts of the deals that carry one: 2000 + 3000
    assert_eq!(rep("sales_margin", "a"), Some(1100.0));
    assert_eq!(rep("sales_margin_ratio", "a"), Some(0.22));
    // NPS: rep a: 2 promoters, 1 passive, 1 detractor of 4 -> 25; team adds a 0 -> (2-2)/5 -> 0
    assert_eq!(rep("sales_nps", "a"), Some(25.0));
    assert_eq!(team("sales_nps"), Some(0.0));
    assert_eq!(team("sales_nps_responses"), Some(5.0));
    assert_eq!(team("sales_nps_detractors"), Some(2.0));
    assert_eq!(get(&m, &k("sales_churned_customers", "team=\"t\",rep=\"a\",window=\"7d\",reason=\"voluntary\"")), Some(1.0));
    assert_eq!(get(&m, &k("sales_churned_customers", "team=\"t\",window=\"7d\",reason=\"involuntary\"")), Some(1.0));
    assert_eq!(team("sales_churned_mrr"), Some(99.5));
    // spend is team level only, rep_id ignored
    assert_eq!(get(&m, &k("sales_spend", "team=\"t\",window=\"7d\",category=\"marketing\"")), Some(400.0));
    assert_eq!(get(&m, &k("sales_spend", "team=\"t\",window=\"7d\",category=\"sales\"")), Some(600.0));
    assert!(!m.keys().any(|k| k.starts_with("sales_spend{") && k.contains("rep=")));
    // cost per lead = 400 / 2 leads; CAC = (400 + 600) / 1 new customer
    assert_eq!(team("sales_cost_per_lead"), Some(200.0));
    assert_eq!(team("sales_cac"), Some(1000.0));
    // active reps in 7d: a and b (spend's rep is ignored) -> revenue per rep 6000 / 2
    assert_eq!(team("sales_active_reps"), Some(2.0));
    assert_eq!(team("sales_revenue_per_rep"), Some(3000.0));
    // open deals: D1 (now owned by b, 1500); D2 won, D3 lost
    assert_eq!(get(&m, &k("sales_open_deals", "team=\"t\",rep=\"b\"")), Some(1.0));
    assert_eq!(get(&m, &k("sales_pipeline_value", "team=\"t\",rep=\"b\"")), Some(1500.0));
    assert_eq!(get(&m, &k("sales_open_deals", "team=\"t\",rep=\"a\"")), None);
    assert_eq!(get(&m, &k("sales_open_deals", "team=\"t\"")), Some(1.0));
    // applied events by type; rep label absent for rep-less events and for spend
    assert_eq!(get(&m, &k("sales_events_total", "team=\"t\",rep=\"a\",type=\"nps.recorded\"")), Some(4.0));
    assert_eq!(get(&m, &k("sales_events_total", "team=\"t\",type=\"nps.recorded\"")), Some(1.0));
    assert_eq!(get(&m, &k("sales_events_total", "team=\"t\",type=\"spend.recorded\"")), Some(2.0));
}

#[test]
fn lead_response_and_cycle_joins_out_of_order() {
    let core = core_from("", Clock::Event);
    let t = "t";
    let lines = vec![
        // activity on L1 before its lead.created was applied: no observation
        ev("a0", "call.logged", "2026-11-16T09:10:00Z", t, "r", r#","lead_id":"L1","outcome":"no_answer""#),
        ev("lc1", "lead.created", "2026-11-16T09:00:00Z", t, "r", r#","lead_id":"L1""#),
        // first outbound after the lead: 1200 s (09:00 -> 09:20)
        ev("a1", "email.logged", "2026-11-16T09:20:00Z", t, "r", r#","lead_id":"L1","outcome":"sent""#),
        // later ones don't count
        ev("a2", "call.logged", "2026-11-16T12:00:00Z", t, "r", r#","lead_id":"L1","outcome":"meaningful""#),
        // a second lead.created of L1 changes nothing
        ev("lc1b", "lead.created", "2026-11-16T11:00:00Z", t, "r", r#","lead_id":"L1""#),
        // L2: an inbound activity does not answer; the outbound one 2 h later does (7200 s, not within 1 h)
        ev("lc2", "lead.created", "2026-11-16T10:00:00Z", t, "r", r#","lead_id":"L2""#),
        ev("a3", "call.logged", "2026-11-16T10:30:00Z", t, "r", r#","lead_id":"L2","outcome":"connected","direction":"inbound""#),
        ev("a4", "call.logged", "2026-11-16T12:00:00Z", t, "q", r#","lead_id":"L2","outcome":"connected""#),
        // L3: activity timestamped before the lead (clock skew): clamped to 0
        ev("lc3", "lead.created", "2026-11-16T13:00:00Z", t, "r", r#","lead_id":"L3""#),
        ev("a5", "email.logged", "2026-11-16T12:59:00Z", t, "r", r#","lead_id":"L3","outcome":"sent""#),
        // same lead id in another team is another lead
        ev("a6", "email.logged", "2026-11-16T13:00:00Z", "other", "r", r#","lead_id":"L1","outcome":"sent""#),
        // cycle: D1 won with lead L1 known -> from 09:00 on Nov 16 to 09:00 Nov 18 = 172800 s
        ev("dc1", "deal.created", "2026-11-17T09:00:00Z", t, "r", r#","deal_id":"D1","amount":10"#),
        ev("w1", "deal.won", "2026-11-18T09:00:00Z", t, "r", r#","deal_id":"D1","lead_id":"L1","amount":10"#),
        // D2: no lead on the won event nor its deal.created -> from its first deal.created: 3600 s
        ev("dc2", "deal.created", "2026-11-18T08:00:00Z", t, "r", r#","deal_id":"D2","amount":10"#),
        ev("dc2b", "deal.created", "2026-11-18T08:30:00Z", t, "r", r#","deal_id":"D2","amount":20"#),
        ev("w2", "deal.won", "2026-11-18T09:00:00Z", t, "r", r#","deal_id":"D2","amount":20"#),
        // D3: unknown deal, unknown lead -> no observation
        ev("w3", "deal.won", "2026-11-18T09:00:00Z", t, "r", r#","deal_id":"D3","lead_id":"nope","amount":5"#),
        // D4: no lead on the won event, but its deal.created named L3 (created Nov 16 13:00):
        // from the lead, 44 h = 158400 s (docs/decisions.md, "Sales cycle start")
        ev("dc4", "deal.created", "2026-11-18T08:00:00Z", t, "r", r#","deal_id":"D4","lead_id":"L3","amount":10"#),
        ev("w4", "deal.won", "2026-11-18T09:00:00Z", t, "r", r#","deal_id":"D4","amount":10"#),
    ];
    let (_, m) = fold_render(&core, &lines, ts("2026-11-18T09:00:00Z"));
    let team = |name: &str| get(&m, &k(name, "team=\"t\",window=\"7d\""));
    let rep = |name: &str, who: &str| get(&m, &k(name, &format!("team=\"t\",rep=\"{who}\",window=\"7d\"")));
    // three leads in team t: the second lead.created of L1 is not a new lead
    assert_eq!(team("sales_leads_created"), Some(3.0));
    assert_eq!(get(&m, &k("sales_events_total", "team=\"t\",rep=\"r\",type=\"lead.created\"")), Some(4.0));
    // observations: L1 1200 (rep r), L2 7200 (rep q), L3 0 (rep r)
    assert_eq!(team("sales_lead_responses"), Some(3.0));
    assert_eq!(team("sales_lead_response_mean_seconds"), Some(2800.0));
    assert_eq!(team("sales_lead_response_within_1h_ratio"), Some(2.0 / 3.0));
    // nearest rank: p50 = 2nd of (0, 1200, 7200) = 1200; p90 = 3rd = 7200 (both within 1%)
    let p50 = team("sales_lead_response_p50_seconds").unwrap();
    assert!((p50 - 1200.0).abs() <= 12.0, "{p50}");
    let p90 = team("sales_lead_response_p90_seconds").unwrap();
    assert!((p90 - 7200.0).abs() <= 72.0, "{p90}");
    assert_eq!(rep("sales_lead_responses", "r"), Some(2.0));
    assert_eq!(rep("sales_lead_response_mean_seconds", "r"), Some(600.0));
    assert_eq!(rep("sales_lead_responses", "q"), Some(1.0));
    assert_eq!(rep("sales_lead_response_within_1h_ratio", "q"), Some(0.0));
    assert_eq!(get(&m, &k("sales_lead_responses", "team=\"other\",window=\"7d\"")), None);
    // cycles: 172800, 3600 and 158400
    assert_eq!(team("sales_cycles"), Some(3.0));
    // (3600 + 158400 + 172800) / 3; nearest rank of (3600, 158400, 172800):
    // p50 = 2nd (within 1%), p90 = 3rd (the exact max)
    assert_eq!(team("sales_cycle_mean_seconds"), Some(111600.0));
    let p50 = team("sales_cycle_p50_seconds").unwrap();
    assert!((p50 - 158400.0).abs() <= 1584.0, "{p50}");
    assert_eq!(team("sales_cycle_p90_seconds"), Some(172800.0));
}

#[test]
fn growth_uses_the_previous_window() {
    let core = core_from("", Clock::Event);
    let lines = vec![
        // previous 1d window at clock Nov 18 10:30: hours (Nov 16 10:00, Nov 17 10:00]
        ev("w0", "deal.won", "2026-11-16T10:59:59Z", "t", "r", r#","deal_id":"D0","amount":100"#),
        ev("w1", "deal.won", "2026-11-17T10:00:00Z", "t", "r", r#","deal_id":"D1","amount":300"#),
        // hour Nov 16 09:00: before the previous window
        ev("w2", "deal.won", "2026-11-16T09:59:59Z", "t", "r", r#","deal_id":"D2","amount":1000"#),
        // current 1d: hours (Nov 17 10:00, Nov 18 10:00]
        ev("w3", "deal.won", "2026-11-17T11:00:00Z", "t", "r", r#","deal_id":"D3","amount":500"#),
        ev("w4", "deal.won", "2026-11-18T10:30:00Z", "t", "r", r#","deal_id":"D4","amount":100"#),
    ];
    let (_, m) = fold_render(&core, &lines, ts("2026-11-18T10:30:00Z"));
    // now = hour Nov 18 10:00. current: hours Nov 17 11:00 .. Nov 18 10:00 -> 500 + 100
    // previous: hours Nov 16 11:00 .. Nov 17 10:00 -> 300 (Nov 16 10:59:59 is in hour 10:00, outside)
    let rev = get(&m, &k("sales_revenue", "team=\"t\",window=\"1d\""));
    assert_eq!(rev, Some(600.0));
    assert_eq!(get(&m, &k("sales_growth_ratio", "team=\"t\",window=\"1d\"")), Some(1.0));
    // calendar windows have no growth
    assert_eq!(get(&m, &k("sales_growth_ratio", "team=\"t\",window=\"mtd\"")), None);
    // 7d previous window holds nothing (all five are within the current 7 days)
    assert_eq!(get(&m, &k("sales_growth_ratio", "team=\"t\",window=\"7d\"")), None);
}

#[test]
fn quotas_team_fallback_and_own() {
    let core = core_from("", Clock::Event);
    let lines = vec![
        ev("qa", "quota.set", "2026-11-01T00:00:00Z", "t", "a", r#","period":"month","period_start":"2026-11-01","amount":1000"#),
        ev("qb", "quota.set", "2026-11-01T00:00:00Z", "t", "b", r#","period":"month","period_start":"2026-11-01","amount":3000"#),
        // last one processed wins
        ev("qb2", "quota.set", "2026-11-02T00:00:00Z", "t", "b", r#","period":"month","period_start":"2026-11-01","amount":2000"#),
        // a quota for another month is not in force
        ev("qa12", "quota.set", "2026-11-02T00:00:00Z", "t", "a", r#","period":"month","period_start":"2026-12-01","amount":9"#),
        ev("qq", "quota.set", "2026-10-01T00:00:00Z", "u", "", r#","period":"quarter","period_start":"2026-10-01","amount":10000"#),
        ev("qu", "quota.set", "2026-10-01T00:00:00Z", "u", "x", r#","period":"quarter","period_start":"2026-10-01","amount":50"#),
        ev("w", "deal.won", "2026-11-10T00:00:00Z", "t", "a", r#","deal_id":"D","amount":600"#),
        ev("wu", "deal.won", "2026-11-10T00:00:00Z", "u", "x", r#","deal_id":"D","amount":2500"#),
    ];
    let (_, m) = fold_render(&core, &lines, ts("2026-11-10T00:00:00Z"));
    assert_eq!(get(&m, &k("sales_quota", "team=\"t\",rep=\"a\",period=\"month\"")), Some(1000.0));
    assert_eq!(get(&m, &k("sales_quota", "team=\"t\",rep=\"b\",period=\"month\"")), Some(2000.0));
    // team t has no own quota: sum of reps 1000 + 2000
    assert_eq!(get(&m, &k("sales_quota", "team=\"t\",period=\"month\"")), Some(3000.0));
    assert_eq!(get(&m, &k("sales_quota_attainment_ratio", "team=\"t\",rep=\"a\",window=\"mtd\"")), Some(0.6));
    assert_eq!(get(&m, &k("sales_quota_attainment_ratio", "team=\"t\",window=\"mtd\"")), Some(0.2));
    assert_eq!(get(&m, &k("sales_quota_attainment_ratio", "team=\"t\",window=\"qtd\"")), None);
    // team u's own quarter quota wins over the sum of its reps
    assert_eq!(get(&m, &k("sales_quota", "team=\"u\",period=\"quarter\"")), Some(10000.0));
    assert_eq!(get(&m, &k("sales_quota_attainment_ratio", "team=\"u\",window=\"qtd\"")), Some(0.25));
    assert_eq!(get(&m, &k("sales_quota_attainment_ratio", "team=\"u\",rep=\"x\",window=\"qtd\"")), Some(50.0));
    // quota.set does not make a rep active: b has only quotas
    assert_eq!(get(&m, &k("sales_active_reps", "team=\"t\",window=\"mtd\"")), Some(1.0));
    // quota attainment only on mtd/qtd
    assert!(!m.keys().any(|k| k.starts_with("sales_quota_attainment_ratio{") && !(k.contains("mtd") || k.contains("qtd"))));
}

#[test]
fn calendar_windows_in_a_zone_with_dst() {
    let core = core_from("[windows]\ntime_zone = \"Europe/Berlin\"\n", Clock::Event);
    // Berlin leaves DST on Sunday 2026-10-25 (03:00 CEST -> 02:00 CET).
    // Clock: Monday 2026-10-26 00:30 CET = 2026-10-25T23:30Z.
    let lines = vec![
        // Sunday 23:59 CET (22:59Z): yesterday locally, last ISO week
        ev("a", "quote.sent", "2026-10-25T22:59:00Z", "t", "r", ""),
        // Monday 00:00 CET (23:00Z on Sunday UTC): today, this week
        ev("b", "quote.sent", "2026-10-25T23:00:00Z", "t", "r", ""),
        // Sep 30 23:30Z is Oct 1 01:30 CEST: this quarter locally, last quarter in UTC
        ev("c", "quote.sent", "2026-09-30T23:30:00Z", "t", "r", ""),
        ev("d", "quote.sent", "2026-10-25T23:30:00Z", "t", "r", ""),
    ];
    let (_, m) = fold_render(&core, &lines, ts("2026-10-25T23:30:00Z"));
    let w = |win: &str| get(&m, &k("sales_quotes_sent", &format!("team=\"t\",window=\"{win}\"")));
    assert_eq!(w("today"), Some(2.0));
    assert_eq!(w("wtd"), Some(2.0));
    assert_eq!(w("mtd"), Some(4.0));
    assert_eq!(w("qtd"), Some(4.0));

    // Same events in UTC: today = Oct 25 UTC (a, b, d), week of Mon Oct 19 (a, b, d), month Oct (a, b, d), qtd excludes c (Sep 30 UTC)
    let utc = core_from("", Clock::Event);
    let (_, m) = fold_render(&utc, &lines, ts("2026-10-25T23:30:00Z"));
    let w = |win: &str| get(&m, &k("sales_quotes_sent", &format!("team=\"t\",window=\"{win}\"")));
    assert_eq!(w("today"), Some(3.0));
    assert_eq!(w("wtd"), Some(3.0));
    assert_eq!(w("qtd"), Some(3.0));
}

#[test]
fn window_edges_at_bucket_boundaries() {
    let core = core_from("", Clock::Event);
    let lines = vec![
        ev("a", "quote.sent", "2026-11-18T09:00:59.999Z", "t", "r", ""),
        ev("b", "quote.sent", "2026-11-18T09:01:00Z", "t", "r", ""),
        ev("clock", "quote.sent", "2026-11-18T10:00:00Z", "t", "s", ""),
    ];
    // at 10:00:00 the 1h window covers minute buckets 09:01..10:00: b and clock, not a
    let (_, m) = fold_render(&core, &lines, ts("2026-11-18T10:00:00Z"));
    assert_eq!(get(&m, &k("sales_quotes_sent", "team=\"t\",window=\"1h\"")), Some(2.0));
    assert_eq!(get(&m, &k("sales_quotes_sent", "team=\"t\",rep=\"r\",window=\"1h\"")), Some(1.0));
    // with a fixed clock one second earlier: the 10:00 event is within the future tolerance, applied to a future bucket
    let fixed = core_from("", Clock::Fixed(ts("2026-11-18T09:59:59Z")));
    let (_, m) = fold_render(&fixed, &lines, 0);
    // buckets 09:00..09:59 hold a and b; the 10:00 event is in a future bucket
    assert_eq!(get(&m, &k("sales_quotes_sent", "team=\"t\",window=\"1h\"")), Some(2.0));
    assert_eq!(get(&m, &k("sales_quotes_sent", "team=\"t\",rep=\"s\",window=\"1h\"")), None);
}

#[test]
fn bad_input_is_counted_never_fatal() {
    let core = core_from("", Clock::Fixed(ts("2026-11-18T12:00:00Z")));
    let mut shard = salespulse::engine::Shard::new();
    let good = ev("g", "quote.sent", "2026-11-18T11:00:00Z", "t", "r", "");
    let cases: Vec<(String, Option<InvalidReason>)> = vec![
        (good.clone(), None),
        ("{not json".into(), Some(InvalidReason::Json)),
        (ev("x1", "quote.sent", "2026-11-18T11:00:00Z", "t", "", ""), Some(InvalidReason::MissingField)),
        (ev("x2", "quote.sent", "yesterday", "t", "r", ""), Some(InvalidReason::BadField)),
        (ev("x3", "quote.exploded", "2026-11-18T11:00:00Z", "t", "r", ""), Some(InvalidReason::UnknownType)),
        (ev("x4", "deal.won", "2026-11-18T11:00:00Z", "t", "r", r#","deal_id":"d","amount":1,"currency":"EUR""#), Some(InvalidReason::Currency)),
        (ev("x5", "quote.sent", "2026-11-18T12:05:01Z", "t", "r", ""), Some(InvalidReason::Future)),
        (ev("x6", "quote.sent", "2026-11-18T11:00:00Z", "t", "r", &format!(r#","pad":"{}""#, "p".repeat(66_000))), Some(InvalidReason::TooLarge)),
        (good.clone(), None),
    ];
    let mut outcomes = Vec::new();
    for (line, _) in &cases {
        outcomes.push(shard.ingest(&core, line.as_bytes(), 0));
    }
    for ((line, want), got) in cases.iter().zip(&outcomes) {
        match want {
            Some(r) => assert!(matches!(got, Outcome::Invalid(i) if i.reason == *r), "{}: {got:?}", &line[..line.len().min(80)]),
            None => {}
        }
    }
    assert_eq!(outcomes[0], Outcome::Applied);
    assert_eq!(outcomes[8], Outcome::Duplicate);
    assert_eq!(shard.stats.applied, 1);
    assert_eq!(shard.stats.invalid_total(), 7);
    // late at a fixed clock: before the 30d previous window (day of Nov 18 - 59 = Sep 20)
    let late = ev("old", "quote.sent", "2026-09-19T23:59:59Z", "t", "r", "");
    assert_eq!(shard.ingest(&core, late.as_bytes(), 0), Outcome::Late);
    let kept = ev("old2", "quote.sent", "2026-09-20T00:00:00Z", "t", "r", "");
    assert_eq!(shard.ingest(&core, kept.as_bytes(), 0), Outcome::Applied);
}

#[test]
fn benchmarks_with_team_override() {
    let core = core_from("[benchmarks.teams.emea]\nreach_ratio_min = 0.3\n[benchmarks]\npipe_ratio_min = 0.7\n", Clock::Event);
    let (_, m) = fold_render(&core, &[ev("a", "quote.sent", "2026-11-18T11:00:00Z", "t", "r", "")], ts("2026-11-18T12:00:00Z"));
    assert_eq!(get(&m, &k("sales_benchmark", "kpi=\"reach_ratio\",bound=\"min\"")), Some(0.35));
    assert_eq!(get(&m, &k("sales_benchmark", "kpi=\"pipe_ratio\",bound=\"min\"")), Some(0.7));
    assert_eq!(get(&m, &k("sales_benchmark", "kpi=\"reach_ratio\",bound=\"min\",team=\"emea\"")), Some(0.3));
    assert_eq!(get(&m, &k("sales_benchmark", "kpi=\"lead_response_within_1h_ratio\",bound=\"target\"")), Some(1.0));
}

#[test]
fn open_deals_expire_after_the_ttl() {
    let core = core_from("[horizons]\ndeal_ttl = \"30d\"\n", Clock::Event);
    let lines = vec![
        ev("d1", "deal.created", "2026-10-01T00:00:00Z", "t", "r", r#","deal_id":"D1","amount":100"#),
        ev("d2", "deal.created", "2026-10-20T00:00:00Z", "t", "r", r#","deal_id":"D2","amount":50"#),
        ev("x", "quote.sent", "2026-10-31T00:00:01Z", "t", "r", ""),
    ];
    let (_, m) = fold_render(&core, &lines, ts("2026-11-01T00:00:00Z"));
    assert_eq!(get(&m, &k("sales_open_deals", "team=\"t\"")), Some(1.0));
    assert_eq!(get(&m, &k("sales_pipeline_value", "team=\"t\",rep=\"r\"")), Some(50.0));
}
