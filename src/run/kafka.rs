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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
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
    /// instance committed or restored (-1: none). On a re-assignment it breaks
    /// a tie between the state in memory and a snapshot of the same offset.
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
        warn!(error = %error, reason, "kafka client error");
    }
}

impl ConsumerContext for Ctx {
    /// Replaces rdkafka's default so that an assignment starts every
    /// partition exactly where the state it starts from ends: the offsets of
    /// the assignment are set from the restored snapshots before `assign`.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.engine.metrics.rebalances.inc();
        let keys: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                info!(partitions = ?keys, "partitions assigned: restoring their state");
                let positions = match restore(&self.engine, &self.settings, &keys) {
                    Ok(p) => p,
                    Err(e) => {
                        // Consuming without knowing where the state ends would
                        // lose or double events: assign nothing, stop.
                        error!(error = %e, "restoring partitions failed: not consuming them");
                        if let Ok(mut f) = self.fatal.lock() {
                            *f = Some(format!("restoring partitions failed: {e}"));
                        }
                        return;
                    }
                };
                for (k, offset) in positions {
                    if let Err(e) = tpl.set_partition_offset(&k.0, k.1, offset) {
                        error!(error = %e, topic = %k.0, partition = k.1, "cannot set the start offset of a partition");
                    }
                }
                let assigned = match consumer.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
                    _ => consumer.assign(tpl),
                };
                match assigned {
                    Ok(()) => self.engine.ready.store(true, Ordering::Relaxed),
                    Err(e) => {
                        error!(error = %e, "assign failed");
                        if let Ok(mut f) = self.fatal.lock() {
                            *f = Some(format!("assign failed: {e}"));
                        }
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(partitions = ?keys, "partitions revoked: checkpointing them");
                super::faults::pause("revoke");
                if let Err(e) = self.checkpoint(consumer, Some(&keys)) {
                    error!(error = %e, "checkpoint on revoke failed: the next owner resumes from the previous checkpoint");
                }
                // Keep serving them until the next assignment says who owns
                // them: during a broker outage (session timeout) that can be a
                // long time, and the last KPIs are better than none.
                {
                    let mut parts = self.engine.lock();
                    for k in &keys {
                        if let Some(p) = parts.get_mut(k) {
                            p.revoked = true;
                        }
                    }
                }
                self.engine.ready.store(false, Ordering::Relaxed);
                let unassigned = match consumer.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
                    _ => consumer.unassign(),
                };
                if let Err(e) = unassigned {
                    warn!(error = %e, "unassign failed");
                }
            }
            other => {
                self.engine.metrics.kafka_errors.inc();
                let code: RDKafkaErrorCode = other.into();
                warn!(error = %code, "rebalance error");
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "unassign after a rebalance error failed");
                }
            }
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
fn restore(engine: &Engine, settings: &Settings, keys: &[(String, i32)]) -> Result<Vec<((String, i32), Offset)>, RunError> {
    let group = &settings.kafka.group_id;
    let wanted: HashMap<String, (String, i32)> =
        keys.iter().map(|(t, p)| (checkpoint::key(group, t, *p), (t.clone(), *p))).collect();
    let read = read_checkpoints(settings, &wanted)?;
    // Decode before touching the served state.
    let mut decoded: HashMap<String, Result<(Shard, i64), checkpoint::CheckpointError>> =
        read.records.iter().map(|(k, bytes)| (k.clone(), checkpoint::decode(bytes))).collect();
    super::faults::pause("restore");
    let mut positions = Vec::with_capacity(wanted.len());
    let mut parts = engine.lock();
    for (k, id) in wanted {
        let topic_offset = match decoded.get(&k) {
            Some(Ok((_, n))) => Some(*n),
            _ => None,
        };
        if let Some(part) = parts.get_mut(&id).filter(|p| p.next_offset >= 0) {
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
            if let Some(old) = parts.remove(&id) {
                old.shard.release(&engine.core);
            }
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
        parts.insert(id.clone(), part);
        positions.push((id, offset));
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
    Ok(positions)
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
        super::faults::pause("checkpoint");
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
    let id = settings.transactional_id();
    let p: ThreadedProducer<DefaultProducerContext> = settings
        .producer_config()
        .set("transactional.id", &id)
        .set("message.max.bytes", (MAX_SNAPSHOT_BYTES + 1024 * 1024).to_string())
        .set("compression.type", "none")
        .create()?;
    // Fences any earlier producer with this id: a predecessor killed inside a
    // checkpoint has its open transaction aborted now, not after its timeout.
    p.init_transactions(INIT_TIMEOUT)?;
    info!(transactional_id = %id, "checkpoint producer ready");
    Ok(p)
}

/// Consumes until `shutdown`, then writes a final checkpoint.
pub fn consume(engine: Arc<Engine>, settings: Settings, shutdown: Arc<AtomicBool>) -> Result<(), RunError> {
    let producer = if settings.transactional { Some(producer(&settings)?) } else { None };
    let ctx = Ctx { engine: engine.clone(), settings: settings.clone(), producer: Mutex::new(producer), fatal: Mutex::new(None) };
    let consumer: BaseConsumer<Ctx> = settings
        .consumer_config()
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
