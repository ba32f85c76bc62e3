//! [`WriteId`]: the tag every row of one write attempt carries, so that a reader can tell
//! a file's complete copy from what a killed, timed-out or concurrent attempt left behind
//! (the write protocol is in `docs/sinks.md`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 32 lowercase hex digits: the attempt's start in microseconds since the Unix epoch (16
/// digits), then 64 random bits. Ids sort by start time as text, in every SQL engine, and
/// two attempts never share one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(String);

impl WriteId {
    /// A new id for an attempt starting now.
    pub fn new() -> Self {
        let mut random = [0u8; 8];
        // Without an OS random source the clock's nanoseconds and the process id still
        // make a collision between two attempts of the same microsecond unlikely.
        if getrandom::fill(&mut random).is_err() {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            random = (u64::from(nanos) << 32 | u64::from(std::process::id())).to_be_bytes();
        }
        Self(format!("{:016x}{:016x}", micros_since_epoch(SystemTime::now()), u64::from_be_bytes(random)))
    }

    /// The smallest id of an attempt that started at or after `age` ago: every id of an
    /// older attempt sorts below it.
    pub fn started_before(age: Duration) -> Self {
        let then = SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH);
        Self(format!("{:016x}{:016x}", micros_since_epoch(then), 0))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for WriteId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WriteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_unique_and_sort_by_start() {
        let a = WriteId::new();
        let b = WriteId::new();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{a}");
        assert_ne!(a, b);
        let cutoff = WriteId::started_before(Duration::from_secs(60));
        assert!(cutoff < a && cutoff < b, "an attempt of now is younger than a minute: {cutoff} {a}");
        assert!(WriteId::started_before(Duration::ZERO) > cutoff);
        assert!("" < cutoff.as_str(), "rows from before write ids (empty) count as old");
    }
}
