//! Helpers of the tests that need the real Kafka broker (`KAFKA_BOOTSTRAP`):
//! loud SKIP outside CI, failure in CI.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// `KAFKA_BOOTSTRAP`, or `None` after a loud SKIP line (a panic in CI).
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

/// A name no other test run uses.
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
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
