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
//! none of it. On every assignment the partition starts from one consistent
//! state (the one in memory, or the latest committed snapshot, or nothing)
//! and is assigned *at that state's offset*: messages before `n` are in the
//! state exactly once, messages from `n` on are applied again from scratch.
//! The restore reads the checkpoint topic `read_committed` only once every
//! transaction begun before it is decided (bounded wait; see
//! [`read_checkpoints`]). A zombie instance cannot commit: its offsets carry
//! an old group generation, so its transaction fails and is aborted; a
//! restarted instance fences its predecessor's open transaction through its
//! stable transactional id. `docs/platform.md` has the whole argument.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::checkpoint;
use super::parts::{lock, Dead, Key, Part};
pub use super::parts::Engine;
use super::worker::{Queue, Worker};
use crate::config::KafkaConfig;
use crate::engine::{Clock, Shard};
use crate::time::{wall_now, Micros};

/// Largest snapshot record (topic `max.message.bytes` and producer limit).
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;
/// Timeout of the transactional producer's commit and abort calls.
const TXN_TIMEOUT: Duration = Duration::from_secs(15);
/// Timeout of `init_transactions`, which may first have to abort a dead
/// predecessor's open transaction.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// `transaction.timeout.ms` unless configured: how long the broker lets a
/// checkpoint transaction stay open before it aborts it. Short, so that the
/// open transaction of an instance killed inside a checkpoint is decided
/// (the broker checks every 10 s) well before the 45 s session timeout moves
/// that instance's partitions; long enough for any checkpoint to commit.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 10_000;
/// What a restore waits for, beyond the transaction timeout, until every
/// transaction begun before it is decided (the broker's abort check interval,
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, is 10 s).
const RESTORE_WAIT_SLACK: Duration = Duration::from_secs(12);

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
    /// Configuration of every client: the brokers and `kafka.properties`.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.kafka.properties {
            c.set(k, v);
        }
        c
    }

    /// Consumers: [`Settings::client_config`] and `kafka.consumer_properties`.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        for (k, v) in &self.kafka.consumer_properties {
            c.set(k, v);
        }
        c
    }

    /// Producers: [`Settings::client_config`] and `kafka.producer_properties`.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        if c.get("transaction.timeout.ms").is_none() && !self.kafka.producer_properties.contains_key("transaction.timeout.ms") {
            c.set("transaction.timeout.ms", DEFAULT_TRANSACTION_TIMEOUT_MS.to_string());
        }
        for (k, v) in &self.kafka.producer_properties {
            c.set(k, v);
        }
        c
    }

    /// The group member's consumer: fetch defaults (which
    /// `kafka.consumer_properties` may override), then what exactly-once
    /// needs (which nothing overrides).
    ///
    /// Fetch defaults: with split partition queues the queue limits apply per
    /// partition; when a partition's queue is full librdkafka postpones its
    /// next fetch by `fetch.queue.backoff.ms` (1 s by default), which starves
    /// a fold that drains the queue in milliseconds. 5 ms keeps a fetch in
    /// flight whenever the fold is ready for more, at no measurable CPU cost.
    pub fn group_consumer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        c.set("queued.max.messages.kbytes", "16384");
        c.set("queued.min.messages", "100000");
        c.set("fetch.queue.backoff.ms", "5");
        c.set("max.partition.fetch.bytes", "4194304");
        for (k, v) in &self.kafka.consumer_properties {
            c.set(k, v);
        }
        // Static membership: a restarted instance (same instance id) gets its
        // partitions back at once, without a rebalance of the group and
        // without waiting out its predecessor's session.
        c.set("group.id", &self.kafka.group_id)
            .set("group.instance.id", self.instance_id())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("partition.assignment.strategy", "range");
        c
    }

    /// Fold worker threads: `kafka.fold_workers`, else the number of cores.
    pub fn workers(&self) -> usize {
        match self.kafka.fold_workers {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        }
    }

    /// The checkpoint producer's `transaction.timeout.ms`.
    pub fn transaction_timeout(&self) -> Duration {
        let ms = self.producer_config().get("transaction.timeout.ms").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_TRANSACTION_TIMEOUT_MS);
        Duration::from_millis(ms)
    }

    /// How long a restore waits for undecided checkpoint transactions.
    pub fn restore_wait(&self) -> Duration {
        self.transaction_timeout() + RESTORE_WAIT_SLACK
    }

    /// This instance's name: `kafka.instance_id`, else the host name.
    pub fn instance_id(&self) -> String {
        let id = self.kafka.instance_id.trim();
        if !id.is_empty() {
            return id.to_string();
        }
        host_name()
    }

    /// The checkpoint producer's transactional id: stable per instance, so a
    /// restarted instance fences its predecessor's open transaction at once.
    pub fn transactional_id(&self) -> String {
        format!("salespulse-{}-{}", self.kafka.group_id, self.instance_id())
    }
}

/// The host name (`HOSTNAME`, which Kubernetes sets to the pod name, else the
/// kernel's), or `salespulse` if neither is known.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "salespulse".into())
}

/// The checkpoint producer's context: where each snapshot record of the
/// current transaction landed on the checkpoint topic, so the group offset
/// committed with it can say so (see [`INDEX_PREFIX`]).
#[derive(Default)]
pub struct CkptContext {
    /// Snapshot number (1-based, per transaction) → checkpoint-topic offset.
    landed: Mutex<HashMap<usize, i64>>,
}

impl ClientContext for CkptContext {}

impl ProducerContext for CkptContext {
    /// 0: a dead letter; `i + 1`: the `i`-th snapshot of the transaction.
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        if let (Ok(m), true) = (result, opaque > 0) {
            self.landed.lock().unwrap_or_else(|p| p.into_inner()).insert(opaque, m.offset());
        }
    }
}

/// The transactional producer of checkpoints and dead letters.
pub type CkptProducer = ThreadedProducer<CkptContext>;

/// Metadata of the group offset committed with a snapshot: where that
/// snapshot is on the checkpoint topic (`salespulse-ckpt=<offset>`). Both
/// commit in one transaction, so a restore reads exactly that record instead
/// of scanning the topic, and needs no wait for other transactions.
pub const INDEX_PREFIX: &str = "salespulse-ckpt=";

/// The consumer's context: rebalance callbacks and client errors.
pub struct Ctx {
    engine: Arc<Engine>,
    settings: Settings,
    /// The transactional producer of checkpoints and dead letters (`None`
    /// without transactions, or after a fatal error until it is created
    /// again at the next checkpoint).
    producer: Mutex<Option<CkptProducer>>,
    /// A fatal error seen inside a callback, for the loop to return.
    fatal: Mutex<Option<String>>,
    /// The consumer itself, for `split_partition_queue` in the rebalance
    /// callback (which only gets a plain reference); set once it exists.
    consumer: OnceLock<Weak<BaseConsumer<Ctx>>>,
    /// The fold workers of the current assignment.
    workers: Mutex<Vec<Worker>>,
}

impl Ctx {
    /// Commits a checkpoint of `which` partitions (all when `None`). A fatal
    /// producer error other than fencing (an invalid transaction state after
    /// a broker outage) discards the producer; the next call creates a new
    /// one with the same transactional id, so the engine recovers without a
    /// restart. Fencing (a newer process with this transactional id) stops the
    /// engine. Offsets are also fenced by the consumer group generation
    /// (`send_offsets_to_transaction`): a member that lost its partitions
    /// cannot commit them.
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
                Err(RunError::Kafka(e)) if is_fenced(e) => {
                    // A newer producer with this transactional id exists: this
                    // process is the zombie. Recreating the producer would fence
                    // the live one in turn; stop instead.
                    let msg = format!(
                        "checkpoint producer fenced: another process started with the transactional id {} (kafka.instance_id {:?}); \
                         each live instance needs its own kafka.instance_id",
                        self.settings.transactional_id(),
                        self.settings.instance_id()
                    );
                    error!("{msg}");
                    if let Ok(mut f) = self.fatal.lock() {
                        *f = Some(msg);
                    }
                    return result;
                }
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
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::FencedInstanceId)) {
            // E.g. FENCED_INSTANCE_ID: another live consumer joined with this
            // group.instance.id. The consumer cannot go on.
            let msg = format!(
                "fatal consumer error: {reason} (if it says the instance was fenced: another live process of group {} uses \
                 kafka.instance_id {:?}; each needs its own)",
                self.settings.kafka.group_id,
                self.settings.instance_id()
            );
            error!("{msg}");
            if let Ok(mut f) = self.fatal.lock() {
                *f = Some(msg);
            }
        }
        warn!(error = %error, reason, "kafka client error");
    }
}

impl ConsumerContext for Ctx {
    /// Replaces rdkafka's default so that an assignment starts every
    /// partition exactly where the state it starts from ends (the offsets of
    /// the assignment are set from the restored state before `assign`), and
    /// so that every assigned partition's messages go to its own queue,
    /// drained by a fold worker. The queues are split *before* `assign`:
    /// split after it, messages fetched meanwhile would arrive on the main
    /// queue and could be applied out of order.
    ///
    /// The assignment strategy is eager (`range`): every rebalance revokes
    /// everything, stopping the workers, and the next assignment starts new
    /// ones.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.engine.metrics.rebalances.inc();
        let keys: Vec<Key> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                info!(partitions = ?keys, "partitions assigned: restoring their state");
                if let Err(e) = self.assign(consumer, &keys, tpl) {
                    // Consuming without knowing where the state ends would
                    // lose or double events: stop.
                    error!(error = %e, "assigning partitions failed: not consuming them");
                    if let Ok(mut f) = self.fatal.lock() {
                        *f = Some(format!("assigning partitions failed: {e}"));
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(partitions = ?keys, "partitions revoked: checkpointing them");
                self.stop_workers();
                super::faults::pause("revoke");
                if let Err(e) = self.checkpoint(consumer, Some(&keys)) {
                    error!(error = %e, "checkpoint on revoke failed: the next owner resumes from the previous checkpoint");
                }
                // Keep serving them until the next assignment says who owns
                // them: during a broker outage (session timeout) that can be a
                // long time, and the last KPIs are better than none.
                for k in &keys {
                    if let Some(cell) = self.engine.part(k) {
                        lock(&cell).revoked = true;
                    }
                }
                self.engine.ready.store(false, Ordering::Relaxed);
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "unassign failed");
                }
            }
            other => {
                self.engine.metrics.kafka_errors.inc();
                let code: RDKafkaErrorCode = other.into();
                warn!(error = %code, "rebalance error");
                self.stop_workers();
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "unassign after a rebalance error failed");
                }
            }
        }
    }
}

impl Ctx {
    /// Restores `keys`, splits their queues, assigns them at the restored
    /// offsets and starts the fold workers.
    fn assign(&self, consumer: &BaseConsumer<Self>, keys: &[Key], tpl: &mut TopicPartitionList) -> Result<(), RunError> {
        self.stop_workers();
        let positions = restore(&self.engine, &self.settings, consumer, keys)?;
        for (k, offset) in &positions {
            tpl.set_partition_offset(&k.0, k.1, *offset)?;
        }
        let arc = self
            .consumer
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| RunError::Other("the consumer is gone".into()))?;
        let mut queues: Vec<(Key, super::parts::PartCell, Queue<Ctx>)> = Vec::with_capacity(positions.len());
        for (k, _) in &positions {
            let q = arc
                .split_partition_queue(&k.0, k.1)
                .ok_or_else(|| RunError::Other(format!("cannot split the queue of {}/{}", k.0, k.1)))?;
            let cell = self.engine.part(k).ok_or_else(|| RunError::Other(format!("{}/{} was not restored", k.0, k.1)))?;
            queues.push((k.clone(), cell, q));
        }
        consumer.assign(tpl)?;
        let n = self.settings.workers().min(queues.len()).max(1);
        let mut groups: Vec<Vec<(Key, super::parts::PartCell, Queue<Ctx>)>> = (0..n).map(|_| Vec::new()).collect();
        for (i, q) in queues.into_iter().enumerate() {
            groups[i % n].push(q);
        }
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        for (id, g) in groups.into_iter().enumerate().filter(|(_, g)| !g.is_empty()) {
            let w = Worker::spawn(id, self.engine.clone(), g, self.settings.transactional)
                .map_err(|e| RunError::Other(format!("fold worker thread: {e}")))?;
            workers.push(w);
        }
        info!(partitions = keys.len(), workers = workers.len(), "consuming");
        self.engine.ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Stops the fold workers and waits for their last batch.
    fn stop_workers(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            w.stop();
        }
    }
}

/// What a read of the checkpoint topic found.
struct CheckpointRead {
    /// The latest committed record of each wanted key.
    records: HashMap<String, Vec<u8>>,
    /// False when a transaction that started before the read was still
    /// undecided at the end of the wait: a newer committed checkpoint may
    /// exist that the read could not see.
    complete: bool,
}

/// Reads the latest committed checkpoint record of each of `wanted`.
///
/// A `read_committed` reader stops at the topic's last stable offset (LSO):
/// the first offset of the oldest transaction still open. An instance killed
/// inside a checkpoint transaction leaves one open until the broker aborts it
/// (`transaction.timeout.ms`) or a producer with the same transactional id
/// fences it; every checkpoint committed after it started is invisible until
/// then. So the read first waits until the LSO reaches the high watermark
/// seen at its start (every transaction begun before it decided), at most
/// [`Settings::restore_wait`]; past that it reads what is visible and says
/// so (`complete = false`). Either way the caller stays exact, because a
/// partition always resumes at the offset of the state it starts from.
fn read_checkpoints(settings: &Settings, wanted: &HashMap<String, (String, i32)>) -> Result<CheckpointRead, RunError> {
    let mut records = HashMap::new();
    if !settings.transactional {
        return Ok(CheckpointRead { records, complete: true });
    }
    let group = &settings.kafka.group_id;
    let topic = &settings.kafka.checkpoint_topic;
    let reader = |isolation: &str| -> Result<BaseConsumer, KafkaError> {
        settings
            .consumer_config()
            .set("group.id", format!("{group}-checkpoint-reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .set("fetch.max.bytes", (2 * MAX_SNAPSHOT_BYTES).to_string())
            .set("max.partition.fetch.bytes", MAX_SNAPSHOT_BYTES.to_string())
            .create()
    };
    // Watermark queries use the client's isolation level: read_uncommitted
    // answers the high watermark, read_committed the LSO.
    let committed = reader("read_committed")?;
    let (_, high) = reader("read_uncommitted")?.fetch_watermarks(topic, 0, Duration::from_secs(30))?;
    let wait = settings.restore_wait();
    let t0 = Instant::now();
    let mut said = false;
    let lso = loop {
        let (_, lso) = committed.fetch_watermarks(topic, 0, Duration::from_secs(30))?;
        if lso >= high || t0.elapsed() >= wait {
            break lso;
        }
        if !said {
            said = true;
            info!(topic = %topic, lso, high, "an open transaction on the checkpoint topic hides newer checkpoints: waiting until it is decided");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let complete = lso >= high;
    if complete {
        debug!(topic = %topic, high, waited_ms = t0.elapsed().as_millis() as u64, "every checkpoint transaction before the restore is decided");
    } else {
        warn!(
            topic = %topic, lso, high, waited_s = wait.as_secs(),
            "a transaction on the checkpoint topic is still open after the restore wait: restoring from the newest visible checkpoints; \
             partitions resume at their offsets, so KPIs stay exact, but more events are read again and dead letters may repeat"
        );
    }
    if lso > 0 {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
        committed.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match committed.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    if let (Some(k), Some(v)) = (m.key(), m.payload()) {
                        let k = String::from_utf8_lossy(k);
                        if wanted.contains_key(k.as_ref()) {
                            records.insert(k.into_owned(), v.to_vec());
                        }
                    }
                }
                Some(Err(e)) => warn!(error = %e, "reading checkpoints"),
                None => {}
            }
            let pos = committed.position()?.elements().first().and_then(|e| e.offset().to_raw()).unwrap_or(0);
            if pos >= lso {
                break;
            }
            if Instant::now() > deadline {
                return Err(RunError::Other(format!("checkpoint topic {topic} not read to its end ({pos} of {lso}) within 60 s")));
            }
        }
    }
    Ok(CheckpointRead { records, complete })
}

/// Decoded snapshots found through the group's committed offsets: for each
/// wanted partition whose committed offset `n` carries [`INDEX_PREFIX`]`X`,
/// the checkpoint record at offset `X`, kept if it is the partition's key
/// and its snapshot ends at `n` (the two were committed in one
/// transaction, so the record is committed data and is read without
/// waiting for other transactions). Anything else (no metadata: an older
/// release or an operator's offset reset; the record compacted away; a
/// mismatch) is left to the scan of [`read_checkpoints`].
fn read_indexed(
    settings: &Settings,
    consumer: &BaseConsumer<Ctx>,
    wanted: &HashMap<String, (String, i32)>,
) -> HashMap<String, Result<(Shard, i64), checkpoint::CheckpointError>> {
    let mut found = HashMap::new();
    if !settings.transactional || wanted.is_empty() {
        return found;
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p) in wanted.values() {
        tpl.add_partition(t, *p);
    }
    let committed = match consumer.committed_offsets(tpl, Duration::from_secs(15)) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot read the group's committed offsets: scanning the checkpoint topic");
            return found;
        }
    };
    let mut index: Vec<(i64, String, i64)> = Vec::new();
    for e in committed.elements() {
        let (Some(n), Some(at)) = (e.offset().to_raw(), e.metadata().strip_prefix(INDEX_PREFIX).and_then(|x| x.parse::<i64>().ok())) else {
            continue;
        };
        index.push((at, checkpoint::key(&settings.kafka.group_id, e.topic(), e.partition()), n));
    }
    if index.is_empty() {
        return found;
    }
    index.sort();
    let reader: Result<BaseConsumer, KafkaError> = settings
        .consumer_config()
        .set("group.id", format!("{}-checkpoint-reader", settings.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .set("fetch.max.bytes", (2 * MAX_SNAPSHOT_BYTES).to_string())
        .set("max.partition.fetch.bytes", MAX_SNAPSHOT_BYTES.to_string())
        .create();
    let Ok(reader) = reader else { return found };
    let topic = &settings.kafka.checkpoint_topic;
    for (at, key, n) in index {
        let mut tpl = TopicPartitionList::new();
        if tpl.add_partition_offset(topic, 0, Offset::Offset(at)).is_err() || reader.assign(&tpl).is_err() {
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let record = loop {
            match reader.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => break Some((m.offset(), m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec))),
                Some(Err(e)) => warn!(error = %e, "reading a checkpoint"),
                None => {}
            }
            if Instant::now() > deadline {
                break None;
            }
        };
        match record {
            Some((o, Some(k), Some(v))) if o == at && k == key.as_bytes() => match checkpoint::decode(&v) {
                Ok((shard, next)) if next == n => {
                    debug!(partition = %key, checkpoint_offset = at, next_offset = n, "checkpoint found through the group offset");
                    found.insert(key, Ok((shard, next)));
                }
                Ok((_, next)) => warn!(partition = %key, at, next, committed = n, "the indexed checkpoint does not end at the committed offset: scanning"),
                Err(e) => {
                    found.insert(key, Err(e));
                }
            },
            _ => debug!(partition = %key, at, "no checkpoint record at the indexed offset: scanning"),
        }
    }
    found
}

/// Installs the state of each assigned partition of `keys` and returns the
/// offset each must be consumed from: the `next_offset` of the state it
/// starts from, never the group's committed offset (which the checkpoint
/// committed together with the snapshot, but which a stale read of the
/// checkpoint topic would not match).
///
/// Candidates: the state in memory (a partition this instance had and that
/// comes back) and the latest committed snapshot on the topic. Both are
/// consistent (state after message `n - 1`, resume at `n`), so either is
/// exact; the newer one wins (less to read again), memory on a tie when its
/// own last checkpoint is that snapshot. No state at all (or only a snapshot
/// that cannot be decoded) rebuilds the partition from the earliest retained
/// event, loudly.
fn restore(
    engine: &Engine,
    settings: &Settings,
    consumer: &BaseConsumer<Ctx>,
    keys: &[(String, i32)],
) -> Result<Vec<((String, i32), Offset)>, RunError> {
    let group = &settings.kafka.group_id;
    let wanted: HashMap<String, (String, i32)> =
        keys.iter().map(|(t, p)| (checkpoint::key(group, t, *p), (t.clone(), *p))).collect();
    // First the snapshots the group offsets point at; the topic is scanned
    // only for the partitions where that fails.
    let mut decoded = read_indexed(settings, consumer, &wanted);
    let rest: HashMap<String, (String, i32)> = wanted.iter().filter(|(k, _)| !decoded.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    if settings.transactional {
        info!(indexed = decoded.len(), scanned = rest.len(), "checkpoints located through the group offsets; the rest by a scan of the checkpoint topic");
    }
    let read = if rest.is_empty() { CheckpointRead { records: HashMap::new(), complete: true } } else { read_checkpoints(settings, &rest)? };
    // Decode before touching the served state.
    decoded.extend(read.records.iter().map(|(k, bytes)| (k.clone(), checkpoint::decode(bytes))));
    super::faults::pause("restore");
    let mut positions = Vec::with_capacity(wanted.len());
    for (k, id) in wanted {
        let topic_offset = match decoded.get(&k) {
            Some(Ok((_, n))) => Some(*n),
            _ => None,
        };
        let cell = engine.part(&id);
        if let Some(mut part) = cell.as_ref().map(|c| lock(c)).filter(|p| p.next_offset >= 0) {
            let keep = match topic_offset {
                None => true,
                Some(v) => part.next_offset > v || (part.next_offset == v && part.committed_offset == v),
            };
            if keep {
                if let Some(Err(e)) = decoded.get(&k) {
                    warn!(partition = %k, error = %e, "the checkpoint on the topic cannot be decoded; the state in memory is newer anyway");
                }
                info!(partition = %k, next_offset = part.next_offset, on_topic = ?topic_offset, complete_read = read.complete,
                      "assigned again: continuing with the state in memory");
                part.revoked = false;
                positions.push((id, Offset::Offset(part.next_offset)));
                continue;
            }
            info!(partition = %k, in_memory = part.next_offset, on_topic = ?topic_offset, "assigned again, and a newer checkpoint was committed since: restoring it");
            part.shard.release(&engine.core);
            drop(part);
            engine.remove(&id);
        }
        let (part, offset) = match decoded.remove(&k) {
            Some(Ok((shard, next))) => {
                info!(partition = %k, next_offset = next, teams = shard.teams.len(), "restored checkpoint");
                (Part::new(shard.restored(&engine.core), next), Offset::Offset(next))
            }
            Some(Err(e)) => {
                engine.metrics.restore_rebuilds.inc();
                error!(
                    partition = %k, error = %e,
                    "REBUILDING PARTITION: its checkpoint cannot be restored by this release; its state is rebuilt by reading the \
                     source partition again from its earliest retained event (KPIs of events no longer retained will be missing)"
                );
                (Part::new(Shard::new(), -1), Offset::Beginning)
            }
            None => {
                info!(partition = %k, "no checkpoint: building its state from the earliest retained event");
                (Part::new(Shard::new(), -1), Offset::Beginning)
            }
        };
        engine.insert(id.clone(), part);
        positions.push((id, offset));
    }
    // Revoked partitions this assignment did not give back belong to another
    // instance now: stop serving them and their gauges.
    let gone: Vec<Key> = engine.parts().into_iter().filter(|(_, c)| lock(c).revoked).map(|(k, _)| k).collect();
    for k in gone {
        if let Some(cell) = engine.remove(&k) {
            lock(&cell).shard.release(&engine.core);
            info!(topic = %k.0, partition = k.1, "partition moved to another instance: no longer served");
        }
        let part = k.1.to_string();
        let _ = engine.metrics.lag.remove_label_values(&[&k.0, &part]);
        let _ = engine.metrics.checkpoint_age.remove_label_values(&[&k.0, &part]);
    }
    Ok(positions)
}

/// Commits a checkpoint of `which` partitions (all assigned when `None`):
/// snapshots, dead letters and offsets in one transaction.
fn checkpoint(
    engine: &Engine,
    settings: &Settings,
    producer: &CkptProducer,
    consumer: &BaseConsumer<Ctx>,
    which: Option<&[(String, i32)]>,
) -> Result<(), RunError> {
    let start = Instant::now();
    let group = &settings.kafka.group_id;
    // Under each part's own lock: encode its snapshot and take its dead
    // letters, so state and offset match. Its fold worker waits meanwhile, the
    // other partitions do not. The transaction itself runs without any lock,
    // so a slow or failing commit (brokers unreachable: up to a minute) never
    // blocks a scrape or the fold.
    let mut taken: Vec<Taken> = Vec::new();
    let parts: Vec<(Key, super::parts::PartCell)> = match which {
        Some(w) => w.iter().filter_map(|k| engine.part(k).map(|c| (k.clone(), c))).collect(),
        None => engine.parts(),
    };
    {
        for (k, cell) in &parts {
            let mut guard = lock(cell);
            let part = &mut *guard;
            if part.next_offset < 0 || part.revoked {
                continue;
            }
            let ck = checkpoint::key(group, &k.0, k.1);
            let snapshot = match checkpoint::encode(&part.shard, part.next_offset) {
                Ok(s) if s.len() > MAX_SNAPSHOT_BYTES => Err(RunError::SnapshotTooLarge { key: ck.clone(), size: s.len() }),
                Ok(s) => Ok(s),
                Err(source) => Err(RunError::Checkpoint { key: ck.clone(), source }),
            };
            let snapshot = match snapshot {
                Ok(s) => s,
                Err(e) => {
                    drop(guard);
                    give_back(engine, taken);
                    return Err(e);
                }
            };
            taken.push(Taken { key: k.clone(), ck, snapshot, next_offset: part.next_offset, dead: std::mem::take(&mut part.dead) });
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
        producer.context().landed.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut offsets = TopicPartitionList::new();
        for (i, t) in taken.iter().enumerate() {
            send(
                producer,
                BaseRecord::with_opaque_to(&settings.kafka.checkpoint_topic, i + 1).key(t.ck.as_bytes()).payload(t.snapshot.as_slice()),
            )?;
            let partition = t.key.1.to_string();
            for d in &t.dead {
                let offset = d.offset.to_string();
                let headers = OwnedHeaders::new()
                    .insert(Header { key: "reason", value: Some(d.reason) })
                    .insert(Header { key: "detail", value: Some(d.detail.as_str()) })
                    .insert(Header { key: "source_topic", value: Some(t.key.0.as_str()) })
                    .insert(Header { key: "source_partition", value: Some(partition.as_str()) })
                    .insert(Header { key: "source_offset", value: Some(offset.as_str()) });
                let mut rec: BaseRecord<'_, [u8], [u8], usize> =
                    BaseRecord::with_opaque_to(&settings.kafka.dlq_topic, 0).payload(d.payload.as_slice()).headers(headers);
                if let Some(key) = &d.key {
                    rec = rec.key(key.as_slice());
                }
                send(producer, rec)?;
            }
            offsets.add_partition_offset(&t.key.0, t.key.1, Offset::Offset(t.next_offset))?;
        }
        // Where the snapshots landed goes into the offsets' metadata.
        producer.flush(TXN_TIMEOUT)?;
        {
            let landed = producer.context().landed.lock().unwrap_or_else(|p| p.into_inner());
            for (i, t) in taken.iter().enumerate() {
                if let (Some(at), Some(mut e)) = (landed.get(&(i + 1)), offsets.find_partition(&t.key.0, t.key.1)) {
                    e.set_metadata(format!("{INDEX_PREFIX}{at}"));
                }
            }
        }
        super::faults::pause("checkpoint");
        producer.send_offsets_to_transaction(&offsets, &cgm, TXN_TIMEOUT)?;
        producer.commit_transaction(TXN_TIMEOUT)?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            for t in &taken {
                if let Some(cell) = engine.part(&t.key) {
                    let mut p = lock(&cell);
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
            give_back(engine, taken);
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
fn give_back(engine: &Engine, taken: Vec<Taken>) {
    for t in taken {
        if let Some(cell) = engine.part(&t.key) {
            let mut p = lock(&cell);
            let mut newer = std::mem::take(&mut p.dead);
            p.dead = t.dead;
            p.dead.append(&mut newer);
        }
    }
}

/// Sends one record, waiting while the producer queue is full.
/// Used by every producer of the crate (checkpoints, dead letters, the demo
/// feeder, `salespulse produce`): a full queue is backpressure, not an error.
pub(crate) fn send<C, K, P>(producer: &ThreadedProducer<C>, mut rec: BaseRecord<'_, K, P, C::DeliveryOpaque>) -> Result<(), KafkaError>
where
    C: ProducerContext + 'static,
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
pub fn producer(settings: &Settings) -> Result<CkptProducer, RunError> {
    let id = settings.transactional_id();
    let p: CkptProducer = settings
        .producer_config()
        .set("transactional.id", &id)
        .set("message.max.bytes", (MAX_SNAPSHOT_BYTES + 1024 * 1024).to_string())
        .set("compression.type", "none")
        .create_with_context(CkptContext::default())?;
    // Fences any earlier producer with this id: a predecessor killed inside a
    // checkpoint has its open transaction aborted now, not after its timeout.
    p.init_transactions(INIT_TIMEOUT)?;
    info!(transactional_id = %id, "checkpoint producer ready");
    Ok(p)
}

/// Consumes until `shutdown`, then writes a final checkpoint.
/// Fences of this process's group membership tolerated within
/// [`FENCE_WINDOW`] before it stops.
const MAX_FENCES: usize = 3;
const FENCE_WINDOW: Duration = Duration::from_secs(300);

/// Why a group membership ended.
enum MemberExit {
    /// Shutdown requested; the final checkpoint is written.
    Stopped,
    /// The broker fenced this consumer's `group.instance.id`
    /// (FENCED_INSTANCE_ID). librdkafka makes that fatal for the consumer,
    /// but it also happens to a lone static member whose session the broker
    /// lost (a broker restart during an outage); a new consumer rejoins.
    Fenced(String),
}

/// Consumes until `shutdown`, then writes a final checkpoint. A fenced
/// membership is rejoined with a new consumer (the state in memory carries
/// over, as after any rebalance); fenced again and again (another live
/// process with this `instance_id`), it stops with the reason.
pub fn consume(engine: Arc<Engine>, settings: Settings, shutdown: Arc<AtomicBool>) -> Result<(), RunError> {
    let mut producer = if settings.transactional { Some(producer(&settings)?) } else { None };
    let mut fences: Vec<Instant> = Vec::new();
    loop {
        match member(&engine, &settings, &shutdown, &mut producer)? {
            MemberExit::Stopped => return Ok(()),
            MemberExit::Fenced(reason) => {
                fences.retain(|t| t.elapsed() < FENCE_WINDOW);
                fences.push(Instant::now());
                if fences.len() >= MAX_FENCES {
                    return Err(RunError::Other(format!(
                        "consumer fenced {} times in {} s: another live process of group {} uses kafka.instance_id {:?}; each needs its own ({reason})",
                        fences.len(),
                        FENCE_WINDOW.as_secs(),
                        settings.kafka.group_id,
                        settings.instance_id()
                    )));
                }
                warn!(reason = %reason, "consumer fenced: rejoining the group with a new consumer (the state in memory is kept)");
                for (_, cell) in engine.parts() {
                    lock(&cell).revoked = true;
                }
                engine.ready.store(false, Ordering::Relaxed);
            }
        }
    }
}

/// One group membership: a consumer from join to shutdown or fencing.
/// `producer` is lent to it and handed back.
fn member(
    engine: &Arc<Engine>,
    settings: &Settings,
    shutdown: &AtomicBool,
    producer: &mut Option<CkptProducer>,
) -> Result<MemberExit, RunError> {
    let ctx = Ctx {
        engine: engine.clone(),
        settings: settings.clone(),
        producer: Mutex::new(producer.take()),
        fatal: Mutex::new(None),
        consumer: OnceLock::new(),
        workers: Mutex::new(Vec::new()),
    };
    let consumer: Arc<BaseConsumer<Ctx>> = Arc::new(settings.group_consumer_config().create_with_context(ctx)?);
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    let topics: Vec<&str> = settings.kafka.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    info!(topics = ?topics, group = %settings.kafka.group_id, workers = settings.workers(), "joining the consumer group");

    let interval = Duration::from_secs(settings.kafka.checkpoint_interval_s.max(1));
    let mut last_checkpoint = Instant::now();
    let mut last_lag = Instant::now();
    let result = (|| -> Result<MemberExit, RunError> {
        while !shutdown.load(Ordering::Relaxed) {
            if let Some(f) = consumer.context().fatal.lock().ok().and_then(|mut f| f.take()) {
                if matches!(consumer.client().fatal_error(), Some((RDKafkaErrorCode::FencedInstanceId, _))) {
                    return Ok(MemberExit::Fenced(f));
                }
                return Err(RunError::Other(f));
            }
            // The main queue serves rebalances, errors and statistics; every
            // assigned partition's messages go to its own queue.
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => {
                    engine.metrics.kafka_errors.inc();
                    error!(topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), "a message arrived on the main queue, not on its partition's queue: not applied");
                }
                Some(Err(e)) => {
                    engine.metrics.kafka_errors.inc();
                    warn!(error = %e, "consume error");
                    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
                        if let Ok(mut f) = consumer.context().fatal.lock() {
                            f.get_or_insert_with(|| format!("fatal consumer error: {e}"));
                        }
                    }
                }
                None => {}
            }
            let wanted = engine.checkpoint_wanted.swap(false, Ordering::Relaxed);
            if wanted || last_checkpoint.elapsed() >= interval {
                // A partition with nothing new since its last checkpoint (or
                // its restore) is as saved as it can be: its checkpoint age
                // restarts, so an idle partition does not look stale.
                let mut any_changed = false;
                for (_, cell) in engine.parts() {
                    let mut p = lock(&cell);
                    if p.changed {
                        any_changed = true;
                    } else {
                        p.last_checkpoint = Instant::now();
                    }
                }
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
        Ok(MemberExit::Stopped)
    })();
    consumer.context().stop_workers();
    let give_back = |producer: &mut Option<CkptProducer>| {
        *producer = consumer.context().producer.lock().unwrap_or_else(|p| p.into_inner()).take();
    };
    match result {
        Ok(MemberExit::Stopped) => {
            info!("stopping: final checkpoint");
            let r = consumer.context().checkpoint(&consumer, None);
            consumer.unsubscribe();
            give_back(producer);
            r.map(|()| MemberExit::Stopped)
        }
        other => {
            give_back(producer);
            other
        }
    }
}

/// Lag per partition, checkpoint ages, and compaction of idle shards.
fn update_lag(engine: &Engine, consumer: &BaseConsumer<Ctx>, transactional: bool) {
    let keys: Vec<(Key, i64, f64)> = engine
        .parts()
        .into_iter()
        .filter_map(|(k, c)| {
            let p = lock(&c);
            (!p.revoked).then(|| (k, p.next_offset, p.last_checkpoint.elapsed().as_secs_f64()))
        })
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
        for (_, cell) in engine.parts() {
            lock(&cell).shard.maintain(&engine.core, t);
        }
    }
}

/// Whether a Kafka error leaves the transactional producer unusable.
fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}

/// Whether a newer producer with the same transactional id fenced this one.
fn is_fenced(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
    )
}

/// Whether the DLQ record headers name a reason (used by tests and tooling).
pub fn dead_letter_reason<M: Message>(m: &M) -> Option<String> {
    let h = m.headers()?;
    h.iter().find(|h| h.key == "reason").and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}
