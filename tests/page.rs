//! The JSON view (`/api/v1/kpis`, the page's data, `replay --report`)
//! against `/metrics`:
//!
//! - every value of a document is the `/metrics` series with the same labels
//!   (team, rep, window, the family's own label), and with the default
//!   profile every `/metrics` KPI series is in the document of its window;
//!   with a restricted profile (`config/large-org.toml`) `/metrics` is a
//!   subset of the documents, values equal;
//! - "confidently below benchmark" is exactly the selection of the alert
//!   rules, read off `/metrics` with the test's own parser (upper95 <
//!   effective min benchmark, sample >= the rules' minimum, 7d), and names
//!   the generator's laggard;
//! - live, on the demo engine: `/api/v1/kpis` equals the `/metrics` scrape of
//!   the same render, filters by team and rep, refuses an unknown window; `/`
//!   is the page; with a restricted profile it keeps the drill-down
//!   `/metrics` leaves out;
//! - `replay --report` embeds one document per window equal to what `replay`
//!   prints, and the replay summary with the first invalid lines.
//!
//! `/metrics` is parsed here with `common::parse_exposition`, not with the
//! module under test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::demo::Demo;
use common::kafka::{http_get, BIN};
use common::*;
use salespulse::engine::{Clock, Core, Shard};
use salespulse::gen::{GenConfig, Generator};
use salespulse::kpi_json::{self, Context, Query};
use serde_json::value::RawValue;
use serde_json::Value;

const WINDOWS: [&str; 8] = ["1h", "1d", "7d", "30d", "today", "wtd", "mtd", "qtd"];
const LAGGARD: (&str, &str) = ("na-ent", "rep-na-ent-03");

/// The `/metrics` key of a document entry: `name{team,rep,window,extra}` in
/// canonical label order.
fn metrics_key(key: &str, team: &str, rep: Option<&str>, window: Option<&str>) -> String {
    let (name, extra) = match key.split_once('{') {
        Some((n, rest)) => (n, Some(rest.trim_end_matches('}'))),
        None => (key, None),
    };
    let mut labels = vec![format!("team=\"{team}\"")];
    labels.extend(rep.map(|r| format!("rep=\"{r}\"")));
    labels.extend(window.map(|w| format!("window=\"{w}\"")));
    labels.extend(extra.map(str::to_owned));
    canonical(name, &labels.join(","))
}

/// A document's entry, numbers kept as their JSON text (serde_json's default
/// float parsing is not exact to the last bit; `str::parse` is).
#[derive(serde::Deserialize)]
struct EntryText {
    team: Option<String>,
    rep: Option<String>,
    kpis: BTreeMap<String, Box<RawValue>>,
    current: BTreeMap<String, Box<RawValue>>,
    #[serde(default)]
    reps: Vec<EntryText>,
}

#[derive(serde::Deserialize)]
struct DocText {
    window: String,
    teams: Vec<EntryText>,
}

/// Every value of a document (its JSON text) as `/metrics` keys: the
/// window's series and the ones without a window.
fn flatten_text(json: &str) -> BTreeMap<String, f64> {
    let doc: DocText = serde_json::from_str(json).expect("a document");
    let mut out = BTreeMap::new();
    let mut add = |e: &EntryText, team: &str, rep: Option<&str>| {
        for (part, w) in [(&e.kpis, Some(doc.window.as_str())), (&e.current, None)] {
            for (k, v) in part {
                let v: f64 = v.get().parse().unwrap_or_else(|_| panic!("{k}: {} is not a number", v.get()));
                assert!(out.insert(metrics_key(k, team, rep, w), v).is_none(), "{k} twice");
            }
        }
    };
    for t in &doc.teams {
        let team = t.team.as_deref().expect("team");
        add(t, team, None);
        for r in &t.reps {
            add(r, team, Some(r.rep.as_deref().expect("rep")));
        }
    }
    out
}

fn flatten(doc: &Value) -> BTreeMap<String, f64> {
    flatten_text(&doc.to_string())
}

/// The `/metrics` KPI series of `window` (or without a window), benchmarks aside.
fn of_window(m: &BTreeMap<String, f64>, window: &str) -> BTreeMap<String, f64> {
    let w = format!("window=\"{window}\"");
    m.iter()
        .filter(|(k, _)| k.starts_with("sales_") && !k.starts_with("sales_benchmark{"))
        .filter(|(k, _)| !k.contains("window=\"") || k.contains(&w))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Asserts `got == want`, naming the first differences only.
fn same(want: &BTreeMap<String, f64>, got: &BTreeMap<String, f64>, what: &str) {
    let d = diff(want, got);
    assert!(d.is_empty(), "{what}: {} differences ({} want, {} got), first: {:?}", d.len(), want.len(), got.len(), &d[..d.len().min(5)]);
    for (k, v) in want {
        assert!(got[k] == *v, "{what}: {k}: {} != {v} (bit for bit)", got[k]);
    }
}

struct Folded {
    core: Core,
    shard: Shard,
    t: i64,
}

/// 3 weeks of a 4-team org with the laggard, a team override of the reach
/// benchmark, folded at the event clock.
fn folded(extra: &str) -> Folded {
    let core = core_from(&format!("[benchmarks.teams.apac-mid]\nreach_ratio_min = 0.45\n{extra}"), Clock::Event);
    let mut shard = Shard::new();
    let cfg = GenConfig { days: 21, laggard: Some((1, 2)), ..GenConfig::default() };
    let wall = ts("2026-12-31T00:00:00Z");
    for e in Generator::new(cfg) {
        shard.ingest(&core, e.line.as_bytes(), wall);
    }
    let t = shard.event_clock.expect("events applied");
    Folded { core, shard, t }
}

fn windows() -> Vec<String> {
    WINDOWS.iter().map(|s| s.to_string()).collect()
}

/// The documents of every window, from a full render (what the endpoint and
/// the report do when the profile leaves series out).
fn documents(f: &Folded, q: &Query) -> BTreeMap<String, Value> {
    let view = Core::new(kpi_json::full_view(&f.core.cfg), f.core.clock);
    let text = salespulse::render::render_string(&[&f.shard], &view, f.t);
    let w = windows();
    let ctx = Context { windows: &w, clock: None, source: "replay" };
    WINDOWS
        .iter()
        .map(|win| (win.to_string(), kpi_json::document(&text, None, &ctx, &Query { window: Some(win.to_string()), ..q.clone() }).expect("document")))
        .collect()
}

#[test]
fn every_json_value_is_the_metrics_series_of_the_same_labels() {
    let f = folded("");
    let metrics = parse_exposition(&salespulse::render::render_string(&[&f.shard], &f.core, f.t));
    let docs = documents(&f, &Query::default());
    let mut compared = 0;
    for (w, doc) in &docs {
        assert_eq!(doc["window"], w.as_str());
        let got = flatten(doc);
        let want = of_window(&metrics, w);
        assert!(want.len() > 100, "{w}: only {} series", want.len());
        let diff = diff(&want, &got);
        assert!(diff.is_empty(), "{w}: {} differences, first: {:?}", diff.len(), &diff[..diff.len().min(5)]);
        // bit for bit, not merely close
        for (k, v) in &want {
            assert!(got[k] == *v, "{k}: {} != {v}", got[k]);
        }
        compared += want.len();
    }
    assert!(compared > 5_000, "{compared}");
    // benchmarks
    let b = docs["7d"]["benchmarks"].as_array().expect("benchmarks");
    let want: Vec<(&String, &f64)> = metrics.iter().filter(|(k, _)| k.starts_with("sales_benchmark{")).collect();
    assert_eq!(b.len(), want.len());
    for x in b {
        let mut labels = vec![format!("kpi=\"{}\"", x["kpi"].as_str().unwrap()), format!("bound=\"{}\"", x["bound"].as_str().unwrap())];
        labels.extend(x["team"].as_str().map(|t| format!("team=\"{t}\"")));
        assert_eq!(metrics[&canonical("sales_benchmark", &labels.join(","))], x["value"].as_f64().unwrap());
    }
}

#[test]
fn with_a_restricted_profile_metrics_is_a_subset_of_the_json() {
    let profile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/large-org.toml")).expect("large-org.toml");
    let f = folded(&profile);
    let metrics = parse_exposition(&salespulse::render::render_string(&[&f.shard], &f.core, f.t));
    for (w, doc) in documents(&f, &Query::default()) {
        let got = flatten(&doc);
        let want = of_window(&metrics, &w);
        for (k, v) in &want {
            assert_eq!(got.get(k), Some(v), "{w}: {k}");
        }
        assert!(got.len() > want.len(), "{w}: the JSON keeps what the profile leaves out ({} vs {})", got.len(), want.len());
    }
}

#[test]
fn below_benchmark_is_the_alert_selection_and_names_the_laggard() {
    let f = folded("");
    let m = parse_exposition(&salespulse::render::render_string(&[&f.shard], &f.core, f.t));
    // The alert rules' selection, from /metrics: reach (min 30 outbound
    // activities) and pipe (min 10 SQLs), 7d, upper95 < the team's min
    // benchmark (override, else global).
    let bench = |kpi: &str, team: &str| {
        m.get(&canonical("sales_benchmark", &format!("bound=\"min\",kpi=\"{kpi}\",team=\"{team}\"")))
            .or_else(|| m.get(&canonical("sales_benchmark", &format!("bound=\"min\",kpi=\"{kpi}\""))))
            .copied()
    };
    let mut want = BTreeSet::new();
    for (k, upper) in &m {
        for (kpi, fam, sample, min) in [("reach_ratio", "sales_reach_upper95_ratio", "sales_outbound_activities", 30.0), ("pipe_ratio", "sales_pipe_upper95_ratio", "sales_sqls", 10.0)] {
            let Some(labels) = k.strip_prefix(&format!("{fam}{{")) else { continue };
            if !labels.contains("window=\"7d\"") {
                continue;
            }
            let label = |name: &str| labels.split(',').find_map(|l| l.strip_prefix(&format!("{name}=\""))).map(|v| v.trim_end_matches(['"', '}']).to_owned());
            let (team, rep) = (label("team").expect("team"), label("rep"));
            let n = m.get(&format!("{sample}{{{labels}")).copied().unwrap_or(0.0);
            if *upper < bench(kpi, &team).expect("benchmark") && n >= min {
                want.insert((team, rep, kpi.to_owned()));
            }
        }
    }
    let docs = documents(&f, &Query::default());
    for doc in docs.values() {
        let got: BTreeSet<(String, Option<String>, String)> = doc["below_benchmark"]
            .as_array()
            .expect("below")
            .iter()
            .map(|b| (b["team"].as_str().unwrap().to_owned(), b["rep"].as_str().map(str::to_owned), b["kpi"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(got, want, "the same list whatever the window");
    }
    assert!(want.contains(&(LAGGARD.0.into(), Some(LAGGARD.1.into()), "reach_ratio".into())), "{want:?}");
    // the override (0.45 for apac-mid) is what apac-mid is held to
    let apac = docs["7d"]["below_benchmark"].as_array().unwrap().iter().filter(|b| b["team"] == "apac-mid" && b["kpi"] == "reach_ratio").count();
    let apac_want = want.iter().filter(|(t, _, k)| t == "apac-mid" && k == "reach_ratio").count();
    assert_eq!(apac, apac_want);
    // a rep filter keeps that rep only
    let only = documents(&f, &Query { rep: Some(LAGGARD.1.into()), ..Query::default() });
    let b = only["7d"]["below_benchmark"].as_array().unwrap();
    assert!(!b.is_empty() && b.iter().all(|x| x["rep"] == LAGGARD.1));
    let teams = only["7d"]["teams"].as_array().unwrap();
    assert!(teams.iter().all(|t| t["reps"].as_array().unwrap().iter().all(|r| r["rep"] == LAGGARD.1)));
}

/// The demo engine with a long scrape cache: /metrics and /api/v1/kpis
/// read the same render.
fn demo(dir: &Path) -> Demo {
    common::demo::start(dir, "scrape_cache = \"120s\"", "history_days = 7\nevents_per_second = 50")
}

fn get_json(port: u16, path: &str) -> Value {
    let (code, body) = http_get(port, path).expect("GET");
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn render_count(m: &BTreeMap<String, f64>) -> f64 {
    m.get("salespulse_render_duration_seconds_count{}").copied().unwrap_or(-1.0)
}

#[test]
fn live_endpoint_equals_the_scrape_and_serves_the_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = demo(dir.path());
    // Wait until the history is in (the laggard has its 30 activities) and
    // the scrape cache holds that render.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some((200, _)) = http_get(d.port, "/readyz") {
            if let Some((200, body)) = http_get(d.port, "/api/v1/kpis") {
                let doc: Value = serde_json::from_str(&body).expect("json");
                if doc["below_benchmark"].as_array().is_some_and(|b| b.iter().any(|x| x["rep"] == LAGGARD.1)) {
                    break;
                }
            }
        }
        assert!(Instant::now() < deadline, "the laggard never showed: {}", std::fs::read_to_string(&d.log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, text) = http_get(d.port, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    let metrics = parse_exposition(&text);
    for w in ["7d", "1h", "mtd"] {
        let (code, body) = http_get(d.port, &format!("/api/v1/kpis?window={w}")).expect("GET");
        assert_eq!(code, 200, "{body}");
        let doc: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["source"], "live");
        let want = of_window(&metrics, w);
        let got = flatten_text(&body);
        assert!(want.len() > 50, "{w}: {}", want.len());
        same(&want, &got, w);
        let e = &doc["engine"];
        assert_eq!(e["events"]["applied"].as_f64(), metrics.get("salespulse_events_total{result=\"applied\"}").copied());
        assert_eq!(e["series"].as_f64(), metrics.get("salespulse_series{}").copied());
    }
    // still the same render: the comparison was against one scrape
    let (_, again) = http_get(d.port, "/metrics").expect("metrics");
    assert_eq!(render_count(&parse_exposition(&again)), render_count(&metrics), "the scrape cache expired during the test");

    let doc = get_json(d.port, &format!("/api/v1/kpis?team={}&rep={}", LAGGARD.0, LAGGARD.1));
    let teams = doc["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0]["team"], LAGGARD.0);
    assert_eq!(teams[0]["reps"].as_array().unwrap().len(), 1);
    assert_eq!(doc["query"]["rep"], LAGGARD.1);
    let (code, body) = http_get(d.port, "/api/v1/kpis?window=2h").expect("GET");
    assert_eq!(code, 400);
    assert!(body.contains("window \"2h\" is not configured"), "{body}");

    let (code, page) = http_get(d.port, "/").expect("GET /");
    assert_eq!(code, 200);
    assert!(page.starts_with("<!doctype html>") && page.contains("api/v1/kpis"), "{}", &page[..page.len().min(200)]);
}

#[test]
fn replay_report_embeds_the_documents_and_the_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.ndjson");
    let report = dir.path().join("report.html");
    let cfg = GenConfig { days: 14, teams: 2, reps_per_team: 3, laggard: Some((1, 2)), broken_ratio: 0.01, redeliver_ratio: 0.02, ..GenConfig::default() };
    let text: String = Generator::new(cfg).map(|e| e.line + "\n").collect();
    std::fs::write(&events, text).expect("write");
    let now = "2026-11-16T12:00:00Z";
    let printed = Command::new(BIN).args(["replay", "-q", "--now", now]).arg(&events).output().expect("replay");
    assert!(printed.status.success());
    let out = Command::new(BIN).args(["replay", "-q", "--now", now, "--report"]).arg(&report).arg(&events).output().expect("replay --report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "--report prints no exposition");
    assert!(stderr.contains("wrote the report to"), "{stderr}");

    let html = std::fs::read_to_string(&report).expect("report");
    let start = html.find("id=\"salespulse-data\">").expect("embedded data") + "id=\"salespulse-data\">".len();
    let end = start + html[start..].find("</script>").expect("end of data");
    let data: Value = serde_json::from_str(&html[start..end]).expect("data is JSON");
    #[derive(serde::Deserialize)]
    struct Embedded {
        documents: BTreeMap<String, Box<RawValue>>,
    }
    let texts: Embedded = serde_json::from_str(&html[start..end]).expect("documents");
    assert_eq!(data["window"], "7d");
    let metrics = parse_exposition(&String::from_utf8_lossy(&printed.stdout));
    for w in WINDOWS {
        let doc = &data["documents"][w];
        assert_eq!(doc["clock"], "2026-11-16T12:00:00.000Z");
        same(&of_window(&metrics, w), &flatten_text(texts.documents[w].get()), w);
    }
    assert!(data["documents"]["7d"]["below_benchmark"].as_array().unwrap().iter().any(|b| b["rep"] == "rep-na-ent-03"));

    // the summary is the one replay prints: lines=.. applied=.. duplicate=..
    let r = &data["replay"];
    let field = |name: &str| -> f64 {
        stderr.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{name}="))).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} in {stderr}"))
    };
    for (k, j) in [("lines", "lines"), ("applied", "applied"), ("duplicate", "duplicate"), ("late", "late"), ("invalid", "invalid_total")] {
        assert_eq!(r[j].as_f64(), Some(field(k)), "{k}");
    }
    assert!(r["duplicate"].as_u64().unwrap() > 0 && r["invalid_total"].as_u64().unwrap() > 0);
    let first = r["first_invalid"].as_array().unwrap();
    assert!(!first.is_empty());
    let lines: Vec<&str> = std::fs::read_to_string(&events).unwrap().leak().lines().filter(|l| !l.trim_end_matches('\r').is_empty()).collect();
    for f in first {
        let n = f["line"].as_u64().unwrap() as usize;
        let reason = f["reason"].as_str().unwrap();
        assert!(r["invalid"][reason].as_u64().unwrap() > 0, "{reason}");
        let text = f["text"].as_str().unwrap();
        assert!(lines[n - 1].starts_with(text.trim_end_matches('…')), "line {n}: {text:?} vs {:?}", lines[n - 1]);
    }
    let per_reason = first.iter().fold(BTreeMap::<&str, u64>::new(), |mut m, f| {
        *m.entry(f["reason"].as_str().unwrap()).or_default() += 1;
        m
    });
    for (reason, n) in per_reason {
        assert_eq!(n, r["invalid"][reason].as_u64().unwrap().min(r["first_invalid_max"].as_u64().unwrap()), "{reason}");
    }
}

/// With a restricted profile the endpoint renders everything itself: the
/// rep-level drill-down `/metrics` leaves out is in the JSON, and every
/// series `/metrics` has is there too (values at another instant: not
/// compared here, see `with_a_restricted_profile_metrics_is_a_subset_of_the_json`).
#[test]
fn live_endpoint_keeps_what_the_profile_leaves_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = "scrape_cache = \"1s\"\n[exposition.rep]\nfamilies = [\"sales_reach_ratio\", \"sales_outbound_activities\"]\nwindows = [\"7d\"]";
    let d = common::demo::start(dir.path(), http, "history_days = 7\nevents_per_second = 50");
    let deadline = Instant::now() + Duration::from_secs(120);
    let (metrics, doc) = loop {
        if let (Some((200, text)), Some((200, body))) = (http_get(d.port, "/metrics"), http_get(d.port, "/api/v1/kpis?window=7d")) {
            let m = parse_exposition(&text);
            if m.keys().any(|k| k.starts_with("sales_reach_ratio{rep=")) {
                break (m, body);
            }
        }
        assert!(Instant::now() < deadline, "no rep series: {}", std::fs::read_to_string(&d.log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(500));
    };
    let got = flatten_text(&doc);
    assert!(!metrics.keys().any(|k| k.starts_with("sales_connects{rep=")), "the profile leaves rep connects out of /metrics");
    assert!(got.keys().any(|k| k.starts_with("sales_connects{rep=")), "the JSON keeps them");
    let missing: Vec<String> = of_window(&metrics, "7d").into_keys().filter(|k| !got.contains_key(k)).collect();
    // a rep or team that appeared between the two renders aside
    assert!(missing.len() <= 5, "{missing:?}");
}
