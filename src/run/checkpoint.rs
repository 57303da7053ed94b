//! Checkpoint snapshots: one partition's [`Shard`] and the offset of the next
//! message to read, as one record of the compacted checkpoint topic.
//!
//! Owns: the snapshot format (a versioned header, then the shard in bincode,
//! LZ4-compressed) and the record key `group/topic/partition`.
//! Must not touch: Kafka clients (see [`super::kafka`]), shard semantics.
//!
//! Format: `b"SPCK"`, version `u16` LE, next offset `i64` LE, then the LZ4
//! block (size-prepended) of `bincode(Shard)`. A record with an unknown
//! version is refused rather than misread.
//!
//! Versions: 8 (this one) stores the packed state (`crate::packed`: each
//! event once, records in one arena per key, 64-bit dedup fingerprints).
//! Version 7 snapshots are still read (rolling upgrades): decoded with the
//! frozen layout of `crate::legacy` and converted by `Shard::restored`.

use crate::engine::Shard;

const MAGIC: &[u8; 4] = b"SPCK";
const VERSION: u16 = 8;
/// The oldest version this build reads.
const OLDEST: u16 = 7;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a salespulse checkpoint (bad magic)")]
    Magic,
    #[error("checkpoint format version {0} is not supported (this build reads versions {OLDEST} to {VERSION})")]
    Version(u16),
    #[error("checkpoint is truncated")]
    Truncated,
    #[error("checkpoint decompression failed: {0}")]
    Lz4(#[from] lz4_flex::block::DecompressError),
    #[error("checkpoint encoding failed: {0}")]
    Bincode(#[from] bincode::Error),
    #[error("checkpoint is corrupt: {0}")]
    Corrupt(String),
}

/// The record key of a partition's checkpoint.
pub fn key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// Encodes `shard` with the offset of the next message to consume.
pub fn encode(shard: &Shard, next_offset: i64) -> Result<Vec<u8>, CheckpointError> {
    let body = bincode::serialize(shard)?;
    let packed = lz4_flex::compress_prepend_size(&body);
    let mut out = Vec::with_capacity(14 + packed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&next_offset.to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(out)
}

/// Decodes a checkpoint into the shard (not yet `restored`) and next offset.
pub fn decode(bytes: &[u8]) -> Result<(Shard, i64), CheckpointError> {
    if bytes.len() < 14 {
        return Err(CheckpointError::Truncated);
    }
    if &bytes[..4] != MAGIC {
        return Err(CheckpointError::Magic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(CheckpointError::Version(version));
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&bytes[6..14]);
    let body = lz4_flex::decompress_size_prepended(&bytes[14..])?;
    let shard = if version == 7 {
        Shard::from_v7(bincode::deserialize(&body)?)
    } else {
        let shard: Shard = bincode::deserialize(&body)?;
        shard.check().map_err(CheckpointError::Corrupt)?;
        shard
    };
    Ok((shard, i64::from_le_bytes(off)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CoreConfig;
    use crate::engine::{Clock, Core};
    use crate::gen::{GenConfig, Generator};

    #[test]
    fn round_trip_renders_the_same() {
        let core = Core::new(CoreConfig::default(), Clock::Event);
        let mut shard = Shard::new();
        for e in Generator::new(GenConfig { days: 5, ..GenConfig::default() }) {
            shard.ingest(&core, e.line.as_bytes(), i64::MAX / 2);
        }
        let t = shard.clock(&core, 0).unwrap();
        let before = crate::render::render_string(&[&shard], &core, t);
        let bytes = encode(&shard, 4242).unwrap();
        let core2 = Core::new(CoreConfig::default(), Clock::Event);
        let (restored, next) = decode(&bytes).unwrap();
        let restored = restored.restored(&core2);
        assert_eq!(next, 4242);
        assert_eq!(crate::render::render_string(&[&restored], &core2, t), before);
        assert_eq!(core2.card.reps.load(std::sync::atomic::Ordering::Relaxed), shard.rep_count());
        // the restored shard keeps deduplicating and joining
        let first = Generator::new(GenConfig { days: 5, ..GenConfig::default() }).next().unwrap();
        let mut restored = restored;
        assert_eq!(restored.ingest(&core2, first.line.as_bytes(), i64::MAX / 2), crate::engine::Outcome::Duplicate);
        assert!(matches!(decode(b"nope"), Err(CheckpointError::Truncated)));
        let mut bad = bytes.clone();
        bad[4] = 9;
        assert!(matches!(decode(&bad), Err(CheckpointError::Version(9))));
    }
}
