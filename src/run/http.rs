//! The HTTP adapter of `run`: `/metrics` (KPI families and self-metrics),
//! `/healthz` (the process is alive), `/readyz` (state restored, partitions
//! assigned, brokers reachable) and `/api/v1/status` (the engine's progress
//! as JSON, cheap: no KPI rendering).
//!
//! Owns: routes, status codes, authentication of the protected routes
//! (everything but `/healthz` and `/readyz`, with [`super::web`]), and the
//! scrape cache: at most one render runs at a time, and its result (plain
//! and, when a scraper asks, gzip-compressed) serves every scrape that
//! arrives while it runs and for `http.scrape_cache` after it, so fifty
//! clients hammering `/metrics` cost one render per second, not fifty, and
//! never starve the fold workers. Must not touch: state (read through
//! [`Engine::render`]).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::Mutex;

use super::kafka::Engine;
use super::web::BasicAuth;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The last render and its gzip form (made on the first request that
/// accepts it).
struct Rendered {
    at: Instant,
    plain: Bytes,
    gzip: Option<Bytes>,
}

/// What the handlers share.
#[derive(Clone)]
pub struct Http {
    engine: Arc<Engine>,
    /// Held while a render runs: concurrent scrapes wait for it and reuse it.
    cache: Arc<Mutex<Option<Rendered>>>,
    max_age: Duration,
}

impl Http {
    pub fn new(engine: Arc<Engine>, max_age: Duration) -> Self {
        Http { engine, cache: Arc::new(Mutex::new(None)), max_age }
    }
}

/// The routes; everything but the probes behind `auth` (when it has users),
/// `extra` (the bridge's ingest routes in demo mode) too.
pub fn router(http: Http, auth: Arc<BasicAuth>, extra: Option<Router>) -> Router {
    let mut protected = Router::new().route("/metrics", get(metrics)).route("/api/v1/status", get(status)).with_state(http.clone());
    if let Some(extra) = extra {
        protected = protected.merge(extra);
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(auth, authenticate));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(http)
        .merge(protected)
}

/// `401` with a `WWW-Authenticate` challenge unless the request carries the
/// credentials of a configured user.
async fn authenticate(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    if !auth.enabled() {
        return next.run(req).await;
    }
    let value = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // bcrypt is CPU work (the first time a credential is seen).
    let auth2 = auth.clone();
    let ok = tokio::task::spawn_blocking(move || auth2.check(value.as_deref())).await.unwrap_or(false);
    if ok {
        return next.run(req).await;
    }
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"salespulse\"")], "unauthorized\n").into_response()
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|e| {
        let mut parts = e.trim().split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q_zero = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
    })
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 8), flate2::Compression::fast());
    enc.write_all(body).ok()?;
    enc.finish().ok().map(Bytes::from)
}

async fn metrics(State(http): State<Http>, headers: HeaderMap) -> Response {
    let want_gzip = accepts_gzip(&headers);
    let mut cache = http.cache.lock().await;
    if cache.as_ref().is_none_or(|r| r.at.elapsed() > http.max_age) {
        // Rendering is CPU work proportional to the state: off the async
        // workers. The cache lock is held meanwhile: one render at a time.
        let engine = http.engine.clone();
        let plain = tokio::task::spawn_blocking(move || {
            let mut out = String::with_capacity(1 << 16);
            engine.render(&mut out);
            out
        })
        .await
        .unwrap_or_else(|e| format!("# render failed: {e}\n"));
        *cache = Some(Rendered { at: Instant::now(), plain: Bytes::from(plain), gzip: None });
    }
    let Some(r) = cache.as_mut() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no render\n").into_response();
    };
    if want_gzip {
        if r.gzip.is_none() {
            let plain = r.plain.clone();
            r.gzip = tokio::task::spawn_blocking(move || gzip(&plain)).await.ok().flatten();
        }
        if let Some(z) = &r.gzip {
            let z = z.clone();
            drop(cache);
            return (
                [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)), (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
                z,
            )
                .into_response();
        }
    }
    let plain = r.plain.clone();
    drop(cache);
    ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], plain).into_response()
}

async fn readyz(State(http): State<Http>) -> impl IntoResponse {
    if http.engine.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: partitions not assigned or restored, or brokers unreachable\n")
    }
}

/// `GET /api/v1/status`: events consumed by result and each partition's
/// position, without rendering any KPI (progress checks, benchmarks).
async fn status(State(http): State<Http>) -> impl IntoResponse {
    let engine = &http.engine;
    let by_result: serde_json::Map<String, serde_json::Value> = ["applied", "duplicate", "late", "invalid"]
        .iter()
        .map(|r| (r.to_string(), engine.metrics.events.with_label_values(&[r]).get().into()))
        .collect();
    let consumed: u64 = by_result.values().filter_map(serde_json::Value::as_u64).sum();
    let partitions: Vec<serde_json::Value> = engine
        .parts()
        .into_iter()
        .map(|((topic, p), cell)| {
            let part = super::parts::lock(&cell);
            serde_json::json!({ "topic": topic, "partition": p, "next_offset": part.next_offset, "revoked": part.revoked })
        })
        .collect();
    axum::Json(serde_json::json!({
        "version": 1,
        "ready": engine.is_ready(),
        "consumed": consumed,
        "events": by_result,
        "partitions": partitions,
    }))
}
