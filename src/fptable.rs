//! A hash table keyed by 64-bit fingerprints, dense enough to keep the
//! per-rep memory budget: the dedup set and the lead and deal books.
//!
//! Owns: storing `(fingerprint, value)` pairs and finding them.
//! Must not touch: what the fingerprints or values mean.
//!
//! Keys are already uniform hashes, so the home slot of a key is the key
//! scaled to the number of slots (any number, not only powers of two), and
//! the home slot grows with the key. Collisions are resolved by linear
//! probing with the entries kept sorted by key (ordered linear probing): a
//! lookup starts at the key's home and stops at the first larger key or
//! empty slot, a few compares even at 90 % load; an insert shifts the rest of
//! its run one slot on, a removal shifts it back (no tombstones, so
//! [`FpTable::retain`] frees slots in place). Runs do not wrap around: past
//! the last home slot there is an overflow area, and an insert that would
//! run beyond it grows the table. Keys and values are kept in two arrays (no
//! padding between a `u64` key and an `i32` value: a dedup entry is 12
//! bytes). Key 0 marks an empty slot: fingerprint 0 is stored as 1 (two
//! fingerprints in 2^64 become one; see the callers for what a fingerprint
//! collision means).

use serde::{Deserialize, Serialize};

/// Load factor (in tenths) above which an insert grows the table.
const MAX_LOAD_TENTHS: usize = 9;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FpTable<V> {
    keys: Vec<u64>,
    vals: Vec<V>,
    /// Home slots (`keys.len()` minus the overflow area).
    homes: usize,
    len: usize,
}

#[inline]
fn stored(k: u64) -> u64 {
    k.max(1)
}

/// Overflow slots past the last home slot.
fn overflow(homes: usize) -> usize {
    homes / 64 + 8
}

impl<V: Copy + Default> FpTable<V> {
    pub fn new() -> Self {
        FpTable { keys: Vec::new(), vals: Vec::new(), homes: 0, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Home slots (the overflow area apart).
    pub fn capacity(&self) -> usize {
        self.homes
    }

    /// Bytes of the two arrays.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<u64>() + self.vals.capacity() * std::mem::size_of::<V>()
    }

    #[inline]
    fn home(&self, k: u64) -> usize {
        ((u128::from(k) * self.homes as u128) >> 64) as usize
    }

    /// The slot of `k` if present (`Ok`), else where it belongs (`Err`).
    #[inline]
    fn search(&self, k: u64) -> Result<usize, usize> {
        let mut i = self.home(k);
        loop {
            match self.keys.get(i) {
                Some(&s) if s != 0 && s < k => i += 1,
                Some(&s) if s == k => return Ok(i),
                _ => return Err(i),
            }
        }
    }

    #[inline]
    fn find(&self, k: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        self.search(stored(k)).ok()
    }

    pub fn get(&self, k: u64) -> Option<&V> {
        self.find(k).map(|i| &self.vals[i])
    }

    pub fn get_mut(&mut self, k: u64) -> Option<&mut V> {
        self.find(k).map(|i| &mut self.vals[i])
    }

    pub fn contains_key(&self, k: u64) -> bool {
        self.find(k).is_some()
    }

    /// Whether one more entry would pass the maximum load.
    pub fn is_full(&self) -> bool {
        (self.len + 1) * 10 > self.homes * MAX_LOAD_TENTHS
    }

    /// Inserts or replaces; grows the table when it is full.
    pub fn insert(&mut self, k: u64, v: V) {
        self.insert_at(stored(k), v);
    }

    /// The value of `k`, inserted by `f` first if absent; and whether it was.
    pub fn get_or_insert_with(&mut self, k: u64, f: impl FnOnce() -> V) -> (&mut V, bool) {
        if let Some(i) = self.find(k) {
            return (&mut self.vals[i], false);
        }
        let i = self.insert_at(stored(k), f());
        (&mut self.vals[i], true)
    }

    /// Inserts (or replaces) stored key `k`; returns its slot.
    fn insert_at(&mut self, k: u64, v: V) -> usize {
        if self.homes > 0 {
            match self.search(k) {
                Ok(i) => {
                    self.vals[i] = v;
                    return i;
                }
                Err(i) if !self.is_full() => {
                    // The run from `i` on moves one slot on, into the first empty one.
                    if let Some(gap) = self.keys[i..].iter().position(|&s| s == 0) {
                        let j = i + gap;
                        self.keys.copy_within(i..j, i + 1);
                        self.vals.copy_within(i..j, i + 1);
                        self.keys[i] = k;
                        self.vals[i] = v;
                        self.len += 1;
                        return i;
                    }
                    // Not full, but the run would leave the overflow area
                    // (keys crowded at the top of the key space): lay the
                    // table out again with the key in it, which widens the
                    // overflow area until every run fits. Growing the home
                    // slots instead may not help: the same crowd lands at
                    // the same end again.
                    let mut entries: Vec<(u64, V)> = self.iter().map(|(key, val)| (key, *val)).collect();
                    let at = entries.partition_point(|e| e.0 < k);
                    entries.insert(at, (k, v));
                    self.rebuild(self.homes, entries);
                    return self.insert_at(k, v);
                }
                Err(_) => {}
            }
        }
        // Full: grow (to 80 % load: growing by an eighth keeps the table
        // dense; the rebuilds still cost O(1) amortized per insert).
        self.resize((self.len + 1) * 5 / 4 + 8);
        self.insert_at(k, v)
    }

    /// Removes the entry at slot `i`, shifting the rest of its run back.
    fn remove_at(&mut self, mut i: usize) {
        while let Some(&next) = self.keys.get(i + 1) {
            if next == 0 || self.home(next) > i {
                break;
            }
            self.keys[i] = next;
            self.vals[i] = self.vals[i + 1];
            i += 1;
        }
        self.keys[i] = 0;
        self.vals[i] = V::default();
        self.len -= 1;
    }

    pub fn remove(&mut self, k: u64) -> Option<V> {
        let i = self.find(k)?;
        let v = self.vals[i];
        self.remove_at(i);
        Some(v)
    }

    /// Keeps the entries for which `keep` returns true (it may change them);
    /// `keep` sees every entry exactly once.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        let mut i = 0;
        while i < self.keys.len() {
            if self.keys[i] != 0 && !keep(self.keys[i], &mut self.vals[i]) {
                // Slot `i` now holds the next entry of the run, not seen yet.
                self.remove_at(i);
                continue;
            }
            i += 1;
        }
    }

    /// Rebuilds the table with `slots` home slots (at least `len` / 0.9).
    pub fn resize(&mut self, slots: usize) {
        let homes = slots.max(self.len * 10 / MAX_LOAD_TENTHS + 1).max(4);
        let entries: Vec<(u64, V)> = self.iter().map(|(k, v)| (k, *v)).collect();
        self.rebuild(homes, entries);
    }

    /// Lays out sorted `entries` in a table of `homes` home slots, doubling
    /// the overflow area if a run would pass it.
    fn rebuild(&mut self, homes: usize, entries: Vec<(u64, V)>) {
        let mut extra = overflow(homes);
        'layout: loop {
            self.homes = homes;
            self.keys = vec![0; homes + extra];
            self.vals = vec![V::default(); homes + extra];
            self.len = entries.len();
            let mut next = 0;
            for &(k, v) in &entries {
                let i = self.home(k).max(next);
                if i >= self.keys.len() {
                    extra *= 2;
                    continue 'layout;
                }
                self.keys[i] = k;
                self.vals[i] = v;
                next = i + 1;
            }
            return;
        }
    }

    /// Shrinks the table when it is less than half full (to 80 % load).
    pub fn fit(&mut self) {
        if self.len * 2 < self.homes {
            self.resize(self.len * 5 / 4 + 4);
        }
    }

    /// Every `(key, value)`, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.keys.iter().zip(&self.vals).filter(|(k, _)| **k != 0).map(|(k, v)| (*k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// Serialized as the list of entries; the table is rebuilt at 80 % load.
impl<V: Copy + Default + Serialize> Serialize for FpTable<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len))?;
        for e in self.iter() {
            seq.serialize_element(&e)?;
        }
        seq.end()
    }
}

impl<'de, V: Copy + Default + Deserialize<'de>> Deserialize<'de> for FpTable<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries: Vec<(u64, V)> = Vec::deserialize(d)?;
        Ok(Self::from_entries(entries))
    }
}

impl<V: Copy + Default> FpTable<V> {
    /// A table of `entries` (a repeated key keeps its last value) at 80 % load.
    pub fn from_entries(mut entries: Vec<(u64, V)>) -> Self {
        for e in &mut entries {
            e.0 = stored(e.0);
        }
        // Stable: of equal keys the last one is kept.
        entries.sort_by_key(|e| e.0);
        let mut dedup: Vec<(u64, V)> = Vec::with_capacity(entries.len());
        for e in entries {
            match dedup.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => dedup.push(e),
            }
        }
        let mut t = FpTable::new();
        t.rebuild(dedup.len() * 5 / 4 + 4, dedup);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Keys crowded at the top of the key space once looped forever: the
    /// run left the overflow area while the table was not full, and growing
    /// the home slots laid the crowd out at the same end again (a replay of
    /// `gen --seed 2 --days 45` hung in `Joins::lead_created`).
    #[test]
    fn keys_crowded_at_the_top_fit() {
        let mut t: FpTable<u32> = FpTable::new();
        for i in 0..2000u64 {
            t.insert(u64::MAX - i, i as u32);
            assert_eq!(t.len(), i as usize + 1);
        }
        for i in 0..2000u64 {
            assert_eq!(t.get(u64::MAX - i), Some(&(i as u32)));
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in prop::collection::vec((0u8..4, 0u64..64, any::<i32>()), 0..400), mode in 0u8..3) {
            let mut t: FpTable<i32> = FpTable::new();
            let mut m: HashMap<u64, i32> = HashMap::new();
            // Small keys collide in few slots at the bottom, top ones crowd
            // the overflow area; spread ones use the whole range.
            let key = |k: u64| match mode {
                0 => k,
                1 => k.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                _ => u64::MAX - k,
            };
            for (op, k, v) in ops {
                let k = key(k);
                match op {
                    0 | 1 => {
                        t.insert(k, v);
                        m.insert(k.max(1), v);
                    }
                    2 => {
                        prop_assert_eq!(t.remove(k), m.remove(&k.max(1)));
                    }
                    _ => {
                        let cut = v;
                        t.retain(|_, x| *x > cut);
                        m.retain(|_, x| *x > cut);
                        t.fit();
                    }
                }
                prop_assert_eq!(t.len(), m.len());
                for (mk, mv) in &m {
                    prop_assert_eq!(t.get(*mk), Some(mv));
                }
                prop_assert!(t.len() * 10 <= t.capacity() * 9 || t.capacity() <= 4);
                let keys: Vec<u64> = t.iter().map(|(k, _)| k).collect();
                prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
            }
            let mut seen = 0;
            t.retain(|_, _| { seen += 1; true });
            prop_assert_eq!(seen, m.len());
        }
    }

    #[test]
    fn zero_is_stored_as_one_and_tables_are_dense() {
        let mut t: FpTable<u8> = FpTable::new();
        t.insert(0, 7);
        assert_eq!(t.get(1), Some(&7));
        let mut t: FpTable<i32> = FpTable::new();
        for k in 0..10_000u64 {
            t.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, k as i32);
        }
        assert!(t.len() * 10 > t.capacity() * 6, "{} in {}", t.len(), t.capacity());
        assert_eq!(std::mem::size_of::<u64>() + std::mem::size_of::<i32>(), 12);
    }
}
