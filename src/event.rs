//! The CRM event contract (`docs/event-contract.md`): the typed event model and
//! the validation that turns raw bytes into an [`Event`] or an
//! [`InvalidReason`].
//!
//! Owns: parsing (one JSON object per message/line), field rules, the
//! `json`/`missing_field`/`bad_field`/`unknown_type`/`currency`/`too_large`
//! reasons. The `future`, `cardinality`, `duplicate` and `late` decisions need
//! the engine's state and clock, so they live in [`crate::engine`].
//! Must not touch: engine state, windows, I/O.
//!
//! Parsing is zero-copy: strings borrow from the input unless they contain
//! JSON escapes. Every known field is first read as a loose [`Scalar`] so a
//! wrong type becomes `bad_field` with the field's name instead of an opaque
//! parse error; unknown fields are skipped.
//!
//! Decisions where the contract is silent (documented in `docs/event-contract.md`):
//! - a known field whose value is JSON `null` counts as absent;
//! - a JSON object with a repeated key is `json` (it is not a well-formed event);
//! - `currency` is compared ASCII-case-insensitively (`usd` is `USD`);
//! - `score` accepts an integral number written as `9.0`;
//! - `rep_id` on `spend.recorded` is ignored entirely (not validated, not attributed);
//! - when several rules fail, the first in this order is reported: envelope
//!   field missing, envelope field bad, unknown type, type field missing, type
//!   field bad, currency.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::time::{parse_date, parse_rfc3339, Micros};

mod scan;
mod shape;

pub use shape::MAX_DEPTH;

/// Why an event was not applied. The `as_str` names are the `reason` label
/// values of the invalid-event counters and dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum InvalidReason {
    #[error("json")]
    Json,
    #[error("missing_field")]
    MissingField,
    #[error("bad_field")]
    BadField,
    #[error("unknown_type")]
    UnknownType,
    #[error("currency")]
    Currency,
    #[error("future")]
    Future,
    #[error("cardinality")]
    Cardinality,
    #[error("too_large")]
    TooLarge,
}

impl InvalidReason {
    pub const ALL: [InvalidReason; 8] = [
        Self::Json,
        Self::MissingField,
        Self::BadField,
        Self::UnknownType,
        Self::Currency,
        Self::Future,
        Self::Cardinality,
        Self::TooLarge,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::MissingField => "missing_field",
            Self::BadField => "bad_field",
            Self::UnknownType => "unknown_type",
            Self::Currency => "currency",
            Self::Future => "future",
            Self::Cardinality => "cardinality",
            Self::TooLarge => "too_large",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An invalid event: the reason and, where there is one, the offending field
/// (for logs and dead-letter headers; never used as a metric label).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct Invalid {
    pub reason: InvalidReason,
    pub detail: Option<Cow<'static, str>>,
}

impl Invalid {
    fn new(reason: InvalidReason, detail: impl Into<Cow<'static, str>>) -> Self {
        Invalid { reason, detail: Some(detail.into()) }
    }
    pub fn bare(reason: InvalidReason) -> Self {
        Invalid { reason, detail: None }
    }
}

fn missing(field: &'static str) -> Invalid {
    Invalid::new(InvalidReason::MissingField, field)
}
fn bad(field: &'static str) -> Invalid {
    Invalid::new(InvalidReason::BadField, field)
}

/// The fourteen event types, in the order of `events.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    LeadCreated,
    LeadQualified,
    CallLogged,
    EmailLogged,
    MeetingBooked,
    MeetingCompleted,
    DealCreated,
    QuoteSent,
    DealWon,
    DealLost,
    NpsRecorded,
    CustomerChurned,
    SpendRecorded,
    QuotaSet,
}

impl EventType {
    pub const COUNT: usize = 14;
    pub const ALL: [EventType; 14] = [
        Self::LeadCreated,
        Self::LeadQualified,
        Self::CallLogged,
        Self::EmailLogged,
        Self::MeetingBooked,
        Self::MeetingCompleted,
        Self::DealCreated,
        Self::QuoteSent,
        Self::DealWon,
        Self::DealLost,
        Self::NpsRecorded,
        Self::CustomerChurned,
        Self::SpendRecorded,
        Self::QuotaSet,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeadCreated => "lead.created",
            Self::LeadQualified => "lead.qualified",
            Self::CallLogged => "call.logged",
            Self::EmailLogged => "email.logged",
            Self::MeetingBooked => "meeting.booked",
            Self::MeetingCompleted => "meeting.completed",
            Self::DealCreated => "deal.created",
            Self::QuoteSent => "quote.sent",
            Self::DealWon => "deal.won",
            Self::DealLost => "deal.lost",
            Self::NpsRecorded => "nps.recorded",
            Self::CustomerChurned => "customer.churned",
            Self::SpendRecorded => "spend.recorded",
            Self::QuotaSet => "quota.set",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "lead.created" => Self::LeadCreated,
            "lead.qualified" => Self::LeadQualified,
            "call.logged" => Self::CallLogged,
            "email.logged" => Self::EmailLogged,
            "meeting.booked" => Self::MeetingBooked,
            "meeting.completed" => Self::MeetingCompleted,
            "deal.created" => Self::DealCreated,
            "quote.sent" => Self::QuoteSent,
            "deal.won" => Self::DealWon,
            "deal.lost" => Self::DealLost,
            "nps.recorded" => Self::NpsRecorded,
            "customer.churned" => Self::CustomerChurned,
            "spend.recorded" => Self::SpendRecorded,
            "quota.set" => Self::QuotaSet,
            _ => return None,
        })
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadSource {
    Inbound,
    Outbound,
    Referral,
    Partner,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Mql,
    Sql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

/// Outcome of a call or an email touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    NoAnswer,
    Voicemail,
    Connected,
    Sent,
    Bounced,
    Replied,
    Meaningful,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingStatus {
    Held,
    NoShow,
    Rescheduled,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescheduledBy {
    Rep,
    Prospect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WonKind {
    New,
    Upsell,
    CrossSell,
    Renewal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChurnReason {
    Voluntary,
    Involuntary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendCategory {
    Marketing,
    Sales,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum QuotaPeriod {
    Month,
    Quarter,
}

impl QuotaPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Quarter => "quarter",
        }
    }
}

/// What an event says, by type. Strings borrow from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<'a> {
    LeadCreated { lead: Cow<'a, str>, source: LeadSource },
    LeadQualified { lead: Cow<'a, str>, stage: Stage },
    /// `call.logged` (`call == true`) or `email.logged`.
    Touch { call: bool, lead: Option<Cow<'a, str>>, direction: Direction, outcome: Outcome },
    MeetingBooked,
    MeetingCompleted { status: MeetingStatus, rescheduled_by: Option<RescheduledBy> },
    DealCreated { deal: Cow<'a, str>, lead: Option<Cow<'a, str>>, amount: f64, product: Option<Cow<'a, str>> },
    QuoteSent { product: Option<Cow<'a, str>> },
    DealWon { deal: Cow<'a, str>, lead: Option<Cow<'a, str>>, amount: f64, kind: WonKind, margin: Option<f64>, product: Option<Cow<'a, str>> },
    DealLost { deal: Cow<'a, str>, product: Option<Cow<'a, str>> },
    Nps { score: u8 },
    Churned { reason: ChurnReason, mrr: Option<f64> },
    Spend { amount: f64, category: SpendCategory },
    Quota { period: QuotaPeriod, period_start_day: i64, amount: f64 },
}

/// A valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub ty: EventType,
    pub occurred_at: Micros,
    pub team: Cow<'a, str>,
    /// The rep the event is attributed to (always `None` for `spend.recorded`).
    pub rep: Option<Cow<'a, str>>,
    pub payload: Payload<'a>,
}

/// A JSON value read loosely so that type errors can be reported per field.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Null,
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Every field the contract knows, read loosely.
#[derive(Deserialize, Default)]
struct Raw<'a> {
    #[serde(borrow)]
    event_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "type")]
    ty: Option<Scalar<'a>>,
    #[serde(borrow)]
    occurred_at: Option<Scalar<'a>>,
    #[serde(borrow)]
    team_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    rep_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    lead_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    source: Option<Scalar<'a>>,
    #[serde(borrow)]
    stage: Option<Scalar<'a>>,
    #[serde(borrow)]
    outcome: Option<Scalar<'a>>,
    #[serde(borrow)]
    direction: Option<Scalar<'a>>,
    #[serde(borrow)]
    duration_s: Option<Scalar<'a>>,
    #[serde(borrow)]
    meeting_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    scheduled_for: Option<Scalar<'a>>,
    #[serde(borrow)]
    status: Option<Scalar<'a>>,
    #[serde(borrow)]
    rescheduled_by: Option<Scalar<'a>>,
    #[serde(borrow)]
    deal_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    amount: Option<Scalar<'a>>,
    #[serde(borrow)]
    kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    margin: Option<Scalar<'a>>,
    #[serde(borrow)]
    reason: Option<Scalar<'a>>,
    #[serde(borrow)]
    score: Option<Scalar<'a>>,
    #[serde(borrow)]
    customer_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    mrr: Option<Scalar<'a>>,
    #[serde(borrow)]
    category: Option<Scalar<'a>>,
    #[serde(borrow)]
    period: Option<Scalar<'a>>,
    #[serde(borrow)]
    period_start: Option<Scalar<'a>>,
    #[serde(borrow)]
    currency: Option<Scalar<'a>>,
    /// v1.1: on `deal.created`, `quote.sent`, `deal.won`, `deal.lost`.
    #[serde(borrow)]
    product_line: Option<Scalar<'a>>,
}

/// Limits of the validation step that come from configuration.
#[derive(Debug, Clone)]
pub struct ValidationRules {
    /// Messages longer than this are `too_large` (default 64 KiB).
    pub max_message_bytes: usize,
    /// The one reporting currency (default `USD`).
    pub currency: String,
}

impl Default for ValidationRules {
    fn default() -> Self {
        ValidationRules { max_message_bytes: 64 * 1024, currency: "USD".into() }
    }
}

/// A field taken out of [`Raw`]: `None` when absent or `null`.
fn present<'a>(f: Option<Scalar<'a>>) -> Option<Scalar<'a>> {
    match f {
        None | Some(Scalar::Null) => None,
        s => s,
    }
}

fn req<'a>(f: Option<Scalar<'a>>, name: &'static str) -> Result<Scalar<'a>, Invalid> {
    present(f).ok_or_else(|| missing(name))
}

fn as_str<'a>(s: Scalar<'a>, name: &'static str) -> Result<Cow<'a, str>, Invalid> {
    match s {
        Scalar::Str(v) => Ok(v),
        _ => Err(bad(name)),
    }
}

/// The bytes of the id rule.
const ID_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'@' | b'-');
        b += 1;
    }
    t
};

/// `A-Z a-z 0-9 . _ : @ -`, 1..=max characters.
fn valid_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| ID_BYTES[usize::from(b)])
}

fn id<'a>(s: Scalar<'a>, name: &'static str, max: usize) -> Result<Cow<'a, str>, Invalid> {
    let v = as_str(s, name)?;
    if valid_id(&v, max) {
        Ok(v)
    } else {
        Err(bad(name))
    }
}

fn req_id<'a>(f: Option<Scalar<'a>>, name: &'static str, max: usize) -> Result<Cow<'a, str>, Invalid> {
    id(req(f, name)?, name, max)
}

fn opt_id<'a>(f: Option<Scalar<'a>>, name: &'static str, max: usize) -> Result<Option<Cow<'a, str>>, Invalid> {
    present(f).map(|s| id(s, name, max)).transpose()
}

fn amount(s: Scalar<'_>, name: &'static str) -> Result<f64, Invalid> {
    match s {
        Scalar::Num(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(bad(name)),
    }
}

fn opt_amount(f: Option<Scalar<'_>>, name: &'static str) -> Result<Option<f64>, Invalid> {
    present(f).map(|s| amount(s, name)).transpose()
}

/// Reads an enumerated string field; `None` when absent.
fn opt_enum<T>(
    f: Option<Scalar<'_>>,
    name: &'static str,
    map: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, Invalid> {
    match present(f) {
        None => Ok(None),
        Some(s) => map(&as_str(s, name)?).map(Some).ok_or_else(|| bad(name)),
    }
}

fn req_enum<T>(f: Option<Scalar<'_>>, name: &'static str, map: impl Fn(&str) -> Option<T>) -> Result<T, Invalid> {
    opt_enum(f, name, map)?.ok_or_else(|| missing(name))
}

const ID_MAX: usize = 64;
const LONG_ID_MAX: usize = 128;

/// Parses and validates one message. The steps that need the engine's state
/// (`future`, `cardinality`, dedup, late) are not done here.
pub fn parse_event<'a>(bytes: &'a [u8], rules: &ValidationRules) -> Result<Event<'a>, Invalid> {
    check_size(bytes, rules)?;
    let raw = match scan::scan(bytes) {
        Some(raw) => raw,
        None => parse_raw_serde(bytes)?,
    };
    validate(raw, rules)
}

/// [`parse_event`] without the direct scan: the serde path decides every
/// message. Not for production; the fuzz target (`fuzz/`) and tests check
/// that both paths agree.
#[doc(hidden)]
pub fn parse_event_serde<'a>(bytes: &'a [u8], rules: &ValidationRules) -> Result<Event<'a>, Invalid> {
    check_size(bytes, rules)?;
    validate(parse_raw_serde(bytes)?, rules)
}

fn check_size(bytes: &[u8], rules: &ValidationRules) -> Result<(), Invalid> {
    if bytes.len() > rules.max_message_bytes {
        return Err(Invalid::new(InvalidReason::TooLarge, format!("{} bytes", bytes.len())));
    }
    Ok(())
}

/// Whether the direct scan reads `bytes` (and serde is not needed). Not for
/// production: for the fuzz target, to tell which path decided.
#[doc(hidden)]
pub fn direct_scan_reads(bytes: &[u8]) -> bool {
    scan::scan(bytes).is_some()
}

/// The general path: serde (sonic-rs, then serde_json for what sonic-rs
/// refuses), for every message the direct scan leaves to it.
fn parse_raw_serde(bytes: &[u8]) -> Result<Raw<'_>, Invalid> {
    if let Some(detail) = shape::problem(bytes) {
        return Err(Invalid::new(InvalidReason::Json, detail));
    }
    // sonic-rs skips an ignored value without checking it (an invalid escape
    // `"\u"` in an unknown field passed; found by fuzzing): serde_json checks
    // the whole grammar first. Only on this path, which plain events skip.
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(bytes) {
        return Err(Invalid::new(InvalidReason::Json, e.to_string()));
    }
    let raw: Raw<'_> = match sonic_rs::from_slice(bytes) {
        Ok(raw) => raw,
        // sonic-rs refuses a number beyond the f64 range (`1e400`) even in a
        // field it ignores, which is valid JSON; serde_json only refuses it
        // in a field that is read. A rare path: only for lines sonic-rs refused.
        Err(e) => match serde_json::from_slice::<Raw<'_>>(bytes) {
            Ok(raw) => raw,
            // (The grammar is checked above: a syntax error after the number
            // is `json`, a case fuzzing found.)
            Err(j) if j.to_string().starts_with("number out of range") => {
                return Err(Invalid::new(InvalidReason::BadField, "a number beyond the range of a double"))
            }
            // sonic-rs follows its message with an excerpt of the line and a caret.
            Err(_) => return Err(Invalid::new(InvalidReason::Json, e.to_string().lines().next().unwrap_or_default().to_owned())),
        },
    };
    Ok(raw)
}

fn validate<'a>(mut r: Raw<'a>, rules: &ValidationRules) -> Result<Event<'a>, Invalid> {
    // Envelope: presence first, then values.
    let event_id = req(r.event_id.take(), "event_id")?;
    let ty = req(r.ty.take(), "type")?;
    let occurred_at = req(r.occurred_at.take(), "occurred_at")?;
    let team = req(r.team_id.take(), "team_id")?;

    let event_id = as_str(event_id, "event_id")?;
    if event_id.is_empty() || event_id.len() > 128 || !event_id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(bad("event_id"));
    }
    let occurred_at = parse_rfc3339(&as_str(occurred_at, "occurred_at")?).ok_or_else(|| bad("occurred_at"))?;
    let team = id(team, "team_id", ID_MAX)?;
    let ty_str = as_str(ty, "type")?;
    let ty = EventType::parse(&ty_str)
        .ok_or_else(|| Invalid::new(InvalidReason::UnknownType, ty_str.chars().take(64).collect::<String>()))?;

    let rep = if ty == EventType::SpendRecorded { None } else { opt_id(r.rep_id.take(), "rep_id", ID_MAX)? };
    let needs_rep = matches!(
        ty,
        EventType::CallLogged
            | EventType::EmailLogged
            | EventType::MeetingBooked
            | EventType::MeetingCompleted
            | EventType::DealCreated
            | EventType::QuoteSent
            | EventType::DealWon
            | EventType::DealLost
    );
    if needs_rep && rep.is_none() {
        return Err(missing("rep_id"));
    }
    let lead = opt_id(r.lead_id.take(), "lead_id", LONG_ID_MAX)?;
    let need_lead = |lead: Option<Cow<'a, str>>| lead.ok_or_else(|| missing("lead_id"));

    let payload = match ty {
        EventType::LeadCreated => {
            let lead = need_lead(lead)?;
            let source = opt_enum(r.source, "source", |s| match s {
                "inbound" => Some(LeadSource::Inbound),
                "outbound" => Some(LeadSource::Outbound),
                "referral" => Some(LeadSource::Referral),
                "partner" => Some(LeadSource::Partner),
                "other" => Some(LeadSource::Other),
                _ => None,
            })?
            .unwrap_or(LeadSource::Other);
            Payload::LeadCreated { lead, source }
        }
        EventType::LeadQualified => {
            let lead = need_lead(lead)?;
            let stage = req_enum(r.stage, "stage", |s| match s {
                "mql" => Some(Stage::Mql),
                "sql" => Some(Stage::Sql),
                _ => None,
            })?;
            Payload::LeadQualified { lead, stage }
        }
        EventType::CallLogged | EventType::EmailLogged => {
            let call = ty == EventType::CallLogged;
            let outcome = req_enum(r.outcome, "outcome", |s| match (call, s) {
                (true, "no_answer") => Some(Outcome::NoAnswer),
                (true, "voicemail") => Some(Outcome::Voicemail),
                (true, "connected") => Some(Outcome::Connected),
                (false, "sent") => Some(Outcome::Sent),
                (false, "bounced") => Some(Outcome::Bounced),
                (false, "replied") => Some(Outcome::Replied),
                (_, "meaningful") => Some(Outcome::Meaningful),
                _ => None,
            })?;
            let direction = opt_enum(r.direction, "direction", |s| match s {
                "outbound" => Some(Direction::Outbound),
                "inbound" => Some(Direction::Inbound),
                _ => None,
            })?
            .unwrap_or(Direction::Outbound);
            if call {
                opt_amount(r.duration_s, "duration_s")?;
            }
            Payload::Touch { call, lead, direction, outcome }
        }
        EventType::MeetingBooked => {
            req_id(r.meeting_id, "meeting_id", LONG_ID_MAX)?;
            if let Some(s) = present(r.scheduled_for) {
                parse_rfc3339(&as_str(s, "scheduled_for")?).ok_or_else(|| bad("scheduled_for"))?;
            }
            Payload::MeetingBooked
        }
        EventType::MeetingCompleted => {
            req_id(r.meeting_id, "meeting_id", LONG_ID_MAX)?;
            let status = req_enum(r.status, "status", |s| match s {
                "held" => Some(MeetingStatus::Held),
                "no_show" => Some(MeetingStatus::NoShow),
                "rescheduled" => Some(MeetingStatus::Rescheduled),
                "canceled" => Some(MeetingStatus::Canceled),
                _ => None,
            })?;
            let rescheduled_by = opt_enum(r.rescheduled_by, "rescheduled_by", |s| match s {
                "rep" => Some(RescheduledBy::Rep),
                "prospect" => Some(RescheduledBy::Prospect),
                _ => None,
            })?;
            Payload::MeetingCompleted { status, rescheduled_by }
        }
        EventType::DealCreated => {
            let deal = req_id(r.deal_id, "deal_id", LONG_ID_MAX)?;
            let amount = amount(req(r.amount, "amount")?, "amount")?;
            let product = opt_id(r.product_line, "product_line", ID_MAX)?;
            Payload::DealCreated { deal, lead, amount, product }
        }
        EventType::QuoteSent => {
            opt_id(r.deal_id, "deal_id", LONG_ID_MAX)?;
            opt_amount(r.amount, "amount")?;
            let product = opt_id(r.product_line, "product_line", ID_MAX)?;
            Payload::QuoteSent { product }
        }
        EventType::DealWon => {
            let deal = req_id(r.deal_id, "deal_id", LONG_ID_MAX)?;
            let amount = amount(req(r.amount, "amount")?, "amount")?;
            let kind = opt_enum(r.kind, "kind", |s| match s {
                "new" => Some(WonKind::New),
                "upsell" => Some(WonKind::Upsell),
                "cross_sell" => Some(WonKind::CrossSell),
                "renewal" => Some(WonKind::Renewal),
                _ => None,
            })?
            .unwrap_or(WonKind::New);
            let margin = opt_amount(r.margin, "margin")?;
            let product = opt_id(r.product_line, "product_line", ID_MAX)?;
            Payload::DealWon { deal, lead, amount, kind, margin, product }
        }
        EventType::DealLost => {
            let deal = req_id(r.deal_id, "deal_id", LONG_ID_MAX)?;
            match present(r.reason) {
                None => {}
                Some(Scalar::Str(s)) if s.chars().count() <= 256 => {}
                Some(_) => return Err(bad("reason")),
            }
            let product = opt_id(r.product_line, "product_line", ID_MAX)?;
            Payload::DealLost { deal, product }
        }
        EventType::NpsRecorded => {
            let score = match req(r.score, "score")? {
                Scalar::Num(v) if v.fract() == 0.0 && (0.0..=10.0).contains(&v) => v as u8,
                _ => return Err(bad("score")),
            };
            opt_id(r.customer_id, "customer_id", LONG_ID_MAX)?;
            Payload::Nps { score }
        }
        EventType::CustomerChurned => {
            req_id(r.customer_id, "customer_id", LONG_ID_MAX)?;
            let reason = req_enum(r.reason, "reason", |s| match s {
                "voluntary" => Some(ChurnReason::Voluntary),
                "involuntary" => Some(ChurnReason::Involuntary),
                _ => None,
            })?;
            let mrr = opt_amount(r.mrr, "mrr")?;
            Payload::Churned { reason, mrr }
        }
        EventType::SpendRecorded => {
            let amount_v = req(r.amount, "amount")?;
            let category = req_enum(r.category, "category", |s| match s {
                "marketing" => Some(SpendCategory::Marketing),
                "sales" => Some(SpendCategory::Sales),
                _ => None,
            })?;
            Payload::Spend { amount: amount(amount_v, "amount")?, category }
        }
        EventType::QuotaSet => {
            let period_v = req(r.period, "period")?;
            let start_v = req(r.period_start, "period_start")?;
            let amount_v = req(r.amount, "amount")?;
            let period = match &*as_str(period_v, "period")? {
                "month" => QuotaPeriod::Month,
                "quarter" => QuotaPeriod::Quarter,
                _ => return Err(bad("period")),
            };
            let start = as_str(start_v, "period_start")?;
            let day = parse_date(&start).ok_or_else(|| bad("period_start"))?;
            let (_, m, d) = crate::time::civil_from_days(day);
            let first_day = d == 1 && (period == QuotaPeriod::Month || matches!(m, 1 | 4 | 7 | 10));
            if !first_day {
                return Err(bad("period_start"));
            }
            Payload::Quota { period, period_start_day: day, amount: amount(amount_v, "amount")? }
        }
    };

    if let Some(c) = present(r.currency) {
        let c = as_str(c, "currency")?;
        if !c.eq_ignore_ascii_case(&rules.currency) {
            return Err(Invalid::new(InvalidReason::Currency, c.chars().take(16).collect::<String>()));
        }
    }

    Ok(Event { event_id, ty, occurred_at, team, rep, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Event<'_>, Invalid> {
        parse_event(s.as_bytes(), &ValidationRules::default())
    }

    fn reason(s: &str) -> InvalidReason {
        parse(s).expect_err(s).reason
    }

    const BASE: &str = r#""event_id":"e1","occurred_at":"2026-11-02T09:14:00Z","team_id":"emea-smb""#;

    fn ev(rest: &str) -> String {
        format!("{{{BASE},{rest}}}")
    }

    #[test]
    fn every_example_line_is_valid() {
        let text = include_str!("../tests/fixtures/contract/examples.ndjson");
        for line in text.lines() {
            parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }

    #[test]
    fn borrowed_and_escaped_strings() {
        let s = ev(r#""type":"lead.created","lead_id":"L-1","rep_id":"ana""#);
        let e = parse(&s).unwrap();
        assert!(matches!(e.team, Cow::Borrowed(_)));
        let s = ev(r#""type":"lead.created","lead_id":"L\u002d1","rep_id":"ana""#);
        let e = parse(&s).unwrap();
        assert_eq!(e.payload, Payload::LeadCreated { lead: "L-1".into(), source: LeadSource::Other });
    }

    #[test]
    fn unknown_fields_and_nulls() {
        let s = ev(r#""type":"call.logged","rep_id":"ana","outcome":"connected","x":{"y":[1,2]},"direction":null"#);
        let e = parse(&s).unwrap();
        assert_eq!(e.payload, Payload::Touch { call: true, lead: None, direction: Direction::Outbound, outcome: Outcome::Connected });
    }

    #[test]
    fn numbers_out_of_range() {
        // valid JSON that sonic-rs refuses: ignored where unknown, bad_field where read
        let s = ev(r#""type":"lead.created","lead_id":"L-1","x":1e400,"y":[-1e999]"#);
        assert!(parse(&s).is_ok(), "{s}");
        let s = ev(r#""type":"deal.won","rep_id":"ana","deal_id":"d","amount":1e400"#);
        assert_eq!(reason(&s), InvalidReason::BadField);
        // the fallback keeps every other json reason
        assert_eq!(reason(r#"{"event_id":"a","x":1e400,"event_id":"b"}"#), InvalidReason::Json);
        // and a number beyond range before a syntax error is json (fuzzing found it bad_field)
        assert_eq!(reason(r#"{"event_id":1e400-16", "type":  spend.recorded"}"#), InvalidReason::Json);
        assert_eq!(reason(&ev(r#""type":"deal.won","rep_id":"ana","deal_id":"d","amount":1e400,}"#)), InvalidReason::Json);
        // an invalid escape in a field nobody reads is still not JSON (fuzzing found it missing_field)
        assert_eq!(reason(&ev(r#""type":"quote.sent","rep_id":"a","x":"200:\u\":'sql""#)), InvalidReason::Json);
        assert_eq!(reason(&ev(r#""type":"quote.sent","rep_id":"a","x":["\q"]"#)), InvalidReason::Json);
    }

    fn detail(line: &[u8]) -> String {
        let e = parse_event(line, &ValidationRules::default()).expect_err("invalid");
        assert_eq!(e.reason, InvalidReason::Json, "{:?}: {e}", String::from_utf8_lossy(line));
        e.detail.unwrap_or_default().into_owned()
    }

    /// Invalid UTF-8 is `json` wherever it is (RFC 8259 §8.1: JSON text is
    /// UTF-8), on the direct scan's shape and on serde's, with its offset.
    #[test]
    fn invalid_utf8_anywhere_is_json() {
        let head = br#"{"event_id":"e1","type":"quote.sent","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r""#;
        let at = head.len();
        for (tail, offset) in [
            (&b",\"note\":\"caf\xe9\"}"[..], at + 12),              // an ignored field's plain string (the issue's line)
            (b",\"note\":\"a\\n caf\xe9\"}", at + 16),             // an ignored string with an escape (serde's shape)
            (b",\"no\xe9te\":1}", at + 4),                           // a key
            (b",\"x\":[\"\xc3\"]}", at + 7),                          // nested, a truncated sequence
            (b",\"x\":{\"y\":\"\xed\xa0\x80\"}}", at + 11),           // an encoded surrogate
            (b",\xa0\"x\":1}", at + 1),                               // whitespace
            (b"}\xff", at + 1),                                         // after the object
        ] {
            let line = [&head[..], tail].concat();
            assert_eq!(detail(&line), format!("invalid UTF-8 at byte offset {offset}"), "{:?}", String::from_utf8_lossy(&line));
            same_on_both_paths(&line).unwrap();
        }
        // a known field: json too (not bad_field), before any field rule
        let line = b"{\"event_id\":\"e\xe9\",\"type\":\"quote.sent\"}";
        assert_eq!(detail(line), "invalid UTF-8 at byte offset 14");
        // the same text as UTF-8 is applied
        let ok = [&head[..], ",\"note\":\"café\"}".as_bytes()].concat();
        assert!(parse_event(&ok, &ValidationRules::default()).is_ok());
    }

    #[test]
    fn json_details_name_the_problem() {
        for (s, want) in [
            ("[1]", "expected a JSON object, found an array"),
            ("[1,2,3]", "expected a JSON object, found an array"),
            ("[[[[]]]]", "expected a JSON object, found an array"),
            ("\"x\"", "expected a JSON object, found a string"),
            ("42", "expected a JSON object, found a number"),
            ("null", "expected a JSON object, found null"),
            ("", "expected a JSON object, found an empty message"),
        ] {
            assert_eq!(detail(s.as_bytes()), want, "{s}");
        }
        // serde's own messages: one line, no excerpt of the message
        let d = detail(br#"{"event_id":"a","event_id":"b"}"#);
        assert!(d.starts_with("duplicate field `event_id`") && !d.contains('\n'), "{d}");
        let d = detail(b"{not json");
        assert!(!d.is_empty() && !d.contains('\n'), "{d}");
    }

    /// Deep nesting in an ignored field is `json` "nested too deeply", not a
    /// stack overflow.
    #[test]
    fn deep_nesting_is_json() {
        let head = r#"{"event_id":"e1","type":"quote.sent","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","x":"#;
        // `depth` levels below the event object (level 1)
        let nest = |depth: usize, open: &str, leaf: &str, close: &str| format!("{head}{}{leaf}{}}}", open.repeat(depth), close.repeat(depth));
        for (open, leaf, close) in [("[", "", "]"), ("{\"a\":", "1", "}")] {
            let fits = nest(MAX_DEPTH - 1, open, leaf, close);
            assert!(parse(&fits).is_ok(), "{fits}");
            // up to 30 000 levels fit in the 64 KiB limit (an unbounded parser overflows its stack)
            for depth in [MAX_DEPTH, 60_000 / (open.len() + close.len())] {
                let line = nest(depth, open, leaf, close);
                assert_eq!(detail(line.as_bytes()), "nested too deeply (more than 127 levels)");
                same_on_both_paths(line.as_bytes()).unwrap();
            }
        }
    }

    #[test]
    fn json_reason() {
        for s in ["", "{", "not json", "[1,2]", "\"str\"", "null", r#"{"event_id":"a","event_id":"b"}"#] {
            assert_eq!(reason(s), InvalidReason::Json, "{s}");
        }
    }

    #[test]
    fn missing_field_reason() {
        assert_eq!(reason(r#"{"type":"lead.created","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","lead_id":"l"}"#), InvalidReason::MissingField);
        assert_eq!(reason(&ev(r#""type":"lead.created""#)), InvalidReason::MissingField);
        assert_eq!(reason(&ev(r#""type":"call.logged","outcome":"connected""#)), InvalidReason::MissingField);
        assert_eq!(reason(&ev(r#""type":"call.logged","rep_id":"a""#)), InvalidReason::MissingField);
        assert_eq!(reason(&ev(r#""type":"deal.won","rep_id":"a","deal_id":"d""#)), InvalidReason::MissingField);
        assert_eq!(reason(&ev(r#""type":"quota.set","period":"month","amount":5"#)), InvalidReason::MissingField);
        assert_eq!(reason(&ev(r#""type":"customer.churned","reason":"voluntary""#)), InvalidReason::MissingField);
        assert_eq!(reason(&ev(r#""type":"nps.recorded","score":null"#)), InvalidReason::MissingField);
        // a missing envelope field wins over an unknown type
        assert_eq!(reason(r#"{"event_id":"e","type":"foo","team_id":"t"}"#), InvalidReason::MissingField);
    }

    #[test]
    fn bad_field_reason() {
        for rest in [
            r#""type":"lead.created","lead_id":"L 1""#,
            r#""type":"lead.created","lead_id":"L1","source":"web""#,
            r#""type":"lead.created","lead_id":"L1","rep_id":"""#,
            r#""type":"lead.qualified","lead_id":"L1","stage":"hot""#,
            r#""type":"call.logged","rep_id":"a","outcome":"sent""#,
            r#""type":"email.logged","rep_id":"a","outcome":"voicemail""#,
            r#""type":"call.logged","rep_id":"a","outcome":"connected","direction":"sideways""#,
            r#""type":"call.logged","rep_id":"a","outcome":"connected","duration_s":-1"#,
            r#""type":"meeting.booked","rep_id":"a","meeting_id":"m","scheduled_for":"tomorrow""#,
            r#""type":"meeting.completed","rep_id":"a","meeting_id":"m","status":"done""#,
            r#""type":"deal.created","rep_id":"a","deal_id":"d","amount":-5"#,
            r#""type":"deal.created","rep_id":"a","deal_id":"d","amount":"5""#,
            r#""type":"deal.won","rep_id":"a","deal_id":"d","amount":5,"kind":"big""#,
            r#""type":"deal.won","rep_id":"a","deal_id":"d","amount":5,"margin":true"#,
            r#""type":"nps.recorded","score":11"#,
            r#""type":"nps.recorded","score":7.5"#,
            r#""type":"customer.churned","customer_id":"c","reason":"bored""#,
            r#""type":"spend.recorded","amount":5,"category":"travel""#,
            r#""type":"quota.set","period":"month","period_start":"2026-11-02","amount":5"#,
            r#""type":"quota.set","period":"quarter","period_start":"2026-11-01","amount":5"#,
            r#""type":"quota.set","period":"year","period_start":"2026-01-01","amount":5"#,
        ] {
            assert_eq!(reason(&ev(rest)), InvalidReason::BadField, "{rest}");
        }
        let long_team = "t".repeat(65);
        assert_eq!(
            reason(&format!(r#"{{"event_id":"e","type":"quote.sent","occurred_at":"2026-11-02T09:14:00Z","team_id":"{long_team}","rep_id":"a"}}"#)),
            InvalidReason::BadField
        );
        assert_eq!(
            reason(r#"{"event_id":"e","type":"quote.sent","occurred_at":"2026-11-02 09:14:00","team_id":"t","rep_id":"a"}"#),
            InvalidReason::BadField
        );
        assert_eq!(
            reason(r#"{"event_id":"caf\u00e9","type":"quote.sent","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"a"}"#),
            InvalidReason::BadField
        );
        assert_eq!(
            reason(r#"{"event_id":5,"type":"quote.sent","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"a"}"#),
            InvalidReason::BadField
        );
        assert_eq!(reason(&ev(r#""type":"deal.lost","rep_id":"a","deal_id":"d","reason":7"#)), InvalidReason::BadField);
        let long_reason = "x".repeat(257);
        assert_eq!(
            reason(&ev(&format!(r#""type":"deal.lost","rep_id":"a","deal_id":"d","reason":"{long_reason}""#))),
            InvalidReason::BadField
        );
    }

    #[test]
    fn unknown_type_currency_too_large() {
        assert_eq!(reason(&ev(r#""type":"lead.deleted","lead_id":"L1""#)), InvalidReason::UnknownType);
        assert_eq!(reason(&ev(r#""type":"deal.won","rep_id":"a","deal_id":"d","amount":5,"currency":"EUR""#)), InvalidReason::Currency);
        assert!(parse(&ev(r#""type":"deal.won","rep_id":"a","deal_id":"d","amount":5,"currency":"usd""#)).is_ok());
        let big = ev(&format!(r#""type":"quote.sent","rep_id":"a","pad":"{}""#, "x".repeat(70_000)));
        assert_eq!(reason(&big), InvalidReason::TooLarge);
    }

    #[test]
    fn typed_payloads() {
        let s = ev(r#""type":"deal.won","rep_id":"a","deal_id":"d","amount":12000,"margin":4200.5,"kind":"cross_sell","lead_id":"L""#);
        let e = parse(&s).unwrap();
        assert_eq!(
            e.payload,
            Payload::DealWon { deal: "d".into(), lead: Some("L".into()), amount: 12000.0, kind: WonKind::CrossSell, margin: Some(4200.5), product: None }
        );
        let s = ev(r#""type":"spend.recorded","amount":5,"category":"sales","rep_id":"bad id!""#);
        let e = parse(&s).unwrap();
        assert_eq!(e.rep, None);
        let s = ev(r#""type":"nps.recorded","score":9.0"#);
        let e = parse(&s).unwrap();
        assert_eq!(e.payload, Payload::Nps { score: 9 });
        let s = ev(r#""type":"quota.set","period":"quarter","period_start":"2026-10-01","amount":1e5"#);
        let e = parse(&s).unwrap();
        assert!(matches!(e.payload, Payload::Quota { period: QuotaPeriod::Quarter, amount, .. } if amount == 100000.0));
    }

    /// Both paths on one message: the direct scan (with its fallback) and
    /// serde alone must give the same event or the same invalid reason and detail.
    fn same_on_both_paths(line: &[u8]) -> Result<(), String> {
        let rules = ValidationRules::default();
        let fast = parse_event(line, &rules);
        let slow = parse_event_serde(line, &rules);
        if fast == slow {
            Ok(())
        } else {
            Err(format!("{:?}\n fast: {fast:?}\n serde: {slow:?}", String::from_utf8_lossy(line)))
        }
    }

    #[test]
    fn event_types_and_keys_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("deal.wonx"), None);
    }

    #[test]
    fn direct_scan_agrees_with_serde_on_edge_cases() {
        let cases: &[&[u8]] = &[
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00.250+01:00","team_id":"t","rep_id":"r","deal_id":"d","amount":12000.50,"margin":0.1}"#,
            br#" { "event_id" : "e" , "type": "deal.won", "occurred_at": "2026-11-02T09:14:00Z", "team_id": "t", "rep_id": "r", "deal_id": "d", "amount": 0 } "#,
            b"{\"event_id\":\"e\",\t\"type\":\"quote.sent\",\r\n\"occurred_at\":\"2026-11-02T09:14:00Z\",\"team_id\":\"t\",\"rep_id\":\"r\"}\n",
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","deal_id":"d","amount":1e3}"#,
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","deal_id":"d","amount":-0}"#,
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","deal_id":"d","amount":-0.0}"#,
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","deal_id":"d","amount":0123}"#,
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","deal_id":"d","amount":1.}"#,
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","deal_id":"d","amount":123456789012345678}"#,
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","deal_id":"d","amount":0.1000000000000001}"#,
            br#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","rep_id":"r","deal_id":"d","amount":999999999999999.9}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":9.0,"score":8}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":null,"score":8}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7,"x":1,"x":2}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":true}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7,"x":[1,{"a":null}]}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7,"x":tru}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7,"x":nullx}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7}x"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7,}"#,
            br#"{"event_id":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7"#,
            br#"{"event_\u0069d":"e","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7}"#,
            br#"{"event_id":"caf\u00e9","type":"nps.recorded","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","score":7}"#,
            "{\"event_id\":\"café\",\"type\":\"deal.lost\",\"occurred_at\":\"2026-11-02T09:14:00Z\",\"team_id\":\"t\",\"rep_id\":\"r\",\"deal_id\":\"d\",\"reason\":\"précio\"}".as_bytes(),
            b"{\"event_id\":\"e\",\"type\":\"deal.lost\",\"occurred_at\":\"2026-11-02T09:14:00Z\",\"team_id\":\"t\",\"rep_id\":\"r\",\"deal_id\":\"d\",\"reason\":\"\xff\"}",
            b"{\"event_id\":\"e\",\"type\":\"deal.lost\",\"occurred_at\":\"2026-11-02T09:14:00Z\",\"team_id\":\"t\",\"rep_id\":\"r\",\"deal_id\":\"d\",\"reason\":\"a\tb\"}",
            b"{\"event_id\":\"e\",\"type\":\"deal.lost\",\"occurred_at\":\"2026-11-02T09:14:00Z\",\"team_id\":\"t\",\"rep_id\":\"r\",\"deal_id\":\"d\"}\x0b",
            br#"{}"#,
            br#"  "#,
            br#"[]"#,
            br#"{"event_id":"e","type":"lead.created","occurred_at":"2026-11-02T09:14:00Z","team_id":"t","lead_id":"L","x":1e400}"#,
        ];
        for c in cases {
            same_on_both_paths(c).unwrap();
        }
        // The plain shapes take the direct scan.
        for c in &cases[..3] {
            assert!(scan::scan(c).is_some(), "{}", String::from_utf8_lossy(c));
        }
        for style in [crate::gen::Style::Compact, crate::gen::Style::Crm] {
            let cfg = crate::gen::GenConfig { days: 3, style, ..Default::default() };
            for e in crate::gen::Generator::new(cfg) {
                assert!(scan::scan(e.line.as_bytes()).is_some(), "{}", e.line);
                same_on_both_paths(e.line.as_bytes()).unwrap();
            }
        }
    }

    fn json_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 ._:@-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            "[ -~]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            "\\PC{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            (0u64..100_000_000, 0u32..4).prop_map(|(m, k)| if k == 0 { m.to_string() } else { format!("{}.{:0k$}", m / 10u64.pow(k), m % 10u64.pow(k), k = k as usize) }),
            "-?(0|[1-9][0-9]{0,18})(\\.[0-9]{1,18})?([eE][-+]?[0-9]{1,3})?",
            "[0-9.eE+-]{1,6}",
            prop_oneof![Just("true"), Just("false"), Just("null"), Just("[1, 2]"), Just("{\"a\": {}}"), Just("nul"), Just("")].prop_map(str::to_owned),
        ]
    }

    proptest::proptest! {
        #[test]
        fn direct_scan_agrees_with_serde(
            ty in prop_oneof![Just("deal.won"), Just("nps.recorded"), Just("call.logged"), Just("quota.set"), Just("deal.lost"), Just("x")],
            fields in proptest::collection::vec((
                prop_oneof![
                    Just("amount"), Just("margin"), Just("score"), Just("rep_id"), Just("deal_id"), Just("outcome"),
                    Just("period"), Just("period_start"), Just("reason"), Just("currency"), Just("duration_s"), Just("unknown"),
                ],
                json_value(),
            ), 0..6),
            ws in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t"), Just("\r\n"), Just("x")], 8),
            cut in proptest::option::weighted(0.1, 0usize..200),
        ) {
            let mut line = format!(
                "{}{{{}\"event_id\":\"e1\",\"type\":{}\"{ty}\",\"occurred_at\":\"2026-11-02T09:14:00.5+01:00\",\"team_id\"{}:\"t\"",
                ws[0], ws[1], ws[2], ws[3]
            );
            for (i, (k, v)) in fields.iter().enumerate() {
                line.push_str(&format!(",{}\"{k}\"{}:{}{v}{}", ws[4 + i % 2], ws[5], ws[6 + i % 2], ws[(i + 3) % 8]));
            }
            line.push('}');
            line.push_str(ws[7]);
            let mut bytes = line.into_bytes();
            if let Some(c) = cut {
                bytes.truncate(c.min(bytes.len()));
            }
            proptest::prop_assert!(same_on_both_paths(&bytes).is_ok(), "{}", same_on_both_paths(&bytes).unwrap_err());
        }
    }
}
