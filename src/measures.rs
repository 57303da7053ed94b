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
//! bucket is 40 bytes until a funnel event lands in it.

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
        /// Everything but calls and emails.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Funnel {
            $(pub $c: u32,)*
            $(pub $s: f64,)*
            pub response: Sketch,
            pub cycle: Sketch,
        }

        /// [`Funnel`] summed over a window.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct FunnelTotals {
            $(pub $c: u64,)*
            $(pub $s: f64,)*
            pub response: Sketch,
            pub cycle: Sketch,
        }

        impl Funnel {
            fn add(&mut self, d: &FunnelDelta) {
                $(self.$c += d.$c;)*
                $(self.$s += d.$s;)*
                if let Some((x, bin)) = d.response_obs {
                    self.response.insert_binned(x, bin);
                }
                if let Some((x, bin)) = d.cycle_obs {
                    self.cycle.insert_binned(x, bin);
                }
            }
        }

        impl FunnelTotals {
            fn add(&mut self, f: &Funnel) {
                $(self.$c += f.$c as u64;)*
                $(self.$s += f.$s;)*
                self.response.merge(&f.response);
                self.cycle.merge(&f.cycle);
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
        self.funnel.as_ref().map_or(0.0, |f| f.revenue)
    }

    /// Heap bytes owned (for state-size accounting).
    pub fn heap_bytes(&self) -> usize {
        self.funnel
            .as_ref()
            .map_or(0, |f| std::mem::size_of::<Funnel>() + f.response.heap_bytes() + f.cycle.heap_bytes())
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
}
