//! The HTTP adapter of `run`: `/metrics` (KPI families and self-metrics),
//! `/healthz` (the process is alive), `/readyz` (state restored, partitions
//! assigned, brokers reachable), `/api/v1/status` (the engine's progress
//! as JSON, cheap: no KPI rendering), `/api/v1/kpis` (the KPIs of one window
//! as JSON, [`crate::kpi_json`]) and `/` (the page that shows them,
//! [`crate::page`]).
//!
//! Owns: routes, status codes, authentication of the protected routes
//! (everything but `/healthz` and `/readyz`, with [`super::web`]), and the
//! scrape cache: at most one render runs at a time, and its result (plain
//! and, when a scraper asks, gzip-compressed) serves every scrape that
//! arrives while it runs and for `http.scrape_cache` after it, so fifty
//! clients hammering `/metrics` cost one render per second, not fifty, and
//! never starve the fold workers. `/api/v1/kpis` reads that same render
//! when the exposition profile is full and the series budget dropped
//! nothing (so its numbers are a scrape's), else a full render of its own
//! (one at a time). Must not touch: state (read through [`Engine::render`]
//! and [`Engine::render_kpis`]).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::Mutex;

use super::kafka::Engine;
use super::web::BasicAuth;
use crate::engine::Core;
use crate::kpi_json;
use crate::time::{format_rfc3339, Micros};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The last render and its gzip form (made on the first request that
/// accepts it).
struct Rendered {
    at: Instant,
    /// The clock its windows end at.
    t: Micros,
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
    /// The engine's core configuration with a full profile and no series
    /// budget, for `/api/v1/kpis` when the configured ones leave series out.
    view: Arc<Core>,
    /// Held while such a full render runs.
    full_render: Arc<Mutex<()>>,
}

impl Http {
    pub fn new(engine: Arc<Engine>, max_age: Duration) -> Self {
        let view = Arc::new(Core::new(kpi_json::full_view(&engine.core.cfg), engine.core.clock));
        Http { engine, cache: Arc::new(Mutex::new(None)), max_age, view, full_render: Arc::new(Mutex::new(())) }
    }
}

/// The routes; everything but the probes behind `auth` (when it has users),
/// `extra` (the bridge's ingest routes in demo mode) too.
pub fn router(http: Http, auth: Arc<BasicAuth>, extra: Option<Router>) -> Router {
    let mut protected = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/kpis", get(kpis))
        .with_state(http.clone());
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

/// The cache, holding a render at most `http.max_age` old.
async fn fresh(http: &Http) -> tokio::sync::MutexGuard<'_, Option<Rendered>> {
    let mut cache = http.cache.lock().await;
    if cache.as_ref().is_none_or(|r| r.at.elapsed() > http.max_age) {
        // Rendering is CPU work proportional to the state: off the async
        // workers. The cache lock is held meanwhile: one render at a time.
        let engine = http.engine.clone();
        let (t, plain) = tokio::task::spawn_blocking(move || {
            let mut out = String::with_capacity(1 << 16);
            let t = engine.render(&mut out);
            (t, out)
        })
        .await
        .unwrap_or_else(|e| (0, format!("# render failed: {e}\n")));
        *cache = Some(Rendered { at: Instant::now(), t, plain: Bytes::from(plain), gzip: None });
    }
    cache
}

async fn metrics(State(http): State<Http>, headers: HeaderMap) -> Response {
    let want_gzip = accepts_gzip(&headers);
    let mut cache = fresh(&http).await;
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

/// `GET /`: the page (self-contained HTML; it reads `/api/v1/kpis`).
async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        crate::page::live(),
    )
}

/// The query string of `/api/v1/kpis`; empty values mean "not given".
#[derive(Debug, Default, serde::Deserialize)]
struct KpiParams {
    team: Option<String>,
    rep: Option<String>,
    window: Option<String>,
}

/// `GET /api/v1/kpis?team=&rep=&window=`: the document of
/// [`kpi_json::document`] (`docs/api.md`).
async fn kpis(State(http): State<Http>, Query(p): Query<KpiParams>) -> Response {
    let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let q = kpi_json::Query { team: given(p.team), rep: given(p.rep), window: given(p.window) };
    let (t, scrape) = {
        let cache = fresh(&http).await;
        match cache.as_ref() {
            Some(r) => (r.t, r.plain.clone()),
            None => return (StatusCode::INTERNAL_SERVER_ERROR, "no render\n").into_response(),
        }
    };
    let w = &http.engine.core.cfg.windows;
    let complete = kpi_json::profile_is_full(&http.engine.core.cfg) && http.engine.metrics.series_dropped.get() == 0;
    let (t, full) = if complete {
        (t, None)
    } else {
        let _one = http.full_render.lock().await;
        let (engine, view) = (http.engine.clone(), http.view.clone());
        match tokio::task::spawn_blocking(move || {
            let mut out = String::with_capacity(1 << 16);
            let t = engine.render_kpis(&view, &mut out);
            (t, out)
        })
        .await
        {
            Ok((t, out)) => (t, Some(out)),
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("render failed: {e}\n")).into_response(),
        }
    };
    let windows: Vec<String> = w.defs.iter().map(|d| d.name.clone()).collect();
    let body = tokio::task::spawn_blocking(move || {
        let scrape = String::from_utf8_lossy(&scrape);
        let ctx = kpi_json::Context { windows: &windows, clock: Some(format_rfc3339(t)), source: "live" };
        kpi_json::document(full.as_deref().unwrap_or(&scrape), Some(&scrape), &ctx, &q)
    })
    .await;
    match body {
        Ok(Ok(doc)) => axum::Json(doc).into_response(),
        Ok(Err(e @ kpi_json::KpiJsonError::UnknownWindow { .. })) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
