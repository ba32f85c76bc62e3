//! An S3 bucket (AWS, MinIO, VAST, …) as a [`Source`], on `object_store`'s S3 client.
//!
//! Listing covers the partitions of a [`Plan`] only (see [`list`]). A header is read with
//! ranged GETs: the first asks for `header_bytes` (64 KiB by default, enough for nearly
//! every file), more are made only when the header reader says the header goes on, each
//! with `If-Match` on the first response's ETag so that the bytes come from one version.
//! The object's size, last-modified time and ETag are taken from the GET response (no
//! HEAD). The bytes asked for are first held in the process's [`HeaderBudget`].
//! Transient failures (503 SlowDown, 5xx, connection errors) are retried under the shared
//! [`RetryPolicy`](crate::retry::RetryPolicy); a request that keeps failing makes the source
//! [`SourceError::Unavailable`] and refused credentials make it
//! [`SourceError::Credentials`], both of which stop the scan (the shard is retried), while a
//! per-object refusal (object gone, empty, not an EXR) fails that object only.

mod credentials;
mod failure;
mod list;
mod options;
mod retry;

use std::sync::Arc;
use std::time::SystemTime;

use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore};
use tokio::sync::mpsc;

pub use credentials::{CHECK_EVERY, CredentialsError, S3Credentials, SecretDirCredentials};
pub use failure::S3Failure;
pub use list::{PAGE_KEYS, RangeLister};
pub use options::{S3ConfigError, S3Options, S3Url};
pub use retry::{DEFAULT_RETRY, Retrier, S3Counts, S3Stats};

use super::filter::KeyFilter;
use super::{HeaderBudget, ReadHeader, Source, SourceError};
use crate::catalog::SourceFile;
use crate::header::{self, HeaderError, Progress, limits::MAX_HEADER_BYTES};
use crate::plan::{Cutter, Partition, Plan};
use crate::retry::Transient as _;

/// Default size of the first ranged GET.
pub const DEFAULT_HEADER_BYTES: usize = 64 * 1024;

/// The keys of some partitions of a bucket prefix.
#[derive(Debug, Clone)]
pub struct S3Source {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    partitions: Vec<Partition>,
    filter: KeyFilter,
    header_bytes: usize,
    retrier: Retrier,
    budget: HeaderBudget,
}

/// `s3://bucket/key`, with `%`, space, `#` and `?` percent-encoded (as `file://` URIs are).
pub fn object_uri(bucket: &str, key: &str) -> String {
    let mut uri = String::with_capacity(bucket.len() + key.len() + 6);
    uri.push_str("s3://");
    uri.push_str(bucket);
    uri.push('/');
    for c in key.chars() {
        match c {
            '%' => uri.push_str("%25"),
            ' ' => uri.push_str("%20"),
            '#' => uri.push_str("%23"),
            '?' => uri.push_str("%3F"),
            c => uri.push(c),
        }
    }
    uri
}

/// What a failed request means for the whole scan, if anything: a transient failure that
/// outlasted the retries is an outage, refused credentials stop it too.
fn scan_stopper(location: &str, failure: &S3Failure) -> Option<SourceError> {
    let (location, reason) = (location.to_string(), failure.to_string());
    match failure {
        f if f.is_transient() => Some(SourceError::Unavailable { location, reason }),
        S3Failure::Denied(_) => Some(SourceError::Credentials { location, reason }),
        _ => None,
    }
}

/// What a failed listing means for the scan: an outage, refused credentials, or else (no
/// such bucket, a bad certificate) a configuration error.
fn listing_error(location: &str, failure: &S3Failure) -> SourceError {
    scan_stopper(location, failure)
        .unwrap_or_else(|| SourceError::Unusable { location: location.to_string(), reason: failure.to_string() })
}

impl S3Source {
    /// A source for `partitions` of `s3://bucket/prefix`, filtered by `filter`, reading
    /// headers within `budget`.
    pub fn new(
        store: Arc<AmazonS3>,
        url: &S3Url,
        partitions: Vec<Partition>,
        filter: KeyFilter,
        header_bytes: usize,
        retrier: Retrier,
        budget: HeaderBudget,
    ) -> Self {
        Self {
            store,
            bucket: url.bucket.clone(),
            prefix: url.prefix.clone(),
            partitions,
            filter,
            header_bytes: header_bytes.clamp(1, MAX_HEADER_BYTES),
            retrier,
            budget,
        }
    }

    /// Request counters.
    pub fn stats(&self) -> S3Counts {
        self.retrier.stats().counts()
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The catalog entry of a listed object, if the filter keeps it.
    fn entry(&self, meta: ObjectMeta) -> Option<SourceFile> {
        let key = meta.location.to_string();
        let relative = key.strip_prefix(&self.prefix).unwrap_or(&key);
        if !self.filter.keeps(relative) {
            return None;
        }
        Some(SourceFile {
            uri: object_uri(&self.bucket, &key),
            bucket: Some(self.bucket.clone()),
            key,
            size_bytes: meta.size,
            last_modified: Some(SystemTime::from(meta.last_modified)),
            etag: meta.e_tag,
        })
    }

    /// Fails if the scan would list a key starting with `/`. `object_store` drops that `/`
    /// when it parses a listing (`/a.exr` arrives as `a.exr`) and cannot request such a key,
    /// so reading it would read another object. Only a scan of the whole bucket lists them
    /// ([`S3Url::parse`] refuses a prefix starting with `/`); it costs that scan one LIST
    /// under the prefix `/` (more only if that holds keys the globs leave out).
    async fn refuse_slash_keys(&self) -> Result<(), SourceError> {
        if !self.prefix.is_empty() {
            return Ok(());
        }
        let whole = Partition::everything(0);
        let mut pages = RangeLister::new(&self.store, &self.retrier, "/", &whole);
        while let Some(objects) = pages.next_page().await.map_err(|f| listing_error(&self.location(), &f))? {
            let kept = objects.iter().map(|o| format!("/{}", o.location)).find(|key| self.filter.keeps(key));
            if let Some(key) = kept {
                return Err(SourceError::Unusable {
                    location: self.location(),
                    reason: format!(
                        "the bucket holds keys starting with `/` (e.g. `{key}`), which the S3 client cannot \
                         request as they are (it would read `{}`); scan prefixes that leave them out",
                        &key[1..]
                    ),
                });
            }
        }
        Ok(())
    }

    /// Lists the whole prefix once and cuts it into a balanced plan for `shards` shards.
    pub async fn plan(&self, shards: u32) -> Result<Plan, SourceError> {
        self.refuse_slash_keys().await?;
        let mut cutter = Cutter::default();
        let whole = Partition::everything(0);
        let mut pages = RangeLister::new(&self.store, &self.retrier, &self.prefix, &whole);
        while let Some(objects) = pages.next_page().await.map_err(|f| listing_error(&self.location(), &f))? {
            for meta in objects {
                let key = meta.location.as_ref();
                let relative = key.strip_prefix(self.prefix.as_str()).unwrap_or(key);
                cutter
                    .push(key, self.filter.keeps(relative))
                    .map_err(|reason| SourceError::Unusable { location: self.location(), reason })?;
            }
        }
        tracing::info!(objects = cutter.kept(), shards, "listed the prefix for the plan");
        Ok(cutter.finish(
            &self.bucket,
            &self.prefix,
            shards,
            self.filter.include_patterns(),
            self.filter.exclude_patterns(),
        ))
    }

    /// The catalog entry of the object `key` (one HEAD request), whatever the filter says:
    /// for reading one named object without listing. A missing object is an
    /// [`SourceError::Entry`]; an outage or refused credentials as for a listing.
    pub async fn object(&self, key: &str) -> Result<SourceFile, SourceError> {
        let uri = object_uri(&self.bucket, key);
        let entry = |reason: String| SourceError::Entry { location: uri.clone(), reason };
        let path = Self::request_path(key).map_err(entry)?;
        let head = || async {
            let options = GetOptions { head: true, ..GetOptions::default() };
            Ok(self.store.get_opts(&path, options).await?.meta)
        };
        let meta = self
            .retrier
            .run("HEAD", head)
            .await
            .map_err(|failure| scan_stopper(&uri, &failure).unwrap_or_else(|| entry(failure.to_string())))?;
        Ok(SourceFile {
            uri: uri.clone(),
            bucket: Some(self.bucket.clone()),
            key: key.to_string(),
            size_bytes: meta.size,
            last_modified: Some(SystemTime::from(meta.last_modified)),
            etag: meta.e_tag,
        })
    }

    /// One ranged GET of `range`; the response's object metadata and bytes.
    async fn get(
        &self,
        path: &Path,
        range: std::ops::Range<u64>,
        etag: Option<&str>,
    ) -> Result<(ObjectMeta, Vec<u8>), S3Failure> {
        let (meta, bytes) = self
            .retrier
            .run("GET", || async {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(range.clone())),
                    if_match: etag.map(str::to_owned),
                    ..GetOptions::default()
                };
                let result = self.store.get_opts(path, options).await?;
                let meta = result.meta.clone();
                Ok((meta, result.bytes().await?))
            })
            .await?;
        self.retrier.stats().get_request();
        // Takes the buffer over without a copy when the response came in one piece.
        Ok((meta, Vec::from(bytes)))
    }

    /// The request path of a listed key, refusing a key `object_store` would change (a
    /// leading or trailing `/`, an empty segment) rather than reading another object.
    fn request_path(key: &str) -> Result<Path, String> {
        match Path::parse(key) {
            Ok(path) if path.as_ref() == key => Ok(path),
            Ok(path) => Err(format!("key cannot be requested as it is (the S3 client would read `{path}`)")),
            Err(e) => Err(format!("key cannot be requested: {e}")),
        }
    }

    /// Reads the header of `file` with as few ranged GETs as it needs, holding the bytes
    /// asked for in the budget first.
    async fn read(&self, file: &SourceFile) -> Result<ReadHeader, SourceError> {
        let reject = |reason: String| SourceError::File { reason };
        let path = Self::request_path(&file.key).map_err(reject)?;
        let fail =
            |failure: S3Failure| scan_stopper(&file.uri, &failure).unwrap_or_else(|| reject(failure.to_string()));
        // An object shorter than the first range needs no more than its size.
        let first = (self.header_bytes as u64).min(file.size_bytes.max(1));
        let mut held = self.budget.hold(first as usize).await;
        let (meta, mut buf) = self.get(&path, 0..first, None).await.map_err(fail)?;
        let mut gets = 1;
        let mut bytes_read = buf.len() as u64;
        let header = loop {
            let needed = match header::parse(&buf) {
                Ok(Progress::Complete(header)) => break header,
                Ok(Progress::NeedMore(needed)) => needed,
                Err(e) => return Err(reject(e.to_string())),
            };
            if buf.len() as u64 >= meta.size || buf.len() >= MAX_HEADER_BYTES {
                let truncated = HeaderError::Truncated { needed, available: buf.len() };
                return Err(reject(truncated.to_string()));
            }
            let want = needed.max(buf.len().saturating_mul(2)).min(MAX_HEADER_BYTES);
            if !self.budget.try_grow(&mut held, want) {
                // Gives back what it holds, bytes included, and waits for the whole share.
                drop(held);
                buf = Vec::new();
                held = self.budget.hold(want).await;
            }
            let range = buf.len() as u64..want as u64;
            let (_, more) = self.get(&path, range, meta.e_tag.as_deref()).await.map_err(fail)?;
            if more.is_empty() {
                return Err(reject("object shrank while its header was read".into()));
            }
            bytes_read += more.len() as u64;
            buf.extend_from_slice(&more);
            gets += 1;
        };
        self.retrier.stats().header_read(gets);
        let seen = SourceFile {
            size_bytes: meta.size,
            last_modified: Some(SystemTime::from(meta.last_modified)),
            etag: meta.e_tag,
            ..file.clone()
        };
        Ok(ReadHeader { header, bytes_read, file: Some(seen).filter(|s| s != file), held })
    }
}

impl Source for S3Source {
    async fn list(&self, found: mpsc::Sender<Result<SourceFile, SourceError>>) -> Result<(), SourceError> {
        self.refuse_slash_keys().await?;
        for partition in &self.partitions {
            let mut pages = RangeLister::new(&self.store, &self.retrier, &self.prefix, partition);
            while let Some(objects) = pages.next_page().await.map_err(|f| listing_error(&self.location(), &f))? {
                let total = objects.len() as u64;
                let mut kept = 0;
                for file in objects.into_iter().filter_map(|meta| self.entry(meta)) {
                    kept += 1;
                    if found.send(Ok(file)).await.is_err() {
                        return Ok(());
                    }
                }
                self.retrier.stats().skipped(total - kept);
            }
        }
        Ok(())
    }

    async fn read_header(&self, file: &SourceFile) -> Result<ReadHeader, SourceError> {
        self.read(file).await
    }
}
