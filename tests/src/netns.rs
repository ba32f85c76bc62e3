//! A network namespace of the test's own, for a cluster with a real node: the API server,
//! the kubelet, MinIO, the Flight SQL server and the pods' bridge all get addresses in it,
//! so that no test traffic leaves it (this machine's network rule: loopback or namespaces
//! the tests create themselves).
//!
//! [`enter`] moves the **calling thread** into a new namespace; everything it starts
//! afterwards (servers, and threads it spawns) is inside. Call it first in a plain `#[test]`
//! and build the async runtime after it, so that the runtime's threads are inside too.

use std::net::Ipv4Addr;
use std::process::Command;

use crate::Error;

/// The address of the node in the namespace (on its loopback device): the API server,
/// the kubelet, MinIO and the Flight SQL server listen there, and pods route to it through
/// their bridge's gateway.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);

/// Moves the calling thread into a new network namespace with loopback up, [`NODE_IP`] on
/// it, and IPv4 forwarding on (pods → node, Services).
pub fn enter() -> Result<(), Error> {
    // SAFETY: unsharing the network namespace only (no file-descriptor table or memory
    // sharing changes), which affects this thread and what it starts.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }.map_err(|e| Error::Start {
        what: "a private network namespace".into(),
        reason: format!("unshare(CLONE_NEWNET): {e} (the real node needs root)"),
    })?;
    ip(&["link", "set", "lo", "up"])?;
    ip(&["addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"])?;
    // /proc/sys/net is that of the thread that opens it.
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| Error::Io { context: "enabling IPv4 forwarding in the test namespace".into(), source: e })
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    crate::output(&format!("ip {}", args.join(" ")), cmd).map(drop)
}
