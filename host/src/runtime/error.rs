//! Typed failures of the runtime; every variant about a plugin names it and its version.

use std::{fmt, path::PathBuf, time::Duration};

use super::bindings::types::PluginError;

/// A plugin by name and version; the version is the sha256 of its component.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginId {
    /// The name the registry gives the plugin.
    pub name: String,
    /// Lowercase hex sha256 of the component bytes.
    pub digest: String,
}

impl PluginId {
    /// A plugin id from a name and the component's bytes.
    pub fn for_bytes(name: &str, wasm: &[u8]) -> Self {
        use sha2::Digest as _;
        PluginId { name: name.to_owned(), digest: hex::encode(sha2::Sha256::digest(wasm)) }
    }

    /// The short version shown in logs and errors: the first 12 hex digits of the digest.
    pub fn version(&self) -> &str {
        &self.digest[..self.digest.len().min(12)]
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@sha256:{}", self.name, self.version())
    }
}

/// Why a load or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be built from the configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The bytes are not a component this engine can compile.
    #[error("plugin {plugin}: cannot compile: {message}")]
    Compile { plugin: PluginId, message: String },
    /// The component compiled but is not a wasmray plugin of a supported kind and version.
    #[error("plugin {plugin}: rejected: {reason}")]
    Incompatible { plugin: PluginId, reason: String },
    /// A call went to a plugin of another kind.
    #[error("plugin {plugin} is a {actual} plugin, not a {expected} plugin")]
    WrongKind { plugin: PluginId, expected: &'static str, actual: &'static str },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access, a failed instantiation).
    #[error("plugin {plugin}: trapped: {message}{}", panic.as_deref().map(|p| format!(" ({p})")).unwrap_or_default())]
    Trap { plugin: PluginId, message: String, panic: Option<String> },
    /// The guest ran past its epoch deadline and was interrupted.
    #[error("plugin {plugin}: interrupted after its {deadline:?} deadline")]
    Timeout { plugin: PluginId, deadline: Duration },
    /// The guest tried to grow its memory past the limit.
    #[error("plugin {plugin}: exceeded its memory limit of {limit} bytes")]
    MemoryLimit { plugin: PluginId, limit: usize },
    /// The guest returned something the host refuses to act on.
    #[error("plugin {plugin}: malformed output: {reason}")]
    MalformedOutput { plugin: PluginId, reason: String },
    /// The guest returned one of the WIT `plugin-error`s on purpose.
    #[error("plugin {plugin}: {error:?}")]
    Plugin { plugin: PluginId, error: PluginError },
    /// The precompiled-component cache could not be used.
    #[error("compile cache {}: {source}", path.display())]
    Cache { path: PathBuf, source: std::io::Error },
    /// The runtime shut down while the call waited for a permit.
    #[error("the plugin runtime is shut down")]
    Closed,
}

/// Results of the runtime.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

impl RuntimeError {
    /// The plugin the error is about, if it is about one.
    pub fn plugin(&self) -> Option<&PluginId> {
        match self {
            RuntimeError::Compile { plugin, .. }
            | RuntimeError::Incompatible { plugin, .. }
            | RuntimeError::WrongKind { plugin, .. }
            | RuntimeError::Trap { plugin, .. }
            | RuntimeError::Timeout { plugin, .. }
            | RuntimeError::MemoryLimit { plugin, .. }
            | RuntimeError::MalformedOutput { plugin, .. }
            | RuntimeError::Plugin { plugin, .. } => Some(plugin),
            RuntimeError::Engine(_) | RuntimeError::Cache { .. } | RuntimeError::Closed => None,
        }
    }

    /// A short, stable label for metrics and condition reasons.
    pub fn label(&self) -> &'static str {
        match self {
            RuntimeError::Engine(_) => "engine",
            RuntimeError::Compile { .. } => "compile",
            RuntimeError::Incompatible { .. } => "incompatible",
            RuntimeError::WrongKind { .. } => "wrong_kind",
            RuntimeError::Trap { .. } => "trap",
            RuntimeError::Timeout { .. } => "timeout",
            RuntimeError::MemoryLimit { .. } => "memory_limit",
            RuntimeError::MalformedOutput { .. } => "malformed_output",
            RuntimeError::Plugin { .. } => "plugin_error",
            RuntimeError::Cache { .. } => "cache",
            RuntimeError::Closed => "closed",
        }
    }
}
