//! The plan as stored: a [`Header`] with what every shard needs, and the partitions in
//! [`Chunk`]s of `shardsPerChunk` shards, each boundary stored once. A published plan is one
//! ConfigMap for the header and one per chunk, each checked against [`MAX_MAP_BYTES`]; a
//! printed plan is the header with its chunks inline. A shard reads the header and the one
//! chunk holding its partition.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Outline, PLAN_VERSION, Partition, Plan, PlanError};

/// Shards per chunk of a published plan unless told otherwise: 401 keys of 1,024 bytes
/// (S3's longest), JSON-escaped to at most 2,048 bytes each (every byte a `"` or `\`; keys
/// with control characters, 6 bytes each in JSON, cannot be listed), take under 840 KB.
pub const DEFAULT_SHARDS_PER_CHUNK: u32 = 400;

/// The most bytes (key and value) the planner writes into one ConfigMap: the API server
/// refuses a ConfigMap whose values add up to more than 1 MiB (1,048,576 bytes); the rest
/// is left for other keys.
pub const MAX_MAP_BYTES: usize = 1_000_000;

/// The key (and file name) of the header.
pub const HEADER_KEY: &str = "plan.json";

/// The key (and file name) of chunk `k`: distinct per chunk, so that all of a plan's
/// ConfigMaps project into one directory.
pub fn chunk_key(k: u32) -> String {
    format!("partitions-{k}.json")
}

/// What every shard needs: the plan without its partitions (unless inline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Format version ([`PLAN_VERSION`]).
    pub version: u32,
    /// The plan without its partitions.
    #[serde(flatten)]
    pub outline: Outline,
    /// Shards per chunk: shard `i`'s partition is in chunk `i / shardsPerChunk`.
    pub shards_per_chunk: u32,
    /// The chunks, when stored with the header (a printed plan); else chunk `k` is the file
    /// [`chunk_key`]`(k)` beside the header.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<Chunk>,
}

/// The partitions of the shards `first ..= first + n - 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The first shard of the chunk: `k × shardsPerChunk`.
    pub first: u32,
    /// `n + 1` boundaries: shard `first + j` scans `(bounds[j], bounds[j + 1]]`; `null`
    /// opens the first boundary of chunk 0 and the last of the last chunk.
    pub bounds: Vec<Option<String>>,
    /// Keys listed per shard when planning.
    pub listed: Vec<u64>,
    /// Keys kept per shard when planning.
    pub objects: Vec<u64>,
}

/// A plan as the texts of its ConfigMap values, each checked against [`MAX_MAP_BYTES`].
#[derive(Debug, Clone)]
pub struct Stored {
    /// The header ([`HEADER_KEY`]), without chunks.
    pub header: String,
    /// Chunk `k` ([`chunk_key`]`(k)`).
    pub chunks: Vec<String>,
}

impl Plan {
    /// The header and chunks of `shards_per_chunk` shards of a checked plan (one partition
    /// per shard, in shard order).
    pub fn split(&self, shards_per_chunk: u32) -> (Header, Vec<Chunk>) {
        let per_chunk = shards_per_chunk.max(1);
        let chunks = self
            .partitions
            .chunks(per_chunk as usize)
            .map(|parts| Chunk {
                first: parts[0].shard,
                bounds: std::iter::once(parts[0].after.clone()).chain(parts.iter().map(|p| p.until.clone())).collect(),
                listed: parts.iter().map(|p| p.listed).collect(),
                objects: parts.iter().map(|p| p.objects).collect(),
            })
            .collect();
        let header = Header {
            version: PLAN_VERSION,
            outline: self.outline.clone(),
            shards_per_chunk: per_chunk,
            chunks: Vec::new(),
        };
        (header, chunks)
    }

    /// The plan from its header and all its chunks (inline or given), checked.
    pub fn join(mut header: Header, chunks: Vec<Chunk>) -> Result<Plan, PlanError> {
        let chunks = if header.chunks.is_empty() { chunks } else { std::mem::take(&mut header.chunks) };
        header.check()?;
        if chunks.len() != header.chunk_count() as usize {
            return Err(PlanError::Invalid(format!(
                "{} chunks for {} shards of {} per chunk",
                chunks.len(),
                header.outline.shards,
                header.shards_per_chunk
            )));
        }
        let mut partitions = Vec::with_capacity(header.outline.shards as usize);
        for (k, chunk) in (0..).zip(&chunks) {
            chunk.check(&header, k)?;
            partitions.extend(chunk.partitions());
        }
        let plan = Plan { outline: header.outline, partitions };
        plan.check()?;
        Ok(plan)
    }

    /// The values of the plan's ConfigMaps with chunks of `shards_per_chunk` shards, or
    /// [`PlanError::TooLarge`] if one would not fit in a ConfigMap.
    pub fn stored(&self, shards_per_chunk: u32) -> Result<Stored, PlanError> {
        let (header, chunks) = self.split(shards_per_chunk);
        let header = fitting("the plan header", HEADER_KEY, to_json(&header))?;
        let chunks = (0..)
            .zip(&chunks)
            .map(|(k, chunk)| fitting(&format!("plan chunk {k}"), &chunk_key(k), to_json(chunk)))
            .collect::<Result<_, _>>()?;
        Ok(Stored { header, chunks })
    }
}

/// `value` if it fits in a ConfigMap under `key`.
fn fitting(what: &str, key: &str, value: String) -> Result<String, PlanError> {
    let bytes = key.len() + value.len();
    if bytes > MAX_MAP_BYTES {
        return Err(PlanError::TooLarge { what: what.to_string(), bytes });
    }
    Ok(value)
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

impl Header {
    /// Parses and checks a header.
    pub fn from_json(text: &str) -> Result<Header, PlanError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        // The version first: another version's fields may not parse.
        let Versioned { version } = serde_json::from_str(text)?;
        check_version(version)?;
        let header: Header = serde_json::from_str(text)?;
        header.check()?;
        Ok(header)
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> u32 {
        self.outline.shards.div_ceil(self.shards_per_chunk.max(1))
    }

    fn check(&self) -> Result<(), PlanError> {
        check_version(self.version)?;
        if self.outline.shards == 0 || self.shards_per_chunk == 0 {
            return Err(PlanError::Invalid(format!(
                "{} shards, {} per chunk",
                self.outline.shards, self.shards_per_chunk
            )));
        }
        Ok(())
    }
}

fn check_version(version: u32) -> Result<(), PlanError> {
    if version == PLAN_VERSION {
        return Ok(());
    }
    Err(PlanError::Invalid(format!("version {version} (this exrscan reads version {PLAN_VERSION})")))
}

impl Chunk {
    /// Checks that this is chunk `k` of the plan of `header`.
    fn check(&self, header: &Header, k: u32) -> Result<(), PlanError> {
        let invalid = |m: String| Err(PlanError::Invalid(format!("chunk {k}: {m}")));
        let first = u64::from(k) * u64::from(header.shards_per_chunk);
        if u64::from(self.first) != first || first >= u64::from(header.outline.shards) {
            return invalid(format!("starts at shard {} of {}", self.first, header.outline.shards));
        }
        let n = (header.outline.shards - self.first).min(header.shards_per_chunk) as usize;
        if self.bounds.len() != n + 1 || self.listed.len() != n || self.objects.len() != n {
            return invalid(format!("not {n} partitions"));
        }
        let last = k + 1 == header.chunk_count();
        for (j, bound) in self.bounds.iter().enumerate() {
            let open = (j == 0 && k == 0) || (j == n && last);
            if bound.is_none() != open {
                return invalid(format!("boundary {j} is {}", if open { "not open" } else { "open" }));
            }
        }
        let set: Vec<&String> = self.bounds.iter().flatten().collect();
        if let Some(pair) = set.windows(2).find(|pair| pair[1] < pair[0]) {
            return invalid(format!("boundaries out of order: {:?} then {:?}", pair[0], pair[1]));
        }
        Ok(())
    }

    /// The partitions of the chunk, in shard order.
    fn partitions(&self) -> impl Iterator<Item = Partition> + '_ {
        (self.first..).zip(self.bounds.windows(2)).zip(self.listed.iter().zip(&self.objects)).map(
            |((shard, bounds), (listed, objects))| Partition {
                shard,
                after: bounds[0].clone(),
                until: bounds[1].clone(),
                listed: *listed,
                objects: *objects,
            },
        )
    }
}

/// Reads what shard `index` needs from the plan header at `path`: the header, and the
/// shard's partition from the chunk inline in it or in the file [`chunk_key`] beside it.
pub fn read_shard(path: &Path, index: u32) -> Result<(Header, Partition), PlanError> {
    let mut header = Header::from_json(&read(path)?)?;
    if index >= header.outline.shards {
        return Err(PlanError::NoSuchShard { index, shards: header.outline.shards });
    }
    let k = index / header.shards_per_chunk;
    let chunk = match header.chunks.get(k as usize) {
        Some(chunk) => chunk.clone(),
        None if header.chunks.is_empty() => {
            let file = path.with_file_name(chunk_key(k));
            let text = match std::fs::read_to_string(&file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(PlanError::MissingChunk(file)),
                other => other.map_err(|source| PlanError::Read { path: file.clone(), source })?,
            };
            serde_json::from_str(&text).map_err(|e| PlanError::Invalid(format!("{}: {e}", file.display())))?
        }
        None => return Err(PlanError::Invalid(format!("chunk {k} is not inline"))),
    };
    chunk.check(&header, k)?;
    let partition = chunk.partitions().find(|p| p.shard == index);
    header.chunks.clear();
    partition.map(|p| (header, p)).ok_or_else(|| PlanError::Invalid(format!("chunk {k} lacks shard {index}")))
}

fn read(path: &Path) -> Result<String, PlanError> {
    std::fs::read_to_string(path).map_err(|source| PlanError::Read { path: PathBuf::from(path), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan of `shards` shards whose boundary `i` is `key(i)`.
    fn plan(shards: u32, key: impl Fn(u32) -> String) -> Plan {
        let mut partitions = Vec::new();
        let mut after = None;
        for shard in 0..shards {
            let until = (shard + 1 < shards).then(|| key(shard));
            partitions.push(Partition {
                shard,
                after: after.clone(),
                until: until.clone(),
                listed: 123_456_789,
                objects: 123_456_789,
            });
            after = until;
        }
        let outline = Outline {
            bucket: "renders".into(),
            prefix: "shows/".into(),
            shards,
            include: vec!["*.exr".into()],
            exclude: vec!["*/tmp/*".into()],
            listed: u64::MAX,
            objects: u64::MAX,
        };
        Plan { outline, partitions }
    }

    /// Sorted keys of exactly `len` bytes, shard index first.
    fn long_key(len: usize, fill: char) -> impl Fn(u32) -> String {
        move |i| {
            let head = format!("shows/{i:05}/");
            let fill: String = std::iter::repeat_n(fill, len - head.len()).collect();
            assert_eq!(head.len() + fill.len(), len);
            head + &fill
        }
    }

    #[test]
    fn ten_thousand_shards_of_the_longest_keys_fit() {
        // S3 keys are at most 1,024 bytes; `"` and `\` cost 2 bytes each in JSON.
        for fill in ['x', '"', '\\'] {
            let plan = plan(10_000, long_key(1_024, fill));
            let stored = plan.stored(DEFAULT_SHARDS_PER_CHUNK).expect("fits");
            assert_eq!(stored.chunks.len(), 25);
            let largest = stored.chunks.iter().map(String::len).max().unwrap_or_default();
            assert!(largest < 840_000, "{fill:?}: {largest} bytes");
            assert!(stored.header.len() < 500, "{}", stored.header);
        }
        // Control characters (6 bytes each in JSON; the listing refuses such keys) would not
        // fit: the plan is refused before anything is written.
        let refused = plan(10_000, long_key(1_024, '\u{1}')).stored(DEFAULT_SHARDS_PER_CHUNK);
        assert!(
            matches!(&refused, Err(PlanError::TooLarge { what, bytes }) if what == "plan chunk 0" && *bytes > MAX_MAP_BYTES),
            "{refused:?}"
        );
        assert!(plan(10_000, long_key(1_024, '\u{1}')).stored(100).is_ok(), "unless the chunks are smaller");
    }

    #[test]
    fn chunks_join_back_into_the_plan() {
        let plan = plan(250, long_key(40, 'k'));
        plan.check().expect("valid");
        let (header, chunks) = plan.split(100);
        assert_eq!(header.chunk_count(), 3);
        let firsts: Vec<u32> = chunks.iter().map(|c| c.first).collect();
        assert_eq!(firsts, [0, 100, 200]);
        assert_eq!(chunks[2].listed.len(), 50);
        assert_eq!(chunks[1].bounds[0], chunks[0].bounds[100], "a chunk starts where the last one ended");
        assert_eq!(Plan::join(header.clone(), chunks.clone()).expect("joins"), plan);

        let mut swapped = chunks.clone();
        swapped.swap(0, 1);
        assert!(Plan::join(header.clone(), swapped).is_err());
        let mut short = chunks.clone();
        short[1].listed.pop();
        assert!(Plan::join(header.clone(), short).is_err());
        let mut unordered = chunks.clone();
        unordered[1].bounds.swap(3, 4);
        assert!(Plan::join(header.clone(), unordered).is_err());
        let mut closed = chunks;
        closed[2].bounds[50] = Some("shows/zzz".into());
        assert!(Plan::join(header, closed).is_err());
    }

    #[test]
    fn a_shard_reads_exactly_its_partition() {
        let plan = plan(250, long_key(40, 'k'));
        let stored = plan.stored(100).expect("fits");
        let dir = tempfile::tempdir().expect("temp dir");
        let header = dir.path().join(HEADER_KEY);
        std::fs::write(&header, &stored.header).expect("header");
        for (k, chunk) in (0..).zip(&stored.chunks) {
            std::fs::write(dir.path().join(chunk_key(k)), chunk).expect("chunk");
        }
        for index in [0, 99, 100, 101, 199, 200, 249] {
            let (read, partition) = read_shard(&header, index).expect("readable");
            assert_eq!(partition, plan.partitions[index as usize], "shard {index}");
            assert_eq!(
                (read.outline.shards, read.outline.bucket.as_str(), read.outline.include.clone()),
                (250, "renders", plan.outline.include.clone())
            );
        }
        assert!(matches!(read_shard(&header, 250), Err(PlanError::NoSuchShard { index: 250, shards: 250 })));

        // A shard needs only its own chunk: the others may be missing.
        std::fs::remove_file(dir.path().join(chunk_key(0))).expect("removed");
        assert!(read_shard(&header, 150).is_ok());
        let missing = read_shard(&header, 5).expect_err("chunk 0 is gone");
        assert!(missing.to_string().contains("partitions-0.json"), "{missing}");
        // A chunk of another plan (here: of other chunk size) is refused.
        std::fs::write(dir.path().join(chunk_key(1)), &stored.chunks[2]).expect("chunk");
        assert!(read_shard(&header, 150).is_err());

        // The printed form holds its chunks inline.
        let printed = dir.path().join("printed.json");
        std::fs::write(&printed, plan.to_json()).expect("printed");
        assert_eq!(read_shard(&printed, 249).expect("inline").1, plan.partitions[249]);
    }
}
