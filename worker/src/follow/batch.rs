//! A micro-batch of consumed messages: the newest event of each object key (events of one
//! key coalesce by their sequencer) and, per partition, the offset to commit once the
//! batch is in the catalog.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use super::event::{Change, ObjectEvent, compare_sequencers};
use crate::catalog::{Removal, SourceFile};
use crate::source::s3::object_uri;

/// The events of one micro-batch and the offsets they were read at.
#[derive(Debug, Default)]
pub struct MicroBatch {
    /// The newest event of each (bucket, key).
    latest: HashMap<(String, String), ObjectEvent>,
    /// Per (topic, partition): the offset after the last message consumed.
    next_offsets: HashMap<(String, i32), i64>,
    /// When its oldest message was fetched.
    started: Option<Instant>,
    /// Events dropped because a newer one of their key is in the batch.
    coalesced: u64,
    /// The newest `eventTime` seen.
    newest_event: Option<SystemTime>,
}

/// What a batch asks of the catalog.
#[derive(Debug, Default)]
pub struct Work {
    /// Objects to index (their newest event is a creation).
    pub files: Vec<SourceFile>,
    /// Removals to record (their newest event is a removal).
    pub removals: Vec<Removal>,
}

impl MicroBatch {
    /// Notes that `offset` of `partition` of `topic`, fetched at `fetched`, was consumed
    /// (whatever it held).
    pub fn consumed(&mut self, topic: &str, partition: i32, offset: i64, fetched: Instant) {
        self.started = Some(self.started.map_or(fetched, |started| started.min(fetched)));
        let next = self.next_offsets.entry((topic.to_string(), partition)).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    /// Adds `event`, keeping only the newest event of its key: a later sequencer wins, and
    /// of equal ones the later arrival.
    pub fn add(&mut self, event: ObjectEvent) {
        if let Some(time) = event.time {
            self.newest_event = self.newest_event.max(Some(time));
        }
        let id = (event.bucket.clone(), event.key.clone());
        match self.latest.get_mut(&id) {
            Some(held) => {
                self.coalesced += 1;
                if compare_sequencers(&event.sequencer, &held.sequencer).is_ge() {
                    *held = event;
                }
            }
            None => {
                self.latest.insert(id, event);
            }
        }
    }

    /// Distinct objects in the batch.
    pub fn objects(&self) -> usize {
        self.latest.len()
    }

    /// Whether no message was consumed into it.
    pub fn is_empty(&self) -> bool {
        self.started.is_none()
    }

    /// When its oldest message was fetched: the batch waits for more until `batch_wait`
    /// after that.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Events left out by coalescing.
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// The newest `eventTime` of its events.
    pub fn newest_event(&self) -> Option<SystemTime> {
        self.newest_event
    }

    /// Per (topic, partition), the offset to commit once the batch is in the catalog.
    pub fn offsets(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.next_offsets.iter().map(|((topic, partition), next)| (topic.as_str(), *partition, *next))
    }

    /// The files to index and the removals to record.
    pub fn work(&self) -> Work {
        let mut work = Work::default();
        for event in self.latest.values() {
            let uri = object_uri(&event.bucket, &event.key);
            match event.change {
                Change::Created => work.files.push(SourceFile {
                    uri,
                    bucket: Some(event.bucket.clone()),
                    key: event.key.clone(),
                    // Unknown: the first ranged GET asks for the whole header size, and the
                    // catalog takes the size from the GET's response.
                    size_bytes: event.size.unwrap_or(u64::MAX),
                    last_modified: event.time,
                    etag: event.etag.clone(),
                }),
                Change::Removed => work.removals.push(Removal {
                    source_uri: uri,
                    bucket: event.bucket.clone(),
                    key: event.key.clone(),
                    sequencer: event.sequencer.clone(),
                    event_name: event.name.clone(),
                    event_time: event.time,
                }),
            }
        }
        // Keys in order: the reads and the rows come in a stable order.
        work.files.sort_by(|a, b| a.uri.cmp(&b.uri));
        work.removals.sort_by(|a, b| a.source_uri.cmp(&b.source_uri));
        work
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(change: Change, key: &str, sequencer: &str, size: u64) -> ObjectEvent {
        ObjectEvent {
            change,
            name: format!("{change:?}"),
            bucket: "b".into(),
            key: key.into(),
            size: Some(size),
            etag: Some("\"e\"".into()),
            sequencer: sequencer.into(),
            time: None,
        }
    }

    #[test]
    fn coalesces_by_sequencer_and_tracks_offsets() {
        let mut batch = MicroBatch::default();
        assert!(batch.is_empty());
        let (early, late) = (Instant::now(), Instant::now() + std::time::Duration::from_millis(5));
        batch.consumed("t", 0, 7, late);
        batch.add(event(Change::Created, "a.exr", "0002", 2));
        // A message fetched earlier (stashed while the previous batch was written).
        batch.consumed("t", 1, 3, early);
        assert_eq!(batch.started(), Some(early), "the batch dates from its oldest message");
        // Older than the held one (arrived late on another partition): ignored.
        batch.add(event(Change::Created, "a.exr", "0001", 1));
        batch.consumed("t", 0, 8, late);
        batch.add(event(Change::Created, "b.exr", "0001", 5));
        batch.add(event(Change::Removed, "b.exr", "0003", 0));
        assert_eq!((batch.objects(), batch.coalesced()), (2, 2));
        let work = batch.work();
        assert_eq!(work.files.len(), 1);
        assert_eq!((work.files[0].uri.as_str(), work.files[0].size_bytes), ("s3://b/a.exr", 2));
        assert_eq!(work.removals.len(), 1);
        assert_eq!(
            (work.removals[0].source_uri.as_str(), work.removals[0].sequencer.as_str()),
            ("s3://b/b.exr", "0003")
        );
        let mut offsets: Vec<_> = batch.offsets().collect();
        offsets.sort();
        assert_eq!(offsets, vec![("t", 0, 9), ("t", 1, 4)]);
    }
}
