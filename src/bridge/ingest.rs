//! Request bodies → validated events: one JSON event, a JSON array of
//! events, or NDJSON; each event checked with the engine's own
//! [`parse_event`] and its `future` rule, so the bridge accepts exactly what
//! the engine would apply (bar `cardinality` and duplicates, which need the
//! engine's state).
//!
//! Owns: content types, splitting a body into events with their batch
//! index, the `202` body (`accepted`, `ignored`, `rejected`).
//! Must not touch: I/O, authentication, producing.

use serde::Serialize;
use serde_json::value::RawValue;

use super::producer::Record;
use crate::event::{parse_event, Invalid, InvalidReason, ValidationRules};
use crate::time::Micros;

/// The body formats of `POST /v1/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`: one event, or an array of events.
    Json,
    /// `application/x-ndjson`: one event per line.
    Ndjson,
}

/// The body kind of a `Content-Type`, `None` for an unsupported one (`415`).
pub fn body_kind(content_type: Option<&str>) -> Option<BodyKind> {
    let ct = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match ct.as_str() {
        "application/json" => Some(BodyKind::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Some(BodyKind::Ndjson),
        _ => None,
    }
}

/// One rejected event of a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// 0-based position in the batch (NDJSON: the line number).
    pub index: usize,
    /// One of the contract's invalid reasons.
    pub reason: &'static str,
    pub detail: String,
}

impl Rejection {
    pub fn new(index: usize, inv: &Invalid) -> Rejection {
        Rejection { index, reason: inv.reason.as_str(), detail: inv.detail.as_deref().unwrap_or("").to_string() }
    }
}

/// The `202` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Answer {
    pub accepted: usize,
    /// CRM events that map to no contract event (webhook routes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<usize>,
    pub rejected: Vec<Rejection>,
}

/// What one body holds: events to produce and rejections.
#[derive(Default)]
pub struct Batch {
    pub records: Vec<Record>,
    pub rejected: Vec<Rejection>,
}

impl Batch {
    pub fn answer(&self, ignored: Option<usize>) -> Answer {
        Answer { accepted: self.records.len(), ignored, rejected: self.rejected.clone() }
    }

    /// Validates one event; valid ones become records keyed by `team_id`.
    pub fn push(&mut self, index: usize, bytes: &[u8], v: &Validator) {
        match v.check(bytes) {
            Ok(team) => self.records.push(Record { key: team, payload: bytes.to_vec() }),
            Err(inv) => self.rejected.push(Rejection::new(index, &inv)),
        }
    }
}

/// The engine's validation, as the bridge runs it.
#[derive(Debug, Clone)]
pub struct Validator {
    pub rules: ValidationRules,
    pub future_tolerance: Micros,
    /// The wall clock (microseconds); a function so tests can fix it.
    pub now: fn() -> Micros,
}

impl Validator {
    /// `parse_event`, then `future` against the wall clock: the event's
    /// `team_id` (the message key), or why it is invalid.
    pub fn check(&self, bytes: &[u8]) -> Result<String, Invalid> {
        let ev = parse_event(bytes, &self.rules)?;
        if ev.occurred_at > (self.now)().saturating_add(self.future_tolerance) {
            return Err(Invalid::bare(InvalidReason::Future));
        }
        Ok(ev.team.into_owned())
    }
}

/// Splits and validates a `/v1/events` body.
pub fn decode(body: &[u8], kind: BodyKind, v: &Validator) -> Batch {
    let mut b = Batch::default();
    match kind {
        BodyKind::Ndjson => {
            for (i, line) in body.split(|c| *c == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                b.push(i, line, v);
            }
        }
        BodyKind::Json => {
            let first = body.iter().find(|c| !c.is_ascii_whitespace());
            if first == Some(&b'[') {
                match serde_json::from_slice::<Vec<&RawValue>>(body) {
                    Ok(items) => {
                        for (i, raw) in items.iter().enumerate() {
                            b.push(i, raw.get().as_bytes(), v);
                        }
                    }
                    Err(e) => b.rejected.push(Rejection { index: 0, reason: InvalidReason::Json.as_str(), detail: format!("the body is not a JSON array of events: {e}") }),
                }
            } else {
                b.push(0, body, v);
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn now() -> Micros {
        parse_rfc3339("2026-11-20T12:00:00Z").unwrap()
    }

    fn v() -> Validator {
        Validator { rules: ValidationRules::default(), future_tolerance: 300_000_000, now }
    }

    fn ok(id: &str) -> String {
        format!(r#"{{"event_id":"{id}","type":"call.logged","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1","rep_id":"ana","outcome":"meaningful"}}"#)
    }

    #[test]
    fn content_types() {
        assert_eq!(body_kind(Some("application/json; charset=utf-8")), Some(BodyKind::Json));
        assert_eq!(body_kind(Some("Application/X-NDJSON")), Some(BodyKind::Ndjson));
        assert_eq!(body_kind(Some("application/x-www-form-urlencoded")), None);
        assert_eq!(body_kind(None), None);
    }

    /// One event of each invalid reason the bridge can decide, between valid
    /// ones: exactly the valid ones are kept, with the others' indexes.
    #[test]
    fn every_reason_in_one_array() {
        let big = format!(r#"{{"event_id":"big","type":"call.logged","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1","rep_id":"ana","outcome":"meaningful","pad":"{}"}}"#, "x".repeat(70_000));
        let items = [
            ok("a"),
            r#"{"event_id":"b","type":"call.logged"}"#.to_string(),
            r#"{"event_id":"c","type":"call.logged","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1","rep_id":"ana","outcome":"Meaningful"}"#.to_string(),
            r#"{"event_id":"d","type":"task.created","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1"}"#.to_string(),
            r#"{"event_id":"e","type":"deal.won","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1","rep_id":"ana","deal_id":"D","amount":5,"currency":"EUR"}"#.to_string(),
            r#"{"event_id":"f","type":"call.logged","occurred_at":"2026-11-20T12:06:00Z","team_id":"t1","rep_id":"ana","outcome":"meaningful"}"#.to_string(),
            big,
            "[1,2]".to_string(),
            r#"{"event_id":"g","event_id":"g","type":"call.logged","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1","rep_id":"ana","outcome":"meaningful"}"#.to_string(),
            ok("h"),
        ];
        let body = format!("[{}]", items.join(","));
        let b = decode(body.as_bytes(), BodyKind::Json, &v());
        let kept: Vec<String> = b.records.iter().map(|r| String::from_utf8(r.payload.clone()).unwrap()).collect();
        assert_eq!(kept, vec![ok("a"), ok("h")]);
        assert!(b.records.iter().all(|r| r.key == "t1"));
        let got: Vec<(usize, &str)> = b.rejected.iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(
            got,
            vec![(1, "missing_field"), (2, "bad_field"), (3, "unknown_type"), (4, "currency"), (5, "future"), (6, "too_large"), (7, "json"), (8, "json")]
        );
        assert_eq!(b.rejected[0].detail, "occurred_at");
        let a = serde_json::to_value(b.answer(None)).unwrap();
        assert_eq!(a["accepted"], 2);
        assert_eq!(a["rejected"][0], serde_json::json!({"index": 1, "reason": "missing_field", "detail": "occurred_at"}));
        assert!(a.get("ignored").is_none());
    }

    #[test]
    fn ndjson_lines_are_indexed_and_broken_ones_rejected() {
        let mut body = Vec::new();
        body.extend_from_slice(ok("a").as_bytes());
        body.extend_from_slice(b"\r\n\n{\"event_id\":\xff}\n");
        body.extend_from_slice(b"{not json\n");
        body.extend_from_slice(ok("b").as_bytes());
        let b = decode(&body, BodyKind::Ndjson, &v());
        assert_eq!(b.records.len(), 2);
        assert_eq!(b.records[0].payload, ok("a").as_bytes());
        let got: Vec<(usize, &str)> = b.rejected.iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(got, vec![(2, "json"), (3, "json")]);
    }

    #[test]
    fn one_event_and_broken_bodies() {
        let b = decode(ok("a").as_bytes(), BodyKind::Json, &v());
        assert_eq!((b.records.len(), b.rejected.len()), (1, 0));
        let b = decode(b"{\"event_id\":\"a\",", BodyKind::Json, &v());
        assert_eq!(b.rejected[0].reason, "json");
        let b = decode(b"[{\"event_id\":\"a\"}, {", BodyKind::Json, &v());
        assert_eq!((b.records.len(), b.rejected.len(), b.rejected[0].index), (0, 1, 0));
        let b = decode(b"[]", BodyKind::Json, &v());
        assert_eq!((b.records.len(), b.rejected.len()), (0, 0));
    }
}
