//! The embedded default of `run`: librdkafka's in-process mock cluster, fed
//! with a live generated stream, so a newcomer sees live KPIs with one
//! command and no Kafka installed. Not for production: it is a demo broker.
//!
//! Owns: starting the mock cluster, its topic, and the feeder thread that
//! produces generated events re-stamped to the current time at
//! `demo.events_per_second`, with `demo.laggard`'s rep far below the reach
//! benchmark.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;
use tracing::{info, warn};

use crate::config::DemoConfig;
use crate::gen::{GenConfig, Generator};
use crate::time::{format_rfc3339, wall_now, MICROS_PER_DAY};

/// Replaces the `occurred_at` value of a generated line.
fn restamp(line: &str, at: &str) -> String {
    const K: &str = "\"occurred_at\":\"";
    match line.find(K) {
        Some(i) => {
            let start = i + K.len();
            match line[start..].find('"') {
                Some(len) => format!("{}{}{}", &line[..start], at, &line[start + len..]),
                None => line.to_string(),
            }
        }
        None => line.to_string(),
    }
}

/// Starts the feeder: generated events, stamped now, keyed by team.
pub fn feed(brokers: String, topic: String, demo: DemoConfig, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = match ClientConfig::new().set("bootstrap.servers", &brokers).create() {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "demo feeder could not start");
                return;
            }
        };
        if demo.history_days > 0 {
            history(&producer, &topic, &demo, &stop);
        }
        let rate = demo.events_per_second.max(1) as f64;
        let start = Instant::now();
        let mut sent = 0u64;
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let cfg = GenConfig {
                seed: demo.seed + round,
                teams: demo.teams,
                reps_per_team: demo.reps_per_team,
                days: 30,
                start_ms: (wall_now() - 30 * MICROS_PER_DAY) / 1000,
                laggard: demo.laggard().ok().flatten(),
                ..GenConfig::default()
            };
            for ev in Generator::new(cfg) {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let line = restamp(&ev.line, &format_rfc3339(wall_now()));
                let rec = BaseRecord::to(&topic).key(ev.team_id.as_bytes()).payload(line.as_bytes());
                if let Err((e, _)) = producer.send(rec) {
                    warn!(error = %e, "demo feeder send failed");
                }
                sent += 1;
                let due = Duration::from_secs_f64(sent as f64 / rate);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            round += 1;
        }
    })
}

/// Produces `demo.history_days` days of generated history, ending now, with
/// the events' own times (events generated for later today are left out: they
/// would be `future`). Its event ids use another seed than the live rounds.
fn history(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, demo: &DemoConfig, stop: &AtomicBool) {
    let now = wall_now();
    let cfg = GenConfig {
        seed: demo.seed.wrapping_add(1_000_000),
        teams: demo.teams,
        reps_per_team: demo.reps_per_team,
        days: demo.history_days + 1,
        start_ms: (now.div_euclid(MICROS_PER_DAY) - i64::from(demo.history_days)) * MICROS_PER_DAY / 1000,
        laggard: demo.laggard().ok().flatten(),
        ..GenConfig::default()
    };
    let mut sent = 0u64;
    for ev in Generator::new(cfg) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if ev.ts_ms * 1000 > now {
            continue;
        }
        let rec = BaseRecord::to(topic).key(ev.team_id.as_bytes()).payload(ev.line.as_bytes());
        if let Err(e) = super::kafka::send(producer, rec) {
            warn!(error = %e, "demo feeder: history send failed");
            continue;
        }
        sent += 1;
    }
    info!(events = sent, days = demo.history_days, "demo feeder: produced the generated history; the live stream follows");
}

/// Starts the mock cluster with the topic.
pub fn cluster(topic: &str, partitions: i32) -> Result<MockCluster<'static, DefaultProducerContext>, rdkafka::error::KafkaError> {
    let c = MockCluster::new(1)?;
    c.create_topic(topic, partitions, 1)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn restamp_replaces_only_the_time() {
        let l = r#"{"event_id":"a","occurred_at":"2026-01-01T00:00:00+01:00","team_id":"t"}"#;
        assert_eq!(super::restamp(l, "2026-11-22T10:00:00.000Z"), r#"{"event_id":"a","occurred_at":"2026-11-22T10:00:00.000Z","team_id":"t"}"#);
    }
}
