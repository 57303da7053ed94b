//! What is accumulated per bucket: the counts, sums and duration sketches
//! every KPI family is derived from.
//!
//! Owns: the [`Measures`] of one bucket (or calendar period) of one rep or
//! team, the [`Delta`] one event adds, and [`Totals`], the sum of buckets that
//! make up a window at render time.
//! Must not touch: windows, clocks, events (the mapping event → delta is in
//! [`crate::engine`]), KPI formulas (in [`crate::kpi`]).
//!
//! Memory layout: most buckets of a rep only ever see calls and emails, so the
//! six activity counters live inline and everything else (leads, meetings,
//! deals, money, durations) in a boxed [`Funnel`] allocated on first use. A
//! bucket is 40 bytes until a funnel event lands in it. The funnel block is
//! sparse (a presence mask and the nonzero fields only, 8 bytes each, the
//! first two inline; the duration sketches boxed on their first
//! observation): a bucket with one or two funnel fields costs 56 more bytes
//! instead of 240.

use serde::{Deserialize, Serialize};

use crate::sketch::Sketch;

/// Call/email counters, inline in every bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub outbound: u32,
    pub inbound: u32,
    pub outbound_calls: u32,
    pub connects: u32,
    pub meaningful: u32,
    /// Applied events attributed to a rep other than `quota.set`: a rep is
    /// active in a window when this is above 0 there.
    pub active: u32,
}

macro_rules! funnel {
    (counts { $($c:ident),* $(,)? } sums { $($s:ident),* $(,)? }) => {
        /// Everything but calls and emails, stored sparsely: a bucket usually
        /// holds one or two nonzero funnel fields out of 30.
        ///
        /// Field `i` (the counts in declaration order, then the sums) is
        /// present when bit `i` of `mask` is set; the values of the present
        /// fields, in field order (a count as its `u32`, a sum as its `f64`
        /// bits), are in `head` (the first two, inline: most buckets need no
        /// second allocation) and then `tail`. An absent field is zero. This gives exactly the
        /// same numbers as dense fields: a field is only stored once a nonzero
        /// (or NaN) value is added, `0.0 + x == x`, a stored sum is never
        /// `-0.0`, and adding `±0.0` to a sum that is not `-0.0` changes
        /// nothing. The duration sketches are boxed on their first observation.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Funnel {
            mask: u32,
            head: [u64; 2],
            tail: Box<[u64]>,
            response: Option<Box<Sketch>>,
            cycle: Option<Box<Sketch>>,
        }

        /// [`Funnel`] summed over a window.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct FunnelTotals {
            $(pub $c: u64,)*
            $(pub $s: f64,)*
            pub response: Sketch,
            pub cycle: Sketch,
        }

        const N_COUNTS: u32 = [$(stringify!($c),)*].len() as u32;
        const N_SUMS: u32 = [$(stringify!($s),)*].len() as u32;
        const _: () = assert!(N_COUNTS + N_SUMS <= 32);

        /// Number of count fields of [`FunnelDelta`] / [`FunnelTotals`].
        pub const FUNNEL_COUNTS: usize = N_COUNTS as usize;
        /// Number of sum fields of [`FunnelDelta`] / [`FunnelTotals`].
        pub const FUNNEL_SUMS: usize = N_SUMS as usize;

        impl FunnelDelta {
            /// The count fields, in declaration order (for tests that build deltas).
            pub fn count_fields_mut(&mut self) -> [&mut u32; FUNNEL_COUNTS] {
                [$(&mut self.$c,)*]
            }
            /// The sum fields, in declaration order.
            pub fn sum_fields_mut(&mut self) -> [&mut f64; FUNNEL_SUMS] {
                [$(&mut self.$s,)*]
            }
            /// The count fields, in declaration order.
            pub fn count_values(&self) -> [u32; FUNNEL_COUNTS] {
                [$(self.$c,)*]
            }
            /// The sum fields, in declaration order.
            pub fn sum_values(&self) -> [f64; FUNNEL_SUMS] {
                [$(self.$s,)*]
            }
        }

        impl FunnelTotals {
            /// The counts and sums, without the sketches.
            fn clone_counts_sums(&self) -> FunnelTotals {
                FunnelTotals { $($c: self.$c,)* $($s: self.$s,)* response: Sketch::default(), cycle: Sketch::default() }
            }

            /// The count fields, in declaration order.
            pub fn count_fields(&mut self) -> [&mut u64; FUNNEL_COUNTS] {
                [$(&mut self.$c,)*]
            }
            /// The sum fields, in declaration order.
            pub fn sum_fields(&mut self) -> [&mut f64; FUNNEL_SUMS] {
                [$(&mut self.$s,)*]
            }
        }

        impl Funnel {
            fn add(&mut self, d: &FunnelDelta) {
                let mut i = 0u32;
                $(
                    if d.$c != 0 {
                        let v = self.slot(i);
                        *v = u64::from((*v as u32) + d.$c);
                    }
                    i += 1;
                )*
                $(
                    // `!(x == 0.0)` keeps NaN.
                    if d.$s != 0.0 {
                        let v = self.slot(i);
                        *v = (f64::from_bits(*v) + d.$s).to_bits();
                    }
                    i += 1;
                )*
                debug_assert_eq!(i, N_COUNTS + N_SUMS);
                if let Some((x, bin)) = d.response_obs {
                    self.response.get_or_insert_with(Default::default).insert_binned(x, bin);
                }
                if let Some((x, bin)) = d.cycle_obs {
                    self.cycle.get_or_insert_with(Default::default).insert_binned(x, bin);
                }
            }

            /// The stored value of field `i`, inserted as zero if absent
            /// (`0u64` is both `0u32` and `0.0f64`).
            fn slot(&mut self, i: u32) -> &mut u64 {
                let pos = (self.mask & ((1u32 << i) - 1)).count_ones() as usize;
                if self.mask & (1 << i) == 0 {
                    let n = self.mask.count_ones() as usize;
                    let mut all = [0u64; 32];
                    all[..2].copy_from_slice(&self.head);
                    all[2..2 + self.tail.len()].copy_from_slice(&self.tail);
                    all.copy_within(pos..n, pos + 1);
                    all[pos] = 0;
                    self.head.copy_from_slice(&all[..2]);
                    if n + 1 > 2 {
                        self.tail = all[2..n + 1].into();
                    }
                    self.mask |= 1 << i;
                }
                match pos.checked_sub(2) {
                    None => &mut self.head[pos],
                    Some(j) => &mut self.tail[j],
                }
            }

            /// The present values in field order.
            fn vals(&self) -> impl Iterator<Item = &u64> {
                self.head.iter().take(self.mask.count_ones() as usize).chain(self.tail.iter())
            }

            /// The value of sum field `i` (0.0 when absent).
            fn sum(&self, i: u32) -> f64 {
                let i = N_COUNTS + i;
                if self.mask & (1 << i) == 0 {
                    return 0.0;
                }
                let pos = (self.mask & ((1u32 << i) - 1)).count_ones() as usize;
                let v = match pos.checked_sub(2) {
                    None => self.head.get(pos),
                    Some(j) => self.tail.get(j),
                };
                v.map_or(0.0, |&v| f64::from_bits(v))
            }

            /// Heap bytes owned, this block included.
            fn heap_bytes(&self) -> usize {
                let sketch = |s: &Option<Box<Sketch>>| s.as_ref().map_or(0, |s| std::mem::size_of::<Sketch>() + s.heap_bytes());
                std::mem::size_of::<Funnel>()
                    + self.tail.len() * std::mem::size_of::<u64>()
                    + sketch(&self.response)
                    + sketch(&self.cycle)
            }
        }

        impl FunnelTotals {
            fn add(&mut self, f: &Funnel) {
                let mut vals = f.vals();
                let mut counts = f.mask & ((1u32 << N_COUNTS) - 1);
                if counts != 0 {
                    let mut out = [$(&mut self.$c,)*];
                    while counts != 0 {
                        let i = counts.trailing_zeros() as usize;
                        counts &= counts - 1;
                        if let (Some(&v), Some(o)) = (vals.next(), out.get_mut(i)) {
                            **o += u64::from(v as u32);
                        }
                    }
                }
                let mut sums = f.mask >> N_COUNTS;
                if sums != 0 {
                    let mut out = [$(&mut self.$s,)*];
                    while sums != 0 {
                        let i = sums.trailing_zeros() as usize;
                        sums &= sums - 1;
                        if let (Some(&v), Some(o)) = (vals.next(), out.get_mut(i)) {
                            **o += f64::from_bits(v);
                        }
                    }
                }
                if let Some(r) = &f.response {
                    self.response.merge(r);
                }
                if let Some(c) = &f.cycle {
                    self.cycle.merge(c);
                }
            }
        }

        /// What one event adds to the funnel part of a bucket.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct FunnelDelta {
            $(pub $c: u32,)*
            $(pub $s: f64,)*
            /// A lead-response observation: seconds and sketch bin.
            pub response_obs: Option<(f64, i16)>,
            /// A sales-cycle observation: seconds and sketch bin.
            pub cycle_obs: Option<(f64, i16)>,
        }
    };
}

funnel! {
    counts {
        leads_created, mqls, sqls,
        meetings_booked, meetings_held, meetings_no_show, meetings_rescheduled_by_rep,
        deals_created, quotes_sent, deals_won, deals_lost, new_customers, upsell_deals,
        nps_responses, nps_promoters, nps_detractors,
        churned_voluntary, churned_involuntary,
        lead_responses, lead_responses_within_1h, cycles,
    }
    sums {
        pipeline_added, revenue, margin, margin_base, churned_mrr,
        spend_marketing, spend_sales, response_seconds, cycle_seconds,
    }
}

/// Index of `revenue` among the sums of [`Funnel`].
const REVENUE: u32 = 1;

/// One bucket's (or calendar period's) accumulated values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measures {
    pub act: Activity,
    pub funnel: Option<Box<Funnel>>,
}

/// What one event adds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub act: Activity,
    pub funnel: Option<FunnelDelta>,
}

impl Delta {
    /// The funnel part, created on first use.
    pub fn funnel(&mut self) -> &mut FunnelDelta {
        self.funnel.get_or_insert_with(FunnelDelta::default)
    }
    /// Revenue carried by this delta (kept for the previous window too).
    pub fn revenue(&self) -> f64 {
        self.funnel.as_ref().map_or(0.0, |f| f.revenue)
    }
}

impl Activity {
    fn add(&mut self, o: &Activity) {
        self.outbound += o.outbound;
        self.inbound += o.inbound;
        self.outbound_calls += o.outbound_calls;
        self.connects += o.connects;
        self.meaningful += o.meaningful;
        self.active += o.active;
    }
}

impl Measures {
    pub fn add(&mut self, d: &Delta) {
        self.act.add(&d.act);
        if let Some(f) = &d.funnel {
            self.funnel.get_or_insert_with(Default::default).add(f);
        }
    }

    pub fn revenue(&self) -> f64 {
        self.funnel.as_ref().map_or(0.0, |f| f.sum(REVENUE))
    }

    /// Heap bytes owned (for state-size accounting).
    pub fn heap_bytes(&self) -> usize {
        self.funnel.as_ref().map_or(0, |f| f.heap_bytes())
    }
}

/// Activity counters summed over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityTotals {
    pub outbound: u64,
    pub inbound: u64,
    pub outbound_calls: u64,
    pub connects: u64,
    pub meaningful: u64,
    pub active: u64,
}

/// The values of one window of one rep or team.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub act: ActivityTotals,
    pub f: FunnelTotals,
}

impl Totals {
    pub fn add(&mut self, m: &Measures) {
        let a = &m.act;
        self.act.outbound += a.outbound as u64;
        self.act.inbound += a.inbound as u64;
        self.act.outbound_calls += a.outbound_calls as u64;
        self.act.connects += a.connects as u64;
        self.act.meaningful += a.meaningful as u64;
        self.act.active += a.active as u64;
        if let Some(f) = &m.funnel {
            self.f.add(f);
        }
    }

    /// Adds another window's totals (a team's window is its reps' summed).
    pub fn add_totals(&mut self, o: &Totals) {
        let (a, b) = (&mut self.act, &o.act);
        a.outbound += b.outbound;
        a.inbound += b.inbound;
        a.outbound_calls += b.outbound_calls;
        a.connects += b.connects;
        a.meaningful += b.meaningful;
        a.active += b.active;
        let mut of = o.f.clone_counts_sums();
        for (x, y) in self.f.count_fields().into_iter().zip(of.count_fields()) {
            *x += *y;
        }
        for (x, y) in self.f.sum_fields().into_iter().zip(of.sum_fields()) {
            *x += *y;
        }
        self.f.response.merge(&o.f.response);
        self.f.cycle.merge(&o.f.cycle);
    }

    /// Resets to zero, keeping the sketches' allocations for the next window.
    pub fn clear(&mut self) {
        self.act = ActivityTotals::default();
        let mut response = std::mem::take(&mut self.f.response);
        let mut cycle = std::mem::take(&mut self.f.cycle);
        response.clear();
        cycle.clear();
        self.f = FunnelTotals { response, cycle, ..FunnelTotals::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_stays_small_until_a_funnel_event() {
        assert_eq!(std::mem::size_of::<Measures>(), 32);
        let mut m = Measures::default();
        let mut d = Delta::default();
        d.act.outbound = 1;
        d.act.meaningful = 1;
        m.add(&d);
        assert!(m.funnel.is_none());
        d.funnel().revenue = 5.5;
        d.funnel().response_obs = Some((60.0, crate::sketch::bin_of(60.0)));
        m.add(&d);
        m.add(&d);
        let mut t = Totals::default();
        t.add(&m);
        t.add(&m);
        assert_eq!(t.act.outbound, 6);
        assert_eq!(t.f.revenue, 22.0);
        assert_eq!(t.f.response.count(), 4);
        assert_eq!(m.revenue(), 11.0);
    }

    #[test]
    fn sparse_funnel_sums_like_dense_fields() {
        let mut m = Measures::default();
        let mut deltas = Vec::new();
        let mut d = Delta::default();
        d.funnel().churned_mrr = -0.0;
        deltas.push(d);
        let mut d = Delta::default();
        d.funnel().deals_won = 2;
        d.funnel().revenue = 0.1;
        d.funnel().spend_sales = -3.5;
        deltas.push(d);
        let mut d = Delta::default();
        d.funnel().revenue = 0.2;
        d.funnel().spend_sales = 3.5;
        d.funnel().leads_created = 1;
        d.funnel().cycles = 1;
        d.funnel().cycle_seconds = 86_400.0;
        d.funnel().cycle_obs = Some((86_400.0, crate::sketch::bin_of(86_400.0)));
        deltas.push(d);
        for d in &deltas {
            m.add(d);
        }
        let mut t = Totals::default();
        t.add(&m);
        assert_eq!(t.f.deals_won, 2);
        assert_eq!(t.f.leads_created, 1);
        assert_eq!(t.f.cycles, 1);
        assert_eq!(t.f.mqls, 0);
        assert_eq!(t.f.revenue.to_bits(), (0.0 + 0.1 + 0.2f64).to_bits());
        assert_eq!(m.revenue().to_bits(), (0.1 + 0.2f64).to_bits());
        assert_eq!(t.f.spend_sales.to_bits(), 0.0f64.to_bits());
        assert_eq!(t.f.churned_mrr.to_bits(), 0.0f64.to_bits());
        assert_eq!(t.f.cycle_seconds, 86_400.0);
        assert_eq!(t.f.cycle.count(), 1);
        assert!(t.f.response.is_empty());
    }
}
