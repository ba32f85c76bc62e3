//! Starting `exrscan-node-agent` against a [`ControlPlane`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::ControlPlane;
use crate::Error;
use crate::paths::workspace_bin;
use crate::process::Server;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent gets to stop its pods' processes when dropped.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How to start a node agent.
#[derive(Debug, Clone)]
pub struct NodeAgentConfig {
    /// The Node's name.
    pub name: String,
    /// `--map NAME=PATH`: which program a container's `command[0]` runs.
    pub maps: Vec<(String, PathBuf)>,
    /// `--image PATTERN=PATH`: which program a container without `command` runs.
    pub images: Vec<(String, PathBuf)>,
    /// `--max-grace-period`: the longest a deleted pod's processes get before SIGKILL.
    pub max_grace_period: Option<Duration>,
}

impl NodeAgentConfig {
    /// An agent for the Node `name`, with no mappings (commands come from `PATH`).
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), maps: Vec::new(), images: Vec::new(), max_grace_period: None }
    }

    /// Runs `path` for containers whose `command[0]` is `name`.
    pub fn map(mut self, name: &str, path: impl Into<PathBuf>) -> Self {
        self.maps.push((name.into(), path.into()));
        self
    }

    /// Runs `path` for containers without `command` whose image contains `pattern`.
    pub fn image(mut self, pattern: &str, path: impl Into<PathBuf>) -> Self {
        self.images.push((pattern.into(), path.into()));
        self
    }
}

/// A running node agent; stopped with SIGTERM (which stops its pods' processes) on drop.
pub struct NodeAgent {
    server: Server,
    name: String,
    work_dir: PathBuf,
}

impl NodeAgent {
    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The agent's work directory (pod sandboxes, claims, pod logs).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The stdout and stderr of a pod's containers.
    pub fn pod_log(&self, namespace: &str, pod: &str) -> PathBuf {
        self.work_dir.join(format!("{namespace}_{pod}.log"))
    }

    /// The agent's own log.
    pub fn log_path(&self) -> &Path {
        self.server.log_path()
    }

    /// The last lines of the agent's own log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.server.log_tail(lines)
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        self.server.stop(STOP_GRACE);
    }
}

impl ControlPlane {
    /// Starts `exrscan-node-agent` (built next to the running test) with the admin
    /// kubeconfig and waits until its Node is Ready.
    pub fn start_node_agent(&self, config: NodeAgentConfig) -> Result<NodeAgent, Error> {
        let bin = workspace_bin("exrscan-node-agent")?;
        let work_dir = self.dir().join(format!("node-{}", config.name));
        std::fs::create_dir_all(&work_dir)
            .map_err(|e| Error::Io { context: format!("creating {}", work_dir.display()), source: e })?;
        let mut command = Command::new(bin);
        command
            .arg(format!("--kubeconfig={}", self.kubeconfig_path().display()))
            .arg(format!("--node-name={}", config.name))
            .arg(format!("--work-dir={}", work_dir.display()));
        for (name, path) in &config.maps {
            command.arg(format!("--map={name}={}", path.display()));
        }
        for (pattern, path) in &config.images {
            command.arg(format!("--image={pattern}={}", path.display()));
        }
        if let Some(grace) = config.max_grace_period {
            command.arg(format!("--max-grace-period={}", grace.as_secs()));
        }
        let log = self.dir().join(format!("node-agent-{}.log", config.name));
        let mut server = Server::spawn(&format!("exrscan-node-agent ({})", config.name), command, &log)?;
        let ready = r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#;
        server.wait_until(READY_TIMEOUT, || {
            self.kubectl()
                .args(["get", "node", &config.name, "-o", ready])
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout == b"True")
        })?;
        Ok(NodeAgent { server, name: config.name, work_dir })
    }
}
