//! Listing one key range `(after, until]` under a prefix with `ListObjectsV2`, paging by
//! `start-after` (the last key seen) rather than by continuation token, so that every
//! request says where in the key space it starts, and asking for no more keys than the
//! plan counted in the range. A truncated page without keys (S3 may answer so) cannot move
//! `start-after`: the next request then carries the page's continuation token.

use object_store::ObjectMeta;
use object_store::aws::AmazonS3;
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};

use super::S3Failure;
use super::retry::Retrier;
use crate::plan::Partition;

/// Most keys one S3 LIST returns.
pub const PAGE_KEYS: u64 = 1000;

/// Where the listing of one range stands: what to ask next, and whether it is over.
#[derive(Debug)]
struct Pages<'a> {
    partition: &'a Partition,
    start_after: Option<String>,
    /// The continuation token of a truncated page that had no keys.
    token: Option<String>,
    seen: u64,
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(partition: &'a Partition) -> Self {
        Self {
            partition,
            start_after: partition.after.clone().filter(|a| !a.is_empty()),
            token: None,
            seen: 0,
            done: partition.is_empty(),
        }
    }

    /// The options of the next request, or `None` at the end of the range.
    fn request(&self) -> Option<PaginatedListOptions> {
        if self.done {
            return None;
        }
        // Sized so that an unchanged range ends exactly at `until`.
        let max_keys = match self.partition.until {
            Some(_) if self.partition.listed > self.seen => (self.partition.listed - self.seen).min(PAGE_KEYS),
            _ => PAGE_KEYS,
        };
        Some(PaginatedListOptions {
            offset: self.start_after.clone(),
            page_token: self.token.clone(),
            max_keys: Some(max_keys as usize),
            ..PaginatedListOptions::default()
        })
    }

    /// The objects of `result` inside the range (in key order); moves to the next page.
    fn take(&mut self, result: PaginatedListResult) -> Result<Vec<ObjectMeta>, S3Failure> {
        let mut objects = result.result.objects;
        if objects.is_empty() {
            // Nothing to start after: follow the token, unless the server repeats itself.
            match result.page_token {
                Some(token) if self.token.as_ref() != Some(&token) => self.token = Some(token),
                Some(_) => return Err(S3Failure::Refused("LIST repeated a continuation token without keys".into())),
                None => self.done = true,
            }
            return Ok(objects);
        }
        self.token = None;
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
        Ok(objects)
    }
}

/// The pages of one partition, one LIST request each.
pub struct RangeLister<'a> {
    store: &'a AmazonS3,
    retrier: &'a Retrier,
    prefix: &'a str,
    pages: Pages<'a>,
}

impl<'a> RangeLister<'a> {
    /// A lister of `partition` under `prefix`.
    pub fn new(store: &'a AmazonS3, retrier: &'a Retrier, prefix: &'a str, partition: &'a Partition) -> Self {
        Self { store, retrier, prefix, pages: Pages::new(partition) }
    }

    /// The next page of objects inside the range (in key order; possibly none), or `None`
    /// at its end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectMeta>>, S3Failure> {
        let Some(options) = self.pages.request() else {
            return Ok(None);
        };
        let result = self.retrier.run("LIST", || self.store.list_paginated(Some(self.prefix), options.clone())).await?;
        self.retrier.stats().list_request();
        self.pages.take(result).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use object_store::ListResult;
    use object_store::path::Path;

    use super::*;

    fn page(keys: &[&str], token: Option<&str>) -> PaginatedListResult {
        let objects = keys
            .iter()
            .map(|k| ObjectMeta {
                location: Path::from(*k),
                last_modified: Default::default(),
                size: 1,
                e_tag: None,
                version: None,
            })
            .collect();
        PaginatedListResult {
            result: ListResult { common_prefixes: Vec::new(), objects, extensions: Default::default() },
            page_token: token.map(str::to_owned),
        }
    }

    fn keys(objects: &[ObjectMeta]) -> Vec<String> {
        objects.iter().map(|o| o.location.to_string()).collect()
    }

    #[test]
    fn a_truncated_page_without_keys_does_not_end_the_range() -> Result<(), S3Failure> {
        let whole = Partition::everything(0);
        let mut pages = Pages::new(&whole);
        assert!(pages.take(page(&["a", "b"], Some("t1")))?.len() == 2);
        let next = pages.request().expect("more");
        assert_eq!((next.offset.as_deref(), next.page_token.as_deref()), (Some("b"), None));

        assert!(pages.take(page(&[], Some("t2")))?.is_empty());
        let next = pages.request().expect("the range goes on after an empty truncated page");
        assert_eq!((next.offset.as_deref(), next.page_token.as_deref()), (Some("b"), Some("t2")));

        assert_eq!(keys(&pages.take(page(&["c"], None))?), ["c"]);
        assert!(pages.request().is_none(), "the last page ends it");
        Ok(())
    }

    #[test]
    fn a_repeated_empty_page_is_an_error_not_a_loop() -> Result<(), S3Failure> {
        let whole = Partition::everything(0);
        let mut pages = Pages::new(&whole);
        pages.take(page(&[], Some("t")))?;
        assert!(pages.take(page(&[], Some("t"))).is_err());
        Ok(())
    }

    #[test]
    fn keys_past_the_range_end_it() -> Result<(), S3Failure> {
        let range = Partition { shard: 0, after: Some("a".into()), until: Some("c".into()), listed: 5, objects: 5 };
        let mut pages = Pages::new(&range);
        assert_eq!(pages.request().and_then(|o| o.max_keys), Some(5));
        assert_eq!(keys(&pages.take(page(&["b", "c", "d"], Some("t")))?), ["b", "c"]);
        assert!(pages.request().is_none());
        Ok(())
    }
}
