//! Cutting a listing into balanced key ranges in bounded memory.
//!
//! [`Cutter`] sees the keys once, in listing order, and keeps a sample of the kept keys:
//! every `stride`-th one, doubling the stride (and halving the sample) whenever the sample
//! outgrows its cap. Cut points are then sampled keys, so each partition is within one
//! stride of its share; with the default cap a stride above 1 needs more than 65,536 kept
//! keys, and the imbalance stays under 1/32,768 of the objects.

use super::{Outline, Partition, Plan};

/// Default cap on the sample.
const MAX_SAMPLES: usize = 65_536;

#[derive(Debug, Clone)]
struct Sample {
    key: String,
    /// Kept keys up to and including this one.
    kept: u64,
    /// Listed keys up to and including this one.
    listed: u64,
}

/// Accumulates a listing and cuts it into a [`Plan`].
#[derive(Debug)]
pub struct Cutter {
    stride: u64,
    max_samples: usize,
    samples: Vec<Sample>,
    kept: u64,
    listed: u64,
    last_key: Option<String>,
}

impl Default for Cutter {
    fn default() -> Self {
        Self::with_max_samples(MAX_SAMPLES)
    }
}

impl Cutter {
    /// A cutter keeping at most `max_samples` keys (at least 2).
    pub fn with_max_samples(max_samples: usize) -> Self {
        Self { stride: 1, max_samples: max_samples.max(2), samples: Vec::new(), kept: 0, listed: 0, last_key: None }
    }

    /// Adds the next key of the listing; `kept` says whether the filter keeps it. Keys must
    /// come in ascending order (as S3 lists them); out-of-order keys are refused.
    pub fn push(&mut self, key: &str, kept: bool) -> Result<(), String> {
        if self.last_key.as_deref().is_some_and(|last| key <= last) {
            return Err(format!("listing out of order: {key:?} after {:?}", self.last_key));
        }
        self.last_key = Some(key.to_string());
        self.listed += 1;
        if !kept {
            return Ok(());
        }
        self.kept += 1;
        if self.kept.is_multiple_of(self.stride) {
            self.samples.push(Sample { key: key.to_string(), kept: self.kept, listed: self.listed });
            if self.samples.len() > self.max_samples {
                self.stride *= 2;
                let stride = self.stride;
                self.samples.retain(|s| s.kept.is_multiple_of(stride));
            }
        }
        Ok(())
    }

    /// Keys kept so far.
    pub fn kept(&self) -> u64 {
        self.kept
    }

    /// Cuts into `shards` partitions (one per shard, shard `i` gets the `i`-th range), each
    /// holding about `kept / shards` kept keys.
    pub fn finish(self, bucket: &str, prefix: &str, shards: u32, include: &[String], exclude: &[String]) -> Plan {
        let shards = shards.max(1);
        // Cut point i (1 ≤ i < shards): the sampled key whose kept count is nearest below
        // the i-th share; `None` before any sample means "no key" (`""`).
        let mut cuts: Vec<Option<&Sample>> = Vec::with_capacity(shards as usize);
        for i in 1..u64::from(shards) {
            let target = self.kept * i / u64::from(shards);
            let at = self.samples.partition_point(|s| s.kept <= target);
            cuts.push(at.checked_sub(1).and_then(|j| self.samples.get(j)));
        }
        let mut partitions = Vec::with_capacity(shards as usize);
        let (mut after, mut kept_before, mut listed_before) = (None::<String>, 0, 0);
        for (shard, cut) in cuts.iter().enumerate() {
            let (until, kept, listed) = match cut {
                Some(s) => (s.key.clone(), s.kept, s.listed),
                None => (String::new(), 0, 0),
            };
            let (kept, listed) = (kept.max(kept_before), listed.max(listed_before));
            partitions.push(Partition {
                shard: shard as u32,
                after: after.clone(),
                until: Some(until.clone()),
                listed: listed - listed_before,
                objects: kept - kept_before,
            });
            after = Some(until);
            (kept_before, listed_before) = (kept, listed);
        }
        partitions.push(Partition {
            shard: shards - 1,
            after,
            until: None,
            listed: self.listed - listed_before,
            objects: self.kept - kept_before,
        });
        let outline = Outline {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            shards,
            include: include.to_vec(),
            exclude: exclude.to_vec(),
            listed: self.listed,
            objects: self.kept,
        };
        Plan { outline, partitions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("p/{:03}/{i:06}.exr", i % 7))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn cut(keys: &[String], shards: u32, max_samples: usize, kept: impl Fn(usize) -> bool) -> Plan {
        let mut cutter = Cutter::with_max_samples(max_samples);
        for (i, key) in keys.iter().enumerate() {
            cutter.push(key, kept(i)).expect("sorted keys");
        }
        cutter.finish("b", "p/", shards, &[], &[])
    }

    /// Each key in exactly one partition; counts per shard.
    fn assignment(plan: &Plan, keys: &[String], kept: impl Fn(usize) -> bool) -> Vec<u64> {
        let mut per_shard = vec![0; plan.outline.shards as usize];
        for (i, key) in keys.iter().enumerate() {
            let owners: Vec<&Partition> = plan.partitions.iter().filter(|p| p.contains(key)).collect();
            assert_eq!(owners.len(), 1, "{key} is in {} partitions", owners.len());
            if kept(i) {
                per_shard[owners[0].shard as usize] += 1;
            }
        }
        per_shard
    }

    #[test]
    fn cuts_balanced_ranges_covering_every_key_once() {
        let keys = keys(10_000);
        let kept = |i: usize| i % 10 != 3;
        for (shards, max_samples) in [(1, MAX_SAMPLES), (4, MAX_SAMPLES), (7, MAX_SAMPLES), (16, 100)] {
            let plan = cut(&keys, shards, max_samples, kept);
            plan.check().expect("a valid plan");
            assert_eq!(plan.partitions.len(), shards as usize);
            assert_eq!(plan.outline.objects, 9000);
            let per_shard = assignment(&plan, &keys, kept);
            assert_eq!(per_shard.iter().sum::<u64>(), 9000);
            let share = 9000 / u64::from(shards);
            // Exact with a full sample; within a stride (10_000 keys / 100 samples, doubled) otherwise.
            let slack = if max_samples == MAX_SAMPLES { 1 } else { 256 };
            for (shard, n) in per_shard.iter().enumerate() {
                assert!(n.abs_diff(share) <= slack, "shard {shard} has {n}, share {share}: {per_shard:?}");
                assert_eq!(plan.partitions[shard].objects, *n, "recorded counts match");
            }
            assert_eq!(plan.partitions.iter().map(|p| p.listed).sum::<u64>(), 10_000);
        }
    }

    #[test]
    fn same_listing_same_plan() {
        let keys = keys(3000);
        assert_eq!(cut(&keys, 5, 64, |_| true), cut(&keys, 5, 64, |_| true));
    }

    #[test]
    fn fewer_objects_than_shards_leaves_empty_partitions() {
        let keys = keys(3);
        let plan = cut(&keys, 5, MAX_SAMPLES, |_| true);
        plan.check().expect("valid");
        assert_eq!(assignment(&plan, &keys, |_| true).iter().sum::<u64>(), 3);
        assert!(plan.partitions.iter().filter(|p| p.is_empty()).count() >= 2);
        let empty = cut(&[], 3, MAX_SAMPLES, |_| true);
        empty.check().expect("valid");
        assert_eq!(empty.partitions.len(), 3);
    }

    #[test]
    fn refuses_unsorted_listings() {
        let mut cutter = Cutter::default();
        cutter.push("b", true).expect("first key");
        assert!(cutter.push("a", true).is_err());
    }
}
