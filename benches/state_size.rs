//! State size per active rep, measured with a counting global allocator:
//! the bytes live after folding the generator's default activity over
//! 60 days (so every window, the previous windows, the 7-day dedup horizon
//! and 60 days of joins are full), divided by the number of reps.
//! `cargo bench --bench state_size`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use salespulse::config::CoreConfig;
use salespulse::engine::{Clock, Core, Shard};
use salespulse::gen::{GenConfig, Generator};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    // the last run: the stream without v1.1's follow-up touches (as earlier
    // releases generated it), so state compares with theirs event for event
    for (days, follow_ups) in [(14u32, true), (60, true), (60, false)] {
        let cfg = GenConfig { days, follow_ups, ..GenConfig::default() };
        let core = Core::new(CoreConfig::default(), Clock::Event);
        let lines: Vec<String> = Generator::new(cfg).map(|e| e.line).collect();
        let before = LIVE.load(Ordering::Relaxed);
        let mut shard = Shard::new();
        for l in &lines {
            shard.ingest(&core, l.as_bytes(), i64::MAX / 2);
        }
        if let Some(t) = shard.event_clock {
            shard.maintain_and_tidy(&core, t);
        }
        let live = LIVE.load(Ordering::Relaxed) - before;
        let reps = shard.rep_count().max(1);
        println!(
            "state size: {days} days{}, {} events, {reps} reps, {} teams: {} bytes live = {} bytes per rep (estimate from heap_bytes: {} per rep)",
            if follow_ups { "" } else { " without follow-ups" },
            lines.len(),
            shard.teams.len(),
            live,
            live / reps,
            shard.heap_bytes() / reps
        );
        let b = shard.heap_breakdown();
        let per = |x: usize| x as f64 / reps as f64 / 1000.0;
        println!(
            "  per rep (KB): rep windows {:.2} (index {:.2}, arena {:.2}; records {}), team windows {:.2}, leads {:.2}, deals {:.2}, dedup {:.2}, keys {:.2}; sum {:.2}",
            per(b.rep_index + b.rep_arena),
            per(b.rep_index),
            per(b.rep_arena),
            b.rep_records.iter().map(|&x| format!("{:.2}", per(x))).collect::<Vec<_>>().join(" / "),
            per(b.team_windows),
            per(b.leads),
            per(b.deals),
            per(b.dedup),
            per(b.keys),
            per(b.total())
        );
        drop(shard);
    }
}
