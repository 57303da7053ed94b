//! The declarative mapping engine: one CRM webhook event (JSON) → one
//! contract event (JSON) or nothing (`ignored`). The presets in
//! `presets/*.toml` (Pipedrive, Close, HubSpot) and users' own mappings are
//! written in this one format; `docs/bridge.md` documents it.
//!
//! Owns: the mapping file format, rule selection (first rule whose `when`
//! matches), field paths and templates, value maps, lookups (through the
//! [`Lookup`] trait), time and number conversions.
//! Must not touch: I/O (lookup tables and fetched CRM objects are handed
//! in), validation (the bridge validates the result with the engine's own
//! `parse_event`, so a mapping can never produce what the engine refuses).
//!
//! A mapping file:
//!
//! ```toml
//! [[rules]]
//! emit = "deal.won"                          # a contract event type
//! when = { "meta.entity" = "deal", "data.status" = "won", "previous.status" = { exists = true, not = "won" } }
//! [rules.fields]
//! event_id = "pipedrive:{meta.id}"           # a template: text and {paths}
//! amount = "{data.value}"                    # one {path} alone keeps the JSON type
//! occurred_at = { path = "meta.timestamp", time = "rfc3339" }
//! rep_id = { path = "data.owner_id", lookup = "owners.rep_id" }
//! outcome = { path = "data.disposition", map = "dispositions", default = "connected" }
//! [maps.dispositions]
//! answered = "meaningful"
//! ```
//!
//! A field whose value is absent (a path that is not there or `null`, a
//! lookup or map miss without `default`) is left out of the event, so the
//! engine's validation names it (`missing_field`) when the type requires it:
//! nothing is invented.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::event::EventType;
use crate::time::{format_rfc3339, parse_rfc3339, MICROS_PER_SEC};

/// A mapping that cannot be used, with what is wrong in the user's words.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("mapping {name}: {msg}")]
    Invalid { name: String, msg: String },
    #[error("mapping {name}: not valid TOML: {source}")]
    Toml { name: String, source: toml::de::Error },
}

/// Lookup tables, by name: the row of `key` (or the `*` row), one column.
pub trait Lookup {
    fn get(&self, table: &str, key: &str, column: &str) -> Option<String>;
    fn has_table(&self, table: &str) -> bool;
}

/// No lookup tables (tests, mappings without lookups).
pub struct NoLookups;

impl Lookup for NoLookups {
    fn get(&self, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }
    fn has_table(&self, _: &str) -> bool {
        false
    }
}

/// The contract's field names (`events.md`): a mapping may set only these.
pub const CONTRACT_FIELDS: &[&str] = &[
    "event_id",
    "occurred_at",
    "team_id",
    "rep_id",
    "lead_id",
    "source",
    "stage",
    "outcome",
    "direction",
    "duration_s",
    "meeting_id",
    "scheduled_for",
    "status",
    "rescheduled_by",
    "deal_id",
    "amount",
    "product_line",
    "kind",
    "margin",
    "reason",
    "score",
    "customer_id",
    "mrr",
    "category",
    "period",
    "period_start",
    "currency",
];

// ---------------------------------------------------------------- file format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMapping {
    #[serde(default)]
    rules: Vec<FileRule>,
    #[serde(default)]
    maps: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    emit: String,
    #[serde(default)]
    when: BTreeMap<String, toml::Value>,
    fetch: Option<FileFetch>,
    #[serde(default)]
    fields: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFetch {
    object: String,
    id: String,
    #[serde(default)]
    properties: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileField {
    path: Option<String>,
    template: Option<String>,
    value: Option<toml::Value>,
    map: Option<String>,
    lookup: Option<String>,
    time: Option<String>,
    #[serde(default)]
    number: bool,
    divide: Option<f64>,
    default: Option<toml::Value>,
}

// ---------------------------------------------------------------- compiled form

/// `a.b.0.c`; a leading `fetched.` reads the object fetched for the rule.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    fetched: bool,
    segs: Vec<String>,
}

impl Path {
    fn parse(s: &str) -> Option<Path> {
        let s = s.trim();
        if s.is_empty() || s.split('.').any(str::is_empty) {
            return None;
        }
        let mut segs: Vec<String> = s.split('.').map(str::to_string).collect();
        let fetched = segs.len() > 1 && segs[0] == "fetched";
        if fetched {
            segs.remove(0);
        }
        Some(Path { fetched, segs })
    }

    fn resolve<'v>(&self, doc: &Doc<'v>) -> Option<&'v Value> {
        let mut v = if self.fetched { doc.fetched? } else { doc.event };
        for s in &self.segs {
            v = match v {
                Value::Object(m) => m.get(s)?,
                Value::Array(a) => a.get(s.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        (!v.is_null()).then_some(v)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Path(Path),
}

/// Text with `{path}` placeholders.
#[derive(Debug, Clone, PartialEq)]
struct Template(Vec<Part>);

impl Template {
    fn parse(s: &str) -> Option<Template> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            if i > 0 {
                parts.push(Part::Lit(rest[..i].to_string()));
            }
            let end = rest[i..].find('}')? + i;
            parts.push(Part::Path(Path::parse(&rest[i + 1..end])?));
            rest = &rest[end + 1..];
        }
        if rest.contains('}') {
            return None;
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Some(Template(parts))
    }

    /// One placeholder and nothing else: the value keeps its JSON type.
    fn eval(&self, doc: &Doc<'_>) -> Option<Value> {
        if let [Part::Path(p)] = self.0.as_slice() {
            return p.resolve(doc).filter(|v| text(v).is_some()).cloned();
        }
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Path(p) => out.push_str(&text(p.resolve(doc)?)?),
            }
        }
        Some(Value::String(out))
    }
}

/// The text of a scalar (strings as they are, numbers as JSON writes them).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Eq(Vec<String>),
    Not(Vec<String>),
    Exists(bool),
    Contains(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TimeFmt {
    Rfc3339,
    UnixMs,
    UnixS,
    Auto,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Template(Template),
    /// The first of these templates whose paths are all there.
    First(Vec<Template>),
    Const(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    source: Source,
    map: Option<String>,
    lookup: Option<(String, String)>,
    time: Option<TimeFmt>,
    number: bool,
    divide: Option<f64>,
    default: Option<Value>,
}

/// What to fetch before a rule's fields are evaluated (HubSpot's objects
/// API): `object` type, the id (a template), and the properties to ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchSpec {
    pub object: String,
    id: Template,
    pub properties: Vec<String>,
}

/// A fetch, rendered for one CRM event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchRequest {
    pub object: String,
    pub id: String,
    pub properties: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    emit: EventType,
    when: Vec<(Path, Vec<Cond>)>,
    fetch: Option<FetchSpec>,
    fields: Vec<Field>,
}

/// A compiled mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    rules: Vec<Rule>,
    maps: HashMap<String, HashMap<String, String>>,
}

/// What paths read: the CRM event and, for a rule with `fetch`, the fetched
/// object (`fetched.` paths).
struct Doc<'v> {
    event: &'v Value,
    fetched: Option<&'v Value>,
}

fn json_of(v: &toml::Value) -> Option<Value> {
    Some(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::Number((*i).into()),
        toml::Value::Float(f) => Value::Number(Number::from_f64(*f)?),
        toml::Value::Boolean(b) => Value::Bool(*b),
        _ => return None,
    })
}

fn scalar_text(v: &toml::Value) -> Option<String> {
    json_of(v).as_ref().and_then(text)
}

impl Mapping {
    /// Parses and checks a mapping file. `name` is for messages.
    pub fn parse(name: &str, text_: &str) -> Result<Mapping, MappingError> {
        let bad = |msg: String| MappingError::Invalid { name: name.to_string(), msg };
        let f: FileMapping = toml::from_str(text_).map_err(|source| MappingError::Toml { name: name.to_string(), source })?;
        if f.rules.is_empty() {
            return Err(bad("no [[rules]]".into()));
        }
        let maps: HashMap<String, HashMap<String, String>> =
            f.maps.into_iter().map(|(k, m)| (k, m.into_iter().collect())).collect();
        let mut rules = Vec::new();
        for (i, r) in f.rules.into_iter().enumerate() {
            let at = format!("rule {} ({})", i + 1, r.emit);
            let emit = EventType::parse(&r.emit).ok_or_else(|| bad(format!("{at}: emit {:?} is not a contract event type", r.emit)))?;
            let mut when = Vec::new();
            for (p, v) in &r.when {
                let path = Path::parse(p).ok_or_else(|| bad(format!("{at}: when {p:?} is not a field path")))?;
                when.push((path, Self::conds(v).map_err(|m| bad(format!("{at}: when {p:?}: {m}")))?));
            }
            let fetch = match r.fetch {
                None => None,
                Some(ff) => Some(FetchSpec {
                    object: ff.object,
                    id: Template::parse(&ff.id).ok_or_else(|| bad(format!("{at}: fetch id {:?} is not a template", ff.id)))?,
                    properties: ff.properties,
                }),
            };
            let mut fields = Vec::new();
            for (k, v) in &r.fields {
                if !CONTRACT_FIELDS.contains(&k.as_str()) {
                    return Err(bad(format!("{at}: {k:?} is not a contract field (type is set by emit)")));
                }
                let field = Self::field(k, v, &maps).map_err(|m| bad(format!("{at}: field {k}: {m}")))?;
                if fetch.is_none() && Self::reads_fetched(&field) {
                    return Err(bad(format!("{at}: field {k} reads fetched.* but the rule has no [rules.fetch]")));
                }
                fields.push(field);
            }
            for need in ["event_id", "occurred_at", "team_id"] {
                if !r.fields.contains_key(need) {
                    return Err(bad(format!("{at}: no {need} field (every event needs one)")));
                }
            }
            rules.push(Rule { emit, when, fetch, fields });
        }
        Ok(Mapping { name: name.to_string(), rules, maps })
    }

    fn reads_fetched(f: &Field) -> bool {
        let fetched = |t: &Template| t.0.iter().any(|p| matches!(p, Part::Path(p) if p.fetched));
        match &f.source {
            Source::Template(t) => fetched(t),
            Source::First(ts) => ts.iter().any(fetched),
            Source::Const(_) => false,
        }
    }

    fn conds(v: &toml::Value) -> Result<Vec<Cond>, String> {
        let list = |v: &toml::Value| -> Result<Vec<String>, String> {
            match v {
                toml::Value::Array(a) => a.iter().map(|x| scalar_text(x).ok_or_else(|| "list items must be scalars".to_string())).collect(),
                x => Ok(vec![scalar_text(x).ok_or("expected a scalar or a list")?]),
            }
        };
        match v {
            toml::Value::Table(t) => {
                let mut out = Vec::new();
                for (op, x) in t {
                    out.push(match op.as_str() {
                        "eq" | "in" => Cond::Eq(list(x)?),
                        "not" | "not_in" => Cond::Not(list(x)?),
                        "exists" => Cond::Exists(x.as_bool().ok_or("exists takes true or false")?),
                        "contains" => Cond::Contains(scalar_text(x).ok_or("contains takes a scalar")?),
                        other => return Err(format!("unknown operator {other:?} (eq, in, not, not_in, exists, contains)")),
                    });
                }
                Ok(out)
            }
            x => Ok(vec![Cond::Eq(list(x)?)]),
        }
    }

    fn field(name: &str, v: &toml::Value, maps: &HashMap<String, HashMap<String, String>>) -> Result<Field, String> {
        let template = |s: &str| Template::parse(s).map(Source::Template).ok_or_else(|| format!("{s:?} is not a template (unbalanced braces or an empty path)"));
        let mut f = Field { name: name.to_string(), source: Source::Const(Value::Null), map: None, lookup: None, time: None, number: false, divide: None, default: None };
        match v {
            toml::Value::String(s) => f.source = template(s)?,
            toml::Value::Array(a) => {
                let ts = a
                    .iter()
                    .map(|x| match x.as_str().map(Template::parse) {
                        Some(Some(t)) => Ok(t),
                        _ => Err(format!("{x} is not a template string")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if ts.is_empty() {
                    return Err("an empty list of templates".into());
                }
                f.source = Source::First(ts);
            }
            toml::Value::Table(_) => {
                let ff: FileField = v.clone().try_into().map_err(|e: toml::de::Error| e.message().to_string())?;
                f.source = match (ff.path, ff.template, ff.value) {
                    (Some(p), None, None) => Source::Template(Template(vec![Part::Path(Path::parse(&p).ok_or_else(|| format!("{p:?} is not a path"))?)])),
                    (None, Some(t), None) => template(&t)?,
                    (None, None, Some(c)) => Source::Const(json_of(&c).ok_or("value must be a scalar")?),
                    _ => return Err("needs exactly one of path, template, value".into()),
                };
                if let Some(m) = ff.map {
                    if !maps.contains_key(&m) {
                        return Err(format!("map {m:?} is not defined in [maps]"));
                    }
                    f.map = Some(m);
                }
                if let Some(l) = ff.lookup {
                    let (t, c) = l.split_once('.').ok_or_else(|| format!("lookup {l:?}: expected table.column"))?;
                    f.lookup = Some((t.to_string(), c.to_string()));
                }
                f.time = match ff.time.as_deref() {
                    None => None,
                    Some("rfc3339") => Some(TimeFmt::Rfc3339),
                    Some("unix_ms") => Some(TimeFmt::UnixMs),
                    Some("unix_s") => Some(TimeFmt::UnixS),
                    Some("auto") => Some(TimeFmt::Auto),
                    Some(o) => return Err(format!("time {o:?}: expected rfc3339, unix_ms, unix_s or auto")),
                };
                if ff.divide.is_some_and(|d| !(d.is_finite() && d != 0.0)) {
                    return Err("divide must be a non-zero number".into());
                }
                f.number = ff.number || ff.divide.is_some();
                f.divide = ff.divide;
                f.default = ff.default.as_ref().map(|d| json_of(d).ok_or("default must be a scalar")).transpose()?;
            }
            other => f.source = Source::Const(json_of(other).ok_or("expected a template string, a scalar or a table")?),
        }
        Ok(f)
    }

    /// The lookup tables this mapping reads (to check they are configured).
    pub fn lookup_tables(&self) -> Vec<String> {
        let mut t: Vec<String> = self.rules.iter().flat_map(|r| r.fields.iter().filter_map(|f| f.lookup.as_ref().map(|l| l.0.clone()))).collect();
        t.sort();
        t.dedup();
        t
    }

    /// Whether any rule fetches an object first.
    pub fn fetches(&self) -> bool {
        self.rules.iter().any(|r| r.fetch.is_some())
    }

    /// The first rule whose conditions all hold, if any (none: `ignored`).
    pub fn select(&self, event: &Value) -> Option<usize> {
        let doc = Doc { event, fetched: None };
        self.rules.iter().position(|r| r.when.iter().all(|(p, cs)| cs.iter().all(|c| holds(c, p.resolve(&doc)))))
    }

    /// What rule `rule` needs fetched for `event`; `None` when nothing (or
    /// when the id's paths are absent: the fields then decide).
    pub fn fetch_request(&self, rule: usize, event: &Value) -> Option<FetchRequest> {
        let f = self.rules.get(rule)?.fetch.as_ref()?;
        let id = f.id.eval(&Doc { event, fetched: None }).as_ref().and_then(text)?;
        Some(FetchRequest { object: f.object.clone(), id, properties: f.properties.clone() })
    }

    /// The contract event of rule `rule` for `event` (fields in the rule's
    /// order, `type` from `emit`).
    pub fn build(&self, rule: usize, event: &Value, fetched: Option<&Value>, lookups: &dyn Lookup) -> Map<String, Value> {
        let mut out = Map::new();
        let Some(r) = self.rules.get(rule) else { return out };
        let doc = Doc { event, fetched };
        out.insert("type".into(), Value::String(r.emit.as_str().into()));
        for f in &r.fields {
            if let Some(v) = self.eval(f, &doc, lookups) {
                out.insert(f.name.clone(), v);
            }
        }
        out
    }

    fn eval(&self, f: &Field, doc: &Doc<'_>, lookups: &dyn Lookup) -> Option<Value> {
        let v = match &f.source {
            Source::Template(t) => t.eval(doc),
            Source::First(ts) => ts.iter().find_map(|t| t.eval(doc)),
            Source::Const(c) => Some(c.clone()),
        };
        let v = v.and_then(|v| {
            let v = match &f.map {
                Some(m) => Value::String(self.maps.get(m)?.get(&text(&v)?)?.clone()),
                None => v,
            };
            let v = match &f.lookup {
                Some((t, c)) => Value::String(lookups.get(t, &text(&v)?, c)?),
                None => v,
            };
            let v = match f.time {
                Some(fmt) => Value::String(convert_time(&v, fmt)?),
                None => v,
            };
            if f.number {
                let n = match &v {
                    Value::Number(n) => n.as_f64()?,
                    Value::String(s) => s.trim().parse::<f64>().ok()?,
                    _ => return None,
                };
                let n = n / f.divide.unwrap_or(1.0);
                // Whole numbers stay integers (`score`), others are doubles.
                return Some(if n.fract() == 0.0 && n.abs() < 9.0e15 { Value::Number((n as i64).into()) } else { Value::Number(Number::from_f64(n)?) });
            }
            Some(v)
        });
        v.or_else(|| f.default.clone())
    }
}

fn holds(c: &Cond, v: Option<&Value>) -> bool {
    match c {
        Cond::Exists(want) => v.is_some() == *want,
        Cond::Eq(list) => v.and_then(text).is_some_and(|t| list.contains(&t)),
        Cond::Not(list) => !v.and_then(text).is_some_and(|t| list.contains(&t)),
        Cond::Contains(x) => match v {
            Some(Value::Array(a)) => a.iter().filter_map(text).any(|t| &t == x),
            Some(Value::String(s)) => s.contains(x.as_str()),
            _ => false,
        },
    }
}

/// A CRM time → RFC 3339. `rfc3339` also takes a date and time without an
/// offset (`2026-11-02 10:05:00`, `2026-11-02T10:05:00.123456`), read as
/// UTC; `unix_ms`/`unix_s` take numbers or numeric strings; `auto` takes
/// any of these (numbers above 10^11 are milliseconds).
fn convert_time(v: &Value, fmt: TimeFmt) -> Option<String> {
    let num = || -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let from_s = |s: f64| format_rfc3339((s * MICROS_PER_SEC as f64).round() as i64);
    match fmt {
        TimeFmt::UnixMs => Some(from_s(num()? / 1000.0)),
        TimeFmt::UnixS => Some(from_s(num()?)),
        TimeFmt::Auto => match num() {
            Some(n) if n.abs() >= 1e11 => Some(from_s(n / 1000.0)),
            Some(n) => Some(from_s(n)),
            None => convert_time(v, TimeFmt::Rfc3339),
        },
        TimeFmt::Rfc3339 => {
            let s = v.as_str()?.trim();
            if parse_rfc3339(s).is_some() {
                return Some(s.to_string());
            }
            let t = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())?;
            Some(format_rfc3339(t.and_utc().timestamp_micros()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Owners;
    impl Lookup for Owners {
        fn get(&self, table: &str, key: &str, column: &str) -> Option<String> {
            match (table, key, column) {
                ("owners", "7", "rep_id") => Some("ana".into()),
                ("owners", "7", "team_id") => Some("emea-smb".into()),
                _ => None,
            }
        }
        fn has_table(&self, t: &str) -> bool {
            t == "owners"
        }
    }

    const M: &str = r#"
[[rules]]
emit = "deal.won"
when = { "kind" = "deal", "now.status" = "won", "before.status" = { exists = true, not = "won" } }
[rules.fields]
event_id = "crm:{id}"
occurred_at = { path = "at", time = "unix_ms" }
team_id = { path = "owner", lookup = "owners.team_id" }
rep_id = { path = "owner", lookup = "owners.rep_id" }
deal_id = "D-{now.id}"
amount = { path = "now.cents", divide = 100 }

[[rules]]
emit = "call.logged"
when = { "kind" = { in = ["call", "phone"] }, "tags" = { contains = "done" } }
[rules.fields]
event_id = "crm:{id}"
occurred_at = { path = "at", time = "rfc3339" }
team_id = { value = "t1" }
rep_id = { path = "owner", lookup = "owners.rep_id" }
outcome = { path = "disposition", map = "disp", default = "connected" }
duration_s = "{secs}"

[maps.disp]
answered = "meaningful"
no-answer = "no_answer"
"#;

    #[test]
    fn first_matching_rule_and_its_fields() {
        let m = Mapping::parse("test", M).unwrap();
        let ev = json!({"id": 42, "kind": "deal", "at": 1_700_000_000_123i64, "owner": 7, "now": {"status": "won", "id": 9, "cents": 1234550}, "before": {"status": "open"}});
        let r = m.select(&ev).unwrap();
        assert_eq!(r, 0);
        let out = m.build(r, &ev, None, &Owners);
        assert_eq!(
            Value::Object(out),
            json!({"type": "deal.won", "event_id": "crm:42", "occurred_at": "2023-11-14T22:13:20.123Z", "team_id": "emea-smb", "rep_id": "ana", "deal_id": "D-9", "amount": 12345.5})
        );
        // previous status missing or already won: not a transition
        assert_eq!(m.select(&json!({"kind": "deal", "now": {"status": "won"}})), None);
        assert_eq!(m.select(&json!({"kind": "deal", "now": {"status": "won"}, "before": {"status": "won"}})), None);
        assert_eq!(m.select(&json!({"kind": "lead"})), None);
    }

    #[test]
    fn maps_defaults_and_absent_values() {
        let m = Mapping::parse("test", M).unwrap();
        let ev = json!({"id": "c1", "kind": "phone", "tags": ["x", "done"], "at": "2026-11-02 10:05:00", "owner": 8, "disposition": "answered", "secs": 61});
        assert_eq!(m.select(&ev), Some(1));
        let out = m.build(1, &ev, None, &Owners);
        // owner 8 is not in the table: no rep_id (the engine says missing_field)
        assert_eq!(
            Value::Object(out),
            json!({"type": "call.logged", "event_id": "crm:c1", "occurred_at": "2026-11-02T10:05:00.000Z", "team_id": "t1", "outcome": "meaningful", "duration_s": 61})
        );
        let ev = json!({"id": "c2", "kind": "call", "tags": ["done"], "at": "2026-11-02T10:05:00Z", "owner": 7, "disposition": "busy"});
        let out = m.build(1, &ev, None, &Owners);
        assert_eq!(out.get("outcome"), Some(&json!("connected")));
        assert_eq!(out.get("rep_id"), Some(&json!("ana")));
        assert_eq!(out.get("duration_s"), None);
        assert_eq!(out.get("occurred_at"), Some(&json!("2026-11-02T10:05:00Z")));
    }

    #[test]
    fn first_template_that_resolves_and_auto_times() {
        let m = Mapping::parse(
            "f",
            r#"
[[rules]]
emit = "lead.created"
[rules.fields]
event_id = "x:{id}"
occurred_at = { path = "t", time = "auto" }
team_id = "t"
lead_id = ["lead:{lead}", "person:{person}"]
"#,
        )
        .unwrap();
        let b = |ev: Value| Value::Object(m.build(0, &ev, None, &NoLookups));
        assert_eq!(b(json!({"id": 1, "t": 1_700_000_000, "lead": "a", "person": 2}))["lead_id"], json!("lead:a"));
        assert_eq!(b(json!({"id": 1, "t": 1_700_000_000, "person": 2}))["occurred_at"], json!("2023-11-14T22:13:20.000Z"));
        assert_eq!(b(json!({"id": 1, "t": 1_700_000_000_250i64, "person": 2}))["occurred_at"], json!("2023-11-14T22:13:20.250Z"));
        assert_eq!(b(json!({"id": 1, "t": "2026-01-15T12:48:23.395000", "person": 2}))["occurred_at"], json!("2026-01-15T12:48:23.395Z"));
        assert_eq!(b(json!({"id": 1, "t": "2026-01-15T12:48:23.395+01:00", "person": 2}))["occurred_at"], json!("2026-01-15T12:48:23.395+01:00"));
        assert_eq!(b(json!({"id": 1, "t": "2026-01-15T12:48:23.395+01:00", "person": 2}))["lead_id"], json!("person:2"));
        assert_eq!(b(json!({"id": 1, "t": "yesterday"})).get("occurred_at"), None);
        assert_eq!(b(json!({"id": 1, "t": 0})).get("lead_id"), None);
    }

    #[test]
    fn fetched_objects() {
        let m = Mapping::parse(
            "f",
            r#"
[[rules]]
emit = "deal.created"
when = { "subscriptionType" = "deal.creation" }
fetch = { object = "deals", id = "{objectId}", properties = ["amount"] }
[rules.fields]
event_id = "hs:{eventId}"
occurred_at = { path = "occurredAt", time = "unix_ms" }
team_id = "t"
rep_id = "r"
deal_id = "hubspot:deal:{objectId}"
amount = { path = "fetched.properties.amount", number = true }
"#,
        )
        .unwrap();
        let ev = json!({"eventId": 5, "subscriptionType": "deal.creation", "objectId": 77, "occurredAt": 0});
        let r = m.select(&ev).unwrap();
        assert_eq!(m.fetch_request(r, &ev), Some(FetchRequest { object: "deals".into(), id: "77".into(), properties: vec!["amount".into()] }));
        let obj = json!({"id": "77", "properties": {"amount": "1200.50"}});
        let out = m.build(r, &ev, Some(&obj), &NoLookups);
        assert_eq!(out.get("amount"), Some(&json!(1200.5)));
        assert_eq!(out.get("deal_id"), Some(&json!("hubspot:deal:77")));
        assert_eq!(m.build(r, &ev, None, &NoLookups).get("amount"), None);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |s: &str| Mapping::parse("x", s).unwrap_err().to_string();
        assert!(e("[[rules]]\nemit = \"deal.wonn\"\n").contains("deal.wonn"));
        assert!(e("[[rules]]\nemit = \"deal.won\"\n[rules.fields]\nevent_id = \"a\"\noccurred_at = \"b\"\nteam_id = \"c\"\nammount = 1\n").contains("ammount"));
        assert!(e("[[rules]]\nemit = \"deal.won\"\n[rules.fields]\nevent_id = \"{a\"\noccurred_at = \"b\"\nteam_id = \"c\"\n").contains("not a template"));
        assert!(e("[[rules]]\nemit = \"deal.won\"\n[rules.fields]\nevent_id = \"a\"\noccurred_at = \"b\"\n").contains("no team_id"));
        assert!(e("[[rules]]\nemit = \"deal.won\"\n[rules.fields]\nevent_id = \"a\"\noccurred_at = \"b\"\nteam_id = { path = \"x\", map = \"nope\" }\n").contains("nope"));
        assert!(e("[[rules]]\nemit = \"deal.won\"\nwhen = { a = { like = 1 } }\n[rules.fields]\nevent_id = \"a\"\noccurred_at = \"b\"\nteam_id = \"c\"\n").contains("like"));
        assert!(e("rules = 5").contains("not valid TOML"));
    }
}
