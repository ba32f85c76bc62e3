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

pub mod configmap;
mod cut;

use serde::{Deserialize, Serialize};

pub use cut::Cutter;

/// Version of the plan format.
pub const PLAN_VERSION: u32 = 1;

/// A plan for `shards` shards over `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version ([`PLAN_VERSION`]).
    pub version: u32,
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
    /// The partitions, in key order.
    pub partitions: Vec<Partition>,
}

/// The keys `(after, until]` under the plan's prefix, scanned by shard `shard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The plan JSON does not parse.
    #[error("plan is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The plan parses but is inconsistent.
    #[error("plan is inconsistent: {0}")]
    Invalid(String),
    /// The shard index is not in the plan.
    #[error("shard index {index} is not in a plan of {shards} shards")]
    NoSuchShard { index: u32, shards: u32 },
}

impl Plan {
    /// A single-shard plan over the whole prefix (`exrscan scan s3://…`).
    pub fn whole(bucket: &str, prefix: &str, include: &[String], exclude: &[String]) -> Self {
        Self {
            version: PLAN_VERSION,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            shards: 1,
            include: include.to_vec(),
            exclude: exclude.to_vec(),
            listed: 0,
            objects: 0,
            partitions: vec![Partition::everything(0)],
        }
    }

    /// Parses and checks a plan.
    pub fn from_json(text: &str) -> Result<Self, PlanError> {
        let plan: Plan = serde_json::from_str(text)?;
        plan.check()?;
        Ok(plan)
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks that the partitions tile the key space in order and name existing shards.
    pub fn check(&self) -> Result<(), PlanError> {
        let invalid = |m: String| Err(PlanError::Invalid(m));
        if self.version != PLAN_VERSION {
            return invalid(format!("version {} (this exrscan reads version {PLAN_VERSION})", self.version));
        }
        if self.shards == 0 {
            return invalid("0 shards".into());
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
        if let Some(p) = self.partitions.iter().find(|p| p.shard >= self.shards) {
            return invalid(format!("a partition names shard {} of {}", p.shard, self.shards));
        }
        Ok(())
    }

    /// The partitions of shard `index`, in key order.
    pub fn partitions_of(&self, index: u32) -> Result<Vec<Partition>, PlanError> {
        if index >= self.shards {
            return Err(PlanError::NoSuchShard { index, shards: self.shards });
        }
        Ok(self.partitions.iter().filter(|p| p.shard == index).cloned().collect())
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
        plan.shards = 2;
        plan.partitions = vec![range(0, None, Some("p/m")), range(1, Some("p/m"), None)];
        let parsed = Plan::from_json(&plan.to_json()).expect("valid plan round-trips");
        assert_eq!(parsed, plan);
        assert_eq!(parsed.partitions_of(1).expect("shard 1").len(), 1);
        assert!(matches!(parsed.partitions_of(2), Err(PlanError::NoSuchShard { .. })));

        let mut gap = plan.clone();
        gap.partitions[1].after = Some("p/n".into());
        assert!(gap.check().is_err());
        let mut open = plan.clone();
        open.partitions[1].until = Some("p/z".into());
        assert!(open.check().is_err());
        let mut foreign = plan.clone();
        foreign.partitions[1].shard = 7;
        assert!(foreign.check().is_err());
        assert!(Plan::from_json("{\"version\":1}").is_err());
    }
}
