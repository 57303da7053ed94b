//! A mergeable log-bucketed quantile sketch for durations (lead response,
//! sales cycle).
//!
//! Owns: storing observations compactly and answering nearest-rank quantiles
//! with at most 1 % relative error (`metrics.md`: "the smallest observation x
//! with at least q·n observations ≤ x").
//! Must not touch: windows, KPIs.
//!
//! Design (as DDSketch): bin `i` holds values in `(γ^(i-1), γ^i]` with
//! `γ = (1+α)/(1-α)`, `α = 0.0099`; a bin is reported as `2γ^i/(γ+1)`, which is
//! within `α` of every value in it. Values are also clamped to the exact
//! minimum and maximum seen, so a single observation is reported exactly. Zero
//! (a response logged before the lead's own timestamp is clamped to 0) has its
//! own bin. Bins are a sorted sparse vector: a bucket usually has 0–3
//! observations, so this is much smaller than a dense histogram, and
//! merging is a linear merge.

use serde::{Deserialize, Serialize};

const ALPHA: f64 = 0.0099;
const ZERO_BIN: i16 = i16::MIN;
/// Values at or below this many seconds go to the zero bin.
const MIN_POSITIVE: f64 = 1e-7;

fn gamma_ln() -> f64 {
    ((1.0 + ALPHA) / (1.0 - ALPHA)).ln()
}

/// The bin of a value (computed once per observation and reused for every
/// bucket the observation is added to).
pub fn bin_of(x: f64) -> i16 {
    if x <= MIN_POSITIVE {
        return ZERO_BIN;
    }
    let i = (x.ln() / gamma_ln()).ceil();
    i.clamp(i16::MIN as f64 + 1.0, i16::MAX as f64) as i16
}

fn value_of(bin: i16) -> f64 {
    if bin == ZERO_BIN {
        return 0.0;
    }
    let g = gamma_ln().exp();
    2.0 * (bin as f64 * gamma_ln()).exp() / (g + 1.0)
}

/// A sparse sketch: sorted `(bin, count)` pairs plus exact min and max.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    bins: Vec<(i16, u32)>,
    min: f64,
    max: f64,
}

/// Widens `[min, max]` to hold `x`, or makes it `[x, x]` when nothing was
/// observed yet (`empty`).
#[inline]
pub(crate) fn widen_range(min: &mut f64, max: &mut f64, empty: bool, x: f64) {
    if empty {
        *min = x;
        *max = x;
    } else {
        *min = min.min(x);
        *max = max.max(x);
    }
}

impl Sketch {
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// Empties the sketch, keeping its allocation.
    pub fn clear(&mut self) {
        self.bins.clear();
        self.min = 0.0;
        self.max = 0.0;
    }

    pub fn count(&self) -> u64 {
        self.bins.iter().map(|&(_, c)| c as u64).sum()
    }

    /// Adds `n` to `bin`; `exact` grows the vector by one element at a time
    /// (for sketches kept in state, which mostly hold 1–3 bins and rarely
    /// grow) instead of doubling it.
    fn add_bin(&mut self, bin: i16, n: u32, exact: bool) {
        match self.bins.binary_search_by_key(&bin, |&(b, _)| b) {
            Ok(i) => self.bins[i].1 += n,
            Err(i) => {
                if exact {
                    self.bins.reserve_exact(1);
                }
                self.bins.insert(i, (bin, n))
            }
        }
    }

    /// Records one observation (seconds, `>= 0`).
    pub fn insert(&mut self, x: f64) {
        let x = if x.is_finite() && x > 0.0 { x } else { 0.0 };
        self.insert_binned(x, bin_of(x));
    }

    /// Records observation `x` whose bin is `bin` (= `bin_of(x)`). The bins
    /// are kept at their exact length: this is how state sketches grow.
    pub fn insert_binned(&mut self, x: f64, bin: i16) {
        widen_range(&mut self.min, &mut self.max, self.bins.is_empty(), x);
        self.add_bin(bin, 1, true);
    }

    /// Records observation `x` in bin `bin` (= `bin_of(x)`), growing the bins
    /// by doubling (for sketches summed at render time, not kept in state).
    pub fn add_obs(&mut self, x: f64, bin: i16) {
        widen_range(&mut self.min, &mut self.max, self.bins.is_empty(), x);
        self.add_bin(bin, 1, false);
    }

    /// Adds observations given as sorted `(bin, count)` pairs (counts above
    /// 0) whose exact minimum and maximum are `min` and `max`: the same as
    /// merging a sketch with those bins.
    pub fn merge_bins(&mut self, min: f64, max: f64, bins: impl Iterator<Item = (i16, u32)>) {
        let mut bins = bins.peekable();
        if bins.peek().is_none() {
            return;
        }
        if self.bins.is_empty() {
            self.min = min;
            self.max = max;
            self.bins.extend(bins);
            return;
        }
        self.min = self.min.min(min);
        self.max = self.max.max(max);
        for (b, n) in bins {
            self.add_bin(b, n, false);
        }
    }

    /// A sketch of sorted `(bin, count)` pairs (counts above 0) whose
    /// observations lie in `[min, max]`.
    pub fn from_parts(bins: Vec<(i16, u32)>, min: f64, max: f64) -> Sketch {
        if bins.is_empty() {
            return Sketch::default();
        }
        Sketch { bins, min, max }
    }

    /// The sorted `(bin, count)` pairs and the exact minimum and maximum.
    pub fn parts(&self) -> (&[(i16, u32)], f64, f64) {
        (&self.bins, self.min, self.max)
    }

    /// Adds all observations of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        if other.bins.is_empty() {
            return;
        }
        if self.bins.is_empty() {
            self.clone_from(other);
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.bins.len() <= 2 {
            for &(b, n) in &other.bins {
                self.add_bin(b, n, false);
            }
            return;
        }
        self.bins = merge_sorted_bins(&self.bins, &other.bins);
    }

    /// Nearest-rank quantile `num/den` (e.g. `9/10` for p90): the value of the
    /// `ceil(n·num/den)`-th smallest observation, within 1 %. Integer rank
    /// arithmetic avoids `0.9 * 10 = 9.000000000000002`.
    pub fn quantile(&self, num: u64, den: u64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((n * num).div_ceil(den)).max(1);
        let mut seen = 0u64;
        for &(b, c) in &self.bins {
            seen += c as u64;
            if seen >= rank {
                return Some(value_of(b).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Heap bytes used (for state-size accounting).
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<(i16, u32)>()
    }
}

/// The union of two bin lists sorted by bin, counts of a bin present in both
/// added (wrapping, as every count of the packed state). Shared by
/// [`Sketch`] and the packed records' binned groups.
pub(crate) fn merge_sorted_bins(a: &[(i16, u32)], b: &[(i16, u32)]) -> Vec<(i16, u32)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        match x.0.cmp(&y.0) {
            std::cmp::Ordering::Less => {
                out.push(x);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(y);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((x.0, x.1.wrapping_add(y.1)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(mut xs: Vec<f64>, num: u64, den: u64) -> f64 {
        xs.sort_by(f64::total_cmp);
        let n = xs.len() as u64;
        let rank = (n * num).div_ceil(den).max(1);
        xs[(rank - 1) as usize]
    }

    #[test]
    fn single_value_is_exact() {
        let mut s = Sketch::default();
        s.insert(893_760.0);
        assert_eq!(s.quantile(1, 2), Some(893_760.0));
        assert_eq!(s.quantile(9, 10), Some(893_760.0));
    }

    #[test]
    fn nearest_rank_integer_arithmetic() {
        let mut s = Sketch::default();
        for x in 1..=10 {
            s.insert(x as f64 * 100.0);
        }
        // p90 of 10 values is the 9th, not the 10th.
        let p90 = s.quantile(9, 10).unwrap();
        assert!((p90 - 900.0).abs() / 900.0 <= 0.01, "{p90}");
        let p50 = s.quantile(1, 2).unwrap();
        assert!((p50 - 500.0).abs() / 500.0 <= 0.01, "{p50}");
        assert_eq!(Sketch::default().quantile(1, 2), None);
    }

    #[test]
    fn zero_has_its_own_bin() {
        let mut s = Sketch::default();
        s.insert(0.0);
        s.insert(0.0);
        s.insert(5.0);
        assert_eq!(s.quantile(1, 2), Some(0.0));
        assert_eq!(s.quantile(9, 10), Some(5.0));
    }

    proptest! {
        #[test]
        fn relative_error_within_one_percent(
            xs in prop::collection::vec(prop_oneof![Just(0.0), 0.001f64..1e8], 1..200),
            split in 0usize..200,
        ) {
            // Build in two parts and merge, to cover merging too.
            let split = split.min(xs.len());
            let (mut a, mut b) = (Sketch::default(), Sketch::default());
            xs[..split].iter().for_each(|&x| a.insert(x));
            xs[split..].iter().for_each(|&x| b.insert(x));
            a.merge(&b);
            prop_assert_eq!(a.count(), xs.len() as u64);
            for (num, den) in [(1, 2), (9, 10), (1, 100), (1, 1)] {
                let want = exact(xs.clone(), num, den);
                let got = a.quantile(num, den).unwrap();
                if want == 0.0 {
                    prop_assert_eq!(got, 0.0);
                } else {
                    prop_assert!((got - want).abs() / want <= 0.01, "q={}/{} want {} got {}", num, den, want, got);
                }
            }
        }
    }
}
