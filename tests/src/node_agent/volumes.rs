//! A pod's volumes as host directories: files written from Secrets, ConfigMaps, the
//! downward API and service-account tokens; empty directories; host paths; claim directories.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, ServiceAccount, Volume};
use kube::Api;
use kube::api::PostParams;

use super::Error;
use super::lookup::{Entries, Kind, PodObjects};
use super::pod_env::field_value;
use super::sandbox::Sandbox;

/// The default file mode of Secret, ConfigMap, downward-API and projected volumes.
const DEFAULT_MODE: u32 = 0o644;

/// The pod's volumes, by name.
#[derive(Debug, Default)]
pub struct Volumes {
    dirs: HashMap<String, PathBuf>,
    tokens: HashMap<String, PathBuf>,
}

impl Volumes {
    /// The host directory of a volume.
    pub fn dir(&self, volume: &str) -> Option<&Path> {
        self.dirs.get(volume).map(PathBuf::as_path)
    }

    /// The service-account token file inside a volume, if it projects one.
    pub fn token(&self, volume: &str) -> Option<&Path> {
        self.tokens.get(volume).map(PathBuf::as_path)
    }
}

/// Creates every volume of `pod`. Retrying after an error is safe: files are rewritten.
pub async fn materialise(
    client: &kube::Client,
    work_dir: &Path,
    pod: &Pod,
    sandbox: &Sandbox,
    objects: &mut PodObjects,
) -> Result<Volumes, Error> {
    let mut volumes = Volumes::default();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = sandbox.volume_dir(&volume.name);
        let dir = match volume_kind(volume) {
            VolumeKind::EmptyDir => {
                create_dir(&dir)?;
                dir
            }
            VolumeKind::HostPath(path) => PathBuf::from(path),
            VolumeKind::Claim(claim) => {
                let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                let dir = work_dir.join("claims").join(namespace).join(claim);
                create_dir(&dir)?;
                dir
            }
            VolumeKind::Files => {
                let files = files(client, pod, volume, objects).await?;
                create_dir(&dir)?;
                for file in &files.files {
                    write_file(&dir, &file.path, &file.content, file.mode)?;
                }
                if let Some(token) = files.token {
                    volumes.tokens.insert(volume.name.clone(), dir.join(token));
                }
                dir
            }
            VolumeKind::Unsupported => {
                return Err(Error::Unsupported(format!(
                    "volume {:?}: only configMap, secret, downwardAPI, projected, emptyDir, hostPath and \
                     persistentVolumeClaim volumes are supported",
                    volume.name
                )));
            }
        };
        volumes.dirs.insert(volume.name.clone(), dir);
    }
    Ok(volumes)
}

enum VolumeKind<'a> {
    EmptyDir,
    HostPath(&'a str),
    Claim(&'a str),
    Files,
    Unsupported,
}

fn volume_kind(volume: &Volume) -> VolumeKind<'_> {
    if volume.empty_dir.is_some() {
        VolumeKind::EmptyDir
    } else if let Some(host) = &volume.host_path {
        VolumeKind::HostPath(&host.path)
    } else if let Some(claim) = &volume.persistent_volume_claim {
        VolumeKind::Claim(&claim.claim_name)
    } else if volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
    {
        VolumeKind::Files
    } else {
        VolumeKind::Unsupported
    }
}

/// One file of a volume.
struct File {
    path: String,
    content: Vec<u8>,
    mode: u32,
}

/// The files of a file-backed volume, and which of them is a service-account token.
#[derive(Default)]
struct Files {
    files: Vec<File>,
    token: Option<String>,
}

async fn files(client: &kube::Client, pod: &Pod, volume: &Volume, objects: &mut PodObjects) -> Result<Files, Error> {
    let mut out = Files::default();
    if let Some(source) = &volume.config_map {
        let entries = objects.require(Kind::ConfigMap, &source.name, source.optional.unwrap_or(false)).await?;
        out.files.extend(keyed_files(&entries, source.items.as_deref(), mode(source.default_mode), &source.name)?);
    } else if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        let entries = objects.require(Kind::Secret, name, source.optional.unwrap_or(false)).await?;
        out.files.extend(keyed_files(&entries, source.items.as_deref(), mode(source.default_mode), name)?);
    } else if let Some(source) = &volume.downward_api {
        out.files.extend(downward_files(pod, source.items.as_deref().unwrap_or_default(), mode(source.default_mode))?);
    } else if let Some(projected) = &volume.projected {
        let default_mode = mode(projected.default_mode);
        for source in projected.sources.iter().flatten() {
            if let Some(s) = &source.secret {
                let entries = objects.require(Kind::Secret, &s.name, s.optional.unwrap_or(false)).await?;
                out.files.extend(keyed_files(&entries, s.items.as_deref(), default_mode, &s.name)?);
            } else if let Some(c) = &source.config_map {
                let entries = objects.require(Kind::ConfigMap, &c.name, c.optional.unwrap_or(false)).await?;
                out.files.extend(keyed_files(&entries, c.items.as_deref(), default_mode, &c.name)?);
            } else if let Some(d) = &source.downward_api {
                out.files.extend(downward_files(pod, d.items.as_deref().unwrap_or_default(), default_mode)?);
            } else if let Some(t) = &source.service_account_token {
                let token = service_account_token(client, pod, t.audience.as_deref(), t.expiration_seconds).await?;
                out.files.push(File {
                    path: t.path.clone(),
                    content: token.into_bytes(),
                    mode: default_mode.min(0o600),
                });
                out.token = Some(t.path.clone());
            } else {
                return Err(Error::Unsupported(format!(
                    "volume {:?}: only secret, configMap, downwardAPI and serviceAccountToken projections are supported",
                    volume.name
                )));
            }
        }
    }
    Ok(out)
}

fn mode(mode: Option<i32>) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(DEFAULT_MODE) & 0o777
}

/// Files for all keys, or for the listed `items` (each of which must exist).
fn keyed_files(
    entries: &Entries,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    object: &str,
) -> Result<Vec<File>, Error> {
    let Some(items) = items else {
        return Ok(entries
            .iter()
            .map(|(k, v)| File { path: k.clone(), content: v.clone(), mode: default_mode })
            .collect());
    };
    items
        .iter()
        .map(|item| {
            let content = entries
                .get(&item.key)
                .cloned()
                .ok_or_else(|| Error::MissingReference(format!("key {:?} not found in {object:?}", item.key)))?;
            Ok(File { path: item.path.clone(), content, mode: item.mode.map_or(default_mode, |m| mode(Some(m))) })
        })
        .collect()
}

fn downward_files(pod: &Pod, items: &[DownwardAPIVolumeFile], default_mode: u32) -> Result<Vec<File>, Error> {
    items
        .iter()
        .map(|item| {
            let Some(field) = &item.field_ref else {
                return Err(Error::Unsupported(format!(
                    "downward-API file {:?}: only fieldRef is supported",
                    item.path
                )));
            };
            let content = match field.field_path.as_str() {
                "metadata.labels" => key_value_lines(pod.metadata.labels.as_ref()),
                "metadata.annotations" => key_value_lines(pod.metadata.annotations.as_ref()),
                path => field_value(pod, path)?,
            };
            Ok(File {
                path: item.path.clone(),
                content: content.into_bytes(),
                mode: item.mode.map_or(default_mode, |m| mode(Some(m))),
            })
        })
        .collect()
}

/// A label or annotation map the way the kubelet writes it: `key="value"` lines, sorted.
fn key_value_lines(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={v:?}\n")).collect()
}

async fn service_account_token(
    client: &kube::Client,
    pod: &Pod,
    audience: Option<&str>,
    expiration: Option<i64>,
) -> Result<String, Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).unwrap_or("default");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.filter(|a| !a.is_empty()).map(|a| vec![a.to_string()]),
            expiration_seconds: expiration,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let response = api.create_token_request(account, &PostParams::default(), &request).await?;
    response.status.and_then(|s| s.token).ok_or_else(|| {
        Error::MissingReference(format!("TokenRequest for service account {namespace}/{account} returned no token"))
    })
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Writes `content` to `dir/relative` with `mode`; `relative` may not leave `dir`.
fn write_file(dir: &Path, relative: &str, content: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let relative = Path::new(relative);
    if relative.as_os_str().is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::Unsupported(format!(
            "volume file path {} must be relative and stay inside the volume",
            relative.display()
        )));
    }
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    std::fs::write(&path, content).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("setting the mode of {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_select_and_rename_keys() {
        let entries: Entries = [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())].into();
        let all = keyed_files(&entries, None, 0o644, "cm").unwrap();
        assert_eq!(all.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let items = [KeyToPath { key: "b".into(), path: "sub/b.txt".into(), mode: Some(0o755) }];
        let picked = keyed_files(&entries, Some(&items), 0o644, "cm").unwrap();
        assert_eq!(
            (picked[0].path.as_str(), picked[0].content.as_slice(), picked[0].mode),
            ("sub/b.txt", &b"2"[..], 0o755)
        );
        let missing = [KeyToPath { key: "c".into(), path: "c".into(), mode: None }];
        assert!(matches!(keyed_files(&entries, Some(&missing), 0o644, "cm"), Err(Error::MissingReference(_))));
    }

    #[test]
    fn files_stay_inside_their_volume() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "nested/key", b"v", 0o600).unwrap();
        assert_eq!(std::fs::read(dir.path().join("nested/key")).unwrap(), b"v");
        assert!(write_file(dir.path(), "../escape", b"v", 0o600).is_err());
        assert!(write_file(dir.path(), "/etc/passwd", b"v", 0o600).is_err());
    }

    #[test]
    fn label_files_are_sorted_quoted_lines() {
        let labels: BTreeMap<String, String> =
            [("b".to_string(), "2".to_string()), ("a".to_string(), "x\"y".to_string())].into();
        assert_eq!(key_value_lines(Some(&labels)), "a=\"x\\\"y\"\nb=\"2\"\n");
    }
}
