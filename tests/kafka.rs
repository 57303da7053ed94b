//! `salespulse run` against a real Apache Kafka broker (`scripts/kafka.sh`,
//! started by `scripts/test.sh`; the tests read `KAFKA_BOOTSTRAP`). Outside
//! CI, without a broker, each test prints a loud SKIP and passes; in CI
//! (`CI` set) a missing broker fails them.
//!
//! Every test uses its own topics and group. The reference is always what
//! `salespulse replay` prints for the same lines.

mod common;

use std::time::{Duration, Instant};

use common::kafka::*;
use rdkafka::message::{Headers, Message};
use salespulse::gen::GenConfig;

fn small_stream(seed: u64, broken: f64) -> Vec<(String, String)> {
    stream(GenConfig { seed, teams: 4, reps_per_team: 5, days: 8, disorder_s: 60, redeliver_ratio: 0.02, broken_ratio: broken, ..GenConfig::default() })
}

#[test]
fn live_kpis_equal_replay_and_survive_graceful_restart() {
    let Some(bs) = bootstrap("live_kpis_equal_replay_and_survive_graceful_restart") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("eq");
    create_topic(&bs, &topic, 4);
    let lines = small_stream(11, 0.0);
    let want = replay(dir.path(), &lines);
    produce(&bs, &topic, &lines);
    let mut e = Engine::start(dir.path(), "a", &bs, &topic, &unique("g"));
    wait_equal(&[&e], &want, Duration::from_secs(180));
    // /readyz, self-metrics
    assert_eq!(http_get(e.port, "/readyz").map(|x| x.0), Some(200));
    assert_eq!(http_get(e.port, "/healthz").map(|x| x.0), Some(200));
    let m = e.scrape().expect("scrape");
    assert_eq!(m.get("salespulse_events_total{result=\"applied\"}").copied().unwrap_or(0.0) + m.get("salespulse_events_total{result=\"duplicate\"}").copied().unwrap_or(0.0), lines.len() as f64);
    // graceful shutdown: exit 0 with a final checkpoint; the restart shows the same KPIs before any new event
    assert_eq!(e.terminate(), Some(0), "{}", e.log_tail());
    e.spawn();
    wait_equal(&[&e], &want, Duration::from_secs(120));
    let m = e.scrape().expect("scrape");
    assert_eq!(m.get("salespulse_events_total{result=\"applied\"}").copied(), Some(0.0), "nothing re-applied after a graceful restart");
}

#[test]
fn crash_at_random_points_loses_and_doubles_nothing() {
    let Some(bs) = bootstrap("crash_at_random_points_loses_and_doubles_nothing") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("crash");
    create_topic(&bs, &topic, 4);
    let lines = small_stream(12, 0.0);
    let want = replay(dir.path(), &lines);
    let mut e = Engine::start(dir.path(), "a", &bs, &topic, &unique("g"));
    // produce in 6 chunks; kill -9 the engine after chunks 1, 3 and 4 at a pseudo-random delay
    let chunks: Vec<&[(String, String)]> = lines.chunks(lines.len() / 6 + 1).collect();
    let delays_ms = [700u64, 1900, 1300];
    let mut k = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        produce(&bs, &topic, chunk);
        if [1, 3, 4].contains(&i) {
            std::thread::sleep(Duration::from_millis(delays_ms[k]));
            k += 1;
            e.kill9();
            e.spawn();
        }
    }
    wait_equal(&[&e], &want, Duration::from_secs(240));
}

#[test]
fn rebalance_survivor_takes_over_exactly() {
    let Some(bs) = bootstrap("rebalance_survivor_takes_over_exactly") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("rebal");
    create_topic(&bs, &topic, 4);
    let lines = small_stream(13, 0.0);
    let want = replay(dir.path(), &lines);
    let group = unique("g");
    let a = Engine::start(dir.path(), "a", &bs, &topic, &group);
    let mut b = Engine::start(dir.path(), "b", &bs, &topic, &group);
    let half = lines.len() / 2;
    produce(&bs, &topic, &lines[..half]);
    // both instances share the partitions: wait until both serve some team
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let teams = |e: &Engine| e.scrape().map(|m| m.keys().filter(|k| k.starts_with("sales_events_total{")).count()).unwrap_or(0);
        if teams(&a) > 0 && teams(&b) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "both instances never got partitions:\n{}\n---\n{}", a.log_tail(), b.log_tail());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(b.terminate(), Some(0), "{}", b.log_tail());
    produce(&bs, &topic, &lines[half..]);
    wait_equal(&[&a], &want, Duration::from_secs(240));
}

#[test]
fn poison_messages_go_to_the_dead_letter_topic() {
    let Some(bs) = bootstrap("poison_messages_go_to_the_dead_letter_topic") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("poison");
    create_topic(&bs, &topic, 4);
    let lines = small_stream(14, 0.02);
    let want = replay(dir.path(), &lines);
    let rules = salespulse::event::ValidationRules::default();
    let bad: Vec<&String> = lines.iter().map(|x| &x.1).filter(|l| salespulse::event::parse_event(l.as_bytes(), &rules).is_err()).collect();
    assert!(bad.len() > 20, "the stream should hold broken lines");
    produce(&bs, &topic, &lines);
    let e = Engine::start(dir.path(), "a", &bs, &topic, &unique("g"));
    wait_equal(&[&e], &want, Duration::from_secs(180));
    // every bad line is in the DLQ (after the next checkpoint) with its reason and source
    let dlq = dlq_reader(&bs, &topic);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < bad.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = dlq.poll(Duration::from_millis(500)) {
            let h = m.headers().expect("headers");
            let header = |name: &str| h.iter().find(|x| x.key == name).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned());
            let reason = header("reason").expect("reason header");
            assert!(salespulse::event::InvalidReason::ALL.iter().any(|r| r.as_str() == reason), "{reason}");
            assert_eq!(header("source_topic").as_deref(), Some(topic.as_str()));
            assert!(header("source_partition").is_some() && header("source_offset").is_some());
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    let mut want_bad: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
    want_bad.sort();
    got.sort();
    assert_eq!(got.len(), want_bad.len(), "dead letters");
    assert_eq!(got, want_bad);
}

/// Fifty clients hammer `/metrics` (wrk, 50 connections) while the engine
/// drains a backlog: every response is a complete exposition, and the drain
/// still reaches replay's KPIs and zero lag (one render at a time, shared by
/// all of them, never stops the fold workers).
#[test]
fn fifty_scrapers_during_a_drain_get_complete_responses() {
    let Some(bs) = bootstrap("fifty_scrapers_during_a_drain_get_complete_responses") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("scrapers");
    create_topic(&bs, &topic, 4);
    let lines = stream(GenConfig { seed: 15, teams: 20, reps_per_team: 10, days: 24, ..GenConfig::default() });
    let want = replay(dir.path(), &lines);
    produce(&bs, &topic, &lines);
    let e = Engine::start(dir.path(), "a", &bs, &topic, &unique("g"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(e.port, "/healthz").map(|x| x.0) != Some(200) {
        assert!(Instant::now() < deadline, "engine not serving: {}", e.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wrk/complete-metrics.lua");
    let wrk = std::process::Command::new("wrk")
        .args(["-t", "2", "-c", "50", "-d", "600s", "--timeout", "30s", "-s", script])
        .arg(format!("http://127.0.0.1:{}/metrics", e.port))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wrk (scripts/install-deps.sh installs it)");
    wait_equal(&[&e], &want, Duration::from_secs(240));
    wait_lag_zero(&[&e], &topic, 4, Duration::from_secs(60));
    let _ = std::process::Command::new("kill").args(["-INT", &wrk.id().to_string()]).status();
    let out = wrk.wait_with_output().expect("wrk output");
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |k: &str| -> u64 {
        text.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}="))).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
    };
    assert!(count("complete") > 50 && count("complete") != u64::MAX, "too few responses:\n{text}");
    assert_eq!(count("incomplete"), 0, "incomplete responses:\n{text}");
    assert!(!text.contains("Non-2xx") && !text.contains("Socket errors"), "wrk saw errors:\n{text}");
    eprintln!("{text}");
}
