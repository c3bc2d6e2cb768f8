//! `wasmray run`: the operator against the kubeconfig's cluster, with the built-in components.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;

use crate::controller::{self, metrics::Metrics};
use crate::plugin::config::{PluginSource, PluginSpec, RegistryConfig};
use crate::plugin::registry::{Outcome, Registry};
use crate::plugin::watch::{ConfigLocation, PluginWatch, Sources};
use crate::runtime::{PluginKind, Runtime, RuntimeConfig};

/// The built-in RayCluster reconciler's package.
pub const RAYCLUSTER_RECONCILER: &str = "wasmray-raycluster";

/// How often plugin files are looked at for changes (ConfigMaps are watched, not polled).
pub const PLUGIN_POLL: Duration = Duration::from_secs(2);

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
    /// changes to it (or to the files and ConfigMap keys it names) are swapped in while running.
    #[arg(long, conflicts_with = "plugins_config_map")]
    plugins: Option<PathBuf>,
    /// A ConfigMap in the operator's namespace whose key `plugins.yaml` is the plugin
    /// configuration (as `--plugins`); changes to it, or to the ConfigMap keys it names, are
    /// swapped in while running, and every version loaded or rejected gets an Event.
    #[arg(long)]
    plugins_config_map: Option<String>,
    /// The operator's own namespace, where the plugins ConfigMap and ConfigMap sources are
    /// (default: $POD_NAMESPACE, else the kubeconfig's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    operator_namespace: Option<String>,
    /// The field manager of every write.
    #[arg(long, default_value = "wasmray")]
    field_manager: String,
    /// Reconciles running at once.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// The batch scheduler every Pod goes through, as KubeRay's flag of the same name:
    /// `volcano`, `yunikorn`, `kai-scheduler` or `scheduler-plugins` (the built-in plugin
    /// `wasmray-plugin-<name>`), or the name of a batch-scheduler plugin in the configuration.
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
        let location = match (self.plugins.clone(), self.plugins_config_map.clone()) {
            (Some(path), _) => ConfigLocation::File(path),
            (None, Some(name)) => ConfigLocation::ConfigMap(name),
            (None, None) => ConfigLocation::BuiltinsOnly,
        };
        let sources = Sources {
            builtins: builtins(self.batch_scheduler.as_deref()),
            config: location,
            namespace: self.operator_namespace.clone().unwrap_or_else(|| client.default_namespace().to_string()),
        };
        let (registry, watch) = load_plugins(client.clone(), runtime, sources, &self.field_manager).await?;
        tokio::spawn(watch.run(PLUGIN_POLL));
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

/// The built-in plugins: the RayCluster reconciler, and the batch scheduler's plugin
/// (`wasmray-plugin-<name>`) if one is named. A configuration's entries replace them by name.
pub fn builtins(batch_scheduler: Option<&str>) -> RegistryConfig {
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
    config
}

/// Loads every plugin of `sources` into a new registry and returns it with the watch that keeps
/// it current (spawn [`PluginWatch::run`]). Events name `controller` as their reporter.
///
/// # Errors
///
/// If the configuration cannot be read, or any plugin is rejected: the operator does not start
/// with a plugin missing (while running, a rejected version leaves the previous one serving).
pub async fn load_plugins(
    client: kube::Client,
    runtime: Runtime,
    sources: Sources,
    controller: &str,
) -> anyhow::Result<(Arc<Registry>, PluginWatch)> {
    let registry = Arc::new(Registry::new(runtime));
    let reporter = kube::runtime::events::Reporter {
        controller: controller.to_string(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let (watch, outcomes) = PluginWatch::start(registry.clone(), sources, client, reporter).await?;
    for (name, outcome) in outcomes {
        if let Outcome::Rejected { error, .. } = outcome {
            anyhow::bail!("plugin {name} cannot be loaded: {error}");
        }
    }
    Ok((registry, watch))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("Shutting down");
}
