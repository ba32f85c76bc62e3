//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and
//! kube-controller-manager, with an admin kubeconfig, plus node agents that run pods as
//! local processes (see [`crate::node_agent`]), or a real node (kubelet, containerd,
//! kube-proxy, a CNI bridge; see [`Node`]) with kube-scheduler, in a network namespace of
//! the test's own (see [`crate::netns`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), testenv::Error> {
//! use testenv::kube::{ControlPlane, NodeAgentConfig};
//! let cluster = ControlPlane::start()?;
//! let _node = cluster.start_node_agent(NodeAgentConfig::new("node-1"))?;
//! let client = cluster.client().await?;
//! # Ok(()) }
//! ```
//!
//! The API server authorizes with RBAC; the admin token is in `system:masters`. Its serving
//! certificate is self-signed (`--cert-dir`); the kubeconfig trusts it. The controller
//! manager runs [`CONTROLLERS`] without leader election. No scheduler runs unless
//! [`ControlPlaneOptions::real_node`] is set: node agents bind pods themselves. Everything lives in one work directory (kept with
//! `EXRSCAN_KEEP_TEST_DIRS`), with a log per server.

mod credentials;
mod node;
mod node_agent;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use node::{Node, NodeConfig};
pub use node_agent::{NodeAgent, NodeAgentConfig};

use crate::Error;
use crate::paths::tool;
use crate::process::{Server, free_port};
use credentials::TokenUser;

/// The controllers kube-controller-manager runs (their v1.36 names).
pub const CONTROLLERS: &[&str] = &[
    "job-controller",
    // Deployments (the operator's `spec.events` consumers) and their ReplicaSets.
    "deployment-controller",
    "replicaset-controller",
    "garbage-collector-controller",
    "ttl-after-finished-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
];

/// The controllers a real node's workloads also need: Deployments (the operator's chart),
/// Services, PodDisruptionBudgets (drains), PersistentVolumeClaims and node health (the
/// node lifecycle controller lifts the `not-ready` taint a kubelet registers with).
pub const NODE_CONTROLLERS: &[&str] = &[
    "node-lifecycle-controller",
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "disruption-controller",
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "taint-eviction-controller",
];

/// How to start a [`ControlPlane`].
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// The address the API server binds and advertises: 127.0.0.1 by default; a real node's
    /// pods need one they can route to (the `kubernetes` Service points there).
    pub address: Ipv4Addr,
    /// Run kube-scheduler and [`NODE_CONTROLLERS`] too, for a real [`Node`].
    pub real_node: bool,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self { address: Ipv4Addr::LOCALHOST, real_node: false }
    }
}

const ETCD_TIMEOUT: Duration = Duration::from_secs(30);
const API_SERVER_TIMEOUT: Duration = Duration::from_secs(90);
const CONTROLLER_MANAGER_TIMEOUT: Duration = Duration::from_secs(60);

/// A running control plane; every server is stopped (and the work directory removed) on drop.
pub struct ControlPlane {
    // Fields drop in order: controllers first, the data last.
    scheduler: Option<Server>,
    controller_manager: Server,
    api_server: Server,
    etcd: Server,
    kubectl: PathBuf,
    server_url: String,
    kubeconfig: PathBuf,
    startup: Duration,
    dir: TempDir,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until the API
    /// server is ready and the controllers run. Blocks for a few seconds.
    ///
    /// Also makes ring the process's rustls provider (unless one is set), so that every
    /// client in a test process uses the same one.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(ControlPlaneOptions::default())
    }

    /// [`ControlPlane::start`] with options.
    pub fn start_with(options: ControlPlaneOptions) -> Result<Self, Error> {
        let started = Instant::now();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let etcd_bin = tool("etcd")?;
        let api_server_bin = tool("kube-apiserver")?;
        let controller_manager_bin = tool("kube-controller-manager")?;
        let kubectl = tool("kubectl")?;
        let dir = crate::work_dir("kube")?;
        let root = dir.path().to_path_buf();

        let admin = TokenUser::new("exrscan-test-admin", &["system:masters"])?;
        let controllers = TokenUser::new("system:kube-controller-manager", &["system:masters"])?;
        credentials::write_token_file(&root.join("tokens.csv"), &[admin.clone(), controllers.clone()])?;
        let (sa_private, sa_public) = credentials::service_account_key(&root)?;

        let etcd_port = free_port()?;
        let etcd = start_etcd(&etcd_bin, &root, etcd_port)?;

        let port = free_port()?;
        let address = options.address;
        let server_url = format!("https://{address}:{port}");
        let cert_dir = root.join("api-server-certs");
        let ca = cert_dir.join("apiserver.crt");
        let kubeconfig = root.join("admin.kubeconfig");
        write_kubeconfig(&kubeconfig, &server_url, &ca, &admin.token)?;
        let mut api_server = Server::spawn(
            "kube-apiserver",
            command(
                &api_server_bin,
                [
                    format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                    format!("--bind-address={address}"),
                    format!("--advertise-address={address}"),
                    // `kubectl logs` reaches kubelets by their Node's InternalIP (no DNS here).
                    "--kubelet-preferred-address-types=InternalIP".into(),
                    format!("--secure-port={port}"),
                    format!("--cert-dir={}", cert_dir.display()),
                    format!("--token-auth-file={}", root.join("tokens.csv").display()),
                    "--authorization-mode=RBAC".into(),
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                    format!("--service-account-key-file={}", sa_public.display()),
                    format!("--service-account-signing-key-file={}", sa_private.display()),
                    "--service-cluster-ip-range=10.96.0.0/16".into(),
                    "--allow-privileged=true".into(),
                    "--profiling=false".into(),
                ],
            ),
            &root.join("kube-apiserver.log"),
        )?;
        let addr = SocketAddr::from((address, port));
        api_server.wait_for_port(addr, API_SERVER_TIMEOUT)?;
        api_server.wait_until(API_SERVER_TIMEOUT, || {
            kubectl_output(&kubectl, &kubeconfig, &["get", "--raw", "/readyz"]).is_some_and(|o| o.status.success())
        })?;

        let controller_kubeconfig = root.join("controller-manager.kubeconfig");
        write_kubeconfig(&controller_kubeconfig, &server_url, &ca, &controllers.token)?;
        let mut controller_names = CONTROLLERS.to_vec();
        if options.real_node {
            controller_names.extend_from_slice(NODE_CONTROLLERS);
        }
        let mut controller_manager = Server::spawn(
            "kube-controller-manager",
            command(
                &controller_manager_bin,
                [
                    format!("--kubeconfig={}", controller_kubeconfig.display()),
                    "--leader-elect=false".into(),
                    "--secure-port=0".into(),
                    format!("--controllers={}", controller_names.join(",")),
                    format!("--service-account-private-key-file={}", sa_private.display()),
                    format!("--root-ca-file={}", ca.display()),
                    "--use-service-account-credentials=false".into(),
                    "--profiling=false".into(),
                ],
            ),
            &root.join("kube-controller-manager.log"),
        )?;
        // The service-account controller creating `default/default` shows the controllers run.
        controller_manager.wait_until(CONTROLLER_MANAGER_TIMEOUT, || {
            kubectl_output(
                &kubectl,
                &kubeconfig,
                &["get", "serviceaccount", "default", "--namespace=default", "-o", "name"],
            )
            .is_some_and(|o| o.status.success())
        })?;

        let scheduler = if options.real_node {
            let args = [
                format!("--kubeconfig={}", controller_kubeconfig.display()),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--profiling=false".into(),
            ];
            Some(Server::spawn(
                "kube-scheduler",
                command(&tool("kube-scheduler")?, args),
                &root.join("kube-scheduler.log"),
            )?)
        } else {
            None
        };

        Ok(Self {
            scheduler,
            controller_manager,
            api_server,
            etcd,
            kubectl,
            server_url,
            kubeconfig,
            startup: started.elapsed(),
            dir,
        })
    }

    /// The admin kubeconfig (token in `system:masters`, CA of the self-signed serving certificate).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL (`https://127.0.0.1:<port>`, or at [`ControlPlaneOptions::address`]).
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// How long [`ControlPlane::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The work directory (server logs, certificates, node agents' directories).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client with the admin kubeconfig.
    pub async fn client(&self) -> Result<::kube::Client, Error> {
        let fail =
            |reason: String| Error::Start { what: "Kubernetes client for the test control plane".into(), reason };
        let kubeconfig = ::kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| fail(e.to_string()))?;
        let config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| fail(e.to_string()))?;
        ::kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
    }

    /// `kubectl --kubeconfig <admin kubeconfig>`, ready for more arguments.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(&self.kubectl);
        command.arg(format!("--kubeconfig={}", self.kubeconfig.display()));
        command
    }

    /// The last lines of each server's log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        [Some(&self.etcd), Some(&self.api_server), Some(&self.controller_manager), self.scheduler.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| format!("--- {}\n{}", s.log_path().display(), s.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn start_etcd(bin: &Path, root: &Path, client_port: u16) -> Result<Server, Error> {
    let peer_port = free_port()?;
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = Server::spawn(
        "etcd",
        command(
            bin,
            [
                "--name=default".into(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
        ),
        &root.join("etcd.log"),
    )?;
    etcd.wait_for_port(SocketAddr::from(([127, 0, 0, 1], client_port)), ETCD_TIMEOUT)?;
    Ok(etcd)
}

fn command(bin: &Path, args: impl IntoIterator<Item = String>) -> Command {
    let mut command = Command::new(bin);
    command.args(args);
    command
}

fn kubectl_output(kubectl: &Path, kubeconfig: &Path, args: &[&str]) -> Option<Output> {
    Command::new(kubectl).arg(format!("--kubeconfig={}", kubeconfig.display())).args(args).output().ok()
}

/// A kubeconfig (JSON, which every kubeconfig reader accepts) for `token` at `server`.
fn write_kubeconfig(path: &Path, server: &str, ca: &Path, token: &str) -> Result<(), Error> {
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "exrscan-test", "cluster": { "server": server, "certificate-authority": ca } }],
        "users": [{ "name": "user", "user": { "token": token } }],
        "contexts": [{ "name": "exrscan-test", "context": { "cluster": "exrscan-test", "user": "user", "namespace": "default" } }],
        "current-context": "exrscan-test",
    });
    credentials::write_private(path, kubeconfig.to_string().as_bytes())
}

/// Creates the Secrets `(name, [(key, value)])` in `namespace` from their string data (the
/// tests' credentials and CAs).
pub async fn create_secrets(
    client: &::kube::Client,
    namespace: &str,
    secrets: &[(&str, Vec<(&str, &str)>)],
) -> Result<(), ::kube::Error> {
    use k8s_openapi::api::core::v1::Secret;
    let api: ::kube::Api<Secret> = ::kube::Api::namespaced(client.clone(), namespace);
    for (name, data) in secrets {
        let secret = Secret {
            metadata: ::kube::api::ObjectMeta { name: Some(name.to_string()), ..Default::default() },
            string_data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        };
        api.create(&Default::default(), &secret).await?;
    }
    Ok(())
}
