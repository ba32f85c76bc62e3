//! The Secrets and ConfigMaps a pod refers to, fetched once per pod start.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use super::Error;

/// Keys and values of one Secret or ConfigMap (ConfigMap `data` and `binaryData` together).
pub type Entries = BTreeMap<String, Vec<u8>>;

/// Which kind of object a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Secret,
    ConfigMap,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
        }
    }
}

/// A per-pod cache of the Secrets and ConfigMaps in the pod's namespace.
pub struct PodObjects {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
    namespace: String,
    cache: HashMap<(Kind, String), Option<Entries>>,
}

impl PodObjects {
    /// An empty cache for objects in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), namespace),
            config_maps: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            cache: HashMap::new(),
        }
    }

    /// The entries of the named object, `None` if it does not exist.
    pub async fn get(&mut self, kind: Kind, name: &str) -> Result<Option<&Entries>, Error> {
        let key = (kind, name.to_string());
        if !self.cache.contains_key(&key) {
            let entries = match kind {
                Kind::Secret => self
                    .secrets
                    .get_opt(name)
                    .await?
                    .map(|s| s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()),
                Kind::ConfigMap => self.config_maps.get_opt(name).await?.map(|c| {
                    let text = c.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes()));
                    let binary = c.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0));
                    text.chain(binary).collect()
                }),
            };
            self.cache.insert(key.clone(), entries);
        }
        Ok(self.cache.get(&key).and_then(Option::as_ref))
    }

    /// The named object's entries; a missing object is an error unless `optional`, then empty.
    pub async fn require(&mut self, kind: Kind, name: &str, optional: bool) -> Result<Entries, Error> {
        let namespace = self.namespace.clone();
        match self.get(kind, name).await? {
            Some(entries) => Ok(entries.clone()),
            None if optional => Ok(Entries::new()),
            None => Err(Error::MissingReference(format!("{} \"{namespace}/{name}\" not found", kind.name()))),
        }
    }

    /// One key of the named object; missing object or key is an error unless `optional`.
    pub async fn key(&mut self, kind: Kind, name: &str, key: &str, optional: bool) -> Result<Option<Vec<u8>>, Error> {
        let entries = self.require(kind, name, optional).await?;
        match entries.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional => Ok(None),
            None => Err(Error::MissingReference(format!(
                "key {key:?} not found in {} \"{}/{name}\"",
                kind.name(),
                self.namespace
            ))),
        }
    }
}
