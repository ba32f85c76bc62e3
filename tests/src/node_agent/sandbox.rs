//! A pod's sandbox directory and the mapping of container paths into it.

use std::path::{Path, PathBuf};

use super::Error;

/// The directories of one pod: `<work-dir>/pods/<uid>/{volumes,containers,kubeconfigs,home}`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    /// The sandbox of the pod with `uid` under the agent's work directory (not created yet).
    pub fn new(work_dir: &Path, uid: &str) -> Self {
        Self { root: work_dir.join("pods").join(uid) }
    }

    /// Where a pod-local volume's files go.
    pub fn volume_dir(&self, volume: &str) -> PathBuf {
        self.root.join("volumes").join(volume)
    }

    /// The host file a container's termination-message path maps to.
    pub fn termination_log(&self, container: &str) -> PathBuf {
        self.root.join("containers").join(container).join("termination-log")
    }

    /// The kubeconfig written for containers that mount the token of `volume`.
    pub fn kubeconfig(&self, volume: &str) -> PathBuf {
        self.root.join("kubeconfigs").join(volume)
    }

    /// `HOME` for the pod's processes.
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Creates the sandbox's fixed directories.
    pub fn create(&self) -> Result<(), Error> {
        for dir in ["volumes", "containers", "kubeconfigs", "home"] {
            let path = self.root.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        }
        Ok(())
    }

    /// Removes the sandbox and everything in it (Secrets included).
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.root.display(), error = %e, "could not remove a pod sandbox");
        }
    }
}

/// Container paths (mount paths, the termination-message path) and the host paths they map to.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    /// Sorted longest container path first, so the most specific mapping wins.
    entries: Vec<(String, PathBuf)>,
}

impl PathMap {
    /// Adds a mapping; `container` must be absolute and not `/`.
    pub fn insert(&mut self, container: &str, host: PathBuf) -> Result<(), Error> {
        let container = container.trim_end_matches('/');
        if container.is_empty() || !container.starts_with('/') {
            return Err(Error::Unsupported(format!(
                "container path {container:?} cannot be mapped: it must be absolute and not /"
            )));
        }
        self.entries.retain(|(c, _)| c != container);
        self.entries.push((container.to_string(), host));
        self.entries.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
        Ok(())
    }

    /// The host path for a path inside a mapped container path.
    pub fn host_path(&self, container_path: &str) -> Option<PathBuf> {
        self.entries.iter().find_map(|(c, host)| {
            let rest = container_path.strip_prefix(c.as_str())?;
            if rest.is_empty() { Some(host.clone()) } else { rest.strip_prefix('/').map(|rest| host.join(rest)) }
        })
    }

    /// `text` with every mapped container path that occurs at a path boundary replaced by
    /// its host path.
    pub fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut previous: Option<char> = None;
        while let Some(c) = rest.chars().next() {
            // After a URI scheme's `://` too: `duckdb:///var/lib/x` names the path `/var/lib/x`.
            let at_boundary = previous.is_none_or(|p| !is_name_char(p) && p != '/') || out.ends_with("://");
            let hit = at_boundary
                .then(|| {
                    self.entries.iter().find(|(container, _)| {
                        rest.strip_prefix(container.as_str())
                            .is_some_and(|after| after.chars().next().is_none_or(|n| n == '/' || !is_name_char(n)))
                    })
                })
                .flatten();
            match hit {
                Some((container, host)) => {
                    out.push_str(&host.to_string_lossy());
                    rest = &rest[container.len()..];
                    previous = container.chars().last();
                }
                None => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                    previous = Some(c);
                }
            }
        }
        out
    }
}

/// Characters that can continue a file name, so a mapped path followed by one of them is
/// a different, longer name.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '+' | '~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PathMap {
        let mut map = PathMap::default();
        map.insert("/etc/creds", "/sb/volumes/creds".into()).unwrap();
        map.insert("/etc/creds/extra/", "/sb/volumes/extra".into()).unwrap();
        map.insert("/dev/termination-log", "/sb/containers/main/termination-log".into()).unwrap();
        map
    }

    #[test]
    fn rewrites_whole_arguments_flags_and_scripts() {
        let map = map();
        assert_eq!(map.rewrite("/etc/creds/key"), "/sb/volumes/creds/key");
        assert_eq!(map.rewrite("--key=/etc/creds/key"), "--key=/sb/volumes/creds/key");
        assert_eq!(
            map.rewrite("cat /etc/creds/key > /dev/termination-log; echo ok"),
            "cat /sb/volumes/creds/key > /sb/containers/main/termination-log; echo ok"
        );
        assert_eq!(map.rewrite("'/etc/creds'"), "'/sb/volumes/creds'");
    }

    #[test]
    fn rewrites_paths_of_file_style_uris() {
        let map = map();
        assert_eq!(map.rewrite("duckdb:///etc/creds/c.duckdb"), "duckdb:///sb/volumes/creds/c.duckdb");
        assert_eq!(map.rewrite("file:///etc/creds"), "file:///sb/volumes/creds");
        // `scheme://host/…`: the host is not a container path.
        assert_eq!(map.rewrite("s3://etc/creds/key"), "s3://etc/creds/key");
    }

    #[test]
    fn the_longest_mount_wins() {
        assert_eq!(map().rewrite("/etc/creds/extra/a"), "/sb/volumes/extra/a");
        assert_eq!(map().host_path("/etc/creds/extra/a"), Some("/sb/volumes/extra/a".into()));
    }

    #[test]
    fn leaves_longer_names_and_embedded_paths_alone() {
        let map = map();
        assert_eq!(map.rewrite("/etc/credsx/key"), "/etc/credsx/key");
        assert_eq!(map.rewrite("/opt/etc/creds/key"), "/opt/etc/creds/key");
        assert_eq!(map.rewrite("/dev/termination-log.bak"), "/dev/termination-log.bak");
        assert_eq!(map.rewrite("no paths here"), "no paths here");
        assert_eq!(map.host_path("/etc/credsx"), None);
    }

    #[test]
    fn refuses_relative_and_root_mounts() {
        let mut map = PathMap::default();
        assert!(map.insert("/", "/x".into()).is_err());
        assert!(map.insert("data", "/x".into()).is_err());
    }
}
