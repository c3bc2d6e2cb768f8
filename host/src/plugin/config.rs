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
//!
//! The file can also live under the key [`CONFIG_MAP_KEY`] of a ConfigMap (`wasmray run
//! --plugins-config-map NAME`); relative file sources in it are then relative to the operator's
//! working directory.

use std::path::{Path, PathBuf};

use crate::runtime::PluginKind;

/// The key of a plugins ConfigMap that holds the configuration.
pub const CONFIG_MAP_KEY: &str = "plugins.yaml";

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

/// A configuration that cannot be used; `origin` names the file or ConfigMap key it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read plugin configuration {origin}: {source}")]
    Read { origin: String, source: std::io::Error },
    /// The ConfigMap or its key does not exist.
    #[error("plugin configuration {origin} does not exist")]
    Missing { origin: String },
    /// The text is not valid YAML of the expected shape.
    #[error("invalid plugin configuration {origin}: {source}")]
    Parse { origin: String, source: serde_yaml::Error },
    /// Two plugins share a name.
    #[error("plugin configuration {origin}: plugin `{name}` is defined twice")]
    Duplicate { origin: String, name: String },
}

impl RegistryConfig {
    /// Reads a configuration file; relative file sources are made absolute.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { origin, source })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` locates relative file sources and names errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::parse_from(text, &path.display().to_string(), path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses configuration text from `origin` (said in errors); relative file sources are
    /// joined to `base`.
    pub fn parse_from(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: RegistryConfig =
            serde_yaml::from_str(text).map_err(|source| ConfigError::Parse { origin: origin.into(), source })?;
        let mut seen = std::collections::HashSet::new();
        for plugin in &mut config.plugins {
            if !seen.insert(plugin.name.clone()) {
                return Err(ConfigError::Duplicate { origin: origin.into(), name: plugin.name.clone() });
            }
            if let PluginSource::File(file) = &mut plugin.source
                && file.is_relative()
                && base != Path::new("")
            {
                *file = base.join(&*file);
            }
            if let Some(pin) = &mut plugin.sha256 {
                *pin = pin.trim_start_matches("sha256:").to_ascii_lowercase();
            }
        }
        Ok(config)
    }

    /// This configuration with the plugins of `over` added, replacing any of the same name.
    #[must_use]
    pub fn overlaid_with(mut self, over: RegistryConfig) -> Self {
        for spec in over.plugins {
            self.plugins.retain(|p| p.name != spec.name);
            self.plugins.push(spec);
        }
        self
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|p| p.name == name)
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

    #[test]
    fn an_overlay_replaces_plugins_by_name_and_keeps_the_rest() {
        let base = "plugins:\n- {name: a, kind: reconciler, source: {builtin: x}}\n- {name: b, kind: batch-scheduler, source: {builtin: y}}\n";
        let over = "plugins:\n- {name: b, kind: batch-scheduler, source: {configMap: {name: cm, key: b.wasm}}}\n";
        let merged = RegistryConfig::parse(base, Path::new("base.yaml"))
            .unwrap()
            .overlaid_with(RegistryConfig::parse_from(over, "ConfigMap ns/plugins", Path::new("")).unwrap());
        assert_eq!(merged.plugins.len(), 2);
        assert_eq!(merged.plugin("a").unwrap().source, PluginSource::Builtin("x".into()));
        assert_eq!(
            merged.plugin("b").unwrap().source,
            PluginSource::ConfigMap { name: "cm".into(), key: "b.wasm".into() }
        );
    }

    #[test]
    fn a_config_map_configuration_keeps_relative_files_relative_and_says_where_it_came_from() {
        let text = "plugins:\n- {name: a, kind: reconciler, source: {file: a.wasm}}\n- {name: a, kind: reconciler, source: {file: b.wasm}}\n";
        let error = RegistryConfig::parse_from(text, "ConfigMap ops/wasmray-plugins key plugins.yaml", Path::new(""))
            .unwrap_err();
        assert!(error.to_string().contains("ConfigMap ops/wasmray-plugins key plugins.yaml"), "{error}");
        let one = RegistryConfig::parse_from(
            "plugins:\n- {name: a, kind: reconciler, source: {file: a.wasm}}\n",
            "cm",
            Path::new(""),
        )
        .unwrap();
        assert_eq!(one.plugins[0].source, PluginSource::File("a.wasm".into()));
    }
}
