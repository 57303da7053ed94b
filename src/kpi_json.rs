//! The JSON view of the exposition (`GET /api/v1/kpis`, the page at `/`, the
//! static `replay --report`): the `sales_*` series of a rendered exposition,
//! parsed back and grouped per team and rep for one window, plus the
//! benchmarks, who is confidently below them and the engine's health.
//!
//! Owns: parsing exposition text (name, labels, value), the document's shape
//! (version 1, `docs/api.md`), the query filter (team, rep, window), and the
//! alert rules' selection of who is "confidently below benchmark"
//! ([`BELOW_RULES`], kept equal to `deploy/prometheus/rules` by a test).
//! Must not touch: state or formulas. Every number comes from the text that
//! [`crate::render`] wrote (the same code as `/metrics`), so a value here is
//! the value of the `/metrics` series with the same labels, by construction;
//! the comparison "Wilson upper bound < benchmark" is the one the alert rules
//! make in PromQL.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::config::CoreConfig;
use crate::exposition::{ExpositionConfig, Profile};

/// Version of the document (`"version"`); a change that removes or renames a
/// field bumps it.
pub const VERSION: u64 = 1;

/// Window of the alert rules (and of the "confidently below" list).
pub const ALERT_WINDOW: &str = "7d";

/// One "below benchmark" rule of `deploy/prometheus/rules/salespulse-alerts.yml`:
/// the upper bound of the 95 % Wilson interval under the team's effective
/// `min` benchmark, with at least `min_sample` of `sample` in [`ALERT_WINDOW`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BelowRule {
    /// The benchmark's `kpi` label.
    pub kpi: &'static str,
    pub ratio: &'static str,
    pub upper: &'static str,
    pub sample: &'static str,
    pub min_sample: u64,
}

/// The rules of the alerts `Sales{Rep,Team}{Reach,Pipe}BelowBenchmark`.
pub const BELOW_RULES: [BelowRule; 2] = [
    BelowRule { kpi: "reach_ratio", ratio: "sales_reach_ratio", upper: "sales_reach_upper95_ratio", sample: "sales_outbound_activities", min_sample: 30 },
    BelowRule { kpi: "pipe_ratio", ratio: "sales_pipe_ratio", upper: "sales_pipe_upper95_ratio", sample: "sales_sqls", min_sample: 10 },
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KpiJsonError {
    #[error("exposition line {line}: {msg}: {text:?}")]
    Parse { line: usize, msg: &'static str, text: String },
    #[error("window {window:?} is not configured; windows: {known}")]
    UnknownWindow { window: String, known: String },
}

/// One series of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses exposition text (format 0.0.4): every sample line, comments and
/// blank lines skipped, label values unescaped (`\\`, `\"`, `\n`).
pub fn parse(text: &str) -> Result<Vec<Sample>, KpiJsonError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|msg| KpiJsonError::Parse { line: i + 1, msg, text: line.chars().take(200).collect() })?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name");
    }
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut r = r;
        loop {
            r = r.trim_start_matches(',');
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = r.find('=').ok_or("label without '='")?;
            let key = &r[..eq];
            let body = r[eq + 1..].strip_prefix('"').ok_or("label value without quotes")?;
            let mut value = String::new();
            let mut chars = body.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value"),
                    Some((j, '"')) => break j,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("unterminated label value"),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            r = &body[end + 1..];
        }
    }
    // value, then an optional timestamp
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "value is not a number")?,
    };
    Ok(Sample { name: name.to_owned(), labels, value })
}

/// What a request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only this team (and its reps).
    pub team: Option<String>,
    /// Only this rep (in every team, or in `team`); team-level entries stay.
    pub rep: Option<String>,
    /// The window of `kpis` (default [`ALERT_WINDOW`] when configured, else
    /// the first configured window).
    pub window: Option<String>,
}

/// Context the document states alongside the numbers.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The configured windows, in configuration order.
    pub windows: &'a [String],
    /// RFC 3339 instant the windows end at (the render's clock).
    pub clock: Option<String>,
    /// `"live"` (`salespulse run`) or `"replay"`.
    pub source: &'a str,
}

/// `cfg` with every family and window at both levels and no series budget:
/// what the JSON view renders when the configured exposition leaves series
/// out (same formulas, same windows, same clock).
pub fn full_view(cfg: &CoreConfig) -> CoreConfig {
    CoreConfig { profile: Profile::full(&cfg.windows), max_series: usize::MAX, ..cfg.clone() }
}

/// Whether `cfg`'s profile renders every series the full view does (the
/// default `"*"` profile; team-only families are never written at rep level
/// either way).
pub fn profile_is_full(cfg: &CoreConfig) -> bool {
    let w = &cfg.windows;
    cfg.profile == Profile::full(w) || Profile::new(&ExpositionConfig::default(), w).is_ok_and(|p| p == cfg.profile)
}

/// A JSON number: integers without a fraction (as `/metrics` writes them),
/// `null` for NaN and infinities (JSON has neither).
fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return Value::from(v as i64);
    }
    serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null)
}

/// The key of a series in `kpis` / `current`: the family name, plus the
/// labels other than team, rep and window: `sales_spend{category="sales"}`.
fn key(s: &Sample) -> String {
    let extra: Vec<String> =
        s.labels.iter().filter(|(k, _)| !matches!(k.as_str(), "team" | "rep" | "window")).map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    if extra.is_empty() {
        s.name.clone()
    } else {
        format!("{}{{{}}}", s.name, extra.join(","))
    }
}

#[derive(Default)]
struct Entry {
    kpis: Map<String, Value>,
    current: Map<String, Value>,
    /// The alert window's values the "below" rules read.
    alert: BTreeMap<&'static str, f64>,
}

impl Entry {
    fn json(self, id_key: &str, id: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(id_key.into(), id.into());
        m.insert("kpis".into(), Value::Object(self.kpis));
        m.insert("current".into(), Value::Object(self.current));
        m
    }
}

#[derive(Default)]
struct TeamEntry {
    own: Entry,
    reps: BTreeMap<String, Entry>,
}

/// Names the "below" rules read in the alert window.
fn alert_name(name: &str) -> Option<&'static str> {
    BELOW_RULES.iter().flat_map(|r| [r.ratio, r.upper, r.sample]).find(|n| *n == name)
}

/// The window shown when none is asked for: [`ALERT_WINDOW`] when
/// configured, else the first configured window.
pub fn default_window(windows: &[String]) -> Option<&str> {
    windows.iter().find(|w| *w == ALERT_WINDOW).or(windows.first()).map(String::as_str)
}

/// What the static report embeds: one document per configured window (for
/// all teams) and the replay's summary.
pub fn report_data(kpi_text: &str, ctx: &Context, replay: Value) -> Result<Value, KpiJsonError> {
    let mut documents = Map::new();
    for w in ctx.windows {
        let q = Query { window: Some(w.clone()), ..Query::default() };
        documents.insert(w.clone(), document(kpi_text, None, ctx, &q)?);
    }
    Ok(json!({
        "version": VERSION,
        "window": default_window(ctx.windows),
        "documents": documents,
        "replay": replay,
    }))
}

/// The document of `GET /api/v1/kpis`: the `sales_*` series of `kpi_text`
/// (an exposition rendered by [`crate::render`]) for `q`, and the engine's
/// health from `engine_text` (its self-metrics; `None` in a replay).
pub fn document(kpi_text: &str, engine_text: Option<&str>, ctx: &Context, q: &Query) -> Result<Value, KpiJsonError> {
    let window = match &q.window {
        Some(w) if ctx.windows.iter().any(|k| k == w) => w.clone(),
        Some(w) => return Err(KpiJsonError::UnknownWindow { window: w.clone(), known: ctx.windows.join(", ") }),
        None => default_window(ctx.windows).unwrap_or_default().to_owned(),
    };
    let mut teams: BTreeMap<String, TeamEntry> = BTreeMap::new();
    let mut benchmarks = Vec::new();
    // (kpi, bound, team) -> value
    let mut bench: BTreeMap<(String, String, Option<String>), f64> = BTreeMap::new();
    for s in parse(kpi_text)? {
        if s.name == "sales_benchmark" {
            let (kpi, bound) = (s.label("kpi").unwrap_or_default().to_owned(), s.label("bound").unwrap_or_default().to_owned());
            let team = s.label("team").map(str::to_owned);
            benchmarks.push(json!({ "kpi": kpi, "bound": bound, "team": team, "value": num(s.value) }));
            bench.insert((kpi, bound, team), s.value);
            continue;
        }
        if !s.name.starts_with("sales_") {
            continue;
        }
        let Some(team) = s.label("team") else { continue };
        if q.team.as_deref().is_some_and(|t| t != team) {
            continue;
        }
        let rep = s.label("rep");
        if let (Some(want), Some(r)) = (q.rep.as_deref(), rep) {
            if want != r {
                continue;
            }
        }
        let te = teams.entry(team.to_owned()).or_default();
        let e = match rep {
            Some(r) => te.reps.entry(r.to_owned()).or_default(),
            None => &mut te.own,
        };
        match s.label("window") {
            None => {
                e.current.insert(key(&s), num(s.value));
            }
            Some(w) => {
                if w == ALERT_WINDOW {
                    if let Some(n) = alert_name(&s.name) {
                        e.alert.insert(n, s.value);
                    }
                }
                if w == window {
                    e.kpis.insert(key(&s), num(s.value));
                }
            }
        }
    }

    // Confidently below benchmark, as the alert rules select it.
    let mut below = Vec::new();
    let effective = |kpi: &str, team: &str| -> Option<f64> {
        bench.get(&(kpi.to_owned(), "min".to_owned(), Some(team.to_owned()))).or_else(|| bench.get(&(kpi.to_owned(), "min".to_owned(), None))).copied()
    };
    for (team, te) in &teams {
        let mut check = |rep: Option<&str>, e: &Entry| {
            for r in &BELOW_RULES {
                let (Some(&upper), Some(min)) = (e.alert.get(r.upper), effective(r.kpi, team)) else { continue };
                let sample = e.alert.get(r.sample).copied().unwrap_or(0.0);
                if upper < min && sample >= r.min_sample as f64 {
                    below.push(json!({
                        "team": team,
                        "rep": rep,
                        "kpi": r.kpi,
                        "window": ALERT_WINDOW,
                        "ratio": e.alert.get(r.ratio).copied().map(num),
                        "upper95": num(upper),
                        "benchmark": num(min),
                        "sample": num(sample),
                        "sample_family": r.sample,
                        "min_sample": r.min_sample,
                    }));
                }
            }
        };
        if q.rep.is_none() {
            check(None, &te.own);
        }
        for (rep, e) in &te.reps {
            check(Some(rep), e);
        }
    }

    let teams: Vec<Value> = teams
        .into_iter()
        .map(|(id, te)| {
            let mut m = te.own.json("team", &id);
            m.insert("reps".into(), Value::Array(te.reps.into_iter().map(|(r, e)| Value::Object(e.json("rep", &r))).collect()));
            Value::Object(m)
        })
        .collect();
    let engine = match engine_text {
        Some(t) => engine(t)?,
        None => Value::Null,
    };
    Ok(json!({
        "version": VERSION,
        "source": ctx.source,
        "clock": ctx.clock,
        "window": window,
        "windows": ctx.windows,
        "alert_window": ALERT_WINDOW,
        "query": { "team": q.team, "rep": q.rep, "window": q.window },
        "benchmarks": benchmarks,
        "teams": teams,
        "below_benchmark": below,
        "engine": engine,
    }))
}

/// The engine's health from its self-metrics (`salespulse_*`).
fn engine(text: &str) -> Result<Value, KpiJsonError> {
    let mut events = Map::new();
    let mut invalid = Map::new();
    let mut lag = Vec::new();
    let mut checkpoint_age = Vec::new();
    let mut scalars = Map::new();
    let mut latency = Map::new();
    for s in parse(text)? {
        match s.name.as_str() {
            "salespulse_events_total" => {
                events.insert(s.label("result").unwrap_or_default().into(), num(s.value));
            }
            "salespulse_invalid_events_total" => {
                invalid.insert(s.label("reason").unwrap_or_default().into(), num(s.value));
            }
            "salespulse_consumer_lag" | "salespulse_checkpoint_age_seconds" => {
                let v = json!({ "topic": s.label("topic"), "partition": s.label("partition"), "value": num(s.value) });
                if s.name == "salespulse_consumer_lag" { lag.push(v) } else { checkpoint_age.push(v) }
            }
            "salespulse_event_visible_latency_seconds" => {
                if let Some(q) = s.label("quantile") {
                    latency.insert(q.into(), num(s.value));
                }
            }
            "salespulse_series" | "salespulse_series_dropped" | "salespulse_state_reps" | "salespulse_state_teams" | "salespulse_ready"
            | "salespulse_assigned_partitions" | "salespulse_kafka_errors_total" => {
                scalars.insert(s.name.trim_start_matches("salespulse_").into(), num(s.value));
            }
            _ => {}
        }
    }
    let mut m = Map::new();
    m.insert("events".into(), Value::Object(events));
    m.insert("invalid".into(), Value::Object(invalid));
    m.insert("consumer_lag".into(), Value::Array(lag));
    m.insert("checkpoint_age_seconds".into(), Value::Array(checkpoint_age));
    m.insert("visible_latency_seconds".into(), Value::Object(latency));
    m.extend(scalars);
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_special_values() {
        let text = "# HELP x y\n\nsales_a{team=\"t\",rep=\"r\",window=\"7d\"} 0.5\nup 1\nm{a=\"q\\\"uo\\\\te\\n\",b=\"\"} +Inf 123\nn{} NaN\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "sales_a");
        assert_eq!(s[0].labels, [("team".into(), "t".into()), ("rep".into(), "r".into()), ("window".into(), "7d".into())]);
        assert_eq!(s[0].value, 0.5);
        assert_eq!((s[1].name.as_str(), s[1].labels.len(), s[1].value), ("up", 0, 1.0));
        assert_eq!(s[2].label("a"), Some("q\"uo\\te\n"));
        assert_eq!(s[2].label("b"), Some(""));
        assert_eq!(s[2].value, f64::INFINITY);
        assert!(s[3].value.is_nan());
        for bad in ["x{a=\"1\"", "x{a=1} 2", "x{a=\"1\"} one", "x"] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, KpiJsonError::Parse { line: 1, .. }), "{bad}: {e}");
        }
    }

    fn windows() -> Vec<String> {
        ["1h", "7d", "30d"].iter().map(|s| s.to_string()).collect()
    }

    /// Hand-made exposition: global reach min 0.35, team t2's override 0.30;
    /// pipe min 0.73.
    const TEXT: &str = "\
sales_outbound_activities{team=\"t1\",rep=\"a\",window=\"7d\"} 30
sales_reach_ratio{team=\"t1\",rep=\"a\",window=\"7d\"} 0.1
sales_reach_upper95_ratio{team=\"t1\",rep=\"a\",window=\"7d\"} 0.2
sales_outbound_activities{team=\"t1\",rep=\"b\",window=\"7d\"} 29
sales_reach_upper95_ratio{team=\"t1\",rep=\"b\",window=\"7d\"} 0.2
sales_outbound_activities{team=\"t1\",rep=\"c\",window=\"7d\"} 100
sales_reach_upper95_ratio{team=\"t1\",rep=\"c\",window=\"7d\"} 0.35
sales_outbound_activities{team=\"t1\",window=\"7d\"} 159
sales_reach_upper95_ratio{team=\"t1\",window=\"7d\"} 0.34
sales_sqls{team=\"t1\",window=\"7d\"} 9
sales_pipe_upper95_ratio{team=\"t1\",window=\"7d\"} 0.5
sales_outbound_activities{team=\"t1\",window=\"30d\"} 600
sales_spend{team=\"t1\",window=\"7d\",category=\"sales\"} 1200
sales_outbound_activities{team=\"t2\",rep=\"d\",window=\"7d\"} 50
sales_reach_upper95_ratio{team=\"t2\",rep=\"d\",window=\"7d\"} 0.32
sales_sqls{team=\"t2\",rep=\"d\",window=\"7d\"} 10
sales_pipe_upper95_ratio{team=\"t2\",rep=\"d\",window=\"7d\"} 0.7
sales_open_deals{team=\"t2\",rep=\"d\"} 3
sales_quota{team=\"t2\",period=\"month\"} 50000
sales_benchmark{kpi=\"reach_ratio\",bound=\"min\"} 0.35
sales_benchmark{kpi=\"reach_ratio\",bound=\"min\",team=\"t2\"} 0.3
sales_benchmark{kpi=\"pipe_ratio\",bound=\"min\"} 0.73
";

    fn below(doc: &Value) -> Vec<(String, Option<String>, String)> {
        doc["below_benchmark"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["team"].as_str().unwrap().to_owned(), b["rep"].as_str().map(str::to_owned), b["kpi"].as_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn below_benchmark_is_the_alert_rules_selection() {
        let w = windows();
        let ctx = Context { windows: &w, clock: None, source: "replay" };
        let doc = document(TEXT, None, &ctx, &Query::default()).unwrap();
        // a: 0.2 < 0.35 with 30 activities (the minimum): in.
        // b: 29 activities: out. c: 0.35 is not below 0.35: out.
        // t1: 0.34 < 0.35 with 159: in; its pipe 0.5 < 0.73 but 9 SQLs: out.
        // d: 0.32 is above t2's override 0.30: out; pipe 0.7 < 0.73 with 10 SQLs: in.
        assert_eq!(
            below(&doc),
            [
                ("t1".into(), None, "reach_ratio".into()),
                ("t1".into(), Some("a".into()), "reach_ratio".into()),
                ("t2".into(), Some("d".into()), "pipe_ratio".into()),
            ]
        );
        let a = &doc["below_benchmark"][1];
        assert_eq!((a["ratio"].as_f64(), a["upper95"].as_f64(), a["benchmark"].as_f64(), a["sample"].as_f64()), (Some(0.1), Some(0.2), Some(0.35), Some(30.0)));
        assert_eq!(a["min_sample"], 30);
        // only the filtered rep, team entries not listed
        let doc = document(TEXT, None, &ctx, &Query { rep: Some("d".into()), ..Query::default() }).unwrap();
        assert_eq!(below(&doc), [("t2".into(), Some("d".into()), "pipe_ratio".into())]);
    }

    #[test]
    fn grouping_window_and_filters() {
        let w = windows();
        let ctx = Context { windows: &w, clock: Some("2026-11-16T12:00:00Z".into()), source: "live" };
        let doc = document(TEXT, None, &ctx, &Query::default()).unwrap();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["window"], "7d", "7d is the default window");
        let t1 = &doc["teams"][0];
        assert_eq!(t1["team"], "t1");
        assert_eq!(t1["kpis"]["sales_outbound_activities"], 159);
        assert_eq!(t1["kpis"]["sales_spend{category=\"sales\"}"], 1200);
        assert_eq!(t1["reps"].as_array().unwrap().len(), 3);
        assert_eq!(doc["teams"][1]["reps"][0]["current"]["sales_open_deals"], 3);
        assert_eq!(doc["teams"][1]["current"]["sales_quota{period=\"month\"}"], 50000);
        assert_eq!(doc["benchmarks"].as_array().unwrap().len(), 3);
        assert_eq!(doc["benchmarks"][1]["team"], "t2");

        let doc = document(TEXT, None, &ctx, &Query { window: Some("30d".into()), team: Some("t1".into()), rep: None }).unwrap();
        assert_eq!(doc["teams"].as_array().unwrap().len(), 1);
        assert_eq!(doc["teams"][0]["kpis"], json!({ "sales_outbound_activities": 600 }));
        // the below list stays the alert window's
        assert_eq!(below(&doc).len(), 2);

        let doc = document(TEXT, None, &ctx, &Query { rep: Some("b".into()), ..Query::default() }).unwrap();
        let reps = doc["teams"][0]["reps"].as_array().unwrap();
        assert_eq!(reps.len(), 1);
        assert_eq!(reps[0]["rep"], "b");
        assert_eq!(doc["teams"][0]["kpis"]["sales_outbound_activities"], 159, "the team's own entry stays");

        let e = document(TEXT, None, &ctx, &Query { window: Some("2h".into()), ..Query::default() }).unwrap_err();
        assert_eq!(e.to_string(), "window \"2h\" is not configured; windows: 1h, 7d, 30d");
    }

    #[test]
    fn engine_health_from_self_metrics() {
        let text = "\
salespulse_events_total{result=\"applied\"} 100
salespulse_events_total{result=\"invalid\"} 3
salespulse_invalid_events_total{reason=\"json\"} 3
salespulse_consumer_lag{partition=\"0\",topic=\"crm-events\"} 12
salespulse_checkpoint_age_seconds{partition=\"0\",topic=\"crm-events\"} 4.5
salespulse_series 1234
salespulse_event_visible_latency_seconds{quantile=\"0.5\"} 0.2
salespulse_render_duration_seconds_count 5
";
        let w = windows();
        let ctx = Context { windows: &w, clock: None, source: "live" };
        let doc = document("", Some(text), &ctx, &Query::default()).unwrap();
        let e = &doc["engine"];
        assert_eq!(e["events"], json!({ "applied": 100, "invalid": 3 }));
        assert_eq!(e["invalid"], json!({ "json": 3 }));
        assert_eq!(e["consumer_lag"], json!([{ "topic": "crm-events", "partition": "0", "value": 12 }]));
        assert_eq!(e["checkpoint_age_seconds"][0]["value"], 4.5);
        assert_eq!(e["series"], 1234);
        assert_eq!(e["visible_latency_seconds"]["0.5"], 0.2);
        assert_eq!(document("", None, &ctx, &Query::default()).unwrap()["engine"], Value::Null);
    }

    /// The alert rules select with the same window, families, minimum
    /// samples and benchmark as [`BELOW_RULES`].
    #[test]
    fn below_rules_match_the_alert_rules() {
        let rules = include_str!("../deploy/prometheus/rules/salespulse-alerts.yml");
        for r in &BELOW_RULES {
            for scope in ["rep!=\"\"", "rep=\"\""] {
                let upper = format!("({}{{window=\"{ALERT_WINDOW}\", {scope}}})", r.upper);
                let sample = format!("({}{{window=\"{ALERT_WINDOW}\", {scope}}}) >= {}", r.sample, r.min_sample);
                let bench = format!("sales:benchmark:effective{{kpi=\"{}\", bound=\"min\"}}", r.kpi);
                let found = rules.split("- alert:").any(|a| a.contains(&upper) && a.contains(&sample) && a.contains(&bench) && a.contains("\n        < on (team)"));
                assert!(found, "no alert rule with {upper}, {sample} and < {bench}");
            }
        }
    }
}
