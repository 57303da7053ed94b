//! `salespulse run` against a real Apache Kafka broker (`scripts/kafka.sh`,
//! started by `scripts/test.sh`; the tests read `KAFKA_BOOTSTRAP`). Outside
//! CI, without a broker, each test prints a loud SKIP and passes; in CI
//! (`CI` set) a missing broker fails them.
//!
//! Every test uses its own topics and group. The reference is always what
//! `salespulse replay` prints for the same lines.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::{bootstrap, create_topic, free_port, unique};
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use salespulse::gen::{GenConfig, Generator};

const BIN: &str = env!("CARGO_BIN_EXE_salespulse");

fn produce(bs: &str, topic: &str, lines: &[(String, String)]) {
    let p: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bs).set("enable.idempotence", "true").create().expect("producer");
    for (key, line) in lines {
        let mut rec = BaseRecord::to(topic).key(key.as_bytes()).payload(line.as_bytes());
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

fn stream(cfg: GenConfig) -> Vec<(String, String)> {
    Generator::new(cfg).map(|e| (e.team_id, e.line)).collect()
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    Some((code, body))
}

/// The reference: `salespulse replay` of the lines.
fn replay(dir: &Path, lines: &[(String, String)]) -> BTreeMap<String, f64> {
    let file = dir.join("events.ndjson");
    let mut text = String::new();
    for (_, l) in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&file, text).expect("write events");
    let out = Command::new(BIN).args(["replay", "-q"]).arg(&file).output().expect("replay");
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    sales_only(&parse_exposition(&String::from_utf8_lossy(&out.stdout)))
}

fn total(m: &BTreeMap<String, f64>, family: &str) -> f64 {
    m.iter().filter(|(k, _)| k.starts_with(&format!("{family}{{"))).map(|(_, v)| v).sum()
}

struct Engine {
    child: Option<Child>,
    port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl Engine {
    fn start(dir: &Path, name: &str, bs: &str, topic: &str, group: &str) -> Engine {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[kafka]\nbrokers = \"{bs}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\ndlq_topic = \"{topic}-dlq\"\n\
                 checkpoint_topic = \"{topic}-ckpt\"\ncheckpoint_interval_s = 1\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
                 [clock]\nmode = \"event\"\n[log]\nlevel = \"info,rdkafka=warn\"\n"
            ),
        )
        .expect("write config");
        let log = dir.join(format!("{name}.log"));
        let mut e = Engine { child: None, port, config, log };
        e.spawn();
        e
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn engine");
        self.child = Some(child);
    }

    fn scrape(&self) -> Option<BTreeMap<String, f64>> {
        let (code, body) = http_get(self.port, "/metrics")?;
        (code == 200).then(|| parse_exposition(&body))
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status code.
    fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        t.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls the engines until the sum of their `sales_*` series equals `want`
/// (every applied event counted), then returns the merged `sales_*` map.
fn wait_equal(engines: &[&Engine], want: &BTreeMap<String, f64>, timeout: Duration) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + timeout;
    let want_events = total(want, "sales_events_total");
    let mut last = BTreeMap::new();
    while Instant::now() < deadline {
        let mut merged: BTreeMap<String, f64> = BTreeMap::new();
        let mut ok = true;
        for e in engines {
            match e.scrape() {
                Some(m) => {
                    for (k, v) in sales_only(&m) {
                        if k.starts_with("sales_benchmark{") {
                            merged.insert(k, v);
                        } else {
                            *merged.entry(k).or_insert(0.0) += v;
                        }
                    }
                }
                None => ok = false,
            }
        }
        if ok && total(&merged, "sales_events_total") == want_events && diff(want, &merged).is_empty() {
            return merged;
        }
        last = merged;
        std::thread::sleep(Duration::from_millis(500));
    }
    let d = diff(want, &last);
    let logs: Vec<String> = engines.iter().map(|e| e.log_tail()).collect();
    panic!(
        "engines did not reach replay's KPIs within {timeout:?}: events {} of {want_events}; {} differences, first: {:?}\nlogs:\n{}",
        total(&last, "sales_events_total"),
        d.len(),
        d.iter().take(10).collect::<Vec<_>>(),
        logs.join("\n-----\n")
    );
}

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
    let dlq: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("dlq consumer");
    dlq.subscribe(&[&format!("{topic}-dlq")]).expect("subscribe");
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
