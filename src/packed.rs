//! Packed measures: the byte encoding of what one bucket (or calendar
//! period) of one key has accumulated, kept in that key's [`Arena`].
//!
//! Owns: the record format, adding a [`PackedDelta`] to a record, merging
//! one record into another (when a bucket rolls up into a coarser one),
//! reading a record into [`Totals`], and the arena's garbage collection.
//! Must not touch: windows, clocks, events: which record an event goes to is
//! [`crate::state`]'s business.
//!
//! A record is a header byte and up to five sections, each present only when
//! nonzero:
//!
//! ```text
//! header: bits 0-1 activity width, bits 2-3 count width (0 absent, 1/2/3 = 1/2/4 bytes),
//!         bit 4 sums present, bit 5 response group, bit 6 cycle group
//! activity: the six call/email counters, each of the activity width
//! counts: a 3-byte mask of the 18 stored funnel counts, then the present ones, each of the count width
//! sums:   a 1-byte mask of the 7 money sums, then the present ones as f64
//! response, cycle: an observation group (below)
//! ```
//!
//! Widths grow when a value outgrows them, so a rep's hourly bucket of calls
//! is 7 bytes and a team's quarter still counts exactly. An observation group
//! holds the lead-response (or sales-cycle) observations of the bucket: up to
//! [`RAW_MAX`] of them as their exact values in arrival order (tag = their
//! number), else binned: tag `0x80 | width`, the sum, minimum and maximum as
//! f64, the within-1h count (response only), the number of bins (u16) and
//! sorted `(bin i16, count)` pairs. `lead_responses`, `..._within_1h` and
//! `response_seconds` (and `cycles`, `cycle_seconds`) are derived from the
//! group: every response observation adds exactly 1, `secs <= 3600` and `secs`
//! to them (see `engine::delta_of`), so storing them would only repeat it.
//!
//! Exactness as [`crate::measures::Funnel`]: a field is stored once a
//! nonzero (or NaN) value is added, sums add in arrival order starting from
//! `0.0`, and a group's sum adds its nonzero observations in arrival order.
//!
//! Records live in one `Vec<u8>` per key and are named by their offset. A
//! record that grows is rewritten in place when it is the last one, else
//! copied to the end; the old copy is garbage, collected (compacting the
//! arena and renumbering its records) once it outweighs the live bytes.

use serde::{Deserialize, Serialize};

use crate::measures::{Delta, Totals, FUNNEL_COUNTS, FUNNEL_SUMS};
use crate::sketch::bin_of;

/// Funnel counts stored in a record: every count of [`crate::measures::FunnelDelta`]
/// but the three derived from the observation groups (`lead_responses`,
/// `lead_responses_within_1h`, `cycles`, the last three).
pub const COUNTS: usize = FUNNEL_COUNTS - 3;
/// Money sums stored in a record: all but `response_seconds` and `cycle_seconds` (the last two).
pub const SUMS: usize = FUNNEL_SUMS - 2;
/// Index of `revenue` among the sums.
const REVENUE: usize = 1;
/// Observations a group keeps as exact values before it bins them.
pub const RAW_MAX: usize = 4;
/// A lead response within this many seconds counts as within the hour.
const WITHIN_S: f64 = 3600.0;

const HAS_SUMS: u8 = 1 << 4;
const HAS_RESP: u8 = 1 << 5;
const HAS_CYC: u8 = 1 << 6;
const BINNED: u8 = 0x80;

#[inline]
fn width(code: u8) -> usize {
    [0, 1, 2, 4][usize::from(code & 3)]
}

#[inline]
fn code_for(v: u32) -> u8 {
    if v <= 0xFF {
        1
    } else if v <= 0xFFFF {
        2
    } else {
        3
    }
}

/// Set bits of every byte: the build targets baseline x86-64, whose
/// `count_ones` is a dozen instructions; a table lookup is one.
const POP: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u32).count_ones() as u8;
        i += 1;
    }
    t
};

/// Set bits of a mask of at most 24 bits.
#[inline]
fn pop(x: u32) -> usize {
    usize::from(POP[(x & 0xFF) as usize]) + usize::from(POP[((x >> 8) & 0xFF) as usize]) + usize::from(POP[((x >> 16) & 0xFF) as usize])
}

#[inline]
fn get(b: &[u8], at: usize, w: usize) -> u32 {
    match w {
        1 => u32::from(b[at]),
        2 => u32::from(u16::from_le_bytes([b[at], b[at + 1]])),
        _ => u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]),
    }
}

#[inline]
fn put(b: &mut [u8], at: usize, w: usize, v: u32) {
    match w {
        1 => b[at] = v as u8,
        2 => b[at..at + 2].copy_from_slice(&(v as u16).to_le_bytes()),
        _ => b[at..at + 4].copy_from_slice(&v.to_le_bytes()),
    }
}

/// The six activity counters of a record whose activity width is `aw` (> 0).
#[inline]
fn read_act(b: &[u8], aw: usize) -> [u32; 6] {
    match aw {
        1 => {
            let a = &b[1..7];
            [a[0], a[1], a[2], a[3], a[4], a[5]].map(u32::from)
        }
        2 => {
            let a = &b[1..13];
            std::array::from_fn(|k| u32::from(u16::from_le_bytes([a[2 * k], a[2 * k + 1]])))
        }
        _ => {
            let a = &b[1..25];
            std::array::from_fn(|k| u32::from_le_bytes([a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3]]))
        }
    }
}

/// Adds `add` to the activity counters in place if none outgrows width `aw`
/// (> 0); false (nothing written) otherwise.
#[inline]
fn add_act_in_place(b: &mut [u8], aw: usize, add: &[u32; 6]) -> bool {
    match aw {
        1 => {
            let a = &mut b[1..7];
            let mut over = false;
            let mut v = [0u32; 6];
            for k in 0..6 {
                v[k] = u32::from(a[k]) + add[k];
                over |= v[k] > 0xFF;
            }
            if over {
                return false;
            }
            for k in 0..6 {
                a[k] = v[k] as u8;
            }
            true
        }
        2 => {
            let a = &mut b[1..13];
            let mut over = false;
            let mut v = [0u32; 6];
            for k in 0..6 {
                v[k] = u32::from(u16::from_le_bytes([a[2 * k], a[2 * k + 1]])) + add[k];
                over |= v[k] > 0xFFFF;
            }
            if over {
                return false;
            }
            for k in 0..6 {
                a[2 * k..2 * k + 2].copy_from_slice(&(v[k] as u16).to_le_bytes());
            }
            true
        }
        _ => {
            let a = &mut b[1..25];
            for k in 0..6 {
                let v = u32::from_le_bytes([a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3]]).wrapping_add(add[k]);
                a[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
            }
            true
        }
    }
}

/// The largest value of a width.
#[inline]
fn max_of(w: usize) -> u32 {
    match w {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => u32::MAX,
    }
}

#[inline]
fn get_f64(b: &[u8], at: usize) -> f64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    f64::from_le_bytes(x)
}

#[inline]
fn put_f64(b: &mut [u8], at: usize, v: f64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}


/// What one event adds, prepared once for every record it goes to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackedDelta {
    /// Whether any of `act` is nonzero.
    pub act_any: bool,
    pub act: [u32; 6],
    pub cmask: u32,
    pub counts: [u32; COUNTS],
    pub smask: u8,
    pub sums: [f64; SUMS],
    /// A lead-response observation (seconds) and its sketch bin.
    pub resp: Option<(f64, i16)>,
    /// A sales-cycle observation (seconds) and its sketch bin.
    pub cyc: Option<(f64, i16)>,
}

impl PackedDelta {
    pub fn new(d: &Delta) -> Self {
        let a = &d.act;
        let act = [a.outbound, a.inbound, a.outbound_calls, a.connects, a.meaningful, a.active];
        let mut p = PackedDelta { act_any: act.iter().any(|&v| v != 0), act, ..PackedDelta::default() };
        if let Some(f) = &d.funnel {
            let c = f.count_values();
            for (i, &v) in c[..COUNTS].iter().enumerate() {
                if v != 0 {
                    p.cmask |= 1 << i;
                    p.counts[i] = v;
                }
            }
            let s = f.sum_values();
            for (i, &v) in s[..SUMS].iter().enumerate() {
                // `!(x == 0.0)` keeps NaN, as the dense fields did.
                if v != 0.0 {
                    p.smask |= 1 << i;
                    p.sums[i] = v;
                }
            }
            debug_assert_eq!(f.lead_responses, u32::from(f.response_obs.is_some()));
            debug_assert_eq!(f.cycles, u32::from(f.cycle_obs.is_some()));
            p.resp = f.response_obs;
            p.cyc = f.cycle_obs;
        }
        p
    }

    pub fn revenue(&self) -> f64 {
        if self.smask & (1 << REVENUE) != 0 {
            self.sums[REVENUE]
        } else {
            0.0
        }
    }

    fn has_act(&self) -> bool {
        self.act_any
    }
}

/// Offsets of a record's sections, relative to its start.
#[derive(Debug, Clone, Copy)]
struct Layout {
    aw: usize,
    cw: usize,
    cmask: u32,
    smask: u8,
    act: usize,
    /// The count mask (when counts are present), then the counts.
    cm: usize,
    counts: usize,
    /// The sum mask (when sums are present), then the sums.
    sm: usize,
    sums: usize,
    resp: usize,
    cyc: usize,
    end: usize,
}

/// Appends `v` as LEB128.
fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 value at `*p` (`None` past the end or beyond 32 bits).
#[inline]
fn get_varint(b: &[u8], p: &mut usize) -> Option<u32> {
    let mut v = 0u32;
    for shift in (0..35).step_by(7) {
        let c = *b.get(*p)?;
        *p += 1;
        v |= u32::from(c & 0x7F).checked_shl(shift)?;
        if c & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Length of the group at `at`.
#[inline]
fn group_len(b: &[u8], at: usize) -> usize {
    let tag = b[at];
    if tag & BINNED == 0 {
        1 + 8 * usize::from(tag)
    } else {
        let mut p = at + 1;
        let body = get_varint(b, &mut p).unwrap_or(0) as usize;
        p + body - at
    }
}

/// The bins of a binned group body from `p`: `(bin, count)` pairs; the
/// first bin is an `i16`, then one byte per bin, `(delta - 1) << 4 |
/// (count - 1)` when the step from the previous bin is 1..=15 and the count
/// 1..=16, else `0xFF`, the step and the count as LEB128.
struct BinIter<'b> {
    b: &'b [u8],
    p: usize,
    left: usize,
    bin: i32,
}

impl Iterator for BinIter<'_> {
    type Item = (i16, u32);
    #[inline]
    fn next(&mut self) -> Option<(i16, u32)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let c = *self.b.get(self.p)?;
        self.p += 1;
        let (delta, count) = if c < 0xF0 {
            (i32::from(c >> 4) + 1, u32::from(c & 15) + 1)
        } else {
            let d = get_varint(self.b, &mut self.p)?;
            (d as i32, get_varint(self.b, &mut self.p)?)
        };
        self.bin += delta;
        Some((self.bin as i16, count))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for BinIter<'_> {}

/// A binned group at `at`: sum, min, max, within count (response groups),
/// and its bins.
fn binned(b: &[u8], at: usize, within: bool) -> Option<(f64, f64, f64, u32, BinIter<'_>)> {
    let mut p = at + 1;
    let body = get_varint(b, &mut p)? as usize;
    let end = p.checked_add(body)?;
    let b = b.get(..end)?;
    let sum = f64::from_le_bytes(b.get(p..p + 8)?.try_into().ok()?);
    let min = f64::from_le_bytes(b.get(p + 8..p + 16)?.try_into().ok()?);
    let max = f64::from_le_bytes(b.get(p + 16..p + 24)?.try_into().ok()?);
    p += 24;
    let w = if within { get_varint(b, &mut p)? } else { 0 };
    let n = get_varint(b, &mut p)? as usize;
    let first = i16::from_le_bytes(b.get(p..p + 2)?.try_into().ok()?);
    p += 2;
    Some((sum, min, max, w, BinIter { b, p, left: n, bin: i32::from(first) - 1 }))
}

/// The layout without the group lengths (`cyc` and `end` unset).
#[inline]
fn head(b: &[u8]) -> Layout {
    let h = b[0];
    let aw = width(h);
    let cw = width(h >> 2);
    let act = 1;
    let cm = act + 6 * aw;
    let (cmask, counts) = if cw > 0 { (u32::from_le_bytes([b[cm], b[cm + 1], b[cm + 2], 0]), cm + 3) } else { (0, cm) };
    let sm = counts + cw * pop(cmask);
    let (smask, sums) = if h & HAS_SUMS != 0 { (b[sm], sm + 1) } else { (0, sm) };
    let resp = sums + 8 * pop(u32::from(smask));
    Layout { aw, cw, cmask, smask, act, cm, counts, sm, sums, resp, cyc: 0, end: 0 }
}

#[inline]
fn layout(b: &[u8]) -> Layout {
    let mut l = head(b);
    let h = b[0];
    l.cyc = if h & HAS_RESP != 0 { l.resp + group_len(b, l.resp) } else { l.resp };
    l.end = if h & HAS_CYC != 0 { l.cyc + group_len(b, l.cyc) } else { l.cyc };
    l
}

/// One observation group, unpacked (only on the rare paths that rebuild it).
#[derive(Debug, Clone, Default)]
struct Group {
    sum: f64,
    min: f64,
    max: f64,
    within: u32,
    bins: Vec<(i16, u32)>,
}

impl Group {
    fn read(b: &[u8], at: usize, within: bool) -> Group {
        let tag = b[at];
        let mut g = Group::default();
        if tag & BINNED == 0 {
            for k in 0..usize::from(tag) {
                g.insert(get_f64(b, at + 1 + 8 * k), within);
            }
        } else if let Some((sum, min, max, w, bins)) = binned(b, at, within) {
            g.sum = sum;
            g.min = min;
            g.max = max;
            g.within = w;
            g.bins.reserve_exact(bins.len());
            g.bins.extend(bins);
        }
        g
    }

    fn insert(&mut self, x: f64, within: bool) {
        self.insert_binned(x, bin_of(x), within);
    }

    fn insert_binned(&mut self, x: f64, bin: i16, within: bool) {
        crate::sketch::widen_range(&mut self.min, &mut self.max, self.bins.is_empty(), x);
        if x != 0.0 {
            self.sum += x;
        }
        if within && x <= WITHIN_S {
            self.within += 1;
        }
        match self.bins.binary_search_by_key(&bin, |&(b, _)| b) {
            Ok(i) => self.bins[i].1 = self.bins[i].1.wrapping_add(1),
            Err(i) => self.bins.insert(i, (bin, 1)),
        }
    }

    fn merge(&mut self, o: &Group) {
        if o.bins.is_empty() {
            return;
        }
        if self.bins.is_empty() {
            self.min = o.min;
            self.max = o.max;
        } else {
            self.min = self.min.min(o.min);
            self.max = self.max.max(o.max);
        }
        self.sum += o.sum;
        self.within = self.within.wrapping_add(o.within);
        self.bins = crate::sketch::merge_sorted_bins(&self.bins, &o.bins);
    }

    /// The binned encoding (see [`BinIter`]).
    fn write(&self, within: bool, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(32 + self.bins.len() * 2);
        body.extend_from_slice(&self.sum.to_le_bytes());
        body.extend_from_slice(&self.min.to_le_bytes());
        body.extend_from_slice(&self.max.to_le_bytes());
        if within {
            put_varint(&mut body, self.within);
        }
        put_varint(&mut body, self.bins.len() as u32);
        let first = self.bins.first().map_or(0, |&(b, _)| b);
        body.extend_from_slice(&first.to_le_bytes());
        let mut prev = i32::from(first) - 1;
        for &(b, n) in &self.bins {
            let delta = i32::from(b) - prev;
            prev = i32::from(b);
            if (1..=15).contains(&delta) && (1..=16).contains(&n) {
                body.push(((delta - 1) << 4) as u8 | (n - 1) as u8);
            } else {
                body.push(0xFF);
                put_varint(&mut body, delta as u32);
                put_varint(&mut body, n);
            }
        }
        out.push(BINNED);
        put_varint(out, body.len() as u32);
        out.extend_from_slice(&body);
    }
}

/// An observation group of a record being merged into another.
#[derive(Debug, Clone)]
enum GroupAddend {
    None,
    Raw([f64; RAW_MAX], usize),
    Binned(Group),
}

/// The records of one key. A record is named by its offset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Arena {
    bytes: Vec<u8>,
    /// Bytes of records no longer referenced.
    garbage: usize,
}

impl Arena {
    /// Room for `n` more bytes, growing by half (an eighth made the fold
    /// spend a tenth of its time in `realloc`; the daily tidy returns the
    /// spare capacity above a quarter).
    #[inline]
    fn reserve(&mut self, n: usize) {
        let len = self.bytes.len();
        if len + n > self.bytes.capacity() {
            self.bytes.reserve_exact(n.max(len / 2 + 32));
        }
    }

    /// A new record holding `d`.
    pub fn create(&mut self, d: &PackedDelta) -> u32 {
        let off = self.bytes.len();
        self.reserve(16);
        self.bytes.push(0);
        let mut h = off as u32;
        self.add(&mut h, d);
        h
    }

    /// Total length of the record at `h`.
    pub fn len_of(&self, h: u32) -> usize {
        layout(&self.bytes[h as usize..]).end
    }

    /// Whether a record at `h` parses within the arena (for snapshots read
    /// back: a corrupt one is refused instead of read out of bounds).
    pub fn check(&self, h: u32) -> bool {
        let Some(b) = self.bytes.get(h as usize..) else { return false };
        let Some(&hd) = b.first() else { return false };
        if hd & 0x80 != 0 {
            return false;
        }
        let (aw, cw) = (width(hd), width(hd >> 2));
        let mut at = 1 + 6 * aw;
        let mut cmask = 0;
        if cw > 0 {
            let Some(m) = b.get(at..at + 3) else { return false };
            cmask = u32::from_le_bytes([m[0], m[1], m[2], 0]);
            if cmask >> COUNTS != 0 {
                return false;
            }
            at += 3 + cw * pop(cmask);
        }
        if hd & HAS_SUMS != 0 {
            let Some(&m) = b.get(at) else { return false };
            if u32::from(m) >> SUMS != 0 {
                return false;
            }
            at += 1 + 8 * pop(u32::from(m));
        }
        for (flag, within) in [(HAS_RESP, true), (HAS_CYC, false)] {
            if hd & flag == 0 {
                continue;
            }
            let Some(&tag) = b.get(at) else { return false };
            if tag & BINNED == 0 {
                if tag == 0 || usize::from(tag) > RAW_MAX {
                    return false;
                }
                at += 1 + 8 * usize::from(tag);
            } else {
                let Some((_, _, _, _, mut bins)) = (tag == BINNED).then(|| binned(b, at, within)).flatten() else { return false };
                let (n, mut last, mut seen) = (bins.left, i32::MIN, 0);
                while let Some((_, c)) = bins.next() {
                    if c == 0 || bins.bin <= last || bins.bin > i32::from(i16::MAX) || bins.bin < i32::from(i16::MIN) {
                        return false;
                    }
                    last = bins.bin;
                    seen += 1;
                }
                let len = group_len(b, at);
                if seen != n || bins.p != at + len {
                    return false;
                }
                at += len;
            }
        }
        let _ = cmask;
        at <= b.len()
    }

    /// Marks the record at `h` as garbage.
    pub fn free(&mut self, h: u32) {
        self.garbage += self.len_of(h);
    }

    pub fn garbage(&self) -> usize {
        self.garbage
    }

    pub fn live(&self) -> usize {
        self.bytes.len() - self.garbage
    }

    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Replaces bytes `start..end` of the record at `h`, `total` bytes long,
    /// by `new`, moving the record to the end of the arena when it changes
    /// length and is not already last.
    fn replace(&mut self, h: &mut u32, total: usize, start: usize, end: usize, new: &[u8]) {
        let off = *h as usize;
        if end - start == new.len() {
            self.bytes[off + start..off + end].copy_from_slice(new);
            return;
        }
        if off + total == self.bytes.len() {
            self.reserve(new.len());
            self.bytes.splice(off + start..off + end, new.iter().copied());
        } else {
            let at = self.bytes.len();
            self.reserve(total - (end - start) + new.len());
            self.bytes.extend_from_within(off..off + start);
            self.bytes.extend_from_slice(new);
            self.bytes.extend_from_within(off + end..off + total);
            self.garbage += total;
            *h = at as u32;
        }
    }

    /// Adds `d` to the record at `h` (which may move).
    pub fn add(&mut self, h: &mut u32, d: &PackedDelta) {
        if d.has_act() {
            self.add_act(h, &d.act);
        }
        if d.cmask != 0 {
            self.add_counts(h, d.cmask, &d.counts);
        }
        if d.smask != 0 {
            self.add_sums(h, d.smask, &d.sums);
        }
        if let Some((x, bin)) = d.resp {
            self.add_obs(h, true, x, bin);
        }
        if let Some((x, bin)) = d.cyc {
            self.add_obs(h, false, x, bin);
        }
    }

    fn add_act(&mut self, h: &mut u32, add: &[u32; 6]) {
        let off = *h as usize;
        let b = &mut self.bytes[off..];
        // The activity section is first: in place unless a value outgrows its width.
        let aw = width(b[0]);
        if aw > 0 && add_act_in_place(b, aw, add) {
            return;
        }
        let l = layout(b);
        let mut v = [0u32; 6];
        let mut code = 1u8;
        for (k, slot) in v.iter_mut().enumerate() {
            let old = if l.aw > 0 { get(b, l.act + k * l.aw, l.aw) } else { 0 };
            *slot = old.wrapping_add(add[k]);
            code = code.max(code_for(*slot));
        }
        let w = width(code);
        if w == l.aw {
            for (k, &x) in v.iter().enumerate() {
                put(b, l.act + k * w, w, x);
            }
            return;
        }
        let mut sec = [0u8; 24];
        for (k, &x) in v.iter().enumerate() {
            put(&mut sec, k * w, w, x);
        }
        self.replace(h, l.end, l.act, l.cm, &sec[..6 * w]);
        let off = *h as usize;
        self.bytes[off] = (self.bytes[off] & !3) | code;
    }

    fn add_counts(&mut self, h: &mut u32, mask: u32, add: &[u32; COUNTS]) {
        let off = *h as usize;
        let b = &mut self.bytes[off..];
        let mut l = head(b);
        // In place when every field is present and none outgrows the width.
        let at = |i: u32| l.counts + l.cw * pop(l.cmask & ((1 << i) - 1));
        let fields = || {
            let mut m = mask;
            std::iter::from_fn(move || {
                (m != 0).then(|| {
                    let i = m.trailing_zeros();
                    m &= m - 1;
                    i
                })
            })
        };
        if mask & !l.cmask == 0 && fields().all(|i| get(b, at(i), l.cw).wrapping_add(add[i as usize]) <= max_of(l.cw)) {
            for i in fields() {
                let v = get(b, at(i), l.cw).wrapping_add(add[i as usize]);
                put(b, at(i), l.cw, v);
            }
            return;
        }
        l = layout(b);
        let all = l.cmask | mask;
        let mut v = [0u32; COUNTS];
        let mut code = 1u8;
        let mut pos = l.counts;
        for (i, slot) in v.iter_mut().enumerate() {
            if all & (1 << i) == 0 {
                continue;
            }
            if l.cmask & (1 << i) != 0 {
                *slot = get(b, pos, l.cw);
                pos += l.cw;
            }
            if mask & (1 << i) != 0 {
                *slot = slot.wrapping_add(add[i]);
            }
            code = code.max(code_for(*slot));
        }
        let w = width(code);
        let mut sec = [0u8; 3 + 4 * COUNTS];
        sec[..3].copy_from_slice(&all.to_le_bytes()[..3]);
        let mut n = 3;
        for (i, &x) in v.iter().enumerate() {
            if all & (1 << i) != 0 {
                put(&mut sec, n, w, x);
                n += w;
            }
        }
        self.replace(h, l.end, l.cm, l.sm, &sec[..n]);
        let off = *h as usize;
        self.bytes[off] = (self.bytes[off] & !0b1100) | (code << 2);
    }

    fn add_sums(&mut self, h: &mut u32, mask: u8, add: &[f64; SUMS]) {
        let off = *h as usize;
        let b = &mut self.bytes[off..];
        let mut l = head(b);
        let sums = l.sums;
        if mask & !l.smask == 0 {
            let mut m = mask;
            while m != 0 {
                let i = m.trailing_zeros();
                m &= m - 1;
                let at = sums + 8 * pop(u32::from(l.smask) & ((1 << i) - 1));
                put_f64(b, at, get_f64(b, at) + add[i as usize]);
            }
            return;
        }
        l = layout(b);
        let all = l.smask | mask;
        let mut sec = [0u8; 1 + 8 * SUMS];
        sec[0] = all;
        let (mut n, mut pos) = (1, 0);
        for (i, &a) in add.iter().enumerate() {
            if all & (1 << i) == 0 {
                continue;
            }
            // A field is stored from 0.0 on (`0.0 + x == x`), as the dense fields.
            let mut x = 0.0;
            if l.smask & (1 << i) != 0 {
                x = get_f64(b, sums + 8 * pos);
                pos += 1;
            }
            if mask & (1 << i) != 0 {
                x += a;
            }
            put_f64(&mut sec, n, x);
            n += 8;
        }
        self.replace(h, l.end, l.sm, l.resp, &sec[..n]);
        let off = *h as usize;
        self.bytes[off] |= HAS_SUMS;
    }

    fn add_obs(&mut self, h: &mut u32, resp: bool, x: f64, bin: i16) {
        let off = *h as usize;
        let b = &mut self.bytes[off..];
        let l = layout(b);
        let (flag, at, end) = if resp { (HAS_RESP, l.resp, l.cyc) } else { (HAS_CYC, l.cyc, l.end) };
        if b[0] & flag == 0 {
            let mut sec = [0u8; 9];
            sec[0] = 1;
            sec[1..].copy_from_slice(&x.to_le_bytes());
            self.replace(h, l.end, at, at, &sec);
            let off = *h as usize;
            self.bytes[off] |= flag;
            return;
        }
        let tag = b[at];
        if tag & BINNED == 0 {
            if usize::from(tag) < RAW_MAX {
                self.replace(h, l.end, end, end, &x.to_le_bytes());
                let off = *h as usize;
                self.bytes[off + at] = tag + 1;
            } else {
                self.rebuild_group(h, resp, x, bin);
            }
            return;
        }
        // Binned: bins are packed, so the group is rewritten (binned groups
        // are the few buckets with many observations; most of them only
        // change when a finer bucket rolls up into them).
        self.rebuild_group(h, resp, x, bin);
    }

    /// Rewrites a group with one more observation.
    fn rebuild_group(&mut self, h: &mut u32, resp: bool, x: f64, bin: i16) {
        let off = *h as usize;
        let b = &self.bytes[off..];
        let l = layout(b);
        let (at, end) = if resp { (l.resp, l.cyc) } else { (l.cyc, l.end) };
        let mut g = Group::read(b, at, resp);
        g.insert_binned(x, bin, resp);
        let mut sec = Vec::with_capacity(32 + 6 * g.bins.len());
        g.write(resp, &mut sec);
        self.replace(h, l.end, at, end, &sec);
    }

    /// A new record holding `t` (sums and counts as they are, the sketches as
    /// binned groups); `None` when `t` is all zero.
    pub fn create_from_totals(&mut self, t: &Totals) -> Option<u32> {
        let a = &t.act;
        let mut d = PackedDelta::default();
        let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        d.act = [a.outbound, a.inbound, a.outbound_calls, a.connects, a.meaningful, a.active].map(sat);
        d.act_any = d.act.iter().any(|&v| v != 0);
        let mut f = t.f.clone();
        for (i, c) in f.count_fields()[..COUNTS].iter().enumerate() {
            if **c != 0 {
                d.cmask |= 1 << i;
                d.counts[i] = sat(**c);
            }
        }
        for (i, x) in f.sum_fields()[..SUMS].iter().enumerate() {
            if **x != 0.0 {
                d.smask |= 1 << i;
                d.sums[i] = **x;
            }
        }
        let group = |sk: &crate::sketch::Sketch, sum: f64, within: u64| {
            let (bins, min, max) = sk.parts();
            if bins.is_empty() {
                GroupAddend::None
            } else {
                GroupAddend::Binned(Group { sum, min, max, within: sat(within), bins: bins.to_vec() })
            }
        };
        let groups = [
            group(&t.f.response, t.f.response_seconds, t.f.lead_responses_within_1h),
            group(&t.f.cycle, t.f.cycle_seconds, 0),
        ];
        if !d.act_any && d.cmask == 0 && d.smask == 0 && groups.iter().all(|g| matches!(g, GroupAddend::None)) {
            return None;
        }
        let mut h = self.create(&PackedDelta::default());
        self.add_unpacked(&mut h, &d, groups);
        Some(h)
    }

    /// Adds the record `src` into the record at `dst` (which may move); `src`
    /// itself is left as it is.
    pub fn merge(&mut self, dst: &mut u32, src: u32) {
        let b = &self.bytes[src as usize..];
        if b[0] & !3 == 0 {
            // Only activity: most minute buckets of a rep.
            let aw = width(b[0]);
            if aw > 0 {
                let act = read_act(b, aw);
                self.add_act(dst, &act);
            }
            return;
        }
        let (d, groups) = self.unpack(src);
        self.add_unpacked(dst, &d, groups);
    }

    /// Whether the record at `h` has money sums (only then can it have revenue).
    #[inline]
    pub fn has_sums(&self, h: u32) -> bool {
        self.bytes[h as usize] & HAS_SUMS != 0
    }

    /// Everything of record `h`: its fields as a delta (groups apart) and its
    /// observation groups (raw values, or unpacked bins).
    fn unpack(&self, h: u32) -> (PackedDelta, [GroupAddend; 2]) {
        let b = &self.bytes[h as usize..];
        let l = layout(b);
        let mut d = PackedDelta::default();
        if l.aw > 0 {
            d.act = read_act(b, l.aw);
            d.act_any = true;
        }
        d.cmask = l.cmask;
        let mut pos = l.counts;
        for (i, c) in d.counts.iter_mut().enumerate() {
            if l.cmask & (1 << i) != 0 {
                *c = get(b, pos, l.cw);
                pos += l.cw;
            }
        }
        d.smask = l.smask;
        let mut pos = l.sums;
        for (i, s) in d.sums.iter_mut().enumerate() {
            if l.smask & (1 << i) != 0 {
                *s = get_f64(b, pos);
                pos += 8;
            }
        }
        let group = |flag: u8, at: usize, within: bool| {
            if b[0] & flag == 0 {
                return GroupAddend::None;
            }
            let tag = b[at];
            if tag & BINNED == 0 {
                let mut v = [0.0; RAW_MAX];
                for (k, x) in v.iter_mut().enumerate().take(usize::from(tag)) {
                    *x = get_f64(b, at + 1 + 8 * k);
                }
                GroupAddend::Raw(v, usize::from(tag))
            } else {
                GroupAddend::Binned(Group::read(b, at, within))
            }
        };
        let groups = [group(HAS_RESP, l.resp, true), group(HAS_CYC, l.cyc, false)];
        (d, groups)
    }

    /// Adds an unpacked record to the record at `dst`.
    fn add_unpacked(&mut self, dst: &mut u32, d: &PackedDelta, groups: [GroupAddend; 2]) {
        if d.has_act() {
            self.add_act(dst, &d.act);
        }
        if d.cmask != 0 {
            self.add_counts(dst, d.cmask, &d.counts);
        }
        if d.smask != 0 {
            self.add_sums(dst, d.smask, &d.sums);
        }
        for (resp, g) in [true, false].into_iter().zip(groups) {
            match g {
                GroupAddend::None => {}
                GroupAddend::Raw(v, n) => {
                    for &x in &v[..n] {
                        self.add_obs(dst, resp, x, bin_of(x));
                    }
                }
                GroupAddend::Binned(o) => self.merge_group(dst, resp, &o),
            }
        }
    }

    /// Merges an unpacked binned group into the record at `dst`.
    fn merge_group(&mut self, dst: &mut u32, resp: bool, o: &Group) {
        let off = *dst as usize;
        let l = layout(&self.bytes[off..]);
        let (at, end, flag) = if resp { (l.resp, l.cyc, HAS_RESP) } else { (l.cyc, l.end, HAS_CYC) };
        let mut g = if self.bytes[off] & flag != 0 { Group::read(&self.bytes[off..], at, resp) } else { Group::default() };
        g.merge(o);
        let mut sec = Vec::with_capacity(32 + 6 * g.bins.len());
        g.write(resp, &mut sec);
        self.replace(dst, l.end, at, end, &sec);
        let off = *dst as usize;
        self.bytes[off] |= flag;
    }

    /// Revenue of the record at `h`.
    pub fn revenue(&self, h: u32) -> f64 {
        let b = &self.bytes[h as usize..];
        if b[0] & HAS_SUMS == 0 {
            return 0.0;
        }
        let l = head(b);
        if l.smask & (1 << REVENUE) == 0 {
            return 0.0;
        }
        get_f64(b, l.sums + 8 * pop(u32::from(l.smask) & ((1 << REVENUE) - 1)))
    }

    /// Adds the record at `h` into `out`.
    pub fn read(&self, h: u32, out: &mut Totals) {
        let b = &self.bytes[h as usize..];
        let l = layout(b);
        if l.aw > 0 {
            let v = read_act(b, l.aw);
            let a = &mut out.act;
            a.outbound += u64::from(v[0]);
            a.inbound += u64::from(v[1]);
            a.outbound_calls += u64::from(v[2]);
            a.connects += u64::from(v[3]);
            a.meaningful += u64::from(v[4]);
            a.active += u64::from(v[5]);
        }
        let f = &mut out.f;
        if l.cmask != 0 {
            let fields = f.count_fields();
            let mut pos = l.counts;
            let mut m = l.cmask;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                *fields[i] += u64::from(get(b, pos, l.cw));
                pos += l.cw;
            }
        }
        if l.smask != 0 {
            let fields = f.sum_fields();
            let mut pos = l.sums;
            let mut m = l.smask;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                *fields[i] += get_f64(b, pos);
                pos += 8;
            }
        }
        if b[0] & HAS_RESP != 0 {
            let (n, within, sum) = read_group(b, l.resp, true, &mut f.response);
            f.lead_responses += n;
            f.lead_responses_within_1h += within;
            f.response_seconds += sum;
        }
        if b[0] & HAS_CYC != 0 {
            let (n, _, sum) = read_group(b, l.cyc, false, &mut f.cycle);
            f.cycles += n;
            f.cycle_seconds += sum;
        }
    }

    /// Copies the records `handles` name into a fresh arena, in that order,
    /// renumbering them. Drops the garbage and spare capacity.
    pub fn collect<'h>(&mut self, handles: impl Iterator<Item = &'h mut u32>) {
        let mut fresh = Vec::with_capacity(self.live());
        for h in handles {
            let off = *h as usize;
            let len = layout(&self.bytes[off..]).end;
            *h = fresh.len() as u32;
            fresh.extend_from_slice(&self.bytes[off..off + len]);
        }
        self.bytes = fresh;
        self.garbage = 0;
    }

    /// Whether collecting is worth it now: more garbage than live bytes.
    pub fn wants_collect(&self) -> bool {
        self.garbage > 256 && self.garbage > self.live()
    }

    /// Whether the periodic sweep should collect: garbage above an eighth
    /// of the live bytes.
    pub fn wants_tidy(&self) -> bool {
        self.garbage > 64 && self.garbage > self.live() / 8
    }

    /// Returns spare capacity above an eighth of the length (after records
    /// were freed); collecting returns all of it.
    pub fn shrink(&mut self) {
        if self.bytes.capacity() - self.bytes.len() > self.bytes.len() / 8 + 32 {
            self.bytes.shrink_to_fit();
        }
    }
}

/// Reads a group into `sketch`: (observations, within the hour, sum).
fn read_group(b: &[u8], at: usize, within: bool, sketch: &mut crate::sketch::Sketch) -> (u64, u64, f64) {
    let tag = b[at];
    if tag & BINNED == 0 {
        let n = usize::from(tag);
        let (mut w, mut sum) = (0u64, 0.0);
        for k in 0..n {
            let x = get_f64(b, at + 1 + 8 * k);
            sketch.add_obs(x, bin_of(x));
            w += u64::from(x <= WITHIN_S);
            if x != 0.0 {
                sum += x;
            }
        }
        return (n as u64, if within { w } else { 0 }, sum);
    }
    let Some((sum, min, max, within_n, bins)) = binned(b, at, within) else { return (0, 0, 0.0) };
    let mut n = 0u64;
    sketch.merge_bins(min, max, bins.inspect(|&(_, c)| n += u64::from(c)));
    (n, u64::from(within_n), sum)
}

impl Serialize for Arena {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for Arena {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u8>, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = a.next_element()? {
                    v.push(b);
                }
                Ok(v)
            }
        }
        // Garbage is never serialized (see `KeyState`'s serialization).
        Ok(Arena { bytes: d.deserialize_byte_buf(V)?, garbage: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measures::{Delta, Measures, FUNNEL_COUNTS, FUNNEL_SUMS};
    use proptest::prelude::*;

    /// A delta as the engine makes them: observations come with their
    /// derived counts and sums.
    fn delta() -> impl Strategy<Value = Delta> {
        let act = prop::array::uniform6(prop_oneof![3 => Just(0u32), 3 => 0u32..3, 1 => 0u32..70_000]);
        let counts = prop::collection::vec((0usize..COUNTS, prop_oneof![1u32..3, 200u32..70_000]), 0..4);
        let sums = prop::collection::vec((0usize..SUMS, 0u32..2_000_000), 0..3);
        let obs = (prop::option::weighted(0.4, prop_oneof![Just(0.0), 0.5f64..20_000.0]), prop::option::weighted(0.2, 1.0f64..3e7));
        (act, counts, sums, obs).prop_map(|(act, counts, sums, (resp, cyc))| {
            let mut d = Delta::default();
            let a = &mut d.act;
            [a.outbound, a.inbound, a.outbound_calls, a.connects, a.meaningful, a.active] = act;
            if !counts.is_empty() || !sums.is_empty() || resp.is_some() || cyc.is_some() {
                let f = d.funnel();
                let mut c = f.count_values();
                let mut m = f.sum_values();
                for (i, v) in counts {
                    c[i] += v;
                }
                // Integral amounts: any order of addition gives the same sum.
                for (i, v) in sums {
                    m[i] += f64::from(v);
                }
                let fields = f.count_fields_mut();
                for (x, v) in fields.into_iter().zip(c) {
                    *x = v;
                }
                for (x, v) in f.sum_fields_mut().into_iter().zip(m) {
                    *x = v;
                }
                if let Some(x) = resp {
                    let x = x.round();
                    f.lead_responses = 1;
                    f.lead_responses_within_1h = u32::from(x <= 3600.0);
                    f.response_seconds = x;
                    f.response_obs = Some((x, crate::sketch::bin_of(x)));
                }
                if let Some(x) = cyc {
                    let x = x.round();
                    f.cycles = 1;
                    f.cycle_seconds = x;
                    f.cycle_obs = Some((x, crate::sketch::bin_of(x)));
                }
            }
            d
        })
    }

    fn totals_of(m: &Measures) -> Totals {
        let mut t = Totals::default();
        t.add(m);
        t
    }

    /// The dense format-7 measures of `deltas` plus the v1.1 follow-up
    /// counts, which format 7 did not have (summed here field by field).
    fn dense_totals(deltas: &[Delta]) -> Totals {
        let mut dense = Measures::default();
        for d in deltas {
            dense.add(d);
        }
        let mut t = totals_of(&dense);
        for f in deltas.iter().filter_map(|d| d.funnel.as_ref()) {
            t.f.followed_leads += u64::from(f.followed_leads);
            t.f.followed_touches += u64::from(f.followed_touches);
            t.f.followed_ge1 += u64::from(f.followed_ge1);
            t.f.followed_ge2 += u64::from(f.followed_ge2);
            t.f.sql_conversions += u64::from(f.sql_conversions);
            t.f.sql_touches += u64::from(f.sql_touches);
        }
        t
    }

    proptest! {
        /// Records (added to, grown, merged, collected, serialized) read as
        /// the dense format-7 measures of the same deltas.
        #[test]
        fn records_sum_like_dense_measures(deltas in prop::collection::vec(delta(), 1..40), cuts in prop::collection::vec(0usize..40, 0..3)) {
            let mut dense = Measures::default();
            for d in &deltas {
                dense.add(d);
            }
            let want = dense_totals(&deltas);
            // The deltas in up to four records, merged into the first.
            let mut arena = Arena::default();
            let mut parts: Vec<u32> = Vec::new();
            let mut cuts = cuts;
            cuts.sort();
            for (k, d) in deltas.iter().enumerate() {
                let pd = PackedDelta::new(d);
                let part = cuts.iter().filter(|&&c| c <= k).count();
                if part < parts.len() {
                    let mut h = parts[part];
                    arena.add(&mut h, &pd);
                    parts[part] = h;
                } else {
                    parts.push(arena.create(&pd));
                }
                // A record in between, so that growth moves records.
                let filler = arena.create(&PackedDelta::new(&deltas[0]));
                arena.free(filler);
            }
            let mut acc = parts[0];
            for &p in &parts[1..] {
                arena.merge(&mut acc, p);
                arena.free(p);
            }
            prop_assert!(arena.check(acc));
            arena.collect(std::iter::once(&mut acc));
            prop_assert_eq!(arena.garbage(), 0);
            let arena: Arena = bincode::deserialize(&bincode::serialize(&arena).unwrap()).unwrap();
            let mut got = Totals::default();
            arena.read(acc, &mut got);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(arena.revenue(acc), dense.revenue());
            // A record rebuilt from totals reads the same.
            let mut a2 = Arena::default();
            match a2.create_from_totals(&want) {
                Some(h) => {
                    let mut again = Totals::default();
                    a2.read(h, &mut again);
                    prop_assert_eq!(again, want);
                }
                None => prop_assert_eq!(want, Totals::default()),
            }
        }
    }

    #[test]
    fn field_order_of_the_derived_counts() {
        let mut d = Delta::default();
        d.funnel().lead_responses = 1;
        d.funnel().lead_responses_within_1h = 2;
        d.funnel().cycles = 3;
        d.funnel().response_seconds = 4.0;
        d.funnel().cycle_seconds = 5.0;
        let f = d.funnel.as_ref().unwrap();
        assert_eq!(f.count_values()[COUNTS..], [1, 2, 3]);
        assert_eq!(f.sum_values()[SUMS..], [4.0, 5.0]);
        assert_eq!((FUNNEL_COUNTS, FUNNEL_SUMS), (COUNTS + 3, SUMS + 2));
    }

    #[test]
    fn a_bucket_of_calls_is_small() {
        let mut d = Delta::default();
        d.act.outbound = 1;
        d.act.active = 1;
        let mut a = Arena::default();
        let mut h = a.create(&PackedDelta::new(&d));
        for _ in 0..9 {
            a.add(&mut h, &PackedDelta::new(&d));
        }
        assert_eq!(a.len_of(h), 7);
        let corrupt = Arena { bytes: vec![0x20, 0x80, 0x7F], garbage: 0 };
        assert!(!corrupt.check(0));
    }
}
