//! `wasmray run`: the operator against the kubeconfig's cluster, with the built-in components.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;

use crate::controller::{self, metrics::Metrics};
use crate::plugin::config::{PluginSource, PluginSpec, RegistryConfig};
use crate::plugin::registry::{ConfigMapBytes, Outcome, Registry};
use crate::runtime::{PluginKind, Runtime, RuntimeConfig};

/// The built-in RayCluster reconciler's package.
pub const RAYCLUSTER_RECONCILER: &str = "wasmray-raycluster";

/// Arguments of `wasmray run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Watch this namespace only (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// A plugin configuration file; its entries override the built-in ones by name, and
    /// changes to it (or to the files it names) are swapped in while running.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// The field manager of every write.
    #[arg(long, default_value = "wasmray")]
    field_manager: String,
    /// Reconciles running at once.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// The batch scheduler every Pod goes through, as KubeRay's flag of the same name:
    /// `volcano`, `yunikorn`, `kai-scheduler` or `scheduler-plugins` (the built-in plugin
    /// `wasmray-plugin-<name>`), or the name of a batch-scheduler plugin in `--plugins`.
    #[arg(long)]
    batch_scheduler: Option<String>,
}

impl RunArgs {
    /// Runs the operator until Ctrl-C or SIGTERM.
    pub fn run(self) -> anyhow::Result<()> {
        tokio::runtime::Runtime::new()?.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<()> {
        let client = match &self.kubeconfig {
            Some(path) => crate::dev::client_for(path).await?,
            None => kube::Client::try_default().await.context("connecting to the cluster")?,
        };
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(crate::dev::cache_root().join("compiled")),
            ..RuntimeConfig::default()
        })?;
        let registry = Arc::new(Registry::new(runtime));
        let config = registry_config(self.plugins.as_deref(), self.batch_scheduler.as_deref())?;
        for (name, outcome) in registry.reload(&config, &ConfigMapBytes::new()).await {
            if let Outcome::Rejected { error, .. } = outcome {
                anyhow::bail!("plugin {name} cannot be loaded: {error}");
            }
        }
        if let Some(path) = self.plugins.clone() {
            tokio::spawn(registry.clone().watch_files(path, Duration::from_secs(2)));
        }
        let mut prometheus = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut prometheus);
        let config = controller::Config {
            namespace: self.namespace,
            field_manager: self.field_manager,
            concurrency: self.concurrency,
            batch_scheduler: self.batch_scheduler,
            ..controller::Config::default()
        };
        tracing::info!(plugins = ?registry.names(), "wasmray operator starting");
        controller::run(client, registry, config, metrics, Arc::new(SystemTime::now), shutdown_signal()).await;
        Ok(())
    }
}

/// The built-in plugins (the RayCluster reconciler, and the batch scheduler if one is named),
/// with the entries of `file` (if any) overriding them by name.
pub fn registry_config(file: Option<&std::path::Path>, batch_scheduler: Option<&str>) -> anyhow::Result<RegistryConfig> {
    let mut config = RegistryConfig {
        plugins: vec![PluginSpec {
            name: "raycluster".into(),
            kind: PluginKind::Reconciler,
            source: PluginSource::Builtin(RAYCLUSTER_RECONCILER.into()),
            sha256: None,
        }],
    };
    if let Some(name) = batch_scheduler {
        config.plugins.push(PluginSpec {
            name: name.to_string(),
            kind: PluginKind::BatchScheduler,
            source: PluginSource::Builtin(format!("wasmray-plugin-{name}")),
            sha256: None,
        });
    }
    if let Some(path) = file {
        for spec in RegistryConfig::load(path)?.plugins {
            config.plugins.retain(|p| p.name != spec.name);
            config.plugins.push(spec);
        }
    }
    Ok(config)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("Shutting down");
}
