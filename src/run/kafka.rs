//! The Kafka adapter of `run`: a consumer-group member that feeds every
//! assigned partition's messages into that partition's [`Shard`], sends
//! invalid messages to the dead-letter topic, and checkpoints each
//! partition's state together with its consumer offset in one Kafka
//! transaction.
//!
//! Owns: the consume loop (on a plain thread: `BaseConsumer::poll`),
//! rebalance handling (checkpoint and drop revoked partitions; restore
//! assigned ones from their latest committed checkpoint), checkpoint
//! transactions, dead letters, lag.
//! Must not touch: event semantics (the shard does that), HTTP.
//!
//! Why no event is lost or counted twice: a checkpoint transaction contains
//! the snapshot of the partition's state *after* message `n-1` (with `n` in
//! it), the dead letters of messages before `n`, and the group's committed
//! offset `n` (`send_offsets_to_transaction`). Either all of it commits or
//! none of it. After a crash or a move, the new owner restores the last
//! committed snapshot (reading the checkpoint topic `read_committed`) and
//! the group resumes at its committed offset, the same `n`: messages before
//! `n` are in the snapshot exactly once, messages from `n` on are applied
//! again from scratch. A zombie instance cannot commit: its offsets carry
//! an old group generation, so its transaction fails and is aborted.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::checkpoint;
use super::selfmetrics::SelfMetrics;
use crate::config::KafkaConfig;
use crate::engine::{Clock, Core, Outcome, Shard};
use crate::time::{wall_now, Micros};

/// Largest snapshot record (topic `max.message.bytes` and producer limit).
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;
/// Checkpoint early when this many dead letters wait.
const MAX_PENDING_DEAD: usize = 10_000;
const TXN_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("checkpoint of {key}: {source}")]
    Checkpoint { key: String, source: checkpoint::CheckpointError },
    #[error("snapshot of {key} is {size} bytes, over the {MAX_SNAPSHOT_BYTES}-byte limit")]
    SnapshotTooLarge { key: String, size: usize },
    #[error("{0}")]
    Other(String),
}

/// An invalid message waiting for the next checkpoint transaction.
struct Dead {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    reason: &'static str,
    detail: String,
    offset: i64,
}

/// State of one assigned partition.
pub struct Part {
    pub shard: Shard,
    /// Offset of the next message to apply (-1: from wherever the group is).
    pub next_offset: i64,
    dead: Vec<Dead>,
    last_checkpoint: Instant,
    /// Messages applied since the last checkpoint.
    changed: bool,
    /// `next_offset` of the checkpoint this state continues: the last one this
    /// instance committed or restored (-1: none). On a re-assignment, the state
    /// in memory is kept only if the checkpoint topic still holds exactly this
    /// one, i.e. nobody else committed the partition in between.
    committed_offset: i64,
    /// Revoked and not (yet) assigned again: still served on `/metrics` (a
    /// broker outage must not blank the dashboards) but neither fed nor
    /// checkpointed. Dropped when an assignment that does not include it
    /// arrives.
    revoked: bool,
}

impl Part {
    fn new(shard: Shard, next_offset: i64) -> Part {
        Part { shard, next_offset, dead: Vec::new(), last_checkpoint: Instant::now(), changed: false, committed_offset: next_offset, revoked: false }
    }
}

/// What the consumer thread and the HTTP server share.
pub struct Engine {
    pub core: Arc<Core>,
    pub parts: Mutex<BTreeMap<(String, i32), Part>>,
    pub metrics: SelfMetrics,
    /// Partitions assigned and restored.
    pub ready: AtomicBool,
    /// False after the client reported all brokers down, until a fetch works.
    pub broker_ok: AtomicBool,
}

impl Engine {
    pub fn new(core: Arc<Core>, metrics: SelfMetrics) -> Self {
        Engine { core, parts: Mutex::new(BTreeMap::new()), metrics, ready: AtomicBool::new(false), broker_ok: AtomicBool::new(true) }
    }

    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, i32), Part>> {
        // A panic while holding the lock cannot leave a shard half-updated in
        // a way later reads can't handle; keep serving.
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.broker_ok.load(Ordering::Relaxed)
    }

    /// Renders the KPI families of every assigned partition, then the
    /// self-metrics.
    pub fn render(&self, out: &mut String) {
        let start = Instant::now();
        {
            let parts = self.lock();
            let shards: Vec<&Shard> = parts.values().map(|p| &p.shard).collect();
            let wall = wall_now();
            let t = match self.core.clock {
                Clock::Event => shards.iter().filter_map(|s| s.event_clock).max(),
                Clock::Wall => Some(wall),
                Clock::Fixed(t) => Some(t),
            };
            crate::render::render(&shards, &self.core, t.unwrap_or(wall), out);
            self.metrics.state_reps.set(shards.iter().map(|s| s.rep_count()).sum::<usize>() as i64);
            self.metrics.state_teams.set(shards.iter().map(|s| s.teams.len()).sum::<usize>() as i64);
            self.metrics.state_bytes.set(shards.iter().map(|s| s.heap_bytes()).sum::<usize>() as i64);
            self.metrics.assigned.set(parts.len() as i64);
            self.metrics.ready.set(i64::from(self.is_ready()));
        }
        self.metrics.render_duration.observe(start.elapsed().as_secs_f64());
        self.metrics.render(out);
    }
}

/// Settings of the Kafka adapter.
#[derive(Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub brokers: String,
    /// Checkpoint transactions on (off only for the demo broker when it
    /// cannot do transactions).
    pub transactional: bool,
}

impl Settings {
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.kafka.properties {
            c.set(k, v);
        }
        c
    }
}

/// The consumer's context: rebalance callbacks and client errors.
pub struct Ctx {
    engine: Arc<Engine>,
    settings: Settings,
    /// The transactional producer of checkpoints and dead letters (`None`
    /// without transactions, or after a fatal error until it is created
    /// again at the next checkpoint).
    producer: Mutex<Option<ThreadedProducer<DefaultProducerContext>>>,
    /// A fatal error seen inside a callback, for the loop to return.
    fatal: Mutex<Option<String>>,
}

impl Ctx {
    /// Commits a checkpoint of `which` partitions (all when `None`). A fatal
    /// producer error (fenced, or an invalid transaction state after a broker
    /// outage) discards the producer; the next call creates a new one, so the
    /// engine recovers without a restart. Offsets are fenced by the consumer
    /// group generation (`send_offsets_to_transaction`), not by the
    /// transactional id, so a new producer is as safe as the old one.
    fn checkpoint(&self, consumer: &BaseConsumer<Ctx>, which: Option<&[(String, i32)]>) -> Result<(), RunError> {
        if !self.settings.transactional {
            // Demo broker without transactions: nothing to commit.
            return Ok(());
        }
        let mut guard = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        // At most two attempts: the second with a new producer, when the
        // first one's error was fatal.
        for attempt in 0..2 {
            let p = match guard.take() {
                Some(p) => p,
                None => {
                    let p = producer(&self.settings)?;
                    info!("created a new transactional producer after a fatal error");
                    p
                }
            };
            let result = checkpoint(&self.engine, &self.settings, &p, consumer, which);
            match &result {
                Err(RunError::Kafka(e)) if is_fatal(e) && attempt == 0 => {
                    warn!(error = %e, "fatal producer error: retrying the checkpoint with a new transactional producer");
                    continue;
                }
                Err(RunError::Kafka(e)) if is_fatal(e) => {}
                Err(_) => {
                    // A checkpoint that cannot commit: not ready until a
                    // broker answers again (see update_lag).
                    self.engine.broker_ok.store(false, Ordering::Relaxed);
                    *guard = Some(p);
                }
                Ok(()) => *guard = Some(p),
            }
            return result;
        }
        Err(RunError::Other("checkpoint: no attempt made".into()))
    }
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        self.engine.metrics.kafka_errors.inc();
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::AllBrokersDown)) {
            self.engine.broker_ok.store(false, Ordering::Relaxed);
        }
        warn!(error = %error, reason, "kafka client error");
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.engine.metrics.rebalances.inc();
        if let Rebalance::Revoke(tpl) = rebalance {
            let keys: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
            info!(partitions = ?keys, "partitions revoked: checkpointing them");
            if let Err(e) = self.checkpoint(consumer, Some(&keys)) {
                error!(error = %e, "checkpoint on revoke failed: the next owner resumes from the previous checkpoint");
            }
            // Keep serving them until the next assignment says who owns
            // them: during a broker outage (session timeout) that can be a
            // long time, and the last KPIs are better than none.
            let mut parts = self.engine.lock();
            for k in &keys {
                if let Some(p) = parts.get_mut(k) {
                    p.revoked = true;
                }
            }
            self.engine.ready.store(false, Ordering::Relaxed);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let keys: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                info!(partitions = ?keys, "partitions assigned: restoring their checkpoints");
                match restore(&self.engine, &self.settings, &keys) {
                    Ok(()) => self.engine.ready.store(true, Ordering::Relaxed),
                    Err(e) => {
                        error!(error = %e, "restoring checkpoints failed");
                        if let Ok(mut f) = self.fatal.lock() {
                            *f = Some(format!("restoring checkpoints failed: {e}"));
                        }
                    }
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                self.engine.metrics.kafka_errors.inc();
                warn!(error = %e, "rebalance error");
            }
        }
    }
}

/// Reads the latest committed checkpoint of each of `keys` and installs the
/// partitions (empty state where there is none).
fn restore(engine: &Engine, settings: &Settings, keys: &[(String, i32)]) -> Result<(), RunError> {
    let group = &settings.kafka.group_id;
    let wanted: HashMap<String, (String, i32)> =
        keys.iter().map(|(t, p)| (checkpoint::key(group, t, *p), (t.clone(), *p))).collect();
    let mut found: HashMap<String, Vec<u8>> = HashMap::new();
    if settings.transactional {
        let reader: BaseConsumer = settings
            .client_config()
            .set("group.id", format!("{group}-checkpoint-reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.max.bytes", (2 * MAX_SNAPSHOT_BYTES).to_string())
            .set("max.partition.fetch.bytes", MAX_SNAPSHOT_BYTES.to_string())
            .create()?;
        let topic = &settings.kafka.checkpoint_topic;
        let (_, high) = reader.fetch_watermarks(topic, 0, Duration::from_secs(30))?;
        if high > 0 {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
            reader.assign(&tpl)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match reader.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        if let (Some(k), Some(v)) = (m.key(), m.payload()) {
                            let k = String::from_utf8_lossy(k).into_owned();
                            if wanted.contains_key(&k) {
                                found.insert(k, v.to_vec());
                            }
                        }
                    }
                    Some(Err(e)) => warn!(error = %e, "reading checkpoints"),
                    None => {}
                }
                let pos = reader.position()?.elements().first().and_then(|e| e.offset().to_raw()).unwrap_or(0);
                if pos >= high {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(RunError::Other(format!("checkpoint topic {topic} not read to its end ({pos} of {high}) within 60 s")));
                }
            }
        }
    }
    // Decode before touching the served state, so a bad record changes nothing.
    let mut decoded: HashMap<String, (Shard, i64)> = HashMap::new();
    for (k, bytes) in &found {
        let d = checkpoint::decode(bytes).map_err(|source| RunError::Checkpoint { key: k.clone(), source })?;
        decoded.insert(k.clone(), d);
    }
    let mut parts = engine.lock();
    for (k, (topic, p)) in wanted {
        let id = (topic, p);
        let on_topic = decoded.get(&k).map_or(-1, |d| d.1);
        if let Some(part) = parts.get_mut(&id) {
            if part.committed_offset == on_topic {
                // Nobody committed this partition since this instance's own
                // last checkpoint: what is in memory continues it (messages
                // before `next_offset` are skipped when the group re-delivers
                // them, pending dead letters go out with the next checkpoint).
                info!(partition = %k, next_offset = part.next_offset, "assigned again: continuing with the state in memory");
                part.revoked = false;
                continue;
            }
            info!(partition = %k, in_memory = part.committed_offset, on_topic, "assigned again, but another owner committed since: restoring its checkpoint");
            if let Some(old) = parts.remove(&id) {
                old.shard.release(&engine.core);
            }
        }
        let part = match decoded.remove(&k) {
            Some((shard, next)) => {
                info!(partition = %k, next_offset = next, teams = shard.teams.len(), "restored checkpoint");
                Part::new(shard.restored(&engine.core), next)
            }
            None => {
                info!(partition = %k, "no checkpoint: starting from the group's committed offset with empty state");
                Part::new(Shard::new(), -1)
            }
        };
        parts.insert(id, part);
    }
    // Revoked partitions this assignment did not give back belong to another
    // instance now: stop serving them and their gauges.
    let gone: Vec<(String, i32)> = parts.iter().filter(|(_, p)| p.revoked).map(|(k, _)| k.clone()).collect();
    for k in gone {
        if let Some(p) = parts.remove(&k) {
            p.shard.release(&engine.core);
            info!(topic = %k.0, partition = k.1, "partition moved to another instance: no longer served");
        }
        let part = k.1.to_string();
        let _ = engine.metrics.lag.remove_label_values(&[&k.0, &part]);
        let _ = engine.metrics.checkpoint_age.remove_label_values(&[&k.0, &part]);
    }
    Ok(())
}

/// Commits a checkpoint of `which` partitions (all assigned when `None`):
/// snapshots, dead letters and offsets in one transaction.
fn checkpoint(
    engine: &Engine,
    settings: &Settings,
    producer: &ThreadedProducer<DefaultProducerContext>,
    consumer: &BaseConsumer<Ctx>,
    which: Option<&[(String, i32)]>,
) -> Result<(), RunError> {
    let start = Instant::now();
    let group = &settings.kafka.group_id;
    // Under the lock: encode the snapshots and take the dead letters. The
    // transaction itself runs without it, so a slow or failing commit
    // (brokers unreachable: up to a minute) never blocks a scrape. Only this
    // thread applies messages, so nothing changes the shards meanwhile.
    let mut taken: Vec<Taken> = Vec::new();
    {
        let mut parts = engine.lock();
        let keys: Vec<(String, i32)> = match which {
            Some(w) => w.iter().filter(|k| parts.contains_key(*k)).cloned().collect(),
            None => parts.keys().cloned().collect(),
        };
        for k in keys {
            let Some(part) = parts.get_mut(&k).filter(|p| p.next_offset >= 0 && !p.revoked) else { continue };
            let ck = checkpoint::key(group, &k.0, k.1);
            let snapshot = match checkpoint::encode(&part.shard, part.next_offset) {
                Ok(s) if s.len() > MAX_SNAPSHOT_BYTES => Err(RunError::SnapshotTooLarge { key: ck.clone(), size: s.len() }),
                Ok(s) => Ok(s),
                Err(source) => Err(RunError::Checkpoint { key: ck.clone(), source }),
            };
            let snapshot = match snapshot {
                Ok(s) => s,
                Err(e) => {
                    give_back(&mut parts, taken);
                    return Err(e);
                }
            };
            taken.push(Taken { key: k, ck, snapshot, next_offset: part.next_offset, dead: std::mem::take(&mut part.dead) });
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    let result = (|| -> Result<(), RunError> {
        let Some(cgm) = consumer.group_metadata() else {
            return Err(RunError::Other("no consumer group metadata".into()));
        };
        if let Err(e) = producer.begin_transaction() {
            // An earlier abort that timed out (brokers unreachable) is still
            // in progress: librdkafka resumes it when abort is called again.
            // Then begin once more; a fatal error goes up.
            if is_fatal(&e) {
                return Err(e.into());
            }
            producer.abort_transaction(TXN_TIMEOUT)?;
            producer.begin_transaction()?;
        }
        let mut offsets = TopicPartitionList::new();
        for t in &taken {
            send(producer, BaseRecord::to(&settings.kafka.checkpoint_topic).key(t.ck.as_bytes()).payload(t.snapshot.as_slice()))?;
            let partition = t.key.1.to_string();
            for d in &t.dead {
                let offset = d.offset.to_string();
                let headers = OwnedHeaders::new()
                    .insert(Header { key: "reason", value: Some(d.reason) })
                    .insert(Header { key: "detail", value: Some(d.detail.as_str()) })
                    .insert(Header { key: "source_topic", value: Some(t.key.0.as_str()) })
                    .insert(Header { key: "source_partition", value: Some(partition.as_str()) })
                    .insert(Header { key: "source_offset", value: Some(offset.as_str()) });
                let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&settings.kafka.dlq_topic).payload(d.payload.as_slice()).headers(headers);
                if let Some(key) = &d.key {
                    rec = rec.key(key.as_slice());
                }
                send(producer, rec)?;
            }
            offsets.add_partition_offset(&t.key.0, t.key.1, Offset::Offset(t.next_offset))?;
        }
        producer.send_offsets_to_transaction(&offsets, &cgm, TXN_TIMEOUT)?;
        producer.commit_transaction(TXN_TIMEOUT)?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            let mut parts = engine.lock();
            for t in &taken {
                if let Some(p) = parts.get_mut(&t.key) {
                    p.last_checkpoint = Instant::now();
                    p.changed = p.next_offset != t.next_offset;
                    p.committed_offset = t.next_offset;
                }
            }
            engine.metrics.checkpoint_duration.observe(start.elapsed().as_secs_f64());
            debug!(partitions = taken.len(), ms = start.elapsed().as_millis() as u64, "checkpoint committed");
            Ok(())
        }
        Err(e) => {
            let _ = producer.abort_transaction(TXN_TIMEOUT);
            give_back(&mut engine.lock(), taken);
            Err(e)
        }
    }
}

/// One partition's share of a checkpoint transaction.
struct Taken {
    key: (String, i32),
    /// Record key on the checkpoint topic.
    ck: String,
    snapshot: Vec<u8>,
    next_offset: i64,
    dead: Vec<Dead>,
}

/// Gives the dead letters of a failed checkpoint back to their partitions,
/// ahead of any newer ones, for the next attempt.
fn give_back(parts: &mut BTreeMap<(String, i32), Part>, taken: Vec<Taken>) {
    for t in taken {
        if let Some(p) = parts.get_mut(&t.key) {
            let mut newer = std::mem::take(&mut p.dead);
            p.dead = t.dead;
            p.dead.append(&mut newer);
        }
    }
}

/// Sends one record, waiting while the producer queue is full.
/// Used by every producer of the crate (checkpoints, dead letters, the demo
/// feeder, `salespulse produce`): a full queue is backpressure, not an error.
pub(crate) fn send<K, P>(producer: &ThreadedProducer<DefaultProducerContext>, mut rec: BaseRecord<'_, K, P>) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Creates the transactional producer of checkpoints and dead letters.
pub fn producer(settings: &Settings) -> Result<ThreadedProducer<DefaultProducerContext>, RunError> {
    let id = format!("salespulse-{}-{}-{}", settings.kafka.group_id, std::process::id(), wall_now());
    let p: ThreadedProducer<DefaultProducerContext> = settings
        .client_config()
        .set("transactional.id", &id)
        .set("message.max.bytes", (MAX_SNAPSHOT_BYTES + 1024 * 1024).to_string())
        .set("compression.type", "none")
        .create()?;
    p.init_transactions(TXN_TIMEOUT)?;
    Ok(p)
}

/// Consumes until `shutdown`, then writes a final checkpoint.
pub fn consume(engine: Arc<Engine>, settings: Settings, shutdown: Arc<AtomicBool>) -> Result<(), RunError> {
    let producer = if settings.transactional { Some(producer(&settings)?) } else { None };
    let ctx = Ctx { engine: engine.clone(), settings: settings.clone(), producer: Mutex::new(producer), fatal: Mutex::new(None) };
    let consumer: BaseConsumer<Ctx> = settings
        .client_config()
        .set("group.id", &settings.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", "16384")
        .set("partition.assignment.strategy", "range")
        .create_with_context(ctx)?;
    let topics: Vec<&str> = settings.kafka.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    info!(topics = ?topics, group = %settings.kafka.group_id, "consuming");

    let interval = Duration::from_secs(settings.kafka.checkpoint_interval_s.max(1));
    let mut last_checkpoint = Instant::now();
    let mut last_lag = Instant::now();
    let core = engine.core.clone();
    while !shutdown.load(Ordering::Relaxed) {
        if let Some(f) = consumer.context().fatal.lock().ok().and_then(|mut f| f.take()) {
            return Err(RunError::Other(f));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                engine.broker_ok.store(true, Ordering::Relaxed);
                let now = wall_now();
                let key = (msg.topic().to_string(), msg.partition());
                let mut parts = engine.lock();
                let Some(part) = parts.get_mut(&key).filter(|p| !p.revoked) else { continue };
                if msg.offset() < part.next_offset {
                    continue; // already in the restored snapshot
                }
                let payload = msg.payload().unwrap_or_default();
                let outcome = part.shard.ingest(&core, payload, now);
                part.next_offset = msg.offset() + 1;
                part.changed = true;
                engine.metrics.count(&outcome);
                if let Some(ts) = msg.timestamp().to_millis() {
                    engine.metrics.observe_latency(now - ts * 1000);
                }
                if let Outcome::Invalid(inv) = outcome {
                    debug!(topic = %key.0, partition = key.1, offset = msg.offset(), reason = inv.reason.as_str(), "invalid event to the dead-letter topic");
                    part.dead.push(Dead {
                        key: msg.key().map(<[u8]>::to_vec),
                        payload: payload.to_vec(),
                        reason: inv.reason.as_str(),
                        detail: inv.detail.map(|d| d.into_owned()).unwrap_or_default(),
                        offset: msg.offset(),
                    });
                    if !settings.transactional {
                        if let Some(d) = part.dead.pop() {
                            warn!(offset = d.offset, reason = d.reason, "demo broker: dead letter dropped after counting");
                        }
                    }
                }
                let pending: usize = parts.values().map(|p| p.dead.len()).sum();
                drop(parts);
                if pending >= MAX_PENDING_DEAD {
                    consumer.context().checkpoint(&consumer, None)?;
                    last_checkpoint = Instant::now();
                }
            }
            Some(Err(e)) => {
                engine.metrics.kafka_errors.inc();
                warn!(error = %e, "consume error");
            }
            None => {}
        }
        if last_checkpoint.elapsed() >= interval {
            let any_changed = {
                let mut parts = engine.lock();
                // A partition with nothing new since its last checkpoint (or
                // its restore) is as saved as it can be: its checkpoint age
                // restarts, so an idle partition does not look stale.
                for p in parts.values_mut().filter(|p| !p.changed) {
                    p.last_checkpoint = Instant::now();
                }
                parts.values().any(|p| p.changed)
            };
            if any_changed {
                if let Err(e) = consumer.context().checkpoint(&consumer, None) {
                    engine.metrics.kafka_errors.inc();
                    error!(error = %e, "checkpoint failed: retrying at the next interval");
                }
            }
            last_checkpoint = Instant::now();
        }
        if last_lag.elapsed() >= Duration::from_secs(5) {
            last_lag = Instant::now();
            update_lag(&engine, &consumer, settings.transactional);
        }
    }
    info!("stopping: final checkpoint");
    consumer.context().checkpoint(&consumer, None)?;
    consumer.unsubscribe();
    Ok(())
}

/// Lag per partition, checkpoint ages, and compaction of idle shards.
fn update_lag(engine: &Engine, consumer: &BaseConsumer<Ctx>, transactional: bool) {
    let keys: Vec<((String, i32), i64, f64)> = engine
        .lock()
        .iter()
        .filter(|(_, p)| !p.revoked)
        .map(|(k, p)| (k.clone(), p.next_offset, p.last_checkpoint.elapsed().as_secs_f64()))
        .collect();
    let (mut asked, mut answered) = (0, 0);
    for ((topic, p), next, age) in keys {
        let part = p.to_string();
        if transactional {
            // Without checkpoints (the demo broker) there is no age to report.
            engine.metrics.checkpoint_age.with_label_values(&[&topic, &part]).set(age);
        }
        asked += 1;
        match consumer.fetch_watermarks(&topic, p, Duration::from_secs(2)) {
            Ok((low, high)) => {
                answered += 1;
                let pos = if next >= 0 { next } else { low };
                engine.metrics.lag.with_label_values(&[&topic, &part]).set((high - pos).max(0) as f64);
            }
            Err(e) => debug!(error = %e, "watermarks"),
        }
    }
    // Readiness follows whether the brokers answer: one answer is enough.
    if asked > 0 {
        let ok = answered > 0;
        if engine.broker_ok.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                info!("brokers answer again");
            } else {
                warn!("no broker answered for any assigned partition: not ready until one does");
            }
        }
    }
    let t: Micros = wall_now();
    if engine.core.clock == Clock::Wall {
        for p in engine.lock().values_mut() {
            p.shard.maintain(&engine.core, t);
        }
    }
}

/// Whether a Kafka error leaves the transactional producer unusable.
fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}

/// Whether the DLQ record headers name a reason (used by tests and tooling).
pub fn dead_letter_reason<M: Message>(m: &M) -> Option<String> {
    let h = m.headers()?;
    h.iter().find(|h| h.key == "reason").and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}
