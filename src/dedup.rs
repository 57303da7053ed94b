//! Idempotency: remembers the `event_id`s applied within the dedup horizon.
//!
//! Owns: the set of applied event ids and their application time.
//! Must not touch: anything else; the engine decides what "applied" means.
//!
//! An event is a duplicate when its id was applied at most `horizon` ago
//! by the engine clock (the clock at the time it was applied, not its
//! `occurred_at`: a re-delivery of an old event is still caught).
//!
//! Memory: an entry is 16 bytes plus one control byte. Ids are stored as
//! 96-bit XXH3 fingerprints (the low 96 bits of XXH3-128): a false duplicate
//! needs two distinct ids applied within one horizon to share 96 bits; with
//! `n` ids in the horizon, each new id is falsely matched with probability
//! at most `n / 2^96` (below 10^-20 per event even for 10^8 ids). The
//! application time is kept to the second as an `i32` offset from a base
//! that moves to the clock at every sweep, so the horizon check is exact.
//! Expired entries are removed in sweeps every quarter horizon of clock time
//! (amortized O(1) per event); a sweep also rebuilds the table at its new
//! size, since erased slots are not reused by hashbrown and would otherwise
//! double the table. Exactness needs the horizon and any backward step of
//! the clock to stay below 68 years (the `i32` range of seconds); an entry
//! further than that from the clock is dropped.

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

/// 96-bit fingerprint of an event id (three `u32`s: 4-byte alignment keeps
/// an entry at 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint([u32; 3]);

impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Already uniform: the low 64 bits are the table hash.
        state.write_u64(u64::from(self.0[0]) | u64::from(self.0[1]) << 32);
    }
}

pub fn fingerprint(id: &str) -> Fingerprint {
    let h = xxhash_rust::xxh3::xxh3_128(id.as_bytes());
    Fingerprint([h as u32, (h >> 32) as u32, (h >> 64) as u32])
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dedup {
    /// fingerprint -> application time, seconds after `base`.
    seen: HashMap<Fingerprint, i32, PrehashedBuild>,
    /// Seconds since the epoch that offsets count from: the clock of the
    /// last sweep.
    base: i64,
    next_sweep: Micros,
}

impl Dedup {
    /// Whether `fp` was applied within `horizon` of clock `t`.
    pub fn is_duplicate(&self, fp: Fingerprint, t: Micros, horizon: Micros) -> bool {
        self.seen.get(&fp).is_some_and(|&off| t - (self.base + i64::from(off)) * MICROS_PER_SEC <= horizon)
    }

    /// Records `fp` as applied at clock `t`.
    pub fn record(&mut self, fp: Fingerprint, t: Micros, horizon: Micros) {
        let secs = t.div_euclid(MICROS_PER_SEC);
        if t >= self.next_sweep || i32::try_from(secs - self.base).is_err() {
            self.sweep(t, horizon);
        }
        // After a sweep at `t` the offset is 0.
        let off = i32::try_from(secs - self.base).unwrap_or(0);
        self.seen.insert(fp, off);
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
        // Rebuild for what is live plus the next quarter horizon of ids
        // (estimated as a third of what is live): erased slots are not
        // reusable, so rebuilding keeps the table from doubling.
        let want = self.seen.len() + self.seen.len() / 3;
        let mut fresh = HashMap::with_capacity_and_hasher(want, PrehashedBuild::default());
        fresh.extend(self.seen.drain());
        self.seen = fresh;
        self.next_sweep = t + (horizon / 4).max(MICROS_PER_SEC);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.seen.capacity() * (std::mem::size_of::<(Fingerprint, i32)>() + 1)
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
