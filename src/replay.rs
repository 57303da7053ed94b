//! `replay`: folds an NDJSON stream through one shard in file order.
//!
//! Owns: splitting a byte stream into lines (one event per line, blank lines
//! skipped, a final line without newline accepted, lines over the message
//! limit counted `too_large` without being buffered whole), progress callbacks
//! and the summary.
//! Must not touch: event semantics (all in [`crate::engine`]).

use std::io::{self, BufRead};
use std::time::Instant;

use crate::engine::{Core, Shard, Stats};
use crate::event::{Invalid, InvalidReason};
use crate::time::Micros;

/// What a replay did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub stats: Stats,
    pub lines: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl Summary {
    pub fn events_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.lines as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        write!(
            f,
            "lines={} applied={} duplicate={} late={} invalid={}",
            self.lines,
            s.applied,
            s.duplicate,
            s.late,
            s.invalid_total()
        )?;
        for r in InvalidReason::ALL {
            let n = s.invalid[r.index()];
            if n > 0 {
                write!(f, " invalid_{}={}", r.as_str(), n)?;
            }
        }
        write!(f, " seconds={:.3} events_per_second={:.0}", self.seconds, self.events_per_second())
    }
}

/// The first invalid lines of a replay, at most `per_reason` of each reason,
/// for the report (`replay --report`).
#[derive(Debug, Clone)]
pub struct FirstInvalid {
    per_reason: usize,
    seen: [usize; InvalidReason::ALL.len()],
    pub lines: Vec<InvalidLine>,
}

/// One invalid line: its number (from 1, blank lines not counted), why, and
/// the start of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLine {
    pub line: u64,
    pub reason: InvalidReason,
    pub detail: Option<String>,
    pub text: String,
}

/// Characters of an invalid line kept for the report.
pub const INVALID_TEXT_CHARS: usize = 300;

impl FirstInvalid {
    pub fn new(per_reason: usize) -> Self {
        FirstInvalid { per_reason, seen: [0; InvalidReason::ALL.len()], lines: Vec::new() }
    }

    /// Keeps line `line` if fewer than `per_reason` of its reason are kept.
    pub fn note(&mut self, line: u64, inv: &Invalid, bytes: &[u8]) {
        let seen = &mut self.seen[inv.reason.index()];
        if *seen >= self.per_reason {
            return;
        }
        *seen += 1;
        let text = String::from_utf8_lossy(bytes);
        let mut cut: String = text.chars().take(INVALID_TEXT_CHARS).collect();
        if text.chars().nth(INVALID_TEXT_CHARS).is_some() {
            cut.push('…');
        }
        self.lines.push(InvalidLine { line, reason: inv.reason, detail: inv.detail.as_deref().map(str::to_owned), text: cut });
    }
}

impl Summary {
    /// The summary as the report embeds it (`docs/api.md`, "The static report").
    pub fn to_json(&self, file: &str, first: &FirstInvalid) -> serde_json::Value {
        let s = &self.stats;
        let invalid: serde_json::Map<String, serde_json::Value> =
            InvalidReason::ALL.iter().map(|r| (r.as_str().to_owned(), s.invalid[r.index()].into())).collect();
        let lines: Vec<serde_json::Value> = first
            .lines
            .iter()
            .map(|l| serde_json::json!({ "line": l.line, "reason": l.reason.as_str(), "detail": l.detail, "text": l.text }))
            .collect();
        serde_json::json!({
            "file": file,
            "lines": self.lines,
            "applied": s.applied,
            "duplicate": s.duplicate,
            "late": s.late,
            "invalid_total": s.invalid_total(),
            "invalid": invalid,
            "first_invalid": lines,
            "first_invalid_max": first.per_reason,
        })
    }
}

/// Folds every line of `input` into `shard`. `wall` gives the wall clock for
/// the `future` check; `progress(bytes_read)` is called every 64 Ki lines;
/// `on_invalid(line_no, &invalid, line)` for each invalid line (`line`: its
/// bytes without the line ending, at most `max_message_bytes + 2` of them).
pub fn replay(
    input: &mut dyn BufRead,
    shard: &mut Shard,
    core: &Core,
    wall: &dyn Fn() -> Micros,
    progress: &mut dyn FnMut(u64),
    on_invalid: &mut dyn FnMut(u64, &Invalid, &[u8]),
) -> io::Result<Summary> {
    let start = Instant::now();
    let max = core.cfg.rules.max_message_bytes;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut now = wall();
    loop {
        buf.clear();
        let (n, oversized) = read_line_capped(input, &mut buf, max)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let line = trim_line(&buf);
        if line.is_empty() && !oversized {
            continue;
        }
        lines += 1;
        if lines % 65_536 == 0 {
            now = wall();
            progress(bytes);
        }
        let outcome = if oversized {
            let inv = Invalid { reason: InvalidReason::TooLarge, detail: Some(format!("over {max} bytes").into()) };
            shard.stats.count(&crate::engine::Outcome::Invalid(inv.clone()));
            crate::engine::Outcome::Invalid(inv)
        } else {
            shard.ingest(core, line, now)
        };
        if let crate::engine::Outcome::Invalid(inv) = &outcome {
            on_invalid(lines, inv, line);
        }
    }
    progress(bytes);
    Ok(Summary { stats: shard.stats.clone(), lines, bytes, seconds: start.elapsed().as_secs_f64() })
}

/// Length of a line without its `\n` / `\r\n` ending, given the bytes
/// consumed and the (possibly truncated) buffer holding its start.
fn line_body_len(buf: &[u8], consumed: usize) -> usize {
    let kept = trim_line(buf).len();
    if kept < buf.len() {
        // the whole line, ending included, fit in the buffer
        kept
    } else {
        consumed
    }
}

fn trim_line(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &b[..end]
}

/// Reads one line into `buf`, keeping at most `max + 2` bytes of it; returns
/// the bytes consumed and whether the line was longer than `max`.
fn read_line_capped(input: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut content = 0usize;
    loop {
        let avail = match input.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok((consumed, line_body_len(buf, content) > max));
        }
        let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..=i], true),
            None => (avail, false),
        };
        let len = chunk.len();
        content += len;
        if buf.len() < max + 2 {
            let room = (max + 2 - buf.len()).min(len);
            buf.extend_from_slice(&chunk[..room]);
        }
        input.consume(len);
        consumed += len;
        if done {
            return Ok((consumed, line_body_len(buf, content) > max));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CoreConfig;
    use crate::engine::Clock;

    #[test]
    fn lines_blank_crlf_and_oversized() {
        let core = Core::new(CoreConfig::default(), Clock::Event);
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000));
        let text = format!(
            "\n{}\r\n\nnot json\n{}\n{}",
            r#"{"event_id":"a","type":"quote.sent","occurred_at":"2026-11-15T07:00:00Z","team_id":"t","rep_id":"r"}"#,
            big,
            r#"{"event_id":"b","type":"quote.sent","occurred_at":"2026-11-15T07:00:00Z","team_id":"t","rep_id":"r"}"#
        );
        let mut shard = Shard::new();
        let mut invalid = Vec::new();
        let s = replay(
            &mut text.as_bytes(),
            &mut shard,
            &core,
            &|| crate::time::parse_rfc3339("2026-11-15T08:00:00Z").unwrap_or(0),
            &mut |_| {},
            &mut |n, i, _| invalid.push((n, i.reason)),
        )
        .unwrap();
        assert_eq!(s.lines, 4);
        assert_eq!(s.stats.applied, 2);
        assert_eq!(invalid, vec![(2, InvalidReason::Json), (3, InvalidReason::TooLarge)]);
    }

    #[test]
    fn first_invalid_keeps_a_few_per_reason_and_cuts_long_lines() {
        let mut f = FirstInvalid::new(2);
        let json = Invalid { reason: InvalidReason::Json, detail: Some("expected value".into()) };
        let big = Invalid { reason: InvalidReason::TooLarge, detail: None };
        f.note(1, &json, b"nope");
        f.note(4, &big, "é".repeat(400).as_bytes());
        f.note(7, &json, b"{");
        f.note(9, &json, b"third json: dropped");
        let got: Vec<(u64, &str)> = f.lines.iter().map(|l| (l.line, l.reason.as_str())).collect();
        assert_eq!(got, [(1, "json"), (4, "too_large"), (7, "json")]);
        assert_eq!(f.lines[1].text.chars().count(), INVALID_TEXT_CHARS + 1);
        assert!(f.lines[1].text.ends_with('…'));
        assert_eq!(f.lines[0].detail.as_deref(), Some("expected value"));
        let s = Summary { stats: Stats { applied: 5, duplicate: 1, late: 2, invalid: [0; 8] }, lines: 11, bytes: 0, seconds: 0.0 };
        let j = s.to_json("x.ndjson", &f);
        assert_eq!((j["lines"].as_u64(), j["applied"].as_u64(), j["late"].as_u64()), (Some(11), Some(5), Some(2)));
        assert_eq!(j["first_invalid"][2]["text"], "{");
        assert_eq!(j["first_invalid_max"], 2);
    }
}
