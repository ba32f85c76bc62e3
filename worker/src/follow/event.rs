//! S3 event notifications as MinIO, VAST's event broker and AWS (through a Kafka bridge)
//! publish them: a JSON message with `Records[]`, each naming the event (`eventName`), the
//! bucket (`s3.bucket.name`), the URL-encoded key (`s3.object.key`) and, for creations, its
//! `size` and `eTag`, plus the per-key `sequencer` that orders events of one key.
//!
//! [`parse`] turns one message into [`ObjectEvent`]s or says why it carries none
//! ([`Skip`]): a malformed message, AWS's `s3:TestEvent`, or only events other than object
//! creations and removals.

use std::cmp::Ordering;
use std::time::SystemTime;

use serde::Deserialize;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `ObjectCreated:*` (Put, Post, Copy, CompleteMultipartUpload, …).
    Created,
    /// `ObjectRemoved:*` (Delete, DeleteMarkerCreated, …) and `LifecycleExpiration:*`.
    Removed,
}

/// One object event of a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    /// Created or removed.
    pub change: Change,
    /// The event's name as sent, without the `s3:` prefix (`ObjectCreated:Put`).
    pub name: String,
    /// The bucket.
    pub bucket: String,
    /// The object key, URL-decoded.
    pub key: String,
    /// The object's size (creations).
    pub size: Option<u64>,
    /// The object's ETag, quoted as S3 quotes it in responses (creations).
    pub etag: Option<String>,
    /// Orders the events of one key (see [`compare_sequencers`]); empty when not sent.
    pub sequencer: String,
    /// `eventTime`, when it parses.
    pub time: Option<SystemTime>,
}

/// Why a message carries no object event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not an S3 event message (bad JSON, no `Records`, a record without bucket or key).
    Malformed(String),
    /// AWS's `s3:TestEvent`, sent when a notification is configured.
    TestEvent,
    /// Only events other than object creations and removals (e.g. `s3:ObjectAccessed:Get`).
    OtherEvents,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: String,
    event_time: Option<String>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: BucketEntity,
    object: ObjectEntity,
}

#[derive(Deserialize)]
struct BucketEntity {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectEntity {
    key: String,
    size: Option<u64>,
    e_tag: Option<String>,
    sequencer: Option<String>,
}

/// The object events of one notification message, in the order sent.
pub fn parse(payload: &[u8]) -> Result<Vec<ObjectEvent>, Skip> {
    let message: Message = serde_json::from_slice(payload).map_err(|e| Skip::Malformed(e.to_string()))?;
    if message.event.as_deref().is_some_and(|e| e.ends_with("TestEvent")) {
        return Err(Skip::TestEvent);
    }
    let records = message.records.ok_or_else(|| Skip::Malformed("no `Records`".into()))?;
    let mut events = Vec::with_capacity(records.len());
    for record in records {
        let name = record.event_name.strip_prefix("s3:").unwrap_or(&record.event_name).to_string();
        let change = if name.starts_with("ObjectCreated:") {
            Change::Created
        } else if name.starts_with("ObjectRemoved:") || name.starts_with("LifecycleExpiration:") {
            Change::Removed
        } else {
            continue;
        };
        let key = url_decode(&record.s3.object.key).map_err(Skip::Malformed)?;
        if record.s3.bucket.name.is_empty() || key.is_empty() {
            return Err(Skip::Malformed("a record without bucket or key".into()));
        }
        events.push(ObjectEvent {
            change,
            name,
            bucket: record.s3.bucket.name,
            key,
            size: record.s3.object.size,
            etag: record.s3.object.e_tag.filter(|e| !e.is_empty()).map(|e| quoted(&e)),
            sequencer: record.s3.object.sequencer.unwrap_or_default(),
            time: record.event_time.as_deref().and_then(parse_time),
        });
    }
    if events.is_empty() {
        return Err(Skip::OtherEvents);
    }
    Ok(events)
}

/// Orders two sequencers of one key as S3 documents: the shorter is right-padded with `0`s,
/// then they compare as text (hex digits, compared without regard to case).
pub fn compare_sequencers(a: &str, b: &str) -> Ordering {
    let len = a.len().max(b.len());
    padded(a, len).cmp(padded(b, len))
}

/// The digits of `sequencer` in upper case, right-padded with `0` to `len`.
fn padded(sequencer: &str, len: usize) -> impl Iterator<Item = u8> + '_ {
    sequencer.bytes().map(|c| c.to_ascii_uppercase()).chain(std::iter::repeat(b'0')).take(len)
}

/// `"etag"` as S3 responses quote it (events send it bare).
fn quoted(etag: &str) -> String {
    if etag.starts_with('"') || etag.starts_with("W/\"") { etag.to_string() } else { format!("\"{etag}\"") }
}

/// Decodes a key encoded as `application/x-www-form-urlencoded` (`+` is a space).
fn url_decode(encoded: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut input = encoded.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next(), input.next()];
                let digit = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
                match hex.map(digit) {
                    [Some(hi), Some(lo)] => bytes.push((hi * 16 + lo) as u8),
                    _ => return Err(format!("bad percent-encoding in key `{encoded}`")),
                }
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| format!("key `{encoded}` is not UTF-8 once decoded"))
}

fn parse_time(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MinIO `s3:ObjectCreated:Put` message as its Kafka target sends it.
    const MINIO_PUT: &str = r#"{"EventName":"s3:ObjectCreated:Put","Key":"renders/shot%20010/a+b.exr",
      "Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2026-12-06T01:02:03.456Z",
      "eventName":"s3:ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"renders"},
      "object":{"key":"shot+010%2Fa%2Bb.exr","size":1234,"eTag":"0123abcd","sequencer":"187E3A5C2D9B1F00"}}}]}"#;

    #[test]
    fn parses_a_minio_put() {
        let events = parse(MINIO_PUT.as_bytes()).expect("an event");
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.change, Change::Created);
        assert_eq!(e.name, "ObjectCreated:Put");
        assert_eq!((e.bucket.as_str(), e.key.as_str()), ("renders", "shot 010/a+b.exr"));
        assert_eq!((e.size, e.etag.as_deref()), (Some(1234), Some("\"0123abcd\"")));
        assert_eq!(e.sequencer, "187E3A5C2D9B1F00");
        let expected = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_518_923_456);
        assert_eq!(e.time, Some(expected));
    }

    #[test]
    fn parses_an_aws_delete_and_skips_other_events() {
        let aws = r#"{"Records":[
          {"eventName":"ObjectAccessed:Get","s3":{"bucket":{"name":"b"},"object":{"key":"x.exr"}}},
          {"eventName":"ObjectRemoved:Delete","eventTime":"1970-01-01T00:00:00.000Z",
           "s3":{"bucket":{"name":"b"},"object":{"key":"x.exr","sequencer":"0A1B2C3D4E5F6A7B"}}}]}"#;
        let events = parse(aws.as_bytes()).expect("the delete");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].change, Change::Removed);
        assert_eq!(events[0].etag, None);
        let only_gets =
            r#"{"Records":[{"eventName":"s3:ObjectAccessed:Get","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert_eq!(parse(only_gets.as_bytes()), Err(Skip::OtherEvents));
    }

    #[test]
    fn test_events_and_malformed_messages_are_told_apart() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"b"}"#;
        assert_eq!(parse(test.as_bytes()), Err(Skip::TestEvent));
        for bad in [
            "not json",
            "{}",
            r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%ff"}}}]}"#,
        ] {
            assert!(matches!(parse(bad.as_bytes()), Err(Skip::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn sequencers_compare_right_padded() {
        assert_eq!(compare_sequencers("0A", "09FF"), Ordering::Greater);
        assert_eq!(compare_sequencers("0A", "0A00"), Ordering::Equal);
        assert_eq!(compare_sequencers("0a1", "0A0F"), Ordering::Greater);
        assert_eq!(compare_sequencers("", "01"), Ordering::Less);
    }
}
