//! Fold workers: threads that drain partitions' own message queues (split off
//! the consumer with `split_partition_queue`) into those partitions' shards.
//!
//! Owns: the hot loop of `run` (batch, clock, fold, dead letters, per-batch
//! self-metrics) and its threads' lifecycle.
//! Must not touch: the consumer group (assignment, offsets, checkpoints are
//! [`super::kafka`]'s), event semantics ([`crate::engine`]).
//!
//! `run.workers` threads (default: the number of cores, at most the number of
//! assigned partitions) each own a fixed subset of the assigned partitions,
//! partition `i` going to worker `i % workers`. A worker drains each of its
//! queues in batches of up to [`BATCH`] messages: one wall-clock read, one
//! lock of the partition, one update of the self-metrics per batch, never a
//! syscall per message. With nothing queued it parks until librdkafka's
//! non-empty callback of one of its queues wakes it (or 100 ms pass, to
//! notice a stop).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use tracing::{debug, warn};

use super::parts::{lock, Dead, Engine, Key, PartCell};
use crate::engine::Outcome;
use crate::time::wall_now;

/// Messages taken from a queue before they are applied under one lock.
pub const BATCH: usize = 1024;
/// Dead letters a partition may hold before the worker waits for a checkpoint
/// to send them (the consume loop checkpoints as soon as one is wanted).
pub const MAX_PENDING_DEAD: usize = 10_000;

/// The queue type of one split partition.
pub type Queue<C> = rdkafka::consumer::base_consumer::PartitionQueue<C>;

/// A running fold worker.
pub struct Worker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a worker draining `queues` into their parts. `transactional`:
    /// dead letters are kept for the checkpoint (else dropped after counting:
    /// the demo broker).
    pub fn spawn<C>(id: usize, engine: Arc<Engine>, queues: Vec<(Key, PartCell, Queue<C>)>, transactional: bool) -> std::io::Result<Worker>
    where
        C: ConsumerContext + 'static,
        BaseConsumer<C>: Send + Sync,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("salespulse-fold-{id}"))
            .spawn(move || run(engine, queues, flag, transactional))?;
        Ok(Worker { stop, handle: Some(handle) })
    }

    /// Stops the worker and waits until it has applied its last batch.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            if h.join().is_err() {
                warn!("a fold worker panicked");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn run<C>(engine: Arc<Engine>, mut queues: Vec<(Key, PartCell, Queue<C>)>, stop: Arc<AtomicBool>, transactional: bool)
where
    C: ConsumerContext + 'static,
{
    let me = std::thread::current();
    for (_, _, q) in &mut queues {
        let t = me.clone();
        q.set_nonempty_callback(move || t.unpark());
    }
    debug!(partitions = ?queues.iter().map(|(k, _, _)| k.1).collect::<Vec<_>>(), "fold worker started");
    let mut batch: Vec<BorrowedMessage<'_>> = Vec::with_capacity(BATCH);
    let mut latencies: Vec<i64> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let mut any = false;
        for (key, cell, q) in &queues {
            // Backpressure: a partition whose dead letters wait for a
            // checkpoint is not read until that checkpoint has taken them.
            if lock(cell).dead.len() >= MAX_PENDING_DEAD {
                engine.checkpoint_wanted.store(true, Ordering::Relaxed);
                continue;
            }
            while batch.len() < BATCH {
                match q.poll(Duration::ZERO) {
                    Some(Ok(m)) => batch.push(m),
                    Some(Err(e)) => {
                        engine.metrics.kafka_errors.inc();
                        warn!(error = %e, topic = %key.0, partition = key.1, "consume error");
                    }
                    None => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            any = true;
            apply(&engine, key, cell, &mut batch, &mut latencies, transactional);
            batch.clear();
        }
        if !any {
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
    debug!("fold worker stopped");
}

/// Applies one batch of one partition's messages under one lock.
fn apply(engine: &Engine, key: &Key, cell: &PartCell, batch: &mut [BorrowedMessage<'_>], latencies: &mut Vec<i64>, transactional: bool) {
    engine.broker_ok.store(true, Ordering::Relaxed);
    let now = wall_now();
    let core = &engine.core;
    latencies.clear();
    let mut part = lock(cell);
    if part.revoked {
        return;
    }
    let before = part.shard.stats.clone();
    let mut dead_added = false;
    for msg in batch.iter() {
        if msg.offset() < part.next_offset {
            continue; // already in the state this partition started from
        }
        let payload = msg.payload().unwrap_or_default();
        let outcome = part.shard.ingest(core, payload, now);
        part.next_offset = msg.offset() + 1;
        if let Some(ts) = msg.timestamp().to_millis() {
            latencies.push(now - ts * 1000);
        }
        if let Outcome::Invalid(inv) = outcome {
            debug!(topic = %key.0, partition = key.1, offset = msg.offset(), reason = inv.reason.as_str(), "invalid event to the dead-letter topic");
            if transactional {
                part.dead.push(Dead {
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    reason: inv.reason.as_str(),
                    detail: inv.detail.map(|d| d.into_owned()).unwrap_or_default(),
                    offset: msg.offset(),
                });
                dead_added = true;
            }
        }
    }
    part.changed = true;
    if dead_added && part.dead.len() >= MAX_PENDING_DEAD {
        engine.checkpoint_wanted.store(true, Ordering::Relaxed);
    }
    let after = part.shard.stats.clone();
    drop(part);
    engine.metrics.count_batch(&before, &after);
    engine.metrics.observe_latencies(latencies.iter().copied());
}
