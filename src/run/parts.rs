//! The partitions this instance serves, and what the consume loop, the fold
//! workers, checkpoints and scrapes share about them.
//!
//! Owns: [`Part`] (one partition's shard, its position and what waits for the
//! next checkpoint), [`Engine`] (the set of parts, self-metrics, readiness)
//! and the scrape's rendering across parts.
//! Must not touch: Kafka clients (see [`super::kafka`], [`super::worker`]),
//! KPI semantics.
//!
//! Locking: every part sits behind its own mutex. A fold worker holds it for
//! one batch of messages, a checkpoint while it encodes that part's snapshot,
//! a scrape while it renders that part. So a scrape or a checkpoint of one
//! partition never stops the others. The set of parts changes only in the
//! rebalance callback (a write lock, briefly); everybody else takes a copy of
//! the set under the read lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use super::selfmetrics::SelfMetrics;
use crate::engine::{Clock, Core, Shard};
use crate::time::{wall_now, Micros};

/// A partition: (topic, partition number).
pub type Key = (String, i32);

/// An invalid message waiting for the next checkpoint transaction.
pub struct Dead {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: &'static str,
    pub detail: String,
    pub offset: i64,
}

/// State of one assigned partition.
pub struct Part {
    pub shard: Shard,
    /// Offset of the next message to apply (-1: none applied and no
    /// checkpoint: the partition is read from its earliest retained event).
    pub next_offset: i64,
    /// Dead letters waiting for the next checkpoint.
    pub dead: Vec<Dead>,
    pub last_checkpoint: Instant,
    /// Messages applied since the last checkpoint.
    pub changed: bool,
    /// `next_offset` of the checkpoint this state continues: the last one this
    /// instance committed or restored (-1: none). On a re-assignment it breaks
    /// a tie between the state in memory and a snapshot of the same offset.
    pub committed_offset: i64,
    /// Revoked and not (yet) assigned again: still served on `/metrics` (a
    /// broker outage must not blank the dashboards) but neither fed nor
    /// checkpointed. Dropped when an assignment that does not include it
    /// arrives.
    pub revoked: bool,
}

impl Part {
    pub fn new(shard: Shard, next_offset: i64) -> Part {
        Part { shard, next_offset, dead: Vec::new(), last_checkpoint: Instant::now(), changed: false, committed_offset: next_offset, revoked: false }
    }
}

/// One part behind its own lock.
pub type PartCell = Arc<Mutex<Part>>;

/// Locks a part. A panic while holding the lock cannot leave a shard
/// half-updated in a way later reads can't handle; keep serving.
pub fn lock(cell: &Mutex<Part>) -> MutexGuard<'_, Part> {
    cell.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the consume loop, the fold workers and the HTTP server share.
pub struct Engine {
    pub core: Arc<Core>,
    parts: RwLock<BTreeMap<Key, PartCell>>,
    pub metrics: SelfMetrics,
    /// Partitions assigned and restored.
    pub ready: AtomicBool,
    /// False after the client reported all brokers down, until a fetch works.
    pub broker_ok: AtomicBool,
    /// Set by a fold worker when its partition's dead letters reach the limit:
    /// the consume loop checkpoints at once.
    pub checkpoint_wanted: AtomicBool,
}

impl Engine {
    pub fn new(core: Arc<Core>, metrics: SelfMetrics) -> Self {
        Engine {
            core,
            parts: RwLock::new(BTreeMap::new()),
            metrics,
            ready: AtomicBool::new(false),
            broker_ok: AtomicBool::new(true),
            checkpoint_wanted: AtomicBool::new(false),
        }
    }

    /// The parts, in key order (a copy of the set: the parts themselves are
    /// shared).
    pub fn parts(&self) -> Vec<(Key, PartCell)> {
        let map = self.parts.read().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, c)| (k.clone(), c.clone())).collect()
    }

    pub fn part(&self, key: &Key) -> Option<PartCell> {
        self.parts.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// Installs (or replaces) a part. Rebalance callback only.
    pub fn insert(&self, key: Key, part: Part) -> PartCell {
        let cell = Arc::new(Mutex::new(part));
        self.parts.write().unwrap_or_else(|p| p.into_inner()).insert(key, cell.clone());
        cell
    }

    /// Removes a part. Rebalance callback only.
    pub fn remove(&self, key: &Key) -> Option<PartCell> {
        self.parts.write().unwrap_or_else(|p| p.into_inner()).remove(key)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.broker_ok.load(Ordering::Relaxed)
    }

    /// Renders the KPI families of every part, then the self-metrics. Each
    /// part is locked only while it is rendered. Returns the clock used.
    pub fn render(&self, out: &mut String) -> Micros {
        let start = Instant::now();
        let parts = self.parts();
        let t = self.clock(&parts);
        let mut r = crate::render::Renderer::new(&self.core, t);
        let (mut reps, mut teams, mut bytes) = (0usize, 0usize, 0usize);
        for (_, cell) in &parts {
            let p = lock(cell);
            r.add(&p.shard);
            reps += p.shard.rep_count();
            teams += p.shard.teams.len();
            bytes += p.shard.heap_bytes();
        }
        let report = r.finish(out);
        self.metrics.record_render(&report);
        self.metrics.state_reps.set(reps as i64);
        self.metrics.state_teams.set(teams as i64);
        self.metrics.state_bytes.set(bytes as i64);
        self.metrics.assigned.set(parts.len() as i64);
        self.metrics.ready.set(i64::from(self.is_ready()));
        self.metrics.render_duration.observe(start.elapsed().as_secs_f64());
        self.metrics.render(out);
        t
    }

    /// The instant a render of `parts` ends its windows at.
    fn clock(&self, parts: &[(Key, PartCell)]) -> Micros {
        let wall = wall_now();
        let t = match self.core.clock {
            Clock::Event => parts.iter().filter_map(|(_, c)| lock(c).shard.event_clock).max(),
            Clock::Wall => Some(wall),
            Clock::Fixed(t) => Some(t),
        };
        t.unwrap_or(wall)
    }

    /// Renders the KPI families of every part with the exposition settings
    /// of `view` (a copy of this engine's core configuration with another
    /// profile and budget: the JSON endpoint's full render), and nothing
    /// else: no self-metrics, nothing recorded. Returns the clock used.
    pub fn render_kpis(&self, view: &Core, out: &mut String) -> Micros {
        let parts = self.parts();
        let t = self.clock(&parts);
        let mut r = crate::render::Renderer::new(view, t);
        for (_, cell) in &parts {
            r.add(&lock(cell).shard);
        }
        r.finish(out);
        t
    }
}
