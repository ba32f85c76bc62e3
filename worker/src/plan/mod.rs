//! The partition plan of a sharded scan: the keys under a prefix cut into contiguous key
//! ranges, one per shard, so that every key falls in exactly one partition and no shard
//! lists outside its own.
//!
//! A partition is the range `(after, until]` of keys under the plan's prefix: a shard lists
//! it with `start-after = after`, then `start-after = last key seen`, and stops at the first
//! key past `until`. The ranges tile the key space (each `after` is the previous `until`;
//! the first `after` and the last `until` are open), so objects written after planning are
//! still covered exactly once. The plan is cut from one listing of the prefix, balanced on
//! the objects the filter keeps ([`cut`]); the same listing always gives the same plan.
//! It is stored as a header and chunks of partitions ([`stored`]), so that a plan of any
//! shard count and key length fits in ConfigMaps and a shard reads only its own chunk.

pub mod configmap;
mod cut;
pub mod stored;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use cut::Cutter;
pub use stored::{Chunk, Header, read_shard};

/// Version of the plan format (2: a header and chunks; 1 was one JSON of all partitions).
pub const PLAN_VERSION: u32 = 2;

/// A plan for `shards` shards over `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What it covers and how it was balanced.
    pub outline: Outline,
    /// The partitions, in key order: partition `i` is shard `i`'s.
    pub partitions: Vec<Partition>,
}

/// A plan without its partitions: what every shard needs besides its own range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outline {
    /// The bucket.
    pub bucket: String,
    /// The key prefix every partition lists under.
    pub prefix: String,
    /// Number of shards (Job completions).
    pub shards: u32,
    /// Include globs the plan was balanced with; shards filter with the same.
    pub include: Vec<String>,
    /// Exclude globs the plan was balanced with.
    pub exclude: Vec<String>,
    /// Keys listed when planning.
    pub listed: u64,
    /// Keys kept by the filter when planning.
    pub objects: u64,
}

/// The keys `(after, until]` under the plan's prefix, scanned by shard `shard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Shard index that scans this partition.
    pub shard: u32,
    /// Keys strictly after this one (`None`: from the start of the prefix).
    pub after: Option<String>,
    /// Keys up to and including this one (`None`: to the end of the prefix; `""`: none).
    pub until: Option<String>,
    /// Keys in the range when planning (sizes the listing requests).
    pub listed: u64,
    /// Keys kept by the filter when planning.
    pub objects: u64,
}

impl Partition {
    /// The whole prefix.
    pub fn everything(shard: u32) -> Self {
        Self { shard, after: None, until: None, listed: 0, objects: 0 }
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &str) -> bool {
        self.after.as_deref().is_none_or(|after| key > after) && self.until.as_deref().is_none_or(|until| key <= until)
    }

    /// Whether the range holds no key at all (`until` is `""` or not after `after`).
    pub fn is_empty(&self) -> bool {
        match (&self.after, &self.until) {
            (_, Some(until)) if until.is_empty() => true,
            (Some(after), Some(until)) => until <= after,
            _ => false,
        }
    }
}

/// Why a plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A plan file cannot be read.
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The chunk file of a shard is not beside the plan header.
    #[error("{} is missing: the plan ConfigMap holding it was deleted, or the planner did not write it", .0.display())]
    MissingChunk(PathBuf),
    /// The plan JSON does not parse.
    #[error("plan is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The plan parses but is inconsistent.
    #[error("plan is inconsistent: {0}")]
    Invalid(String),
    /// The shard index is not in the plan.
    #[error("shard index {index} is not in a plan of {shards} shards")]
    NoSuchShard { index: u32, shards: u32 },
    /// Part of the plan would not fit in a ConfigMap.
    #[error(
        "{what} would be {bytes} bytes, more than the {} a ConfigMap may hold here: publish fewer shards per ConfigMap",
        stored::MAX_MAP_BYTES
    )]
    TooLarge { what: String, bytes: usize },
}

impl Plan {
    /// A single-shard plan over the whole prefix (`exrscan scan s3://…`).
    pub fn whole(bucket: &str, prefix: &str, include: &[String], exclude: &[String]) -> Self {
        Self {
            outline: Outline {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                shards: 1,
                include: include.to_vec(),
                exclude: exclude.to_vec(),
                listed: 0,
                objects: 0,
            },
            partitions: vec![Partition::everything(0)],
        }
    }

    /// Parses and checks a plan printed by [`Plan::to_json`] (its chunks inline).
    pub fn from_json(text: &str) -> Result<Self, PlanError> {
        let header = Header::from_json(text)?;
        if header.chunks.is_empty() {
            return Err(PlanError::Invalid("the partitions are not inline (a published plan header)".into()));
        }
        Plan::join(header, Vec::new())
    }

    /// The plan as one pretty JSON: the header with its partitions in one inline chunk.
    pub fn to_json(&self) -> String {
        let (mut header, chunks) = self.split(self.outline.shards);
        header.chunks = chunks;
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string_pretty(&header).unwrap_or_default()
    }

    /// Checks that there is one partition per shard, in shard order, and that the partitions
    /// tile the key space in order.
    pub fn check(&self) -> Result<(), PlanError> {
        let invalid = |m: String| Err(PlanError::Invalid(m));
        if self.outline.shards == 0 {
            return invalid("0 shards".into());
        }
        if self.partitions.len() != self.outline.shards as usize {
            return invalid(format!("{} partitions for {} shards", self.partitions.len(), self.outline.shards));
        }
        if let Some((i, p)) = (0..).zip(&self.partitions).find(|(i, p)| p.shard != *i) {
            return invalid(format!("partition {i} names shard {}", p.shard));
        }
        let (Some(first), Some(last)) = (self.partitions.first(), self.partitions.last()) else {
            return invalid("no partitions".into());
        };
        if first.after.is_some() || last.until.is_some() {
            return invalid("the partitions do not cover the whole prefix".into());
        }
        for pair in self.partitions.windows(2) {
            if pair[0].until.is_none() || pair[0].until != pair[1].after {
                return invalid(format!("partitions {:?} and {:?} are not adjacent", pair[0].until, pair[1].after));
            }
        }
        for window in self.partitions.windows(2) {
            if let (Some(a), Some(b)) = (&window[0].until, &window[1].until)
                && b < a
            {
                return invalid(format!("partition bounds out of order: {a:?} then {b:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(shard: u32, after: Option<&str>, until: Option<&str>) -> Partition {
        Partition { shard, after: after.map(Into::into), until: until.map(Into::into), listed: 0, objects: 0 }
    }

    #[test]
    fn ranges_contain_their_keys_only() {
        let p = range(0, Some("b"), Some("d"));
        assert!(!p.contains("b") && p.contains("c") && p.contains("d") && !p.contains("da"));
        assert!(range(0, None, None).contains("anything"));
        assert!(range(0, None, Some("")).is_empty());
        assert!(!range(0, Some("a"), Some("b")).is_empty());
    }

    #[test]
    fn checks_that_partitions_tile_the_prefix() {
        let mut plan = Plan::whole("b", "p/", &[], &[]);
        plan.outline.shards = 2;
        plan.partitions = vec![range(0, None, Some("p/m")), range(1, Some("p/m"), None)];
        let parsed = Plan::from_json(&plan.to_json()).expect("valid plan round-trips");
        assert_eq!(parsed, plan);

        let mut gap = plan.clone();
        gap.partitions[1].after = Some("p/n".into());
        assert!(gap.check().is_err());
        let mut open = plan.clone();
        open.partitions[1].until = Some("p/z".into());
        assert!(open.check().is_err());
        let mut foreign = plan.clone();
        foreign.partitions[1].shard = 7;
        assert!(foreign.check().is_err());
        let mut missing = plan.clone();
        missing.partitions.pop();
        assert!(missing.check().is_err());
        assert!(Plan::from_json("{\"version\":1}").is_err());
        let old = r#"{"version":1,"bucket":"b","prefix":"p/","shards":1,"include":[],"exclude":[],"listed":0,
            "objects":0,"partitions":[{"shard":0,"after":null,"until":null,"listed":0,"objects":0}]}"#;
        let refused = Plan::from_json(old).expect_err("version 1 is not read");
        assert!(refused.to_string().contains("version 1 (this exrscan reads version 2)"), "{refused}");
    }
}
