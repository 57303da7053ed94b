//! Configuration: the TOML file (`config/salespulse.toml` documents every
//! key), `SALESPULSE_*` environment overrides, and validation into the typed
//! [`CoreConfig`] the pure core runs on.
//!
//! Owns: key names, defaults, and turning raw strings (`"7d"`, `"Europe/Berlin"`)
//! into typed values with errors that name the key.
//! Must not touch: anything at run time; the engine only sees [`CoreConfig`].
//!
//! Layering (lowest first): built-in defaults, the file given with
//! `--config`, then environment variables `SALESPULSE_<SECTION>__<KEY>`
//! (e.g. `SALESPULSE_KAFKA__BROKERS=10.0.0.1:9092`). Unknown keys are an error
//! that names the key.

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::event::ValidationRules;
use crate::exposition::{ExpositionConfig, Profile};
use crate::time::{parse_duration, Micros};
use crate::window::{WindowError, Windows};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    #[error("windows.list: {0}")]
    Windows(#[from] WindowError),
    #[error("{key}: {value:?} is not a duration like 500ms, 90s, 5m, 1h or 7d")]
    Duration { key: &'static str, value: String },
    #[error("{key}: {msg}")]
    Invalid { key: String, msg: String },
}

/// `[windows]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsConfig {
    pub list: Vec<String>,
    pub time_zone: String,
}

impl Default for WindowsConfig {
    fn default() -> Self {
        WindowsConfig { list: Windows::DEFAULT.iter().map(|s| s.to_string()).collect(), time_zone: "UTC".into() }
    }
}

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub currency: String,
    pub max_message_bytes: usize,
    pub future_tolerance: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { currency: "USD".into(), max_message_bytes: 64 * 1024, future_tolerance: "5m".into() }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_reps: usize,
    pub max_teams: usize,
    /// New reps of a team beyond this are `cardinality`.
    pub max_reps_per_team: usize,
    /// `sales_*` series per scrape; beyond it rep-level series are dropped
    /// (see [`crate::exposition`]).
    pub max_series: usize,
    /// Distinct `product_line` values per team that keep their name; later
    /// new ones are reported as `other` (v1.1).
    pub max_product_lines_per_team: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { max_reps: 100_000, max_teams: 10_000, max_reps_per_team: 1_000, max_series: 2_000_000, max_product_lines_per_team: 20 }
    }
}

/// `[segments]` (v1.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentsConfig {
    /// `team_id = "region"`: exported as `sales_team_info{team,region} 1`.
    pub regions: BTreeMap<String, String>,
}

/// `[horizons]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HorizonsConfig {
    pub dedup: String,
    pub joins: String,
    pub deal_ttl: String,
    /// A lead's follow-up persistence is observed this long after its creation (v1.1).
    pub persistence: String,
}

impl Default for HorizonsConfig {
    fn default() -> Self {
        HorizonsConfig { dedup: "7d".into(), joins: "180d".into(), deal_ttl: "365d".into(), persistence: "14d".into() }
    }
}

/// Which clock the windows follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// The machine's clock (default for `run`).
    Wall,
    /// The largest `occurred_at` applied so far (default for `replay`).
    Event,
}

/// `[clock]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    pub mode: ClockMode,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig { mode: ClockMode::Wall }
    }
}

/// `[benchmarks]`: `<kpi>_<bound> = value`, plus per-team overrides in
/// `[benchmarks.teams.<team_id>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchmarksConfig {
    pub teams: BTreeMap<String, BTreeMap<String, f64>>,
    #[serde(flatten)]
    pub global: BTreeMap<String, f64>,
}

impl Default for BenchmarksConfig {
    fn default() -> Self {
        let global = [
            ("reach_ratio_min", 0.35),
            ("reach_ratio_target", 0.40),
            ("pass_ratio_min", 0.11),
            ("pipe_ratio_min", 0.73),
            ("lead_response_within_1h_ratio_target", 1.0),
            ("lead_touches_mean_target", 16.0),
            ("pipeline_coverage_ratio_target", 3.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        BenchmarksConfig { teams: BTreeMap::new(), global }
    }
}

/// `[kafka]` (used by `run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers; empty starts the embedded demo broker.
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    pub dlq_topic: String,
    pub checkpoint_topic: String,
    /// Seconds between checkpoints.
    pub checkpoint_interval_s: u64,
    /// This instance's stable name (empty: the host name, i.e. the pod name
    /// in Kubernetes). It makes the transactional id of the checkpoint
    /// producer, so a restarted instance fences its dead predecessor's open
    /// transaction at once; two live instances must never share it.
    pub instance_id: String,
    /// Threads folding the assigned partitions' messages, each owning some
    /// of the partitions (0: the number of cores).
    pub fold_workers: usize,
    /// librdkafka properties for every client (SASL, TLS, ...).
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only (over `properties`).
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for the checkpoint producer only (over `properties`).
    pub producer_properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topics: vec!["crm-events".into()],
            group_id: "salespulse".into(),
            dlq_topic: "crm-events-dlq".into(),
            checkpoint_topic: "salespulse-checkpoints".into(),
            checkpoint_interval_s: 10,
            instance_id: String::new(),
            fold_workers: 0,
            properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// A web configuration file in the Prometheus exporter-toolkit format
    /// (TLS certificate and key, bcrypt basic-auth users); empty: plain HTTP,
    /// no authentication.
    pub web_config_file: String,
    /// How long one render of `/metrics` is reused for concurrent and
    /// following scrapes (at most one render runs at a time).
    pub scrape_cache: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: "0.0.0.0:9464".into(), web_config_file: String::new(), scrape_cache: "1s".into() }
    }
}

impl HttpConfig {
    /// `scrape_cache` as a duration.
    pub fn scrape_cache(&self) -> Result<std::time::Duration, ConfigError> {
        let us = duration("http.scrape_cache", &self.scrape_cache)?;
        Ok(std::time::Duration::from_micros(us as u64))
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `salespulse=debug,rdkafka=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: "text".into(), level: "info".into() }
    }
}

/// `[demo]`: the generated stream fed to the embedded broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Rate of the live stream (events stamped with the current time).
    pub events_per_second: u32,
    pub teams: usize,
    pub reps_per_team: usize,
    pub seed: u64,
    /// Days of generated history produced at start with their own times (up
    /// to now), so every window and dashboard panel has data at once; 0: the
    /// live stream only.
    pub history_days: u32,
    /// `TEAM_INDEX:REP_INDEX` (from 0) of a rep whose reach rate the
    /// generator pins far below the benchmark (every other rep's well above),
    /// so the page's "confidently below benchmark" list and the reach alert
    /// have someone to name; `""`: no laggard.
    pub laggard: String,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig { events_per_second: 200, teams: 4, reps_per_team: 8, seed: 7, history_days: 20, laggard: "1:2".into() }
    }
}

impl DemoConfig {
    /// `laggard` as (team index, rep index), validated against the demo's
    /// teams and reps.
    pub fn laggard(&self) -> Result<Option<(usize, usize)>, ConfigError> {
        let s = self.laggard.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let err = |msg: String| ConfigError::Invalid { key: "demo.laggard".into(), msg };
        let (t, r) = s.split_once(':').ok_or_else(|| err(format!("{s:?}: expected TEAM_INDEX:REP_INDEX, e.g. \"1:2\", or \"\"")))?;
        let (t, r): (usize, usize) = match (t.trim().parse(), r.trim().parse()) {
            (Ok(t), Ok(r)) => (t, r),
            _ => return Err(err(format!("{s:?}: expected two indexes from 0, e.g. \"1:2\""))),
        };
        if t >= self.teams || r >= self.reps_per_team {
            return Err(err(format!("{s:?}: the demo has {} teams of {} reps (indexes start at 0)", self.teams, self.reps_per_team)));
        }
        Ok(Some((t, r)))
    }
}

/// `[bridge]`: `salespulse bridge`, the HTTP ingest of CRM webhooks and
/// plain events (also served by `run` in demo mode). See `docs/bridge.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// Address of `salespulse bridge` (ingest, `/metrics`, `/healthz`, `/readyz`).
    pub listen: String,
    /// Largest request body; larger is `413`.
    pub max_body_bytes: usize,
    /// Bearer tokens accepted on `/v1/events` and custom CRM routes.
    pub tokens: Vec<String>,
    /// A file with more tokens, one per line (`#` comments), read at start.
    pub tokens_file: String,
    /// Standard Webhooks secrets (`whsec_...`); several during a rotation.
    pub webhook_secrets: Vec<String>,
    /// A file with more Standard Webhooks secrets, one per line.
    pub webhook_secrets_file: String,
    /// Accept `/v1/events` without credentials. Never on by default.
    pub allow_anonymous: bool,
    /// PEM certificate chain and private key: both set serves HTTPS (rustls).
    pub tls_cert: String,
    pub tls_key: String,
    /// How long a request waits for the broker's acknowledgment before `503`.
    pub produce_timeout: String,
    /// `Retry-After` seconds of a `503`.
    pub retry_after_s: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: String,
    pub pipedrive: PipedriveConfig,
    pub close: CloseConfig,
    pub hubspot: HubspotConfig,
    /// Your own CRMs: `[bridge.custom.<name>]` serves `POST /v1/webhooks/<name>`.
    pub custom: BTreeMap<String, CustomCrmConfig>,
    /// Lookup tables for mappings (CRM owner id → rep_id/team_id, ...).
    pub lookups: BTreeMap<String, LookupConfig>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            listen: "0.0.0.0:8080".into(),
            max_body_bytes: 5 * 1024 * 1024,
            tokens: Vec::new(),
            tokens_file: String::new(),
            webhook_secrets: Vec::new(),
            webhook_secrets_file: String::new(),
            allow_anonymous: false,
            tls_cert: String::new(),
            tls_key: String::new(),
            produce_timeout: "10s".into(),
            retry_after_s: 5,
            shutdown_grace: "30s".into(),
            pipedrive: PipedriveConfig::default(),
            close: CloseConfig::default(),
            hubspot: HubspotConfig::default(),
            custom: BTreeMap::new(),
            lookups: BTreeMap::new(),
        }
    }
}

/// `[bridge.pipedrive]`: `POST /v1/webhooks/pipedrive`, HTTP Basic auth.
/// Off while `username` is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipedriveConfig {
    pub username: String,
    pub password: String,
    /// A mapping file replacing the built-in preset; empty: the preset.
    pub mapping: String,
}

/// `[bridge.close]`: `POST /v1/webhooks/close`, `close-sig-hash` signatures.
/// Off while `signature_key` is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloseConfig {
    /// The subscription's `signature_key` (hex), as Close returns it.
    pub signature_key: String,
    pub mapping: String,
}

/// `[bridge.hubspot]`: `POST /v1/webhooks/hubspot`, `X-HubSpot-Signature-v3`.
/// Off while `app_secret` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubspotConfig {
    /// The app's client secret (signs the webhooks).
    pub app_secret: String,
    /// The URL HubSpot calls, as configured in the app (the signature covers
    /// it); empty: scheme and `Host` of the request.
    pub public_url: String,
    /// CRM objects API (amounts and owners are fetched from it).
    pub api_base_url: String,
    /// Private-app access token for the objects API.
    pub access_token: String,
    /// Timeout of one objects API call, and retries after a failed one.
    pub timeout: String,
    pub retries: u32,
    pub mapping: String,
}

impl Default for HubspotConfig {
    fn default() -> Self {
        HubspotConfig {
            app_secret: String::new(),
            public_url: String::new(),
            api_base_url: "https://api.hubapi.com".into(),
            access_token: String::new(),
            timeout: "3s".into(),
            retries: 2,
            mapping: String::new(),
        }
    }
}

/// `[bridge.custom.<name>]`: a CRM of your own, with a mapping file,
/// authenticated like `/v1/events` (bearer token or Standard Webhooks).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomCrmConfig {
    pub mapping: String,
}

/// `[bridge.lookups.<name>]`: a lookup table, from a CSV file (first column
/// the key, a header row naming the columns; re-read when it changes) or
/// inline `rows`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LookupConfig {
    pub file: String,
    pub rows: BTreeMap<String, BTreeMap<String, String>>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub windows: WindowsConfig,
    pub events: EventsConfig,
    pub limits: LimitsConfig,
    pub horizons: HorizonsConfig,
    pub clock: ClockConfig,
    pub benchmarks: BenchmarksConfig,
    pub segments: SegmentsConfig,
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub demo: DemoConfig,
    pub bridge: BridgeConfig,
    pub exposition: ExpositionConfig,
}

/// One `sales_benchmark` series.
#[derive(Debug, Clone, PartialEq)]
pub struct Benchmark {
    pub kpi: String,
    pub bound: String,
    pub team: Option<String>,
    pub value: f64,
}

/// Ratio KPIs a benchmark may name.
pub const BENCHMARK_KPIS: &[&str] = &[
    "reach_ratio",
    "connect_ratio",
    "pass_ratio",
    "pipe_ratio",
    "no_show_ratio",
    "lead_to_mql_ratio",
    "mql_to_sql_ratio",
    "win_ratio",
    "close_ratio",
    "upsell_ratio",
    "margin_ratio",
    "lead_response_within_1h_ratio",
    "quota_attainment_ratio",
    "growth_ratio",
    "lead_touches_mean",
    "leads_single_touch_ratio",
    "leads_untouched_ratio",
    "touches_to_sql_mean",
    "lead_to_customer_ratio",
    "pipeline_coverage_ratio",
    "projected_quota_attainment_ratio",
    "win_ratio_by_product",
];

fn parse_benchmark_key(key: &str) -> Option<(&str, &str)> {
    let (kpi, bound) = key.rsplit_once('_')?;
    (BENCHMARK_KPIS.contains(&kpi) && matches!(bound, "min" | "target" | "max")).then_some((kpi, bound))
}

/// Everything the pure core needs, validated.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub windows: Windows,
    pub rules: ValidationRules,
    pub future_tolerance: Micros,
    pub max_reps: usize,
    pub max_teams: usize,
    pub max_reps_per_team: usize,
    pub max_series: usize,
    /// What the exposition contains at rep and team level.
    pub profile: Profile,
    pub dedup_horizon: Micros,
    pub join_horizon: Micros,
    pub deal_ttl: Micros,
    /// `horizons.persistence` (v1.1).
    pub persistence: Micros,
    pub max_product_lines_per_team: usize,
    /// `[segments.regions]`: team id → region.
    pub regions: BTreeMap<String, String>,
    pub benchmarks: Vec<Benchmark>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        // The defaults are constants that validate.
        Config::default().core().expect("default config is valid")
    }
}

fn duration(key: &'static str, value: &str) -> Result<Micros, ConfigError> {
    parse_duration(value).filter(|d| *d >= 0).ok_or_else(|| ConfigError::Duration { key, value: value.to_owned() })
}

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SALESPULSE_";

/// Whether `name` (without [`ENV_PREFIX`]) has the form of a configuration
/// key, `<SECTION>__<KEY>`. Other `SALESPULSE_*` variables (a wrapper
/// script's `SALESPULSE_BIN`, `SALESPULSE_CONFIG`, test hooks) are not
/// configuration and are left alone.
fn is_config_env(name: &str) -> bool {
    name.split_once("__").is_some_and(|(section, key)| !section.is_empty() && !key.is_empty())
}

/// The `SALESPULSE_*` variables of the environment that are not read as
/// configuration (see [`is_config_env`]), for a debug log at start.
pub fn ignored_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.strip_prefix(ENV_PREFIX).is_some_and(|rest| !is_config_env(rest)))
        .collect()
}

impl Config {
    /// Defaults, then `path` (if any), then `SALESPULSE_<SECTION>__<KEY>`
    /// variables.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Invalid { key: "--config".into(), msg: format!("{} does not exist", p.display()) });
            }
            fig = fig.merge(Toml::file_exact(p));
        }
        fig = fig.merge(Env::prefixed(ENV_PREFIX).filter(|k| is_config_env(k.as_str())).split("__"));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.core()?;
        cfg.http.scrape_cache()?;
        cfg.demo.laggard()?;
        Ok(cfg)
    }

    /// Parses a TOML string over the defaults (tests, `check-config`).
    pub fn from_toml(s: &str) -> Result<Config, ConfigError> {
        let cfg: Config =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(s)).extract().map_err(Box::new)?;
        cfg.core()?;
        cfg.http.scrape_cache()?;
        cfg.demo.laggard()?;
        Ok(cfg)
    }

    /// Validates into the typed core configuration.
    pub fn core(&self) -> Result<CoreConfig, ConfigError> {
        let windows = Windows::new(&self.windows.list, &self.windows.time_zone)?;
        let c = &self.events.currency;
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ConfigError::Invalid { key: "events.currency".into(), msg: format!("{c:?} is not a 3-letter ISO 4217 code") });
        }
        for (key, v) in [("limits.max_series", self.limits.max_series), ("limits.max_reps_per_team", self.limits.max_reps_per_team)] {
            if v == 0 {
                return Err(ConfigError::Invalid { key: key.into(), msg: "must be above 0".into() });
            }
        }
        let profile = Profile::new(&self.exposition, &windows).map_err(|e| ConfigError::Invalid { key: format!("exposition.{}.{}", e.level, e.key), msg: e.msg })?;
        if self.events.max_message_bytes == 0 {
            return Err(ConfigError::Invalid { key: "events.max_message_bytes".into(), msg: "must be above 0".into() });
        }
        let mut benchmarks = Vec::new();
        let mut add = |table: &BTreeMap<String, f64>, team: Option<&String>| -> Result<(), ConfigError> {
            for (k, v) in table {
                let key = match team {
                    Some(t) => format!("benchmarks.teams.{t}.{k}"),
                    None => format!("benchmarks.{k}"),
                };
                let (kpi, bound) = parse_benchmark_key(k).ok_or_else(|| ConfigError::Invalid {
                    key: key.clone(),
                    msg: format!("unknown benchmark; expected <kpi>_<min|target|max> with kpi one of {}", BENCHMARK_KPIS.join(", ")),
                })?;
                if !v.is_finite() {
                    return Err(ConfigError::Invalid { key, msg: "must be a finite number".into() });
                }
                benchmarks.push(Benchmark { kpi: kpi.into(), bound: bound.into(), team: team.cloned(), value: *v });
            }
            Ok(())
        };
        add(&self.benchmarks.global, None)?;
        for (team, table) in &self.benchmarks.teams {
            add(table, Some(team))?;
        }
        let persistence = duration("horizons.persistence", &self.horizons.persistence)?;
        if persistence <= 0 {
            return Err(ConfigError::Invalid { key: "horizons.persistence".into(), msg: "must be longer than 0".into() });
        }
        if self.limits.max_product_lines_per_team > usize::from(u16::MAX) - 3 {
            return Err(ConfigError::Invalid {
                key: "limits.max_product_lines_per_team".into(),
                msg: format!("at most {} (each product line is a set of team-level series per window)", u16::MAX - 3),
            });
        }
        for (team, region) in &self.segments.regions {
            let ok = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:@".contains(&b));
            if !ok(team) {
                return Err(ConfigError::Invalid { key: format!("segments.regions.{team}"), msg: "a team id: 1..64 characters of A-Z a-z 0-9 . _ : @ -".into() });
            }
            if region.is_empty() || region.len() > 128 || region.contains(['"', '\\', '\n']) {
                return Err(ConfigError::Invalid {
                    key: format!("segments.regions.{team}"),
                    msg: "a region: 1..128 characters without quotes, backslashes or newlines".into(),
                });
            }
        }
        Ok(CoreConfig {
            windows,
            rules: ValidationRules { max_message_bytes: self.events.max_message_bytes, currency: c.clone() },
            future_tolerance: duration("events.future_tolerance", &self.events.future_tolerance)?,
            max_reps: self.limits.max_reps,
            max_teams: self.limits.max_teams,
            max_reps_per_team: self.limits.max_reps_per_team,
            max_series: self.limits.max_series,
            profile,
            dedup_horizon: duration("horizons.dedup", &self.horizons.dedup)?,
            join_horizon: duration("horizons.joins", &self.horizons.joins)?,
            deal_ttl: duration("horizons.deal_ttl", &self.horizons.deal_ttl)?,
            persistence,
            max_product_lines_per_team: self.limits.max_product_lines_per_team,
            regions: self.segments.regions.clone(),
            benchmarks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_reads_only_section_key_names() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SALESPULSE_KAFKA__GROUP_ID", "from-env");
            jail.set_env("SALESPULSE_BIN", "/usr/local/bin/salespulse");
            jail.set_env("SALESPULSE_CONFIG", "/etc/salespulse.toml");
            jail.set_env("SALESPULSE_TEST_PAUSE", "checkpoint=100");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.kafka.group_id, "from-env");
            let mut ignored = ignored_env_vars();
            ignored.sort();
            assert_eq!(ignored, ["SALESPULSE_BIN", "SALESPULSE_CONFIG", "SALESPULSE_TEST_PAUSE"]);
            // A name of the config form is still checked: a typo is an error.
            jail.set_env("SALESPULSE_KAFKA__GROUPID", "typo");
            let err = Config::load(None).expect_err("unknown key");
            assert!(err.to_string().contains("groupid"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn shipped_config_is_the_default() {
        let text = include_str!("../config/salespulse.toml");
        let cfg = Config::from_toml(text).unwrap();
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::from_toml("[windows]\ntime_zon = \"UTC\"\n").unwrap_err().to_string();
        assert!(e.contains("time_zon"), "{e}");
        let e = Config::from_toml("[nope]\nx = 1\n").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = Config::from_toml("[benchmarks]\nreach_min = 0.3\n").unwrap_err().to_string();
        assert!(e.contains("benchmarks.reach_min"), "{e}");
        let e = Config::from_toml("[benchmarks.teams.emea]\nreach_ratio_mni = 0.3\n").unwrap_err().to_string();
        assert!(e.contains("benchmarks.teams.emea.reach_ratio_mni"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_toml("[horizons]\ndedup = \"7 days\"\n").unwrap_err().to_string();
        assert!(e.contains("horizons.dedup"), "{e}");
        let e = Config::from_toml("[windows]\ntime_zone = \"Mars/Base\"\n").unwrap_err().to_string();
        assert!(e.contains("Mars/Base"), "{e}");
        let e = Config::from_toml("[windows]\nlist = [\"90m:1h\"]\n").unwrap_err().to_string();
        assert!(e.contains("90m:1h"), "{e}");
        let e = Config::from_toml("[events]\ncurrency = \"dollars\"\n").unwrap_err().to_string();
        assert!(e.contains("events.currency"), "{e}");
        let e = Config::from_toml("[demo]\nlaggard = \"4:0\"\n").unwrap_err().to_string();
        assert!(e.contains("demo.laggard") && e.contains("4 teams"), "{e}");
        let e = Config::from_toml("[demo]\nlaggard = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("demo.laggard"), "{e}");
        assert_eq!(Config::from_toml("[demo]\nlaggard = \"\"\n").unwrap().demo.laggard().unwrap(), None);
        assert_eq!(Config::default().demo.laggard().unwrap(), Some((1, 2)));
    }

    #[test]
    fn team_overrides() {
        let cfg = Config::from_toml("[benchmarks.teams.emea-smb]\nreach_ratio_min = 0.30\n").unwrap();
        let core = cfg.core().unwrap();
        assert_eq!(core.benchmarks.len(), 8); // 7 defaults (2 of v1.1) + 1 override
        assert!(core.benchmarks.contains(&Benchmark {
            kpi: "reach_ratio".into(),
            bound: "min".into(),
            team: Some("emea-smb".into()),
            value: 0.30
        }));
    }
}
