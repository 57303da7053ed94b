//! Render time of the KPI exposition for 10 k and 100 k reps at the default
//! windows, without a series budget and (100 k) under the default 2 M one.
//! `cargo bench --bench render`.
//!
//! State: reps in teams of 10, each with a day of activity (calls, emails,
//! leads, meetings, a won deal, quota) spread over the last 24 hours, so most
//! families and windows have series. The bench prints the series count;
//! ns/series = time / series.

use criterion::{criterion_group, criterion_main, Criterion};
use salespulse::config::CoreConfig;
use salespulse::engine::{Clock, Core, Shard};
use salespulse::time::parse_rfc3339;

const NOW: &str = "2026-11-18T16:00:00Z";

fn build(reps: usize) -> (Core, Shard) {
    let now = parse_rfc3339(NOW).unwrap_or(0);
    // No series budget: the bench measures rendering every series.
    let core = Core::new(CoreConfig { max_reps: reps + 1, max_series: usize::MAX, ..CoreConfig::default() }, Clock::Fixed(now));
    let mut shard = Shard::new();
    let mut id = 0u64;
    let mut line = String::new();
    for r in 0..reps {
        let team = r / 10;
        for k in 0..12 {
            id += 1;
            let at = salespulse::time::format_rfc3339(now - (k as i64 * 7 + r as i64 % 5) * 60_000_000 * 11);
            let body = match k % 12 {
                0..=5 => format!(r#""type":"call.logged","outcome":"{}""#, ["no_answer", "connected", "meaningful"][k % 3]),
                6 => r#""type":"email.logged","outcome":"sent""#.to_string(),
                7 => format!(r#""type":"lead.created","lead_id":"L{r}""#),
                8 => r#""type":"lead.qualified","lead_id":"L","stage":"sql""#.to_string(),
                9 => r#""type":"meeting.completed","meeting_id":"M","status":"held""#.to_string(),
                10 => format!(r#""type":"deal.won","deal_id":"D{r}","amount":1200,"margin":300"#),
                _ => r#""type":"quota.set","period":"month","period_start":"2026-11-01","amount":50000"#.to_string(),
            };
            line.clear();
            line.push_str(&format!(r#"{{"event_id":"b{id}","occurred_at":"{at}","team_id":"team-{team}","rep_id":"rep-{r}",{body}}}"#));
            shard.ingest(&core, line.as_bytes(), now);
        }
    }
    (core, shard)
}

fn render(c: &mut Criterion) {
    let now = parse_rfc3339(NOW).unwrap_or(0);
    let mut g = c.benchmark_group("render");
    g.sample_size(10);
    for reps in [10_000usize, 100_000] {
        let (core, shard) = build(reps);
        let mut out = String::new();
        salespulse::render::render(&[&shard], &core, now, &mut out);
        let series = out.lines().filter(|l| !l.starts_with('#')).count();
        eprintln!("render bench: {reps} reps -> {series} series, {} MiB", out.len() >> 20);
        g.throughput(criterion::Throughput::Elements(series as u64));
        g.bench_function(format!("{reps}_reps"), |b| {
            let mut out = String::with_capacity(out.len());
            b.iter(|| {
                out.clear();
                salespulse::render::render(&[&shard], &core, now, &mut out);
                out.len()
            })
        });
    }
    // The same 100 k reps under the default budget (2 M series): the
    // groups beyond it are counted, not written.
    let (core, shard) = build(100_000);
    let core = Core::new(CoreConfig { max_series: 2_000_000, ..core.cfg.clone() }, Clock::Fixed(now));
    let mut out = String::new();
    let report = salespulse::render::render(&[&shard], &core, now, &mut out);
    eprintln!("render bench: 100000 reps, budget 2 M -> {} series, {} dropped", report.series, report.dropped);
    g.throughput(criterion::Throughput::Elements((report.series + report.dropped) as u64));
    g.bench_function("100000_reps_budget_2M", |b| {
        let mut out = String::with_capacity(out.len());
        b.iter(|| {
            out.clear();
            salespulse::render::render(&[&shard], &core, now, &mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
