//! One container as a local process: started in its own process group with its output
//! appended to the pod's log, restarted as its restart policy says, stopped with SIGTERM
//! then SIGKILL, and reported as it changes state.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use super::pod_env::Env;
use super::status::{State, Termination};

/// The most of a termination-message file that is reported (the kubelet's limit).
const MAX_MESSAGE_BYTES: u64 = 4096;
/// `FallbackToLogsOnError` reports at most this much of the log's tail …
const MAX_LOG_MESSAGE_BYTES: u64 = 2048;
/// … and at most this many lines.
const MAX_LOG_MESSAGE_LINES: usize = 80;
/// The first and the longest wait before a restart.
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// When a container is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

impl RestartPolicy {
    /// The policy named in a pod spec (`Always` when absent, as the API defaults it).
    pub fn from_spec(policy: Option<&str>) -> Self {
        match policy {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }

    fn restarts_after(self, exit_code: i32) -> bool {
        match self {
            Self::Never => false,
            Self::OnFailure => exit_code != 0,
            Self::Always => true,
        }
    }
}

/// Everything needed to run one container.
#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    /// The program, or why there is none (the container then fails with `StartError`).
    pub program: Result<PathBuf, String>,
    pub args: Vec<String>,
    pub env: Env,
    pub cwd: PathBuf,
    /// The host file the container's termination-message path maps to.
    pub termination_log: PathBuf,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    pub fallback_to_logs: bool,
    /// The pod's log file, shared by its containers.
    pub log: PathBuf,
    pub restart: RestartPolicy,
}

/// A change of one container, sent to its pod.
#[derive(Debug, Clone)]
pub struct Update {
    pub index: usize,
    pub state: State,
    pub last_termination: Option<Termination>,
    pub restart_count: i32,
    pub pid: Option<u32>,
}

/// Runs the container until it is done for good or `stop` carries a grace period, sending
/// every state change to `updates`. The last update is always a `Terminated` state.
pub async fn run(
    index: usize,
    launch: Launch,
    updates: mpsc::Sender<Update>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut report = Update {
        index,
        state: State::Waiting { reason: "ContainerCreating".into(), message: None },
        last_termination: None,
        restart_count: 0,
        pid: None,
    };
    let mut backoff = RESTART_BACKOFF.0;
    loop {
        let started_at = Timestamp::now();
        let mut child = match spawn(&launch) {
            Ok(child) => child,
            Err(reason) => {
                tracing::warn!(container = launch.name, %reason, "container could not start");
                report.state = State::Terminated(Termination {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(reason),
                    started_at: None,
                    finished_at: Timestamp::now(),
                });
                let _ = updates.send(report).await;
                return;
            }
        };
        report.pid = child.id();
        report.state = State::Running { started_at };
        let program = launch.program.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        tracing::info!(container = launch.name, pid = report.pid, program, "container started");
        let _ = updates.send(report.clone()).await;

        let (status, stopping) = tokio::select! {
            status = child.wait() => (status, false),
            grace = stop_requested(&mut stop) => (terminate(&mut child, report.pid, grace).await, true),
        };
        // The container is its whole process group: nothing it started may outlive it.
        signal_group(report.pid, Signal::KILL);
        let termination = termination(&launch, status, started_at);
        tracing::info!(container = launch.name, exit_code = termination.exit_code, "container exited");
        let exit_code = termination.exit_code;
        report.state = State::Terminated(termination.clone());
        if stopping || !launch.restart.restarts_after(exit_code) {
            let _ = updates.send(report).await;
            return;
        }

        report.last_termination = Some(termination.clone());
        report.restart_count += 1;
        report.state = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some(format!("back-off {backoff:?} restarting a failed container")),
        };
        let _ = updates.send(report.clone()).await;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop_requested(&mut stop) => {
                report.state = State::Terminated(termination);
                let _ = updates.send(report).await;
                return;
            }
        }
        backoff = (backoff * 2).min(RESTART_BACKOFF.1);
    }
}

/// Waits until a stop is requested and returns its grace period (zero if the pod is gone).
async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match stop.wait_for(Option::is_some).await {
        Ok(grace) => grace.unwrap_or_default(),
        Err(_) => Duration::ZERO,
    }
}

fn spawn(launch: &Launch) -> Result<Child, String> {
    let program = launch.program.clone()?;
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(|e| format!("opening the pod log {}: {e}", launch.log.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("opening the pod log: {e}"))?;
    std::fs::write(&launch.termination_log, b"")
        .map_err(|e| format!("creating the termination log {}: {e}", launch.termination_log.display()))?;
    Command::new(&program)
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter())
        .current_dir(&launch.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))
}

/// SIGTERM to the process group, SIGKILL after `grace`; returns how the process ended.
async fn terminate(child: &mut Child, pid: Option<u32>, grace: Duration) -> std::io::Result<ExitStatus> {
    signal_group(pid, Signal::TERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(pid, Signal::KILL);
            child.wait().await
        }
    }
}

fn signal_group(pid: Option<u32>, signal: Signal) {
    if let Some(group) = pid.and_then(|p| i32::try_from(p).ok()).and_then(Pid::from_raw) {
        // ESRCH (the group is already gone) is the expected outcome after a clean exit.
        let _ = kill_process_group(group, signal);
    }
}

fn termination(launch: &Launch, status: std::io::Result<ExitStatus>, started_at: Timestamp) -> Termination {
    let (exit_code, signal) = match &status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => (code, None),
            (None, Some(signal)) => (128 + signal, Some(signal)),
            (None, None) => (128, None),
        },
        Err(_) => (128, None),
    };
    let mut message = read_tail(&launch.termination_log, MAX_MESSAGE_BYTES);
    if message.is_empty() && exit_code != 0 && launch.fallback_to_logs {
        message = log_tail(&launch.log);
    }
    if let Err(e) = &status {
        message = format!("waiting for the process failed: {e}");
    }
    Termination {
        exit_code,
        signal,
        reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
        message: (!message.is_empty()).then_some(message),
        started_at: Some(started_at),
        finished_at: Timestamp::now(),
    }
}

/// The last `max_bytes` of a file as text (empty if it cannot be read).
fn read_tail(path: &Path, max_bytes: u64) -> String {
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    read().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// The log's last lines, as `FallbackToLogsOnError` reports them.
fn log_tail(log: &Path) -> String {
    let tail = read_tail(log, MAX_LOG_MESSAGE_BYTES);
    let lines: Vec<&str> = tail.lines().collect();
    lines[lines.len().saturating_sub(MAX_LOG_MESSAGE_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dir: &Path, script: &str, restart: RestartPolicy) -> Launch {
        let mut env = Env::default();
        env.set("PATH", std::env::var("PATH").unwrap_or_default());
        Launch {
            name: "main".into(),
            program: Ok("/bin/sh".into()),
            args: vec!["-c".into(), script.into()],
            env,
            cwd: dir.to_path_buf(),
            termination_log: dir.join("termination-log"),
            fallback_to_logs: true,
            log: dir.join("pod.log"),
            restart,
        }
    }

    async fn run_to_end(launch: Launch, stop_after: Option<Duration>) -> Vec<Update> {
        let (tx, mut rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(None);
        let task = tokio::spawn(run(0, launch, tx, stop_rx));
        if let Some(after) = stop_after {
            tokio::time::sleep(after).await;
            stop_tx.send_replace(Some(Duration::from_millis(300)));
        }
        let mut updates = Vec::new();
        while let Some(update) = rx.recv().await {
            updates.push(update);
        }
        task.await.unwrap();
        updates
    }

    fn terminated(update: &Update) -> &Termination {
        match &update.state {
            State::Terminated(t) => t,
            other => panic!("expected a terminated state, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn reports_exit_code_and_termination_message() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!("echo done > {}; exit 3", dir.path().join("termination-log").display());
        let updates = run_to_end(launch(dir.path(), &script, RestartPolicy::Never), None).await;
        assert!(matches!(updates[0].state, State::Running { .. }));
        let end = terminated(updates.last().unwrap());
        assert_eq!((end.exit_code, end.reason.as_str(), end.message.as_deref()), (3, "Error", Some("done\n")));
    }

    #[tokio::test]
    async fn falls_back_to_the_log_tail_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let updates =
            run_to_end(launch(dir.path(), "echo first; echo oops >&2; exit 1", RestartPolicy::Never), None).await;
        assert_eq!(terminated(updates.last().unwrap()).message.as_deref(), Some("first\noops"));
    }

    #[tokio::test]
    async fn on_failure_restarts_until_success() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran-once");
        let script = format!("if [ -e {m} ]; then exit 0; fi; touch {m}; exit 2", m = marker.display());
        let updates = run_to_end(launch(dir.path(), &script, RestartPolicy::OnFailure), None).await;
        let end = updates.last().unwrap();
        assert_eq!((terminated(end).exit_code, end.restart_count), (0, 1));
        assert_eq!(end.last_termination.as_ref().map(|t| t.exit_code), Some(2));
    }

    #[tokio::test]
    async fn stop_terminates_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        // The grandchild ignores SIGTERM, so only the group SIGKILL after the grace ends it.
        let script = format!("sh -c 'trap \"\" TERM; sleep 30' & echo $! > {}; wait", pid_file.display());
        let updates =
            run_to_end(launch(dir.path(), &script, RestartPolicy::Always), Some(Duration::from_millis(500))).await;
        let end = terminated(updates.last().unwrap());
        assert_eq!((end.exit_code, end.signal), (143, Some(15)), "sh ends by SIGTERM");
        let grandchild: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Gone, or a zombie waiting for whoever reaps orphans here.
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        let alive = stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z') && !rest.is_empty());
        assert!(!alive, "the grandchild {grandchild} survived its container: {stat}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_start_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut missing = launch(dir.path(), "", RestartPolicy::Never);
        missing.program = Err("no program for command \"nope\"".into());
        let updates = run_to_end(missing, None).await;
        let end = terminated(&updates[0]);
        assert_eq!((end.exit_code, end.reason.as_str()), (128, "StartError"));
    }
}
