//! The bridge's self-metrics (`salespulse_bridge_*`) on its `/metrics`
//! (and `/bridge/metrics` of a demo `run`).
//!
//! Owns: names, labels, HELP texts. Must not touch: anything else.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder};

use crate::event::InvalidReason;

pub struct BridgeMetrics {
    registry: Registry,
    /// `route`, `status`.
    pub requests: IntCounterVec,
    /// `result`: accepted, rejected, ignored, unauthenticated, unavailable.
    pub events: IntCounterVec,
    /// `reason`: the contract's invalid reasons.
    pub rejected: IntCounterVec,
    pub produce_duration: Histogram,
    /// `result`: ok, not_found, error.
    pub fetches: IntCounterVec,
}

impl BridgeMetrics {
    pub fn new() -> Result<BridgeMetrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(Opts::new("salespulse_bridge_requests_total", "HTTP requests to the ingest routes, by route and status code."), &["route", "status"])?;
        let events = IntCounterVec::new(
            Opts::new(
                "salespulse_bridge_events_total",
                "Events by result: accepted (acknowledged by the broker), rejected (invalid), ignored (a CRM event that maps to nothing), unavailable (not acknowledged: answered 503), unauthenticated (one per refused request; its body is not read).",
            ),
            &["result"],
        )?;
        let rejected = IntCounterVec::new(Opts::new("salespulse_bridge_rejected_events_total", "Rejected events by the contract's invalid reason."), &["reason"])?;
        let produce_duration = Histogram::with_opts(
            HistogramOpts::new("salespulse_bridge_produce_duration_seconds", "Time from handing a request's events to the producer to the broker's acknowledgment of all of them.")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let fetches = IntCounterVec::new(Opts::new("salespulse_bridge_crm_fetches_total", "CRM objects API calls (HubSpot), by result (ok, not_found, error)."), &["result"])?;
        for r in ["accepted", "rejected", "ignored", "unavailable", "unauthenticated"] {
            events.with_label_values(&[r]);
        }
        for r in InvalidReason::ALL {
            if !matches!(r, InvalidReason::Cardinality) {
                rejected.with_label_values(&[r.as_str()]);
            }
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(produce_duration.clone()))?;
        registry.register(Box::new(fetches.clone()))?;
        Ok(BridgeMetrics { registry, requests, events, rejected, produce_duration, fetches })
    }

    pub fn event(&self, result: &str, n: usize) {
        self.events.with_label_values(&[result]).inc_by(n as u64);
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}
