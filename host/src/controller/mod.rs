//! The RayCluster controller: watch → cache → snapshot → guest → plan → apply.
//!
//! One round trip per reconcile:
//!
//! 1. Watches: RayClusters, and each owned kind label-scoped (`ray.io/cluster`) with
//!    `managedFields` stripped ([`cache`]). Changes to children map to their RayCluster by label.
//! 2. A reconcile reads the latest RayCluster from the store and builds a [`Snapshot`] from the
//!    caches only — patched by expectations, so a lagging cache never shows too few Pods — plus
//!    the injected clock's `now` and a fresh seed.
//! 3. The reconciler component (a pure function) returns a plan; the runtime has validated it.
//! 4. `render` ops become objects through the host's builders ([`crate::pods`]); the one
//!    [`apply::Applier`] performs the writes: creates in slow-start batches, deletes with UID
//!    preconditions, status only when it changed, Events.
//! 5. The plan's requeue hint (or the error policy) decides when to come back.
//!
//! The controller starts reconciling only once every cache holds its initial list.

pub mod apply;
pub mod cache;
pub mod metrics;
pub mod project;
mod render;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use kube::runtime::{Predicate, WatchStreamExt, predicates};
use kube::{Client, Resource, ResourceExt};
use tracing::Instrument;
use wasmray_api::RayCluster;

use crate::plugin::registry::Registry;
use crate::pods::{BuildContext, BuildError};
use crate::runtime::{Event, EventType, Fact, Op, OwnerContext, PluginError, PodContext, RuntimeError, Snapshot};

use apply::{ApplyError, Applier};
use cache::{ChildStores, Expectations};
use metrics::Metrics;

/// The fact through which the host tells the reconciler that a Pod write failed last time
/// (JSON [`ReplicaFailure`]: `{"reason": …, "message": …}`); it drives the
/// `RayClusterReplicaFailure` condition.
pub const REPLICA_FAILURE_FACT: &str = "wasmray.dev/replica-failure";

/// A Pod write that failed: KubeRay's reason (`FailedCreateHeadPod`, `FailedCreateWorkerPod`,
/// `FailedDeleteHeadPod`, `FailedDeleteWorkerPod`) and the API server's message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReplicaFailure {
    /// KubeRay's reason.
    pub reason: &'static str,
    /// What went wrong.
    pub message: String,
}

impl ReplicaFailure {
    fn new(verb: &str, head: bool, message: String) -> Self {
        let reason = match (verb, head) {
            ("create", true) => "FailedCreateHeadPod",
            ("create", false) => "FailedCreateWorkerPod",
            (_, true) => "FailedDeleteHeadPod",
            (_, false) => "FailedDeleteWorkerPod",
        };
        Self { reason, message }
    }
}

/// The clock; injected so tests can fix time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How the RayCluster controller runs.
#[derive(Clone)]
pub struct Config {
    /// Watch one namespace only; `None` watches all.
    pub namespace: Option<String>,
    /// The field manager of every write (and the Events' reporting controller).
    pub field_manager: String,
    /// The registry name of the RayCluster reconciler component.
    pub reconciler: String,
    /// What the operator's flags say, for the builders.
    pub build: BuildContext,
    /// Requeue after a successful reconcile whose plan gave no hint.
    pub default_requeue: Duration,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// The registry name of the batch-scheduler plugin that decorates every Pod and creates
    /// companion objects (KubeRay's `--batch-scheduler`); `None` leaves Pods as rendered.
    pub batch_scheduler: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            namespace: None,
            field_manager: "wasmray".into(),
            reconciler: "raycluster".into(),
            build: BuildContext::default(),
            default_requeue: Duration::from_secs(300),
            concurrency: 8,
            batch_scheduler: None,
        }
    }
}

/// Why a reconcile failed. Each variant maps to a metric label and a retry delay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured reconciler is not loaded.
    #[error("no reconciler plugin named {0:?} is loaded")]
    NoReconciler(String),
    /// The component trapped, timed out, ran out of memory or answered nonsense.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The component reported an error on purpose.
    #[error("the reconciler reported: {0}")]
    Plugin(String),
    /// The configured batch-scheduler plugin is not loaded.
    #[error("no batch-scheduler plugin named {0:?} is loaded")]
    NoBatchScheduler(String),
    /// The spec cannot be built into objects.
    #[error("building children: {0}")]
    Build(#[from] BuildError),
    /// A write failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl Error {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::NoReconciler(_) => "no_reconciler",
            Error::NoBatchScheduler(_) => "no_batch_scheduler",
            Error::Runtime(e) => e.label(),
            Error::Plugin(_) => "plugin_error",
            Error::Build(_) => "build_error",
            Error::Apply(_) => "apply_error",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    registry: Arc<Registry>,
    stores: ChildStores,
    expectations: Expectations,
    /// The last failed Pod write per RayCluster, handed to the next reconcile as a fact.
    failures: Mutex<HashMap<ObjectRef<RayCluster>, ReplicaFailure>>,
    applier: Applier,
    config: Config,
    metrics: Metrics,
    clock: Clock,
}

/// Runs the RayCluster controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    registry: Arc<Registry>,
    config: Config,
    metrics: Metrics,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (stores, triggers) = ChildStores::start(&client, config.namespace.as_deref());
    // The reflectors are driven by their own task, so the caches fill before the controller
    // starts; the controller hears about changed children through the channel.
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded();
    let triggers_task = tokio::spawn(triggers.for_each(move |t| {
        let _ = trigger_tx.unbounded_send(t);
        async {}
    }));

    let writer: Writer<RayCluster> = Writer::default();
    let clusters = writer.as_reader();
    let cluster_events = reflector::reflector(writer, watch::typed_clusters(&client, config.namespace.as_deref(), &config.field_manager))
    .applied_objects()
    // Our own status writes do not bump the generation; deletion and finalizer changes do matter.
    .predicate_filter(predicates::generation.combine(predicates::finalizers), Default::default());

    tracing::info!("Waiting for caches");
    stores.ready().await;
    tracing::info!("Caches ready; reconciling RayClusters");

    let ctx = Arc::new(Context {
        registry,
        stores,
        expectations: Expectations::default(),
        failures: Mutex::new(HashMap::new()),
        applier: Applier::new(client, &config.field_manager, metrics.clone()),
        metrics,
        clock,
        config: config.clone(),
    });
    let controller_config = kube::runtime::controller::Config::default().concurrency(config.concurrency);
    let shutdown = shutdown.shared();
    let controller = Controller::for_stream(cluster_events, clusters)
        .with_config(controller_config)
        .reconcile_on(trigger_rx)
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "Reconcile failed");
            }
        });
    // Graceful shutdown lets running reconciles finish; a watch stuck in its retry backoff must
    // not keep the process alive past that.
    tokio::select! {
        () = controller => {}
        () = async { shutdown.await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "Controller still busy after shutdown; leaving");
        }
    }
    triggers_task.abort();
}

/// How long reconciles in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn reconcile(cluster: Arc<RayCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(cluster.as_ref());
    let span = tracing::info_span!("reconcile", object.ref = %key, kind = "RayCluster");
    let started = Instant::now();
    let result = reconcile_inner(&cluster, &key, &ctx).instrument(span).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    ctx.metrics.reconciled("RayCluster", outcome, started);
    result
}

async fn reconcile_inner(cluster: &RayCluster, key: &ObjectRef<RayCluster>, ctx: &Context) -> Result<Action, Error> {
    let now = (ctx.clock)();
    let snapshot = snapshot(cluster, key, ctx, now);
    let plugin = ctx.registry.get(&ctx.config.reconciler).ok_or_else(|| Error::NoReconciler(ctx.config.reconciler.clone()))?;
    let plan = match plugin.reconcile(snapshot).await {
        Ok(plan) => plan,
        Err(RuntimeError::Plugin { error, .. }) => return Err(plugin_failed(cluster, ctx, error).await),
        Err(error) => {
            let event = warning("ReconcilerFailed", &error.to_string());
            let _ = ctx.applier.event(cluster, &event).await;
            return Err(error.into());
        }
    };
    tracing::debug!(ops = plan.ops.len(), requeue_after_ms = ?plan.requeue_after_ms, "Plan");
    let requeue = plan.requeue_after_ms.map_or(ctx.config.default_requeue, Duration::from_millis);
    let namespace = cluster.namespace().unwrap_or_default();
    let mut pending_renders = Vec::new();
    let mut outcome = Outcome::default();
    let mut ops = plan.ops.into_iter().peekable();
    while let Some(op) = ops.next() {
        match op {
            Op::Render(child) => {
                match render::render(cluster, &child, &ctx.config.build) {
                    Ok(objects) => pending_renders.extend(objects),
                    Err(error) => {
                        let _ = ctx.applier.event(cluster, &warning("InvalidRayClusterSpec", &error.to_string())).await;
                        outcome.replica_failed(ReplicaFailure::new("create", child_is_head(&child), error.to_string()));
                        outcome.failed(error);
                    }
                }
                // Consecutive renders go out as one slow-start batch.
                if !matches!(ops.peek(), Some(Op::Render(_))) {
                    let mut objects = std::mem::take(&mut pending_renders);
                    if let Err(error) = schedule(cluster, ctx, &namespace, &mut objects, now).await {
                        // Without the scheduler's PodGroup or labels the Pods would be scheduled
                        // wrongly: none are created until the plugin works.
                        let _ = ctx.applier.event(cluster, &warning("FailedToScheduleBatch", &error.to_string())).await;
                        outcome.failed(error);
                        continue;
                    }
                    create(cluster, key, ctx, &namespace, objects, &mut outcome).await;
                }
            }
            Op::Apply(object) => {
                let object: serde_json::Value = serde_json::from_str(&object).unwrap_or_default();
                if let Err(error) = ctx.applier.apply(&namespace, object).await {
                    outcome.failed(error);
                }
            }
            Op::Delete(target) => match ctx.applier.delete(&namespace, &target).await {
                Ok(()) if target.kind == "Pod" => {
                    if let Some(uid) = target.uid {
                        ctx.expectations.deleted(key, uid);
                    }
                }
                Ok(()) => {}
                Err(error) => {
                    if target.kind == "Pod" {
                        let head = target.name.starts_with(&format!("{}-head", cluster.name_any()));
                        outcome.replica_failed(ReplicaFailure::new("delete", head, error.to_string()));
                    }
                    outcome.failed(error);
                }
            },
            Op::Status(update) => {
                if let Err(error) = ctx.applier.status(cluster, &update, &Time(system_to_jiff(now))).await {
                    outcome.failed(error);
                }
            }
            Op::Event(event) => {
                if let Err(error) = ctx.applier.event(cluster, &event).await {
                    tracing::warn!(%error, "Event not recorded");
                }
            }
        }
    }
    {
        let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
        match outcome.replica_failure {
            Some(failure) => failures.insert(key.clone(), failure),
            None => failures.remove(key),
        };
    }
    match outcome.error {
        Some(error) => Err(error),
        None => Ok(Action::requeue(requeue)),
    }
}

/// What a plan's writes came to: the first error (returned, so the error policy retries) and the
/// first failed Pod write (handed to the next reconcile as a fact). Writes after a failure still
/// run: a failed create must not keep the status or the Events from being written.
#[derive(Default)]
struct Outcome {
    error: Option<Error>,
    replica_failure: Option<ReplicaFailure>,
}

impl Outcome {
    fn failed(&mut self, error: impl Into<Error>) {
        self.error.get_or_insert(error.into());
    }

    fn replica_failed(&mut self, failure: ReplicaFailure) {
        self.replica_failure.get_or_insert(failure);
    }
}

async fn create(
    cluster: &RayCluster,
    key: &ObjectRef<RayCluster>,
    ctx: &Context,
    namespace: &str,
    objects: Vec<serde_json::Value>,
    outcome: &mut Outcome,
) {
    if objects.is_empty() {
        return;
    }
    let wanted_head = objects.iter().any(|o| o["kind"] == "Pod" && o["metadata"]["labels"]["ray.io/node-type"] == "head");
    let (created, error) = ctx.applier.create_all(namespace, objects).await;
    let mut created_head = false;
    for object in created {
        if object["kind"] == "Pod" {
            created_head |= object["metadata"]["labels"]["ray.io/node-type"] == "head";
            ctx.expectations.created(key, object);
        }
    }
    if let Some(error) = error {
        let replica_failure = ReplicaFailure::new("create", wanted_head && !created_head, error.to_string());
        let _ = ctx.applier.event(cluster, &warning(replica_failure.reason, &replica_failure.message)).await;
        outcome.replica_failed(replica_failure);
        outcome.failed(error);
    }
}

/// Lets the batch-scheduler plugin (if one is configured) see the Pods about to be created:
/// first its companion objects for the RayCluster (a PodGroup, say) are applied, owned by the
/// RayCluster, then each Pod gets the plugin's labels, annotations and scheduler name.
async fn schedule(
    cluster: &RayCluster,
    ctx: &Context,
    namespace: &str,
    objects: &mut [serde_json::Value],
    now: SystemTime,
) -> Result<(), Error> {
    let Some(name) = &ctx.config.batch_scheduler else { return Ok(()) };
    if !objects.iter().any(|o| o["kind"] == "Pod") {
        return Ok(());
    }
    let plugin = ctx.registry.get(name).ok_or_else(|| Error::NoBatchScheduler(name.clone()))?;
    let owner = primary_json(cluster).to_string();
    let kinds = plugin.companion_kinds()?;
    let companions = plugin
        .on_submission(OwnerContext { owner: owner.clone(), companions: Vec::new(), now: unix_millis(now) })
        .await?;
    for mut companion in companions.iter().filter_map(|c| serde_json::from_str::<serde_json::Value>(c).ok()) {
        let declared = kinds.iter().any(|k| companion["apiVersion"] == k.api_version.as_str() && companion["kind"] == k.kind.as_str());
        if !declared {
            return Err(ApplyError::Refused {
                action: format!("applying {} {}", companion["kind"], companion["metadata"]["name"]),
                reason: "the plugin did not declare this kind in companion-kinds".into(),
            }
            .into());
        }
        companion["metadata"]["namespace"] = namespace.into();
        companion["metadata"]["ownerReferences"] = serde_json::json!([owner_reference(cluster)]);
        ctx.applier.apply_companion(namespace, companion).await?;
    }
    for pod in objects.iter_mut().filter(|o| o["kind"] == "Pod") {
        let group_name = pod["metadata"]["labels"]["ray.io/group"].as_str().unwrap_or_default().to_string();
        let decoration =
            plugin.decorate_pod(PodContext { owner: owner.clone(), group_name, pod: pod.to_string() }).await?;
        for (key, value) in decoration.labels {
            pod["metadata"]["labels"][key] = value.into();
        }
        for (key, value) in decoration.annotations {
            if !pod["metadata"]["annotations"].is_object() {
                pod["metadata"]["annotations"] = serde_json::json!({});
            }
            pod["metadata"]["annotations"][key] = value.into();
        }
        if let Some(scheduler) = decoration.scheduler_name {
            pod["spec"]["schedulerName"] = scheduler.into();
        }
    }
    Ok(())
}

fn owner_reference(cluster: &RayCluster) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": RayCluster::api_version(&()),
        "kind": RayCluster::kind(&()),
        "name": cluster.name_any(),
        "uid": cluster.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

async fn plugin_failed(cluster: &RayCluster, ctx: &Context, error: PluginError) -> Error {
    let (reason, message) = match &error {
        PluginError::InvalidSpec(m) => ("InvalidRayClusterSpec", m.clone()),
        PluginError::InvalidInput(m) => ("InvalidRayClusterInput", m.clone()),
        PluginError::NotReady(m) => ("NotReady", m.clone()),
        PluginError::Unsupported(m) => ("Unsupported", m.clone()),
        PluginError::Internal(m) => ("ReconcilerFailed", m.clone()),
    };
    if !matches!(error, PluginError::NotReady(_)) {
        let _ = ctx.applier.event(cluster, &warning(reason, &message)).await;
    }
    Error::Plugin(format!("{reason}: {message}"))
}

fn error_policy(_cluster: Arc<RayCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "Reconcile failed");
    match error {
        // A spec that cannot be built stays wrong until someone edits it, which triggers anyway.
        Error::Build(_) | Error::Plugin(_) => Action::requeue(Duration::from_secs(60)),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

fn snapshot(cluster: &RayCluster, key: &ObjectRef<RayCluster>, ctx: &Context, now: SystemTime) -> Snapshot {
    let now_time = system_to_jiff(now);
    let mut children = ctx.stores.children_of(cluster);
    ctx.expectations.patch(key, &mut children, &now_time.to_string());
    let primary = primary_json(cluster);
    let now_ms = unix_millis(now);
    let facts = ctx
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .map(|failure| Fact {
            key: REPLICA_FAILURE_FACT.into(),
            value: serde_json::to_string(failure).unwrap_or_default(),
            observed_at: now_ms,
        })
        .into_iter()
        .collect();
    let mut seed = [0u8; 8];
    random_bytes(&mut seed);
    Snapshot {
        primary: primary.to_string(),
        children: children.iter().map(ToString::to_string).collect(),
        facts,
        now: now_ms,
        seed: u64::from_le_bytes(seed),
    }
}

/// The RayCluster as JSON with its apiVersion and kind, as guests receive it.
fn primary_json(cluster: &RayCluster) -> serde_json::Value {
    let mut primary = serde_json::to_value(cluster).unwrap_or_default();
    if let Some(map) = primary.as_object_mut() {
        map.insert("apiVersion".into(), RayCluster::api_version(&()).into());
        map.insert("kind".into(), RayCluster::kind(&()).into());
    }
    primary
}

fn unix_millis(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn child_is_head(child: &crate::runtime::Child) -> bool {
    matches!(child, crate::runtime::Child::HeadPod(_))
}

fn warning(reason: &str, message: &str) -> Event {
    Event { type_: EventType::Warning, reason: reason.into(), message: message.into(), regarding: None }
}

fn system_to_jiff(now: SystemTime) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::try_from(now).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// Fills `out` from the kernel's randomness (seeds and auth tokens).
pub(crate) fn random_bytes(out: &mut [u8]) {
    use std::io::Read;
    if let Err(error) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(out)) {
        // Without /dev/urandom fall back to the hasher's per-process random keys.
        tracing::warn!(%error, "Reading /dev/urandom failed");
        use std::hash::{BuildHasher, Hasher};
        for chunk in out.chunks_mut(8) {
            let value = std::collections::hash_map::RandomState::new().build_hasher().finish().to_le_bytes();
            chunk.copy_from_slice(&value[..chunk.len()]);
        }
    }
}
