//! Timestamps: a fast RFC 3339 parser and the few calendar helpers the
//! engine needs.
//!
//! Owns: the engine's time representation, [`Micros`] (microseconds since the
//! Unix epoch, UTC), parsing of `occurred_at`/`scheduled_for` and
//! `period_start`, and human-friendly duration strings used by the config
//! (`5m`, `7d`).
//! Must not touch: windows or time zones (see [`crate::window`]); nothing here
//! knows about events.
//!
//! The parser is hand-written because it sits on the hot path of every event
//! (a general date library costs several times more per call); it accepts
//! exactly RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, with
//! `t`/`z` accepted in lower case as RFC 3339 allows. Fractions beyond
//! microseconds are truncated. A leap second (`:60`) is accepted and counted
//! as the first microsecond of the next minute's second 0, as chrono does.

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

pub const MICROS_PER_SEC: i64 = 1_000_000;
pub const MICROS_PER_MIN: i64 = 60 * MICROS_PER_SEC;
pub const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MIN;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1..=12, day 1..=31) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

#[inline]
fn digit(b: u8) -> Option<u32> {
    let d = b.wrapping_sub(b'0');
    (d < 10).then_some(d as u32)
}

#[inline]
fn num2(s: &[u8], i: usize) -> Option<u32> {
    Some(digit(*s.get(i)?)? * 10 + digit(*s.get(i + 1)?)?)
}

/// Parses an RFC 3339 `full-date` (`YYYY-MM-DD`) into a day number.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = num2(b, 0)? * 100 + num2(b, 2)?;
    let m = num2(b, 5)?;
    let d = num2(b, 8)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y as i64, m) {
        return None;
    }
    Some(days_from_civil(y as i64, m, d))
}

/// Parses an RFC 3339 `date-time` into microseconds since the epoch (UTC).
pub fn parse_rfc3339(s: &str) -> Option<Micros> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let days = parse_date(s.get(..10)?)?;
    if !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hh = num2(b, 11)?;
    let mm = num2(b, 14)?;
    let ss = num2(b, 17)?;
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i64 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        let mut scale = 100_000i64;
        while i < b.len() {
            match digit(b[i]) {
                Some(d) => {
                    frac += d as i64 * scale;
                    scale /= 10;
                    i += 1;
                }
                None => break,
            }
        }
        if i == start {
            return None;
        }
    }
    let offset_s: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num2(b, i + 1)?;
            let om = num2(b, i + 4)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = (oh * 3600 + om * 60) as i64;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = days * 86_400 + (hh * 3600 + mm * 60 + ss) as i64 - offset_s;
    Some(secs * MICROS_PER_SEC + frac)
}

/// Formats microseconds as an RFC 3339 UTC timestamp with milliseconds.
pub fn format_rfc3339(t: Micros) -> String {
    let secs = t.div_euclid(MICROS_PER_SEC);
    let micros = t.rem_euclid(MICROS_PER_SEC);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        micros / 1000
    )
}

/// Parses a duration like `90s`, `5m`, `1h`, `7d` into microseconds.
pub fn parse_duration(s: &str) -> Option<Micros> {
    let s = s.trim();
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(unit_at);
    let n: i64 = n.parse().ok()?;
    let unit = match unit {
        "ms" => 1_000,
        "s" => MICROS_PER_SEC,
        "m" => MICROS_PER_MIN,
        "h" => MICROS_PER_HOUR,
        "d" => MICROS_PER_DAY,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// Formats a duration in the largest unit that divides it (`90s`, `5m`, `7d`).
pub fn format_duration(us: Micros) -> String {
    for (unit, name) in [(MICROS_PER_DAY, "d"), (MICROS_PER_HOUR, "h"), (MICROS_PER_MIN, "m")] {
        if us != 0 && us % unit == 0 {
            return format!("{}{name}", us / unit);
        }
    }
    format!("{}s", us / MICROS_PER_SEC)
}

/// The wall clock, in microseconds. The only impure function in the core's
/// time handling; the fold itself always receives the clock as an argument.
pub fn wall_now() -> Micros {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_us(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        for s in [
            "2026-11-20T14:03:11Z",
            "2026-11-20T15:03:11.250+01:00",
            "2026-11-02T10:31:12+01:00",
            "1999-12-31T23:59:59.999999-05:30",
            "2024-02-29T00:00:00z",
            "2026-11-20t14:03:11.1Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.5Z",
        ] {
            assert_eq!(parse_rfc3339(s), Some(chrono_us(s)), "{s}");
        }
        assert_eq!(parse_rfc3339("2026-11-20T14:03:11.123456789Z"), Some(chrono_us("2026-11-20T14:03:11.123456Z")));
    }

    #[test]
    fn rejects_what_rfc3339_rejects() {
        for s in [
            "",
            "2026-11-20",
            "2026-11-20 14:03:11Z",
            "2026-11-20T14:03:11",
            "2026-11-20T14:03:11+0100",
            "2026-11-20T14:03:11.Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T14:60:00Z",
            "2026-11-20T14:03:11+24:00",
            "2026-11-20T14:03:11Z ",
            "２026-11-20T14:03:11Z",
            "2026-11-20T14:03:11ZZ",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for z in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(parse_date("2026-11-01"), Some(days_from_civil(2026, 11, 1)));
        assert_eq!(parse_date("2026-02-30"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(5 * MICROS_PER_MIN));
        assert_eq!(parse_duration("7d"), Some(7 * MICROS_PER_DAY));
        assert_eq!(parse_duration("7x"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(format_duration(7 * MICROS_PER_DAY), "7d");
        assert_eq!(format_duration(90 * MICROS_PER_SEC), "90s");
        assert_eq!(format_rfc3339(chrono_us("2026-11-15T08:00:00.250Z")), "2026-11-15T08:00:00.250Z");
    }
}
