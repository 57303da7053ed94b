//! `salespulse run`: the live engine. Consumes CRM events from Kafka into
//! the same pure core as `replay`, serves `/metrics`, checkpoints state and
//! offsets together, and shuts down gracefully.
//!
//! Owns: wiring (config → core, Kafka adapter, HTTP adapter), the embedded
//! demo broker when no brokers are configured, topic creation, signals.
//! Must not touch: KPI semantics.
//!
//! Threads: the consume loop runs on its own OS thread (blocking
//! `BaseConsumer::poll` of the main queue: rebalances, errors, checkpoints
//! and lag, as quickwit's Kafka source does); fold workers
//! ([`worker`]) drain the partitions' own queues; the HTTP server runs on a
//! small tokio runtime. Each partition's shard sits behind its own lock
//! ([`parts`]): a worker takes it per batch, a checkpoint or a scrape one
//! partition at a time.
//!
//! Shutdown: the first SIGTERM/SIGINT stops fetching; the consume thread
//! writes a final checkpoint (state + offsets in one transaction) and
//! returns; then the HTTP server stops and the process exits 0. A second
//! signal exits at once with status 130.

pub mod checkpoint;
pub mod demo;
pub mod faults;
pub mod http;
pub mod kafka;
pub mod parts;
pub mod produce;
pub mod selfmetrics;
pub mod web;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use tracing::{info, warn};

use crate::config::{ClockMode, Config};
use crate::engine::{Clock, Core};
pub use kafka::RunError;
use kafka::{Engine, Settings};

async fn create_topics(settings: &Settings) -> Result<(), RunError> {
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let max = kafka::MAX_SNAPSHOT_BYTES.to_string();
    let ckpt = NewTopic::new(&settings.kafka.checkpoint_topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("max.message.bytes", &max);
    let dlq = NewTopic::new(&settings.kafka.dlq_topic, 1, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let topics: Vec<&NewTopic> = if settings.transactional { vec![&ckpt, &dlq] } else { vec![&dlq] };
    for r in admin.create_topics(topics, &opts).await? {
        match r {
            Ok(t) => info!(topic = %t, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(RunError::Other(format!("creating topic {t}: {e}"))),
        }
    }
    Ok(())
}

/// Runs until SIGTERM/SIGINT. Blocking; builds its own runtime.
pub fn run(cfg: Config) -> Result<(), RunError> {
    let core_cfg = cfg.core().map_err(|e| RunError::Other(e.to_string()))?;
    let web = load_web_config(&cfg)?;
    let scrape_cache = cfg.http.scrape_cache().map_err(|e| RunError::Other(e.to_string()))?;
    let clock = match cfg.clock.mode {
        ClockMode::Wall => Clock::Wall,
        ClockMode::Event => Clock::Event,
    };
    let core = Arc::new(Core::new(core_cfg, clock));
    let metrics = selfmetrics::SelfMetrics::new().map_err(|e| RunError::Other(e.to_string()))?;
    let engine = Arc::new(Engine::new(core, metrics));
    let shutdown = Arc::new(AtomicBool::new(false));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("salespulse-http")
        .build()
        .map_err(|e| RunError::Other(format!("tokio runtime: {e}")))?;

    // Embedded demo broker when no brokers are configured.
    let mut _mock = None;
    let mut feeder = None;
    let (brokers, transactional) = if cfg.kafka.brokers.trim().is_empty() {
        let topic = cfg.kafka.topics.first().cloned().unwrap_or_else(|| "crm-events".into());
        let mock = demo::cluster(&topic, 4)?;
        let b = mock.bootstrap_servers();
        warn!(
            bootstrap = %b,
            "DEMO MODE: no kafka.brokers configured, so salespulse started librdkafka's in-process mock cluster and feeds it \
             a generated event stream; nothing is persisted. Set kafka.brokers (or SALESPULSE_KAFKA__BROKERS) for real use"
        );
        feeder = Some(demo::feed(b.clone(), topic, cfg.demo.clone(), shutdown.clone()));
        _mock = Some(mock);
        (b, false)
    } else {
        (cfg.kafka.brokers.clone(), true)
    };
    let settings = Settings { kafka: cfg.kafka.clone(), brokers, transactional };
    // Demo mode: the bridge's ingest routes on this port, into the demo broker.
    let ingest = if transactional { None } else { Some(rt.block_on(async { crate::bridge::demo_router(&cfg, &settings.brokers) }).map_err(|e| RunError::Other(e.to_string()))?) };
    if transactional {
        rt.block_on(create_topics(&settings))?;
    }

    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&cfg.http.listen))
        .map_err(|e| RunError::Other(format!("cannot listen on {}: {e}", cfg.http.listen)))?;
    info!(
        listen = %cfg.http.listen, tls = web.tls.is_some(), basic_auth = web.auth.enabled(),
        "serving / (the page), /metrics, /api/v1/kpis, /api/v1/status, /healthz, /readyz"
    );

    let consumer = {
        let (engine, settings, shutdown) = (engine.clone(), settings.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name("salespulse-consume".into())
            .spawn(move || {
                let r = kafka::consume(engine, settings, shutdown.clone());
                shutdown.store(true, Ordering::Relaxed);
                r
            })
            .map_err(|e| RunError::Other(format!("consume thread: {e}")))?
    };

    let server_shutdown = shutdown.clone();
    rt.block_on(async move {
        let signal_flag = server_shutdown.clone();
        tokio::spawn(async move {
            wait_signal().await;
            info!("signal received: stopping (a second signal exits at once)");
            signal_flag.store(true, Ordering::Relaxed);
            wait_signal().await;
            warn!("second signal: exiting now");
            std::process::exit(130);
        });
        let stop = server_shutdown.clone();
        let done = async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let app = http::router(http::Http::new(engine.clone(), scrape_cache), web.auth.clone(), ingest);
        if let Err(e) = serve(listener, app, web.tls.clone(), done).await {
            warn!(error = %e, "http server");
        }
    });
    let result = consumer.join().map_err(|_| RunError::Other("consume thread panicked".into()))?;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// `http.web_config_file`, validated (an error stops the start).
fn load_web_config(cfg: &Config) -> Result<web::WebConfig, RunError> {
    let path = cfg.http.web_config_file.trim();
    if path.is_empty() {
        return Ok(web::WebConfig::open());
    }
    let w = web::WebConfig::load(std::path::Path::new(path)).map_err(|e| RunError::Other(e.to_string()))?;
    if w.auth.enabled() && w.tls.is_none() {
        warn!("basic_auth_users without tls_server_config: passwords cross the network in clear text");
    }
    Ok(w)
}

/// Serves `app` on `listener`, over TLS when `tls` is set, until `done`.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    done: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(done).await,
        Some(cfg) => {
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                done.await;
                h.graceful_shutdown(Some(Duration::from_secs(5)));
            });
            let std_listener = listener.into_std()?;
            axum_server::from_tcp_rustls(std_listener, axum_server::tls_rustls::RustlsConfig::from_config(cfg))?
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    }
}

pub(crate) async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
