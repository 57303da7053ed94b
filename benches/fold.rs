//! Fold throughput: NDJSON bytes → applied state, one core, on the three
//! generator profiles (`salespulse gen --profile ...`).
//!
//! `cargo bench --bench fold` (all), `cargo bench --bench fold -- realistic`
//! (one profile). Reported as events/s (`Throughput::Elements`).
//!
//! - `small`: 4 teams × 8 reps, 14 days, compact lines, with 2 % re-deliveries
//!   (so dedup rejects some): the stream that fits in cache.
//! - `realistic`: 40 teams × 12 reps, 90 days, CRM-style lines (timestamps
//!   with fractions and offsets, `json.dumps` spacing), 2.0 M events.
//! - `large`: 1 000 teams × 10 reps, 30 days. Its 12 M events do not fit in
//!   memory as one buffer, so the bench folds the first 27 days once (not
//!   timed) and then times the last 3 days (1.1 M events) folded into a copy
//!   of that state: the steady state of a partition with 10 k reps.
//!
//! Each profile has `parse` (parsing and validation alone) and `fold` (what
//! `Shard::ingest` does per message, from the bytes).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use salespulse::config::CoreConfig;
use salespulse::engine::{Clock, Core, Shard};
use salespulse::event::{parse_event, ValidationRules};
use salespulse::gen::{Generator, Profile};

/// Far in the future: nothing is `future`; the event clock drives windows.
const WALL: i64 = i64::MAX / 2;

/// Lines as one buffer plus their spans (no newline inside a span).
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Stream {
    fn push(&mut self, line: &str) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(line.as_bytes());
        self.spans.push((start, self.bytes.len()));
        self.bytes.push(b'\n');
    }
    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|&(s, e)| &self.bytes[s..e])
    }
}

fn core() -> Core {
    Core::new(CoreConfig { max_reps: 1_000_000, ..CoreConfig::default() }, Clock::Event)
}

/// The timed stream of a profile and the state it is folded into.
fn setup(profile: Profile) -> (Stream, Shard) {
    let mut cfg = profile.config();
    let mut warm = Shard::new();
    let mut timed = Stream::default();
    match profile {
        Profile::Small => {
            cfg.redeliver_ratio = 0.02;
            Generator::new(cfg).for_each(|e| timed.push(&e.line));
        }
        Profile::Realistic => Generator::new(cfg).for_each(|e| timed.push(&e.line)),
        Profile::Large => {
            let cut = cfg.start_ms + i64::from(cfg.days - 3) * 86_400_000;
            let c = core();
            for e in Generator::new(cfg) {
                if e.ts_ms < cut {
                    warm.ingest(&c, e.line.as_bytes(), WALL);
                } else {
                    timed.push(&e.line);
                }
            }
            warm.release(&c);
        }
    }
    (timed, warm)
}

fn profile(c: &mut Criterion, name: &str, p: Profile) {
    let (stream, warm) = setup(p);
    let n = stream.spans.len() as u64;
    eprintln!(
        "fold bench {name}: {n} timed events, {:.0} bytes/event, folded into {} reps",
        stream.bytes.len() as f64 / n as f64,
        warm.rep_count()
    );
    let mut g = c.benchmark_group(format!("fold/{name}"));
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("parse", |b| {
        let rules = ValidationRules::default();
        b.iter(|| stream.lines().filter(|l| parse_event(l, &rules).is_ok()).count())
    });
    g.bench_function("fold", |b| {
        b.iter_batched(
            || {
                let c = core();
                let s = warm.clone().restored(&c);
                (c, s)
            },
            |(core, mut shard)| {
                for l in stream.lines() {
                    shard.ingest(&core, l, WALL);
                }
                (shard.stats.applied, shard)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn fold(c: &mut Criterion) {
    for (name, p) in [("small", Profile::Small), ("realistic", Profile::Realistic), ("large", Profile::Large)] {
        // `cargo bench --bench fold -- NAME` builds only the profile asked for.
        if std::env::args().skip(1).filter(|a| !a.starts_with('-')).all(|a| name.contains(&a) || a.contains(name)) {
            profile(c, name, p);
        }
    }
}

criterion_group!(benches, fold);
criterion_main!(benches);
