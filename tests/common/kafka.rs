//! Helpers of the tests against the real Kafka broker (`tests/kafka.rs`,
//! `tests/handover.rs`): the broker address, topics, producing, the reference
//! (`salespulse replay`), and `salespulse run` processes to start, scrape,
//! kill and compare.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use salespulse::gen::{GenConfig, Generator};

use super::{diff, parse_exposition, sales_only};

pub const BIN: &str = env!("CARGO_BIN_EXE_salespulse");

pub fn bootstrap(test: &str) -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: KAFKA_BOOTSTRAP is not set in CI (scripts/test.sh starts the broker)");
            }
            eprintln!("\n*** SKIPPED {test}: KAFKA_BOOTSTRAP is not set; run `scripts/kafka.sh start` and export KAFKA_BOOTSTRAP=127.0.0.1:19092 ***\n");
            None
        }
    }
}

pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

pub fn create_topic(bs: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bs).create().expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let r = rt.block_on(admin.create_topics([&t], &AdminOptions::new())).expect("create topics");
    for x in r {
        x.expect("topic created");
    }
}

pub fn produce(bs: &str, topic: &str, lines: &[(String, String)]) {
    let records: Vec<(&[u8], &[u8])> = lines.iter().map(|(k, l)| (k.as_bytes(), l.as_bytes())).collect();
    produce_bytes(bs, topic, &records);
}

/// Produces (key, payload) records of any bytes (not only UTF-8 lines).
pub fn produce_bytes(bs: &str, topic: &str, records: &[(&[u8], &[u8])]) {
    let p: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bs).set("enable.idempotence", "true").create().expect("producer");
    for &(key, payload) in records {
        let mut rec = BaseRecord::to(topic).key(key).payload(payload);
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

/// A committed-only reader of `{topic}-dlq` (the dead-letter topic of
/// [`Engine::start`]), from its start.
pub fn dlq_reader(bs: &str, topic: &str) -> BaseConsumer {
    let dlq: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("dlq consumer");
    dlq.subscribe(&[&format!("{topic}-dlq")]).expect("subscribe");
    dlq
}

pub fn stream(cfg: GenConfig) -> Vec<(String, String)> {
    Generator::new(cfg).map(|e| (e.team_id, e.line)).collect()
}

/// `lines` followed by one `quota.set` per team at the stream's latest
/// `occurred_at`. With the event clock, each instance renders at the latest
/// event time of its own partitions; after these marks every partition's
/// clock is the stream's last instant, the clock `replay` renders at, so
/// several instances serving parts of the stream can be compared with it.
pub fn with_clock_marks(mut lines: Vec<(String, String)>) -> Vec<(String, String)> {
    let at = |l: &str| -> Option<(i64, String)> {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let s = v.get("occurred_at")?.as_str()?.to_string();
        Some((salespulse::time::parse_rfc3339(&s)?, s))
    };
    let Some((_, last)) = lines.iter().filter_map(|(_, l)| at(l)).max() else { return lines };
    let mut teams: Vec<String> = lines.iter().map(|(t, _)| t.clone()).collect();
    teams.sort();
    teams.dedup();
    let month = format!("{}-01", &last[..7]);
    for t in teams {
        let line = format!(
            r#"{{"event_id":"clock-mark-{t}","type":"quota.set","occurred_at":"{last}","team_id":"{t}","period":"month","period_start":"{month}","amount":1}}"#
        );
        lines.push((t, line));
    }
    lines
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
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
pub fn replay(dir: &Path, lines: &[(String, String)]) -> BTreeMap<String, f64> {
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

pub fn total(m: &BTreeMap<String, f64>, family: &str) -> f64 {
    m.iter().filter(|(k, _)| k.starts_with(&format!("{family}{{"))).map(|(_, v)| v).sum()
}

pub struct Engine {
    pub child: Option<Child>,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Extra environment of the process (test hooks).
    pub env: Vec<(String, String)>,
}

impl Engine {
    pub fn start(dir: &Path, name: &str, bs: &str, topic: &str, group: &str) -> Engine {
        Engine::start_with(dir, name, bs, topic, group, "", &[])
    }

    /// An engine named `name` (also its `kafka.instance_id`, so several in one
    /// group have their own transactional ids, and a restart keeps its own),
    /// with `extra` appended to its configuration file (TOML tables) and
    /// `env` in its environment.
    pub fn start_with(dir: &Path, name: &str, bs: &str, topic: &str, group: &str, extra: &str, env: &[(&str, &str)]) -> Engine {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[kafka]\nbrokers = \"{bs}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\ndlq_topic = \"{topic}-dlq\"\n\
                 checkpoint_topic = \"{topic}-ckpt\"\ncheckpoint_interval_s = 1\ninstance_id = \"{name}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
                 [clock]\nmode = \"event\"\n[log]\nlevel = \"info,rdkafka=warn\"\n{extra}"
            ),
        )
        .expect("write config");
        let log = dir.join(format!("{name}.log"));
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut e = Engine { child: None, port, config, log, env };
        e.spawn();
        e
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn engine");
        self.child = Some(child);
    }

    /// The lines of the log that contain any of `needles`.
    pub fn log_lines(&self, needles: &[&str]) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| needles.iter().any(|n| l.contains(n))).collect::<Vec<_>>().join("\n")
    }

    /// Lines of the log containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until the log has more than `seen` lines containing `needle`.
    pub fn wait_log(&self, needle: &str, seen: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log_count(needle) <= seen {
            assert!(Instant::now() < deadline, "no new {needle:?} in the log within {timeout:?}:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `salespulse_consumer_lag` by partition, from one scrape.
    pub fn lag(&self) -> Option<BTreeMap<String, f64>> {
        let m = self.scrape()?;
        Some(m.into_iter().filter(|(k, _)| k.starts_with("salespulse_consumer_lag{")).collect())
    }

    pub fn scrape(&self) -> Option<BTreeMap<String, f64>> {
        let (code, body) = http_get(self.port, "/metrics")?;
        (code == 200).then(|| parse_exposition(&body))
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
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

    pub fn log_tail(&self) -> String {
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
pub fn wait_equal(engines: &[&Engine], want: &BTreeMap<String, f64>, timeout: Duration) -> BTreeMap<String, f64> {
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

/// Waits until the engines together report lag 0 for every one of
/// `partitions` partitions of `topic`.
pub fn wait_lag_zero(engines: &[&Engine], topic: &str, partitions: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = BTreeMap::new();
    while Instant::now() < deadline {
        let mut lag: BTreeMap<String, f64> = BTreeMap::new();
        for e in engines {
            for (k, v) in e.lag().unwrap_or_default() {
                if k.contains(&format!("topic=\"{topic}\"")) {
                    lag.insert(k, v);
                }
            }
        }
        if lag.len() == partitions && lag.values().all(|v| *v == 0.0) {
            return;
        }
        last = lag;
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("lag did not reach 0 on all {partitions} partitions within {timeout:?}: {last:?}");
}

/// Every message of `topic` (partitions `0..partitions`) from the beginning,
/// as (key, value): reads until `want` messages arrived and then `settle`
/// more without a new one, or until `timeout`.
pub fn read_topic(bs: &str, topic: &str, partitions: i32, want: usize, settle: Duration, timeout: Duration) -> Vec<(String, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let k = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                let v = m.payload().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                out.push((k, v));
                quiet_since = Instant::now();
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {
                if out.len() >= want && quiet_since.elapsed() >= settle {
                    break;
                }
            }
        }
    }
    out
}
