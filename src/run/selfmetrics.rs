//! The engine's own metrics (`salespulse_*`), kept in a `prometheus` crate
//! registry, plus the event-to-visible latency quantiles from an
//! HdrHistogram.
//!
//! Owns: self-metric names, labels and HELP texts (dashboards and alerts in
//! `deploy/` are written against them).
//! Must not touch: the `sales_*` KPI families (rendered by [`crate::render`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prometheus::{Encoder, GaugeVec, Histogram as PHistogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::engine::Stats;
use crate::event::InvalidReason;
use crate::exposition::Report;

pub struct SelfMetrics {
    registry: Registry,
    pub events: IntCounterVec,
    pub invalid: IntCounterVec,
    pub lag: GaugeVec,
    pub checkpoint_age: GaugeVec,
    pub checkpoint_duration: PHistogram,
    pub state_reps: IntGauge,
    pub state_teams: IntGauge,
    pub state_bytes: IntGauge,
    pub render_duration: PHistogram,
    pub series: IntGauge,
    pub series_dropped: IntGauge,
    budget_log: Mutex<BudgetLog>,
    pub kafka_errors: IntCounter,
    pub rebalances: IntCounter,
    pub restore_rebuilds: IntCounter,
    pub assigned: IntGauge,
    pub ready: IntGauge,
    pub build_info: GaugeVec,
    /// Kafka append time to applied (visible), microseconds.
    latency: Mutex<Histogram<u64>>,
}

#[derive(Debug, thiserror::Error)]
#[error("self-metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl SelfMetrics {
    pub fn new() -> Result<Self, MetricsError> {
        let r = Registry::new();
        let events = IntCounterVec::new(Opts::new("salespulse_events_total", "Events consumed, by result (applied, duplicate, late, invalid)."), &["result"])?;
        let invalid = IntCounterVec::new(Opts::new("salespulse_invalid_events_total", "Invalid events, by reason."), &["reason"])?;
        let lag = GaugeVec::new(Opts::new("salespulse_consumer_lag", "Messages between the consumer position and the end of the partition."), &["topic", "partition"])?;
        let checkpoint_age = GaugeVec::new(Opts::new("salespulse_checkpoint_age_seconds", "Seconds since the partition's last committed checkpoint; restarts while the partition has nothing new to save."), &["topic", "partition"])?;
        let checkpoint_duration = PHistogram::with_opts(
            HistogramOpts::new("salespulse_checkpoint_duration_seconds", "Duration of a checkpoint transaction (snapshots, dead letters, offsets).")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let state_reps = IntGauge::new("salespulse_state_reps", "Reps held in state.")?;
        let state_teams = IntGauge::new("salespulse_state_teams", "Teams held in state.")?;
        let state_bytes = IntGauge::new("salespulse_state_bytes", "Approximate bytes of KPI state.")?;
        let render_duration = PHistogram::with_opts(
            HistogramOpts::new("salespulse_render_duration_seconds", "Time to render the KPI exposition of a scrape.")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
        )?;
        let series = IntGauge::new("salespulse_series", "sales_* series in the last scrape.")?;
        let series_dropped = IntGauge::new(
            "salespulse_series_dropped",
            "sales_* series the series budget (limits.max_series) dropped from the last scrape.",
        )?;
        let kafka_errors = IntCounter::new("salespulse_kafka_errors_total", "Errors reported by the Kafka client.")?;
        let rebalances = IntCounter::new("salespulse_rebalances_total", "Consumer group rebalances (assignments and revocations).")?;
        let restore_rebuilds = IntCounter::new(
            "salespulse_restore_rebuilds_total",
            "Partitions whose checkpoint could not be restored, rebuilt from the earliest retained event.",
        )?;
        let assigned = IntGauge::new("salespulse_assigned_partitions", "Partitions assigned to this instance.")?;
        let ready = IntGauge::new("salespulse_ready", "1 when state is restored and partitions are assigned.")?;
        let build_info = GaugeVec::new(Opts::new("salespulse_build_info", "Build information; the value is 1."), &["version"])?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
        for c in ["applied", "duplicate", "late", "invalid"] {
            events.with_label_values(&[c]);
        }
        for r in InvalidReason::ALL {
            invalid.with_label_values(&[r.as_str()]);
        }
        r.register(Box::new(events.clone()))?;
        r.register(Box::new(invalid.clone()))?;
        r.register(Box::new(lag.clone()))?;
        r.register(Box::new(checkpoint_age.clone()))?;
        r.register(Box::new(checkpoint_duration.clone()))?;
        r.register(Box::new(state_reps.clone()))?;
        r.register(Box::new(state_teams.clone()))?;
        r.register(Box::new(state_bytes.clone()))?;
        r.register(Box::new(render_duration.clone()))?;
        r.register(Box::new(series.clone()))?;
        r.register(Box::new(series_dropped.clone()))?;
        r.register(Box::new(kafka_errors.clone()))?;
        r.register(Box::new(rebalances.clone()))?;
        r.register(Box::new(restore_rebuilds.clone()))?;
        r.register(Box::new(assigned.clone()))?;
        r.register(Box::new(ready.clone()))?;
        r.register(Box::new(build_info.clone()))?;
        let latency = Histogram::new_with_bounds(1, 3_600_000_000, 2).map_err(|e| prometheus::Error::Msg(e.to_string()))?;
        Ok(SelfMetrics {
            registry: r,
            events,
            invalid,
            lag,
            checkpoint_age,
            checkpoint_duration,
            state_reps,
            state_teams,
            state_bytes,
            render_duration,
            series,
            series_dropped,
            budget_log: Mutex::new(BudgetLog::default()),
            kafka_errors,
            rebalances,
            restore_rebuilds,
            assigned,
            ready,
            build_info,
            latency: Mutex::new(latency),
        })
    }

    /// Records what a scrape's render exported, and warns while the series
    /// budget drops series: when what is dropped changes, else at most every
    /// [`BUDGET_LOG_EVERY`]; once when it stops.
    pub fn record_render(&self, r: &Report) {
        self.series.set(r.series as i64);
        self.series_dropped.set(r.dropped as i64);
        let Ok(mut log) = self.budget_log.lock() else { return };
        match log.due(r, Instant::now()) {
            Some(BudgetNote::Dropping(summary)) => tracing::warn!(
                dropped_series = r.dropped,
                series = r.series,
                max_series = r.max_series,
                dropped = %summary,
                "series budget exceeded: rep-level series dropped from the scrape (raise limits.max_series or export less with [exposition.rep])"
            ),
            Some(BudgetNote::Recovered) => tracing::info!(series = r.series, max_series = r.max_series, "series budget no longer exceeded"),
            None => {}
        }
    }

    /// Counts the outcomes of a batch: `after - before` of a shard's stats.
    pub fn count_batch(&self, before: &Stats, after: &Stats) {
        let add = |result: &str, n: u64| {
            if n > 0 {
                self.events.with_label_values(&[result]).inc_by(n);
            }
        };
        add("applied", after.applied - before.applied);
        add("duplicate", after.duplicate - before.duplicate);
        add("late", after.late - before.late);
        add("invalid", after.invalid_total() - before.invalid_total());
        for r in InvalidReason::ALL {
            let n = after.invalid[r.index()] - before.invalid[r.index()];
            if n > 0 {
                self.invalid.with_label_values(&[r.as_str()]).inc_by(n);
            }
        }
    }

    /// Records the append-to-applied latencies (microseconds) of a batch
    /// under one lock.
    pub fn observe_latencies(&self, micros: impl IntoIterator<Item = i64>) {
        if let Ok(mut h) = self.latency.lock() {
            for m in micros {
                let _ = h.record(m.clamp(1, 3_600_000_000) as u64);
            }
        }
    }

    /// Appends the self-metrics in text format 0.0.4.
    pub fn render(&self, out: &mut String) {
        let mut buf = Vec::new();
        if TextEncoder::new().encode(&self.registry.gather(), &mut buf).is_ok() {
            out.push_str(&String::from_utf8_lossy(&buf));
        }
        if let Ok(h) = self.latency.lock() {
            out.push_str("# HELP salespulse_event_visible_latency_seconds Time from Kafka append to the event being visible in /metrics.\n");
            out.push_str("# TYPE salespulse_event_visible_latency_seconds summary\n");
            for q in [0.5, 0.9, 0.99] {
                let v = if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e6 };
                out.push_str(&format!("salespulse_event_visible_latency_seconds{{quantile=\"{q}\"}} {v}\n"));
            }
            let sum = h.mean() * h.len() as f64 / 1e6;
            out.push_str(&format!("salespulse_event_visible_latency_seconds_sum {sum}\n"));
            out.push_str(&format!("salespulse_event_visible_latency_seconds_count {}\n", h.len()));
        }
    }
}

/// How often a persisting budget warning is repeated.
pub const BUDGET_LOG_EVERY: Duration = Duration::from_secs(600);

/// What to log about the budget after a render.
#[derive(Debug, PartialEq, Eq)]
enum BudgetNote {
    Dropping(String),
    Recovered,
}

/// Rate limit of the budget warning: one line per change, else one per
/// [`BUDGET_LOG_EVERY`] (not one per scrape).
#[derive(Debug, Default)]
struct BudgetLog {
    /// When the last warning was logged and what it named.
    last: Option<(Instant, String)>,
}

impl BudgetLog {
    fn due(&mut self, r: &Report, now: Instant) -> Option<BudgetNote> {
        if r.dropped == 0 {
            return self.last.take().map(|_| BudgetNote::Recovered);
        }
        let summary = r.summary();
        let due = match &self.last {
            None => true,
            Some((at, s)) => *s != summary || now.duration_since(*at) >= BUDGET_LOG_EVERY,
        };
        if !due {
            return None;
        }
        self.last = Some((now, summary.clone()));
        Some(BudgetNote::Dropping(summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_warning_is_rate_limited() {
        use crate::exposition::{Dropped, Level};
        let t0 = Instant::now();
        let dropping = |w: &str| Report {
            series: 10,
            dropped: 5,
            max_series: 10,
            dropped_groups: vec![Dropped { level: Level::Rep, family: "sales_connects", window: Some(w.into()), series: 5 }],
        };
        let mut log = BudgetLog::default();
        assert_eq!(log.due(&Report::default(), t0), None);
        assert_eq!(log.due(&dropping("1h"), t0), Some(BudgetNote::Dropping("rep sales_connects[1h]".into())));
        // the same every scrape: quiet until BUDGET_LOG_EVERY has passed
        assert_eq!(log.due(&dropping("1h"), t0 + Duration::from_secs(15)), None);
        assert_eq!(log.due(&dropping("1h"), t0 + Duration::from_secs(599)), None);
        assert!(log.due(&dropping("1h"), t0 + BUDGET_LOG_EVERY).is_some());
        // a change is logged at once
        assert_eq!(log.due(&dropping("today"), t0 + BUDGET_LOG_EVERY), Some(BudgetNote::Dropping("rep sales_connects[today]".into())));
        assert_eq!(log.due(&Report::default(), t0 + BUDGET_LOG_EVERY), Some(BudgetNote::Recovered));
        assert_eq!(log.due(&Report::default(), t0 + BUDGET_LOG_EVERY), None);
    }
    use crate::engine::Outcome;

    #[test]
    fn exposition_names() {
        let m = SelfMetrics::new().unwrap();
        let before = Stats::default();
        let mut after = Stats::default();
        after.count(&Outcome::Applied);
        after.count(&Outcome::Applied);
        after.count(&Outcome::Duplicate);
        after.count(&Outcome::Invalid(crate::event::Invalid::bare(InvalidReason::Json)));
        m.count_batch(&before, &after);
        m.observe_latencies([2_500, 4_000]);
        let mut s = String::new();
        m.render(&mut s);
        for name in [
            "salespulse_events_total{result=\"applied\"} 2",
            "salespulse_events_total{result=\"duplicate\"} 1",
            "salespulse_events_total{result=\"invalid\"} 1",
            "salespulse_invalid_events_total{reason=\"json\"} 1",
            "salespulse_invalid_events_total{reason=\"future\"} 0",
            "salespulse_build_info",
            "salespulse_series_dropped 0",
            "salespulse_event_visible_latency_seconds_count 2",
        ] {
            assert!(s.contains(name), "{name} missing in\n{s}");
        }
    }
}
