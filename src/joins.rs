//! The two joins of `metrics.md`: lead response (lead created → first
//! outbound activity) and sales cycle (lead or deal created → deal won), and
//! the open-deal book behind `sales_open_deals` / `sales_pipeline_value`.
//!
//! Owns: per-team memory of leads and deals, their retention (joins: 180 days
//! by default; open deals: the deal TTL, 365 days), and the join decisions.
//! Must not touch: windows or counters; it returns observations and the engine
//! turns them into deltas.
//!
//! Both joins match ids within one team, which keeps them local to one Kafka
//! partition. Ids are kept as 64-bit XXH3 fingerprints of the id (a false
//! match within one team needs a 2^-64-scale collision). Entries past their
//! retention are ignored at lookup (exact) and freed by [`Joins::sweep`].

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::dedup::PrehashedBuild;
use crate::time::{Micros, MICROS_PER_SEC};

fn fp(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Lead {
    created: Micros,
    responded: bool,
}

/// An open deal: the latest amount and owner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenDeal {
    pub amount: f64,
    /// Index of the owning rep within its team.
    pub owner: u32,
    pub opened: Micros,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Deal {
    /// Time of the first applied deal.created (cycle start fallback).
    first_created: Micros,
    open: Option<OpenDeal>,
}

/// What a `deal.created` did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DealCreated {
    /// A new open deal: counts in deals_created and pipeline_added.
    Opened,
    /// The deal was already open: amount and owner updated.
    Updated,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Joins {
    leads: HashMap<u64, Lead, PrehashedBuild>,
    deals: HashMap<u64, Deal, PrehashedBuild>,
}

/// Retention settings.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub joins: Micros,
    pub deal_ttl: Micros,
}

fn seconds(us: Micros) -> f64 {
    us.max(0) as f64 / MICROS_PER_SEC as f64
}

impl Joins {
    /// `lead.created` at `e`: the first applied one defines the lead.
    pub fn lead_created(&mut self, lead: &str, e: Micros, t: Micros, r: Retention) {
        let entry = self.leads.entry(fp(lead)).or_insert(Lead { created: e, responded: false });
        if t - entry.created > r.joins {
            // The old lead expired: this is a new one.
            *entry = Lead { created: e, responded: false };
        }
    }

    /// An outbound activity on `lead` at `e`: the lead-response observation
    /// in seconds if this is the lead's first one after its creation.
    pub fn outbound_activity(&mut self, lead: &str, e: Micros, t: Micros, r: Retention) -> Option<f64> {
        let l = self.leads.get_mut(&fp(lead))?;
        if l.responded || t - l.created > r.joins {
            return None;
        }
        l.responded = true;
        Some(seconds(e - l.created))
    }

    /// `deal.created` for `deal` by rep `owner`.
    pub fn deal_created(&mut self, deal: &str, amount: f64, owner: u32, e: Micros, t: Micros, r: Retention) -> DealCreated {
        let fresh = Deal { first_created: e, open: None };
        let d = self.deals.entry(fp(deal)).or_insert(fresh);
        if t - d.first_created > r.joins {
            d.first_created = e;
        }
        match &mut d.open {
            Some(o) if t - o.opened <= r.deal_ttl => {
                o.amount = amount;
                o.owner = owner;
                DealCreated::Updated
            }
            open => {
                *open = Some(OpenDeal { amount, owner, opened: e });
                DealCreated::Opened
            }
        }
    }

    /// `deal.won` at `e`: closes the deal and returns the sales-cycle
    /// observation in seconds: from the `lead.created` of the won event's
    /// `lead_id` if that lead is known, else from the deal's first
    /// `deal.created` if known.
    pub fn deal_won(&mut self, deal: &str, lead: Option<&str>, e: Micros, t: Micros, r: Retention) -> Option<f64> {
        let start_lead = lead
            .and_then(|l| self.leads.get(&fp(l)))
            .filter(|l| t - l.created <= r.joins)
            .map(|l| l.created);
        let d = self.deals.get_mut(&fp(deal));
        let start_deal = d.as_ref().map(|d| d.first_created).filter(|c| t - c <= r.joins);
        if let Some(d) = d {
            d.open = None;
        }
        start_lead.or(start_deal).map(|s| seconds(e - s))
    }

    /// `deal.lost`: closes the deal.
    pub fn deal_lost(&mut self, deal: &str) {
        if let Some(d) = self.deals.get_mut(&fp(deal)) {
            d.open = None;
        }
    }

    /// Open deals at clock `t` (not won, lost or past the TTL).
    pub fn open_deals(&self, t: Micros, r: Retention) -> impl Iterator<Item = &OpenDeal> {
        self.deals.values().filter_map(move |d| d.open.as_ref().filter(|o| t - o.opened <= r.deal_ttl))
    }

    /// Frees leads and deals no join or open-deal count can use at `t`.
    pub fn sweep(&mut self, t: Micros, r: Retention) {
        self.leads.retain(|_, l| t - l.created <= r.joins);
        self.deals.retain(|_, d| {
            if d.open.is_some_and(|o| t - o.opened > r.deal_ttl) {
                d.open = None;
            }
            d.open.is_some() || t - d.first_created <= r.joins
        });
    }

    pub fn heap_bytes(&self) -> usize {
        self.leads.capacity() * (std::mem::size_of::<(u64, Lead)>() + 1)
            + self.deals.capacity() * (std::mem::size_of::<(u64, Deal)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MICROS_PER_DAY;

    const R: Retention = Retention { joins: 180 * MICROS_PER_DAY, deal_ttl: 365 * MICROS_PER_DAY };
    const S: i64 = MICROS_PER_SEC;

    #[test]
    fn first_lead_created_defines_the_lead_and_first_activity_counts() {
        let mut j = Joins::default();
        // activity before the lead is known: no observation, and it does not use up the response
        assert_eq!(j.outbound_activity("L", 5 * S, 5 * S, R), None);
        j.lead_created("L", 100 * S, 100 * S, R);
        j.lead_created("L", 50 * S, 100 * S, R);
        // an activity timestamped before the lead: clamped to 0
        assert_eq!(j.outbound_activity("L", 90 * S, 100 * S, R), Some(0.0));
        assert_eq!(j.outbound_activity("L", 200 * S, 200 * S, R), None);
    }

    #[test]
    fn cycle_prefers_lead_then_first_deal_created() {
        let mut j = Joins::default();
        j.lead_created("L", 0, 0, R);
        assert_eq!(j.deal_created("D", 10.0, 0, 100 * S, 100 * S, R), DealCreated::Opened);
        assert_eq!(j.deal_created("D", 20.0, 1, 150 * S, 150 * S, R), DealCreated::Updated);
        assert_eq!(j.open_deals(150 * S, R).map(|o| (o.amount, o.owner)).collect::<Vec<_>>(), vec![(20.0, 1)]);
        assert_eq!(j.deal_won("D", Some("L"), 1000 * S, 1000 * S, R), Some(1000.0));
        assert_eq!(j.open_deals(1000 * S, R).count(), 0);
        // without a known lead: from the first deal.created
        assert_eq!(j.deal_won("D", None, 1100 * S, 1100 * S, R), Some(1000.0));
        assert_eq!(j.deal_won("D", Some("unknown"), 1100 * S, 1100 * S, R), Some(1000.0));
        assert_eq!(j.deal_won("X", None, 1100 * S, 1100 * S, R), None);
        // a closed deal created again is a new open deal
        assert_eq!(j.deal_created("D", 5.0, 0, 1200 * S, 1200 * S, R), DealCreated::Opened);
    }

    #[test]
    fn retention() {
        let mut j = Joins::default();
        j.lead_created("L", 0, 0, R);
        j.deal_created("D", 1.0, 0, 0, 0, R);
        let late = 181 * MICROS_PER_DAY;
        assert_eq!(j.outbound_activity("L", late, late, R), None);
        assert_eq!(j.deal_won("X", Some("L"), late, late, R), None);
        assert_eq!(j.open_deals(late, R).count(), 1);
        let later = 366 * MICROS_PER_DAY;
        assert_eq!(j.open_deals(later, R).count(), 0);
        j.sweep(later, R);
        assert_eq!(j.heap_bytes() > 0 || j.leads.is_empty(), true);
        assert!(j.leads.is_empty() && j.deals.is_empty());
    }
}
