//! A container's environment: `envFrom`, `env` (literals, downward-API fields, Secret and
//! ConfigMap keys) and the kubelet's `$(VAR)` expansion.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::Error;
use super::lookup::{Kind, PodObjects};
use super::sandbox::PathMap;

/// An ordered environment in which a later definition of a name replaces the earlier value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Env(Vec<(String, String)>);

impl Env {
    /// Sets `name`, keeping its first position.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The variables in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Adds the container's `envFrom` and `env` to `env` (which holds what the agent defines
/// first). Container paths in the pod's values are mapped with `paths`; then `$(VAR)`
/// references in literal values are expanded against what is defined before them.
pub async fn resolve(
    env: &mut Env,
    pod: &Pod,
    container: &Container,
    objects: &mut PodObjects,
    paths: &PathMap,
) -> Result<(), Error> {
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or("");
        let (kind, name, optional) = match (&source.secret_ref, &source.config_map_ref) {
            (Some(s), _) => (Kind::Secret, s.name.as_str(), s.optional.unwrap_or(false)),
            (None, Some(c)) => (Kind::ConfigMap, c.name.as_str(), c.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        for (key, value) in objects.require(kind, name, optional).await? {
            env.set(format!("{prefix}{key}"), paths.rewrite(&String::from_utf8_lossy(&value)));
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => Some(expand(&paths.rewrite(value), |name| env.get(name).map(str::to_string))),
            (None, None) => Some(String::new()),
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    Some(field_value(pod, &field.field_path)?)
                } else if let Some(key) = &from.secret_key_ref {
                    objects
                        .key(Kind::Secret, &key.name, &key.key, key.optional.unwrap_or(false))
                        .await?
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                } else if let Some(key) = &from.config_map_key_ref {
                    objects
                        .key(Kind::ConfigMap, &key.name, &key.key, key.optional.unwrap_or(false))
                        .await?
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                } else {
                    return Err(Error::Unsupported(format!(
                        "env {}: only value, fieldRef, secretKeyRef and configMapKeyRef are supported",
                        var.name
                    )));
                }
            }
        };
        if let Some(value) = value {
            let value = if var.value.is_some() { value } else { paths.rewrite(&value) };
            env.set(var.name.clone(), value);
        }
    }
    Ok(())
}

/// The downward-API value of `field_path` for `pod` (the pod runs on loopback).
pub fn field_value(pod: &Pod, field_path: &str) -> Result<String, Error> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_key = |prefix: &str| {
        field_path
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")))
            .and_then(|rest| rest.strip_suffix("']").or_else(|| rest.strip_suffix("\"]")))
    };
    let value = match field_path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => Some("127.0.0.1".to_string()),
        _ => {
            if let Some(key) = map_key("metadata.labels") {
                meta.labels.as_ref().and_then(|l| l.get(key).cloned())
            } else if let Some(key) = map_key("metadata.annotations") {
                meta.annotations.as_ref().and_then(|a| a.get(key).cloned())
            } else {
                return Err(Error::Unsupported(format!("downward-API field {field_path:?} is not supported")));
            }
        }
    };
    Ok(value.unwrap_or_default())
}

/// Expands `$(NAME)` references as the kubelet does: defined names are replaced, undefined
/// ones are left as written, and `$$` is an escaped `$`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(after_escape) = after.strip_prefix('$') {
            out.push('$');
            rest = after_escape;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|a| a.split_once(')')) {
            match lookup(name).filter(|_| !name.is_empty()) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn lookup(name: &str) -> Option<String> {
        (name == "INDEX").then(|| "7".to_string())
    }

    #[test]
    fn expands_like_the_kubelet() {
        assert_eq!(expand("shard-$(INDEX).json", lookup), "shard-7.json");
        assert_eq!(expand("$(MISSING) stays", lookup), "$(MISSING) stays");
        assert_eq!(expand("$$(INDEX) is escaped", lookup), "$(INDEX) is escaped");
        assert_eq!(expand("cost: 5$ and $HOME", lookup), "cost: 5$ and $HOME");
        assert_eq!(expand("unclosed $(INDEX", lookup), "unclosed $(INDEX");
        assert_eq!(expand("$()", lookup), "$()");
    }

    #[test]
    fn downward_api_fields() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("job-0-abc".into()),
                namespace: Some("ns".into()),
                annotations: Some([("batch.kubernetes.io/job-completion-index".to_string(), "2".to_string())].into()),
                labels: Some([("app".to_string(), "w".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let value = |path: &str| field_value(&pod, path).unwrap();
        assert_eq!(value("metadata.annotations['batch.kubernetes.io/job-completion-index']"), "2");
        assert_eq!(value("metadata.labels['app']"), "w");
        assert_eq!(value("metadata.labels['absent']"), "");
        assert_eq!(value("metadata.name"), "job-0-abc");
        assert_eq!(value("status.podIP"), "127.0.0.1");
        assert!(matches!(field_value(&pod, "spec.priority"), Err(Error::Unsupported(_))));
    }

    #[test]
    fn later_definitions_replace_earlier_ones_in_place() {
        let mut env = Env::default();
        env.set("A", "1");
        env.set("B", "2");
        env.set("A", "3");
        assert_eq!(env.iter().collect::<Vec<_>>(), vec![("A", "3"), ("B", "2")]);
    }
}
