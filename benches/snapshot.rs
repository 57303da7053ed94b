//! Checkpoint at size: the large profile (`salespulse gen --profile large`:
//! 10 000 reps in 1 000 teams, 30 days) folded into one shard, the worst
//! case of one partition holding every rep. Prints snapshot bytes (total and
//! per rep), encode time and decode time (the restore of a partition's
//! snapshot, before the consumer resumes), best of three.
//! `cargo bench --bench snapshot` (about a minute; ~3 GiB of memory).

use std::time::{Duration, Instant};

use salespulse::config::CoreConfig;
use salespulse::engine::{Clock, Core, Shard};
use salespulse::gen::{Generator, Profile};
use salespulse::run::checkpoint;

fn best<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut best = Duration::MAX;
    for _ in 0..n {
        let t0 = Instant::now();
        let v = f();
        best = best.min(t0.elapsed());
        out = Some(v);
    }
    (best, out.expect("n > 0"))
}

fn main() {
    let cfg = Profile::Large.config();
    let core = Core::new(CoreConfig { max_reps: 1_000_000, ..CoreConfig::default() }, Clock::Event);
    let mut shard = Shard::new();
    let t0 = Instant::now();
    let mut events = 0u64;
    for e in Generator::new(cfg) {
        shard.ingest(&core, e.line.as_bytes(), i64::MAX / 2);
        events += 1;
    }
    if let Some(t) = shard.event_clock {
        shard.maintain(&core, t);
    }
    let reps = shard.rep_count().max(1);
    println!("snapshot bench: large profile, {events} events, {reps} reps, {} teams, folded in {:.1} s", shard.teams.len(), t0.elapsed().as_secs_f64());
    let (enc, bytes) = best(3, || checkpoint::encode(&shard, 1).expect("encode"));
    println!(
        "snapshot: {} bytes = {} bytes per rep; encode {:.0} ms",
        bytes.len(),
        bytes.len() / reps,
        enc.as_secs_f64() * 1e3
    );
    drop(shard);
    let (dec, (restored, next)) = best(3, || checkpoint::decode(&bytes).expect("decode"));
    assert_eq!(next, 1);
    println!("restore: decode {:.0} ms for {} reps ({} teams)", dec.as_secs_f64() * 1e3, restored.rep_count(), restored.teams.len());
}
