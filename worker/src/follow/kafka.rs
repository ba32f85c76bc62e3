//! The Kafka side of `exrscan follow`: the consumer's settings (brokers, group, TLS, SASL)
//! and its context, which turns librdkafka's statistics into the consumer lag.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::statistics::Statistics;

use super::FollowStats;

/// How often librdkafka reports statistics (the lag is as old as this at most).
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// How to reach the broker and which group to consume in.
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// `host:port` list of bootstrap brokers.
    pub brokers: String,
    /// The consumer group: one per followed prefix; its committed offsets are the progress.
    pub group: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`.
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password (from a file or the environment, never a flag).
    pub sasl_password: Option<String>,
    /// PEM file of the CA of the brokers' certificates.
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key (mutual TLS).
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Where a group without committed offsets starts: `earliest` (default) or `latest`.
    pub start: String,
    /// Further librdkafka settings (`name=value`), applied last.
    pub extra: Vec<(String, String)>,
}

/// Why the consumer could not be made.
#[derive(Debug, thiserror::Error)]
#[error("Kafka consumer: {0}")]
pub struct KafkaSetupError(String);

impl KafkaOptions {
    /// The librdkafka configuration: offsets are committed by hand, after the catalog has the
    /// batch (never automatically).
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", if self.start.is_empty() { "earliest" } else { self.start.as_str() })
            .set("statistics.interval.ms", STATS_INTERVAL.as_millis().to_string())
            // Bounds what is fetched ahead while a batch is written (KiB).
            .set("queued.max.messages.kbytes", "16384")
            .set("client.id", format!("exrscan/{}", env!("CARGO_PKG_VERSION")));
        let mut set = |name: &str, value: &Option<String>| {
            if let Some(value) = value {
                config.set(name, value);
            }
        };
        set("security.protocol", &self.security_protocol);
        set("sasl.mechanism", &self.sasl_mechanism);
        set("sasl.username", &self.sasl_username);
        set("sasl.password", &self.sasl_password);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        set("ssl.ca.location", &path(&self.ca));
        set("ssl.certificate.location", &path(&self.certificate));
        set("ssl.key.location", &path(&self.key));
        for (name, value) in &self.extra {
            config.set(name, value);
        }
        config
    }

    /// A consumer subscribed to `topics`, reporting its lag into `stats`.
    pub fn consumer(&self, topics: &[String], stats: Arc<FollowStats>) -> Result<Consumer, KafkaSetupError> {
        use rdkafka::consumer::Consumer as _;
        // librdkafka's own messages name settings, never their values.
        let consumer: Consumer =
            self.config().create_with_context(LagContext { stats }).map_err(|e| KafkaSetupError(e.to_string()))?;
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| KafkaSetupError(e.to_string()))?;
        Ok(consumer)
    }
}

/// The consumer `exrscan follow` reads with.
pub type Consumer = StreamConsumer<LagContext>;

/// Takes the consumer lag from librdkafka's statistics.
pub struct LagContext {
    stats: Arc<FollowStats>,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        // `consumer_lag`: the partition's end minus the committed offset, -1 when unknown
        // (not assigned here); partition -1 is librdkafka's internal one.
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.stats.set_lag(lag);
    }
}

impl ConsumerContext for LagContext {}
