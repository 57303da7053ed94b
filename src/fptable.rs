//! A hash table keyed by 64-bit fingerprints, dense enough to keep the
//! per-rep memory budget: the dedup set and the lead and deal books.
//!
//! Owns: storing `(fingerprint, value)` pairs and finding them.
//! Must not touch: what the fingerprints or values mean.
//!
//! Keys are already uniform hashes, so the slot of a key is the key scaled to
//! the table length (any length, not only powers of two). Collisions are
//! resolved by Robin Hood linear probing, which keeps probe sequences short
//! up to 90 % load; deletion shifts the following entries back, so there
//! are no tombstones and [`FpTable::retain`] frees slots in place. Keys and
//! values are kept in two arrays (no padding between a `u64` key and an `i32`
//! value: a dedup entry is 12 bytes). Key 0 marks an empty slot: fingerprint
//! 0 is stored as 1 (two fingerprints in 2^64 become one; see the callers for
//! what a fingerprint collision means).

use serde::{Deserialize, Serialize};

/// Load factor (in tenths) above which an insert grows the table.
const MAX_LOAD_TENTHS: usize = 9;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FpTable<V> {
    keys: Vec<u64>,
    vals: Vec<V>,
    len: usize,
}

#[inline]
fn stored(k: u64) -> u64 {
    k.max(1)
}

impl<V: Copy + Default> FpTable<V> {
    pub fn new() -> Self {
        FpTable { keys: Vec::new(), vals: Vec::new(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots (the table length).
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    /// Bytes of the two arrays.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<u64>() + self.vals.capacity() * std::mem::size_of::<V>()
    }

    #[inline]
    fn home(&self, k: u64) -> usize {
        ((u128::from(k) * self.keys.len() as u128) >> 64) as usize
    }

    /// Probe distance of the entry at slot `i`.
    #[inline]
    fn dist(&self, i: usize) -> usize {
        let h = self.home(self.keys[i]);
        if i >= h {
            i - h
        } else {
            i + self.keys.len() - h
        }
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.keys.len() {
            0
        } else {
            i + 1
        }
    }

    /// Slot of key `k`, if present.
    #[inline]
    fn find(&self, k: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let k = stored(k);
        let mut i = self.home(k);
        let mut d = 0;
        loop {
            let s = self.keys[i];
            if s == k {
                return Some(i);
            }
            if s == 0 || self.dist(i) < d {
                return None;
            }
            i = self.next(i);
            d += 1;
        }
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
        (self.len + 1) * 10 > self.keys.len() * MAX_LOAD_TENTHS
    }

    /// Inserts or replaces; grows the table when it is full.
    pub fn insert(&mut self, k: u64, v: V) {
        if let Some(i) = self.find(k) {
            self.vals[i] = v;
            return;
        }
        if self.is_full() {
            // To 80 % load: growing by an eighth keeps the table dense; the
            // rebuilds still cost O(1) amortized per insert.
            self.resize((self.len + 1) * 5 / 4 + 8);
        }
        self.insert_new(stored(k), v);
    }

    /// The value of `k`, inserted by `f` first if absent; and whether it was.
    pub fn get_or_insert_with(&mut self, k: u64, f: impl FnOnce() -> V) -> (&mut V, bool) {
        if let Some(i) = self.find(k) {
            return (&mut self.vals[i], false);
        }
        self.insert(k, f());
        let i = self.find(k).unwrap_or(0);
        (&mut self.vals[i], true)
    }

    /// Inserts a key known to be absent (already `stored`), with room for it.
    fn insert_new(&mut self, mut k: u64, mut v: V) {
        let mut i = self.home(k);
        let mut d = 0;
        loop {
            if self.keys[i] == 0 {
                self.keys[i] = k;
                self.vals[i] = v;
                self.len += 1;
                return;
            }
            let di = self.dist(i);
            if di < d {
                std::mem::swap(&mut self.keys[i], &mut k);
                std::mem::swap(&mut self.vals[i], &mut v);
                d = di;
            }
            i = self.next(i);
            d += 1;
        }
    }

    /// Removes the entry at slot `i`, shifting its cluster back.
    fn remove_at(&mut self, mut i: usize) {
        loop {
            let j = self.next(i);
            if self.keys[j] == 0 || self.dist(j) == 0 {
                break;
            }
            self.keys[i] = self.keys[j];
            self.vals[i] = self.vals[j];
            i = j;
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
        let n = self.keys.len();
        if self.len == 0 {
            return;
        }
        // Start after an empty slot: no cluster wraps past the start, so
        // backward shifts only move entries not visited yet.
        let Some(empty) = self.keys.iter().position(|&k| k == 0) else { return self.retain_full(keep) };
        let mut i = self.next(empty);
        let mut seen = 0;
        while seen < n - 1 {
            if self.keys[i] != 0 && !keep(self.keys[i], &mut self.vals[i]) {
                self.remove_at(i);
                // Slot `i` now holds the next entry of the cluster (or nothing).
                if self.keys[i] != 0 {
                    continue;
                }
            }
            i = self.next(i);
            seen += 1;
        }
    }

    /// `retain` on a table without an empty slot (only one of capacity 0).
    fn retain_full(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        let entries: Vec<(u64, V)> = self.iter().map(|(k, v)| (k, *v)).collect();
        let cap = self.keys.len();
        *self = FpTable::new();
        self.resize(cap);
        for (k, mut v) in entries {
            if keep(k, &mut v) {
                self.insert_new(k, v);
            }
        }
    }

    /// Rebuilds the table with `slots` slots (at least `len` / 0.9).
    pub fn resize(&mut self, slots: usize) {
        let slots = slots.max(self.len * 10 / MAX_LOAD_TENTHS + 1).max(4);
        let keys = std::mem::replace(&mut self.keys, vec![0; slots]);
        let vals = std::mem::replace(&mut self.vals, vec![V::default(); slots]);
        self.len = 0;
        for (k, v) in keys.into_iter().zip(vals) {
            if k != 0 {
                self.insert_new(k, v);
            }
        }
    }

    /// Shrinks the table when it is less than half full (to 80 % load).
    pub fn fit(&mut self) {
        if self.len * 2 < self.keys.len() {
            self.resize(self.len * 5 / 4 + 4);
        }
    }

    /// Every `(key, value)`, in slot order.
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
    pub fn from_entries(entries: Vec<(u64, V)>) -> Self {
        let mut t = FpTable::new();
        t.resize(entries.len() * 5 / 4 + 4);
        for (k, v) in entries {
            t.insert(k, v);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in prop::collection::vec((0u8..4, 0u64..64, any::<i32>()), 0..400), spread in any::<bool>()) {
            let mut t: FpTable<i32> = FpTable::new();
            let mut m: HashMap<u64, i32> = HashMap::new();
            // Small keys collide in few slots; spread ones use the whole range.
            let key = |k: u64| if spread { k.wrapping_mul(0x9E37_79B9_7F4A_7C15) } else { k };
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
