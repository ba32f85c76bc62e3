//! `ExrScan.spec.events` and `status.events`: a Deployment of `exrscan follow` consumers
//! that index new renders seconds after they land, from the bucket's S3 event
//! notifications on a Kafka topic.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// S3 event notifications on Kafka, indexed as they come by `exrscan follow` consumers
/// (a Deployment `<scan>-follow`, one consumer group per ExrScan). Runs of the scan
/// (`spec.schedule`, spec changes) go on as before and catch what events miss.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EventsSpec {
    /// Bootstrap brokers, `host:port` each.
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 512)))]
    #[x_kube(validation = Rule::new("self.all(b, b.matches('^(\\\\[[0-9A-Fa-f:.]+\\\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$'))")
        .message("spec.events.brokers must be host:port entries, e.g. kafka-0.kafka:9092"))]
    pub brokers: Vec<String>,
    /// The topic the bucket's notifications are published to.
    #[schemars(length(min = 1, max = 249))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._-]+$')")
        .message("spec.events.topic must be a Kafka topic name: letters, digits, '.', '_' and '-'"))]
    pub topic: String,
    /// Consumer group; its committed offsets are the consumers' progress. Default:
    /// `exrscan.<namespace>.<name>` (one group per ExrScan; a scan re-created under the same
    /// name resumes where its predecessor stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._-]+$')")
        .message("spec.events.consumerGroup must be letters, digits, '.', '_' and '-'"))]
    pub consumer_group: Option<String>,
    /// Consumers (each reads its share of the topic's partitions; more than the partitions
    /// leaves some idle).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 64))]
    pub replicas: i32,
    /// Where a consumer group without committed offsets starts: `Earliest` (the default:
    /// the topic's retained backlog is indexed) or `Latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_from: Option<StartFrom>,
    /// TLS to the brokers; plaintext when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// SASL authentication to the brokers (over TLS when `tls` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
    /// Resources of each consumer container (default: `spec.worker.resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Most distinct objects a consumer indexes in one micro-batch, one catalog transaction
    /// (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch_objects: Option<u32>,
    /// Milliseconds a micro-batch stays open after its oldest event was fetched (default
    /// 250): lower gives new renders to the catalog sooner in more, smaller transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub batch_milliseconds: Option<u32>,
}

fn default_replicas() -> i32 {
    1
}

/// Where a new consumer group starts reading.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest message the topic retains.
    #[default]
    Earliest,
    /// Only messages published after the group first joins.
    Latest,
}

/// TLS settings of the broker connections.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTls {
    /// Secret whose key `ca.crt` is the PEM CA bundle that signs the brokers' certificates
    /// (default: the worker image's system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret: Option<String>,
}

/// SASL authentication.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSasl {
    /// The SASL mechanism.
    pub mechanism: SaslMechanism,
    /// Secret with the keys `username` and `password`, in the scan's namespace; referenced
    /// by the consumer pods, never read by the operator.
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
}

/// SASL mechanisms with a user name and password.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN` (use it with `tls`: the password crosses the wire as is).
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism's name as librdkafka's `sasl.mechanism` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl EventsSpec {
    /// librdkafka's `security.protocol` for these settings.
    pub fn security_protocol(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
    }
}

/// What the event consumers report, summed over the consumer pods of the scan's
/// Deployment (each reports under its pod name in the ConfigMap `<scan>-follow`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsStatus {
    /// Messages on the topic not committed yet, over the partitions of the consumers that
    /// reported lately; absent until a consumer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Objects the consumers wrote to the catalog.
    #[serde(default)]
    pub indexed: i64,
    /// Objects the catalog already held (redelivered or unchanged events).
    #[serde(default)]
    pub unchanged: i64,
    /// Objects that could not be read or parsed.
    #[serde(default)]
    pub failed: i64,
    /// Removals recorded in the `removals` table.
    #[serde(default)]
    pub removals: i64,
    /// Messages and events skipped: malformed, `s3:TestEvent`, other event types, outside
    /// the prefix, or left out by the globs.
    #[serde(default)]
    pub skipped: i64,
    /// The newest event time of a batch written to the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<Time>,
    /// Consumers asked for (0 while `spec.suspend`).
    #[serde(default)]
    pub replicas: i32,
    /// Consumer pods ready.
    #[serde(default)]
    pub replicas_ready: i32,
}
