//! Idempotency: remembers the `event_id`s applied within the dedup horizon.
//!
//! Owns: the set of applied event ids and their application time.
//! Must not touch: anything else; the engine decides what "applied" means.
//!
//! An event is a duplicate when its id was applied less than `horizon` ago
//! by the engine clock (the clock at the time it was applied, not its
//! `occurred_at`: a re-delivery of an old event is still caught). Ids are
//! stored as 128-bit XXH3 fingerprints (16 bytes instead of the id; a false
//! match needs a 2^-128 collision) with the application time in seconds.
//! Expired entries are removed in sweeps every quarter horizon of clock time,
//! so the cost is amortized O(1) per event; lookups check the time exactly.

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

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

/// 128-bit fingerprint of an event id, split for 8-byte alignment.
pub fn fingerprint(id: &str) -> (u64, u64) {
    let h = xxhash_rust::xxh3::xxh3_128(id.as_bytes());
    (h as u64, (h >> 64) as u64)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dedup {
    /// fingerprint -> application time, seconds since the epoch.
    seen: HashMap<(u64, u64), i64, PrehashedBuild>,
    next_sweep: Micros,
}

impl Dedup {
    /// Whether `fp` was applied within `horizon` of clock `t`.
    pub fn is_duplicate(&self, fp: (u64, u64), t: Micros, horizon: Micros) -> bool {
        self.seen.get(&fp).is_some_and(|&at| t - at * MICROS_PER_SEC <= horizon)
    }

    /// Records `fp` as applied at clock `t`.
    pub fn record(&mut self, fp: (u64, u64), t: Micros, horizon: Micros) {
        self.seen.insert(fp, t.div_euclid(MICROS_PER_SEC));
        if t >= self.next_sweep {
            self.sweep(t, horizon);
        }
    }

    /// Drops ids older than the horizon.
    pub fn sweep(&mut self, t: Micros, horizon: Micros) {
        self.seen.retain(|_, at| t - *at * MICROS_PER_SEC <= horizon);
        self.next_sweep = t + (horizon / 4).max(MICROS_PER_SEC);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.seen.capacity() * (std::mem::size_of::<((u64, u64), i64)>() + 1)
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
}
