//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly
//! one reconciles.
//!
//! A replica takes the Lease when it does not exist, names no holder, or has not changed
//! for its `leaseDurationSeconds` as seen by this replica's own clock (so clock skew between
//! nodes does not matter). Every write carries the `resourceVersion` it read, so two replicas
//! racing for the Lease cannot both win. The leader renews every third of the duration and
//! gives up leadership when it cannot renew for two thirds of it, before anyone else may take
//! over. On graceful shutdown it releases the Lease so a standby takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

/// Where and how the Lease is held.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease that is not renewed stays with its holder.
    pub duration: Duration,
}

impl LeaseConfig {
    /// Longest one Lease request may take (connect, send, answer): a third of the duration,
    /// so that a renewal (a read and a write) fails before the Lease could expire.
    pub fn request_timeout(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(200))
    }
}

/// Why leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("Lease {name}: {source}")]
    Kube {
        /// The Lease.
        name: String,
        /// The failure.
        source: kube::Error,
    },
}

/// Takes part in the election for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The holder and resourceVersion last seen, and when they were first seen.
    observed: Option<(Option<String>, String, Instant)>,
}

impl LeaderElector {
    /// An elector for `config`.
    pub fn new(client: Client, config: LeaseConfig) -> LeaderElector {
        LeaderElector { api: Api::namespaced(client, &config.namespace), config, observed: None }
    }

    /// Interval between renewals (and between attempts of a standby).
    pub fn retry_period(&self) -> Duration {
        (self.config.duration / 3).max(Duration::from_millis(200))
    }

    /// Tries once to take or renew the Lease; `Ok(true)` if this replica holds it now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, Error> {
        let now = MicroTime(Timestamp::now());
        let duration_secs = i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await.map_err(|e| self.err(e))? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.err(e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let held_for =
            spec.lease_duration_seconds.map_or(self.config.duration, |s| Duration::from_secs(s.max(0) as u64));
        let mine = holder.as_deref() == Some(self.config.identity.as_str());
        if !mine && holder.is_some() {
            // Someone else's: free only once it stopped changing for its whole duration.
            let unchanged_since = match &self.observed {
                Some((h, v, since)) if *h == holder && *v == version => *since,
                _ => {
                    self.observed = Some((holder.clone(), version.clone(), Instant::now()));
                    Instant::now()
                }
            };
            if unchanged_since.elapsed() < held_for {
                return Ok(false);
            }
        }
        if !mine {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.config.identity.clone());
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(duration_secs);
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Waits until this replica holds the Lease and returns when the winning request was
    /// sent (the Lease counts from then); `on_answer` is called after the first answer of
    /// the API server (the replica is ready, leading or not).
    pub async fn acquire(&mut self, mut on_answer: impl FnMut()) -> Instant {
        loop {
            let sent = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    on_answer();
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                    return sent;
                }
                Ok(false) => on_answer(),
                Err(error) => tracing::warn!(%error, "leader election: attempt failed"),
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Renews the Lease (held since the request sent at `acquired`) until it cannot be
    /// renewed within two thirds of its duration, or another replica took it; returns then.
    /// Leadership is lost when this returns. A renewal counts from when it was sent, and one
    /// that has not answered when the two thirds are up is abandoned: a hung request never
    /// keeps this replica leading while a standby may take the Lease.
    pub async fn hold(&mut self, acquired: Instant) {
        let deadline = self.renew_deadline();
        let mut renewed = acquired;
        loop {
            tokio::time::sleep(self.retry_period()).await;
            let left = deadline.saturating_sub(renewed.elapsed());
            let sent = Instant::now();
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => renewed = sent,
                Ok(Ok(false)) => {
                    tracing::error!(lease = %self.config.name, "leader election: the Lease was taken by another replica");
                    return;
                }
                Ok(Err(error)) => tracing::warn!(%error, "leader election: renewal failed"),
                Err(_) => {
                    tracing::error!(lease = %self.config.name, ?left, "leader election: a renewal did not answer in time");
                    return;
                }
            }
            if renewed.elapsed() >= deadline {
                tracing::error!(lease = %self.config.name, "leader election: could not renew in time");
                return;
            }
        }
    }

    /// How long the leader may go without a renewal before it steps down: two thirds of the
    /// duration, before anyone else may take the Lease.
    pub fn renew_deadline(&self) -> Duration {
        self.config.duration * 2 / 3
    }

    /// Gives the Lease up if this replica holds it, so a standby takes over without waiting.
    pub async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await.map_err(|e| self.err(e))? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    fn err(&self, source: kube::Error) -> Error {
        Error::Kube { name: format!("{}/{}", self.config.namespace, self.config.name), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An API server that accepts connections and never answers.
    async fn silent_server() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        (listener, url)
    }

    #[tokio::test]
    async fn a_hung_renewal_steps_down_before_the_lease_expires() {
        let (listener, url) = silent_server().await;
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A client without timeouts: only the renewal deadline can end the wait.
        let client = Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
        let config = LeaseConfig {
            name: "exrscan-operator".into(),
            namespace: "default".into(),
            identity: "a".into(),
            duration: Duration::from_secs(3),
        };
        let mut elector = LeaderElector::new(client, config);
        let start = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), elector.hold(start)).await.expect("hold returns");
        let stepped_down = start.elapsed();
        assert!(stepped_down >= Duration::from_secs(1), "renewed at 1 s first: {stepped_down:?}");
        assert!(stepped_down < Duration::from_secs(3), "before the Lease could expire: {stepped_down:?}");
        held.abort();
    }
}
