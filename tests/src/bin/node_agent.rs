//! `exrscan-node-agent`: a stand-in kubelet for the test control plane. It registers a
//! Node, binds unscheduled pods to it and runs their containers as local processes; see
//! [`testenv::node_agent`] for exactly what it supports. SIGTERM or SIGINT stops it and
//! every process it started.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use testenv::node_agent::{AgentConfig, Capacity, Executables};

#[derive(Debug, Parser)]
#[command(version, about = "Runs the pods of a test cluster's Node as local processes")]
struct Args {
    /// Kubeconfig of the API server (its current context is used).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Name of the Node to register.
    #[arg(long)]
    node_name: String,
    /// Directory for pod sandboxes, claim directories and pod logs (`<namespace>_<pod>.log`).
    #[arg(long)]
    work_dir: PathBuf,
    /// `NAME=PATH`: a container whose `command[0]` is NAME (or ends in `/NAME`) runs PATH.
    #[arg(long = "map", value_name = "NAME=PATH", value_parser = mapping)]
    maps: Vec<(String, PathBuf)>,
    /// `PATTERN=PATH`: a container without `command` whose image contains PATTERN runs PATH.
    #[arg(long = "image", value_name = "PATTERN=PATH", value_parser = mapping)]
    images: Vec<(String, PathBuf)>,
    /// CPU capacity to advertise (default: this machine's cores).
    #[arg(long)]
    cpu: Option<String>,
    /// Memory capacity to advertise, as a quantity (default: this machine's memory).
    #[arg(long)]
    memory: Option<String>,
    /// Pod capacity to advertise.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Longest grace period, in seconds, a deleted pod's processes get before SIGKILL.
    #[arg(long, default_value_t = 10)]
    max_grace_period: u64,
}

fn mapping(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok((name.to_string(), PathBuf::from(path))),
        _ => Err(format!("expected NAME=PATH, got {text:?}")),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One TLS provider for the whole process, whatever features other crates unify into rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let machine = Capacity::of_this_machine();
    let config = AgentConfig {
        kubeconfig: args.kubeconfig,
        node_name: args.node_name,
        work_dir: args.work_dir,
        executables: Executables { commands: args.maps, images: args.images, search_path: std::env::var_os("PATH") },
        capacity: Capacity {
            cpu: args.cpu.unwrap_or(machine.cpu),
            memory: args.memory.unwrap_or(machine.memory),
            pods: args.pods,
        },
        max_grace_period: Duration::from_secs(args.max_grace_period),
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        testenv::node_agent::run(config, shutdown).await.context("exrscan-node-agent failed")
    })
}
