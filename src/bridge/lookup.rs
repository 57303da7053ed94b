//! Lookup tables for mappings (`[bridge.lookups.<name>]`): CRM owner id →
//! `rep_id`/`team_id` and the like, inline in the configuration or from a
//! CSV file that is read again when it changes.
//!
//! Owns: CSV parsing (a header row naming the columns, the first column is
//! the key), the `*` fallback row, reloading.
//! Must not touch: mappings (they read tables through [`Lookup`]).
//!
//! Reloading polls the file's modification time and size every two seconds
//! rather than using inotify: a Kubernetes ConfigMap or Secret volume swaps
//! a symlink, which file watchers on the file itself miss. A file that does
//! not parse keeps the previous table (logged).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::mapping::Lookup;
use crate::config::LookupConfig;

/// One table: columns and rows by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    columns: Vec<String>,
    rows: HashMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("lookup {name}: {path}: {msg}")]
    File { name: String, path: String, msg: String },
    #[error("lookup {name}: set file or rows, not both")]
    Both { name: String },
}

impl Table {
    /// Reads CSV: a header row (the first column is the key), then rows.
    pub fn from_csv(data: &[u8]) -> Result<Table, String> {
        let mut r = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(data);
        let headers = r.headers().map_err(|e| e.to_string())?.clone();
        if headers.len() < 2 {
            return Err("needs a header row with the key column and at least one more".into());
        }
        let columns: Vec<String> = headers.iter().skip(1).map(str::to_string).collect();
        let mut rows = HashMap::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| e.to_string())?;
            let mut it = rec.iter();
            let key = it.next().unwrap_or_default().to_string();
            rows.insert(key, it.map(str::to_string).collect());
        }
        Ok(Table { columns, rows })
    }

    fn from_rows(rows: &BTreeMap<String, BTreeMap<String, String>>) -> Table {
        let mut columns: Vec<String> = rows.values().flat_map(|r| r.keys().cloned()).collect();
        columns.sort();
        columns.dedup();
        let rows = rows
            .iter()
            .map(|(k, r)| (k.clone(), columns.iter().map(|c| r.get(c).cloned().unwrap_or_default()).collect()))
            .collect();
        Table { columns, rows }
    }

    /// The `column` of `key`'s row, else of the `*` row; empty cells are absent.
    pub fn get(&self, key: &str, column: &str) -> Option<&str> {
        let c = self.columns.iter().position(|x| x == column)?;
        let row = self.rows.get(key).or_else(|| self.rows.get("*"))?;
        row.get(c).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

struct Source {
    table: RwLock<Arc<Table>>,
    file: Option<PathBuf>,
    stamp: RwLock<Option<(SystemTime, u64)>>,
}

/// All configured tables.
#[derive(Clone, Default)]
pub struct Lookups {
    tables: Arc<HashMap<String, Source>>,
}

fn stamp(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Lookups {
    /// Loads every table (a file that cannot be read is an error at start).
    pub fn load(cfg: &BTreeMap<String, LookupConfig>) -> Result<Lookups, LookupError> {
        let mut tables = HashMap::new();
        for (name, c) in cfg {
            let src = if c.file.is_empty() {
                Source { table: RwLock::new(Arc::new(Table::from_rows(&c.rows))), file: None, stamp: RwLock::new(None) }
            } else {
                if !c.rows.is_empty() {
                    return Err(LookupError::Both { name: name.clone() });
                }
                let path = PathBuf::from(&c.file);
                let err = |msg: String| LookupError::File { name: name.clone(), path: c.file.clone(), msg };
                let st = stamp(&path);
                let data = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
                let t = Table::from_csv(&data).map_err(err)?;
                info!(lookup = %name, file = %c.file, rows = t.len(), "lookup table loaded");
                Source { table: RwLock::new(Arc::new(t)), file: Some(path), stamp: RwLock::new(st) }
            };
            tables.insert(name.clone(), src);
        }
        Ok(Lookups { tables: Arc::new(tables) })
    }

    /// Re-reads the files that changed since the last look.
    pub fn refresh(&self) {
        for (name, s) in self.tables.iter() {
            let Some(path) = &s.file else { continue };
            let now = stamp(path);
            let before = s.stamp.read().map(|g| *g).unwrap_or(None);
            if now.is_none() || now == before {
                continue;
            }
            match std::fs::read(path).map_err(|e| e.to_string()).and_then(|d| Table::from_csv(&d)) {
                Ok(t) => {
                    info!(lookup = %name, file = %path.display(), rows = t.len(), "lookup table reloaded");
                    if let Ok(mut g) = s.table.write() {
                        *g = Arc::new(t);
                    }
                    if let Ok(mut g) = s.stamp.write() {
                        *g = now;
                    }
                }
                Err(e) => warn!(lookup = %name, file = %path.display(), error = %e, "lookup file changed but does not parse: keeping the previous table"),
            }
        }
    }

    /// Whether any table comes from a file (a reload task is then worth it).
    pub fn has_files(&self) -> bool {
        self.tables.values().any(|s| s.file.is_some())
    }

    /// Polls the files every `every` until the runtime stops.
    pub fn spawn_reloader(&self, every: Duration) {
        if !self.has_files() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let m = me.clone();
                let _ = tokio::task::spawn_blocking(move || m.refresh()).await;
            }
        });
    }

    fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.tables.get(name)?.table.read().ok().map(|g| g.clone())
    }
}

impl Lookup for Lookups {
    fn get(&self, table: &str, key: &str, column: &str) -> Option<String> {
        self.table(table)?.get(key, column).map(str::to_string)
    }
    fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_and_fallback() {
        let t = Table::from_csv(b"owner_id,rep_id,team_id\n101, ana ,emea-smb\n102,ben,\n*,,unassigned\n").unwrap();
        assert_eq!(t.get("101", "rep_id"), Some("ana"));
        assert_eq!(t.get("101", "team_id"), Some("emea-smb"));
        assert_eq!(t.get("102", "team_id"), None, "an empty cell is absent, not the fallback");
        assert_eq!(t.get("999", "team_id"), Some("unassigned"));
        assert_eq!(t.get("999", "rep_id"), None);
        assert_eq!(t.get("101", "nope"), None);
        assert!(Table::from_csv(b"only\n1\n").is_err());
        assert!(Table::from_csv(b"a,b\n1,2,3\n").is_err());
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("owners.csv");
        std::fs::write(&f, "id,rep_id\n1,ana\n").unwrap();
        let cfg = BTreeMap::from([("owners".to_string(), LookupConfig { file: f.display().to_string(), rows: BTreeMap::new() })]);
        let l = Lookups::load(&cfg).unwrap();
        assert_eq!(l.get("owners", "1", "rep_id").as_deref(), Some("ana"));
        std::fs::write(&f, "id,rep_id\n1,ana\n2,ben-the-second\n").unwrap();
        l.refresh();
        assert_eq!(l.get("owners", "2", "rep_id").as_deref(), Some("ben-the-second"));
        std::fs::write(&f, "id,rep_id\n1,a,b,c\n").unwrap();
        l.refresh();
        assert_eq!(l.get("owners", "2", "rep_id").as_deref(), Some("ben-the-second"));
        let missing = BTreeMap::from([("x".to_string(), LookupConfig { file: "/nonexistent/x.csv".into(), rows: BTreeMap::new() })]);
        assert!(Lookups::load(&missing).err().map(|e| e.to_string()).unwrap_or_default().contains("/nonexistent/x.csv"));
    }

    #[test]
    fn inline_rows() {
        let rows = BTreeMap::from([
            ("7".to_string(), BTreeMap::from([("rep_id".to_string(), "ana".to_string()), ("team_id".to_string(), "t".to_string())])),
            ("8".to_string(), BTreeMap::from([("team_id".to_string(), "u".to_string())])),
        ]);
        let l = Lookups::load(&BTreeMap::from([("owners".to_string(), LookupConfig { file: String::new(), rows })])).unwrap();
        assert_eq!(l.get("owners", "7", "rep_id").as_deref(), Some("ana"));
        assert_eq!(l.get("owners", "8", "rep_id"), None);
        assert_eq!(l.get("owners", "8", "team_id").as_deref(), Some("u"));
        assert!(l.has_table("owners") && !l.has_table("x"));
    }
}
