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
//! Entries are packed: a lead in 8 bytes, a deal in 48 (its options as one
//! flag byte), unpacked to plain structs for every decision.

use serde::{Deserialize, Serialize};

use crate::follow::{LeadFollow, Observation};
use crate::fptable::FpTable;
use crate::time::{Micros, MICROS_PER_SEC};

fn fp(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// A lead as checkpoint format 8 (and 7) stored it: its creation time and
/// whether its first outbound activity was seen, packed in 8 bytes as
/// `created * 2 + responded`. Exact for `|created| < 2^62` µs (146 000
/// years); event timestamps are years 0000–9999 (`|µs| < 2^58`), and a time
/// outside that range is clamped into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LeadV8(i64);

impl LeadV8 {
    const LIMIT: Micros = 1 << 62;

    fn new(created: Micros) -> Self {
        LeadV8(created.clamp(-Self::LIMIT, Self::LIMIT - 1) * 2)
    }
    fn created(self) -> Micros {
        self.0 >> 1
    }
    fn responded(self) -> bool {
        self.0 & 1 == 1
    }
    fn set_responded(&mut self) {
        self.0 |= 1;
    }
}

/// A lead: [`LeadV8`] plus the v1.1 follow-up state of [`crate::follow`]
/// packed in 8 bytes (the owner, the touch counts, the flags and the time of
/// the latest activity until its first SQL is applied, then that SQL's; see
/// [`crate::follow::LeadFollow::pack`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Lead {
    base: LeadV8,
    bits: u64,
}

impl Lead {
    fn new(created: Micros, owner: Option<u32>) -> Self {
        let base = LeadV8::new(created);
        let f = LeadFollow { owner, ..LeadFollow::default() };
        Lead { base, bits: f.pack(base.created()) }
    }
    fn created(self) -> Micros {
        self.base.created()
    }
    fn responded(self) -> bool {
        self.base.responded()
    }
    fn set_responded(&mut self) {
        self.base.set_responded();
    }
    fn follow(self) -> LeadFollow {
        LeadFollow::unpack(self.created(), self.bits)
    }
    fn set_follow(&mut self, f: &LeadFollow) {
        self.bits = f.pack(self.created());
    }
    /// A lead restored from format 8 or 7: its follow-up observations are
    /// taken as made (the old engine made none, and a lead observed with
    /// the touches it happened to be restored with would be wrong).
    fn from_v8(l: LeadV8) -> Self {
        let f = LeadFollow { observed: true, sql_seen: true, ..LeadFollow::default() };
        Lead { base: l, bits: f.pack(l.created()) }
    }
}

/// An open deal: the latest amount and owner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenDeal {
    pub amount: f64,
    /// Index of the owning rep within its team.
    pub owner: u32,
    pub opened: Micros,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Deal {
    /// Time of the first applied deal.created (cycle start fallback); `None`
    /// while only its won/lost is known.
    first_created: Option<Micros>,
    /// `lead_id` (fingerprint) of that deal.created: the cycle's start when
    /// the won event names no lead.
    lead: Option<u64>,
    open: Option<OpenDeal>,
    /// Event time of the won/lost that closed the deal, until a later
    /// `deal.created` reopens it. A `deal.created` from before it (events
    /// out of order) does not reopen the deal.
    closed_at: Option<Micros>,
    /// A `deal.created` of this deal has been counted in deals_created.
    counted: bool,
    /// The product-line slot (see [`crate::products`]) + 1 its first
    /// `deal.created` naming one named; 0: none named.
    product: u16,
}

/// A [`Deal`] as format 7 stored it: the option tags and `counted` in one
/// flag byte (48 bytes instead of 88). Unused fields are zero. Read from old
/// checkpoints only; see [`DealSlot`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct PackedDeal {
    first_created: Micros,
    lead: u64,
    amount: f64,
    opened: Micros,
    closed_at: Micros,
    owner: u32,
    flags: u8,
}

const HAS_FIRST_CREATED: u8 = 1;
const HAS_LEAD: u8 = 2;
const HAS_OPEN: u8 = 4;
const HAS_CLOSED_AT: u8 = 8;
const COUNTED: u8 = 16;

impl Deal {
    /// As format 7 stored it (written by tests; restores only read it).
    #[cfg(test)]
    fn pack(&self) -> PackedDeal {
        let flag = |b: bool, f: u8| if b { f } else { 0 };
        let o = self.open;
        PackedDeal {
            first_created: self.first_created.unwrap_or(0),
            lead: self.lead.unwrap_or(0),
            amount: o.map_or(0.0, |o| o.amount),
            opened: o.map_or(0, |o| o.opened),
            closed_at: self.closed_at.unwrap_or(0),
            owner: o.map_or(0, |o| o.owner),
            flags: flag(self.first_created.is_some(), HAS_FIRST_CREATED)
                | flag(self.lead.is_some(), HAS_LEAD)
                | flag(o.is_some(), HAS_OPEN)
                | flag(self.closed_at.is_some(), HAS_CLOSED_AT)
                | flag(self.counted, COUNTED),
        }
    }
}

impl PackedDeal {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    fn open(&self) -> Option<OpenDeal> {
        self.has(HAS_OPEN).then_some(OpenDeal { amount: self.amount, owner: self.owner, opened: self.opened })
    }
    fn unpack(&self) -> Deal {
        Deal {
            first_created: self.has(HAS_FIRST_CREATED).then_some(self.first_created),
            lead: self.has(HAS_LEAD).then_some(self.lead),
            open: self.open(),
            closed_at: self.has(HAS_CLOSED_AT).then_some(self.closed_at),
            counted: self.has(COUNTED),
            product: 0,
        }
    }
}

/// A [`Deal`] as stored now: 40 bytes. An open deal is never closed
/// (opening clears `closed_at`, closing clears `open`), so the opening time
/// of an open deal and the closing time of a closed one share `time`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DealSlot {
    first_created: Micros,
    lead: u64,
    time: Micros,
    amount: f64,
    owner: u32,
    flags: u8,
    product: u16,
}

/// A [`DealSlot`] as checkpoint format 8 stored it (no product line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DealSlotV8 {
    first_created: Micros,
    lead: u64,
    time: Micros,
    amount: f64,
    owner: u32,
    flags: u8,
}

impl DealSlotV8 {
    fn upgrade(self) -> DealSlot {
        let DealSlotV8 { first_created, lead, time, amount, owner, flags } = self;
        DealSlot { first_created, lead, time, amount, owner, flags, product: 0 }
    }
}

impl Deal {
    fn slot(&self) -> DealSlot {
        debug_assert!(self.open.is_none() || self.closed_at.is_none());
        let flag = |b: bool, f: u8| if b { f } else { 0 };
        let o = self.open;
        DealSlot {
            first_created: self.first_created.unwrap_or(0),
            lead: self.lead.unwrap_or(0),
            time: o.map(|o| o.opened).or(self.closed_at).unwrap_or(0),
            amount: o.map_or(0.0, |o| o.amount),
            owner: o.map_or(0, |o| o.owner),
            flags: flag(self.first_created.is_some(), HAS_FIRST_CREATED)
                | flag(self.lead.is_some(), HAS_LEAD)
                | flag(o.is_some(), HAS_OPEN)
                | flag(o.is_none() && self.closed_at.is_some(), HAS_CLOSED_AT)
                | flag(self.counted, COUNTED),
            product: self.product,
        }
    }
}

impl DealSlot {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    fn open(&self) -> Option<OpenDeal> {
        self.has(HAS_OPEN).then_some(OpenDeal { amount: self.amount, owner: self.owner, opened: self.time })
    }
    fn unpack(&self) -> Deal {
        Deal {
            first_created: self.has(HAS_FIRST_CREATED).then_some(self.first_created),
            lead: self.has(HAS_LEAD).then_some(self.lead),
            open: self.open(),
            closed_at: self.has(HAS_CLOSED_AT).then_some(self.time),
            counted: self.has(COUNTED),
            product: self.product,
        }
    }
}

/// What a `deal.created` did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DealCreated {
    /// A new open deal: counts in deals_created and pipeline_added.
    Opened,
    /// The creation of a deal whose won/lost was applied first (events out
    /// of order): counts in deals_created and pipeline_added, stays closed.
    CountedClosed,
    /// The deal was already open: amount and owner updated.
    Updated,
    /// An update older than the won/lost of a deal already counted: nothing.
    Ignored,
}

impl DealCreated {
    /// Whether it counts in `sales_deals_created` / `sales_pipeline_added`.
    pub fn counts(self) -> bool {
        matches!(self, DealCreated::Opened | DealCreated::CountedClosed)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Joins {
    leads: FpTable<Lead>,
    deals: FpTable<DealSlot>,
}

/// [`Joins`] as checkpoint format 8 stored them (leads without follow-up state).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct JoinsV8 {
    leads: FpTable<LeadV8>,
    deals: FpTable<DealSlotV8>,
}

impl JoinsV8 {
    /// The joins of format 9: every lead's follow-up observations taken as made.
    pub(crate) fn upgrade(self) -> Joins {
        let leads = self.leads.iter().map(|(k, l)| (k, Lead::from_v8(*l))).collect();
        let deals = self.deals.iter().map(|(k, d)| (k, d.upgrade())).collect();
        Joins { leads: FpTable::from_entries(leads), deals: FpTable::from_entries(deals) }
    }
}

/// Retention settings (and the persistence horizon).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub joins: Micros,
    pub deal_ttl: Micros,
    /// `horizons.persistence`: a lead is observed at its creation time plus this.
    pub persistence: Micros,
}

/// The key of a lead id in the lead table (and in the due queue).
pub fn lead_key(id: &str) -> u64 {
    fp(id)
}

fn seconds(us: Micros) -> f64 {
    us.max(0) as f64 / MICROS_PER_SEC as f64
}

impl Joins {
    /// `lead.created` at `e`: the first applied one defines the lead.
    /// Returns whether it is a new lead (counted in `sales_leads_created`);
    /// a later `lead.created` of a known lead (a CRM re-sync, say) is not.
    /// `owner` is the rep of the event (index within the team): the rep its
    /// follow-up observation belongs to.
    pub fn lead_created(&mut self, lead: &str, e: Micros, t: Micros, r: Retention, owner: Option<u32>) -> bool {
        let (entry, mut new) = self.leads.get_or_insert_with(fp(lead), || Lead::new(e, owner));
        if !new && t - entry.created() > r.joins {
            // The old lead expired: this is a new one.
            *entry = Lead::new(e, owner);
            new = true;
        }
        new
    }

    /// An outbound activity on `lead` at `e`: the lead-response observation
    /// in seconds if this is the lead's first one after its creation, and
    /// what it adds to the lead's follow-up observations already made.
    pub fn outbound_activity(&mut self, lead: &str, e: Micros, t: Micros, r: Retention) -> (Option<f64>, [Option<Observation>; 2]) {
        let Some(l) = self.leads.get_mut(fp(lead)) else { return (None, [None, None]) };
        if t - l.created() > r.joins {
            return (None, [None, None]);
        }
        let mut f = l.follow();
        let obs = f.touch(l.created(), e, r.persistence);
        l.set_follow(&f);
        if l.responded() {
            return (None, obs);
        }
        l.set_responded();
        (Some(seconds(e - l.created())), obs)
    }

    /// A `lead.qualified` with stage `sql` on `lead` at `e` by rep `rep`: the
    /// touches to SQL if it is the known lead's first SQL, and what it adds
    /// to the lead's persistence observation if already made.
    pub fn sql(&mut self, lead: &str, e: Micros, t: Micros, r: Retention, rep: Option<u32>) -> (Option<u32>, Option<Observation>) {
        let Some(l) = self.leads.get_mut(fp(lead)) else { return (None, None) };
        if t - l.created() > r.joins {
            return (None, None);
        }
        let mut f = l.follow();
        let out = f.sql(l.created(), e, rep, r.persistence);
        l.set_follow(&f);
        out
    }

    /// The persistence observation of the lead with key `key` if it is still
    /// waiting for the one due at `due` (a lead forgotten, or created anew
    /// since it was queued, is not).
    pub fn observe(&mut self, key: u64, due: Micros, r: Retention) -> Option<Observation> {
        let l = self.leads.get_mut(key)?;
        if l.created().saturating_add(r.persistence) != due {
            return None;
        }
        let mut f = l.follow();
        let o = f.observe(l.created(), r.persistence);
        l.set_follow(&f);
        o
    }

    /// `L + H` of the lead with key `key` if it is still waiting for its observation.
    pub fn due_of(&self, key: u64, r: Retention) -> Option<Micros> {
        let l = self.leads.get(key)?;
        (!l.follow().observed).then(|| l.created().saturating_add(r.persistence))
    }

    /// `(key, L + H)` of every lead not yet observed (to rebuild the due queue).
    pub fn unobserved(&self, r: Retention) -> impl Iterator<Item = (u64, Micros)> + '_ {
        self.leads.iter().filter(|(_, l)| !l.follow().observed).map(move |(k, l)| (k, l.created().saturating_add(r.persistence)))
    }

    /// What is known of the deal with fingerprint `key` at clock `t`,
    /// forgetting what retention no longer keeps; the caller stores it back.
    fn deal_entry(&self, key: u64, t: Micros, r: Retention) -> Deal {
        let mut d = self.deals.get(key).map_or_else(Deal::default, DealSlot::unpack);
        if d.first_created.is_some_and(|c| t - c > r.joins) {
            d.first_created = None;
            d.lead = None;
        }
        if d.closed_at.is_some_and(|c| t - c > r.joins) {
            d.closed_at = None;
        }
        if d.open.is_some_and(|o| t - o.opened > r.deal_ttl) {
            d.open = None;
        }
        if d.open.is_none() && d.closed_at.is_none() {
            d.counted = false;
            if d.first_created.is_none() {
                d.product = 0;
            }
        }
        d
    }

    /// The product-line slot + 1 the deal's first `deal.created` naming one
    /// named (0: none known).
    pub fn deal_product(&self, deal: &str, t: Micros, r: Retention) -> u16 {
        self.deal_entry(fp(deal), t, r).product
    }

    /// `deal.created` at `e` for `deal` by rep `owner`, naming `lead`.
    #[allow(clippy::too_many_arguments)]
    pub fn deal_created(&mut self, deal: &str, lead: Option<&str>, amount: f64, owner: u32, e: Micros, t: Micros, r: Retention) -> DealCreated {
        self.deal_created_in(deal, lead, amount, owner, 0, e, t, r)
    }

    /// [`Joins::deal_created`] naming product-line slot `product` + 1 (0: none).
    #[allow(clippy::too_many_arguments)]
    pub fn deal_created_in(&mut self, deal: &str, lead: Option<&str>, amount: f64, owner: u32, product: u16, e: Micros, t: Micros, r: Retention) -> DealCreated {
        let key = fp(deal);
        let mut d = self.deal_entry(key, t, r);
        if d.product == 0 {
            d.product = product;
        }
        let what = Self::created(&mut d, lead, amount, owner, e);
        self.deals.insert(key, d.slot());
        what
    }

    fn created(d: &mut Deal, lead: Option<&str>, amount: f64, owner: u32, e: Micros) -> DealCreated {
        if d.first_created.is_none() {
            d.first_created = Some(e);
            d.lead = lead.map(fp);
        } else if d.lead.is_none() {
            d.lead = lead.map(fp);
        }
        if let Some(o) = &mut d.open {
            o.amount = amount;
            o.owner = owner;
            return DealCreated::Updated;
        }
        match d.closed_at {
            // Closed by a won/lost later than this creation: the events came
            // out of order. The creation counts once; the deal stays closed.
            Some(c) if e <= c => {
                if d.counted {
                    DealCreated::Ignored
                } else {
                    d.counted = true;
                    DealCreated::CountedClosed
                }
            }
            // New, or created again after it was closed: open.
            _ => {
                d.open = Some(OpenDeal { amount, owner, opened: e });
                d.closed_at = None;
                d.counted = true;
                DealCreated::Opened
            }
        }
    }

    /// Closes `deal` at `e` (won or lost), remembering it closed even when its
    /// `deal.created` has not been applied yet.
    fn close(&mut self, deal: &str, e: Micros, t: Micros, r: Retention) {
        let key = fp(deal);
        let mut d = self.deal_entry(key, t, r);
        d.open = None;
        d.closed_at = Some(d.closed_at.map_or(e, |c| c.max(e)));
        self.deals.insert(key, d.slot());
    }

    /// `deal.won` at `e`: closes the deal and returns the sales-cycle
    /// observation in seconds: from the `lead.created` of the deal's lead
    /// (the won event's `lead_id`, else the one its `deal.created` named) if
    /// that lead is known, else from the deal's first `deal.created` if known.
    pub fn deal_won(&mut self, deal: &str, lead: Option<&str>, e: Micros, t: Micros, r: Retention) -> Option<f64> {
        let known = self.deals.get(fp(deal)).map(DealSlot::unpack);
        let deal_lead = known.filter(|d| d.first_created.is_some_and(|c| t - c <= r.joins)).and_then(|d| d.lead);
        let start_lead = lead
            .map(fp)
            .or(deal_lead)
            .and_then(|l| self.leads.get(l))
            .map(|l| l.created())
            .filter(|&c| t - c <= r.joins);
        let start_deal = known.and_then(|d| d.first_created).filter(|c| t - c <= r.joins);
        self.close(deal, e, t, r);
        start_lead.or(start_deal).map(|s| seconds(e - s))
    }

    /// `deal.lost` at `e`: closes the deal.
    pub fn deal_lost(&mut self, deal: &str, e: Micros, t: Micros, r: Retention) {
        self.close(deal, e, t, r);
    }

    /// Open deals at clock `t` (not won, lost or past the TTL).
    pub fn open_deals(&self, t: Micros, r: Retention) -> impl Iterator<Item = OpenDeal> + '_ {
        self.deals.values().filter_map(move |d| d.open().filter(|o| t - o.opened <= r.deal_ttl))
    }

    /// Frees leads and deals no join or open-deal count can use at `t`.
    pub fn sweep(&mut self, t: Micros, r: Retention) {
        self.leads.retain(|_, l| t - l.created() <= r.joins);
        self.deals.retain(|_, p| {
            let mut d = p.unpack();
            if d.open.is_some_and(|o| t - o.opened > r.deal_ttl) {
                d.open = None;
                *p = d.slot();
            }
            d.open.is_some() || d.first_created.is_some_and(|c| t - c <= r.joins) || d.closed_at.is_some_and(|c| t - c <= r.joins)
        });
    }

    /// Bytes of the lead and of the deal tables.
    pub fn heap_parts(&self) -> (usize, usize) {
        (self.leads.heap_bytes(), self.deals.heap_bytes())
    }

    pub fn heap_bytes(&self) -> usize {
        self.leads.heap_bytes() + self.deals.heap_bytes()
    }

    /// Joins restored from format 7 (leads and packed deals by fingerprint).
    pub(crate) fn from_v7(leads: Vec<(u64, LeadV8)>, deals: Vec<(u64, PackedDeal)>) -> Self {
        let deals = deals.into_iter().map(|(k, p)| (k, p.unpack().closed_if_open_too().slot())).collect();
        let leads = leads.into_iter().map(|(k, l)| (k, Lead::from_v8(l))).collect();
        Joins { leads: FpTable::from_entries(leads), deals: FpTable::from_entries(deals) }
    }
}

impl Deal {
    /// Format 7 could not hold an open deal with a closing time either; were
    /// there one, the deal is open (its closing time is cleared by opening).
    fn closed_if_open_too(mut self) -> Deal {
        if self.open.is_some() {
            self.closed_at = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MICROS_PER_DAY;

    const R: Retention = Retention { joins: 180 * MICROS_PER_DAY, deal_ttl: 365 * MICROS_PER_DAY, persistence: 14 * MICROS_PER_DAY };
    const S: i64 = MICROS_PER_SEC;

    #[test]
    fn deal_packing_round_trips() {
        let open = Some(OpenDeal { amount: -0.0, owner: 7, opened: -5 });
        for first_created in [None, Some(0), Some(-3)] {
            for lead in [None, Some(0), Some(u64::MAX)] {
                for open in [None, open] {
                    for closed_at in [None, Some(0), Some(9)] {
                        for counted in [false, true] {
                            let d = Deal { first_created, lead, open, closed_at, counted, product: 0 };
                            let u = d.pack().unpack();
                            assert_eq!(u, d);
                            assert_eq!(u.open.map(|o| o.amount.to_bits()), d.open.map(|o| o.amount.to_bits()));
                        }
                    }
                }
            }
        }
        assert_eq!(std::mem::size_of::<(u64, PackedDeal)>(), 56);
    }

    #[test]
    fn deal_slots_round_trip() {
        let open = Some(OpenDeal { amount: -0.0, owner: 7, opened: -5 });
        for first_created in [None, Some(0), Some(-3)] {
            for lead in [None, Some(0), Some(u64::MAX)] {
                for (open, closed_at) in [(None, None), (None, Some(9)), (None, Some(0)), (open, None)] {
                    for counted in [false, true] {
                        let d = Deal { first_created, lead, open, closed_at, counted, product: 0 };
                        assert_eq!(d.slot().unpack(), d);
                        let p = Deal { product: 7, ..d };
                        assert_eq!(p.slot().unpack(), p);
                        assert_eq!(d.pack().unpack().closed_if_open_too().slot().unpack(), d);
                    }
                }
            }
        }
        assert_eq!(std::mem::size_of::<DealSlot>(), 40);
    }

    #[test]
    fn lead_packing_is_exact() {
        for c in [0, 1, -1, 1_790_000_000_123_457, -62_135_596_800_000_000, 253_402_300_799_999_999] {
            let mut l = Lead::new(c, Some(3));
            assert_eq!((l.created(), l.responded()), (c, false));
            l.set_responded();
            assert_eq!((l.created(), l.responded(), l.follow().owner), (c, true, Some(3)));
        }
        assert_eq!(std::mem::size_of::<(u64, LeadV8)>(), 16);
        assert_eq!(std::mem::size_of::<Lead>(), 16);
    }

    #[test]
    fn first_lead_created_defines_the_lead_and_first_activity_counts() {
        let mut j = Joins::default();
        // activity before the lead is known: no observation, and it does not use up the response
        assert_eq!(j.outbound_activity("L", 5 * S, 5 * S, R).0, None);
        assert!(j.lead_created("L", 100 * S, 100 * S, R, None));
        // a second lead.created of a known lead is not a new lead
        assert!(!j.lead_created("L", 50 * S, 100 * S, R, None));
        // an activity timestamped before the lead: clamped to 0
        assert_eq!(j.outbound_activity("L", 90 * S, 100 * S, R).0, Some(0.0));
        assert_eq!(j.outbound_activity("L", 200 * S, 200 * S, R).0, None);
    }

    #[test]
    fn cycle_prefers_lead_then_first_deal_created() {
        let mut j = Joins::default();
        j.lead_created("L", 0, 0, R, None);
        assert_eq!(j.deal_created("D", None, 10.0, 0, 100 * S, 100 * S, R), DealCreated::Opened);
        assert_eq!(j.deal_created("D", None, 20.0, 1, 150 * S, 150 * S, R), DealCreated::Updated);
        assert_eq!(j.open_deals(150 * S, R).map(|o| (o.amount, o.owner)).collect::<Vec<_>>(), vec![(20.0, 1)]);
        assert_eq!(j.deal_won("D", Some("L"), 1000 * S, 1000 * S, R), Some(1000.0));
        assert_eq!(j.open_deals(1000 * S, R).count(), 0);
        // without a known lead: from the first deal.created
        assert_eq!(j.deal_won("D", None, 1100 * S, 1100 * S, R), Some(1000.0));
        assert_eq!(j.deal_won("D", Some("unknown"), 1100 * S, 1100 * S, R), Some(1000.0));
        assert_eq!(j.deal_won("X", None, 1100 * S, 1100 * S, R), None);
        // a closed deal created again is a new open deal
        assert_eq!(j.deal_created("D", None, 5.0, 0, 1200 * S, 1200 * S, R), DealCreated::Opened);
    }

    #[test]
    fn retention() {
        let mut j = Joins::default();
        j.lead_created("L", 0, 0, R, None);
        j.deal_created("D", None, 1.0, 0, 0, 0, R);
        let late = 181 * MICROS_PER_DAY;
        assert_eq!(j.outbound_activity("L", late, late, R).0, None);
        assert_eq!(j.deal_won("X", Some("L"), late, late, R), None);
        assert_eq!(j.open_deals(late, R).count(), 1);
        let later = 366 * MICROS_PER_DAY;
        assert_eq!(j.open_deals(later, R).count(), 0);
        j.sweep(later, R);
        assert_eq!(j.heap_bytes() > 0 || j.leads.is_empty(), true);
        assert!(j.leads.is_empty() && j.deals.is_empty());
    }

    #[test]
    fn won_before_created_stays_closed_and_counts_once() {
        // created 10 s, updated 11 s, won 12 s, in every arrival order: one
        // deal created, none open.
        let orders: [[u8; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        for order in orders {
            let mut j = Joins::default();
            let mut counted = 0;
            for step in order {
                match step {
                    0 => counted += u32::from(j.deal_created("D", None, 100.0, 0, 10 * S, 20 * S, R).counts()),
                    1 => counted += u32::from(j.deal_created("D", None, 150.0, 0, 11 * S, 20 * S, R).counts()),
                    _ => {
                        j.deal_won("D", None, 12 * S, 20 * S, R);
                    }
                }
            }
            assert_eq!(counted, 1, "order {order:?}");
            assert_eq!(j.open_deals(20 * S, R).count(), 0, "order {order:?}");
        }
        // lost first, then its creation: counted, closed; a creation after the loss reopens it
        let mut j = Joins::default();
        j.deal_lost("E", 50 * S, 50 * S, R);
        assert_eq!(j.deal_created("E", None, 1.0, 0, 40 * S, 50 * S, R), DealCreated::CountedClosed);
        assert_eq!(j.deal_created("E", None, 2.0, 0, 45 * S, 50 * S, R), DealCreated::Ignored);
        assert_eq!(j.open_deals(50 * S, R).count(), 0);
        assert_eq!(j.deal_created("E", None, 3.0, 0, 60 * S, 60 * S, R), DealCreated::Opened);
        assert_eq!(j.open_deals(60 * S, R).map(|o| o.amount).collect::<Vec<_>>(), vec![3.0]);
    }

    #[test]
    fn cycle_starts_at_the_lead_the_deal_was_created_for() {
        let mut j = Joins::default();
        j.lead_created("L", 0, 0, R, None);
        j.deal_created("D", Some("L"), 10.0, 0, 400 * S, 400 * S, R);
        // the won event names no lead: the deal's lead still starts the cycle
        assert_eq!(j.deal_won("D", None, 1000 * S, 1000 * S, R), Some(1000.0));
        // a lead named by the won event wins over the deal's
        j.lead_created("M", 600 * S, 600 * S, R, None);
        j.deal_created("F", Some("L"), 10.0, 0, 700 * S, 700 * S, R);
        assert_eq!(j.deal_won("F", Some("M"), 1000 * S, 1000 * S, R), Some(400.0));
    }
}
