//! The HTTP adapter of `run`: `/metrics` (KPI families and self-metrics),
//! `/healthz` (the process is alive), `/readyz` (state restored, partitions
//! assigned, brokers reachable) and `/api/v1/status` (the engine's progress
//! as JSON, cheap: no KPI rendering).
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
        .route("/api/v1/status", get(status))
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

/// `GET /api/v1/status`: events consumed by result and each partition's
/// position, without rendering any KPI (progress checks, benchmarks).
async fn status(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
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
