//! `wasmray plugin …`: check a component, scaffold a plugin crate.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use crate::runtime::{PluginKind, Runtime, RuntimeConfig};

/// Tools for plugin authors.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Validate a component against the wasmray worlds; print its world, exports and WIT version.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Create a plugin crate from the template.
    New {
        /// Crate name: lowercase letters, digits and dashes.
        name: String,
        /// `batch-scheduler` or `upgrade-strategy`.
        #[arg(long)]
        kind: PluginKind,
        /// Directory to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path of the wasmray guest SDK crate (default: `guests/sdk` of the checkout this
        /// binary was built from). `Cargo.toml` names it relative to the new crate when both are
        /// inside one checkout, and by its absolute path otherwise.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

impl PluginCommand {
    /// Runs the subcommand, printing to stdout.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            PluginCommand::Check { file } => {
                print!("{}", check(&file)?);
                Ok(())
            }
            PluginCommand::New { name, kind, dir, sdk } => {
                let root = super::scaffold::new_plugin(&name, kind, &dir, sdk.as_deref())?;
                println!("Created {} plugin {name} in {}", kind, root.display());
                println!("Build it: cd {} && cargo build --release --target wasm32-wasip2", root.display());
                Ok(())
            }
        }
    }
}

/// Loads and checks a component as the registry would; the report, or why it is refused.
pub fn check(file: &std::path::Path) -> anyhow::Result<String> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let plugin = runtime.load(&name, &wasm)?;
    let info = plugin.info();
    let mut out = String::new();
    out.push_str(&format!("{}: ok\n", file.display()));
    out.push_str(&format!("  sha256:      {}\n", plugin.id().digest));
    out.push_str(&format!("  world:       {}/{}@{}\n", crate::runtime::WIT_PACKAGE, info.kind.world(), info.wit_version));
    out.push_str(&format!("  WIT version: {} (host serves {})\n", info.wit_version, crate::runtime::WIT_VERSION));
    out.push_str("  exports:\n");
    for e in &info.exports {
        out.push_str(&format!("    {e}\n"));
    }
    out.push_str("  imports:\n");
    for i in &info.imports {
        out.push_str(&format!("    {i}\n"));
    }
    Ok(out)
}
