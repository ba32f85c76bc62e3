//! Which local program a container runs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::sandbox::PathMap;

/// The agent's rules for turning a container's `command` or image into a local program.
#[derive(Debug, Clone, Default)]
pub struct Executables {
    /// `--map NAME=PATH`: a `command[0]` equal to NAME, or whose file name is NAME, runs PATH.
    pub commands: Vec<(String, PathBuf)>,
    /// `--image PATTERN=PATH`: a container without `command` whose image reference
    /// contains PATTERN runs PATH (first match wins).
    pub images: Vec<(String, PathBuf)>,
    /// Where bare command names are looked up (the agent's `PATH`).
    pub search_path: Option<OsString>,
}

impl Executables {
    /// The program for a container whose `command[0]` is `name`, or `None` when nothing
    /// matches. `mounts` maps paths inside volume mounts to the sandbox.
    pub fn for_command(&self, name: &str, mounts: &PathMap) -> Option<PathBuf> {
        let file_name = Path::new(name).file_name().and_then(|n| n.to_str()).unwrap_or(name);
        if let Some((_, path)) =
            self.commands.iter().find(|(n, _)| n == name).or_else(|| self.commands.iter().find(|(n, _)| n == file_name))
        {
            return Some(path.clone());
        }
        if let Some(mapped) = mounts.host_path(name).filter(|p| is_executable(p)) {
            return Some(mapped);
        }
        let path = Path::new(name);
        if path.is_absolute() && is_executable(path) {
            return Some(path.to_path_buf());
        }
        let dirs = self.search_path.as_ref()?;
        std::env::split_paths(dirs).map(|dir| dir.join(file_name)).find(|p| is_executable(p))
    }

    /// The program for a container without `command`, by its image reference.
    pub fn for_image(&self, image: &str) -> Option<PathBuf> {
        self.images.iter().find(|(pattern, _)| image.contains(pattern.as_str())).map(|(_, path)| path.clone())
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Executables {
        Executables {
            commands: vec![("exrscan".into(), "/opt/bin/exrscan".into())],
            images: vec![("exrscan-worker".into(), "/opt/bin/exrscan".into())],
            search_path: std::env::var_os("PATH"),
        }
    }

    #[test]
    fn mapped_names_win_by_name_or_file_name() {
        let none = PathMap::default();
        assert_eq!(rules().for_command("exrscan", &none), Some("/opt/bin/exrscan".into()));
        assert_eq!(rules().for_command("/usr/local/bin/exrscan", &none), Some("/opt/bin/exrscan".into()));
    }

    #[test]
    fn other_names_come_from_path_and_unknown_ones_from_nowhere() {
        let none = PathMap::default();
        let sh = rules().for_command("sh", &none).expect("sh on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"));
        assert_eq!(rules().for_command("no-such-program-anywhere", &none), None);
    }

    #[test]
    fn images_match_by_substring() {
        assert_eq!(rules().for_image("ghcr.io/exrscan/exrscan-worker:0.1.0"), Some("/opt/bin/exrscan".into()));
        assert_eq!(rules().for_image("busybox:1.36"), None);
    }
}
