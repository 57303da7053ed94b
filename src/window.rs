//! Window definitions and the event-time arithmetic behind them.
//!
//! Owns: which windows exist (`1h`, `1d`, `7d`, `30d`, `today`, `wtd`, `mtd`,
//! `qtd` by default), their bucket sizes, the bucket index of an instant,
//! whether a bucket is in a window or its previous window at clock `t`, the
//! calendar periods of an instant in the configured IANA time zone, and the
//! oldest instant still kept (older events are `late`).
//! Must not touch: accumulated values (see [`crate::measures`]), events.
//!
//! Rolling windows follow `metrics.md` exactly: buckets are aligned to the
//! Unix epoch in UTC and an event at `e` is in window `W` (bucket `g`) at clock
//! `t` iff `floor(t/g) - W/g < floor(e/g) <= floor(t/g)`. The previous window
//! (for growth) is the `W/g` buckets before those. Calendar windows run from
//! the start of the current local day / ISO week (Monday) / month / quarter.

use chrono::{Datelike, LocalResult, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::time::{Micros, MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_MIN};

/// The four calendar windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Calendar {
    Today,
    Wtd,
    Mtd,
    Qtd,
}

impl Calendar {
    pub const ALL: [Calendar; 4] = [Calendar::Today, Calendar::Wtd, Calendar::Mtd, Calendar::Qtd];
    pub fn name(self) -> &'static str {
        match self {
            Calendar::Today => "today",
            Calendar::Wtd => "wtd",
            Calendar::Mtd => "mtd",
            Calendar::Qtd => "qtd",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One configured window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowKind {
    /// `len` and `bucket` in microseconds; `gran` indexes [`Windows::grans`].
    Rolling { len: Micros, bucket: Micros, gran: usize },
    Calendar(Calendar),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowDef {
    /// The `window` label value.
    pub name: String,
    pub kind: WindowKind,
}

/// A bucket size shared by one or more rolling windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granularity {
    pub bucket: Micros,
    /// Buckets of the longest window of this size (its current range).
    pub current_buckets: i64,
}

/// Calendar period ids of an instant: local day number, ISO week number
/// (weeks since the Monday before the epoch), month and quarter numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Periods {
    pub day: i64,
    pub week: i64,
    pub month: i64,
    pub quarter: i64,
}

impl Periods {
    pub fn get(&self, c: Calendar) -> i64 {
        match c {
            Calendar::Today => self.day,
            Calendar::Wtd => self.week,
            Calendar::Mtd => self.month,
            Calendar::Qtd => self.quarter,
        }
    }
}

/// Errors in a window specification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("window {0:?}: expected `Nm`, `Nh` or `Nd` (optionally `:bucket`), or one of today, wtd, mtd, qtd")]
    Syntax(String),
    #[error("window {0:?}: its length must be a positive multiple of its bucket size")]
    NotMultiple(String),
    #[error("window {0:?} is configured twice")]
    Duplicate(String),
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Berlin)")]
    TimeZone(String),
    #[error("no windows configured")]
    Empty,
    #[error("window {0:?} has more than 2^30 buckets: give it a larger bucket size")]
    TooManyBuckets(String),
}

/// The window set of a deployment: definitions, bucket sizes, time zone.
#[derive(Debug, Clone)]
pub struct Windows {
    pub defs: Vec<WindowDef>,
    pub grans: Vec<Granularity>,
    pub tz: Tz,
    /// Which calendar windows are configured.
    pub calendars: Vec<Calendar>,
    /// Roll-up chains of [`Windows::grans`] (indexes, finest first): every
    /// bucket size is in exactly one chain, and each one rolls up into the
    /// next of its chain (see [`rollup_chains`]).
    pub chains: Vec<Vec<usize>>,
    /// For each bucket size, its chain and its position in it.
    pub chain_of: Vec<(usize, usize)>,
}

/// Windows of more buckets than this are refused: bucket indexes are kept
/// relative to a base in 32 bits (see `state`), which is exact while a ring
/// spans under 2^31 buckets (2 000 years of minutes).
pub const MAX_BUCKETS: i64 = 1 << 30;

/// Groups bucket sizes into roll-up chains: size `g` rolls up into the next
/// larger size `p` of its chain when `p` is a multiple of `g` and the range
/// `g` keeps in full plus a bucket of each fits in the range `p` keeps in
/// full, so a bucket that leaves `g`'s range lands in `p`'s (reads stay
/// exact without that, it only keeps odd configurations from rolling up
/// into sizes that keep less). Each size takes the smallest such `p` not
/// taken yet. With the defaults: 1 minute → 1 hour → 1 day.
pub fn rollup_chains(grans: &[Granularity]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..grans.len()).collect();
    order.sort_by_key(|&i| grans[i].bucket);
    let mut parent: Vec<Option<usize>> = vec![None; grans.len()];
    let mut has_child = vec![false; grans.len()];
    for (k, &g) in order.iter().enumerate() {
        let fine = &grans[g];
        let p = order[k + 1..].iter().copied().find(|&p| {
            let coarse = &grans[p];
            !has_child[p]
                && coarse.bucket > fine.bucket
                && coarse.bucket % fine.bucket == 0
                && fine.bucket.saturating_mul(fine.current_buckets + 1).saturating_add(coarse.bucket)
                    <= coarse.bucket.saturating_mul(coarse.current_buckets)
        });
        if let Some(p) = p {
            parent[g] = Some(p);
            has_child[p] = true;
        }
    }
    order
        .iter()
        .filter(|&&g| !has_child[g])
        .map(|&g| {
            let mut chain = vec![g];
            while let Some(p) = parent[*chain.last().unwrap_or(&g)] {
                chain.push(p);
            }
            chain
        })
        .collect()
}

fn parse_len(s: &str) -> Option<Micros> {
    let unit = match s.chars().last()? {
        'm' => MICROS_PER_MIN,
        'h' => MICROS_PER_HOUR,
        'd' => MICROS_PER_DAY,
        _ => return None,
    };
    let n: i64 = s[..s.len() - 1].parse().ok()?;
    (n > 0).then(|| n.checked_mul(unit)).flatten()
}

/// Default bucket for a rolling window written without one: 1 minute up to
/// 2 hours, 1 hour up to 7 days, 1 day beyond.
pub fn default_bucket(len: Micros) -> Micros {
    if len <= 2 * MICROS_PER_HOUR {
        MICROS_PER_MIN
    } else if len <= 7 * MICROS_PER_DAY {
        MICROS_PER_HOUR
    } else {
        MICROS_PER_DAY
    }
}

impl Windows {
    /// The default of `metrics.md`.
    pub const DEFAULT: [&'static str; 8] = ["1h:1m", "1d:1h", "7d:1h", "30d:1d", "today", "wtd", "mtd", "qtd"];

    /// Builds a window set from specs like `"7d:1h"`, `"30d"`, `"mtd"`.
    pub fn new<S: AsRef<str>>(specs: &[S], tz_name: &str) -> Result<Self, WindowError> {
        let tz: Tz = tz_name.parse().map_err(|_| WindowError::TimeZone(tz_name.to_owned()))?;
        if specs.is_empty() {
            return Err(WindowError::Empty);
        }
        let mut defs: Vec<WindowDef> = Vec::new();
        let mut grans: Vec<Granularity> = Vec::new();
        let mut calendars = Vec::new();
        for spec in specs {
            let spec = spec.as_ref().trim();
            let cal = Calendar::ALL.into_iter().find(|c| c.name() == spec);
            let (name, kind) = if let Some(c) = cal {
                calendars.push(c);
                (spec.to_owned(), WindowKind::Calendar(c))
            } else {
                let (name, bucket) = match spec.split_once(':') {
                    Some((n, b)) => (n, Some(parse_len(b).ok_or_else(|| WindowError::Syntax(spec.into()))?)),
                    None => (spec, None),
                };
                let len = parse_len(name).ok_or_else(|| WindowError::Syntax(spec.into()))?;
                let bucket = bucket.unwrap_or_else(|| default_bucket(len));
                if len % bucket != 0 {
                    return Err(WindowError::NotMultiple(spec.into()));
                }
                let gran = match grans.iter().position(|g| g.bucket == bucket) {
                    Some(i) => i,
                    None => {
                        grans.push(Granularity { bucket, current_buckets: 0 });
                        grans.len() - 1
                    }
                };
                let n = len / bucket;
                grans[gran].current_buckets = grans[gran].current_buckets.max(n);
                (name.to_owned(), WindowKind::Rolling { len, bucket, gran })
            };
            if defs.iter().any(|d| d.name == name) {
                return Err(WindowError::Duplicate(name));
            }
            defs.push(WindowDef { name, kind });
        }
        if let Some(d) = defs.iter().find(|d| matches!(d.kind, WindowKind::Rolling { len, bucket, .. } if len / bucket > MAX_BUCKETS)) {
            return Err(WindowError::TooManyBuckets(d.name.clone()));
        }
        let chains = rollup_chains(&grans);
        let mut chain_of = vec![(0, 0); grans.len()];
        for (c, chain) in chains.iter().enumerate() {
            for (pos, &g) in chain.iter().enumerate() {
                chain_of[g] = (c, pos);
            }
        }
        Ok(Windows { defs, grans, tz, calendars, chains, chain_of })
    }

    pub fn default_utc() -> Self {
        // The default specs are constants that parse.
        Self::new(&Self::DEFAULT, "UTC").expect("default windows are valid")
    }

    /// Bucket size `g` and the finer sizes that roll up into it, finest first.
    pub fn finer_or_same(&self, g: usize) -> &[usize] {
        let (c, pos) = self.chain_of[g];
        &self.chains[c][..=pos]
    }

    /// Calendar periods of instant `e` in the configured time zone.
    pub fn periods(&self, e: Micros) -> Periods {
        periods_in(self.tz, e)
    }

    /// The UTC instant at which calendar period `id` of kind `c` starts.
    pub fn period_start(&self, c: Calendar, id: i64) -> Micros {
        let day = match c {
            Calendar::Today => id,
            Calendar::Wtd => id * 7 - 3,
            Calendar::Mtd => crate::time::days_from_civil(id.div_euclid(12), (id.rem_euclid(12) + 1) as u32, 1),
            Calendar::Qtd => crate::time::days_from_civil(id.div_euclid(4), (id.rem_euclid(4) * 3 + 1) as u32, 1),
        };
        local_midnight(self.tz, day)
    }

    /// The oldest instant still kept at clock `t`: the start of the oldest
    /// previous rolling window and of every current calendar period. An event
    /// before it is `late`.
    pub fn kept_from(&self, t: Micros) -> Micros {
        self.kept_from_until(t).0
    }

    /// [`Windows::kept_from`] at `t`, and the instant until which that value
    /// holds unchanged (the next bucket boundary of the finest bucket size or
    /// the next local midnight, whichever is first), so callers can cache it.
    pub fn kept_from_until(&self, t: Micros) -> (Micros, Micros) {
        let mut until = Micros::MAX;
        for g in &self.grans {
            until = until.min((t.div_euclid(g.bucket) + 1) * g.bucket);
        }
        let mut from = t;
        for g in &self.grans {
            let first = t.div_euclid(g.bucket) - 2 * g.current_buckets + 1;
            from = from.min(first * g.bucket);
        }
        if !self.calendars.is_empty() {
            let p = self.periods(t);
            for &c in &self.calendars {
                from = from.min(self.period_start(c, p.get(c)));
            }
            until = until.min(local_midnight(self.tz, p.day + 1));
        }
        (from, until)
    }
}

/// Local midnight of day number `day` in `tz`, as a UTC instant. Where
/// midnight does not exist (a DST jump at 00:00) the day starts at the first
/// local instant that does.
pub fn local_midnight(tz: Tz, day: i64) -> Micros {
    let (y, m, d) = crate::time::civil_from_days(day);
    let Some(date) = NaiveDate::from_ymd_opt(y as i32, m, d) else {
        return day * MICROS_PER_DAY;
    };
    for minutes in (0..=180).step_by(15) {
        let Some(naive) = date.and_hms_opt(minutes / 60, minutes % 60, 0) else { continue };
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(dt) => return dt.timestamp_micros(),
            LocalResult::Ambiguous(a, _) => return a.timestamp_micros(),
            LocalResult::None => {}
        }
    }
    day * MICROS_PER_DAY
}

/// Calendar periods of `e` in `tz`.
pub fn periods_in(tz: Tz, e: Micros) -> Periods {
    let secs = e.div_euclid(1_000_000);
    let local = match tz.timestamp_opt(secs, 0) {
        LocalResult::Single(dt) => dt.date_naive(),
        _ => chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default().date_naive(),
    };
    let day = crate::time::days_from_civil(local.year() as i64, local.month(), local.day());
    let month = local.year() as i64 * 12 + local.month0() as i64;
    Periods { day, week: (day + 3).div_euclid(7), month, quarter: month.div_euclid(3) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn t(s: &str) -> Micros {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn default_windows() {
        let w = Windows::default_utc();
        assert_eq!(w.defs.len(), 8);
        assert_eq!(w.grans.len(), 3);
        assert_eq!(w.grans[0], Granularity { bucket: MICROS_PER_MIN, current_buckets: 60 });
        assert_eq!(w.grans[1], Granularity { bucket: MICROS_PER_HOUR, current_buckets: 168 });
        assert_eq!(w.grans[2], Granularity { bucket: MICROS_PER_DAY, current_buckets: 30 });
    }

    #[test]
    fn rollup_chains_nest() {
        let w = Windows::default_utc();
        assert_eq!(w.chains, vec![vec![0, 1, 2]]);
        assert_eq!(w.finer_or_same(1), &[0, 1]);
        // 90 minutes is no multiple of an hour; 25 hourly buckets and a day do not fit in 2 days
        let w = Windows::new(&["90m:1m", "3h:90m", "1d:1h", "2d:1d"], "UTC").unwrap();
        assert_eq!(w.grans.iter().map(|g| g.bucket / MICROS_PER_MIN).collect::<Vec<_>>(), vec![1, 90, 60, 1440]);
        assert_eq!(w.chains, vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(w.finer_or_same(3), &[1, 3]);
        assert!(matches!(Windows::new(&["2100000d:1m"], "UTC"), Err(WindowError::TooManyBuckets(_))));
    }

    #[test]
    fn bad_specs() {
        assert!(matches!(Windows::new(&["5x"], "UTC"), Err(WindowError::Syntax(_))));
        assert!(matches!(Windows::new(&["90m:1h"], "UTC"), Err(WindowError::NotMultiple(_))));
        assert!(matches!(Windows::new(&["1h", "1h:1m"], "UTC"), Err(WindowError::Duplicate(_))));
        assert!(matches!(Windows::new(&["1h"], "Mars/Olympus"), Err(WindowError::TimeZone(_))));
        assert!(matches!(Windows::new::<&str>(&[], "UTC"), Err(WindowError::Empty)));
        let w = Windows::new(&["90m", "3d", "45d"], "UTC").unwrap();
        assert_eq!(w.grans.iter().map(|g| g.bucket).collect::<Vec<_>>(), vec![MICROS_PER_MIN, MICROS_PER_HOUR, MICROS_PER_DAY]);
    }

    #[test]
    fn periods_in_utc_and_berlin() {
        let w = Windows::default_utc();
        // 2026-11-15 is a Sunday; its ISO week starts Monday 2026-11-09.
        let p = w.periods(t("2026-11-15T08:00:00Z"));
        assert_eq!(w.period_start(Calendar::Today, p.day), t("2026-11-15T00:00:00Z"));
        assert_eq!(w.period_start(Calendar::Wtd, p.week), t("2026-11-09T00:00:00Z"));
        assert_eq!(w.period_start(Calendar::Mtd, p.month), t("2026-11-01T00:00:00Z"));
        assert_eq!(w.period_start(Calendar::Qtd, p.quarter), t("2026-10-01T00:00:00Z"));
        // Monday itself is in its own week.
        assert_eq!(w.periods(t("2026-11-09T00:00:00Z")).week, p.week);
        assert_eq!(w.periods(t("2026-11-08T23:59:59Z")).week, p.week - 1);

        let b = Windows::new(&Windows::DEFAULT, "Europe/Berlin").unwrap();
        // 23:30Z on Oct 31 is already Nov 1 in Berlin (UTC+1).
        let p = b.periods(t("2026-10-31T23:30:00Z"));
        assert_eq!(b.period_start(Calendar::Mtd, p.month), t("2026-10-31T23:00:00Z"));
        assert_eq!(b.period_start(Calendar::Qtd, p.quarter), t("2026-09-30T22:00:00Z"));
        // DST: Berlin's 2026-03-29 is 23 hours long.
        let d = b.periods(t("2026-03-29T12:00:00Z")).day;
        assert_eq!(b.period_start(Calendar::Today, d + 1) - b.period_start(Calendar::Today, d), 23 * MICROS_PER_HOUR);
    }

    #[test]
    fn midnight_that_does_not_exist() {
        // America/Santiago jumps from 00:00 to 01:00 on 2026-09-06.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let day = crate::time::days_from_civil(2026, 9, 6);
        assert_eq!(local_midnight(tz, day), t("2026-09-06T01:00:00-03:00"));
    }

    #[test]
    fn kept_from_defaults() {
        let w = Windows::default_utc();
        // 30d previous window reaches back to day floor(t) - 59; qtd starts Oct 1.
        assert_eq!(w.kept_from(t("2026-11-15T08:00:00Z")), t("2026-09-17T00:00:00Z"));
        // late in a quarter the quarter start is older than that... no: Dec 31 -> Nov 2
        assert_eq!(w.kept_from(t("2026-12-31T08:00:00Z")), t("2026-10-01T00:00:00Z"));
        let only_hour = Windows::new(&["1h"], "UTC").unwrap();
        assert_eq!(only_hour.kept_from(t("2026-11-15T08:30:10Z")), t("2026-11-15T06:31:00Z"));
    }
}
