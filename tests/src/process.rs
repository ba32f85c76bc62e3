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

/// CPU time (user + system) process `pid` has used so far, from `/proc/PID/stat`; `None`
/// once it is gone. Benchmarks take the difference over a run.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|t| *t > 0)?;
    Some(Duration::from_micros(ticks * 1_000_000 / per_second))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn cpu_time_counts_this_process_work() {
        let pid = std::process::id();
        let before = super::cpu_time(pid).expect("this process's /proc entry");
        // Spins until the clock shows 50 ms of work (a loaded machine gives it less than
        // wall time), at most 10 s.
        let spin = Instant::now();
        let mut x = 0u64;
        let mut used = Duration::ZERO;
        while used < Duration::from_millis(50) && spin.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            used = super::cpu_time(pid).expect("still running").saturating_sub(before);
        }
        assert!(used >= Duration::from_millis(50), "{used:?} of CPU after spinning {:?}", spin.elapsed());
        assert_eq!(super::cpu_time(u32::MAX), None, "no such process");
    }
}
