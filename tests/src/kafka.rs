//! An Apache Kafka broker on loopback (KRaft, one node acting as broker and controller),
//! run from Maven Central's jars (`tests/env/build-kafka.sh`) on the machine's Java. Topics
//! are created on first use with [`PARTITIONS`] partitions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tempfile::TempDir;

use crate::process::{Server, free_port};
use crate::{Error, paths, work_dir};

/// Partitions of an auto-created topic: more than one, so that a consumer tracks offsets
/// per partition.
pub const PARTITIONS: u32 = 2;

/// A running Kafka broker with its log directory; stopped and removed on drop.
#[derive(Debug)]
pub struct KafkaServer {
    server: Option<Server>,
    addr: SocketAddr,
    dir: TempDir,
}

/// The folder of the broker's jars.
fn libs() -> Result<PathBuf, Error> {
    let libs = paths::cache_dir().join("kafka/libs");
    let found = std::fs::read_dir(&libs)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-")))
        .unwrap_or(false);
    if found {
        Ok(libs)
    } else {
        Err(Error::Missing {
            what: format!("Kafka's jars in {}", libs.display()),
            hint: "run `make test` (or tests/env/setup.sh, which runs tests/env/build-kafka.sh)".into(),
        })
    }
}

impl KafkaServer {
    /// Formats a fresh log directory and starts the broker on a free loopback port.
    pub fn start() -> Result<Self, Error> {
        let dir = work_dir("kafka")?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let controller = free_port()?;
        let data = dir.path().join("data");
        let config = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             listeners=PLAINTEXT://{addr},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://{addr}\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
             log.dirs={}\n\
             num.partitions={PARTITIONS}\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n",
            data.display()
        );
        let properties = dir.path().join("server.properties");
        std::fs::write(&properties, config)
            .map_err(|e| Error::Io { context: format!("writing {}", properties.display()), source: e })?;
        let mut format = java()?;
        format
            .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id(), "-c"])
            .arg(&properties)
            .arg("--standalone");
        crate::output("Kafka storage format", format)?;
        let mut kafka = Self { server: None, addr, dir };
        kafka.restart()?;
        Ok(kafka)
    }

    /// Kills the broker (SIGKILL, like a crash); its log directory stays.
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Starts the broker again on the same address and data (after [`stop`](Self::stop)).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        let mut cmd = java()?;
        cmd.arg("kafka.Kafka").arg(self.dir.path().join("server.properties"));
        let mut server = Server::spawn("Kafka broker", cmd, &self.log_path())?;
        server.wait_for_port(self.addr, Duration::from_secs(120))?;
        self.server = Some(server);
        Ok(())
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Server::pid)
    }

    /// `127.0.0.1:PORT`, the bootstrap address.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("kafka.log")
    }

    /// Produces `payloads` to `topic` (creating it), waiting until the broker has them all.
    pub fn produce(&self, topic: &str, payloads: &[&[u8]]) -> Result<(), Error> {
        let failed = |reason: String| Error::Start { what: "Kafka producer".into(), reason };
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("message.timeout.ms", "60000")
            .create()
            .map_err(|e| failed(e.to_string()))?;
        for payload in payloads {
            producer
                .send(BaseRecord::<(), [u8]>::to(topic).payload(*payload))
                .map_err(|(e, _)| failed(e.to_string()))?;
        }
        producer.flush(Duration::from_secs(60)).map_err(|e| failed(e.to_string()))
    }
}

/// `java` with the broker's class path, small heap and quick start (a test broker on a
/// busy machine).
fn java() -> Result<Command, Error> {
    let mut cmd = Command::new(paths::tool("java")?);
    cmd.args(["-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"])
        .arg("-cp")
        .arg(format!("{}/*", libs()?.display()));
    Ok(cmd)
}

/// A KRaft cluster id: 16 random bytes, base64url without padding, as `kafka-storage
/// random-uuid` prints. Like Kafka's own `Uuid.randomUuid`, never one that starts with `-`:
/// the storage tool's argument parser would take it for an option (`--cluster-id/-t: expected
/// one argument`, one format in 64).
fn cluster_id() -> String {
    loop {
        let id = random_base64url_id();
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn random_base64url_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    let bytes: Vec<u8> = (0..2u64).flat_map(|i| RandomState::new().hash_one(i).to_le_bytes()).collect();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_are_22_base64url_characters_and_never_start_with_a_dash() {
        for _ in 0..1000 {
            let id = super::cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
            assert!(!id.starts_with('-'), "{id} would be read as an option by kafka-storage");
        }
        assert_ne!(super::cluster_id(), super::cluster_id());
    }
}
