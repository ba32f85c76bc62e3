//! A real node for a [`ControlPlane`] started with `real_node`: containerd 2.x (CRI) with
//! Debian's runc, a CNI bridge with host-local IPAM (Debian's plugins), the kubelet and
//! kube-proxy (iptables) of the control plane's Kubernetes version, with the test's images
//! imported into containerd (no registry is reachable: pods use `IfNotPresent` images).
//!
//! Start it inside the test's network namespace ([`crate::netns::enter`]): the bridge,
//! the pods' addresses and kube-proxy's rules are then the namespace's own. Everything
//! else lives under the control plane's work directory; dropping the node kills its pods'
//! processes, unmounts what the kubelet and containerd mounted there and removes its
//! cgroups.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::ControlPlane;
use crate::netns::NODE_IP;
use crate::paths::{cache_dir, tool};
use crate::process::{Server, free_port};
use crate::{Error, output};

/// The pods' subnet on the node's bridge.
pub const POD_CIDR: &str = "10.244.0.0/24";
/// Debian's CNI plugins (`containernetworking-plugins`).
const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// Where containerd's shims put their sockets (fixed in containerd 2.x).
const SHIM_SOCKETS: &str = "/run/containerd/s";
/// Where the CNI library caches the plugins' results (its default; containerd sets no other).
const CNI_RESULTS: &str = "/var/lib/cni/results";
const CONTAINERD_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a node's killed containers may take to leave their cgroups.
const CGROUP_GRACE: Duration = Duration::from_secs(10);

/// How to start a [`Node`].
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The Node's name.
    pub name: String,
    /// OCI archives imported into containerd before the kubelet starts (the pause image
    /// of `tests/env/build-servers.sh` is always imported and is the sandbox image).
    pub images: Vec<PathBuf>,
}

impl NodeConfig {
    /// A node named `name` with only the pause image.
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), images: Vec::new() }
    }

    /// Also imports the OCI archive `path`.
    pub fn image(mut self, path: impl Into<PathBuf>) -> Self {
        self.images.push(path.into());
        self
    }
}

/// A running node; its pods are killed and its mounts and cgroups removed on drop.
pub struct Node {
    // Fields drop in order: the agents first, containerd, then what they left behind. Each
    // is killed (nothing of theirs outlives the test, so nothing needs a graceful stop).
    kube_proxy: Server,
    kubelet: Server,
    containerd: Server,
    leftovers: Leftovers,
    name: String,
}

/// What a node's processes leave behind, removed on drop: the pods' processes (the kubelet
/// leaves them running, their shims outlive containerd), the mounts under the node's
/// directory and its cgroups. Made before anything is started, so that a node that fails
/// to start is cleaned up too.
struct Leftovers {
    dir: PathBuf,
    cgroup_root: String,
}

impl ControlPlane {
    /// Starts containerd, imports the images, then the kubelet and kube-proxy, and waits
    /// until the Node is Ready.
    pub fn start_node(&self, config: NodeConfig) -> Result<Node, Error> {
        sweep_killed_nodes();
        let dir = self.dir().join(format!("node-{}", config.name));
        let io = |context: String| move |e: std::io::Error| Error::Io { context, source: e };
        for sub in ["cni/net.d", "pod-logs", "kubelet", "kubelet-plugins"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(format!("creating {}", dir.join(sub).display())))?;
        }
        // One cgroup parent per node, in every v1 hierarchy (the kubelet wants it to exist).
        let cgroup_root = format!("/exrscan-{}-{}", std::process::id(), config.name);
        let leftovers = Leftovers { dir: dir.clone(), cgroup_root: cgroup_root.clone() };
        for hierarchy in cgroup_hierarchies() {
            let path = hierarchy.join(cgroup_root.trim_start_matches('/'));
            std::fs::create_dir_all(&path).map_err(io(format!("creating the cgroup {}", path.display())))?;
        }
        let socket = dir.join("containerd.sock");
        let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", cache_dir().join("bin").display());
        let (pause_archive, pause_image) = pause_image()?;

        write(&dir.join("cni/net.d/10-exrscan.conflist"), &cni_config(&dir))?;
        let containerd_config = dir.join("containerd.toml");
        write(&containerd_config, &containerd_config_toml(&dir, &socket, &pause_image))?;
        let mut containerd_cmd = Command::new(tool("containerd")?);
        containerd_cmd.arg(format!("--config={}", containerd_config.display())).env("PATH", &path);
        let mut containerd =
            Server::spawn("containerd", containerd_cmd, &self.dir().join(format!("containerd-{}.log", config.name)))?;
        let ctr = tool("ctr")?;
        let ctr_cmd = |args: &[&str]| {
            let mut cmd = Command::new(&ctr);
            cmd.arg(format!("--address={}", socket.display())).args(["--namespace", "k8s.io"]).args(args);
            cmd
        };
        containerd
            .wait_until(CONTAINERD_TIMEOUT, || ctr_cmd(&["version"]).output().is_ok_and(|o| o.status.success()))?;
        for archive in std::iter::once(&pause_archive).chain(&config.images) {
            output(
                &format!("importing {} into containerd", archive.display()),
                ctr_cmd(&["images", "import", &archive.display().to_string()]),
            )?;
        }

        let kubelet_config = dir.join("kubelet.json");
        write(&kubelet_config, &kubelet_config_json(&dir, &socket, &cgroup_root).to_string())?;
        let mut kubelet_cmd = Command::new(tool("kubelet")?);
        kubelet_cmd
            .arg(format!("--config={}", kubelet_config.display()))
            .arg(format!("--kubeconfig={}", self.kubeconfig_path().display()))
            .arg(format!("--root-dir={}", dir.join("kubelet").display()))
            .arg(format!("--cert-dir={}", dir.join("kubelet-pki").display()))
            .arg(format!("--hostname-override={}", config.name))
            .arg(format!("--node-ip={NODE_IP}"))
            .env("PATH", &path);
        let kubelet = Server::spawn("kubelet", kubelet_cmd, &self.dir().join(format!("kubelet-{}.log", config.name)))?;

        let proxy_healthz = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut proxy_cmd = Command::new(tool("kube-proxy")?);
        proxy_cmd
            .arg(format!("--kubeconfig={}", self.kubeconfig_path().display()))
            .arg(format!("--hostname-override={}", config.name))
            .arg(format!("--cluster-cidr={POD_CIDR}"))
            .args(["--proxy-mode=iptables", "--conntrack-max-per-core=0"])
            .arg(format!("--metrics-bind-address=127.0.0.1:{}", free_port()?))
            .arg(format!("--healthz-bind-address={proxy_healthz}"))
            .env("PATH", &path);
        let mut kube_proxy =
            Server::spawn("kube-proxy", proxy_cmd, &self.dir().join(format!("kube-proxy-{}.log", config.name)))?;
        kube_proxy.wait_for_port(proxy_healthz, READY_TIMEOUT)?;

        let mut node = Node { kube_proxy, kubelet, containerd, leftovers, name: config.name };
        let ready = r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#;
        let name = node.name.clone();
        node.kubelet.wait_until(READY_TIMEOUT, || {
            self.kubectl()
                .args(["get", "node", &name, "-o", ready])
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout == b"True")
        })?;
        Ok(node)
    }
}

impl Node {
    /// The node's directory (containerd's root and state, the kubelet's root, pod logs).
    pub fn dir(&self) -> &Path {
        &self.leftovers.dir
    }

    /// Kills (SIGKILL) the main process of the container `id` (a Pod's
    /// `containerStatuses[].containerID` without its `containerd://`) through containerd,
    /// as an OOM kill or a crash would.
    pub fn kill_container(&self, id: &str) -> Result<(), Error> {
        let mut cmd = Command::new(tool("ctr")?);
        cmd.arg(format!("--address={}", self.dir().join("containerd.sock").display())).args([
            "--namespace",
            "k8s.io",
            "tasks",
            "kill",
            "--signal",
            "SIGKILL",
            id,
        ]);
        output(&format!("killing the container {id}"), cmd).map(drop)
    }

    /// The last lines of the kubelet's, containerd's and kube-proxy's logs.
    pub fn log_tails(&self, lines: usize) -> String {
        [&self.kubelet, &self.containerd, &self.kube_proxy]
            .iter()
            .map(|s| format!("--- {}\n{}", s.log_path().display(), s.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let cgroups: Vec<PathBuf> = cgroup_hierarchies()
            .into_iter()
            .map(|hierarchy| hierarchy.join(self.cgroup_root.trim_start_matches('/')))
            .collect();
        for pid in cgroups.iter().flat_map(|cgroup| processes_under(cgroup)) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let socket = self.dir.join("containerd.sock");
        for pid in shims(&socket) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(500));
        // What killed shims leave outside the node's directory: their sockets (named by a
        // hash of containerd's socket, namespace and id) and the CNI plugins' cached results.
        let tasks = self.dir.join("containerd/state/io.containerd.runtime.v2.task/k8s.io");
        let ids: Vec<String> = std::fs::read_dir(tasks)
            .map(|entries| entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let cni_results: Vec<PathBuf> = std::fs::read_dir(CNI_RESULTS)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        for id in &ids {
            use sha2::Digest;
            let hash = sha2::Sha256::digest(socket.join("k8s.io").join(id).as_os_str().as_encoded_bytes());
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            let _ = std::fs::remove_file(Path::new(SHIM_SOCKETS).join(hex));
            let cached = cni_results.iter().filter(|p| p.to_string_lossy().contains(&format!("-{id}-")));
            for path in cached {
                let _ = std::fs::remove_file(path);
            }
        }
        unmount_under(&self.dir);
        // A killed process leaves its cgroup only once it is reaped.
        let deadline = std::time::Instant::now() + CGROUP_GRACE;
        for cgroup in &cgroups {
            remove_cgroup_tree(cgroup);
            while cgroup.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                remove_cgroup_tree(cgroup);
            }
        }
    }
}

/// Cleans up after the nodes of test processes that were killed (Ctrl-C, a timeout) before
/// they could drop their node: containers still running under the node's cgroups, shims,
/// mounts. Such a node's cgroup is named after a dead process (`/exrscan-<pid>-<node>`);
/// its work directory goes too. Directories kept with `EXRSCAN_KEEP_TEST_DIRS` by a test
/// that ended normally have no cgroups left and stay.
fn sweep_killed_nodes() {
    let base = std::env::temp_dir().join("exrscan-tests");
    let hierarchies = cgroup_hierarchies();
    let node_dirs = std::fs::read_dir(&base).into_iter().flatten().flatten().flat_map(|work| {
        std::fs::read_dir(work.path()).into_iter().flatten().flatten().map(move |node| (work.path(), node.path()))
    });
    for (work_dir, node_dir) in node_dirs {
        let Ok(config) = std::fs::read_to_string(node_dir.join("kubelet.json")) else { continue };
        let Some(cgroup_root) = serde_json::from_str::<serde_json::Value>(&config)
            .ok()
            .and_then(|c| c["cgroupRoot"].as_str().map(str::to_string))
        else {
            continue;
        };
        let pid = cgroup_root.trim_start_matches("/exrscan-").split('-').next().unwrap_or_default().to_string();
        let alive = Path::new("/proc").join(&pid).exists();
        let left = hierarchies.iter().any(|h| h.join(cgroup_root.trim_start_matches('/')).exists());
        if !alive && left {
            drop(Leftovers { dir: node_dir, cgroup_root });
            let _ = std::fs::remove_dir_all(&work_dir);
        }
    }
}

/// The pause image's OCI archive and name, made by `tests/env/build-servers.sh`.
fn pause_image() -> Result<(PathBuf, String), Error> {
    let dir = cache_dir().join("images");
    let missing = || Error::Missing {
        what: format!("the pause image in {}", dir.display()),
        hint: "run `make test` (or tests/env/setup.sh) to build it".into(),
    };
    let name = std::fs::read_to_string(dir.join("pause.name")).map_err(|_| missing())?;
    let archive = dir.join("pause.tar");
    if !archive.is_file() {
        return Err(missing());
    }
    Ok((archive, name.trim().to_string()))
}

fn cni_config(dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "exrscan",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "exrscan0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": dir.join("cni/ipam"),
                    "ranges": [[{ "subnet": POD_CIDR }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    })
    .to_string()
}

/// containerd's configuration (version 3): its own root, state and socket; the CRI plugin
/// with the local pause image, root's `oom_score_adj` left alone (root here may not lower
/// it), network namespaces pinned under its state directory, runc's state under the node's
/// directory too, and the node's CNI config.
fn containerd_config_toml(dir: &Path, socket: &Path, pause: &str) -> String {
    let d = |sub: &str| dir.join(sub).display().to_string();
    format!(
        r#"version = 3
root = '{root}'
state = '{state}'
[grpc]
  address = '{socket}'
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{pause}'
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      Root = '{runc}'
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{CNI_BIN_DIR}']
    conf_dir = '{cni}'
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        socket = socket.display(),
        cni = d("cni/net.d"),
        runc = d("runc"),
    )
}

/// The KubeletConfiguration: cgroup v1 allowed (`failCgroupV1: false`) with the cgroupfs
/// driver under the node's own cgroup parent; no eviction or image garbage collection on
/// this machine's nearly full disk (the imported images cannot be pulled again); anonymous
/// requests allowed (`kubectl logs` through the API server; the kubelet is reachable only
/// inside the test's namespace).
fn kubelet_config_json(dir: &Path, socket: &Path, cgroup_root: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "containerRuntimeEndpoint": format!("unix://{}", socket.display()),
        "address": NODE_IP.to_string(),
        "healthzBindAddress": "127.0.0.1",
        "readOnlyPort": 0,
        "authentication": { "anonymous": { "enabled": true }, "webhook": { "enabled": false } },
        "authorization": { "mode": "AlwaysAllow" },
        "clusterDomain": "cluster.local",
        "resolvConf": "",
        "failSwapOn": false,
        "podLogsDir": dir.join("pod-logs"),
        "volumePluginDir": dir.join("kubelet-plugins"),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "shutdownGracePeriod": "0s",
    })
}

fn write(path: &Path, content: &str) -> Result<(), Error> {
    std::fs::write(path, content).map_err(|e| Error::Io { context: format!("writing {}", path.display()), source: e })
}

/// The processes in a cgroup and its children (the pods' containers).
fn processes_under(cgroup: &Path) -> Vec<rustix::process::Pid> {
    let mut pids: Vec<rustix::process::Pid> = std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| rustix::process::Pid::from_raw(line.trim().parse().ok()?))
        .collect();
    if let Ok(entries) = std::fs::read_dir(cgroup) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(processes_under(&entry.path()));
            }
        }
    }
    pids
}

/// The containerd shims serving the containerd at `socket` (`… -address SOCKET`).
fn shims(socket: &Path) -> Vec<rustix::process::Pid> {
    let address = socket.display().to_string();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                    let shim = args.first().is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
                    let ours = args.windows(2).any(|w| w[0] == b"-address" && w[1] == address.as_bytes());
                    if !(shim && ours) {
                        return None;
                    }
                    rustix::process::Pid::from_raw(e.file_name().to_str()?.parse().ok()?)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup hierarchies (one mount per v1 controller set, and the hybrid layout's
/// `unified` v2 tree, where runc puts the containers too).
fn cgroup_hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.join("cgroup.procs").exists()).collect())
        .unwrap_or_default()
}

/// Removes a cgroup and its children, deepest first (each must be empty of processes).
fn remove_cgroup_tree(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(path);
}

/// Lazily unmounts every mount point under `dir`, deepest first (the kubelet's bind mount
/// of its root, volumes, containerd's root filesystems, pinned network namespaces).
fn unmount_under(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["--lazy", point]).output();
    }
}
