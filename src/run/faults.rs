//! Test hooks for failure tests: pauses at the moments a crash is most
//! dangerous, so that a test can `kill -9` the process *inside* them.
//!
//! Owns: parsing `SALESPULSE_TEST_PAUSE` once, and [`pause`].
//! Must not touch: anything else. Without the variable (every real
//! deployment) [`pause`] does nothing.
//!
//! `SALESPULSE_TEST_PAUSE=point=ms[,point=ms...]`, points:
//!
//! - `checkpoint`: inside an open checkpoint transaction, after the snapshots
//!   and dead letters were sent and before the offsets and the commit;
//! - `revoke`: in the revoke callback of a rebalance, before its checkpoint;
//! - `restore`: in the assign callback, after the checkpoint topic was read
//!   and before the partitions are installed and assigned.
//!
//! Each pause logs `test hook: pausing` with the point first, so a test can
//! wait for that line and kill the process during the pause. The variable is
//! not configuration (it has no `__`), so the config loader ignores it.

use std::sync::OnceLock;
use std::time::Duration;

use tracing::warn;

/// The variable's name.
pub const VAR: &str = "SALESPULSE_TEST_PAUSE";

fn pauses() -> &'static Vec<(String, u64)> {
    static P: OnceLock<Vec<(String, u64)>> = OnceLock::new();
    P.get_or_init(|| std::env::var(VAR).map(|v| parse(&v)).unwrap_or_default())
}

fn parse(v: &str) -> Vec<(String, u64)> {
    v.split(',')
        .filter_map(|item| {
            let (point, ms) = item.trim().split_once('=')?;
            Some((point.trim().to_string(), ms.trim().parse().ok()?))
        })
        .collect()
}

/// Sleeps for the configured pause of `point`, if any.
pub fn pause(point: &str) {
    if let Some((_, ms)) = pauses().iter().find(|(p, _)| p == point) {
        warn!(point, ms, "test hook: pausing");
        std::thread::sleep(Duration::from_millis(*ms));
        warn!(point, "test hook: pause over");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_points() {
        assert_eq!(super::parse("checkpoint=3000, restore=10,bad,x=y"), [("checkpoint".to_string(), 3000), ("restore".to_string(), 10)]);
        assert!(super::parse("").is_empty());
    }
}
