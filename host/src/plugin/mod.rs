//! Plugins: the registry that loads and hot-swaps them, and the `wasmray plugin` tools.

pub mod builtin;
pub mod cli;
pub mod config;
pub mod registry;
pub mod scaffold;
pub mod watch;

pub use config::{PluginSource, PluginSpec, RegistryConfig};
pub use registry::{Outcome, Registry};
pub use watch::{ConfigLocation, PluginWatch, Sources};
