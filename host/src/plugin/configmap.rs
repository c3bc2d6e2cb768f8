//! ConfigMap sources: a watch on the operator namespace's ConfigMaps that reloads the registry
//! when a key a plugin names changes.
//!
//! # Caveats
//!
//! This path is compiled but not exercised by the tests, which drive the registry through file
//! sources; a Pod that mounts the ConfigMap as a volume can use file sources instead.

use std::{collections::BTreeSet, sync::Arc};

use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, ResourceExt as _,
    runtime::{WatchStreamExt as _, watcher},
};

use super::{
    config::{PluginSource, RegistryConfig},
    registry::{ConfigMapBytes, Registry},
};

/// Watches ConfigMaps in `namespace` and reloads `registry` whenever the bytes under a key that
/// `config` names change. Returns only when the watch fails for good.
pub async fn watch_config_maps(
    client: Client,
    namespace: &str,
    registry: Arc<Registry>,
    config: RegistryConfig,
) -> Result<(), watcher::Error> {
    let wanted: BTreeSet<(String, String)> = config
        .plugins
        .iter()
        .filter_map(|p| match &p.source {
            PluginSource::ConfigMap { name, key } => Some((name.clone(), key.clone())),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let mut changes = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
    let mut bytes = ConfigMapBytes::new();
    while let Some(cm) = changes.try_next().await? {
        let name = cm.name_any();
        let mut changed = false;
        for (cm_name, key) in wanted.iter().filter(|(n, _)| *n == name) {
            let value = cm
                .binary_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| b.0.clone())
                .or_else(|| cm.data.as_ref().and_then(|d| d.get(key)).map(|s| s.as_bytes().to_vec()));
            let slot = (cm_name.clone(), key.clone());
            if bytes.get(&slot) != value.as_ref() {
                changed = true;
                match value {
                    Some(v) => bytes.insert(slot, v),
                    None => bytes.remove(&slot),
                };
            }
        }
        if changed {
            registry.reload(&config, &bytes).await;
        }
    }
    Ok(())
}
