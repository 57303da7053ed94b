//! The HTTP adapter of `run`: `/metrics` (KPI families and self-metrics),
//! `/healthz` (the process is alive) and `/readyz` (state restored,
//! partitions assigned, brokers reachable).
//!
//! Owns: routes and status codes. Must not touch: state (read through
//! [`Engine::render`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::kafka::Engine;

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(engine)
}

async fn metrics(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    // Rendering is CPU work proportional to the state: off the async workers.
    let body = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(1 << 16);
        engine.render(&mut out);
        out
    })
    .await
    .unwrap_or_else(|e| format!("# render failed: {e}\n"));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

async fn readyz(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    if engine.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: partitions not assigned or restored, or brokers unreachable\n")
    }
}
