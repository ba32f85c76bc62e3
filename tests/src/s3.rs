//! A real S3 server on loopback: MinIO, built from the Go module proxy by
//! `tests/env/build-servers.sh`, with root credentials and buckets made for the test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tempfile::TempDir;

use crate::audit::AuditLog;
use crate::process::{Server, free_port};
use crate::{Error, paths, work_dir};

/// Region the server reports; any value works with MinIO, tests pass this one.
pub const REGION: &str = "us-east-1";

/// Settings a test may change before starting the server.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Answer `503 SlowDown` once more than this many S3 requests are in flight
    /// (`MINIO_API_REQUESTS_MAX`): real throttling for fault tests.
    pub max_requests: Option<u32>,
    /// Record every request through MinIO's audit webhook ([`S3Server::audit`]).
    pub audit: bool,
    /// Listen on this address instead of 127.0.0.1 (e.g. [`crate::netns::NODE_IP`], where
    /// a real node's pods reach it).
    pub address: Option<std::net::Ipv4Addr>,
    /// Publish bucket notifications to this Kafka broker and topic (MinIO's Kafka target
    /// [`KAFKA_TARGET`]); a bucket then needs [`S3Server::notify_kafka`].
    pub kafka: Option<KafkaTarget>,
}

/// Where MinIO publishes bucket notifications.
#[derive(Debug, Clone)]
pub struct KafkaTarget {
    /// `host:port` of the broker.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// How MinIO hands events to the broker.
    pub delivery: Delivery,
    /// MinIO's senders of [`Delivery::Direct`]: it starts one per core (`GOMAXPROCS`, which
    /// this sets for the whole process), each with one event in flight; `None`: the cores of
    /// this machine.
    pub senders: Option<usize>,
}

/// How MinIO hands bucket notifications to its Kafka target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Through a queue directory: an event is stored on disk first and sent by a replay
    /// loop that looks at the directory every 3 s (MinIO's fixed interval), so none is lost
    /// while the broker is down, but each waits 0–3 s.
    #[default]
    Queued,
    /// Straight from memory (no queue directory): within milliseconds, but an event that
    /// cannot be delivered (broker down) is dropped, for a sweep to catch.
    Direct,
}

/// The id of MinIO's Kafka notification target (`arn:minio:sqs::EXRSCAN:kafka`).
pub const KAFKA_TARGET: &str = "EXRSCAN";

/// A running MinIO server with its data directory; stopped and removed on drop.
#[derive(Debug)]
pub struct S3Server {
    server: Option<Server>,
    options: S3Options,
    addr: SocketAddr,
    access_key: String,
    secret_key: String,
    audit: Option<AuditLog>,
    /// Set by [`S3Server::serve_tls`]: the directory of `public.crt` and `private.key`.
    certs: Option<PathBuf>,
    dir: TempDir,
}

impl S3Server {
    /// Starts MinIO on a free loopback port with default options.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(S3Options::default())
    }

    /// Starts MinIO on a free loopback port (or at [`S3Options::address`]).
    pub fn start_with(options: S3Options) -> Result<Self, Error> {
        let dir = work_dir("s3")?;
        let addr: SocketAddr = (options.address.unwrap_or(std::net::Ipv4Addr::LOCALHOST), free_port()?).into();
        let audit = if options.audit { Some(AuditLog::start()?) } else { None };
        let mut s3 = Self {
            server: None,
            options,
            addr,
            access_key: "exrscan-test".into(),
            secret_key: "exrscan-test-secret-key".into(),
            audit,
            certs: None,
            dir,
        };
        s3.restart()?;
        Ok(s3)
    }

    /// Stops the server (SIGKILL, like a crash) without removing its data.
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Starts the server again on the same address and data (after [`stop`](Self::stop)).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        let data: PathBuf = self.dir.path().join("data");
        let mut cmd = Command::new(paths::tool("minio")?);
        cmd.arg("server")
            .arg(&data)
            .arg("--address")
            .arg(self.addr.to_string())
            .arg("--console-address")
            .arg(format!("127.0.0.1:{}", free_port()?))
            .arg("--quiet")
            .env("MINIO_ROOT_USER", &self.access_key)
            .env("MINIO_ROOT_PASSWORD", &self.secret_key)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .env("MINIO_CI_CD", "on")
            .env("HOME", self.dir.path());
        if let Some(max) = self.options.max_requests {
            cmd.env("MINIO_API_REQUESTS_MAX", max.to_string());
        }
        if let Some(certs) = &self.certs {
            cmd.arg("--certs-dir").arg(certs);
        }
        if let Some(kafka) = &self.options.kafka {
            cmd.env(format!("MINIO_NOTIFY_KAFKA_ENABLE_{KAFKA_TARGET}"), "on")
                .env(format!("MINIO_NOTIFY_KAFKA_BROKERS_{KAFKA_TARGET}"), &kafka.brokers)
                .env(format!("MINIO_NOTIFY_KAFKA_TOPIC_{KAFKA_TARGET}"), &kafka.topic);
            if let Some(senders) = kafka.senders {
                cmd.env("GOMAXPROCS", senders.to_string());
            }
            if kafka.delivery == Delivery::Queued {
                cmd.env(format!("MINIO_NOTIFY_KAFKA_QUEUE_DIR_{KAFKA_TARGET}"), self.dir.path().join("events"));
            }
        }
        if let Some(audit) = &self.audit {
            cmd.env("MINIO_AUDIT_WEBHOOK_ENABLE_EXRSCAN", "on")
                .env("MINIO_AUDIT_WEBHOOK_ENDPOINT_EXRSCAN", audit.endpoint())
                .env("MINIO_AUDIT_WEBHOOK_BATCH_SIZE_EXRSCAN", "1");
        }
        let mut server = Server::spawn("MinIO (S3)", cmd, &self.dir.path().join("minio.log"))?;
        if self.certs.is_some() {
            // The readiness probe speaks plain HTTP; over TLS, an open port has to do.
            server.wait_for_port(self.addr, Duration::from_secs(60))?;
        } else {
            let ready = format!("http://{}/minio/health/ready", self.addr);
            server.wait_until(Duration::from_secs(60), || http_status("GET", &ready) == Some(200))?;
        }
        self.server = Some(server);
        Ok(())
    }

    /// The server's process id while it runs (benchmarks pin it to a core).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Server::pid)
    }

    /// Restarts the server on the same data serving HTTPS with `certs_dir/public.crt` and
    /// `certs_dir/private.key` (make buckets and objects before: [`create_bucket`](Self::create_bucket)
    /// speaks plain HTTP).
    pub fn serve_tls(&mut self, certs_dir: &std::path::Path) -> Result<(), Error> {
        self.certs = Some(certs_dir.to_path_buf());
        self.restart()
    }

    /// `http://ADDRESS:PORT` (`https://` after [`serve_tls`](Self::serve_tls)).
    pub fn endpoint(&self) -> String {
        let scheme = if self.certs.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The access key id of the root user.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret access key of the root user.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The audit log of the requests served, when started with [`S3Options::audit`].
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// The server's log file (it records each request's failures).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("minio.log")
    }

    /// Creates `bucket` (path-style request signed with SigV4).
    pub fn create_bucket(&self, bucket: &str) -> Result<(), Error> {
        let url = self
            .endpoint()
            .parse()
            .map_err(|e| Error::Start { what: "S3 bucket".into(), reason: format!("bad endpoint: {e}") })?;
        let bucket_handle = Bucket::new(url, UrlStyle::Path, bucket.to_string(), REGION)
            .map_err(|e| Error::Start { what: format!("S3 bucket {bucket}"), reason: e.to_string() })?;
        let credentials = Credentials::new(&self.access_key, &self.secret_key);
        let signed = bucket_handle.create_bucket(&credentials).sign(Duration::from_secs(60));
        // A freshly started MinIO may still answer 503 while it initialises its drive.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match http_status("PUT", signed.as_str()) {
                Some(200) => return Ok(()),
                Some(503) | None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                other => {
                    return Err(Error::Start {
                        what: format!("S3 bucket {bucket}"),
                        reason: format!("CreateBucket answered {other:?}"),
                    });
                }
            }
        }
    }

    /// Sends `bucket`'s object creations and removals (every key) to the Kafka target of
    /// [`S3Options::kafka`] (PutBucketNotificationConfiguration).
    pub fn notify_kafka(&self, bucket: &str) -> Result<(), Error> {
        self.put_notifications(
            bucket,
            &format!(
                "<NotificationConfiguration><QueueConfiguration><Id>exrscan</Id>\
                 <Queue>arn:minio:sqs::{KAFKA_TARGET}:kafka</Queue>\
                 <Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event>\
                 </QueueConfiguration></NotificationConfiguration>"
            ),
        )
    }

    /// Turns `bucket`'s notifications off (an empty configuration): events of what happens
    /// meanwhile are lost, as when a notification is switched off for a while.
    pub fn notify_none(&self, bucket: &str) -> Result<(), Error> {
        self.put_notifications(bucket, "<NotificationConfiguration></NotificationConfiguration>")
    }

    fn put_notifications(&self, bucket: &str, body: &str) -> Result<(), Error> {
        let failed = |reason: String| Error::Start { what: format!("S3 notifications of {bucket}"), reason };
        let url = self.endpoint().parse().map_err(|e| failed(format!("bad endpoint: {e}")))?;
        let handle = Bucket::new(url, UrlStyle::Path, bucket.to_string(), REGION).map_err(|e| failed(e.to_string()))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        // A freshly started MinIO registers its notification targets in the background: until
        // then it refuses the ARN as unknown.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let signed = rusty_s3::signing::sign(
                &jiff::Timestamp::now(),
                rusty_s3::Method::Put,
                handle.object_url(""),
                &self.access_key,
                &self.secret_key,
                None,
                REGION,
                60,
                [("notification", "")].into_iter(),
                std::iter::empty(),
            );
            let mut response = agent.put(signed.as_str()).send(body).map_err(|e| failed(e.to_string()))?;
            if response.status() == 200 {
                return Ok(());
            }
            let text = response.body_mut().read_to_string().unwrap_or_default();
            if !text.contains("ARN") || std::time::Instant::now() > deadline {
                return Err(failed(format!(
                    "PutBucketNotificationConfiguration answered {}: {text}",
                    response.status()
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// An `object_store` client for `bucket` with the root credentials.
    pub fn store(&self, bucket: &str) -> Result<object_store::aws::AmazonS3, Error> {
        // object_store's HTTP client takes the process's rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_region(REGION)
            .with_bucket_name(bucket)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(|e| Error::Start { what: "S3 client".into(), reason: e.to_string() })
    }
}

/// The status code of a body-less request, or `None` when nothing answered.
fn http_status(method: &str, url: &str) -> Option<u16> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let response = match method {
        "PUT" => agent.put(url).send_empty(),
        _ => agent.get(url).call(),
    };
    response.ok().map(|r| r.status().as_u16())
}
