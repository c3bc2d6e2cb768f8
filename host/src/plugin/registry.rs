//! The plugin registry: loads configured plugins and swaps in new versions while running.
//!
//! # Expected flow
//!
//! 1. A configuration (file or ConfigMap) names each plugin, its kind and its source.
//! 2. [`Registry::reload`] reads every source (gzip-compressed bytes are inflated first: a
//!    ConfigMap holds at most 1 MiB, less than most plugins). A source whose component has the
//!    digest of the version already serving is left alone.
//! 3. Changed bytes are compiled and checked on a blocking thread (world, exports, imports,
//!    WIT version, the configured kind and the pinned sha256), off the path of calls.
//! 4. All accepted versions are published in one atomic swap of the plugin table.
//!
//! # Guarantees
//!
//! - Readers ([`Registry::get`]) never block and never see a half-updated table.
//! - A call that got a plugin before a swap finishes on that version ([`LoadedPlugin`] is
//!   reference-counted); a call that starts after the swap gets the new one.
//! - A rejected version never replaces the serving one; the rejection is logged, kept in
//!   [`Registry::rejection`] until a later version of that plugin loads, and returned as an
//!   [`Outcome`], which [`super::watch`] records as an Event.
//! - Reloads are serialised, so two sources changing at once cannot interleave.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;

use super::config::{PluginSource, PluginSpec, RegistryConfig};
use crate::runtime::{LoadedPlugin, PluginId, Runtime, RuntimeError};

/// Bytes of ConfigMap-sourced plugins, by (ConfigMap name, key); filled by a ConfigMap watch.
pub type ConfigMapBytes = HashMap<(String, String), Vec<u8>>;

/// The largest component a compressed source may inflate to; a bound, so that a small
/// ConfigMap cannot expand into gigabytes.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// What a reload did to one plugin.
#[derive(Debug)]
pub enum Outcome {
    /// A new version now serves.
    Loaded(PluginId),
    /// The source still holds the serving version.
    Unchanged(PluginId),
    /// The source's version was refused; the previous version (if any) keeps serving.
    Rejected {
        /// The refused version; `None` when its bytes could not be read at all.
        version: Option<PluginId>,
        /// Why it was refused.
        error: String,
        /// The version that keeps serving, if there is one.
        serving: Option<PluginId>,
    },
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
    #[error("the gzip-compressed bytes cannot be inflated: {0}")]
    Inflate(std::io::Error),
    #[error("the component inflates to more than {MAX_COMPONENT_BYTES} bytes")]
    TooLarge,
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
            let prepared = match read_source(&spec.source, config_maps).await {
                Ok(bytes) => {
                    let id = PluginId::for_bytes(&spec.name, &bytes);
                    self.prepare(spec, serving.as_ref(), id.clone(), bytes).await.map_err(|e| (Some(id), e))
                }
                Err(error) => Err((None, error)),
            };
            let outcome = match prepared {
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
                Err((version, error)) => {
                    let error = error.to_string();
                    let serving_id = serving.as_ref().map(|p| p.id().clone());
                    tracing::warn!(
                        plugin = %spec.name,
                        version = ?version.as_ref().map(ToString::to_string),
                        serving = ?serving_id.as_ref().map(ToString::to_string),
                        %error,
                        "Plugin version rejected"
                    );
                    self.rejections.lock().expect("rejections lock poisoned").insert(spec.name.clone(), error.clone());
                    if let Some(serving) = serving {
                        next.insert(spec.name.clone(), serving);
                    }
                    Outcome::Rejected { version, error, serving: serving_id }
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
        // Built-ins were read (digested, and compiled or matched to the compile cache) and are
        // not needed again until the next reload.
        super::builtin::release_read_pages();
        outcomes
    }

    /// The plugin for `spec` from its component `bytes` (whose id is `id`): the serving version
    /// if they are unchanged, else a freshly loaded and checked one.
    async fn prepare(
        &self,
        spec: &PluginSpec,
        serving: Option<&LoadedPlugin>,
        id: PluginId,
        bytes: Vec<u8>,
    ) -> Result<LoadedPlugin, SourceError> {
        if let Some(pinned) = &spec.sha256
            && *pinned != id.digest
        {
            return Err(SourceError::PinMismatch { pinned: pinned.clone(), actual: id.digest.clone() });
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
    /// written is not loaded half-way). No built-ins are added, no ConfigMaps are watched and no
    /// Events are recorded: `wasmray run` uses [`super::watch::PluginWatch`] for that. Runs
    /// until the task is dropped or aborted.
    pub async fn watch_files(self: Arc<Self>, config_path: PathBuf, interval: Duration) {
        let sources = super::watch::Sources::file(config_path);
        super::watch::PluginWatch::without_cluster(self, sources).run(interval).await;
    }
}

/// The component bytes of a source, inflated if they are gzip-compressed.
async fn read_source(source: &PluginSource, config_maps: &ConfigMapBytes) -> Result<Vec<u8>, SourceError> {
    let bytes = read_raw(source, config_maps).await?;
    if bytes.starts_with(GZIP_MAGIC) {
        return tokio::task::spawn_blocking(move || inflate(&bytes))
            .await
            .map_err(|e| SourceError::Inflate(std::io::Error::other(e)))?;
    }
    Ok(bytes)
}

/// The first bytes of every gzip stream; a component starts with `\0asm` instead.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

fn inflate(gzip: &[u8]) -> Result<Vec<u8>, SourceError> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gzip)
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(SourceError::Inflate)?;
    if out.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(SourceError::TooLarge);
    }
    Ok(out)
}

async fn read_raw(source: &PluginSource, config_maps: &ConfigMapBytes) -> Result<Vec<u8>, SourceError> {
    match source {
        PluginSource::File(path) => {
            tokio::fs::read(path).await.map_err(|source| SourceError::Read { path: path.clone(), source })
        }
        PluginSource::ConfigMap { name, key } => config_maps
            .get(&(name.clone(), key.clone()))
            .cloned()
            .ok_or_else(|| SourceError::MissingConfigMapKey { name: name.clone(), key: key.clone() }),
        PluginSource::Builtin(package) => super::builtin::bytes(package)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| SourceError::UnknownBuiltin(package.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{PluginKind, RuntimeConfig};

    fn component(package: &str) -> Vec<u8> {
        std::fs::read(super::super::builtin::test_program(package).expect("a test program")).unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn config_map_plugin(sha256: Option<String>) -> RegistryConfig {
        RegistryConfig {
            plugins: vec![PluginSpec {
                name: "echo".into(),
                kind: PluginKind::Reconciler,
                source: PluginSource::ConfigMap { name: "plugins".into(), key: "echo.wasm.gz".into() },
                sha256,
            }],
        }
    }

    fn bytes(value: Vec<u8>) -> ConfigMapBytes {
        [(("plugins".to_string(), "echo.wasm.gz".to_string()), value)].into()
    }

    #[tokio::test]
    async fn a_gzip_compressed_source_loads_under_the_digest_of_the_component_itself() {
        let registry = Registry::new(Runtime::new(RuntimeConfig::default()).unwrap());
        let wasm = component("wasmray-test-echo-v1");
        let digest = PluginId::for_bytes("echo", &wasm).digest;
        let outcomes = registry.reload(&config_map_plugin(Some(digest.clone())), &bytes(gzip(&wasm))).await;
        assert!(matches!(&outcomes[0].1, Outcome::Loaded(id) if id.digest == digest), "{outcomes:?}");
    }

    #[tokio::test]
    async fn a_rejection_names_the_refused_version_unless_there_were_no_bytes() {
        let registry = Registry::new(Runtime::new(RuntimeConfig::default()).unwrap());
        let wasm = component("wasmray-test-echo-v1");
        let outcomes = registry.reload(&config_map_plugin(Some("00".repeat(32))), &bytes(wasm.clone())).await;
        let Outcome::Rejected { version: Some(version), error, serving: None } = &outcomes[0].1 else {
            panic!("{outcomes:?}")
        };
        assert_eq!(version.digest, PluginId::for_bytes("echo", &wasm).digest);
        assert!(error.contains("does not match the pinned"), "{error}");

        let outcomes = registry.reload(&config_map_plugin(None), &ConfigMapBytes::new()).await;
        assert!(matches!(&outcomes[0].1, Outcome::Rejected { version: None, .. }), "{outcomes:?}");
    }

    #[test]
    fn a_gzip_bomb_is_refused_past_the_bound() {
        let bomb = gzip(&vec![0u8; MAX_COMPONENT_BYTES as usize + 1]);
        assert!(bomb.len() < 1 << 20, "the bomb fits in a ConfigMap: {} bytes", bomb.len());
        assert!(matches!(inflate(&bomb), Err(SourceError::TooLarge)));
        assert!(matches!(inflate(&[0x1f, 0x8b, 0, 0]), Err(SourceError::Inflate(_))));
    }
}
