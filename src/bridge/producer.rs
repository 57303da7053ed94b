//! The bridge's Kafka producer: validated events to `kafka.topics[0]`,
//! keyed by `team_id`, idempotent, `acks=all`, and an answer only once the
//! broker acknowledged every one of them.
//!
//! Owns: producer settings, waiting for delivery reports within the
//! configured timeout, mapping failures to "retry later".
//! Must not touch: validation, HTTP. A failed batch may have been partly
//! written: the sender's retry is harmless because the engine dedups by
//! `event_id`.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::ClientConfig;

/// Why events were not acknowledged (the request answers 503).
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("the broker did not acknowledge within {0:?}")]
    Timeout(Duration),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// One event ready to send.
pub struct Record {
    pub key: String,
    pub payload: Vec<u8>,
}

pub struct Producer {
    inner: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl Producer {
    /// `properties` are `kafka.properties` (SASL/TLS), applied last.
    pub fn new(brokers: &str, topic: &str, properties: &[(String, String)], timeout: Duration) -> Result<Producer, KafkaError> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            // librdkafka fails a message it could not deliver in this time;
            // the request has answered 503 by then.
            .set("message.timeout.ms", timeout.as_millis().max(1).to_string());
        for (k, v) in properties {
            cfg.set(k, v);
        }
        Ok(Producer { inner: cfg.create()?, topic: topic.to_string(), timeout })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends every record and waits until the broker acknowledged all of
    /// them, or fails at the first error or after the timeout.
    pub async fn send_all(&self, records: &[Record]) -> Result<(), ProduceError> {
        let deadline = Instant::now() + self.timeout;
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let mut rec = FutureRecord::to(&self.topic).key(r.key.as_str()).payload(r.payload.as_slice());
            loop {
                match self.inner.send_result(rec) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if Instant::now() >= deadline {
                            return Err(ProduceError::Timeout(self.timeout));
                        }
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        let wait = async {
            for f in pending {
                match f.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(ProduceError::Kafka(e)),
                    Err(_) => return Err(ProduceError::Kafka(KafkaError::Canceled)),
                }
            }
            Ok(())
        };
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(r) => r,
            Err(_) => Err(ProduceError::Timeout(self.timeout)),
        }
    }

    /// Whether the broker answers a metadata request for the topic (readiness).
    pub fn reachable(&self, timeout: Duration) -> bool {
        self.inner.client().fetch_metadata(Some(&self.topic), timeout).is_ok_and(|m| m.topics().iter().any(|t| t.error().is_none()))
    }

    /// Delivers what is queued (shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.inner.flush(timeout);
    }
}
