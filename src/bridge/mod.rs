//! `salespulse bridge`: CRM webhooks and plain HTTP events into Kafka,
//! authenticated, mapped, validated with the engine's own code, and never
//! acknowledged (`202`) before the broker has them. Stateless: scale it by
//! running more replicas. `docs/bridge.md` is the user's guide.
//!
//! Routes: `POST /v1/events` (one event, a JSON array, or NDJSON);
//! `POST /v1/webhooks/{pipedrive,close,hubspot,<custom>}` (a CRM's own
//! payloads through a mapping); `GET /metrics`, `/healthz`, `/readyz`.
//! A demo `run` (no `kafka.brokers`) serves the two ingest routes on its own
//! port, produces into its demo broker, and shows these self-metrics on
//! `/bridge/metrics` ([`demo_router`]).
//!
//! Owns: wiring (configuration → credentials, mappings, lookups, producer),
//! the HTTP handlers and their status codes, TLS, graceful shutdown.
//! Must not touch: event validation (it calls [`crate::event::parse_event`]
//! through [`ingest::Validator`]), engine state.
//!
//! Answers: `202` once every accepted event is acknowledged by the broker
//! (`{"accepted", "ignored"?, "rejected": [{index, reason, detail}]}`);
//! `401` unauthenticated; `404` unknown CRM route; `413` body over
//! `bridge.max_body_bytes`; `415` content type; `503` + `Retry-After` when
//! the broker (or HubSpot's API) did not answer in time.

pub mod auth;
pub mod hubspot;
pub mod ingest;
pub mod lookup;
pub mod mapping;
pub mod metrics;
pub mod producer;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::time::{parse_duration, wall_now, Micros};
use auth::{AuthError, WebhookSecret};
use ingest::{Batch, Validator};
use lookup::Lookups;
use mapping::{Lookup, Mapping};
use metrics::BridgeMetrics;
use producer::Producer;

/// The Standard Webhooks secret of a demo `run` when `[bridge]` configures
/// no credentials (README, `salespulse sign`'s default). Demo only: the log
/// says so, and `salespulse bridge` never uses it.
pub const DEMO_SECRET: &str = "whsec_c2FsZXNwdWxzZS1kZW1vLXNlY3JldC0yMDI2";

pub const PIPEDRIVE_PRESET: &str = include_str!("presets/pipedrive.toml");
pub const CLOSE_PRESET: &str = include_str!("presets/close.toml");
pub const HUBSPOT_PRESET: &str = include_str!("presets/hubspot.toml");

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("{key}: {msg}")]
    Config { key: String, msg: String },
    #[error(transparent)]
    Mapping(#[from] mapping::MappingError),
    #[error(transparent)]
    Lookup(#[from] lookup::LookupError),
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Fetch(#[from] hubspot::FetchError),
    #[error("self-metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{0}")]
    Io(String),
}

fn cfg_err(key: &str, msg: impl Into<String>) -> BridgeError {
    BridgeError::Config { key: key.to_string(), msg: msg.into() }
}

fn duration(key: &str, v: &str) -> Result<Duration, BridgeError> {
    parse_duration(v)
        .filter(|d| *d > 0)
        .map(|us| Duration::from_micros(us as u64))
        .ok_or_else(|| cfg_err(key, format!("{v:?} is not a duration like 5s, 30s or 1m")))
}

/// Lines of a secrets file: trimmed, no blanks, no `#` comments.
fn file_lines(key: &str, path: &str) -> Result<Vec<String>, BridgeError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| cfg_err(key, format!("{path}: {e}")))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect())
}

/// How a CRM route authenticates.
enum CrmAuth {
    Basic { user: String, password: String },
    Close { key: Vec<u8> },
    Hubspot { secret: String, public_url: String },
    /// Like `/v1/events`: bearer token or Standard Webhooks.
    Generic,
}

struct Crm {
    auth: CrmAuth,
    mapping: Mapping,
}

/// Everything a request needs; shared by all handlers.
pub struct Bridge {
    validator: Validator,
    producer: Producer,
    tokens: Vec<String>,
    secrets: Vec<WebhookSecret>,
    allow_anonymous: bool,
    crms: BTreeMap<String, Crm>,
    lookups: Lookups,
    hubspot: Option<hubspot::Client>,
    pub metrics: BridgeMetrics,
    retry_after_s: u64,
    tls: bool,
}

fn load_mapping(key: &str, name: &str, file: &str, preset: &str) -> Result<Mapping, BridgeError> {
    if file.is_empty() {
        return Ok(Mapping::parse(name, preset)?);
    }
    let text = std::fs::read_to_string(file).map_err(|e| cfg_err(key, format!("{file}: {e}")))?;
    Ok(Mapping::parse(file, &text)?)
}

impl Bridge {
    /// Builds the bridge from the configuration, producing to `brokers`.
    /// `demo` adds [`DEMO_SECRET`] when no credentials are configured.
    pub fn new(cfg: &Config, brokers: &str, demo: bool) -> Result<Bridge, BridgeError> {
        let b = &cfg.bridge;
        let core = cfg.core().map_err(|e| cfg_err("config", e.to_string()))?;
        let validator = Validator { rules: core.rules.clone(), future_tolerance: core.future_tolerance, now: wall_now };
        let topic = cfg.kafka.topics.first().cloned().ok_or_else(|| cfg_err("kafka.topics", "is empty: the bridge produces to the first topic"))?;
        let timeout = duration("bridge.produce_timeout", &b.produce_timeout)?;
        duration("bridge.shutdown_grace", &b.shutdown_grace)?;
        if b.max_body_bytes == 0 {
            return Err(cfg_err("bridge.max_body_bytes", "must be above 0"));
        }
        let mut tokens: Vec<String> = b.tokens.iter().map(|t| t.trim().to_string()).collect();
        tokens.extend(file_lines("bridge.tokens_file", &b.tokens_file)?);
        if tokens.iter().any(String::is_empty) {
            return Err(cfg_err("bridge.tokens", "an empty token"));
        }
        let mut secret_texts = b.webhook_secrets.clone();
        secret_texts.extend(file_lines("bridge.webhook_secrets_file", &b.webhook_secrets_file)?);
        let mut secrets = Vec::new();
        for (i, s) in secret_texts.iter().enumerate() {
            secrets.push(WebhookSecret::parse(s).ok_or_else(|| cfg_err("bridge.webhook_secrets", format!("secret {} is not whsec_<base64>", i + 1)))?);
        }
        if demo && tokens.is_empty() && secrets.is_empty() && !b.allow_anonymous {
            secrets.extend(WebhookSecret::parse(DEMO_SECRET));
            warn!(
                secret = DEMO_SECRET,
                "DEMO MODE: POST /v1/events on this port accepts events signed with this demo Standard Webhooks secret \
                 (`salespulse sign FILE | curl -H @- ...`, see README); configure bridge.tokens or bridge.webhook_secrets for anything else"
            );
        }
        if b.tls_cert.is_empty() != b.tls_key.is_empty() {
            return Err(cfg_err("bridge.tls_cert", "set both tls_cert and tls_key, or neither"));
        }

        let lookups = Lookups::load(&b.lookups)?;
        let mut crms = BTreeMap::new();
        if !b.pipedrive.username.is_empty() {
            let mapping = load_mapping("bridge.pipedrive.mapping", "pipedrive", &b.pipedrive.mapping, PIPEDRIVE_PRESET)?;
            crms.insert("pipedrive".to_string(), Crm { auth: CrmAuth::Basic { user: b.pipedrive.username.clone(), password: b.pipedrive.password.clone() }, mapping });
        }
        if !b.close.signature_key.is_empty() {
            let key = hex::decode(b.close.signature_key.trim()).map_err(|_| cfg_err("bridge.close.signature_key", "is not hex (copy signature_key from the subscription)"))?;
            let mapping = load_mapping("bridge.close.mapping", "close", &b.close.mapping, CLOSE_PRESET)?;
            crms.insert("close".to_string(), Crm { auth: CrmAuth::Close { key }, mapping });
        }
        let mut hubspot_client = None;
        if !b.hubspot.app_secret.is_empty() {
            let h = &b.hubspot;
            let mapping = load_mapping("bridge.hubspot.mapping", "hubspot", &h.mapping, HUBSPOT_PRESET)?;
            if mapping.fetches() {
                if h.access_token.is_empty() {
                    return Err(cfg_err("bridge.hubspot.access_token", "the mapping fetches CRM objects: set a private-app access token (scopes crm.objects.contacts.read, crm.objects.deals.read)"));
                }
                let t = duration("bridge.hubspot.timeout", &h.timeout)?;
                hubspot_client = Some(hubspot::Client::new(&h.api_base_url, &h.access_token, t, h.retries)?);
            }
            crms.insert("hubspot".to_string(), Crm { auth: CrmAuth::Hubspot { secret: h.app_secret.clone(), public_url: h.public_url.clone() }, mapping });
        }
        for (name, c) in &b.custom {
            let key = format!("bridge.custom.{name}.mapping");
            if ["pipedrive", "close", "hubspot"].contains(&name.as_str()) {
                return Err(cfg_err(&key, format!("{name} is a built-in route: use [bridge.{name}] mapping = ...")));
            }
            if !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                return Err(cfg_err(&key, "the route name may hold letters, digits, - and _"));
            }
            if c.mapping.is_empty() {
                return Err(cfg_err(&key, "a custom CRM needs a mapping file"));
            }
            let mapping = load_mapping(&key, name, &c.mapping, "")?;
            if mapping.fetches() {
                return Err(cfg_err(&key, "fetch is only available to the hubspot route"));
            }
            crms.insert(name.clone(), Crm { auth: CrmAuth::Generic, mapping });
        }
        for (name, crm) in &crms {
            for t in crm.mapping.lookup_tables() {
                if !lookups.has_table(&t) {
                    return Err(cfg_err(
                        &format!("bridge.lookups.{t}"),
                        format!("the {name} mapping reads lookup table {t:?} (CRM owner → rep_id, team_id): configure [bridge.lookups.{t}] with a CSV file or rows"),
                    ));
                }
            }
        }
        let props: Vec<(String, String)> = cfg.kafka.properties.clone().into_iter().collect();
        let producer = Producer::new(brokers, &topic, &props, timeout)?;
        Ok(Bridge {
            validator,
            producer,
            tokens,
            secrets,
            allow_anonymous: b.allow_anonymous,
            crms,
            lookups,
            hubspot: hubspot_client,
            metrics: BridgeMetrics::new()?,
            retry_after_s: b.retry_after_s.max(1),
            tls: !b.tls_cert.is_empty(),
        })
    }

    /// The CRM routes configured (for the log).
    pub fn routes(&self) -> Vec<String> {
        let mut r = vec!["/v1/events".to_string()];
        r.extend(self.crms.keys().map(|k| format!("/v1/webhooks/{k}")));
        r
    }

    /// Bearer token or Standard Webhooks signature (or anonymous, if allowed).
    fn authenticate(&self, h: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        if auth::has_standard_signature(h) {
            return auth::verify_standard(h, body, &self.secrets, wall_now().div_euclid(1_000_000));
        }
        if auth::verify_bearer(h, &self.tokens)? {
            return Ok(());
        }
        if self.allow_anonymous {
            Ok(())
        } else {
            Err(AuthError::NoCredentials)
        }
    }

    fn unauthenticated(&self, route: &str, e: AuthError) -> Response {
        self.metrics.event("unauthenticated", 1);
        warn!(route, error = %e, "unauthenticated request refused");
        let mut r = (StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthenticated", "detail": e.to_string()}))).into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    }

    fn unavailable(&self, n: usize, detail: String) -> Response {
        self.metrics.event("unavailable", n);
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "unavailable", "detail": detail}))).into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after_s));
        r
    }

    /// Produces the batch and answers: `202` after the acknowledgment, `503`
    /// if none came. The produce runs as a task of its own: a client that
    /// goes away does not cancel it, so what reaches the topic is always
    /// what `accepted` counts.
    async fn finish(self: &Arc<Self>, batch: Batch, ignored: Option<usize>) -> Response {
        let b = self.clone();
        match tokio::spawn(async move { b.produce(batch, ignored).await }).await {
            Ok(r) => r,
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("produce task failed: {e}")).into_response(),
        }
    }

    async fn produce(&self, batch: Batch, ignored: Option<usize>) -> Response {
        let t0 = Instant::now();
        if !batch.records.is_empty() {
            if let Err(e) = self.producer.send_all(&batch.records).await {
                warn!(events = batch.records.len(), error = %e, "events not acknowledged: answering 503");
                return self.unavailable(batch.records.len(), e.to_string());
            }
            self.metrics.produce_duration.observe(t0.elapsed().as_secs_f64());
        }
        self.metrics.event("accepted", batch.records.len());
        self.metrics.event("rejected", batch.rejected.len());
        self.metrics.event("ignored", ignored.unwrap_or(0));
        for r in &batch.rejected {
            self.metrics.rejected.with_label_values(&[r.reason]).inc();
        }
        (StatusCode::ACCEPTED, Json(batch.answer(ignored))).into_response()
    }

    /// A CRM body (one event or an array of them) through its mapping.
    async fn map_crm(&self, crm: &Crm, body: &[u8]) -> Result<(Batch, usize), Response> {
        let mut batch = Batch::default();
        let doc: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                batch.rejected.push(ingest::Rejection { index: 0, reason: "json", detail: format!("the body is not JSON: {e}") });
                return Ok((batch, 0));
            }
        };
        let events: Vec<&Value> = match &doc {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        let mut ignored = 0;
        let mut fetched: HashMap<mapping::FetchRequest, Option<Value>> = HashMap::new();
        for (i, ev) in events.into_iter().enumerate() {
            let Some(rule) = crm.mapping.select(ev) else {
                ignored += 1;
                continue;
            };
            let object = match (crm.mapping.fetch_request(rule, ev), &self.hubspot) {
                (Some(req), Some(client)) => {
                    if !fetched.contains_key(&req) {
                        match client.fetch(&req).await {
                            Ok(o) => {
                                self.metrics.fetches.with_label_values(&[if o.is_some() { "ok" } else { "not_found" }]).inc();
                                fetched.insert(req.clone(), o);
                            }
                            Err(e) => {
                                self.metrics.fetches.with_label_values(&["error"]).inc();
                                error!(error = %e, "crm fetch failed: answering 503 so the CRM retries");
                                return Err(self.unavailable(0, e.to_string()));
                            }
                        }
                    }
                    fetched.get(&req).and_then(Option::as_ref)
                }
                _ => None,
            };
            let out = crm.mapping.build(rule, ev, object, &self.lookups as &dyn Lookup);
            let bytes = serde_json::to_vec(&out).unwrap_or_default();
            batch.push(i, &bytes, &self.validator);
        }
        Ok((batch, ignored))
    }
}

fn content_type(h: &HeaderMap) -> Option<&str> {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

async fn events(State(b): State<Arc<Bridge>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = b.authenticate(&headers, &body) {
        return b.unauthenticated("/v1/events", e);
    }
    let Some(kind) = ingest::body_kind(content_type(&headers)) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"error": "unsupported_media_type", "detail": "send application/json (one event or an array) or application/x-ndjson"})),
        )
            .into_response();
    };
    // Validation is CPU work proportional to the body: big bodies off the async workers.
    let batch = if body.len() > 256 * 1024 {
        let (b2, body2) = (b.clone(), body.clone());
        match tokio::task::spawn_blocking(move || ingest::decode(&body2, kind, &b2.validator)).await {
            Ok(batch) => batch,
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("decoding failed: {e}")).into_response(),
        }
    } else {
        ingest::decode(&body, kind, &b.validator)
    };
    b.finish(batch, None).await
}

async fn webhook(State(b): State<Arc<Bridge>>, UrlPath(name): UrlPath<String>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(crm) = b.crms.get(&name) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "not_found", "detail": format!("no CRM route {name:?} is configured")}))).into_response();
    };
    let now_us: Micros = wall_now();
    let checked = match &crm.auth {
        CrmAuth::Basic { user, password } => auth::verify_basic(&headers, user, password),
        CrmAuth::Close { key } => auth::verify_close(&headers, &body, key, now_us.div_euclid(1_000_000)),
        CrmAuth::Hubspot { secret, public_url } => {
            let full = if public_url.is_empty() {
                let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
                let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
                format!("{}://{host}{pq}", if b.tls { "https" } else { "http" })
            } else {
                public_url.clone()
            };
            auth::verify_hubspot(&headers, method.as_str(), &full, &body, secret, now_us.div_euclid(1000))
        }
        CrmAuth::Generic => b.authenticate(&headers, &body),
    };
    if let Err(e) = checked {
        return b.unauthenticated(&format!("/v1/webhooks/{name}"), e);
    }
    match b.map_crm(crm, &body).await {
        Ok((batch, ignored)) => b.finish(batch, Some(ignored)).await,
        Err(resp) => resp,
    }
}

/// Counts every request by route and status (also the 413s axum answers
/// before a handler runs).
async fn count(State(b): State<Arc<Bridge>>, req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()) {
        Some(p) if p == "/v1/webhooks/{name}" => {
            let name = req.uri().path().rsplit('/').next().unwrap_or("");
            if b.crms.contains_key(name) {
                format!("/v1/webhooks/{name}")
            } else {
                p
            }
        }
        Some(p) => p,
        None => "other".into(),
    };
    let resp = next.run(req).await;
    b.metrics.requests.with_label_values(&[&route, resp.status().as_str()]).inc();
    resp
}

/// The ingest routes (`/v1/events`, `/v1/webhooks/{name}`) with the body
/// limit and request counting.
pub fn ingest_router(b: Arc<Bridge>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/events", post(events))
        .route("/v1/webhooks/{name}", post(webhook))
        .route_layer(middleware::from_fn_with_state(b.clone(), count))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(b)
}

fn metrics_text(b: &Bridge) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], b.metrics.render()).into_response()
}

/// The whole service of `salespulse bridge`: ingest plus `/metrics`,
/// `/healthz` and `/readyz` (the broker answers for the topic).
pub fn router(b: Arc<Bridge>, max_body_bytes: usize) -> Router {
    let ready = b.clone();
    let m = b.clone();
    ingest_router(b, max_body_bytes)
        .route("/metrics", get(move || std::future::ready(metrics_text(&m))))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let b = ready.clone();
                async move {
                    let ok = tokio::task::spawn_blocking(move || b.producer.reachable(Duration::from_secs(2))).await.unwrap_or(false);
                    if ok {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the broker does not answer for the topic\n")
                    }
                }
            }),
        )
}

/// The ingest routes for a demo `run` (no `kafka.brokers`): produce into the
/// demo broker at `brokers`, self-metrics on `/bridge/metrics`. Call inside
/// the runtime (lookup files are polled by a task).
pub fn demo_router(cfg: &Config, brokers: &str) -> Result<Router, BridgeError> {
    let b = Arc::new(Bridge::new(cfg, brokers, true)?);
    b.lookups.spawn_reloader(Duration::from_secs(2));
    info!(routes = %b.routes().join(", "), "demo: ingest routes served on the metrics port");
    let m = b.clone();
    Ok(ingest_router(b, cfg.bridge.max_body_bytes).route("/bridge/metrics", get(move || std::future::ready(metrics_text(&m)))))
}

/// Runs `salespulse bridge` until SIGTERM/SIGINT, then drains in-flight
/// requests (up to `bridge.shutdown_grace`) and flushes the producer.
pub fn serve(cfg: Config) -> Result<(), BridgeError> {
    let brokers = cfg.kafka.brokers.trim().to_string();
    if brokers.is_empty() {
        return Err(cfg_err("kafka.brokers", "salespulse bridge needs a broker (set kafka.brokers or SALESPULSE_KAFKA__BROKERS); for a demo, `salespulse run` serves the same routes"));
    }
    let grace = duration("bridge.shutdown_grace", &cfg.bridge.shutdown_grace)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("salespulse-bridge").build().map_err(|e| BridgeError::Io(format!("tokio runtime: {e}")))?;
    rt.block_on(async move {
        let b = Arc::new(Bridge::new(&cfg, &brokers, false)?);
        b.lookups.spawn_reloader(Duration::from_secs(2));
        let app = router(b.clone(), cfg.bridge.max_body_bytes);
        let listener = std::net::TcpListener::bind(&cfg.bridge.listen).map_err(|e| cfg_err("bridge.listen", format!("cannot listen on {}: {e}", cfg.bridge.listen)))?;
        listener.set_nonblocking(true).map_err(|e| BridgeError::Io(e.to_string()))?;
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        tokio::spawn(async move {
            crate::run::wait_signal().await;
            info!(grace_s = grace.as_secs(), "signal received: draining in-flight requests (a second signal exits at once)");
            h.graceful_shutdown(Some(grace));
            crate::run::wait_signal().await;
            warn!("second signal: exiting now");
            std::process::exit(130);
        });
        let tls = !cfg.bridge.tls_cert.is_empty();
        info!(listen = %cfg.bridge.listen, tls, topic = b.producer.topic(), routes = %b.routes().join(", "), "bridge serving");
        let served = if tls {
            let tc = axum_server::tls_rustls::RustlsConfig::from_pem_file(Path::new(&cfg.bridge.tls_cert), Path::new(&cfg.bridge.tls_key))
                .await
                .map_err(|e| cfg_err("bridge.tls_cert", format!("{} / {}: {e}", cfg.bridge.tls_cert, cfg.bridge.tls_key)))?;
            axum_server::from_tcp_rustls(listener, tc).map_err(|e| BridgeError::Io(e.to_string()))?.handle(handle).serve(app.into_make_service()).await
        } else {
            axum_server::from_tcp(listener).map_err(|e| BridgeError::Io(e.to_string()))?.handle(handle).serve(app.into_make_service()).await
        };
        served.map_err(|e| BridgeError::Io(format!("http server: {e}")))?;
        let p = b.clone();
        let _ = tokio::task::spawn_blocking(move || p.producer.flush(Duration::from_secs(10))).await;
        info!("bridge stopped");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(toml: &str) -> Result<Bridge, BridgeError> {
        let cfg = Config::from_toml(toml).expect("config");
        Bridge::new(&cfg, "127.0.0.1:9", false)
    }

    fn err(toml: &str) -> String {
        bridge(toml).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn credentials_from_files_and_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(&f, "# rotated 2026-11\nfirst\n\n  second  \n").unwrap();
        let b = bridge(&format!("[bridge]\ntokens = [\"inline\"]\ntokens_file = \"{}\"\n", f.display())).unwrap();
        assert_eq!(b.tokens, vec!["inline", "first", "second"]);
        assert!(b.secrets.is_empty() && !b.allow_anonymous);
        assert_eq!(b.routes(), vec!["/v1/events"]);
        let demo = Bridge::new(&Config::default(), "127.0.0.1:9", true).unwrap();
        assert_eq!(demo.secrets.len(), 1, "a demo run without credentials gets the demo secret");
    }

    #[test]
    fn configuration_errors_name_the_key() {
        assert!(err("[bridge]\ntokens_file = \"/nonexistent/tokens\"\n").contains("bridge.tokens_file"));
        assert!(err("[bridge]\nwebhook_secrets = [\"not base64!\"]\n").contains("bridge.webhook_secrets"));
        assert!(err("[bridge]\ntls_cert = \"c.pem\"\n").contains("bridge.tls_cert"));
        assert!(err("[bridge]\nproduce_timeout = \"soon\"\n").contains("bridge.produce_timeout"));
        assert!(err("[bridge.pipedrive]\nusername = \"u\"\n").contains("bridge.lookups.owners"));
        assert!(err("[bridge.close]\nsignature_key = \"zz\"\n").contains("bridge.close.signature_key"));
        assert!(err("[bridge.hubspot]\napp_secret = \"s\"\n[bridge.lookups.owners.rows]\n").contains("bridge.hubspot.access_token"));
        assert!(err("[bridge.custom.hubspot]\nmapping = \"x.toml\"\n").contains("built-in"));
        assert!(err("[bridge.custom.mine]\nmapping = \"/nonexistent/m.toml\"\n").contains("/nonexistent/m.toml"));
        let ok = bridge("[bridge.pipedrive]\nusername = \"u\"\n[bridge.close]\nsignature_key = \"0f1e\"\n[bridge.lookups.owners.rows]\n\"1\" = { rep_id = \"a\", team_id = \"t\" }\n").unwrap();
        assert_eq!(ok.routes(), vec!["/v1/events", "/v1/webhooks/close", "/v1/webhooks/pipedrive"]);
    }
}
