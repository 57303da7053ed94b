//! `salespulse produce`: writes an NDJSON file of CRM events to a Kafka topic,
//! one message per line, keyed by the event's `team_id` as events.md asks.
//! For backfills, load tests, the end-to-end tests, and for checking a webhook
//! bridge's output against a real engine.
//!
//! Owns: line → message (key extraction), an idempotent producer, progress.
//! Must not touch: validation. Lines are sent as they are, broken ones
//! included (without a key), so the engine counts and dead-letters them the
//! way it would a bridge's mistakes.

use std::io::BufRead;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use tracing::info;

use super::RunError;

/// What a produce run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProduceSummary {
    /// Lines sent (and acknowledged: the producer is flushed at the end).
    pub sent: u64,
    /// Of those, lines without a readable `team_id`, sent without a key.
    pub unkeyed: u64,
    /// Empty lines, skipped.
    pub empty: u64,
}

/// The Kafka message key of an event line: its `team_id`, if the line is a
/// JSON object with a string `team_id`.
pub fn key_of(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Keyed {
        team_id: Option<String>,
    }
    serde_json::from_slice::<Keyed>(line).ok().and_then(|k| k.team_id).filter(|t| !t.is_empty())
}

/// Sends every line of `input` to `topic`. `properties` are librdkafka
/// settings passed through (SASL/TLS). `progress` is called every 10,000 lines.
pub fn produce(
    brokers: &str,
    topic: &str,
    properties: &[(String, String)],
    rate: Option<u64>,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<ProduceSummary, RunError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("compression.type", "lz4");
    for (k, v) in properties {
        cfg.set(k, v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = cfg.create()?;
    let mut summary = ProduceSummary::default();
    let mut line = Vec::with_capacity(1024);
    let start = Instant::now();
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line).map_err(|e| RunError::Other(format!("reading input: {e}")))?;
        if n == 0 {
            break;
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            summary.empty += 1;
            continue;
        }
        let key = key_of(&line);
        if key.is_none() {
            summary.unkeyed += 1;
        }
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).payload(line.as_slice());
        if let Some(k) = key.as_deref() {
            rec = rec.key(k);
        }
        super::kafka::send(&producer, rec)?;
        summary.sent += 1;
        if let Some(r) = rate.filter(|r| *r > 0) {
            // Steady pacing: never ahead of `rate` events per second.
            let due = Duration::from_secs_f64(summary.sent as f64 / r as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if summary.sent % 10_000 == 0 {
            progress(summary.sent);
        }
    }
    producer.flush(Duration::from_secs(120))?;
    info!(sent = summary.sent, unkeyed = summary.unkeyed, secs = start.elapsed().as_secs_f64(), topic, "produced");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::key_of;

    #[test]
    fn key_is_the_team_id() {
        assert_eq!(key_of(br#"{"event_id":"a","team_id":"emea-smb","x":{"team_id":"no"}}"#).as_deref(), Some("emea-smb"));
        assert_eq!(key_of(br#"{"team_id":"a\u0062"}"#).as_deref(), Some("ab"));
        assert_eq!(key_of(br#"{"team_id":7}"#), None);
        assert_eq!(key_of(br#"{"team_id":""}"#), None);
        assert_eq!(key_of(b"not json"), None);
        assert_eq!(key_of(br#"{"event_id":"a"}"#), None);
    }
}
