//! Command-line parsing and dispatch; each subcommand lives in the module it drives.

use clap::{Parser, Subcommand};

/// wasmray: the Ray operator whose business logic runs as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "wasmray", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A local control plane (kube-apiserver, etcd, controller-manager, scheduler, KWOK nodes).
    #[command(subcommand)]
    Dev(crate::dev::cli::DevCommand),
    /// Print the RayCluster, RayJob and RayService CRDs as YAML.
    Crd(crate::crd::CrdCommand),
    /// Run the operator against the kubeconfig's cluster.
    Run(crate::operator::RunArgs),
    /// Plugin tools: check a component, scaffold a plugin crate.
    #[command(subcommand)]
    Plugin(crate::plugin::cli::PluginCommand),
    /// Benchmarks on a local control plane: the operator against the apiserver's own limit.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

impl Cli {
    /// Runs the parsed command to completion.
    pub fn run(self) -> anyhow::Result<()> {
        // The dev commands poll an apiserver that is still starting; its expected refusals are
        // not worth an ERROR line each.
        let json = matches!(&self.command, Command::Run(args) if args.log_json());
        init_tracing(if matches!(self.command, Command::Dev(_) | Command::Bench(_)) { "wasmray=info,kube_client=off,warn" } else { "wasmray=info,warn" }, json);
        match self.command {
            Command::Dev(cmd) => cmd.run(),
            Command::Crd(cmd) => cmd.run(),
            Command::Plugin(cmd) => cmd.run(),
            Command::Run(args) => args.run(),
            Command::Bench(cmd) => cmd.run(),
        }
    }
}

/// Logs to standard error, as text or (KubeRay's `--log-stdout-encoder json`) one JSON object a line.
fn init_tracing(default_filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { logs.json().try_init() } else { logs.try_init() };
}
