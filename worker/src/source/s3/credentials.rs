//! S3 credentials from a mounted Secret directory, re-read when its files change.
//!
//! Kubernetes updates a mounted Secret in place (it swaps a symbolic link to a new directory
//! of files), so a rotated session token reaches a running pod without a restart. The
//! provider looks at the files' identity (device, inode, size, modification time) at most
//! once per [`CHECK_EVERY`] and reads them again only when that changed.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::CredentialProvider;
use object_store::aws::AwsCredential;

/// Longest time between two looks at the files.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The files of each credential, in order of preference.
const ACCESS_KEY_ID: [&str; 2] = ["access_key_id", "AWS_ACCESS_KEY_ID"];
const SECRET_ACCESS_KEY: [&str; 2] = ["secret_access_key", "AWS_SECRET_ACCESS_KEY"];
const SESSION_TOKEN: [&str; 2] = ["session_token", "AWS_SESSION_TOKEN"];

/// The credential files could not be read. Never holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("S3 credentials in {dir}: {reason}")]
pub struct CredentialsError {
    /// The Secret's directory.
    pub dir: String,
    /// What is wrong (a file unreadable, a key missing).
    pub reason: String,
}

/// A static key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

fn read_trimmed(dir: &Path, names: [&str; 2]) -> Result<Option<String>, CredentialsError> {
    for name in names {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => return Ok(Some(text.trim().to_string())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CredentialsError { dir: dir.display().to_string(), reason: format!("{name}: {e}") });
            }
        }
    }
    Ok(None)
}

impl S3Credentials {
    /// Reads a mounted Secret: files `access_key_id` (or `AWS_ACCESS_KEY_ID`),
    /// `secret_access_key` (or `AWS_SECRET_ACCESS_KEY`) and optionally `session_token`
    /// (or `AWS_SESSION_TOKEN`) in `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, CredentialsError> {
        let id = read_trimmed(dir, ACCESS_KEY_ID)?;
        let secret = read_trimmed(dir, SECRET_ACCESS_KEY)?;
        let session_token = read_trimmed(dir, SESSION_TOKEN)?;
        match (id, secret) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Ok(Self { access_key_id, secret_access_key, session_token })
            }
            _ => Err(CredentialsError {
                dir: dir.display().to_string(),
                reason: "needs files access_key_id and secret_access_key".into(),
            }),
        }
    }
}

/// What identifies one version of a file: device, inode, size, modification time.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

/// The stamps of every credential file (following the Secret's symbolic links).
fn stamps(dir: &Path) -> Vec<Stamp> {
    [ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN]
        .into_iter()
        .flatten()
        .map(|name| {
            let meta = std::fs::metadata(dir.join(name)).ok()?;
            Some((meta.dev(), meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec()))
        })
        .collect()
}

#[derive(Debug)]
struct Current {
    credential: Arc<AwsCredential>,
    stamps: Vec<Stamp>,
    checked: Instant,
}

/// An `object_store` credential provider over a mounted Secret directory, re-reading the
/// files when they change (see the module documentation).
#[derive(Debug)]
pub struct SecretDirCredentials {
    dir: PathBuf,
    current: Mutex<Current>,
}

fn aws(credentials: S3Credentials) -> Arc<AwsCredential> {
    Arc::new(AwsCredential {
        key_id: credentials.access_key_id,
        secret_key: credentials.secret_access_key,
        token: credentials.session_token,
    })
}

impl SecretDirCredentials {
    /// Reads the credentials in `dir` (an error if they are incomplete).
    pub fn open(dir: &Path) -> Result<Self, CredentialsError> {
        let stamps = stamps(dir);
        let credential = aws(S3Credentials::from_dir(dir)?);
        Ok(Self {
            dir: dir.to_path_buf(),
            current: Mutex::new(Current { credential, stamps, checked: Instant::now() }),
        })
    }

    /// The credentials, read again if the files changed since the last look (at most one
    /// look per [`CHECK_EVERY`]). A failed re-read (files half-swapped) keeps the previous
    /// credentials and is tried again at the next look.
    pub fn current(&self) -> Arc<AwsCredential> {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.checked.elapsed() < CHECK_EVERY {
            return Arc::clone(&current.credential);
        }
        current.checked = Instant::now();
        let stamps = stamps(&self.dir);
        if stamps != current.stamps {
            match S3Credentials::from_dir(&self.dir) {
                Ok(credentials) => {
                    current.credential = aws(credentials);
                    current.stamps = stamps;
                    tracing::info!(dir = %self.dir.display(), "S3 credentials changed; using the new ones");
                }
                Err(error) => tracing::warn!(%error, "S3 credentials changed but cannot be read; keeping the old ones"),
            }
        }
        Arc::clone(&current.credential)
    }
}

#[async_trait::async_trait]
impl CredentialProvider for SecretDirCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        Ok(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_credentials_from_a_mounted_secret() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("AWS_ACCESS_KEY_ID"), "id\n")?;
        assert!(S3Credentials::from_dir(dir.path()).is_err(), "secret missing");
        std::fs::write(dir.path().join("secret_access_key"), "secret")?;
        let credentials = S3Credentials::from_dir(dir.path())?;
        assert_eq!(credentials.access_key_id, "id");
        assert_eq!(credentials.secret_access_key, "secret");
        assert_eq!(credentials.session_token, None);
        assert!(!format!("{credentials:?}").contains("secret\""), "never printed");
        Ok(())
    }

    /// Writes the files as the kubelet does: a new directory, then the `..data` link swapped.
    fn publish(dir: &Path, version: u32, files: &[(&str, &str)]) -> std::io::Result<()> {
        let data = dir.join(format!("..v{version}"));
        std::fs::create_dir(&data)?;
        for (name, value) in files {
            std::fs::write(data.join(name), value)?;
            let link = dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), &link)?;
            }
        }
        let next = dir.join("..data_tmp");
        std::os::unix::fs::symlink(&data, &next)?;
        std::fs::rename(&next, dir.join("..data"))
    }

    #[test]
    fn a_rotated_secret_is_picked_up_without_a_restart() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let files =
            |token: &'static str| [("access_key_id", "id"), ("secret_access_key", "s1"), ("session_token", token)];
        publish(dir.path(), 1, &files("token-1"))?;
        let provider = SecretDirCredentials::open(dir.path())?;
        assert_eq!(provider.current().token.as_deref(), Some("token-1"));

        publish(dir.path(), 2, &files("token-2"))?;
        assert_eq!(provider.current().token.as_deref(), Some("token-1"), "not looked at again within a second");
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
        let credential = provider.current();
        assert_eq!(credential.token.as_deref(), Some("token-2"), "the rotated token");
        assert_eq!(credential.secret_key, "s1");

        // A rotation that leaves the Secret incomplete keeps the last good credentials.
        publish(dir.path(), 3, &[("access_key_id", "id")])?;
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
        assert_eq!(provider.current().token.as_deref(), Some("token-2"));
        Ok(())
    }
}
