//! A seedable generator of realistic CRM event streams (NDJSON lines), for
//! tests, benches and the demo.
//!
//! Owns: a simulated sales org (teams of reps of different skill) and its
//! funnel: leads → first touches → calls and emails → MQL → SQL → meetings
//! (with no-shows and reschedules) → deals (some updated) → quotes → won or
//! lost, plus NPS answers, churn, daily spend and monthly/quarterly quotas;
//! optionally bounded disorder, re-deliveries and broken lines. v1.1: deals
//! carry a product line, and each rep follows a lead up 2 to 17 more times
//! within two weeks after its first touch, except a quarter of the reps, who
//! give up after one touch (the sources' "44 % give up after one").
//! Must not touch: engine state or I/O: it only yields lines.
//!
//! Working hours are 08:00–18:00 UTC, Monday to Friday. Reach skill is drawn
//! per rep between 0.22 and 0.50 (benchmark 0.35), so some reps fall below;
//! `laggard` pins one rep at ~0.08 and lifts every other to at least 0.42.
//! Memory stays bounded: one simulated day is produced at a time, plus the
//! scheduled follow-ups of open funnel items and the disorder buffer.
//!
//! [`Profile`]s name the three sizes the benches use (`small`: the default,
//! `realistic`: 40 teams of 12 reps over 90 days, `large`: 1 000 teams of 10
//! reps over 30 days), and [`Style`] how lines are written: `compact` (the
//! default, byte for byte what earlier releases wrote) or `crm`, the same
//! events as a CRM bridge sends them: every timestamp with a fraction (3 or
//! 6 digits) and the team's UTC offset, and `"key": value, ` separators as
//! Python's `json.dumps` writes them. A style changes only the bytes, never
//! the events: both styles of one seed fold to the same KPIs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MS_MIN: i64 = 60_000;
const MS_HOUR: i64 = 60 * MS_MIN;
const MS_DAY: i64 = 24 * MS_HOUR;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    pub teams: usize,
    pub reps_per_team: usize,
    /// Length of the simulated period in days.
    pub days: u32,
    /// Start of the simulated period, Unix milliseconds (default 2026-11-02T00:00:00Z, a Monday).
    pub start_ms: i64,
    /// Outbound touches per rep per working day.
    pub activities_per_rep_day: u32,
    /// 0: in time order; else lines are shuffled within this many seconds of event time.
    pub disorder_s: u32,
    /// Share of events emitted a second time (same bytes) a little later.
    pub redeliver_ratio: f64,
    /// Share of extra broken lines (each reason of events.md).
    pub broken_ratio: f64,
    /// (team index, rep index) of a rep far below the reach benchmark.
    pub laggard: Option<(usize, usize)>,
    /// Follow-up touches after a lead's first one (v1.1; default on). Off:
    /// the stream of earlier releases, e.g. to measure state on it.
    pub follow_ups: bool,
    /// How lines are written (the events are the same in every style).
    pub style: Style,
}

/// How the generator writes an event (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Style {
    /// `{"key":"value",...}`, timestamps mostly `Z` with whole seconds.
    #[default]
    Compact,
    /// `{"key": "value", ...}`, timestamps with a fraction and the team's offset.
    Crm,
}

impl Style {
    pub const NAMES: [&'static str; 2] = ["compact", "crm"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "compact" => Some(Style::Compact),
            "crm" => Some(Style::Crm),
            _ => None,
        }
    }
}

/// A named size of sales org for benches and demos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// 4 teams × 8 reps, 14 days, compact lines: [`GenConfig::default`].
    Small,
    /// 40 teams × 12 reps (480), 90 days, CRM-style lines.
    Realistic,
    /// 1 000 teams × 10 reps (10 000), 30 days, CRM-style lines.
    Large,
}

impl Profile {
    pub const NAMES: [&'static str; 3] = ["small", "realistic", "large"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "small" => Some(Profile::Small),
            "realistic" => Some(Profile::Realistic),
            "large" => Some(Profile::Large),
            _ => None,
        }
    }
    /// The generator settings of this profile (everything else default).
    pub fn config(self) -> GenConfig {
        let d = GenConfig::default();
        match self {
            Profile::Small => d,
            Profile::Realistic => GenConfig { teams: 40, reps_per_team: 12, days: 90, style: Style::Crm, ..d },
            Profile::Large => GenConfig { teams: 1000, reps_per_team: 10, days: 30, style: Style::Crm, ..d },
        }
    }
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            teams: 4,
            reps_per_team: 8,
            days: 14,
            start_ms: 1_793_577_600_000, // 2026-11-02T00:00:00Z
            activities_per_rep_day: 40,
            disorder_s: 0,
            redeliver_ratio: 0.0,
            broken_ratio: 0.0,
            laggard: None,
            follow_ups: true,
            style: Style::Compact,
        }
    }
}

/// One generated line.
#[derive(Debug, Clone, PartialEq)]
pub struct GenEvent {
    /// Event time (Unix ms); for broken lines, the time of the line's slot.
    pub ts_ms: i64,
    pub team_id: String,
    /// One NDJSON object, without newline.
    pub line: String,
}

const TEAM_NAMES: [&str; 8] = ["emea-smb", "na-ent", "apac-mid", "latam-smb", "na-smb", "emea-ent", "dach-mid", "nordics-smb"];

fn team_name(i: usize) -> String {
    TEAM_NAMES.get(i).map(|s| s.to_string()).unwrap_or_else(|| format!("team-{i}"))
}

/// Product lines of generated deals (v1.1).
const PRODUCT_LINES: [&str; 4] = ["core", "addons", "services", "training"];

#[derive(Debug, Clone)]
struct RepProfile {
    team: usize,
    id: String,
    reach: f64,
    /// Mean lead-response delay, minutes.
    response_min: f64,
    pipe: f64,
    win: f64,
    /// Follow-up touches after a lead's first one (v1.1 persistence): 0 for
    /// the reps who give up after one touch.
    follow_ups: u32,
}

/// Follow-ups scheduled for later, by kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    FirstTouch { lead: u64 },
    Mql { lead: u64 },
    Sql { lead: u64 },
    Book { lead: u64 },
    Complete { lead: u64, meeting: u64 },
    Deal { lead: u64 },
    FollowUp { lead: u64, left: u32 },
    DealUpdate { deal: u64 },
    Quote { deal: u64 },
    Close { deal: u64, lead: u64 },
}

/// A line waiting in the disorder buffer: (release key, seq, event).
type Pending = Reverse<(i64, u64, PendingEvent)>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PendingEvent {
    ts: i64,
    team: usize,
    line: String,
}

pub struct Generator {
    cfg: GenConfig,
    rng: SmallRng,
    reps: Vec<RepProfile>,
    /// Scheduled funnel steps: (time, seq, rep index, step).
    steps: BinaryHeap<Reverse<(i64, u64, usize, Step)>>,
    /// Lines ready in time order for the current day.
    day_lines: Vec<(i64, u64, usize, String)>,
    day_pos: usize,
    day: u32,
    /// Disorder / re-delivery buffer.
    out: BinaryHeap<Pending>,
    seq: u64,
    next_id: u64,
    next_obj: u64,
    deal_amounts: std::collections::HashMap<u64, f64>,
    /// Draws of the v1.1 additions (follow-up touches), apart from `rng` so
    /// that every event of earlier releases' streams stays the same.
    follow_rng: SmallRng,
    done: bool,
    buf: String,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let mut follow_rng = SmallRng::seed_from_u64(cfg.seed ^ 0x5EED_F011_0F00);
        let mut reps = Vec::new();
        for t in 0..cfg.teams {
            for r in 0..cfg.reps_per_team {
                let skill: f64 = rng.gen();
                let mut reach = 0.22 + 0.28 * skill;
                if let Some(l) = cfg.laggard {
                    reach = if l == (t, r) { 0.08 } else { reach.max(0.46 + 0.04 * skill) };
                }
                reps.push(RepProfile {
                    team: t,
                    id: format!("rep-{}-{:02}", team_name(t), r + 1),
                    reach,
                    response_min: 10.0 + 200.0 * (1.0 - skill) * rng.gen::<f64>(),
                    pipe: 0.55 + 0.4 * rng.gen::<f64>(),
                    win: 0.25 + 0.35 * skill,
                    // A quarter of the reps give up after one touch; the
                    // others follow up 2 to 17 more times within two weeks.
                    follow_ups: if follow_rng.gen_bool(0.25) || !cfg.follow_ups { 0 } else { follow_rng.gen_range(2..18) },
                });
            }
        }
        Generator {
            cfg,
            rng,
            reps,
            steps: BinaryHeap::new(),
            day_lines: Vec::new(),
            day_pos: 0,
            day: 0,
            out: BinaryHeap::new(),
            seq: 0,
            next_id: 0,
            next_obj: 0,
            deal_amounts: Default::default(),
            follow_rng,
            done: false,
            buf: String::new(),
        }
    }

    /// Time to the next follow-up touch of a rep who makes `n` of them:
    /// spread over about two weeks.
    fn follow_gap(&mut self, n: u32) -> i64 {
        let mean = 13 * MS_DAY / i64::from(n.max(1));
        self.follow_rng.gen_range(mean / 2..=mean * 3 / 2)
    }

    fn obj(&mut self) -> u64 {
        self.next_obj += 1;
        self.next_obj
    }

    fn schedule(&mut self, at: i64, rep: usize, step: Step) {
        self.seq += 1;
        self.steps.push(Reverse((at, self.seq, rep, step)));
    }

    /// Formats a timestamp of `team`: compact style: mostly `Z` seconds,
    /// some with milliseconds, some with a +01:00 or -05:00 offset (same
    /// instant); CRM style: see [`Generator::crm_stamp`].
    fn stamp(&mut self, ms: i64, team: usize) -> String {
        // Drawn in both styles: the random stream, hence the events, stay the same.
        let style = self.rng.gen_range(0..10);
        if self.cfg.style == Style::Crm {
            return crm_stamp(ms, team, style);
        }
        let (offset_min, suffix): (i64, &str) = match style {
            0 => (60, "+01:00"),
            1 => (-300, "-05:00"),
            _ => (0, "Z"),
        };
        let local = ms + offset_min * MS_MIN;
        let secs = local.div_euclid(1000);
        let (y, m, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let mut s = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
        if style == 2 || ms % 1000 != 0 {
            let _ = write!(s, ".{:03}", local.rem_euclid(1000));
        }
        s.push_str(suffix);
        s
    }

    /// Builds one event line: `body` is the part after the envelope.
    fn emit(&mut self, ts: i64, rep: Option<usize>, team: usize, ty: &str, body: &str) {
        self.next_id += 1;
        let at = self.stamp(ts, team);
        self.buf.clear();
        let _ = write!(
            self.buf,
            r#"{{"event_id":"g-{}-{}","type":"{ty}","occurred_at":"{at}","team_id":"{}""#,
            self.cfg.seed,
            self.next_id,
            team_name(team)
        );
        if let Some(r) = rep {
            let _ = write!(self.buf, r#","rep_id":"{}""#, self.reps[r].id);
        }
        self.buf.push_str(body);
        self.buf.push('}');
        self.seq += 1;
        self.day_lines.push((ts, self.seq, team, self.buf.clone()));
    }

    fn working_time(&mut self, day_start: i64) -> i64 {
        day_start + 8 * MS_HOUR + self.rng.gen_range(0..10 * MS_HOUR / 1000) * 1000
    }

    fn is_workday(day_start: i64) -> bool {
        // 1970-01-01 was a Thursday: day 0 -> weekday 3 (Mon = 0).
        let wd = (day_start.div_euclid(MS_DAY) + 3).rem_euclid(7);
        wd < 5
    }

    /// Produces every line of simulated day `d` into `day_lines`, sorted.
    fn simulate_day(&mut self, d: u32) {
        self.day_lines.clear();
        self.day_pos = 0;
        let day_start = self.cfg.start_ms.div_euclid(MS_DAY) * MS_DAY + d as i64 * MS_DAY;
        let day_end = day_start + MS_DAY;
        let (y, m, dd) = crate::time::civil_from_days(day_start.div_euclid(MS_DAY));

        // Quotas at the start of the simulation and of each month / quarter.
        if d == 0 || dd == 1 {
            let ps = format!("{y:04}-{m:02}-01");
            for t in 0..self.cfg.teams {
                // About 1.1 to 1.6 times what a rep closes in a month, so a
                // month's remainder stays open and pipeline coverage (v1.1)
                // is above the 3x benchmark for some teams and below for others.
                let per_rep = 110_000 + 15_000 * (t as i64 % 3);
                let team_reps: Vec<usize> = (0..self.reps.len()).filter(|&r| self.reps[r].team == t).collect();
                for &r in &team_reps {
                    self.emit(day_start, Some(r), t, "quota.set", &format!(r#","period":"month","period_start":"{ps}","amount":{per_rep}"#));
                }
                if d == 0 || (m - 1) % 3 == 0 {
                    let qm = (m - 1) / 3 * 3 + 1;
                    // Reps carry a quarterly quota too; the team's own is set
                    // a little above the sum of its reps' (a stretch target).
                    for &r in &team_reps {
                        let q = per_rep * 3;
                        self.emit(day_start, Some(r), t, "quota.set", &format!(r#","period":"quarter","period_start":"{y:04}-{qm:02}-01","amount":{q}"#));
                    }
                    let amount = per_rep * 3 * self.cfg.reps_per_team as i64 * 11 / 10;
                    self.emit(day_start, None, t, "quota.set", &format!(r#","period":"quarter","period_start":"{y:04}-{qm:02}-01","amount":{amount}"#));
                }
            }
        }
        // Daily spend per team, NPS and churn.
        for t in 0..self.cfg.teams {
            let mk = self.rng.gen_range(500..2500) as f64 + 0.25 * self.rng.gen_range(0..4) as f64;
            let sl = self.rng.gen_range(300..1200);
            self.emit(day_start + 7 * MS_HOUR, None, t, "spend.recorded", &format!(r#","amount":{mk},"category":"marketing""#));
            self.emit(day_start + 7 * MS_HOUR + MS_MIN, None, t, "spend.recorded", &format!(r#","amount":{sl},"category":"sales""#));
            if self.rng.gen_bool(0.25) {
                let at = self.working_time(day_start);
                let c = self.obj();
                let reason = if self.rng.gen_bool(0.7) { "voluntary" } else { "involuntary" };
                let mrr = self.rng.gen_range(50..900);
                self.emit(at, None, t, "customer.churned", &format!(r#","customer_id":"C-{c}","reason":"{reason}","mrr":{mrr}"#));
            }
        }
        if Self::is_workday(day_start) {
            for r in 0..self.reps.len() {
                self.rep_day(r, day_start);
            }
        }
        // Funnel steps due today.
        while let Some(Reverse((at, _, _, _))) = self.steps.peek() {
            if *at >= day_end {
                break;
            }
            let Some(Reverse((at, _, r, step))) = self.steps.pop() else { break };
            self.step(at, r, step);
        }
        self.day_lines.sort_by_key(|l| (l.0, l.1));
    }

    fn rep_day(&mut self, r: usize, day_start: i64) {
        let team = self.reps[r].team;
        let reach = self.reps[r].reach;
        // Outbound touches.
        for _ in 0..self.cfg.activities_per_rep_day {
            let at = self.working_time(day_start);
            self.touch(at, r, team, reach, None);
        }
        // A few inbound ones.
        for _ in 0..3 {
            let at = self.working_time(day_start);
            let (ty, outcome) = if self.rng.gen_bool(0.5) { ("call.logged", "connected") } else { ("email.logged", "replied") };
            self.emit(at, Some(r), team, ty, &format!(r#","outcome":"{outcome}","direction":"inbound""#));
        }
        // New leads with their first touch scheduled.
        for _ in 0..5 {
            let at = self.working_time(day_start);
            let lead = self.obj();
            let source = ["inbound", "outbound", "referral", "partner", "other"][self.rng.gen_range(0..5)];
            self.emit(at, Some(r), team, "lead.created", &format!(r#","lead_id":"L-{lead}","source":"{source}""#));
            let mean = self.reps[r].response_min;
            let delay = (-mean * (1.0 - self.rng.gen::<f64>()).ln() * MS_MIN as f64) as i64;
            self.schedule(at + delay, r, Step::FirstTouch { lead });
            if self.rng.gen_bool(0.6) {
                { let when = at + MS_DAY + self.rng.gen_range(0..4 * MS_HOUR); self.schedule(when, r, Step::Mql { lead }); }
            }
        }
        // NPS answers.
        if self.rng.gen_bool(0.3) {
            let at = self.working_time(day_start);
            let score = self.rng.gen_range(0..=10);
            let c = self.obj();
            self.emit(at, Some(r), team, "nps.recorded", &format!(r#","score":{score},"customer_id":"C-{c}""#));
        }
    }

    fn touch(&mut self, at: i64, r: usize, team: usize, reach: f64, lead: Option<u64>) {
        let call = self.rng.gen_bool(0.6);
        let meaningful = self.rng.gen_bool(reach);
        let outcome = match (call, meaningful, self.rng.gen_range(0..100)) {
            (_, true, _) => "meaningful",
            (true, false, x) if x < 18 => "connected",
            (true, false, x) if x < 50 => "voicemail",
            (true, false, _) => "no_answer",
            (false, false, x) if x < 12 => "replied",
            (false, false, x) if x < 17 => "bounced",
            (false, false, _) => "sent",
        };
        let lead = lead.map(|l| format!(r#","lead_id":"L-{l}""#)).unwrap_or_default();
        if call {
            let dur = if outcome == "meaningful" { self.rng.gen_range(120..1500) } else { self.rng.gen_range(0..90) };
            self.emit(at, Some(r), team, "call.logged", &format!(r#"{lead},"outcome":"{outcome}","direction":"outbound","duration_s":{dur}"#));
        } else {
            self.emit(at, Some(r), team, "email.logged", &format!(r#"{lead},"outcome":"{outcome}""#));
        }
    }

    fn step(&mut self, at: i64, r: usize, step: Step) {
        let team = self.reps[r].team;
        match step {
            Step::FirstTouch { lead } => {
                let reach = self.reps[r].reach;
                self.touch(at, r, team, reach, Some(lead));
                let n = self.reps[r].follow_ups;
                if n > 0 {
                    let gap = self.follow_gap(n);
                    self.schedule(at + gap, r, Step::FollowUp { lead, left: n });
                }
            }
            Step::FollowUp { lead, left } => {
                // Meaningful at the rep's reach, like every other touch.
                let meaningful = self.follow_rng.gen_bool(self.reps[r].reach);
                let (ty, outcome) = match self.follow_rng.gen_range(0..10) {
                    x if meaningful => (if x < 4 { "email.logged" } else { "call.logged" }, "meaningful"),
                    0..=3 => ("email.logged", "sent"),
                    4..=6 => ("call.logged", "no_answer"),
                    7..=8 => ("call.logged", "voicemail"),
                    _ => ("call.logged", "connected"),
                };
                self.emit(at, Some(r), team, ty, &format!(r#","lead_id":"L-{lead}","outcome":"{outcome}""#));
                if left > 1 {
                    let gap = self.follow_gap(self.reps[r].follow_ups);
                    self.schedule(at + gap, r, Step::FollowUp { lead, left: left - 1 });
                }
            }
            Step::Mql { lead } => {
                self.emit(at, Some(r), team, "lead.qualified", &format!(r#","lead_id":"L-{lead}","stage":"mql""#));
                if self.rng.gen_bool(0.6) {
                    { let when = at + 2 * MS_DAY + self.rng.gen_range(0..MS_DAY); self.schedule(when, r, Step::Sql { lead }); }
                }
            }
            Step::Sql { lead } => {
                self.emit(at, Some(r), team, "lead.qualified", &format!(r#","lead_id":"L-{lead}","stage":"sql""#));
                if self.rng.gen_bool(0.85) {
                    { let when = at + self.rng.gen_range(MS_HOUR..MS_DAY); self.schedule(when, r, Step::Book { lead }); }
                }
            }
            Step::Book { lead } => {
                let meeting = self.obj();
                let when = at + 2 * MS_DAY + self.rng.gen_range(0..2 * MS_DAY);
                let sched = self.stamp(when, team);
                self.emit(at, Some(r), team, "meeting.booked", &format!(r#","lead_id":"L-{lead}","meeting_id":"M-{meeting}","scheduled_for":"{sched}""#));
                self.schedule(when + 45 * MS_MIN, r, Step::Complete { lead, meeting });
            }
            Step::Complete { lead, meeting } => {
                let x = self.rng.gen_range(0..100);
                let (status, by) = match x {
                    0..=74 => ("held", ""),
                    75..=86 => ("no_show", ""),
                    87..=90 => ("rescheduled", r#","rescheduled_by":"rep""#),
                    91..=95 => ("rescheduled", r#","rescheduled_by":"prospect""#),
                    _ => ("canceled", ""),
                };
                self.emit(at, Some(r), team, "meeting.completed", &format!(r#","meeting_id":"M-{meeting}","status":"{status}"{by}"#));
                if status == "held" && self.rng.gen_bool(self.reps[r].pipe.min(1.0)) {
                    { let when = at + self.rng.gen_range(MS_HOUR..MS_DAY); self.schedule(when, r, Step::Deal { lead }); }
                }
            }
            Step::Deal { lead } => {
                let deal = self.obj();
                let amount = (5_000.0 + 30_000.0 * self.rng.gen::<f64>().powi(2)).round();
                self.deal_amounts.insert(deal, amount);
                // v1.1: a product line (no draw: the stream's other events stay the same).
                let line = PRODUCT_LINES[(deal as usize + team) % PRODUCT_LINES.len()];
                self.emit(at, Some(r), team, "deal.created", &format!(r#","deal_id":"D-{deal}","lead_id":"L-{lead}","amount":{amount},"product_line":"{line}""#));
                if self.rng.gen_bool(0.2) {
                    self.schedule(at + 2 * MS_DAY, r, Step::DealUpdate { deal });
                }
                if self.rng.gen_bool(0.8) {
                    { let when = at + 3 * MS_DAY + self.rng.gen_range(0..MS_DAY); self.schedule(when, r, Step::Quote { deal }); }
                }
                { let when = at + 4 * MS_DAY + self.rng.gen_range(0..12 * MS_DAY); self.schedule(when, r, Step::Close { deal, lead }); }
            }
            Step::DealUpdate { deal } => {
                let amount = self.deal_amounts.get(&deal).copied().unwrap_or(10_000.0) * 1.1;
                self.deal_amounts.insert(deal, amount.round());
                self.emit(at, Some(r), team, "deal.created", &format!(r#","deal_id":"D-{deal}","amount":{}"#, amount.round()));
            }
            Step::Quote { deal } => {
                let amount = self.deal_amounts.get(&deal).copied().unwrap_or(10_000.0);
                self.emit(at, Some(r), team, "quote.sent", &format!(r#","deal_id":"D-{deal}","amount":{amount}"#));
            }
            Step::Close { deal, lead } => {
                let amount = self.deal_amounts.remove(&deal).unwrap_or(10_000.0);
                if self.rng.gen_bool(self.reps[r].win) {
                    let kind = match self.rng.gen_range(0..20) {
                        0..=13 => "new",
                        14..=16 => "upsell",
                        17 => "cross_sell",
                        _ => "renewal",
                    };
                    let margin = if self.rng.gen_bool(0.8) { format!(r#","margin":{:.2}"#, amount * self.rng.gen_range(0.2..0.4)) } else { String::new() };
                    self.emit(at, Some(r), team, "deal.won", &format!(r#","deal_id":"D-{deal}","lead_id":"L-{lead}","amount":{amount},"kind":"{kind}"{margin}"#));
                } else {
                    let reason = ["price", "timing", "competitor", "no decision"][self.rng.gen_range(0..4)];
                    self.emit(at, Some(r), team, "deal.lost", &format!(r#","deal_id":"D-{deal}","reason":"{reason}""#));
                }
            }
        }
    }

    /// A broken line of a random kind, built from a valid one.
    fn broken(&mut self, line: &str) -> String {
        match self.rng.gen_range(0..7) {
            0 => line[..line.len() / 2].to_string(),
            1 => line.replacen(r#""event_id":"#, r#""event_ix":"#, 1),
            2 => line.replacen(r#""occurred_at":""#, r#""occurred_at":"yesterday ""#, 1),
            3 => line.replacen(r#""type":""#, r#""type":"x."#, 1),
            4 => format!(r#"{},"currency":"EUR"}}"#, &line[..line.len() - 1]),
            5 => line.replacen(r#""team_id":""#, r#""team_id":"bad team "#, 1),
            _ => format!(r#"{},"pad":"{}"}}"#, &line[..line.len() - 1], "x".repeat(66 * 1024)),
        }
    }

    /// Moves the next in-order line into the disorder buffer; false at the end.
    fn feed(&mut self) -> bool {
        loop {
            if self.day_pos < self.day_lines.len() {
                let (ts, _, team, line) = std::mem::take(&mut self.day_lines[self.day_pos]);
                self.day_pos += 1;
                let d = self.cfg.disorder_s as i64 * 1000;
                let key = if d > 0 { ts + self.rng.gen_range(0..=d) } else { ts };
                if self.cfg.broken_ratio > 0.0 && self.rng.gen_bool(self.cfg.broken_ratio.min(1.0)) {
                    let bad = self.broken(&line);
                    self.seq += 1;
                    self.out.push(Reverse((key, self.seq, PendingEvent { ts, team, line: bad })));
                }
                if self.cfg.redeliver_ratio > 0.0 && self.rng.gen_bool(self.cfg.redeliver_ratio.min(1.0)) {
                    let later = key + self.rng.gen_range(1_000..=600_000);
                    self.seq += 1;
                    self.out.push(Reverse((later, self.seq, PendingEvent { ts, team, line: line.clone() })));
                }
                self.seq += 1;
                self.out.push(Reverse((key, self.seq, PendingEvent { ts, team, line })));
                return true;
            }
            if self.day >= self.cfg.days {
                return false;
            }
            let d = self.day;
            self.day += 1;
            self.simulate_day(d);
        }
    }
}

impl Iterator for Generator {
    type Item = GenEvent;

    fn next(&mut self) -> Option<GenEvent> {
        if self.done {
            return None;
        }
        loop {
            // Release the buffered line whose key is at or before the next
            // in-order line's time (so disorder stays within disorder_s).
            let next_ts = if self.day_pos < self.day_lines.len() { Some(self.day_lines[self.day_pos].0) } else { None };
            match (self.out.peek(), next_ts) {
                (Some(Reverse((key, _, _))), Some(ts)) if *key <= ts => break,
                (Some(_), None) if self.day >= self.cfg.days => break,
                _ => {
                    if !self.feed() && self.out.is_empty() {
                        self.done = true;
                        return None;
                    }
                }
            }
        }
        let Reverse((_, _, p)) = self.out.pop()?;
        let line = match self.cfg.style {
            Style::Compact => p.line,
            Style::Crm => spaced(&p.line),
        };
        Some(GenEvent { ts_ms: p.ts, team_id: team_name(p.team), line })
    }
}

/// UTC offsets (minutes) of the teams' CRM instances, by team index modulo 8.
const TEAM_OFFSETS_MIN: [i64; 8] = [60, -300, 480, -180, -360, 120, 330, 0];

/// A CRM-style timestamp of `ms` for `team`: the team's local time with its
/// offset (`Z` for the UTC team), always with a fraction: milliseconds as
/// JavaScript's `toISOString` writes them, or for one event in five six
/// digits as Python's `isoformat` writes a millisecond time (`.250000`).
/// `draw` (0..10) is the random value the compact style uses.
fn crm_stamp(ms: i64, team: usize, draw: u32) -> String {
    let offset_min = TEAM_OFFSETS_MIN[team % TEAM_OFFSETS_MIN.len()];
    let local = ms + offset_min * MS_MIN;
    let secs = local.div_euclid(1000);
    let (y, m, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}", sod / 3600, sod / 60 % 60, sod % 60, local.rem_euclid(1000));
    if draw < 2 {
        s.push_str("000");
    }
    if offset_min == 0 {
        s.push('Z');
    } else {
        let a = offset_min.abs();
        let _ = write!(s, "{}{:02}:{:02}", if offset_min < 0 { '-' } else { '+' }, a / 60, a % 60);
    }
    s
}

/// `line` with a space after every `:` and `,` outside strings, as Python's
/// `json.dumps` separates keys and values (also for the truncated broken
/// lines: only string state is tracked).
fn spaced(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 6);
    let (mut in_str, mut escaped) = (false, false);
    for c in line.chars() {
        out.push(c);
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
        } else if c == '"' {
            in_str = true;
        } else if c == ':' || c == ',' {
            out.push(' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse_event, Payload, ValidationRules};

    fn lines(cfg: GenConfig) -> Vec<GenEvent> {
        Generator::new(cfg).collect()
    }

    #[test]
    fn deterministic_and_valid() {
        let a = lines(GenConfig::default());
        let b = lines(GenConfig::default());
        assert_eq!(a, b);
        assert!(a.len() > 10_000, "{}", a.len());
        let rules = ValidationRules::default();
        for e in &a {
            let ev = parse_event(e.line.as_bytes(), &rules).unwrap_or_else(|err| panic!("{}: {err}", e.line));
            assert_eq!(ev.occurred_at / 1000, e.ts_ms, "{}", e.line);
            assert_eq!(ev.team, e.team_id.as_str());
        }
        for w in a.windows(2) {
            assert!(w[0].ts_ms <= w[1].ts_ms);
        }
    }

    #[test]
    fn disorder_is_bounded_and_redeliveries_are_copies() {
        let cfg = GenConfig { disorder_s: 120, redeliver_ratio: 0.05, days: 5, ..GenConfig::default() };
        let a = lines(cfg);
        let mut max_seen = i64::MIN;
        let mut out_of_order = 0;
        let mut ids = std::collections::HashMap::new();
        for e in &a {
            // a re-delivery may come up to 10 minutes after its original
            assert!(e.ts_ms >= max_seen.saturating_sub(720_000), "disorder bound broken: {} after {max_seen}: {}", e.ts_ms, e.line);
            if e.ts_ms < max_seen {
                out_of_order += 1;
            }
            max_seen = max_seen.max(e.ts_ms);
            *ids.entry(e.line.clone()).or_insert(0) += 1;
        }
        assert!(out_of_order > 100);
        let dups = ids.values().filter(|&&n| n == 2).count();
        assert!(dups > 100 && ids.values().all(|&n| n <= 2), "{dups}");
    }

    #[test]
    fn crm_style_writes_the_same_events() {
        let cfg = GenConfig { days: 4, teams: 9, reps_per_team: 2, redeliver_ratio: 0.02, disorder_s: 60, ..GenConfig::default() };
        let compact = lines(cfg.clone());
        let crm = lines(GenConfig { style: Style::Crm, ..cfg });
        assert_eq!(compact.len(), crm.len());
        let rules = ValidationRules::default();
        let (mut offsets, mut six) = (std::collections::BTreeSet::new(), 0);
        for (a, b) in compact.iter().zip(&crm) {
            assert_eq!((a.ts_ms, &a.team_id), (b.ts_ms, &b.team_id));
            let (ea, eb) = (parse_event(a.line.as_bytes(), &rules).unwrap(), parse_event(b.line.as_bytes(), &rules).unwrap());
            assert_eq!(ea, eb, "{} vs {}", a.line, b.line);
            assert!(b.line.starts_with(r#"{"event_id": "g-1-"#) && b.line.contains(r#"", "type": ""#), "{}", b.line);
            let at = b.line.split(r#""occurred_at": ""#).nth(1).and_then(|r| r.split('"').next()).unwrap();
            assert_eq!(at.as_bytes()[19], b'.', "{at}");
            offsets.insert(at[23..].trim_start_matches("000").to_string());
            six += usize::from(at[20..].bytes().take_while(u8::is_ascii_digit).count() == 6);
        }
        // eight team offsets (Z among them), and about one stamp in five with six digits
        assert_eq!(offsets.len(), 8, "{offsets:?}");
        assert!(six * 10 > crm.len() && six * 3 < crm.len(), "{six} of {}", crm.len());
        assert_eq!(spaced(r#"{"a":"x:, \"y,","b":[1,2]}"#), r#"{"a": "x:, \"y,", "b": [1, 2]}"#);
    }

    #[test]
    fn broken_lines_are_invalid() {
        let cfg = GenConfig { broken_ratio: 0.02, days: 3, ..GenConfig::default() };
        let rules = ValidationRules::default();
        let bad = lines(cfg).iter().filter(|e| parse_event(e.line.as_bytes(), &rules).is_err()).count();
        assert!(bad > 50, "{bad}");
    }

    #[test]
    fn laggard_is_far_below_reach_and_others_above() {
        let cfg = GenConfig { laggard: Some((1, 2)), days: 10, ..GenConfig::default() };
        let rules = ValidationRules::default();
        let mut per_rep: std::collections::HashMap<String, (u32, u32)> = Default::default();
        for e in lines(cfg) {
            let ev = parse_event(e.line.as_bytes(), &rules).unwrap();
            if let Payload::Touch { direction: crate::event::Direction::Outbound, outcome, .. } = ev.payload {
                let c = per_rep.entry(ev.rep.unwrap().into_owned()).or_default();
                c.1 += 1;
                c.0 += u32::from(outcome == crate::event::Outcome::Meaningful);
            }
        }
        for (rep, (m, n)) in per_rep {
            let r = m as f64 / n as f64;
            if rep == "rep-na-ent-03" {
                assert!(r < 0.15, "{rep} {r}");
            } else {
                assert!(r > 0.38, "{rep} {r}");
            }
        }
    }

    #[test]
    fn some_reps_give_up_after_one_touch_and_the_others_follow_up() {
        let cfg = GenConfig { days: 28, ..GenConfig::default() };
        let rules = ValidationRules::default();
        // touches per lead (outbound, with the lead's id), by the lead's rep
        let mut per_lead: std::collections::HashMap<(String, String), u32> = Default::default();
        let mut products: std::collections::HashSet<&str> = Default::default();
        for e in lines(cfg) {
            let ev = parse_event(e.line.as_bytes(), &rules).unwrap();
            if let Payload::Touch { direction: crate::event::Direction::Outbound, lead: Some(l), .. } = &ev.payload {
                *per_lead.entry((ev.rep.unwrap().into_owned(), l.to_string())).or_default() += 1;
            }
            if e.line.contains(r#""type":"deal.created""#) {
                products.extend(PRODUCT_LINES.iter().copied().filter(|p| e.line.contains(&format!(r#""product_line":"{p}""#))));
            }
        }
        let mut by_rep: std::collections::HashMap<String, (u32, u32)> = Default::default();
        for ((rep, _), n) in per_lead {
            let c = by_rep.entry(rep).or_default();
            c.0 += u32::from(n == 1);
            c.1 += 1;
        }
        let quitters = by_rep.values().filter(|(one, all)| one == all).count();
        // (the last days' leads of a rep who follows up twice have had one touch so far)
        let persistent = by_rep.values().filter(|(one, all)| *one * 4 < *all).count();
        // a quarter of the 32 reps, give or take the draw
        assert!((3..=14).contains(&quitters), "{quitters} of {}", by_rep.len());
        assert_eq!(quitters + persistent, by_rep.len(), "{by_rep:?}");
        assert_eq!(products.len(), PRODUCT_LINES.len());
    }
}
