//! The exrscan images for a real node: `operator/Dockerfile` and `worker/Dockerfile` built
//! by `tests/env/build-images.sh` (buildah, over the base made from Debian's packages)
//! around the binaries cargo built for the running test, as OCI archives for
//! [`crate::kube::NodeConfig::image`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::workspace_bin;
use crate::{Error, output};

/// The repository of both images (the chart's default).
pub const REPOSITORY: &str = "ghcr.io/exrscan";
/// The tag of the test images.
pub const TAG: &str = "test";

/// The two images, built (or found up to date) for this test run.
#[derive(Debug, Clone)]
pub struct TestImages {
    /// `ghcr.io/exrscan/exrscan-operator:test`.
    pub operator: PathBuf,
    /// `ghcr.io/exrscan/exrscan:test`.
    pub worker: PathBuf,
}

impl TestImages {
    /// Builds both images from the `exrscan` and `exrscan-operator` binaries next to the
    /// running test into `<target>/<profile>/images/` (skipped when the binaries and
    /// Dockerfiles have not changed).
    pub fn build() -> Result<Self, Error> {
        let binaries = workspace_bin("exrscan-operator")?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| Error::Missing { what: "the cargo target directory".into(), hint: String::new() })?;
        workspace_bin("exrscan")?;
        // Beside the binaries: each target directory (each checkout) has its own archives.
        let out = binaries.join("images");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("env/build-images.sh");
        let mut cmd = Command::new(script);
        cmd.arg(&binaries).arg(TAG).arg(&out).env("IMAGE_REPOSITORY", REPOSITORY);
        output("tests/env/build-images.sh", cmd)?;
        Ok(Self { operator: out.join("exrscan-operator.tar"), worker: out.join("exrscan.tar") })
    }
}
