//! The control plane's secrets: bearer tokens (in the API server's static token file) and
//! the service-account signing key.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// A user of the static token file.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub name: String,
    pub groups: Vec<String>,
    pub token: String,
}

impl TokenUser {
    /// A user with a fresh random token.
    pub fn new(name: &str, groups: &[&str]) -> Result<Self, Error> {
        Ok(Self { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), token: random_token()? })
    }
}

/// Writes `users` as the API server's `--token-auth-file` (CSV: token,user,uid,"groups").
pub fn write_token_file(path: &Path, users: &[TokenUser]) -> Result<(), Error> {
    let mut csv = String::new();
    for user in users {
        let _ = writeln!(csv, "{},{},{},\"{}\"", user.token, user.name, user.name, user.groups.join(","));
    }
    write_private(path, csv.as_bytes())
}

/// An RSA key pair for signing service-account tokens, made with `openssl`:
/// `(private key, public key)` paths in `dir`.
pub fn service_account_key(dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let private = dir.join("service-account.key");
    let public = dir.join("service-account.pub");
    run_openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"], &private)?;
    run_openssl(&["pkey", "-pubout", "-in", &private.to_string_lossy(), "-out"], &public)?;
    Ok((private, public))
}

fn run_openssl(args: &[&str], out: &Path) -> Result<(), Error> {
    let output = Command::new("openssl").args(args).arg(out).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing {
            what: "openssl".into(),
            hint: "install it (Debian: apt-get install openssl); it makes the control plane's service-account key"
                .into(),
        },
        _ => Error::Io { context: "running openssl".into(), source: e },
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Start {
            what: "openssl (service-account key)".into(),
            reason: format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()),
        })
    }
}

/// 32 random hex digits from the kernel's generator.
fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Io { context: "reading /dev/urandom".into(), source: e })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, content: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(content))
        .map_err(|e| Error::Io { context: format!("writing {}", path.display()), source: e })
}
