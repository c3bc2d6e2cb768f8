//! The `wasmray` command line: the operator, its local control plane and its plugin tools.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    wasmray::cli::Cli::parse().run()
}
