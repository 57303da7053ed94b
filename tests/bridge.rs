//! `salespulse bridge` against the real Kafka broker (`KAFKA_BOOTSTRAP`,
//! gated like `tests/kafka.rs`: a loud SKIP outside CI, a failure in CI),
//! plus the presets' fixtures and the README's demo snippet, which need no
//! broker.
//!
//! What reaches Kafka is always read back from the topic: the bridge's `202`
//! is only believed when the topic holds exactly the accepted events.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::kafka::{bootstrap, create_topic, free_port, read_topic, unique};
use salespulse::bridge::auth::{sign_close, sign_hubspot, WebhookSecret};
use salespulse::bridge::mapping::{Lookup, Mapping};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_salespulse");
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CLOSE_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const HUBSPOT_SECRET: &str = "hubspot-app-secret";
const HUBSPOT_TOKEN: &str = "pat-na1-test";

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn rfc3339(unix_s: i64) -> String {
    salespulse::time::format_rfc3339(unix_s * 1_000_000)
}

/// One HTTP/1.1 request; (status, response headers, body).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    // A refused body may be answered before it is read whole.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn signed(body: &[u8], id: &str, ts: i64, secret: &str) -> Vec<(&'static str, String)> {
    let s = WebhookSecret::parse(secret).expect("secret");
    vec![("webhook-id", id.to_string()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", s.sign(id, ts, body))]
}

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

const JSON_CT: (&str, &str) = ("Content-Type", "application/json");

fn with_ct(mut h: Vec<(&'static str, String)>, ct: &str) -> Vec<(&'static str, String)> {
    h.push(("Content-Type", ct.to_string()));
    h
}

/// A running `salespulse bridge`.
struct BridgeProc {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl BridgeProc {
    fn start(dir: &Path, name: &str, config: &str) -> BridgeProc {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, config).expect("config");
        let port = config
            .lines()
            .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
            .and_then(|r| r.trim_end_matches('"').parse().ok())
            .expect("a listen line in the test config");
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["bridge", "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn bridge");
        let b = BridgeProc { child: Some(child), port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && http(port, "GET", "/healthz", &[], b"").0 == 200 {
                return b;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("bridge did not come up:\n{}", b.log_text());
    }

    fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String, String) {
        http(self.port, "POST", path, headers, body)
    }

    fn metric(&self, series: &str) -> f64 {
        let (_, _, body) = http(self.port, "GET", "/metrics", &[], b"");
        body.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) -> Option<i32> {
        let c = self.child.as_ref()?;
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        self.wait_exit()
    }

    /// The exit status, once it exited (within 30 s).
    fn wait_exit(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        None
    }
}

impl Drop for BridgeProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn base_config(bs: &str, topic: &str, port: u16, extra: &str) -> String {
    format!(
        "[kafka]\nbrokers = \"{bs}\"\ntopics = [\"{topic}\"]\n[log]\nlevel = \"info,rdkafka=warn\"\n\
         [bridge]\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"test-token\"]\nwebhook_secrets = [\"{SECRET}\"]\nproduce_timeout = \"5s\"\n{extra}"
    )
}

fn call(id: &str, at: &str) -> String {
    format!(r#"{{"event_id":"{id}","type":"call.logged","occurred_at":"{at}","team_id":"t1","rep_id":"ana","outcome":"meaningful"}}"#)
}

/// A batch with every reason the bridge decides: exactly the valid events
/// reach the topic, keyed by team; indexes and reasons are reported.
#[test]
fn a_batch_with_every_invalid_reason_produces_exactly_the_valid_ones() {
    let Some(bs) = bootstrap("a_batch_with_every_invalid_reason_produces_exactly_the_valid_ones") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("bridge-batch");
    create_topic(&bs, &topic, 3);
    let b = BridgeProc::start(dir.path(), "b", &base_config(&bs, &topic, free_port(), "max_body_bytes = 400000\n"));
    let at = rfc3339(now_s() - 3600);
    let future = rfc3339(now_s() + 3600);
    let items = [
        call("ok-1", &at),
        r#"{"event_id":"m","type":"deal.won","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1","rep_id":"ana","deal_id":"D"}"#.to_string(),
        r#"{"event_id":"b","type":"call.logged","occurred_at":"2026-11-20T11:00:00","team_id":"t1","rep_id":"ana","outcome":"meaningful"}"#.to_string(),
        r#"{"event_id":"u","type":"task.created","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1"}"#.to_string(),
        r#"{"event_id":"c","type":"deal.won","occurred_at":"2026-11-20T11:00:00Z","team_id":"t1","rep_id":"ana","deal_id":"D","amount":5,"currency":"EUR"}"#.to_string(),
        call("f", &future),
        format!(r#"{{"event_id":"big","type":"call.logged","occurred_at":"{at}","team_id":"t1","rep_id":"ana","outcome":"meaningful","pad":"{}"}}"#, "x".repeat(66_000)),
        "[1]".to_string(),
        call("ok-2", &at).replace("\"t1\"", "\"t2\""),
    ];
    let body = format!("[{}]", items.join(","));
    let (code, _, text) = b.post("/v1/events", &[bearer("test-token"), (JSON_CT.0, JSON_CT.1.into())], body.as_bytes());
    assert_eq!(code, 202, "{text}");
    let a = json_of(&text);
    assert_eq!(a["accepted"], 2, "{a}");
    let got: Vec<(u64, String)> = a["rejected"].as_array().unwrap().iter().map(|r| (r["index"].as_u64().unwrap(), r["reason"].as_str().unwrap().to_string())).collect();
    let want: Vec<(u64, String)> = [(1, "missing_field"), (2, "bad_field"), (3, "unknown_type"), (4, "currency"), (5, "future"), (6, "too_large"), (7, "json")]
        .into_iter()
        .map(|(i, r)| (i, r.to_string()))
        .collect();
    assert_eq!(got, want);

    // NDJSON, signed: a line of broken UTF-8 is one json rejection
    let mut nd = call("ok-3", &at).into_bytes();
    nd.extend_from_slice(b"\n{\"event_id\":\"\xff\xfe\"}\n");
    let (code, _, text) = b.post("/v1/events", &with_ct(signed(&nd, "msg_1", now_s(), SECRET), "application/x-ndjson"), &nd);
    assert_eq!(code, 202, "{text}");
    assert_eq!(json_of(&text), json!({"accepted": 1, "rejected": [{"index": 1, "reason": "json", "detail": json_of(&text)["rejected"][0]["detail"]}]}));

    // 415 and 413: nothing produced
    let (code, _, _) = b.post("/v1/events", &[bearer("test-token"), ("Content-Type", "text/plain".into())], call("no-1", &at).as_bytes());
    assert_eq!(code, 415);
    let huge = format!("[{}]", vec![call("no-2", &at); 3000].join(","));
    assert!(huge.len() > 400_000);
    let (code, _, _) = b.post("/v1/events", &[bearer("test-token"), (JSON_CT.0, JSON_CT.1.into())], huge.as_bytes());
    assert_eq!(code, 413);

    let msgs = read_topic(&bs, &topic, 3, 3, Duration::from_secs(3), Duration::from_secs(60));
    let mut got: Vec<(String, String)> = msgs;
    got.sort();
    let mut want = vec![("t1".to_string(), call("ok-1", &at)), ("t2".to_string(), call("ok-2", &at).replace("\"t1\"", "\"t2\"")), ("t1".to_string(), call("ok-3", &at))];
    want.sort();
    assert_eq!(got, want, "the topic holds exactly the accepted events");
    assert_eq!(b.metric("salespulse_bridge_events_total{result=\"accepted\"}"), 3.0);
    assert_eq!(b.metric("salespulse_bridge_rejected_events_total{reason=\"json\"}"), 2.0);
    assert_eq!(b.metric("salespulse_bridge_rejected_events_total{reason=\"future\"}"), 1.0);
    assert_eq!(b.metric("salespulse_bridge_requests_total{route=\"/v1/events\",status=\"413\"}"), 1.0);
    assert_eq!(b.metric("salespulse_bridge_requests_total{route=\"/v1/events\",status=\"415\"}"), 1.0);
    assert_eq!(b.metric("salespulse_bridge_requests_total{route=\"/v1/events\",status=\"202\"}"), 2.0);
}

fn preset_config(bs: &str, topic: &str, port: u16, hubspot_api: u16) -> String {
    let owners = fixture("pipedrive")["owners"].clone();
    let mut rows = String::from("[bridge.lookups.owners.rows]\n");
    for (k, v) in owners.as_object().unwrap() {
        rows.push_str(&format!("\"{k}\" = {{ rep_id = \"{}\", team_id = \"{}\" }}\n", v["rep_id"].as_str().unwrap(), v["team_id"].as_str().unwrap()));
    }
    base_config(
        bs,
        topic,
        port,
        &format!(
            "[bridge.pipedrive]\nusername = \"pipedrive\"\npassword = \"hook-pass\"\n[bridge.close]\nsignature_key = \"{CLOSE_KEY}\"\n\
             [bridge.hubspot]\napp_secret = \"{HUBSPOT_SECRET}\"\napi_base_url = \"http://127.0.0.1:{hubspot_api}\"\naccess_token = \"{HUBSPOT_TOKEN}\"\n\
             timeout = \"2s\"\nretries = 2\n{rows}"
        ),
    )
}

/// Requests that are not authenticated get 401 and produce nothing.
#[test]
fn unauthenticated_requests_are_refused_and_produce_nothing() {
    let Some(bs) = bootstrap("unauthenticated_requests_are_refused_and_produce_nothing") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("bridge-auth");
    create_topic(&bs, &topic, 1);
    let b = BridgeProc::start(dir.path(), "b", &preset_config(&bs, &topic, free_port(), free_port()));
    let body = call("never", &rfc3339(now_s() - 60));
    let body = body.as_bytes();
    let ct = |h: Vec<(&'static str, String)>| with_ct(h, "application/json");
    let other_secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let mut bad_sig = signed(body, "msg_x", now_s(), SECRET);
    bad_sig[2].1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into();
    type Case = (&'static str, &'static str, Vec<(&'static str, String)>);
    let cases: Vec<Case> = vec![
        ("no credentials", "/v1/events", ct(vec![])),
        ("wrong token", "/v1/events", ct(vec![bearer("test-tokeN")])),
        ("bad signature", "/v1/events", ct(bad_sig)),
        ("stale timestamp", "/v1/events", ct(signed(body, "msg_y", now_s() - 301, SECRET))),
        ("future timestamp", "/v1/events", ct(signed(body, "msg_y", now_s() + 301, SECRET))),
        ("unknown secret", "/v1/events", ct(signed(body, "msg_z", now_s(), other_secret))),
        ("token and a bad signature", "/v1/events", ct({
            let mut h = signed(body, "msg_z", now_s(), other_secret);
            h.push(bearer("test-token"));
            h
        })),
        ("pipedrive: wrong password", "/v1/webhooks/pipedrive", ct(vec![("Authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("pipedrive:nope")))])),
        ("close: signature of another body", "/v1/webhooks/close", ct(vec![("close-sig-timestamp", now_s().to_string()), ("close-sig-hash", sign_close(&hex::decode(CLOSE_KEY).unwrap(), now_s(), b"{}"))])),
        ("close: stale", "/v1/webhooks/close", ct(vec![("close-sig-timestamp", (now_s() - 400).to_string()), ("close-sig-hash", sign_close(&hex::decode(CLOSE_KEY).unwrap(), now_s() - 400, body))])),
        ("hubspot: stale", "/v1/webhooks/hubspot", ct({
            let ts = (now_s() - 301) * 1000;
            let uri = format!("http://127.0.0.1:{}/v1/webhooks/hubspot", b.port);
            vec![("X-HubSpot-Request-Timestamp", ts.to_string()), ("X-HubSpot-Signature-v3", sign_hubspot(HUBSPOT_SECRET, "POST", &uri, body, ts))]
        })),
        ("hubspot: signed for another URL", "/v1/webhooks/hubspot", ct({
            let ts = now_s() * 1000;
            vec![("X-HubSpot-Request-Timestamp", ts.to_string()), ("X-HubSpot-Signature-v3", sign_hubspot(HUBSPOT_SECRET, "POST", "https://elsewhere.example/v1/webhooks/hubspot", body, ts))]
        })),
    ];
    for (what, path, headers) in &cases {
        let (code, _, text) = b.post(path, headers, body);
        assert_eq!(code, 401, "{what}: {text}");
        assert_eq!(json_of(&text)["error"], "unauthenticated", "{what}");
    }
    assert_eq!(b.metric("salespulse_bridge_events_total{result=\"unauthenticated\"}"), cases.len() as f64);
    let msgs = read_topic(&bs, &topic, 1, 0, Duration::from_secs(4), Duration::from_secs(20));
    assert!(msgs.is_empty(), "unauthenticated requests produced {msgs:?}");
    assert!(!b.log_text().contains("hook-pass") && !b.log_text().contains(CLOSE_KEY), "secrets in the log");
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bridge").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("fixture JSON")
}

struct Owners(Value);
impl Lookup for Owners {
    fn get(&self, table: &str, key: &str, column: &str) -> Option<String> {
        (table == "owners").then(|| self.0.get(key)?.get(column)?.as_str().map(str::to_string)).flatten()
    }
    fn has_table(&self, t: &str) -> bool {
        t == "owners"
    }
}

fn sorted_by_id(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| a["event_id"].as_str().cmp(&b["event_id"].as_str()));
    v
}

/// The presets map each fixture (built from the CRMs' documented payload
/// shapes) to the hand-written contract events; no broker needed.
#[test]
fn presets_map_their_fixtures_to_the_expected_events() {
    use salespulse::bridge::{CLOSE_PRESET, HUBSPOT_PRESET, PIPEDRIVE_PRESET};
    for (name, preset) in [("pipedrive", PIPEDRIVE_PRESET), ("close", CLOSE_PRESET), ("hubspot", HUBSPOT_PRESET)] {
        let f = fixture(name);
        let m = Mapping::parse(name, preset).expect("preset parses");
        let owners = Owners(f["owners"].clone());
        for case in f["cases"].as_array().unwrap() {
            let events: Vec<&Value> = match &case["body"] {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            let mut got = Vec::new();
            let mut ignored = 0;
            for ev in events {
                match m.select(ev) {
                    None => ignored += 1,
                    Some(r) => {
                        let fetched = m.fetch_request(r, ev).map(|q| f["objects"][format!("{}/{}", q.object, q.id)].clone());
                        got.push(Value::Object(m.build(r, ev, fetched.as_ref(), &owners)));
                    }
                }
            }
            let want_rejected = case["rejected"].as_array().map_or(0, Vec::len);
            // Rejected cases map to an event the engine's validation refuses.
            let (valid, invalid): (Vec<Value>, Vec<Value>) = got.into_iter().partition(|e| {
                salespulse::event::parse_event(e.to_string().as_bytes(), &Default::default()).is_ok()
            });
            assert_eq!(invalid.len(), want_rejected, "{name}: {}: {invalid:?}", case["name"]);
            let want: Vec<Value> = case["expect"].as_array().unwrap().clone();
            assert_eq!(sorted_by_id(valid), sorted_by_id(want), "{name}: {}", case["name"]);
            assert_eq!(ignored, case["ignored"].as_u64().unwrap_or(0) as usize, "{name}: {}: ignored", case["name"]);
        }
    }
}

/// A stand-in for HubSpot's CRM objects API serving the fixture's objects;
/// it checks the token, fails the first call of deal 7002 with a 503 (the
/// bridge retries) and answers for object 7999 after 1.5 s. Returns its port
/// and a request counter.
fn hubspot_stand_in(objects: Value) -> (u16, Arc<AtomicUsize>) {
    use axum::extract::{Path as P, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let calls = Arc::new(AtomicUsize::new(0));
    let state = (Arc::new(objects), calls.clone(), Arc::new(AtomicUsize::new(0)));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async move {
            type S = (Arc<Value>, Arc<AtomicUsize>, Arc<AtomicUsize>);
            async fn object(State((objs, calls, flaky)): State<S>, P((ty, id)): P<(String, String)>, h: HeaderMap) -> axum::response::Response {
                calls.fetch_add(1, Ordering::SeqCst);
                if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {HUBSPOT_TOKEN}")) {
                    return (StatusCode::UNAUTHORIZED, "{\"status\":\"error\",\"category\":\"INVALID_AUTHENTICATION\"}").into_response();
                }
                if ty == "deals" && id == "7002" && flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                    return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
                }
                if id == "7999" {
                    // a slow answer: the request is in flight for a while
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                match objs.get(format!("{ty}/{id}")) {
                    Some(o) => axum::Json(o.clone()).into_response(),
                    None => (StatusCode::NOT_FOUND, "{\"status\":\"error\",\"category\":\"OBJECT_NOT_FOUND\"}").into_response(),
                }
            }
            let app = axum::Router::new().route("/crm/v3/objects/{ty}/{id}", axum::routing::get(object)).with_state(state);
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(l, app).await;
        });
    });
    (port, calls)
}

/// Each preset's fixtures through the running bridge, signed the way each
/// CRM signs: the answers count accepted/ignored/rejected and the topic
/// holds exactly the expected contract events.
#[test]
fn crm_webhooks_through_the_bridge_give_the_expected_events() {
    let Some(bs) = bootstrap("crm_webhooks_through_the_bridge_give_the_expected_events") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("bridge-crm");
    create_topic(&bs, &topic, 2);
    let hs = fixture("hubspot");
    let (api, calls) = hubspot_stand_in(hs["objects"].clone());
    let b = BridgeProc::start(dir.path(), "b", &preset_config(&bs, &topic, free_port(), api));
    let mut want = Vec::new();
    for name in ["pipedrive", "close", "hubspot"] {
        let f = fixture(name);
        for case in f["cases"].as_array().unwrap() {
            let body = serde_json::to_vec(&case["body"]).unwrap();
            let path = format!("/v1/webhooks/{name}");
            let mut h: Vec<(&str, String)> = vec![("Content-Type", "application/json".into())];
            match name {
                "pipedrive" => h.push(("Authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("pipedrive:hook-pass")))),
                "close" => {
                    let ts = now_s();
                    h.push(("close-sig-timestamp", ts.to_string()));
                    h.push(("close-sig-hash", sign_close(&hex::decode(CLOSE_KEY).unwrap(), ts, &body)));
                }
                _ => {
                    let ts = now_s() * 1000;
                    let uri = format!("http://127.0.0.1:{}{path}", b.port);
                    h.push(("X-HubSpot-Request-Timestamp", ts.to_string()));
                    h.push(("X-HubSpot-Signature-v3", sign_hubspot(HUBSPOT_SECRET, "POST", &uri, &body, ts)));
                }
            }
            let (code, _, text) = b.post(&path, &h, &body);
            assert_eq!(code, 202, "{name}: {}: {text}\n{}", case["name"], b.log_text());
            let a = json_of(&text);
            let expect = case["expect"].as_array().unwrap();
            assert_eq!(a["accepted"].as_u64(), Some(expect.len() as u64), "{name}: {}: {a}", case["name"]);
            assert_eq!(a["ignored"].as_u64(), Some(case["ignored"].as_u64().unwrap_or(0)), "{name}: {}: {a}", case["name"]);
            let reasons: Vec<&str> = a["rejected"].as_array().unwrap().iter().filter_map(|r| r["reason"].as_str()).collect();
            let want_reasons: Vec<&str> = case["rejected"].as_array().map(|r| r.iter().filter_map(|x| x["reason"].as_str()).collect()).unwrap_or_default();
            assert_eq!(reasons, want_reasons, "{name}: {}", case["name"]);
            want.extend(expect.iter().cloned());
        }
    }
    assert!(calls.load(Ordering::SeqCst) >= 4, "the bridge fetched the HubSpot objects");
    let msgs = read_topic(&bs, &topic, 2, want.len(), Duration::from_secs(3), Duration::from_secs(60));
    for (k, v) in &msgs {
        assert_eq!(Some(k.as_str()), json_of(v)["team_id"].as_str(), "key is team_id");
    }
    let got: Vec<Value> = msgs.iter().map(|(_, v)| json_of(v)).collect();
    assert_eq!(sorted_by_id(got), sorted_by_id(want));
    assert!(b.metric("salespulse_bridge_events_total{result=\"ignored\"}") >= 4.0);
    let mut b = b;
    assert_eq!(b.terminate(), Some(0), "graceful stop exits 0:\n{}", b.log_text());
}

/// The README's demo snippet, run as written (with the built binary and a
/// free port): one signed event into a demo `run`, visible in /metrics.
#[test]
fn readme_demo_snippet_sends_a_signed_event_into_the_demo() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let block = readme
        .split("<!-- demo-ingest:begin -->")
        .nth(1)
        .and_then(|r| r.split("<!-- demo-ingest:end -->").next())
        .expect("README has a demo-ingest block");
    let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with("```") && !l.trim().is_empty() && !l.trim_start().starts_with('#')).collect();
    assert!(lines.len() >= 3, "{block}");
    let port = free_port();
    let fix = |l: &str| l.replace("cargo run --release -q --", BIN).replace("localhost:9464", &format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(dir.path().join("run.log")).expect("log");
    let mut run = Command::new(BIN)
        .arg("run")
        .env("SALESPULSE_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("SALESPULSE_DEMO__HISTORY_DAYS", "0")
        .env("SALESPULSE_DEMO__EVENTS_PER_SECOND", "20")
        .env_remove("SALESPULSE_CONFIG")
        .env_remove("SALESPULSE_KAFKA__BROKERS")
        .stderr(log)
        .spawn()
        .expect("run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_ok(port).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (send, check) = lines.split_at(lines.len() - 1);
    let script: String = send.iter().map(|l| fix(l) + "\n").collect();
    let out = Command::new("bash").arg("-ec").arg(&script).current_dir(dir.path()).output().expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && stdout.contains("\"accepted\":1"), "snippet failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut shown = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let o = Command::new("bash").arg("-c").arg(fix(check[0])).current_dir(dir.path()).output().expect("bash");
        shown = String::from_utf8_lossy(&o.stdout).into_owned();
        if shown.contains("sales_outbound_activities{team=\"demo\",rep=\"newcomer\",window=\"1h\"} 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = Command::new("kill").args(["-TERM", &run.id().to_string()]).status();
    let _ = run.wait();
    assert!(shown.contains("sales_outbound_activities{team=\"demo\",rep=\"newcomer\",window=\"1h\"} 1"), "the event is not in /metrics: {shown}");
}

fn http_ok(port: u16) -> Option<()> {
    TcpStream::connect(("127.0.0.1", port)).ok()?;
    (http(port, "GET", "/healthz", &[], b"").0 == 200).then_some(())
}

/// The Salesforce example of docs/bridge.md, as written there: its mapping
/// maps its callout body to its contract event, which the engine accepts.
#[test]
fn docs_salesforce_example_maps_as_documented() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/bridge.md")).expect("docs/bridge.md");
    let block = |name: &str| -> String {
        let inner = doc
            .split(&format!("<!-- {name}:begin -->"))
            .nth(1)
            .and_then(|r| r.split(&format!("<!-- {name}:end -->")).next())
            .unwrap_or_else(|| panic!("docs/bridge.md has no {name} block"));
        inner.lines().filter(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n")
    };
    let m = Mapping::parse("salesforce", &block("salesforce-mapping")).expect("the documented mapping parses");
    let body: Value = serde_json::from_str(&block("salesforce-body")).expect("body");
    let want: Value = serde_json::from_str(&block("salesforce-event")).expect("event");
    let owners = Owners(json!({"0055g00000AbCdEAA1": {"rep_id": "ana", "team_id": "emea-smb"}}));
    let r = m.select(&body).expect("a rule matches");
    let got = Value::Object(m.build(r, &body, None, &owners));
    assert_eq!(got, want);
    assert!(salespulse::event::parse_event(got.to_string().as_bytes(), &Default::default()).is_ok());
}

/// With `bridge.tls_cert` and `bridge.tls_key` the bridge serves HTTPS
/// (rustls): a self-signed certificate made with openssl, requests with curl.
#[test]
fn tls_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let port = free_port();
    let cfg = format!(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\n[bridge]\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"t\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    std::fs::write(dir.path().join("b.toml"), cfg).expect("config");
    let mut child = Command::new(BIN)
        .args(["bridge", "--config"])
        .arg(dir.path().join("b.toml"))
        .stderr(std::fs::File::create(dir.path().join("b.log")).expect("log"))
        .spawn()
        .expect("bridge");
    let curl = |args: &[&str]| -> String {
        let o = Command::new("curl").args(["-s", "--cacert"]).arg(&cert).args(args).output().expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let url = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut health = String::new();
    while Instant::now() < deadline && health != "ok\n" {
        std::thread::sleep(Duration::from_millis(200));
        health = curl(&[&format!("{url}/healthz")]);
    }
    let refused = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "--data", "{}", &format!("{url}/v1/events")]);
    let plain = http_ok(port);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health, "ok\n", "{}", std::fs::read_to_string(dir.path().join("b.log")).unwrap_or_default());
    assert_eq!(refused, "401", "an unauthenticated POST over TLS");
    assert!(plain.is_none(), "plain HTTP is not served on the TLS port");
}

fn hubspot_post(b: &BridgeProc, body: &[u8]) -> (u16, String, String) {
    let ts = now_s() * 1000;
    let uri = format!("http://127.0.0.1:{}/v1/webhooks/hubspot", b.port);
    let h = vec![
        ("Content-Type", "application/json".to_string()),
        ("X-HubSpot-Request-Timestamp", ts.to_string()),
        ("X-HubSpot-Signature-v3", sign_hubspot(HUBSPOT_SECRET, "POST", &uri, body, ts)),
    ];
    b.post("/v1/webhooks/hubspot", &h, body)
}

/// SIGTERM while a request is in flight (its HubSpot fetch takes 1.5 s):
/// the request still gets its 202 and its event reaches the topic, then the
/// bridge exits 0.
#[test]
fn sigterm_drains_in_flight_requests() {
    let Some(bs) = bootstrap("sigterm_drains_in_flight_requests") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("bridge-drain");
    create_topic(&bs, &topic, 1);
    let mut objects = fixture("hubspot")["objects"].clone();
    objects["deals/7999"] = json!({"id": "7999", "properties": {"amount": "10", "hubspot_owner_id": "8801", "deal_currency_code": "USD"}});
    let (api, _) = hubspot_stand_in(objects);
    let mut b = BridgeProc::start(dir.path(), "b", &preset_config(&bs, &topic, free_port(), api));
    let ev = json!([{"eventId": 1, "subscriptionId": 2, "portalId": 3, "occurredAt": (now_s() - 60) * 1000, "subscriptionType": "deal.creation", "objectId": 7999}]);
    let body = serde_json::to_vec(&ev).unwrap();
    // warm up the producer (its first request waits for the idempotent producer id)
    let (code, _, text) = b.post("/v1/events", &[bearer("test-token"), (JSON_CT.0, JSON_CT.1.into())], call("warm", &rfc3339(now_s() - 60)).as_bytes());
    assert_eq!(code, 202, "{text}");
    let answer = std::thread::scope(|s| {
        let req = s.spawn(|| hubspot_post(&b, &body));
        std::thread::sleep(Duration::from_millis(500));
        let pid = b.child.as_ref().map(|c| c.id()).expect("running");
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        req.join().expect("request thread")
    });
    assert_eq!(answer.0, 202, "the in-flight request was answered: {answer:?}\n{}", b.log_text());
    assert_eq!(json_of(&answer.2)["accepted"], 1);
    assert_eq!(b.wait_exit(), Some(0), "{}", b.log_text());
    let msgs = read_topic(&bs, &topic, 1, 2, Duration::from_secs(2), Duration::from_secs(30));
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs.iter().any(|(_, v)| v.contains("hubspot:deal:7999")));
}
