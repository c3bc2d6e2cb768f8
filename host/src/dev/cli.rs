//! `wasmray dev`: build, start and stop the local control plane.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{ControlPlane, Lifetime, NodeSet, Options, cache_root, ensure_binaries, stop_dir};

/// Subcommands of `wasmray dev`.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Build if needed, start every component, write DIR/kubeconfig and return, leaving the
    /// components running.
    Up(UpArgs),
    /// Stop every component started in DIR and remove DIR.
    Down(DirArgs),
    /// Build the control plane's binaries (if needed) and print where they are.
    Build,
}

/// Arguments of `wasmray dev up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// A node set YAML file (default: 2 CPU nodes and 2 nodes with 8 × A100 each).
    #[arg(long)]
    nodes: Option<PathBuf>,
}

/// The state directory argument.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// The control plane's state directory.
    #[arg(long, default_value = ".wasmray-dev")]
    dir: PathBuf,
}

impl DevCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            DevCommand::Up(args) => up(args),
            DevCommand::Down(args) => {
                stop_dir(&args.dir)?;
                eprintln!("wasmray dev: stopped the control plane in {}", args.dir.display());
                Ok(())
            }
            DevCommand::Build => {
                let binaries = ensure_binaries(&cache_root())?;
                println!("{}", binaries.path("").display());
                Ok(())
            }
        }
    }
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let nodes = match &args.nodes {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            NodeSet::from_yaml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => NodeSet::default(),
    };
    let options = Options { nodes, lifetime: Lifetime::Detached, ..Options::new(&args.dir.dir) };
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let plane = runtime.block_on(ControlPlane::start(options))?;
    eprintln!(
        "wasmray dev: control plane ready in {:.1?} at {}\n  kubectl --kubeconfig {} get nodes\n  wasmray dev down --dir {}",
        started.elapsed(),
        plane.state().server,
        plane.kubeconfig().display(),
        args.dir.dir.display()
    );
    plane.detach();
    Ok(())
}
