//! `exrscan-operator`: the Kubernetes operator of exrscan.
//!
//! - `run`: the controller (leader election, /metrics, /healthz, /readyz, JSON logs).
//! - `crd`: prints the ExrScan CustomResourceDefinition (YAML), or with `--reference` its
//!   Markdown reference.

mod api_requests;
mod backoff;
mod conditions;
mod config;
mod controller;
mod events;
mod fence;
mod http;
mod leader;
mod metrics;
mod names;
mod objects;
mod pace;
mod progress;
mod reconcile;
mod run_id;
mod schedule;
mod telemetry;
mod written;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures::FutureExt;
use kube::runtime::events::{Recorder, Reporter};

use crate::config::RunConfig;
use crate::controller::Scope;
use crate::leader::{LeaderElector, LeaseConfig};
use crate::objects::WorkerDefaults;
use crate::reconcile::Context;

#[derive(Parser)]
#[command(name = "exrscan-operator", version, about = "Runs ExrScans as Kubernetes Jobs of the exrscan worker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the controller.
    Run(Box<RunConfig>),
    /// Prints the ExrScan CRD as YAML.
    Crd {
        /// Print the Markdown reference of the CRD instead.
        #[arg(long)]
        reference: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { reference } => {
            let text = if reference { exrscan_crds::reference::markdown()? } else { exrscan_crds::crd_yaml()? };
            print!("{text}");
            Ok(())
        }
        Command::Run(config) => {
            telemetry::init(config.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(run(*config))
        }
    }
}

async fn run(config: RunConfig) -> anyhow::Result<()> {
    // One TLS provider for the whole process, whatever features other crates unify into rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube_config =
        kube::Config::infer().await.context("connecting to the Kubernetes API (kubeconfig or in-cluster)")?;
    // Watches (long responses) are bounded by kube-runtime's idle timeout; every other
    // request by a read timeout, so that a hung API connection fails instead of blocking.
    let metrics = metrics::Metrics::new();
    let watch_client =
        api_requests::counted_client(kube_config.clone(), metrics.clone()).context("building the Kubernetes client")?;
    let client = api_requests::counted_client(
        config::with_timeouts(kube_config.clone(), config::REQUEST_TIMEOUT),
        metrics.clone(),
    )
    .context("building the Kubernetes client")?;
    let ready = Arc::new(AtomicBool::new(false));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let shutdown = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
        .boxed()
        .shared()
    };

    let health = http::Health { metrics: metrics.clone(), ready: ready.clone() };
    let (addr, server) = http::serve(config.metrics_address, health, shutdown.clone())
        .await
        .with_context(|| format!("binding {}", config.metrics_address))?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    let server = tokio::spawn(server);

    let identity = config.identity();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: names::MANAGER.into(), instance: Some(identity.clone()) },
        ),
        worker: WorkerDefaults {
            image: config.worker_image.clone(),
            progress_interval: config.progress_interval(),
            pod: config.worker_pod_defaults.clone().unwrap_or_default(),
        },
        resync: config.resync(),
        active_requeue: config.active_resync(),
        stuck_pod_grace: config.stuck_pod_grace(),
        metrics: metrics.clone(),
        backoff: Default::default(),
        written: Default::default(),
        pacer: pace::Pacer::new(config.running_interval()),
        rbac_pacer: pace::Pacer::new(config.resync()),
        events_pacer: pace::Pacer::new(config.resync()),
    });
    let scope = if config.namespaces.is_empty() { Scope::All } else { Scope::Namespaces(config.namespaces.clone()) };
    tracing::info!(namespaces = ?config.namespaces, worker_image = %config.worker_image, %identity, "starting");

    let result = if config.leader_election {
        let lease = LeaseConfig {
            name: config.lease_name.clone(),
            namespace: config.lease_namespace(),
            identity,
            duration: std::time::Duration::from_secs(config.lease_duration_seconds.max(1)),
        };
        // A Lease request that hangs must fail well before the Lease could expire.
        let lease_client =
            api_requests::counted_client(config::with_timeouts(kube_config, lease.request_timeout()), metrics.clone())
                .context("building the Kubernetes client")?;
        let mut elector = LeaderElector::new(lease_client, lease);
        let ready_flag = ready.clone();
        let acquired = tokio::select! {
            acquired = elector.acquire(|| ready_flag.store(true, Ordering::Relaxed)) => acquired,
            () = shutdown.clone() => {
                let _ = server.await;
                return Ok(());
            }
        };
        metrics.set_leader(true);
        let controllers = controller::run(watch_client, scope, ctx, config.concurrency, shutdown.clone());
        let outcome = tokio::select! {
            () = controllers => Ok(()),
            () = elector.hold(acquired) => Err(anyhow::anyhow!("lost the leader Lease; exiting so that a fresh process competes again")),
        };
        metrics.set_leader(false);
        if outcome.is_ok()
            && let Err(error) = elector.release().await
        {
            tracing::warn!(%error, "releasing the Lease failed; a standby takes over when it expires");
        }
        outcome
    } else {
        ready.store(true, Ordering::Relaxed);
        controller::run(watch_client, scope, ctx, config.concurrency, shutdown.clone()).await;
        Ok(())
    };
    if result.is_ok() {
        let _ = server.await;
    }
    result
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or SIGINT.
async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the operator");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
