//! Fold throughput: NDJSON bytes → applied state, one core.
//!
//! `cargo bench --bench fold`. The stream is the generator's default mix
//! (4 teams × 8 reps, 14 days, with 2 % re-deliveries), so every event type,
//! the joins and dedup are exercised. Reported as events/s (Throughput::Elements).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use salespulse::config::CoreConfig;
use salespulse::engine::{Clock, Core, Shard};
use salespulse::event::{parse_event, ValidationRules};
use salespulse::gen::{GenConfig, Generator};

fn stream(cfg: GenConfig) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut bytes = Vec::new();
    let mut spans = Vec::new();
    for ev in Generator::new(cfg) {
        let start = bytes.len();
        bytes.extend_from_slice(ev.line.as_bytes());
        spans.push((start, bytes.len()));
        bytes.push(b'\n');
    }
    (bytes, spans)
}

fn fold(c: &mut Criterion) {
    let cfg = GenConfig { redeliver_ratio: 0.02, ..GenConfig::default() };
    let (bytes, spans) = stream(cfg);
    let n = spans.len() as u64;
    let avg = bytes.len() as f64 / n as f64;
    eprintln!("fold bench: {n} events, {avg:.0} bytes/event on average");
    let mut g = c.benchmark_group("fold");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("parse_only", |b| {
        let rules = ValidationRules::default();
        b.iter(|| {
            let mut ok = 0u64;
            for &(s, e) in &spans {
                ok += u64::from(parse_event(&bytes[s..e], &rules).is_ok());
            }
            ok
        })
    });
    g.bench_function("ingest_event_clock", |b| {
        b.iter_batched(
            || (Core::new(CoreConfig::default(), Clock::Event), Shard::new()),
            |(core, mut shard)| {
                for &(s, e) in &spans {
                    shard.ingest(&core, &bytes[s..e], i64::MAX / 2);
                }
                shard.stats.applied
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, fold);
criterion_main!(benches);
