//! The fast path of [`super::parse_event`]: a direct scan of the bytes of a
//! plain event object into [`Raw`], without serde.
//!
//! Owns: recognising the common, simple shape of an event (one flat JSON
//! object of strings without escapes, plain non-negative decimal numbers,
//! `true`/`false`/`null`) and reading it exactly as the serde path would.
//! Must not touch: validation (the caller runs the same `validate` on both
//! paths) or error messages.
//!
//! The scan is deliberately partial: anything outside that shape (escapes,
//! nested values, exponents, signs, more than 15 significant digits,
//! non-UTF-8, a repeated known key, malformed JSON of any kind) returns
//! `None`, and the caller parses the message with the serde path, which
//! decides its reason and detail exactly as before. So for every message
//! the scan accepts, its [`Raw`] equals the serde path's (the unit tests and
//! a property test compare both paths), and every other message takes the
//! serde path unchanged.
//!
//! Numbers: an integer or decimal of at most 15 significant digits is
//! `m / 10^k` with `m < 10^15` and `k <= 15`, both exact doubles, so one
//! IEEE division gives the correctly rounded value, the same double any
//! correct parser returns.

use std::borrow::Cow;

use super::{Raw, Scalar};

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Powers of ten that are exact doubles.
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

struct Cursor<'a> {
    /// The message, already checked to be UTF-8.
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that ends a plain string: `"`, `\` or a
/// control character (bytes above a flagged one may be flagged wrongly; only
/// the lowest flag is used).
#[inline]
fn specials(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

/// Reads the decimal digits at `b[*i..]` into `m`, counting them in
/// `digits`; `None` past 15 significant digits (the serde path decides).
#[inline]
fn digits_into(b: &[u8], i: &mut usize, m: &mut u64, digits: &mut u32) -> Option<()> {
    while let Some(&c @ b'0'..=b'9') = b.get(*i) {
        *m = *m * 10 + u64::from(c - b'0');
        *digits += 1;
        *i += 1;
        if *digits > 15 {
            return None;
        }
    }
    Some(())
}

impl<'a> Cursor<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c > b' ' || !is_ws(c) {
                return;
            }
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The bytes of a string without escapes or control characters, after
    /// its opening quote; `None` for anything else.
    #[inline(always)]
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        loop {
            let Some(chunk) = b.get(i..i + 8) else {
                while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
                    i += 1;
                }
                break;
            };
            let m = specials(u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]));
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        self.i = i + 1;
        Some(&b[start..i])
    }

    /// A string value (see [`Cursor::raw_string`]).
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let start = self.i;
        let len = self.raw_string()?.len();
        // Quotes are ASCII, so both ends are character boundaries.
        self.s.get(start..start + len)
    }

    /// A non-negative number of at most 15 digits (integer and fraction
    /// together), no exponent.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let b = self.b;
        let mut i = self.i;
        let mut m: u64 = 0;
        let mut digits = 0u32;
        match b.get(i) {
            Some(b'0') => {
                i += 1;
                digits = 1;
            }
            Some(b'1'..=b'9') => digits_into(b, &mut i, &mut m, &mut digits)?,
            _ => return None,
        }
        let mut k = 0usize;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let frac_start = i;
            digits_into(b, &mut i, &mut m, &mut digits)?;
            k = i - frac_start;
            if k == 0 {
                return None;
            }
        }
        // The number must end here (an exponent or anything else: serde path).
        match b.get(i) {
            None => {}
            Some(&c) if is_ws(c) || c == b',' || c == b'}' => {}
            Some(_) => return None,
        }
        self.i = i;
        let v = m as f64;
        Some(if k == 0 { v } else { v / POW10[k] })
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            let end = self.i + word.len();
            match self.b.get(end) {
                None => {}
                Some(&c) if is_ws(c) || c == b',' || c == b'}' => {}
                Some(_) => return false,
            }
            self.i = end;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(|s| Scalar::Str(Cow::Borrowed(s)))
            }
            b'0'..=b'9' => self.number().map(Scalar::Num),
            b't' => self.literal(b"true").then_some(Scalar::Other),
            b'f' => self.literal(b"false").then_some(Scalar::Other),
            b'n' => self.literal(b"null").then_some(Scalar::Null),
            _ => None,
        }
    }
}

/// A key of at most 16 bytes as two little-endian words (zero-padded), so a
/// known key is recognised by two integer compares instead of a `memcmp`.
const fn key_words(k: &[u8]) -> (u64, u64) {
    let mut w = [0u64; 2];
    let mut i = 0;
    while i < k.len() && i < 16 {
        w[i / 8] |= (k[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    (w[0], w[1])
}

const K_EVENT_ID: (u64, u64) = key_words(b"event_id");
const K_TYPE: (u64, u64) = key_words(b"type");
const K_OCCURRED_AT: (u64, u64) = key_words(b"occurred_at");
const K_TEAM_ID: (u64, u64) = key_words(b"team_id");
const K_REP_ID: (u64, u64) = key_words(b"rep_id");
const K_LEAD_ID: (u64, u64) = key_words(b"lead_id");
const K_SOURCE: (u64, u64) = key_words(b"source");
const K_STAGE: (u64, u64) = key_words(b"stage");
const K_OUTCOME: (u64, u64) = key_words(b"outcome");
const K_DIRECTION: (u64, u64) = key_words(b"direction");
const K_DURATION_S: (u64, u64) = key_words(b"duration_s");
const K_MEETING_ID: (u64, u64) = key_words(b"meeting_id");
const K_SCHEDULED_FOR: (u64, u64) = key_words(b"scheduled_for");
const K_STATUS: (u64, u64) = key_words(b"status");
const K_RESCHEDULED_BY: (u64, u64) = key_words(b"rescheduled_by");
const K_DEAL_ID: (u64, u64) = key_words(b"deal_id");
const K_AMOUNT: (u64, u64) = key_words(b"amount");
const K_KIND: (u64, u64) = key_words(b"kind");
const K_MARGIN: (u64, u64) = key_words(b"margin");
const K_REASON: (u64, u64) = key_words(b"reason");
const K_SCORE: (u64, u64) = key_words(b"score");
const K_CUSTOMER_ID: (u64, u64) = key_words(b"customer_id");
const K_MRR: (u64, u64) = key_words(b"mrr");
const K_CATEGORY: (u64, u64) = key_words(b"category");
const K_PERIOD: (u64, u64) = key_words(b"period");
const K_PERIOD_START: (u64, u64) = key_words(b"period_start");
const K_CURRENCY: (u64, u64) = key_words(b"currency");
const K_PRODUCT_LINE: (u64, u64) = key_words(b"product_line");

/// Index of the known key `key` (its bit in the seen-mask, and see [`field`]).
/// Keys hold no NUL byte (a control character), so the padded words alone
/// tell them apart.
#[inline]
fn key_index(key: &[u8]) -> Option<u32> {
    if key.len() > 16 {
        return None;
    }
    let mut w = [0u8; 16];
    w[..key.len()].copy_from_slice(key);
    let lo = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
    let hi = u64::from_le_bytes([w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15]]);
    Some(match (lo, hi) {
        K_EVENT_ID => 0,
        K_TYPE => 1,
        K_OCCURRED_AT => 2,
        K_TEAM_ID => 3,
        K_REP_ID => 4,
        K_LEAD_ID => 5,
        K_SOURCE => 6,
        K_STAGE => 7,
        K_OUTCOME => 8,
        K_DIRECTION => 9,
        K_DURATION_S => 10,
        K_MEETING_ID => 11,
        K_SCHEDULED_FOR => 12,
        K_STATUS => 13,
        K_RESCHEDULED_BY => 14,
        K_DEAL_ID => 15,
        K_AMOUNT => 16,
        K_KIND => 17,
        K_MARGIN => 18,
        K_REASON => 19,
        K_SCORE => 20,
        K_CUSTOMER_ID => 21,
        K_MRR => 22,
        K_CATEGORY => 23,
        K_PERIOD => 24,
        K_PERIOD_START => 25,
        K_CURRENCY => 26,
        K_PRODUCT_LINE => 27,
        _ => return None,
    })
}

/// The field of `raw` with index `i` (see [`key_index`]).
#[inline]
fn field<'r, 'a>(raw: &'r mut Raw<'a>, i: u32) -> &'r mut Option<Scalar<'a>> {
    match i {
        0 => &mut raw.event_id,
        1 => &mut raw.ty,
        2 => &mut raw.occurred_at,
        3 => &mut raw.team_id,
        4 => &mut raw.rep_id,
        5 => &mut raw.lead_id,
        6 => &mut raw.source,
        7 => &mut raw.stage,
        8 => &mut raw.outcome,
        9 => &mut raw.direction,
        10 => &mut raw.duration_s,
        11 => &mut raw.meeting_id,
        12 => &mut raw.scheduled_for,
        13 => &mut raw.status,
        14 => &mut raw.rescheduled_by,
        15 => &mut raw.deal_id,
        16 => &mut raw.amount,
        17 => &mut raw.kind,
        18 => &mut raw.margin,
        19 => &mut raw.reason,
        20 => &mut raw.score,
        21 => &mut raw.customer_id,
        22 => &mut raw.mrr,
        23 => &mut raw.category,
        24 => &mut raw.period,
        25 => &mut raw.period_start,
        26 => &mut raw.currency,
        _ => &mut raw.product_line,
    }
}

/// Reads a plain event object, or `None` when the serde path must decide.
pub(super) fn scan(bytes: &[u8]) -> Option<Raw<'_>> {
    let s = std::str::from_utf8(bytes).ok()?;
    let mut c = Cursor { s, b: bytes, i: 0 };
    let mut raw = Raw::default();
    let mut seen = 0u32;
    c.ws();
    if c.peek()? != b'{' {
        return None;
    }
    c.i += 1;
    c.ws();
    if c.peek()? == b'}' {
        c.i += 1;
    } else {
        loop {
            if c.peek()? != b'"' {
                return None;
            }
            c.i += 1;
            let key = c.raw_string()?;
            c.ws();
            if c.peek()? != b':' {
                return None;
            }
            c.i += 1;
            c.ws();
            let v = c.value()?;
            if let Some(bit) = key_index(key) {
                if seen & (1 << bit) != 0 {
                    return None; // a repeated known field: `json`, with serde's message
                }
                seen |= 1 << bit;
                let slot = field(&mut raw, bit);
                // A `null` is what serde reads as an absent `Option`.
                *slot = match v {
                    Scalar::Null => None,
                    v => Some(v),
                };
            }
            c.ws();
            match c.peek()? {
                b',' => {
                    c.i += 1;
                    c.ws();
                }
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    c.ws();
    (c.i == bytes.len()).then_some(raw)
}
