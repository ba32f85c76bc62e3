//! A server process that belongs to a test: started with its output in a log file,
//! waited for until it is ready, and killed when dropped.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// A running child process, killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, Error> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::Io { context: format!("opening {}", log.display()), source: e })?;
        let err = out.try_clone().map_err(|e| Error::Io { context: "cloning log handle".into(), source: e })?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::Start { what: name.to_string(), reason: format!("{e} ({command:?})") })?;
        Ok(Self { name: name.to_string(), child, log: log.to_path_buf() })
    }

    /// Waits until `ready` returns true, failing early (with the log's tail) if the process exits.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(format!("exited with {status} before it was ready")));
            }
            if Instant::now() > deadline {
                return Err(self.failure(format!("not ready after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until something accepts TCP connections on `addr`.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), Error> {
        self.wait_until(timeout, || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
    }

    /// The start-up error for this server, with the last lines of its log.
    pub fn failure(&self, reason: String) -> Error {
        Error::Start {
            what: self.name.clone(),
            reason: format!("{reason}; log {}:\n{}", self.log.display(), self.log_tail(40)),
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The operating-system process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM), waits up to `grace` for it to exit, then kills it.
    /// For servers that own children of their own and must stop them first.
    pub fn stop(&mut self, grace: Duration) {
        let pid = i32::try_from(self.child.id()).ok().and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid
            && matches!(self.child.try_wait(), Ok(None))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Kills the process and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Io { context: "finding a free port".into(), source: e })?;
    listener.local_addr().map(|a| a.port()).map_err(|e| Error::Io { context: "finding a free port".into(), source: e })
}
