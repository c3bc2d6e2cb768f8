//! The registry's configuration file: which plugins to load, of what kind, from where.
//!
//! ```yaml
//! plugins:
//!   - name: volcano
//!     kind: batch-scheduler
//!     source: { file: plugins/volcano.wasm }   # relative to this file
//!     sha256: 9f2c…                             # optional pin
//!   - name: blue-green
//!     kind: upgrade-strategy
//!     source: { configMap: { name: wasmray-plugins, key: blue-green.wasm } }
//! ```

use std::path::{Path, PathBuf};

use crate::runtime::PluginKind;

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
}

/// One plugin.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
    pub kind: PluginKind,
    /// `{ file: … }`, `{ configMap: { name, key } }` or `{ builtin: … }`.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub source: PluginSource,
    /// If set, only a component with this sha256 (lowercase hex) is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Where a plugin's component comes from.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum PluginSource {
    /// A file; a relative path is resolved against the configuration file's directory.
    File(PathBuf),
    /// A key of a ConfigMap in the operator's namespace (`binaryData`, or `data` as text).
    ConfigMap { name: String, key: String },
    /// A component built with the host, by package name.
    Builtin(String),
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read plugin configuration {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid YAML of the expected shape.
    #[error("invalid plugin configuration {}: {source}", path.display())]
    Parse { path: PathBuf, source: serde_yaml::Error },
    /// Two plugins share a name.
    #[error("plugin configuration {}: plugin `{name}` is defined twice", path.display())]
    Duplicate { path: PathBuf, name: String },
}

impl RegistryConfig {
    /// Reads a configuration file; relative file sources are made absolute.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` locates relative file sources and names errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: RegistryConfig =
            serde_yaml::from_str(text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut seen = std::collections::HashSet::new();
        for plugin in &mut config.plugins {
            if !seen.insert(plugin.name.clone()) {
                return Err(ConfigError::Duplicate { path: path.into(), name: plugin.name.clone() });
            }
            if let PluginSource::File(file) = &mut plugin.source
                && file.is_relative()
            {
                *file = base.join(&*file);
            }
            if let Some(pin) = &mut plugin.sha256 {
                *pin = pin.trim_start_matches("sha256:").to_ascii_lowercase();
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_source_and_resolves_relative_files() {
        let yaml = r#"
plugins:
  - name: volcano
    kind: batch-scheduler
    source: { file: volcano.wasm }
    sha256: "sha256:ABCD"
  - name: blue-green
    kind: upgrade-strategy
    source: { configMap: { name: wasmray-plugins, key: blue-green.wasm } }
  - name: raycluster
    kind: reconciler
    source: { builtin: wasmray-raycluster }
"#;
        let config = RegistryConfig::parse(yaml, Path::new("/etc/wasmray/plugins.yaml")).unwrap();
        assert_eq!(config.plugins[0].source, PluginSource::File("/etc/wasmray/volcano.wasm".into()));
        assert_eq!(config.plugins[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(config.plugins[0].kind, PluginKind::BatchScheduler);
        assert_eq!(
            config.plugins[1].source,
            PluginSource::ConfigMap { name: "wasmray-plugins".into(), key: "blue-green.wasm".into() }
        );
        assert_eq!(config.plugins[2].source, PluginSource::Builtin("wasmray-raycluster".into()));
    }

    #[test]
    fn rejects_duplicate_names_and_unknown_kinds() {
        let dup = "plugins:\n- {name: a, kind: reconciler, source: {file: a.wasm}}\n- {name: a, kind: reconciler, source: {file: b.wasm}}\n";
        assert!(matches!(RegistryConfig::parse(dup, Path::new("p.yaml")), Err(ConfigError::Duplicate { .. })));
        let bad = "plugins:\n- {name: a, kind: scheduler, source: {file: a.wasm}}\n";
        assert!(matches!(RegistryConfig::parse(bad, Path::new("p.yaml")), Err(ConfigError::Parse { .. })));
    }
}
