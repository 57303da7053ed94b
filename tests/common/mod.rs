//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod demo;
pub mod kafka;

use std::collections::BTreeMap;

use salespulse::config::{Config, CoreConfig};
use salespulse::engine::{Clock, Core, Shard};
use salespulse::time::parse_rfc3339;

/// A series key with its labels in sorted order: `name{a="x",b="y"}`.
pub fn canonical(name: &str, labels: &str) -> String {
    let mut parts: Vec<&str> = if labels.is_empty() { vec![] } else { labels.split(',').collect() };
    parts.sort();
    format!("{name}{{{}}}", parts.join(","))
}

/// Parses Prometheus text into `series -> value`, skipping comments. Panics on
/// a malformed line (tests only feed it well-formed exposition).
pub fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let key = canonical(name, labels);
        assert!(out.insert(key.clone(), v).is_none(), "duplicate series {key}");
    }
    out
}

/// Relative/absolute closeness for amounts summed in different orders.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Differences between two expositions, for assertion messages.
pub fn diff(want: &BTreeMap<String, f64>, got: &BTreeMap<String, f64>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => d.push(format!("missing {k} (want {v})")),
            Some(g) if !close(*g, *v) => d.push(format!("{k}: want {v} got {g}")),
            _ => {}
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            d.push(format!("unexpected {k} = {v}"));
        }
    }
    d
}

pub fn ts(s: &str) -> i64 {
    parse_rfc3339(s).unwrap_or_else(|| panic!("bad timestamp {s}"))
}

pub fn core_from(toml: &str, clock: Clock) -> Core {
    let cfg: CoreConfig = Config::from_toml(toml).expect("test config").core().expect("core config");
    Core::new(cfg, clock)
}

/// Folds `lines` with `core` and renders at the shard's clock.
pub fn fold_render(core: &Core, lines: &[String], wall: i64) -> (Shard, BTreeMap<String, f64>) {
    let mut shard = Shard::new();
    for l in lines {
        shard.ingest(core, l.as_bytes(), wall);
    }
    let t = shard.clock(core, wall).unwrap_or(wall);
    let text = salespulse::render::render_string(&[&shard], core, t);
    (shard, parse_exposition(&text))
}

/// Only the `sales_*` series.
pub fn sales_only(m: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    m.iter().filter(|(k, _)| k.starts_with("sales_")).map(|(k, v)| (k.clone(), *v)).collect()
}

/// The value of label `name` in a canonical series key.
pub fn label<'a>(key: &'a str, name: &str) -> Option<&'a str> {
    let labels = key.split_once('{')?.1.trim_end_matches('}');
    labels.split(',').find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'))
}

/// The family (metric name) of a series key.
pub fn family(key: &str) -> &str {
    key.split('{').next().unwrap_or(key)
}
