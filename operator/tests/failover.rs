//! Two operator replicas on one Lease: only the leader acts; when it is killed mid-run the
//! standby takes over and the scan completes with exact counts and no duplicate Job; a
//! gracefully stopped leader hands over at once.

mod harness;

use std::time::{Duration, Instant};

use exrscan_crds::Phase;
use harness::{Harness, Operator, scan_yaml};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

async fn holder(h: &Harness) -> Option<String> {
    Api::<Lease>::namespaced(h.client.clone(), "default")
        .get_opt("exrscan-operator")
        .await
        .expect("lease read")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn wait_holder(h: &Harness, who: &str, within: Duration) -> Duration {
    let start = Instant::now();
    while holder(h).await.as_deref() != Some(who) {
        assert!(
            start.elapsed() < within,
            "{who} did not take the Lease within {within:?} (holder {:?})\n{}",
            holder(h).await,
            h.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

fn leader_gauge(op: &Operator) -> Option<String> {
    let (_, text) = op.get("/metrics")?;
    text.lines().find_map(|l| l.strip_prefix("exrscan_operator_leader ").map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_without_duplicating_work() {
    let h = Harness::start(true).await;
    let mut a = h.operator("op-a", &[]);
    wait_holder(&h, "op-a", Duration::from_secs(20)).await;
    let b = h.operator("op-b", &[]);
    // The standby is ready (it answers the API server) but does not lead.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.get("/readyz").map(|(c, _)| c) != Some(200) {
        assert!(Instant::now() < deadline, "standby never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(leader_gauge(&b).as_deref(), Some("0"));
    assert_eq!(leader_gauge(&a).as_deref(), Some("1"));

    // Three shards one after another, 3 s each: long enough to kill the leader mid-run.
    h.behave("long", "progress 5 5; sleep 3; summary 10 10 0 0");
    let (ok, err) = h.apply(&scan_yaml("default", "long", 3, "  parallelism: 1\n"));
    assert!(ok, "{err}");
    h.wait_scan("default", "long", Duration::from_secs(90), "Running", |s| {
        s.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running)
    })
    .await;

    a.server.kill(); // SIGKILL: no release of the Lease
    let took = wait_holder(&h, "op-b", Duration::from_secs(20)).await;
    eprintln!("standby took over {took:?} after the leader was killed (Lease duration 3 s)");

    let done = h
        .wait_scan("default", "long", Duration::from_secs(120), "Succeeded", |s| {
            s.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded)
        })
        .await;
    let st = done.status.expect("status");
    assert_eq!(st.counts.map(|c| (c.processed, c.inserted)), Some((30, 30)));
    let run = st.run.expect("run");
    let mut jobs: Vec<String> =
        h.jobs("default", "long").await.iter().filter_map(|j| j.metadata.name.clone()).collect();
    jobs.sort();
    assert_eq!(jobs, [format!("long-{run}"), format!("long-plan-{run}")], "exactly one planner and one Indexed Job");

    // The killed replica comes back as a standby; the leader stopped gracefully hands over at once.
    let c = h.operator("op-a-restarted", &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(holder(&h).await.as_deref(), Some("op-b"), "a restarted replica waits");
    let mut b = b;
    let stop = Instant::now();
    b.server.stop(Duration::from_secs(10));
    let stopped = stop.elapsed();
    let took = wait_holder(&h, "op-a-restarted", Duration::from_secs(20)).await;
    eprintln!("graceful stop took {stopped:?}; the standby led {took:?} later");
    assert!(took < Duration::from_secs(3), "a released Lease is taken without waiting for expiry ({took:?})");

    // The new leader runs new scans.
    let (ok, err) = h.apply(&scan_yaml("default", "after", 1, ""));
    assert!(ok, "{err}");
    h.wait_scan("default", "after", Duration::from_secs(90), "Succeeded", |s| {
        s.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded)
    })
    .await;
    assert_eq!(leader_gauge(&c).as_deref(), Some("1"));
}
