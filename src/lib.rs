//! salespulse: a streaming sales-KPI engine. CRM events in (JSON, from Kafka
//! or a file), live funnel KPIs out (Prometheus text format).
//!
//! The contract is `docs/event-contract.md` (input) and `docs/metrics.md`
//! (output), with the worked example in `tests/fixtures/contract/`.
//!
//! # Layout
//!
//! The pure core (no I/O, no async, shared by `replay` and `run`):
//!
//! - [`time`]: RFC 3339 parsing, microsecond timestamps, civil dates.
//! - [`event`]: the event model and its validation (invalid reasons).
//! - [`window`]: window definitions, bucket arithmetic, calendar periods in a
//!   time zone, the late horizon.
//! - [`measures`]: what one bucket accumulates and what one event adds.
//! - [`packed`]: the byte records buckets are stored in, one arena per key.
//! - [`sketch`]: the mergeable quantile sketch for durations.
//! - [`state`]: the windowed state of one rep or team.
//! - [`dedup`]: applied `event_id`s within the dedup horizon.
//! - [`fptable`]: the dense fingerprint-keyed table behind dedup and joins.
//! - [`joins`]: lead response, sales cycle and the open-deal book.
//! - [`follow`]: follow-up persistence and touches to SQL (v1.1): per-lead
//!   state, observations at `L + H`, the due queue.
//! - [`products`]: a team's product lines (v1.1) and their windows.
//! - [`engine`]: the fold of one event into a shard (pipeline order, clock,
//!   event → delta, cardinality, compaction).
//! - [`kpi`]: every windowed KPI family and its formula.
//! - [`exposition`]: what a scrape may contain: the exposition profile (families
//!   and windows per level) and the series budget's drop order.
//! - [`render`]: streaming Prometheus exposition of a set of shards.
//! - [`kpi_json`]: the JSON view of a rendered exposition (`/api/v1/kpis`):
//!   per team and rep for one window, who is confidently below benchmark (the
//!   alert rules' selection), the engine's health.
//! - [`page`]: the self-contained HTML page at `/` and of `replay --report`.
//! - [`config`]: the configuration file and its validation.
//! - [`gen`]: a seedable generator of realistic CRM event streams.
//! - [`legacy`]: the state layout of checkpoint format 7, frozen, and its
//!   conversion (rolling upgrades).
//!
//! Adapters (I/O at the edge):
//!
//! - [`replay`]: folds an NDJSON stream through one shard.
//! - [`run`]: the live engine: Kafka consumer group member (static
//!   membership, rebalances, restores, transactional checkpoints:
//!   [`run::kafka`], snapshot format: [`run::checkpoint`]), the partitions it
//!   serves ([`run::parts`]) and the fold workers draining their queues
//!   ([`run::worker`]), HTTP `/metrics`, probes and `/api/v1/status`
//!   ([`run::http`]) with TLS and basic auth ([`run::web`]), self-metrics
//!   ([`run::selfmetrics`]), test hooks for failure tests ([`run::faults`]),
//!   the embedded demo broker ([`run::demo`]), and `salespulse produce`
//!   ([`run::produce`]: NDJSON to a topic, keyed by team).
//! - [`bridge`]: `salespulse bridge`, CRM webhooks and plain HTTP events
//!   into Kafka: authentication ([`bridge::auth`]), body decoding and
//!   validation with the engine's `parse_event` ([`bridge::ingest`]), the
//!   declarative CRM mappings and their presets ([`bridge::mapping`],
//!   [`bridge::lookup`]), HubSpot's objects API ([`bridge::hubspot`]), the
//!   acknowledged produce ([`bridge::producer`]).
//! - `src/main.rs`: the `salespulse` command line.

pub mod bridge;
pub mod config;
pub mod dedup;
pub mod engine;
pub mod event;
pub mod exposition;
pub mod follow;
pub mod fptable;
pub mod gen;
pub mod joins;
pub mod kpi;
pub mod kpi_json;
pub mod legacy;
pub mod measures;
pub mod packed;
pub mod page;
pub mod products;
pub mod render;
pub mod replay;
pub mod run;
pub mod sketch;
pub mod state;
pub mod time;
pub mod window;
