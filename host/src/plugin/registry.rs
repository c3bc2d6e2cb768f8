//! The plugin registry: loads configured plugins and swaps in new versions while running.
//!
//! # Expected flow
//!
//! 1. A configuration (file or ConfigMap) names each plugin, its kind and its source.
//! 2. [`Registry::reload`] reads every source. A source whose bytes have the digest of the
//!    version already serving is left alone.
//! 3. Changed bytes are compiled and checked on a blocking thread (world, exports, imports,
//!    WIT version, the configured kind and the pinned sha256), off the path of calls.
//! 4. All accepted versions are published in one atomic swap of the plugin table.
//!
//! # Guarantees
//!
//! - Readers ([`Registry::get`]) never block and never see a half-updated table.
//! - A call that got a plugin before a swap finishes on that version ([`LoadedPlugin`] is
//!   reference-counted); a call that starts after the swap gets the new one.
//! - A rejected version never replaces the serving one; the rejection is logged and kept in
//!   [`Registry::rejection`] until a later version of that plugin loads.
//! - Reloads are serialised, so two sources changing at once cannot interleave.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;

use super::config::{PluginSource, PluginSpec, RegistryConfig};
use crate::runtime::{LoadedPlugin, PluginId, Runtime, RuntimeError};

/// Bytes of ConfigMap-sourced plugins, by (ConfigMap name, key); filled by a ConfigMap watch.
pub type ConfigMapBytes = HashMap<(String, String), Vec<u8>>;

/// What a reload did to one plugin.
#[derive(Debug)]
pub enum Outcome {
    /// A new version now serves.
    Loaded(PluginId),
    /// The source still holds the serving version.
    Unchanged(PluginId),
    /// The source's version was refused; the previous version (if any) keeps serving.
    Rejected { error: String, serving: Option<PluginId> },
    /// The plugin left the configuration and no longer serves.
    Removed(PluginId),
}

/// Why a plugin's new bytes were refused before any wasm was looked at.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("ConfigMap {name} has no key {key} (or it is not loaded yet)")]
    MissingConfigMapKey { name: String, key: String },
    #[error("no built-in component named {0}")]
    UnknownBuiltin(String),
    #[error("sha256 {actual} does not match the pinned {pinned}")]
    PinMismatch { pinned: String, actual: String },
    #[error("configured as a {configured} plugin, but the component is a {actual} plugin")]
    KindMismatch { configured: &'static str, actual: &'static str },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// The table of serving plugins.
pub struct Registry {
    runtime: Runtime,
    plugins: ArcSwap<HashMap<String, LoadedPlugin>>,
    rejections: Mutex<HashMap<String, String>>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl Registry {
    /// An empty registry over a runtime.
    pub fn new(runtime: Runtime) -> Self {
        Registry {
            runtime,
            plugins: ArcSwap::from_pointee(HashMap::new()),
            rejections: Mutex::new(HashMap::new()),
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The serving version of a plugin. Lock-free; hold the result for the length of one call.
    pub fn get(&self, name: &str) -> Option<LoadedPlugin> {
        self.plugins.load().get(name).cloned()
    }

    /// Names of the serving plugins.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.plugins.load().keys().cloned().collect();
        names.sort();
        names
    }

    /// Why the latest version of a plugin was refused, if it was.
    pub fn rejection(&self, name: &str) -> Option<String> {
        self.rejections.lock().expect("rejections lock poisoned").get(name).cloned()
    }

    /// Brings the table in line with `config`; see the module docs for the flow.
    pub async fn reload(&self, config: &RegistryConfig, config_maps: &ConfigMapBytes) -> Vec<(String, Outcome)> {
        let _serialised = self.reload_lock.lock().await;
        let current = self.plugins.load_full();
        let mut next = HashMap::new();
        let mut outcomes = Vec::new();
        for spec in &config.plugins {
            let serving = current.get(&spec.name).cloned();
            let outcome = match self.prepare(spec, serving.as_ref(), config_maps).await {
                Ok(plugin) => {
                    let id = plugin.id().clone();
                    let unchanged = serving.as_ref().is_some_and(|s| s.id() == &id);
                    next.insert(spec.name.clone(), plugin);
                    self.rejections.lock().expect("rejections lock poisoned").remove(&spec.name);
                    if unchanged {
                        Outcome::Unchanged(id)
                    } else {
                        tracing::info!(plugin = %id, kind = %spec.kind, "Plugin version serving");
                        Outcome::Loaded(id)
                    }
                }
                Err(error) => {
                    let error = error.to_string();
                    let serving_id = serving.as_ref().map(|p| p.id().clone());
                    tracing::warn!(plugin = %spec.name, serving = ?serving_id.as_ref().map(ToString::to_string), %error, "Plugin version rejected");
                    self.rejections.lock().expect("rejections lock poisoned").insert(spec.name.clone(), error.clone());
                    if let Some(serving) = serving {
                        next.insert(spec.name.clone(), serving);
                    }
                    Outcome::Rejected { error, serving: serving_id }
                }
            };
            outcomes.push((spec.name.clone(), outcome));
        }
        for (name, plugin) in current.iter() {
            if !next.contains_key(name) {
                tracing::info!(plugin = %plugin.id(), "Plugin removed from the configuration");
                outcomes.push((name.clone(), Outcome::Removed(plugin.id().clone())));
            }
        }
        self.plugins.store(Arc::new(next));
        outcomes
    }

    /// The plugin for `spec`: the serving version if the bytes are unchanged, else a freshly
    /// loaded and checked one.
    async fn prepare(
        &self,
        spec: &PluginSpec,
        serving: Option<&LoadedPlugin>,
        config_maps: &ConfigMapBytes,
    ) -> Result<LoadedPlugin, SourceError> {
        let bytes = read_source(&spec.source, config_maps).await?;
        let id = PluginId::for_bytes(&spec.name, &bytes);
        if let Some(pinned) = &spec.sha256
            && *pinned != id.digest
        {
            return Err(SourceError::PinMismatch { pinned: pinned.clone(), actual: id.digest });
        }
        if let Some(serving) = serving.filter(|s| s.id() == &id) {
            return Ok(serving.clone());
        }
        let runtime = self.runtime.clone();
        let name = spec.name.clone();
        let plugin = tokio::task::spawn_blocking(move || runtime.load(&name, &bytes))
            .await
            .map_err(|e| RuntimeError::Compile { plugin: id.clone(), message: format!("load task failed: {e}") })??;
        if plugin.info().kind != spec.kind {
            return Err(SourceError::KindMismatch {
                configured: spec.kind.world(),
                actual: plugin.info().kind.world(),
            });
        }
        Ok(plugin)
    }

    /// Polls the configuration file and every file source each `interval`, and reloads when
    /// something changed and then stayed unchanged for one more interval (a file still being
    /// written is not loaded half-way). Runs until the task is dropped or aborted.
    pub async fn watch_files(self: Arc<Self>, config_path: PathBuf, interval: Duration) {
        let mut loaded: Option<Vec<Fingerprint>> = None;
        let mut pending: Option<Vec<Fingerprint>> = None;
        loop {
            let config = RegistryConfig::load(&config_path);
            let prints = fingerprints(&config_path, config.as_ref().ok());
            if loaded.as_ref() != Some(&prints) {
                if pending.as_ref() == Some(&prints) {
                    match &config {
                        Ok(config) => {
                            self.reload(config, &ConfigMapBytes::new()).await;
                        }
                        Err(error) => tracing::warn!(%error, "Keeping the plugins loaded before"),
                    }
                    loaded = Some(prints);
                    pending = None;
                } else {
                    pending = Some(prints);
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// What tells a changed file from an unchanged one without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: Option<u64>,
    /// An atomic replace (write, then rename) gives a new inode even within one mtime tick.
    inode: Option<u64>,
}

fn fingerprint(path: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok();
    Fingerprint {
        path: path.to_owned(),
        modified: meta.as_ref().and_then(|m| m.modified().ok()),
        len: meta.as_ref().map(|m| m.len()),
        inode: meta.map(|m| m.ino()),
    }
}

fn fingerprints(config_path: &Path, config: Option<&RegistryConfig>) -> Vec<Fingerprint> {
    let mut prints = vec![fingerprint(config_path)];
    for spec in config.map(|c| c.plugins.as_slice()).unwrap_or_default() {
        if let PluginSource::File(path) = &spec.source {
            prints.push(fingerprint(path));
        }
    }
    prints
}

async fn read_source(source: &PluginSource, config_maps: &ConfigMapBytes) -> Result<Vec<u8>, SourceError> {
    match source {
        PluginSource::File(path) => {
            tokio::fs::read(path).await.map_err(|source| SourceError::Read { path: path.clone(), source })
        }
        PluginSource::ConfigMap { name, key } => config_maps
            .get(&(name.clone(), key.clone()))
            .cloned()
            .ok_or_else(|| SourceError::MissingConfigMapKey { name: name.clone(), key: key.clone() }),
        PluginSource::Builtin(package) => {
            let path = super::builtin::path(package).ok_or_else(|| SourceError::UnknownBuiltin(package.clone()))?;
            tokio::fs::read(path).await.map_err(|source| SourceError::Read { path: path.into(), source })
        }
    }
}
