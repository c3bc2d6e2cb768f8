//! `wasmray bench`: measurements of the operator against the apiserver's own limit, on a local control plane.

pub mod plane;
pub mod plot;
pub mod progress;
pub mod raw;
pub mod report;
pub mod scale;

use clap::Subcommand;

/// Benchmarks that print figures and ratios against a baseline measured in the same run.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// K RayClusters × M workers through the operator, against a raw parallel client creating
    /// the same Pods on the same control plane.
    Scale(scale::ScaleArgs),
}

impl BenchCommand {
    /// Runs the benchmark to completion.
    ///
    /// # Errors
    ///
    /// If the control plane cannot start, or a phase does not finish within its timeout.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            BenchCommand::Scale(args) => {
                let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
                runtime.block_on(scale::run(args))
            }
        }
    }
}
