//! Bad input end to end: bytes that are not UTF-8, JSON that is not an
//! object, nesting too deep for a parser's stack. Each is `json`, counted,
//! named in the user's words, dead-lettered with its bytes intact, and never
//! stops `replay` or `run`. Also the inputs kept from fuzzing
//! (`tests/fixtures/fuzz/`, run through the fuzz targets' own checks in
//! `fuzz/src/lib.rs`) and the seeds the fuzz script starts from.
//!
//! The Kafka test needs `KAFKA_BOOTSTRAP` (see `tests/kafka.rs`); without it
//! outside CI it prints a SKIP and passes.

mod common;

#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::kafka::*;
use rdkafka::message::{Headers, Message};

/// A `quote.sent` of rep `r` in team `t` with a two-character `event_id`,
/// without its closing brace: 100 bytes, then `tail`.
fn line(id: &str, tail: &[u8]) -> Vec<u8> {
    assert_eq!(id.len(), 2);
    let head = format!(r#"{{"event_id":"{id}","type":"quote.sent","occurred_at":"2026-11-18T09:14:00Z","team_id":"t","rep_id":"r""#);
    assert_eq!(head.len(), 100);
    [head.as_bytes(), tail].concat()
}

/// The bad lines and the `json` detail each must get (offsets counted by
/// hand from the 100 bytes of [`line`]'s head).
fn bad_lines() -> Vec<(Vec<u8>, String)> {
    vec![
        // the issue's line: an ignored field holding Latin-1 `é`
        (line("b1", b",\"note\":\"caf\xe9\"}"), "invalid UTF-8 at byte offset 112".into()),
        // in a key, in an escaped string (serde's shape), in whitespace
        (line("b2", b",\"no\xe9te\":1}"), "invalid UTF-8 at byte offset 104".into()),
        (line("b3", b",\"note\":\"\\n\xff\"}"), "invalid UTF-8 at byte offset 111".into()),
        (line("b4", b",\xa0\"x\":1}"), "invalid UTF-8 at byte offset 101".into()),
        (b"[1,2,3]".to_vec(), "expected a JSON object, found an array".into()),
        (b"42".to_vec(), "expected a JSON object, found a number".into()),
        ([b"[".repeat(5000), b"]".repeat(5000)].concat(), "expected a JSON object, found an array".into()),
        (line("b5", &[&b",\"x\":"[..], &b"[".repeat(30_000), &b"]".repeat(30_000), b"}"].concat()), "nested too deeply (more than 127 levels)".into()),
    ]
}

fn good(id: &str) -> Vec<u8> {
    line(id, b"}")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.expect("entry").path()).collect();
    v.sort();
    v
}

fn fixtures(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(sub)
}

/// Every input kept from fuzzing still passes the target's checks.
#[test]
fn fuzz_regressions_pass_the_fuzz_checks() {
    let events = files(&fixtures("fuzz/event_parser"));
    let configs = files(&fixtures("fuzz/config_loader"));
    assert!(!events.is_empty() && !configs.is_empty());
    for f in events {
        let bytes = std::fs::read(&f).expect("read");
        fuzz_checks::event_parser(&bytes);
    }
    for f in configs {
        let bytes = std::fs::read(&f).expect("read");
        fuzz_checks::config_loader(&bytes);
    }
}

/// The checks hold on the seeds `scripts/fuzz.sh` starts from (and are not
/// vacuous: the contract's examples are accepted, the bad lines are not).
#[test]
fn fuzz_checks_hold_on_the_seed_corpus() {
    let rules = salespulse::event::ValidationRules::default();
    let examples = std::fs::read_to_string(fixtures("contract/examples.ndjson")).expect("examples");
    for line in examples.lines() {
        fuzz_checks::event_parser(line.as_bytes());
        assert!(salespulse::event::parse_event(line.as_bytes(), &rules).is_ok(), "{line}");
    }
    for (line, _) in bad_lines() {
        fuzz_checks::event_parser(&line);
    }
    for e in salespulse::gen::Generator::new(salespulse::gen::GenConfig { days: 2, broken_ratio: 0.05, ..Default::default() }) {
        fuzz_checks::event_parser(e.line.as_bytes());
    }
    let configs: Vec<PathBuf> =
        files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).into_iter().filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    assert!(!configs.is_empty());
    for f in configs {
        let bytes = std::fs::read(&f).expect("read");
        fuzz_checks::config_loader(&bytes);
    }
}

/// `salespulse replay` names each bad line's problem, counts it and goes on.
#[test]
fn replay_names_and_counts_bad_bytes_and_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = bad_lines();
    let mut file = good("g1");
    file.push(b'\n');
    for (line, _) in &bad {
        file.extend_from_slice(line);
        file.push(b'\n');
    }
    file.extend_from_slice(&good("g2"));
    file.push(b'\n');
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, file).expect("write");
    let out = Command::new(BIN).args(["replay", "--now", "2026-11-18T12:00:00Z"]).arg(&path).output().expect("replay");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for (i, (_, detail)) in bad.iter().enumerate() {
        let want = format!("salespulse: line {}: invalid event: json: {detail}\n", i + 2);
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
    assert!(err.contains(&format!("lines={} applied=2 duplicate=0 late=0 invalid={}", bad.len() + 2, bad.len())), "{err}");
}

/// In `run`, each bad message goes to the dead-letter topic with its bytes
/// unchanged, reason `json` and the detail in its headers, and the
/// partition goes on to apply the good messages after it.
#[test]
fn bad_bytes_are_dead_lettered_with_their_detail() {
    let Some(bs) = bootstrap("bad_bytes_are_dead_lettered_with_their_detail") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("badbytes");
    create_topic(&bs, &topic, 1);
    let bad = bad_lines();
    let (g1, g2) = (good("g1"), good("g2"));
    let mut records: Vec<(&[u8], &[u8])> = vec![(b"t", &g1)];
    records.extend(bad.iter().map(|(l, _)| (&b"t"[..], l.as_slice())));
    records.push((b"t", &g2));
    produce_bytes(&bs, &topic, &records);
    let e = Engine::start(dir.path(), "a", &bs, &topic, &unique("g"));
    // both good events applied, after the bad ones
    let key = common::canonical("sales_quotes_sent", "team=\"t\",window=\"1h\"");
    let deadline = Instant::now() + Duration::from_secs(120);
    while e.scrape().and_then(|m| m.get(&key).copied()) != Some(2.0) {
        assert!(Instant::now() < deadline, "good events not applied: {}", e.log_tail());
        std::thread::sleep(Duration::from_millis(300));
    }
    let dlq = dlq_reader(&bs, &topic);
    let mut got: Vec<(Vec<u8>, String, String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < bad.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = dlq.poll(Duration::from_millis(500)) {
            let h = m.headers().expect("headers");
            let header = |name: &str| h.iter().find(|x| x.key == name).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            got.push((m.payload().unwrap_or_default().to_vec(), header("reason"), header("detail"), header("source_offset")));
        }
    }
    assert_eq!(got.len(), bad.len(), "dead letters");
    got.sort_by_key(|g| g.3.parse::<i64>().unwrap_or(-1));
    for (i, ((payload, reason, detail, offset), (line, want))) in got.iter().zip(&bad).enumerate() {
        assert_eq!(payload, line, "dead letter {i}: the bytes unchanged");
        assert_eq!(reason, "json");
        assert_eq!(detail, want);
        assert_eq!(offset, &(i + 1).to_string());
    }
}
