//! `wasmray run`: the operator's wiring — the client, shared caches, plugins, the controllers,
//! the endpoints, leader election and shutdown.

pub mod admin;
pub mod leader;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use kube::runtime::reflector;
use wasmray_api::{RayCluster, RayJob, RayService};

use crate::cache::{Children, Facts, Lent, ORIGINATED_LABEL, OptionalApis};
use crate::controller::apply::{Leadership, Writer};
use crate::controller::share::Budget;
use crate::controller::kinds::metrics::{ClusterMetrics, JobMetrics, ServiceMetrics};
use crate::controller::{self, Shared, metrics::Metrics};
use crate::plugin::config::{PluginSource, PluginSpec, RegistryConfig};
use crate::ray::poller::Poller;
use crate::plugin::registry::{Outcome, Registry};
use crate::plugin::watch::{PluginWatch, Sources};
use crate::runtime::{PluginKind, Runtime, RuntimeConfig};

pub use admin::Readiness;
pub use settings::{RunArgs, Settings, SettingsError};

/// The built-in RayCluster reconciler's package.
pub const RAYCLUSTER_RECONCILER: &str = "wasmray-raycluster";
/// The built-in RayJob reconciler's package.
pub const RAYJOB_RECONCILER: &str = "wasmray-rayjob";
/// The built-in RayService reconciler's package.
pub const RAYSERVICE_RECONCILER: &str = "wasmray-rayservice";
/// The built-in upgrade strategies: the registry name `spec.upgradeStrategy.type` uses, and the package.
pub const UPGRADE_STRATEGIES: [(&str, &str); 4] = [
    (wasmray_api::serve::NEW_CLUSTER, "wasmray-strategy-new-cluster"),
    (wasmray_api::serve::NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE, "wasmray-strategy-incremental-upgrade"),
    (wasmray_api::serve::NONE, "wasmray-strategy-none"),
    (wasmray_api::serve::CANARY, "wasmray-strategy-canary"),
];

/// How often plugin files are looked at for changes (ConfigMaps are watched, not polled).
pub const PLUGIN_POLL: Duration = Duration::from_secs(2);

impl RunArgs {
    /// `wasmray run` with these flags (after the subcommand), as the command line would parse them.
    ///
    /// # Errors
    ///
    /// If clap refuses the flags.
    pub fn from_flags<I: IntoIterator<Item = S>, S: Into<std::ffi::OsString> + Clone>(flags: I) -> Result<Self, clap::Error> {
        #[derive(clap::Parser)]
        struct Run {
            #[command(flatten)]
            args: RunArgs,
        }
        use clap::Parser as _;
        let argv = std::iter::once(std::ffi::OsString::from("wasmray")).chain(flags.into_iter().map(Into::into));
        Ok(Run::try_parse_from(argv)?.args)
    }

    /// Whether logs are JSON (`--log-stdout-encoder json`), for the logger set up before `run`.
    pub fn log_json(&self) -> bool {
        self.log_stdout_encoder == "json"
    }

    /// Runs the operator until Ctrl-C or SIGTERM (or until it loses the leader lease).
    pub fn run(self) -> anyhow::Result<()> {
        let settings = Settings::read(self, &|name| std::env::var(name).ok())?;
        crate::memory::use_one_arena();
        tokio::runtime::Runtime::new()?.block_on(async move { Operator::start(settings).await?.run(shutdown_signal()).await })
    }
}

/// A started operator: connected, plugins loaded, endpoints serving; [`Operator::run`] runs it.
pub struct Operator {
    settings: Settings,
    client: kube::Client,
    registry: Arc<Registry>,
    writer: Writer,
    facts: Arc<Facts>,
    poller: Arc<Poller>,
    leadership: Leadership,
    metrics: Metrics,
    cluster_metrics: Arc<ClusterMetrics>,
    job_metrics: Arc<JobMetrics>,
    service_metrics: Arc<ServiceMetrics>,
    readiness: Readiness,
    /// Where `/metrics` is served, once bound.
    pub metrics_addr: Option<SocketAddr>,
    /// Where `/healthz` and `/readyz` are served, once bound.
    pub health_addr: Option<SocketAddr>,
}

impl Operator {
    /// Connects, serves the endpoints (`/readyz` answers 503 until [`Operator::run`] has synced
    /// the caches), and loads every plugin.
    ///
    /// # Errors
    ///
    /// If the cluster cannot be reached, an endpoint cannot be bound, or a plugin is rejected:
    /// the operator does not start with a plugin missing.
    pub async fn start(mut settings: Settings) -> anyhow::Result<Self> {
        let (client, write_client) = clients(&settings).await?;
        let groups = served_groups(&client).await?;
        settings.openshift = groups.iter().any(|g| g.ends_with(".openshift.io"));
        settings.gateway_api = groups.iter().any(|g| g == crate::cache::gateway::GROUP);
        settings.controller.settings_fact = settings.settings_fact();
        let mut prometheus = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut prometheus);
        let cluster_metrics = Arc::new(ClusterMetrics::default());
        prometheus.register_collector(Box::new(cluster_metrics.clone()));
        let job_metrics = Arc::new(JobMetrics::default());
        prometheus.register_collector(Box::new(job_metrics.clone()));
        let service_metrics = Arc::new(ServiceMetrics::default());
        prometheus.register_collector(Box::new(service_metrics.clone()));
        let readiness = Readiness::default();
        let (metrics_addr, health_addr) =
            admin::serve(settings.metrics_addr, settings.health_addr, Arc::new(prometheus), readiness.clone()).await?;
        let leadership = if settings.leader_election.is_some() { Leadership::standby() } else { Leadership::always() };
        let facts = Arc::new(Facts::default());
        let poller = Poller::new(facts.clone(), settings.dashboard_resolver.clone(), leadership.clone(), metrics.clone());
        let budget = Budget { qps: settings.qps, burst: settings.burst, in_flight: settings.writes_in_flight };
        let writer = Writer::new(write_client, &settings.field_manager, metrics.clone(), leadership.clone()).with_budget(budget).with_poller(poller.clone());

        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(settings.compile_cache_dir.clone().unwrap_or_else(|| crate::dev::cache_root().join("compiled"))),
            ..RuntimeConfig::default()
        })?;
        let sources = Sources {
            builtins: builtins(settings.controller.batch_scheduler.as_deref()),
            config: settings.plugins.clone(),
            namespace: operator_namespace(&settings, &client),
        };
        let registry = load_plugins(client.clone(), runtime, sources, writer.clone(), &settings.field_manager).await?;
        tracing::info!(plugins = ?registry.names(), ?metrics_addr, ?health_addr, "wasmray operator started");
        Ok(Self { settings, client, registry, writer, facts, poller, leadership, metrics, cluster_metrics, job_metrics, service_metrics, readiness, metrics_addr, health_addr })
    }

    /// Syncs the caches (then `/readyz` is 200), waits for the leader lease if leader election
    /// is on, and reconciles until `shutdown` resolves.
    ///
    /// # Errors
    ///
    /// If leader election cannot start, or the lease is lost: the operator stops writing at
    /// once and returns, so that a restart campaigns again.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Operator { settings, client, registry, writer, facts, poller, leadership, metrics, cluster_metrics, job_metrics, service_metrics, readiness, .. } = self;
        let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
        // Tasks that live as long as this call: a JoinSet aborts them when dropped.
        let mut background = tokio::task::JoinSet::new();
        background.spawn(crate::memory::release_while_running(TRIM_EVERY));
        // Standby replicas keep warm caches too, so a take-over does not start from an empty one.
        // Each scope's RayClusters are watched once, by their controller; the RayJob
        // controller reads its clusters from that same store.
        let scopes: Vec<Scope> = settings
            .scopes
            .iter()
            .map(|namespace| {
                let (clusters, clusters_writer) = reflector::store::<RayCluster>();
                let lent = vec![Lent::store(clusters.clone(), ORIGINATED_LABEL)];
                let apis = OptionalApis { routes: settings.routes(), gateway: settings.gateway_api };
                let children = Children::start(&client, namespace.as_deref(), lent, apis);
                Scope { namespace: namespace.clone(), children, clusters, clusters_writer }
            })
            .collect();
        let synced = async {
            for scope in &scopes {
                scope.children.ready().await;
            }
        };
        tokio::select! {
            () = synced => {}
            () = shutdown.clone() => return Ok(()),
        }
        readiness.set();
        tracing::info!("Caches ready");

        let mut campaign = match &settings.leader_election {
            Some(election) => {
                let namespace = election.namespace.clone().unwrap_or_else(|| operator_namespace(&settings, &client));
                let identity = leader::identity();
                let mut campaign = leader::Campaign::start(client.clone(), &namespace, &election.name, &identity).await?;
                tracing::info!(lease = %format!("{namespace}/{}", election.name), %identity, "Waiting for the leader lease");
                tokio::select! {
                    () = campaign.won() => {}
                    () = shutdown.clone() => { campaign.release().await; return Ok(()) }
                }
                leadership.set(true);
                tracing::info!(%identity, "Leading");
                Some(campaign)
            }
            None => None,
        };

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let guard_leadership = leadership.clone();
        let guard = tokio::spawn(async move {
            let lost = tokio::select! {
                () = shutdown => false,
                () = async { match campaign.as_mut() { Some(c) => c.lost(&guard_leadership).await, None => std::future::pending().await } } => true,
            };
            let _ = stop_tx.send(true);
            (lost, campaign)
        });

        let mut controllers = Vec::new();
        for Scope { namespace: scope, children, clusters, clusters_writer } in scopes {
            let shared = Shared {
                registry: registry.clone(),
                children,
                facts: facts.clone(),
                writer: writer.clone(),
                metrics: metrics.clone(),
                clock: Arc::new(SystemTime::now),
                poller: poller.clone(),
            };
            let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            cluster_metrics.watch(clusters.clone());
            controllers.push(tokio::spawn(controller::run::<RayCluster>(
                client.clone(),
                shared.clone(),
                settings.controller.clone(),
                scope.clone(),
                clusters_writer,
                stopped(stop_rx.clone()),
            )));
            // A RayJob's or RayService's first reconcile must see its clusters: an empty store
            // would look like clusters to create. The store's readiness wakes one waiter only
            // (the RayCluster controller waits on it too), so it is asked again until it says so.
            let clusters_ready = |clusters: reflector::Store<RayCluster>| async move {
                while tokio::time::timeout(Duration::from_millis(200), clusters.wait_until_ready()).await.is_err() {}
            };
            let (rayjobs, jobs_writer) = reflector::store::<RayJob>();
            job_metrics.watch(rayjobs);
            let (rayjob_client, config, stop) = (client.clone(), settings.controller.clone(), stop_rx.clone());
            let (rayjob_shared, rayjob_scope, ready) = (shared.clone(), scope.clone(), clusters_ready(clusters.clone()));
            controllers.push(tokio::spawn(async move {
                tokio::select! {
                    () = ready => {}
                    () = stopped(stop.clone()) => return,
                }
                controller::run::<RayJob>(rayjob_client, rayjob_shared, config, rayjob_scope, jobs_writer, stopped(stop)).await;
            }));
            let (rayservices, services_writer) = reflector::store::<RayService>();
            service_metrics.watch(rayservices);
            let (client, config, stop, ready) = (client.clone(), settings.controller.clone(), stop_rx.clone(), clusters_ready(clusters));
            controllers.push(tokio::spawn(async move {
                tokio::select! {
                    () = ready => {}
                    () = stopped(stop.clone()) => return,
                }
                controller::run::<RayService>(client, shared, config, scope, services_writer, stopped(stop)).await;
            }));
        }
        for controller in controllers {
            let _ = controller.await;
        }
        let (lost, campaign) = guard.await.context("the shutdown guard")?;
        if lost {
            anyhow::bail!("lost the leader lease; stopped writing");
        }
        if let Some(campaign) = campaign {
            campaign.release().await;
        }
        Ok(())
    }
}

/// How often a running operator checks whether its heap moved enough to return freed memory.
const TRIM_EVERY: Duration = Duration::from_secs(2);

/// The API groups the apiserver serves: any `*.openshift.io` is KubeRay's test for OpenShift;
/// `gateway.networking.k8s.io` says the Gateway API's CRDs are installed.
async fn served_groups(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    let groups = client.list_api_groups().await.context("listing the apiserver's API groups")?;
    Ok(groups.groups.into_iter().map(|g| g.name).collect())
}

/// One watched scope (a namespace, or the whole cluster when `None`): its shared child caches,
/// and the RayCluster store its RayCluster controller fills and its RayJob controller reads.
struct Scope {
    namespace: Option<String>,
    children: Children,
    clusters: reflector::Store<RayCluster>,
    clusters_writer: reflector::store::Writer<RayCluster>,
}

/// The operator's namespace: the flag (or `$POD_NAMESPACE`), else the kubeconfig's.
fn operator_namespace(settings: &Settings, client: &kube::Client) -> String {
    settings.operator_namespace.clone().unwrap_or_else(|| client.default_namespace().to_string())
}

/// The operator's two clients, over one configuration: reads (watches, lists, the lease) limited
/// to `--qps` requests a second on average and `--burst` at once; and the writer's, unlimited
/// here because the writer meters its writes itself, within the same `--qps`/`--burst`, by
/// turns per primary ([`crate::controller::share`]): behind the reads' window one cluster's
/// burst of creates would keep every other cluster's writes, and the lease's renewal, waiting.
async fn clients(settings: &Settings) -> anyhow::Result<(kube::Client, kube::Client)> {
    let config = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("using {}", path.display()))?
        }
        None => kube::Config::infer().await.context("connecting to the cluster")?,
    };
    // A window of `burst` requests per burst/qps seconds: on average qps, at most burst at once.
    let window = Duration::from_secs_f64(f64::from(settings.burst) / f64::from(settings.qps));
    let limit = tower::limit::RateLimitLayer::new(u64::from(settings.burst), window);
    let reads = kube::client::ClientBuilder::try_from(config.clone()).context("building the client")?.with_layer(&limit).build();
    let writes = kube::Client::try_from(config).context("building the writer's client")?;
    Ok((reads, writes))
}

/// The built-in plugins: the RayCluster, RayJob and RayService reconcilers, the upgrade strategies
/// ([`UPGRADE_STRATEGIES`]), and the batch scheduler's plugin (`wasmray-plugin-<name>`) if one
/// is named. A configuration's entries replace them by name.
pub fn builtins(batch_scheduler: Option<&str>) -> RegistryConfig {
    let reconciler = |name: &str, package: &str| PluginSpec {
        name: name.into(),
        kind: PluginKind::Reconciler,
        source: PluginSource::Builtin(package.into()),
        sha256: None,
    };
    let mut config = RegistryConfig {
        plugins: vec![
            reconciler("raycluster", RAYCLUSTER_RECONCILER),
            reconciler("rayjob", RAYJOB_RECONCILER),
            reconciler("rayservice", RAYSERVICE_RECONCILER),
        ],
    };
    config.plugins.extend(UPGRADE_STRATEGIES.iter().map(|(name, package)| PluginSpec {
        name: (*name).into(),
        kind: PluginKind::UpgradeStrategy,
        source: PluginSource::Builtin((*package).into()),
        sha256: None,
    }));
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

/// Loads every plugin of `sources` into a new registry and spawns the watch that keeps it
/// current. Its Events go through `writer`, reported as `controller`.
///
/// # Errors
///
/// If the configuration cannot be read, or any plugin is rejected: the operator does not start
/// with a plugin missing (while running, a rejected version leaves the previous one serving).
pub async fn load_plugins(
    client: kube::Client,
    runtime: Runtime,
    sources: Sources,
    writer: Writer,
    controller: &str,
) -> anyhow::Result<Arc<Registry>> {
    let registry = Arc::new(Registry::new(runtime));
    let reporter = kube::runtime::events::Reporter {
        controller: controller.to_string(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let (watch, outcomes) = PluginWatch::start(registry.clone(), sources, client, writer, reporter).await?;
    for (name, outcome) in outcomes {
        if let Outcome::Rejected { error, .. } = outcome {
            anyhow::bail!("plugin {name} cannot be loaded: {error}");
        }
    }
    tokio::spawn(watch.run(PLUGIN_POLL));
    Ok(registry)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("Shutting down");
}
