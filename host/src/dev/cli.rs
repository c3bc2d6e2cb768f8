//! `wasmray dev`: start and stop the local control plane.

use clap::Subcommand;

/// Subcommands of `wasmray dev`.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Build if needed, start every component, write DIR/kubeconfig and return.
    Up,
    /// Stop every component started in DIR and remove its state.
    Down,
}

impl DevCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("not implemented yet")
    }
}
