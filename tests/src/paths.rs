//! Where the test environment finds things: the cache of built servers, the Python
//! venv, and the workspace's own binaries.

use std::path::{Path, PathBuf};

use crate::Error;

/// The cache outside the clone (`$EXRSCAN_CACHE`, default `~/.cache/exrscan`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EXRSCAN_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| "/tmp".into());
    home.join(".cache/exrscan")
}

/// A program the set-up script builds or installs, looked up in this order:
/// `$KUBEBUILDER_ASSETS` (control-plane binaries only, the envtest convention),
/// the cache's `bin/`, then `PATH`.
pub fn tool(name: &str) -> Result<PathBuf, Error> {
    let control_plane = matches!(name, "etcd" | "kube-apiserver" | "kube-controller-manager" | "kubectl");
    let mut candidates = Vec::new();
    if control_plane && let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
        candidates.push(PathBuf::from(dir).join(name));
    }
    candidates.push(cache_dir().join("bin").join(name));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    candidates.into_iter().find(|p| is_executable(p)).ok_or_else(|| Error::Missing {
        what: name.to_string(),
        hint: "run `make test` (or tests/env/setup.sh) to build and install the test environment".into(),
    })
}

/// The Python interpreter of the test venv (`$EXRSCAN_PYTHON`, default the cache's venv).
pub fn python() -> Result<PathBuf, Error> {
    let path =
        std::env::var_os("EXRSCAN_PYTHON").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("venv/bin/python"));
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(Error::Missing {
            what: format!("Python venv at {}", path.display()),
            hint: "run `make test` (or tests/env/setup.sh) to create it".into(),
        })
    }
}

/// A binary of this workspace (`exrscan`, `exrscan-node-agent`, …) in the same cargo
/// target directory as the running test (`target/<profile>/deps/<test>` → `target/<profile>/<name>`),
/// or in `EXRSCAN_BIN_DIR` when that is set (benchmarks of a release build:
/// `EXRSCAN_BIN_DIR=…/target/release`).
pub fn workspace_bin(name: &str) -> Result<PathBuf, Error> {
    let profile_dir = match std::env::var_os("EXRSCAN_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| Error::Io { context: "locating the test binary".into(), source: e })?;
            exe.parent()
                .and_then(|deps| if deps.ends_with("deps") { deps.parent() } else { Some(deps) })
                .map(Path::to_path_buf)
                .unwrap_or_default()
        }
    };
    let path = profile_dir.join(name);
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(Error::Missing {
            what: format!("workspace binary {}", path.display()),
            hint: "build it with `cargo build --workspace --bins` (`make test` does)".into(),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
