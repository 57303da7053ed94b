//! `replay`: folds an NDJSON stream through one shard in file order.
//!
//! Owns: splitting a byte stream into lines (one event per line, blank lines
//! skipped, a final line without newline accepted, lines over the message
//! limit counted `too_large` without being buffered whole), progress callbacks
//! and the summary. Lines are folded straight from the reader's buffer; only
//! a line that continues past the end of the buffer is copied.
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
    // Bytes of the line gathered in `buf` so far (it keeps at most `max + 2`).
    let mut pending = 0usize;
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut now = wall();
    let mut fold = |line: &[u8], oversized: bool, lines: &mut u64, bytes_read: u64| {
        if line.is_empty() && !oversized {
            return;
        }
        *lines += 1;
        if *lines % 65_536 == 0 {
            now = wall();
            progress(bytes_read);
        }
        let outcome = if oversized {
            let inv = Invalid { reason: InvalidReason::TooLarge, detail: Some(format!("over {max} bytes").into()) };
            shard.stats.count(&crate::engine::Outcome::Invalid(inv.clone()));
            crate::engine::Outcome::Invalid(inv)
        } else {
            shard.ingest(core, line, now)
        };
        if let crate::engine::Outcome::Invalid(inv) = &outcome {
            on_invalid(*lines, inv, line);
        }
    };
    loop {
        // Complete lines are folded straight from the reader's buffer; a
        // line that continues past it is gathered in `buf` (capped).
        let avail = match input.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            if !buf.is_empty() {
                let oversized = line_body_len(&buf, pending) > max;
                fold(trim_line(&buf), oversized, &mut lines, bytes);
            }
            break;
        }
        let mut pos = 0;
        if !buf.is_empty() {
            // The rest of a line begun in an earlier buffer.
            let (chunk, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (&avail[..=i], true),
                None => (avail, false),
            };
            buf.extend_from_slice(&chunk[..chunk.len().min((max + 2).saturating_sub(buf.len()))]);
            pending += chunk.len();
            bytes += chunk.len() as u64;
            pos = chunk.len();
            if !done {
                input.consume(pos);
                continue;
            }
            let oversized = line_body_len(&buf, pending) > max;
            fold(trim_line(&buf), oversized, &mut lines, bytes);
            buf.clear();
        }
        let from = pos;
        for nl in memchr::memchr_iter(b'\n', &avail[from..]) {
            let full = &avail[pos..=from + nl];
            bytes += full.len() as u64;
            // As if read into a buffer capped at `max + 2` bytes.
            let cap = &full[..full.len().min(max + 2)];
            let oversized = line_body_len(cap, full.len()) > max;
            fold(trim_line(cap), oversized, &mut lines, bytes);
            pos = from + nl + 1;
        }
        let rest = &avail[pos..];
        buf.extend_from_slice(&rest[..rest.len().min(max + 2)]);
        pending = rest.len();
        bytes += rest.len() as u64;
        let n = avail.len();
        input.consume(n);
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
    fn lines_split_across_reads_fold_the_same() {
        let mut cfg = CoreConfig::default();
        cfg.rules.max_message_bytes = 120;
        let ok = |id: &str| format!(r#"{{"event_id":"{id}","type":"quote.sent","occurred_at":"2026-11-15T07:00:00Z","team_id":"t","rep_id":"r"}}"#);
        let text = format!(
            "{}\r\n\n{}\n{}\r\r\n{}x\n{}\n\n{}",
            ok("a"),
            "y".repeat(300),
            ok("b"),
            ok("c"),
            format!("{}\r\r{}", "z".repeat(120), "w".repeat(5)),
            ok("d")
        );
        let run = |cap: usize| {
            let core = Core::new(cfg.clone(), Clock::Event);
            let mut shard = Shard::new();
            let mut invalid = Vec::new();
            let mut input = io::BufReader::with_capacity(cap, text.as_bytes());
            let s = replay(&mut input, &mut shard, &core, &|| i64::MAX / 2, &mut |_| {}, &mut |n, i, _| invalid.push((n, i.clone()))).unwrap();
            (s.lines, s.bytes, s.stats, invalid)
        };
        let want = run(1 << 16);
        assert_eq!(want.0, 6);
        assert_eq!(want.2.applied, 3);
        assert_eq!(want.3.iter().map(|(n, i)| (*n, i.reason)).collect::<Vec<_>>(), vec![(2, InvalidReason::TooLarge), (4, InvalidReason::Json), (5, InvalidReason::Json)]);
        for cap in [1, 2, 3, 5, 8, 64, 121, 122, 123, 200] {
            assert_eq!(run(cap), want, "buffer of {cap} bytes");
        }
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
