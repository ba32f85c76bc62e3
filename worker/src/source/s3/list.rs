//! Listing one key range `(after, until]` under a prefix with `ListObjectsV2`, paging by
//! `start-after` (the last key seen) rather than by continuation token, so that every
//! request says where in the key space it starts, and asking for no more keys than the
//! plan counted in the range.

use object_store::ObjectMeta;
use object_store::aws::AmazonS3;
use object_store::list::{PaginatedListOptions, PaginatedListStore};

use super::S3Failure;
use super::retry::Retrier;
use crate::plan::Partition;

/// Most keys one S3 LIST returns.
pub const PAGE_KEYS: u64 = 1000;

/// The pages of one partition, one LIST request each.
pub struct RangeLister<'a> {
    store: &'a AmazonS3,
    retrier: &'a Retrier,
    prefix: &'a str,
    partition: &'a Partition,
    start_after: Option<String>,
    seen: u64,
    done: bool,
}

impl<'a> RangeLister<'a> {
    /// A lister of `partition` under `prefix`.
    pub fn new(store: &'a AmazonS3, retrier: &'a Retrier, prefix: &'a str, partition: &'a Partition) -> Self {
        Self {
            store,
            retrier,
            prefix,
            partition,
            start_after: partition.after.clone().filter(|a| !a.is_empty()),
            seen: 0,
            done: partition.is_empty(),
        }
    }

    /// The next page of objects inside the range (in key order), or `None` at its end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectMeta>>, S3Failure> {
        if self.done {
            return Ok(None);
        }
        // Sized so that an unchanged range ends exactly at `until`.
        let max_keys = match self.partition.until {
            Some(_) if self.partition.listed > self.seen => (self.partition.listed - self.seen).min(PAGE_KEYS),
            _ => PAGE_KEYS,
        };
        let options = PaginatedListOptions {
            offset: self.start_after.clone(),
            max_keys: Some(max_keys as usize),
            ..PaginatedListOptions::default()
        };
        let result = self.retrier.run("LIST", || self.store.list_paginated(Some(self.prefix), options.clone())).await?;
        self.retrier.stats().list_request();
        let mut objects = result.result.objects;
        // Keys come in order; anything past `until` belongs to the next partition.
        let past_end = objects.iter().position(|o| !self.partition.contains(o.location.as_ref()));
        if let Some(end) = past_end {
            objects.truncate(end);
        }
        self.seen += objects.len() as u64;
        let last = objects.last().map(|o| o.location.to_string());
        let at_until = matches!((&last, &self.partition.until), (Some(l), Some(u)) if l == u);
        match last {
            Some(last) if result.page_token.is_some() && past_end.is_none() && !at_until => {
                self.start_after = Some(last);
            }
            _ => self.done = true,
        }
        Ok(Some(objects))
    }
}
