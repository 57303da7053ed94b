//! Handover between instances of one consumer group, against the real broker:
//! a member dies (`kill -9`) *inside* a checkpoint transaction, inside a
//! rebalance's revoke, inside a restore; a member joins mid-stream; a killed
//! member comes back at once. Every time the survivors' `/metrics` must equal
//! `salespulse replay` of the whole stream, and the lag must reach 0.
//!
//! The kills land inside those moments through the engine's test hook
//! (`SALESPULSE_TEST_PAUSE`, `src/run/faults.rs`): the process pauses there and
//! logs `test hook: pausing`; the test waits for that line and kills it.
//!
//! Consumers use a 6 s session timeout (the broker's minimum) so a dead
//! member's partitions move quickly: the survivor then restores while the
//! dead member's checkpoint transaction is still open, the case that used to
//! lose data. Skips loudly without `KAFKA_BOOTSTRAP` outside CI (like
//! `tests/kafka.rs`).

mod common;

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::kafka::*;
use salespulse::gen::GenConfig;

const FAST_SESSION: &str = "[kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n";
const PAUSE_IN_CHECKPOINT: (&str, &str) = ("SALESPULSE_TEST_PAUSE", "checkpoint=2500");

fn hook(point: &str) -> String {
    format!("test hook: pausing point=\"{point}\"")
}

/// 8 teams (so every one of the 4 partitions has some), 4 reps each, 10 days,
/// with disorder and re-deliveries, and clock marks at the end (several
/// instances' sums are compared with `replay`).
fn handover_stream(seed: u64) -> Vec<(String, String)> {
    with_clock_marks(stream(GenConfig {
        seed,
        teams: 8,
        reps_per_team: 4,
        days: 10,
        disorder_s: 120,
        redeliver_ratio: 0.02,
        ..GenConfig::default()
    }))
}

/// Produces `lines` in `slices` slices, one every `every`, on a thread.
fn produce_slowly(bs: &str, topic: &str, lines: &[(String, String)], slices: usize, every: Duration) -> JoinHandle<()> {
    let (bs, topic, lines) = (bs.to_string(), topic.to_string(), lines.to_vec());
    std::thread::spawn(move || {
        for chunk in lines.chunks(lines.len() / slices + 1) {
            produce(&bs, &topic, chunk);
            std::thread::sleep(every);
        }
    })
}

struct Setup {
    dir: tempfile::TempDir,
    bs: String,
    topic: String,
    group: String,
    lines: Vec<(String, String)>,
    want: BTreeMap<String, f64>,
}

fn setup(test: &str, seed: u64) -> Option<Setup> {
    let bs = bootstrap(test)?;
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("handover");
    create_topic(&bs, &topic, 4);
    let lines = handover_stream(seed);
    let want = replay(dir.path(), &lines);
    Some(Setup { dir, bs, topic, group: unique("g"), lines, want })
}

impl Setup {
    fn engine(&self, name: &str, extra: &str, env: &[(&str, &str)]) -> Engine {
        Engine::start_with(self.dir.path(), name, &self.bs, &self.topic, &self.group, &format!("{FAST_SESSION}{extra}"), env)
    }
    /// With the default session timeout (45 s).
    fn engine_default_session(&self, name: &str, env: &[(&str, &str)]) -> Engine {
        Engine::start_with(self.dir.path(), name, &self.bs, &self.topic, &self.group, "", env)
    }
}

/// Waits until every engine serves at least one team.
fn wait_all_serve(engines: &[&Engine]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let serves = |e: &Engine| e.scrape().is_some_and(|m| m.keys().any(|k| k.starts_with("sales_events_total{")));
    while !engines.iter().all(|e| serves(e)) {
        let logs: Vec<String> = engines.iter().map(|e| e.log_tail()).collect();
        assert!(Instant::now() < deadline, "not every instance got partitions:\n{}", logs.join("\n---\n"));
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The issue's scenario: two instances, the stream produced while they run,
/// one killed inside a checkpoint transaction. The survivor restores its own
/// partitions and the dead one's while that transaction is still open.
#[test]
fn kill_inside_a_checkpoint_transaction_survivor_alone_is_exact() {
    let Some(s) = setup("kill_inside_a_checkpoint_transaction_survivor_alone_is_exact", 21) else { return };
    let mut a = s.engine("a", "", &[PAUSE_IN_CHECKPOINT]);
    let b = s.engine("b", "", &[]);
    let producer = produce_slowly(&s.bs, &s.topic, &s.lines, 10, Duration::from_millis(700));
    wait_all_serve(&[&a, &b]);
    // Kill `a` inside a checkpoint transaction that began after `b` has
    // committed checkpoints of its own partitions.
    let seen = a.log_count(&hook("checkpoint"));
    a.wait_log(&hook("checkpoint"), seen, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    a.kill9();
    producer.join().expect("producer");
    wait_equal(&[&b], &s.want, Duration::from_secs(240));
    wait_lag_zero(&[&b], &s.topic, 4, Duration::from_secs(60));
    eprintln!("survivor's restores:\n{}", b.log_lines(&["restor", "assigned", "open transaction"]));
}

/// The dead member's transaction outlives the survivor's restore wait (its
/// `transaction.timeout.ms` is 60 s, librdkafka's default): the survivor
/// restores from the newest *visible* checkpoints and must still be exact,
/// because every partition resumes at the offset of the state it starts from.
#[test]
fn zombie_transaction_outliving_the_restore_wait_is_still_exact() {
    let Some(s) = setup("zombie_transaction_outliving_the_restore_wait_is_still_exact", 22) else { return };
    let mut a = s.engine("a", "[kafka.producer_properties]\n\"transaction.timeout.ms\" = \"60000\"\n", &[PAUSE_IN_CHECKPOINT]);
    let b = s.engine("b", "", &[]);
    let producer = produce_slowly(&s.bs, &s.topic, &s.lines, 10, Duration::from_millis(700));
    wait_all_serve(&[&a, &b]);
    let seen = a.log_count(&hook("checkpoint"));
    a.wait_log(&hook("checkpoint"), seen, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    a.kill9();
    producer.join().expect("producer");
    wait_equal(&[&b], &s.want, Duration::from_secs(240));
    wait_lag_zero(&[&b], &s.topic, 4, Duration::from_secs(60));
    assert!(b.log_count("still open after the restore wait") > 0, "the restore should have hit its wait bound:\n{}", b.log_tail());
}

/// A member killed inside a checkpoint transaction is restarted at once,
/// while the survivor still holds (or has just taken) its partitions. The
/// restarted process has the same instance id: its producer fences the dead
/// one's open transaction as it starts.
#[test]
fn killed_instance_restarted_at_once_is_exact() {
    let Some(s) = setup("killed_instance_restarted_at_once_is_exact", 23) else { return };
    let mut a = s.engine("a", "", &[PAUSE_IN_CHECKPOINT]);
    let b = s.engine("b", "", &[]);
    let producer = produce_slowly(&s.bs, &s.topic, &s.lines, 10, Duration::from_millis(700));
    wait_all_serve(&[&a, &b]);
    let seen = a.log_count(&hook("checkpoint"));
    a.wait_log(&hook("checkpoint"), seen, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    a.kill9();
    a.env.clear(); // the restarted process checkpoints without pauses
    a.spawn();
    producer.join().expect("producer");
    wait_equal(&[&a, &b], &s.want, Duration::from_secs(240));
    wait_lag_zero(&[&a, &b], &s.topic, 4, Duration::from_secs(60));
}

/// Static membership (`group.instance.id` = `kafka.instance_id`): a member
/// killed inside a checkpoint and restarted at once gets its own partitions
/// back without a rebalance: the survivor is never revoked, and nobody waits
/// out the dead member's 45 s session. Still exact.
#[test]
fn static_member_restarted_at_once_gets_its_partitions_back_without_a_rebalance() {
    let Some(s) = setup("static_member_restarted_at_once_gets_its_partitions_back_without_a_rebalance", 25) else { return };
    let mut a = s.engine_default_session("a", &[PAUSE_IN_CHECKPOINT]);
    let b = s.engine_default_session("b", &[]);
    let producer = produce_slowly(&s.bs, &s.topic, &s.lines, 10, Duration::from_millis(700));
    wait_all_serve(&[&a, &b]);
    // Both have settled into one assignment: wait until a checkpoint of `a`
    // begins, then count `b`'s revocations from here on.
    let seen = a.log_count(&hook("checkpoint"));
    a.wait_log(&hook("checkpoint"), seen, Duration::from_secs(60));
    let b_revokes = b.log_count("partitions revoked");
    std::thread::sleep(Duration::from_millis(300));
    a.kill9();
    let killed = Instant::now();
    a.env.clear();
    let consuming = a.log_count("consuming partitions=");
    a.spawn();
    a.wait_log("consuming partitions=", consuming, Duration::from_secs(40));
    let back = killed.elapsed();
    producer.join().expect("producer");
    wait_equal(&[&a, &b], &s.want, Duration::from_secs(240));
    wait_lag_zero(&[&a, &b], &s.topic, 4, Duration::from_secs(60));
    assert_eq!(b.log_count("partitions revoked"), b_revokes, "the survivor was revoked: no static membership?\n{}", b.log_tail());
    eprintln!("restarted member consuming its partitions again {back:?} after the kill");
}

/// A third member joins mid-stream; the rebalance it causes kills one member
/// inside its revoke callback, and the newcomer is killed inside its first
/// restore and restarted. The two that are left must be exact.
#[test]
fn joins_and_kills_inside_rebalance_and_restore_are_exact() {
    let Some(s) = setup("joins_and_kills_inside_rebalance_and_restore_are_exact", 24) else { return };
    let a = s.engine("a", "", &[]);
    let mut b = s.engine("b", "", &[("SALESPULSE_TEST_PAUSE", "revoke=4000")]);
    let producer = produce_slowly(&s.bs, &s.topic, &s.lines, 12, Duration::from_millis(700));
    wait_all_serve(&[&a, &b]);
    let revokes = b.log_count(&hook("revoke"));
    let mut c = s.engine("c", "", &[("SALESPULSE_TEST_PAUSE", "restore=4000")]);
    b.wait_log(&hook("revoke"), revokes, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(200));
    b.kill9();
    c.wait_log(&hook("restore"), 0, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(200));
    c.kill9();
    c.env.clear();
    c.spawn();
    producer.join().expect("producer");
    wait_equal(&[&a, &c], &s.want, Duration::from_secs(240));
    wait_lag_zero(&[&a, &c], &s.topic, 4, Duration::from_secs(60));
}

/// The issue's scenario at full size, repeated (not in CI: about 2 minutes a
/// run). `cargo test --release --test handover -- --ignored --nocapture soak`,
/// `HANDOVER_SOAK_RUNS=N` (default 3). Two instances, a 95-day stream of 120
/// reps produced in slices of 25 k every 2 s, `kill -9` of the instance with
/// the checkpoint pause inside a checkpoint transaction after the 6th slice;
/// odd runs restart it at once, even runs leave the survivor alone.
#[test]
#[ignore]
fn soak_issue_scenario_repeated() {
    let Some(bs) = bootstrap("soak_issue_scenario_repeated") else { return };
    let runs: usize = std::env::var("HANDOVER_SOAK_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    // 2026-08-24 (a Monday) + 95 days ends before any day this runs: no event
    // is `future`, which would depend on when replay and the engines ran.
    let lines = with_clock_marks(stream(GenConfig {
        seed: 95,
        teams: 10,
        reps_per_team: 12,
        days: 95,
        start_ms: 1_787_529_600_000,
        ..GenConfig::default()
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let want = replay(dir.path(), &lines);
    eprintln!("soak: {} events, {} series", lines.len(), want.len());
    for run in 0..runs {
        let t0 = Instant::now();
        let s = Setup { dir: tempfile::tempdir().expect("tempdir"), bs: bs.clone(), topic: unique("soak"), group: unique("g"), lines: Vec::new(), want: BTreeMap::new() };
        create_topic(&s.bs, &s.topic, 4);
        let mut a = s.engine("a", "", &[PAUSE_IN_CHECKPOINT]);
        let b = s.engine("b", "", &[]);
        let slices: Vec<&[(String, String)]> = lines.chunks(25_000).collect();
        for (i, chunk) in slices.iter().enumerate() {
            produce(&s.bs, &s.topic, chunk);
            if i == 5 {
                let seen = a.log_count(&hook("checkpoint"));
                a.wait_log(&hook("checkpoint"), seen, Duration::from_secs(60));
                std::thread::sleep(Duration::from_millis(300));
                a.kill9();
                if run % 2 == 1 {
                    a.env.clear();
                    a.spawn();
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        let engines: Vec<&Engine> = if run % 2 == 1 { vec![&a, &b] } else { vec![&b] };
        wait_equal(&engines, &want, Duration::from_secs(600));
        wait_lag_zero(&engines, &s.topic, 4, Duration::from_secs(120));
        eprintln!("soak run {} ({}): every series equal to replay, lag 0, {:?}", run + 1, if run % 2 == 1 { "restarted" } else { "survivor alone" }, t0.elapsed());
    }
}

/// Another consumer joins the group with this member's `group.instance.id`
/// (what a broker that lost the member's session also makes it look like):
/// librdkafka's consumer is fenced, fatally; the engine rejoins with a new
/// consumer, keeps its state in memory and stays exact.
#[test]
fn a_fenced_member_rejoins_and_stays_exact() {
    let Some(s) = setup("a_fenced_member_rejoins_and_stays_exact", 26) else { return };
    let a = s.engine("a", "", &[]);
    let producer = produce_slowly(&s.bs, &s.topic, &s.lines, 8, Duration::from_millis(700));
    wait_all_serve(&[&a]);
    {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let intruder: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &s.bs)
            .set("group.id", &s.group)
            .set("group.instance.id", "a")
            .set("session.timeout.ms", "6000")
            .create()
            .expect("consumer");
        intruder.subscribe(&[&s.topic]).expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(60);
        while a.log_count("consumer fenced: rejoining") == 0 {
            assert!(Instant::now() < deadline, "the engine was never fenced:\n{}", a.log_lines(&["enced", "atal", "rebalanc", "assigned", "revoked"]));
            let _ = intruder.poll(Duration::from_millis(100));
        }
    }
    producer.join().expect("producer");
    wait_equal(&[&a], &s.want, Duration::from_secs(240));
    wait_lag_zero(&[&a], &s.topic, 4, Duration::from_secs(60));
}

/// Two live engines configured with the same `instance_id` keep fencing
/// each other: one of them stops with an error that names the id.
#[test]
fn two_live_instances_with_one_instance_id_stop_with_the_reason() {
    let Some(s) = setup("two_live_instances_with_one_instance_id_stop_with_the_reason", 27) else { return };
    let dir = s.dir.path();
    let mut a = Engine::start_with(dir, "a", &s.bs, &s.topic, &s.group, &format!("{FAST_SESSION}"), &[]);
    let b_cfg = format!("{FAST_SESSION}");
    let mut b = Engine::start_with(dir, "b", &s.bs, &s.topic, &s.group, &b_cfg, &[]);
    // Give b a's instance id (its config file names it "b").
    b.kill9();
    let text = std::fs::read_to_string(&b.config).expect("config").replace("instance_id = \"b\"", "instance_id = \"a\"");
    std::fs::write(&b.config, text).expect("config");
    b.spawn();
    produce(&s.bs, &s.topic, &s.lines);
    let deadline = Instant::now() + Duration::from_secs(180);
    let exited = loop {
        let a_done = a.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        let b_done = b.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if let Some(st) = a_done {
            break (st, a.log_tail());
        }
        if let Some(st) = b_done {
            break (st, b.log_tail());
        }
        assert!(Instant::now() < deadline, "neither stopped:\n{}\n---\n{}", a.log_tail(), b.log_tail());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!exited.0.success(), "the fenced one exits with an error");
    assert!(exited.1.contains("kafka.instance_id \"a\""), "the error names the shared instance id:\n{}", exited.1);
}
