//! Idempotency: remembers the `event_id`s applied within the dedup horizon.
//!
//! Owns: the set of applied event ids and their application time.
//! Must not touch: anything else; the engine decides what "applied" means.
//!
//! An event is a duplicate when its id was applied at most `horizon` ago
//! by the engine clock (the clock at the time it was applied, not its
//! `occurred_at`: a re-delivery of an old event is still caught).
//!
//! Memory: an entry is 12 bytes in a table kept at 80–90 % load
//! ([`FpTable`]). Ids are stored as 64-bit fingerprints (the low 64 bits of
//! their XXH3-128, which earlier releases kept 96 bits of): a false duplicate
//! needs two distinct ids applied within one horizon to share 64 bits; with
//! `n` ids in the horizon, each new id is falsely matched with probability
//! at most `n / 2^64` (2·10^-13 for the 3.4 M ids a 10 000-rep partition
//! holds in 7 days: at a steady 10 k events/s, one in about 17 years). The
//! application time is kept to the second as an `i32` offset from a base
//! that moves to the clock at every sweep, so the horizon check is exact.
//! Expired entries are removed in place by sweeps, when the table is full
//! (before it would grow) and every sixteenth of the horizon of clock time (amortized
//! O(1) per event). Exactness needs the horizon and any backward step of the
//! clock to stay below 68 years (the `i32` range of seconds); an entry
//! further than that from the clock is dropped.

use serde::{Deserialize, Serialize};

use crate::fptable::FpTable;
use crate::time::{Micros, MICROS_PER_SEC};

/// A hasher for keys that are already uniformly distributed hashes.
#[derive(Default, Clone, Copy)]
pub struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

pub type PrehashedBuild = std::hash::BuildHasherDefault<Prehashed>;

/// 64-bit fingerprint of an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub u64);

pub fn fingerprint(id: &str) -> Fingerprint {
    Fingerprint(xxhash_rust::xxh3::xxh3_128(id.as_bytes()) as u64)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dedup {
    /// fingerprint -> application time, seconds after `base`.
    seen: FpTable<i32>,
    /// Seconds since the epoch that offsets count from: the clock of the
    /// last sweep.
    base: i64,
    next_sweep: Micros,
}

impl Dedup {
    /// Whether `fp` was applied within `horizon` of clock `t`.
    pub fn is_duplicate(&self, fp: Fingerprint, t: Micros, horizon: Micros) -> bool {
        self.seen.get(fp.0).is_some_and(|&off| t - (self.base + i64::from(off)) * MICROS_PER_SEC <= horizon)
    }

    /// Records `fp` as applied at clock `t`.
    pub fn record(&mut self, fp: Fingerprint, t: Micros, horizon: Micros) {
        let secs = t.div_euclid(MICROS_PER_SEC);
        if t >= self.next_sweep || i32::try_from(secs - self.base).is_err() {
            self.sweep(t, horizon);
        } else if self.seen.is_full() {
            // Free the expired ids before the table grows for them; grow by
            // half while the horizon fills (nothing expires), by a quarter
            // after.
            let before = self.seen.len();
            self.sweep(t, horizon);
            let n = self.seen.len();
            if n * 100 > self.seen.capacity() * 85 {
                self.seen.resize(if n * 20 > before * 19 { n * 3 / 2 } else { n * 5 / 4 } + 16);
            }
        }
        // After a sweep at `t` the offset is 0.
        let off = i32::try_from(secs - self.base).unwrap_or(0);
        self.seen.insert(fp.0, off);
    }

    /// Drops ids older than the horizon and moves the base to `t`.
    pub fn sweep(&mut self, t: Micros, horizon: Micros) {
        let base = t.div_euclid(MICROS_PER_SEC);
        let old = self.base;
        self.seen.retain(|_, off| {
            let at = old + i64::from(*off);
            match i32::try_from(at - base) {
                Ok(o) if t - at * MICROS_PER_SEC <= horizon => {
                    *off = o;
                    true
                }
                _ => false,
            }
        });
        self.base = base;
        // Sweeps every sixteenth of the horizon keep the ids of at most 17/16
        // horizons; the table is laid out again at 83 % load when below 75 %,
        // which leaves room for the next sixteenth before it is full (90 %).
        if self.seen.len() * 100 < self.seen.capacity() * 75 {
            self.seen.resize(self.seen.len() * 100 / 83 + 16);
        }
        self.next_sweep = t + (horizon / 16).max(MICROS_PER_SEC);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.seen.heap_bytes()
    }

    /// A set restored from an earlier format: `(fingerprint, offset)` entries.
    pub fn from_parts(entries: Vec<(u64, i32)>, base: i64, next_sweep: Micros) -> Self {
        Dedup { seen: FpTable::from_entries(entries), base, next_sweep }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MICROS_PER_DAY;

    #[test]
    fn horizon_is_exact_and_sweeps_free_memory() {
        let h = 7 * MICROS_PER_DAY;
        let mut d = Dedup::default();
        let a = fingerprint("a");
        d.record(a, 0, h);
        assert!(d.is_duplicate(a, h, h));
        assert!(!d.is_duplicate(a, h + MICROS_PER_SEC, h));
        assert!(!d.is_duplicate(fingerprint("b"), 0, h));
        d.record(fingerprint("b"), 3 * h, h);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn times_survive_rebasing_and_backward_clocks() {
        let h = 7 * MICROS_PER_DAY;
        let mut d = Dedup::default();
        let (a, b, c) = (fingerprint("a"), fingerprint("b"), fingerprint("c"));
        let t0 = 1_790_000_000 * MICROS_PER_SEC + 123_456;
        d.record(a, t0, h);
        // a sweep a quarter horizon later moves the base; `a` keeps its time
        d.record(b, t0 + h / 4 + 1, h);
        assert!(d.is_duplicate(a, t0 - 123_456 + h, h));
        assert!(!d.is_duplicate(a, t0 - 123_456 + h + 1, h));
        // an id applied at a clock before the base (wall clock stepped back)
        d.record(c, t0 - MICROS_PER_DAY, h);
        assert!(d.is_duplicate(c, t0 - MICROS_PER_DAY, h));
        assert!(d.is_duplicate(c, t0 - MICROS_PER_DAY - MICROS_PER_SEC, h));
        assert!(!d.is_duplicate(c, t0 - MICROS_PER_DAY - 123_456 + h + 1, h));
        assert_eq!(std::mem::size_of::<(Fingerprint, i32)>(), 16);
    }
}
