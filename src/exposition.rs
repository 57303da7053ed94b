//! What the exposition may contain: the exposition profile (which families
//! and windows are exported at rep level and at team level) and the series
//! budget (`limits.max_series`: which rep-level series go first when a scrape
//! would exceed it).
//!
//! Owns: family slots (one per family name, the windowed ones of
//! [`WINDOW_FAMILIES`] then the current-state ones), series groups (level ×
//! window × family), the validated [`Profile`], the drop order, the
//! [`Budget`] a render fills and the [`Report`] it returns.
//! Must not touch: state, formulas ([`crate::kpi`]), text formatting
//! ([`crate::render`]), I/O: the caller logs and exports the report.
//!
//! The budget works on whole groups (say, every rep's `sales_connects` in
//! window `1h`), never on single reps, so what is dropped does not depend on
//! which shard renders first: groups are dropped in the fixed order of
//! [`Budget`] whenever the series kept so far exceed the budget. Because the
//! counts only grow while shards are added, a group dropped early would also
//! be dropped by a decision taken after counting everything, and the set
//! dropped is the shortest prefix of the order that fits (proof in
//! `Budget::enforce`).

use crate::kpi::{Scope, WINDOW_FAMILIES};
use crate::time::MICROS_PER_DAY;
use crate::window::{Calendar, WindowKind, Windows};

/// Families without a `window` label, rendered after the windowed ones
/// (`sales_benchmark` is not per rep or team and always exported).
pub const CURRENT_FAMILIES: [&str; 6] =
    ["sales_open_deals", "sales_pipeline_value", "sales_quota", "sales_events_total", "sales_pipeline_coverage_ratio", "sales_team_info"];

/// The level of a series: with a `rep` label or without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Rep,
    Team,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Rep => "rep",
            Level::Team => "team",
        }
    }
}

/// Family names, one slot each: the distinct names of [`WINDOW_FAMILIES`] in
/// table order, then [`CURRENT_FAMILIES`].
pub fn slot_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for f in WINDOW_FAMILIES {
        if names.last() != Some(&f.name) {
            names.push(f.name);
        }
    }
    names.extend(CURRENT_FAMILIES);
    names
}

/// Whether family `name` exists at rep level.
fn has_rep_level(name: &str) -> bool {
    (CURRENT_FAMILIES.contains(&name) && name != "sales_team_info") || WINDOW_FAMILIES.iter().any(|f| f.name == name && f.scope == Scope::RepAndTeam)
}

/// Every family, least important first: the order in which the budget drops
/// a level's groups within a window. Three tiers: nothing shipped in
/// `deploy/` reads the first at rep level; the dashboards read the second;
/// the alert rules read the third (the last four).
pub static DROP_ORDER: &[(&str, Tier)] = &[
    ("sales_meetings_rescheduled_by_rep", Tier::Detail),
    ("sales_churned_customers", Tier::Detail),
    ("sales_churned_mrr", Tier::Detail),
    ("sales_nps_promoters", Tier::Detail),
    ("sales_nps_detractors", Tier::Detail),
    ("sales_nps_responses", Tier::Detail),
    ("sales_nps", Tier::Detail),
    ("sales_margin", Tier::Detail),
    ("sales_margin_ratio", Tier::Detail),
    ("sales_upsell_deals", Tier::Detail),
    ("sales_upsell_ratio", Tier::Detail),
    ("sales_new_customers", Tier::Detail),
    ("sales_inbound_activities", Tier::Detail),
    ("sales_meetings_booked", Tier::Detail),
    ("sales_meetings_held", Tier::Detail),
    ("sales_meetings_no_show", Tier::Detail),
    ("sales_no_show_ratio", Tier::Detail),
    ("sales_leads_created", Tier::Detail),
    ("sales_mqls", Tier::Detail),
    ("sales_lead_to_mql_ratio", Tier::Detail),
    ("sales_mql_to_sql_ratio", Tier::Detail),
    ("sales_quotes_sent", Tier::Detail),
    ("sales_close_ratio", Tier::Detail),
    ("sales_pipeline_added", Tier::Detail),
    ("sales_deals_lost", Tier::Detail),
    ("sales_growth_ratio", Tier::Detail),
    ("sales_outbound_calls", Tier::Detail),
    ("sales_connect_ratio", Tier::Detail),
    ("sales_lead_response_mean_seconds", Tier::Detail),
    ("sales_cycle_mean_seconds", Tier::Detail),
    ("sales_spend", Tier::Detail),
    ("sales_cost_per_lead", Tier::Detail),
    ("sales_cac", Tier::Detail),
    ("sales_active_reps", Tier::Detail),
    ("sales_open_deals", Tier::Detail),
    ("sales_quota", Tier::Detail),
    ("sales_deals_created_by_product", Tier::Detail),
    ("sales_pipeline_added_by_product", Tier::Detail),
    ("sales_deals_lost_by_product", Tier::Detail),
    ("sales_leads_untouched_ratio", Tier::Detail),
    ("sales_sql_conversions", Tier::Detail),
    ("sales_touches_to_sql_mean", Tier::Detail),
    ("sales_lead_to_customer_ratio", Tier::Detail),
    ("sales_cycle_p90_seconds", Tier::Dashboard),
    ("sales_cycle_p50_seconds", Tier::Dashboard),
    ("sales_cycles", Tier::Dashboard),
    ("sales_lead_response_p90_seconds", Tier::Dashboard),
    ("sales_lead_response_p50_seconds", Tier::Dashboard),
    ("sales_lead_responses", Tier::Dashboard),
    ("sales_lead_response_within_1h_ratio", Tier::Dashboard),
    ("sales_revenue_per_rep", Tier::Dashboard),
    ("sales_avg_deal_size", Tier::Dashboard),
    ("sales_win_ratio", Tier::Dashboard),
    ("sales_pass_ratio", Tier::Dashboard),
    ("sales_connects", Tier::Dashboard),
    ("sales_quota_attainment_ratio", Tier::Dashboard),
    ("sales_deals_won", Tier::Dashboard),
    ("sales_revenue", Tier::Dashboard),
    ("sales_deals_created", Tier::Dashboard),
    ("sales_meaningful_conversations", Tier::Dashboard),
    ("sales_pipe_ratio", Tier::Dashboard),
    ("sales_reach_ratio", Tier::Dashboard),
    ("sales_pipeline_value", Tier::Dashboard),
    ("sales_events_total", Tier::Dashboard),
    ("sales_team_info", Tier::Dashboard),
    ("sales_deals_won_by_product", Tier::Dashboard),
    ("sales_revenue_by_product", Tier::Dashboard),
    ("sales_win_ratio_by_product", Tier::Dashboard),
    ("sales_projected_quota_attainment_ratio", Tier::Dashboard),
    ("sales_lead_touches_mean", Tier::Dashboard),
    ("sales_pipe_upper95_ratio", Tier::Alert),
    ("sales_sqls", Tier::Alert),
    ("sales_reach_upper95_ratio", Tier::Alert),
    ("sales_outbound_activities", Tier::Alert),
    ("sales_pipeline_coverage_ratio", Tier::Alert),
    ("sales_followed_leads", Tier::Alert),
    ("sales_leads_single_touch_ratio", Tier::Alert),
];

/// How much the shipped dashboards and alerts rely on a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Detail,
    Dashboard,
    Alert,
}

/// Window indexes of `w`, least important first: rolling windows shorter
/// than a day (shortest first), `today`, `wtd`, the other rolling windows
/// except the 7-day one (shortest first), `qtd`, `mtd`, and the 7-day
/// rolling window (the alerts' window) last.
pub fn window_drop_order(w: &Windows) -> Vec<usize> {
    let rank = |k: &WindowKind| -> (u8, i64) {
        match *k {
            WindowKind::Rolling { len, .. } if len < MICROS_PER_DAY => (0, len),
            WindowKind::Calendar(Calendar::Today) => (1, 0),
            WindowKind::Calendar(Calendar::Wtd) => (2, 0),
            WindowKind::Rolling { len, .. } if len != 7 * MICROS_PER_DAY => (3, len),
            WindowKind::Calendar(Calendar::Qtd) => (4, 0),
            WindowKind::Calendar(Calendar::Mtd) => (5, 0),
            WindowKind::Rolling { len, .. } => (6, len),
        }
    };
    let mut idx: Vec<usize> = (0..w.defs.len()).collect();
    idx.sort_by_key(|&i| (rank(&w.defs[i].kind), i));
    idx
}

/// One level of `[exposition]` as configured: family names and window names,
/// `"*"` for all.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelConfig {
    pub families: Vec<String>,
    pub windows: Vec<String>,
}

impl Default for LevelConfig {
    fn default() -> Self {
        LevelConfig { families: vec!["*".into()], windows: vec!["*".into()] }
    }
}

/// `[exposition]`: `[exposition.rep]` and `[exposition.team]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpositionConfig {
    pub rep: LevelConfig,
    pub team: LevelConfig,
}

/// A profile that names something that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exposition.{level}.{key}: {msg}")]
pub struct ProfileError {
    pub level: &'static str,
    pub key: &'static str,
    pub msg: String,
}

/// What one level exports: per family slot, per window index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelSet {
    pub families: Vec<bool>,
    pub windows: Vec<bool>,
}

/// The validated `[exposition]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub rep: LevelSet,
    pub team: LevelSet,
}

impl Profile {
    /// Everything (the default: the full contract).
    pub fn full(w: &Windows) -> Profile {
        let n = slot_names().len();
        let all = LevelSet { families: vec![true; n], windows: vec![true; w.defs.len()] };
        Profile { rep: all.clone(), team: all }
    }

    pub fn new(cfg: &ExpositionConfig, w: &Windows) -> Result<Profile, ProfileError> {
        Ok(Profile { rep: level_set(&cfg.rep, Level::Rep, w)?, team: level_set(&cfg.team, Level::Team, w)? })
    }

    pub fn level(&self, l: Level) -> &LevelSet {
        match l {
            Level::Rep => &self.rep,
            Level::Team => &self.team,
        }
    }
}

fn level_set(c: &LevelConfig, level: Level, w: &Windows) -> Result<LevelSet, ProfileError> {
    let names = slot_names();
    let err = |key, msg| ProfileError { level: level.as_str(), key, msg };
    let all = |v: &[String]| v.iter().any(|s| s == "*");
    let mut families = vec![all(&c.families); names.len()];
    if !all(&c.families) {
        for f in &c.families {
            let Some(i) = names.iter().position(|n| n == f) else {
                let hint = if names.contains(&format!("sales_{f}").as_str()) { format!(" (did you mean sales_{f}?)") } else { String::new() };
                return Err(err("families", format!("unknown family {f:?}{hint}; expected \"*\" or family names of docs/metrics.md such as \"sales_reach_ratio\"")));
            };
            if level == Level::Rep && !has_rep_level(f) {
                return Err(err("families", format!("{f} exists at team level only")));
            }
            families[i] = true;
        }
    }
    let mut windows = vec![all(&c.windows); w.defs.len()];
    if !all(&c.windows) {
        for name in &c.windows {
            let Some(i) = w.defs.iter().position(|d| &d.name == name) else {
                let known: Vec<&str> = w.defs.iter().map(|d| d.name.as_str()).collect();
                return Err(err("windows", format!("window {name:?} is not one of windows.list ({})", known.join(", "))));
            };
            windows[i] = true;
        }
    }
    if level == Level::Rep {
        for (i, n) in names.iter().enumerate() {
            families[i] &= has_rep_level(n);
        }
    }
    Ok(LevelSet { families, windows })
}

/// One group of series: a level, a window (`None` for the families without a
/// `window` label) and a family slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub level: Level,
    pub window: Option<usize>,
    pub slot: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not in the profile: never rendered.
    Off,
    On,
    /// Dropped by the budget in this render.
    Dropped,
}

/// The budget of one render: per-group counts, the drop order and how far
/// along it the render had to go.
#[derive(Debug, Clone)]
pub struct Budget {
    slots: usize,
    windows: usize,
    max: usize,
    state: Vec<State>,
    /// Series kept, and the bytes of their lines, per group.
    kept: Vec<usize>,
    bytes: Vec<usize>,
    /// Series dropped per group.
    dropped: Vec<usize>,
    total: usize,
    order: Vec<u32>,
    next: usize,
}

impl Budget {
    /// A budget of `max` series for `profile` over windows `w`; `fixed`
    /// series (the benchmarks) are always exported and count against it.
    pub fn new(profile: &Profile, w: &Windows, max: usize, fixed: usize) -> Budget {
        let slots = slot_names().len();
        let windows = w.defs.len();
        let n = 2 * (windows + 1) * slots;
        let mut b = Budget {
            slots,
            windows,
            max,
            state: vec![State::Off; n],
            kept: vec![0; n],
            bytes: vec![0; n],
            dropped: vec![0; n],
            total: fixed,
            order: Vec::with_capacity(n),
            next: 0,
        };
        let names = slot_names();
        let current = |s: usize| s >= names.len() - CURRENT_FAMILIES.len();
        for level in [Level::Rep, Level::Team] {
            let set = profile.level(level);
            for s in 0..slots {
                if !set.families[s] {
                    continue;
                }
                if current(s) {
                    let g = b.id(Group { level, window: None, slot: s });
                    b.state[g] = State::On;
                } else {
                    for wi in (0..windows).filter(|&wi| set.windows[wi]) {
                        let g = b.id(Group { level, window: Some(wi), slot: s });
                        b.state[g] = State::On;
                    }
                }
            }
        }
        let win_order = window_drop_order(w);
        let slot_of = |name: &str| names.iter().position(|n| *n == name);
        for level in [Level::Rep, Level::Team] {
            for tier in [Tier::Detail, Tier::Dashboard, Tier::Alert] {
                let fams: Vec<usize> = DROP_ORDER.iter().filter(|(_, t)| *t == tier).filter_map(|(f, _)| slot_of(f)).collect();
                for &wi in &win_order {
                    for &s in fams.iter().filter(|&&s| !current(s)) {
                        b.order.push(b.id(Group { level, window: Some(wi), slot: s }) as u32);
                    }
                }
                for &s in fams.iter().filter(|&&s| current(s)) {
                    b.order.push(b.id(Group { level, window: None, slot: s }) as u32);
                }
            }
        }
        b
    }

    fn id(&self, g: Group) -> usize {
        let level = match g.level {
            Level::Rep => 0,
            Level::Team => 1,
        };
        (level * (self.windows + 1) + g.window.unwrap_or(self.windows)) * self.slots + g.slot
    }

    fn group(&self, id: usize) -> Group {
        let slot = id % self.slots;
        let rest = id / self.slots;
        let w = rest % (self.windows + 1);
        let level = if rest / (self.windows + 1) == 0 { Level::Rep } else { Level::Team };
        Group { level, window: (w < self.windows).then_some(w), slot }
    }

    /// The group id of `g` if the profile exports it (dropped or not).
    pub fn enabled(&self, g: Group) -> Option<u32> {
        let id = self.id(g);
        (self.state[id] != State::Off).then_some(id as u32)
    }

    /// Whether anything of `level` is exported in window `wi`.
    pub fn window_enabled(&self, level: Level, wi: usize) -> bool {
        (0..self.slots).any(|s| self.state[self.id(Group { level, window: Some(wi), slot: s })] != State::Off)
    }

    /// Whether the series of group `id` are still written.
    #[inline]
    pub fn live(&self, id: u32) -> bool {
        self.state[id as usize] == State::On
    }

    /// Counts a series of group `id` whose line of `len` bytes was written.
    #[inline]
    pub fn kept(&mut self, id: u32, len: usize) {
        self.kept[id as usize] += 1;
        self.bytes[id as usize] += len;
        self.total += 1;
    }

    /// Counts a series of a group already dropped (not written).
    #[inline]
    pub fn skipped(&mut self, id: u32) {
        self.dropped[id as usize] += 1;
    }

    /// Series kept so far (the fixed ones included).
    pub fn total(&self) -> usize {
        self.total
    }

    /// Drops groups in order while the series kept exceed the budget. Calls
    /// `freed(slot, bytes)` for each group with lines it drops, so the caller can
    /// reclaim that slot's lines.
    ///
    /// Why this equals deciding after counting everything: let the order be
    /// g1, g2, ... and let a full count drop the shortest prefix g1..gk that
    /// fits. Counts only grow as shards are added, so whenever this drops gi
    /// (the kept series exceed the budget with g1..g(i-1) gone), the full
    /// count exceeds it too without gi, hence i <= k; and after the last
    /// shard this stops at the first prefix that fits, which is g1..gk.
    pub fn enforce(&mut self, mut freed: impl FnMut(usize, usize)) {
        while self.total > self.max && self.next < self.order.len() {
            let id = self.order[self.next] as usize;
            self.next += 1;
            if self.state[id] != State::On {
                continue;
            }
            self.state[id] = State::Dropped;
            self.total -= self.kept[id];
            self.dropped[id] += self.kept[id];
            self.kept[id] = 0;
            let bytes = std::mem::take(&mut self.bytes[id]);
            if bytes > 0 {
                freed(self.group(id).slot, bytes);
            }
        }
    }

    /// What was exported and what the budget dropped.
    pub fn report(&self, w: &Windows) -> Report {
        let names = slot_names();
        let mut dropped_groups = Vec::new();
        for &id in &self.order[..self.next] {
            let id = id as usize;
            if self.state[id] == State::Dropped && self.dropped[id] > 0 {
                let g = self.group(id);
                dropped_groups.push(Dropped {
                    level: g.level,
                    family: names[g.slot],
                    window: g.window.map(|wi| w.defs[wi].name.clone()),
                    series: self.dropped[id],
                });
            }
        }
        Report { series: self.total, dropped: self.dropped.iter().sum(), max_series: self.max, dropped_groups }
    }
}

/// A group the budget dropped, with its series count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub level: Level,
    pub family: &'static str,
    pub window: Option<String>,
    pub series: usize,
}

/// What one render exported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// `sales_*` series written (benchmarks included).
    pub series: usize,
    /// Series the budget dropped.
    pub dropped: usize,
    pub max_series: usize,
    /// The groups dropped, in drop order (the last one is the group whose
    /// series, put back, would exceed the budget again).
    pub dropped_groups: Vec<Dropped>,
}

impl Report {
    /// The dropped groups in a few words, one entry per level and family in
    /// drop order: `rep sales_connect_ratio[1h,today]; rep sales_quota`.
    pub fn summary(&self) -> String {
        let mut entries: Vec<(Level, &str, Vec<&str>)> = Vec::new();
        for d in &self.dropped_groups {
            let i = match entries.iter().position(|e| e.0 == d.level && e.1 == d.family) {
                Some(i) => i,
                None => {
                    entries.push((d.level, d.family, Vec::new()));
                    entries.len() - 1
                }
            };
            entries[i].2.extend(d.window.as_deref());
        }
        let mut out = String::new();
        for (level, family, windows) in entries {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(level.as_str());
            out.push(' ');
            out.push_str(family);
            if !windows.is_empty() {
                out.push('[');
                out.push_str(&windows.join(","));
                out.push(']');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_order_names_every_family_once() {
        let names = slot_names();
        let mut listed: Vec<&str> = DROP_ORDER.iter().map(|(n, _)| *n).collect();
        listed.sort_unstable();
        let mut all = names.clone();
        all.sort_unstable();
        assert_eq!(listed, all);
        // tiers are contiguous: Detail, then Dashboard, then Alert
        assert!(DROP_ORDER.windows(2).all(|p| p[0].1 <= p[1].1));
    }

    /// docs/metrics.md lists the same order.
    #[test]
    fn documented_drop_order() {
        let doc = include_str!("../docs/metrics.md");
        let mut listed = Vec::new();
        for (row, tier) in [("| detail |", Tier::Detail), ("| dashboard |", Tier::Dashboard), ("| alert |", Tier::Alert)] {
            let line = doc.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("no {row} row in docs/metrics.md"));
            let (windowed, current) = line.split_once("no window:").unwrap_or((line, ""));
            let names = |s: &str| s.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>();
            let mut fams = names(windowed);
            fams.extend(names(current));
            listed.extend(fams.into_iter().map(|f| (f, tier)));
        }
        // the table puts each tier's families without a window last
        let mut want: Vec<(String, Tier)> = Vec::new();
        for tier in [Tier::Detail, Tier::Dashboard, Tier::Alert] {
            let of_tier = DROP_ORDER.iter().filter(|(_, t)| *t == tier);
            want.extend(of_tier.clone().filter(|(f, _)| !CURRENT_FAMILIES.contains(f)).map(|(f, t)| (f.to_string(), *t)));
            want.extend(of_tier.filter(|(f, _)| CURRENT_FAMILIES.contains(f)).map(|(f, t)| (f.to_string(), *t)));
        }
        assert_eq!(listed, want);
    }

    #[test]
    fn default_window_drop_order() {
        let w = Windows::default_utc();
        let names: Vec<&str> = window_drop_order(&w).iter().map(|&i| w.defs[i].name.as_str()).collect();
        assert_eq!(names, ["1h", "today", "wtd", "1d", "30d", "qtd", "mtd", "7d"]);
        let w = Windows::new(&["90d", "15m", "mtd", "2h", "7d:1d", "14d"], "UTC").unwrap();
        let names: Vec<&str> = window_drop_order(&w).iter().map(|&i| w.defs[i].name.as_str()).collect();
        assert_eq!(names, ["15m", "2h", "14d", "90d", "mtd", "7d"]);
    }

    #[test]
    fn profile_validation_names_the_key() {
        let w = Windows::default_utc();
        let cfg = |fam: &[&str], win: &[&str]| ExpositionConfig {
            rep: LevelConfig { families: fam.iter().map(|s| s.to_string()).collect(), windows: win.iter().map(|s| s.to_string()).collect() },
            team: LevelConfig::default(),
        };
        let e = Profile::new(&cfg(&["reach_ratio"], &["*"]), &w).unwrap_err().to_string();
        assert!(e.starts_with("exposition.rep.families: unknown family \"reach_ratio\" (did you mean sales_reach_ratio?)"), "{e}");
        let e = Profile::new(&cfg(&["sales_spend"], &["*"]), &w).unwrap_err().to_string();
        assert_eq!(e, "exposition.rep.families: sales_spend exists at team level only");
        let e = Profile::new(&cfg(&["*"], &["2h"]), &w).unwrap_err().to_string();
        assert!(e.starts_with("exposition.rep.windows: window \"2h\" is not one of windows.list (1h, 1d,"), "{e}");
        let p = Profile::new(&cfg(&["sales_reach_ratio", "sales_events_total"], &["7d"]), &w).unwrap();
        let names = slot_names();
        let on: Vec<&str> = names.iter().zip(&p.rep.families).filter(|(_, on)| **on).map(|(n, _)| *n).collect();
        assert_eq!(on, ["sales_reach_ratio", "sales_events_total"]);
        assert_eq!(p.rep.windows, [false, false, true, false, false, false, false, false]);
        assert_eq!(p.team, Profile::full(&w).team);
        // "*" at rep level leaves out the team-only families
        let full = Profile::new(&ExpositionConfig::default(), &w).unwrap();
        assert!(!full.rep.families[names.iter().position(|n| *n == "sales_spend").unwrap()]);
        assert!(full.team.families.iter().all(|b| *b));
    }

    /// Hand-computed: budget 10 with 2 fixed series; groups fill up and the
    /// first groups of the order go.
    #[test]
    fn enforce_drops_a_prefix_of_the_order() {
        let w = Windows::new(&["1h", "7d"], "UTC").unwrap();
        let p = Profile::full(&w);
        let mut b = Budget::new(&p, &w, 10, 2);
        let names = slot_names();
        let slot = |n: &str| names.iter().position(|x| *x == n).unwrap();
        let g = |level, wi: usize, n: &str| b.enabled(Group { level, window: Some(wi), slot: slot(n) }).unwrap();
        // the order starts with rep-level detail families in 1h
        assert_eq!(b.order[0], g(Level::Rep, 0, "sales_meetings_rescheduled_by_rep"));
        let calls_1h = g(Level::Rep, 0, "sales_outbound_calls");
        let outbound_7d = g(Level::Rep, 1, "sales_outbound_activities");
        let team_calls_1h = g(Level::Team, 0, "sales_outbound_calls");
        for _ in 0..4 {
            b.kept(calls_1h, 10);
            b.kept(outbound_7d, 20);
        }
        b.kept(team_calls_1h, 5);
        assert_eq!(b.total(), 11);
        let mut freed = Vec::new();
        b.enforce(|s, bytes| freed.push((s, bytes)));
        // the groups before it in the order (empty) and rep outbound_calls in 1h
        // are dropped: 11 - 4 = 7
        assert_eq!(freed, [(slot("sales_outbound_calls"), 40)]);
        assert_eq!(b.total(), 7);
        assert!(!b.live(calls_1h) && b.live(outbound_7d) && b.live(team_calls_1h));
        b.skipped(calls_1h);
        let r = b.report(&w);
        assert_eq!((r.series, r.dropped), (7, 5));
        assert_eq!(r.summary(), "rep sales_outbound_calls[1h]");
        // more rep series: every rep group goes before the team one
        for _ in 0..10 {
            b.kept(outbound_7d, 20);
        }
        b.enforce(|_, _| {});
        assert!(!b.live(outbound_7d) && b.live(team_calls_1h));
        assert_eq!(b.total(), 3);
        assert_eq!(b.report(&w).summary(), "rep sales_outbound_calls[1h]; rep sales_outbound_activities[7d]");
    }
}
