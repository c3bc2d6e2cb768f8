//! The controller skeleton, generic over the primary kind: watch → cache → snapshot → guest →
//! plan → prepare → write.
//!
//! One round trip per reconcile:
//!
//! 1. The primary is watched on its own ([`watch`]); its children come from the operator's
//!    shared caches ([`crate::cache::Children`]), mapped to it by the kind's child label.
//!    Changes of children and facts wake it, coalesced; so do edits of its spec, labels,
//!    annotations and finalizers (status writes do not).
//! 2. A reconcile builds a [`Snapshot`] from the caches only — patched by expectations, so a
//!    lagging cache never shows too few Pods — plus the facts the host gathered, the injected
//!    clock's `now` and a fresh seed.
//! 3. The kind's reconciler component (a pure function) returns a plan; the runtime validated it.
//! 4. [`prepare`] turns the plan into writes (pure), the batch-scheduler plugin decorates Pods,
//!    and the one [`apply::Writer`] performs them, Events included.
//! 5. The plan's requeue hint (or the error policy) decides when to come back.
//!
//! A kind is an implementation of [`Kind`] (`kinds/`); nothing here names one.

pub mod apply;
pub mod events;
pub mod kinds;
pub mod metrics;
pub mod prepare;
pub mod schedule;
pub mod share;
pub mod upgrade;
mod watch;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::core::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, store::Writer as StoreWriter};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use tracing::Instrument;

use crate::cache::{Children, Expectations, Facts, Key, Owner};
use crate::plugin::registry::Registry;
use crate::pods::{BuildContext, BuildError};
use crate::runtime::{Child, Event, EventType, Fact, PluginError, RuntimeError, Snapshot};

use apply::{ApplyError, Primary, Report, Writer};
use metrics::Metrics;
use prepare::{Input, Role, Unbuildable, Verb};

/// The clock; injected so tests can fix time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A primary kind: what the skeleton needs to know to reconcile it.
pub trait Kind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The label every child carries, whose value is the primary's name.
    const CHILD_LABEL: &'static str;
    /// KubeRay's Event recorder name for this kind (`raycluster-controller`).
    const RECORDER: &'static str;
    /// The registry name of its reconciler component.
    const RECONCILER: &'static str;
    /// What its plans may write besides the primary itself.
    const WRITABLE: &'static [(&'static str, &'static str)];
    /// The Event reason for a spec the host cannot build or read.
    const INVALID_SPEC_REASON: &'static str;

    /// The objects a plan's `render` op stands for, built by the host's builders from the
    /// primary and, where they need them, its children (a RayJob's Service from its cluster).
    fn render(&self, child: &Child, ctx: &BuildContext, children: &[Value]) -> Result<Vec<Value>, BuildError>;

    /// Objects its reconciler reads besides those carrying its child label (a RayJob reads its
    /// cluster's head Pod, and the cluster its `clusterSelector` names).
    fn related(&self) -> Vec<Related> {
        Vec::new()
    }

    /// What the host polls on Ray for this primary, given it as JSON with the status its last
    /// reconcile wrote, and its children: polling stops when a reconcile no longer asks for it.
    fn polls(_primary: &Value, _children: &[Value], _build: &BuildContext) -> Vec<crate::ray::poller::Target> {
        Vec::new()
    }

    /// The registry name of the upgrade-strategy plugin the primary names (a RayService's
    /// `spec.upgradeStrategy.type`); every reconcile is told whether it is loaded.
    fn strategy(_primary: &Value) -> Option<String> {
        None
    }

    /// What the strategy decides from, while an upgrade runs; the host consults it before the
    /// reconcile and hands its decision in as a fact ([`upgrade`]).
    fn upgrade_input(_primary: &Value, _children: &[Value], _facts: &[crate::runtime::Fact], _now: i64) -> Option<crate::runtime::UpgradeInput> {
        None
    }

    /// KubeRay's Event reason for a failed write.
    fn failure_reason(verb: Verb, kind: &str, role: Role) -> &'static str;

    /// The facts a reconcile's writes leave for the next reconcile: `(key, Some(value))` sets a
    /// fact, `(key, None)` removes it.
    fn facts_after(report: &Report, unbuildable: &[Unbuildable]) -> Vec<(&'static str, Option<String>)>;
}

/// An object a kind reads that does not carry its child label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Related {
    /// Objects of `kind` carrying all of these labels.
    Labelled { kind: &'static str, labels: Vec<(&'static str, String)> },
    /// The object of `kind` with this name.
    Named { kind: &'static str, name: String },
}

/// How the controllers run; one for the operator.
#[derive(Clone)]
pub struct Config {
    /// What the operator's flags say, for the builders.
    pub build: BuildContext,
    /// Requeue after a successful reconcile whose plan gave no hint
    /// (`RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV`).
    pub default_requeue: Duration,
    /// Reconciles running at once, per controller.
    pub concurrency: u16,
    /// The registry name of the batch-scheduler plugin that decorates every Pod and creates
    /// companion objects (KubeRay's `--batch-scheduler`); `None` leaves Pods as rendered.
    pub batch_scheduler: Option<String>,
    /// Feature gate `RayClusterStatusConditions`.
    pub status_conditions: bool,
    /// The operator's settings that change decisions, handed to every reconciler as the fact
    /// [`SETTINGS_FACT`] (JSON; `None` when all are KubeRay's defaults).
    pub settings_fact: Option<String>,
}

/// The fact carrying the operator's settings (`ENABLE_GCS_FT_REDIS_CLEANUP`, …) to reconcilers.
pub const SETTINGS_FACT: &str = "wasmray.dev/operator-settings";

impl Default for Config {
    fn default() -> Self {
        Self {
            build: BuildContext::default(),
            default_requeue: Duration::from_secs(300),
            concurrency: 8,
            batch_scheduler: None,
            status_conditions: true,
            settings_fact: None,
        }
    }
}

/// What every controller of the operator shares.
#[derive(Clone)]
pub struct Shared {
    pub registry: Arc<Registry>,
    pub children: Children,
    pub facts: Arc<Facts>,
    pub writer: Writer,
    pub metrics: Metrics,
    pub clock: Clock,
    /// The Ray dashboard pollers; what they learn arrives as facts.
    pub poller: Arc<crate::ray::poller::Poller>,
}

/// Why a reconcile failed. Each variant is a metric label and decides its own retry.
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
            Error::Apply(e) => e.label(),
        }
    }

    /// When to try again.
    fn retry(&self) -> Duration {
        match self {
            // A spec that cannot be built stays wrong until someone edits it, which triggers anyway.
            Error::Build(_) | Error::Plugin(_) => Duration::from_secs(60),
            // Another replica leads now; this one stops before the retry matters.
            Error::Apply(ApplyError::NotLeader { .. }) => Duration::from_secs(30),
            // Another writer changed the primary: the cache shows it within moments.
            Error::Apply(e) if e.label() == "conflict" => Duration::from_millis(500),
            _ => Duration::from_secs(5),
        }
    }
}

struct Context<K> {
    shared: Shared,
    config: Config,
    expectations: Expectations,
    /// The status each primary was last written with, until the cache shows it.
    written: WrittenStatus,
    reporter: Reporter,
    resource: ApiResource,
    in_flight: Gauge,
    _kind: std::marker::PhantomData<fn() -> K>,
}

/// Runs the controller of `K` for one namespace scope (`None`: all) until `shutdown`
/// resolves; `store` receives the primaries (its reader serves the kind's metrics). Start it
/// once the shared caches are ready.
pub async fn run<K: Kind>(
    client: Client,
    shared: Shared,
    config: Config,
    namespace: Option<String>,
    store: StoreWriter<K>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let kind = K::kind(&()).to_string();
    let reporter = Reporter { controller: K::RECORDER.into(), instance: std::env::var("POD_NAME").ok() };
    let primaries = store.as_reader();
    // Other kinds' controllers read these primaries as children (a RayJob its RayCluster):
    // every change, status included, wakes those whose child label the object carries.
    let children = shared.children.clone();
    let watch = watch::primaries::<K>(&client, namespace.as_deref(), shared.writer.clone(), reporter.clone()).inspect(move |event| {
        if let Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object) | watcher::Event::Delete(object)) = event {
            children.touched(&object.namespace().unwrap_or_default(), object.labels());
        }
    });
    let events = reflector::reflector(store, watch)
        .applied_objects()
        // Our own status writes change none of these.
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers).combine(predicates::labels).combine(predicates::annotations),
            Default::default(),
        );
    let in_flight = shared.metrics.queue_depth(&kind);
    let to_ref = |key: Key| ObjectRef::<K>::new(&key.name).within(&key.namespace);
    let triggers = futures::stream::select(
        shared.children.subscribe(K::CHILD_LABEL, in_flight.clone()).map(to_ref),
        shared.facts.subscribe(&kind).map(to_ref),
    );
    let ctx = Arc::new(Context::<K> {
        expectations: Expectations::default(),
        written: WrittenStatus::default(),
        reporter,
        resource: ApiResource::erase::<K>(&()),
        in_flight,
        shared,
        config: config.clone(),
        _kind: std::marker::PhantomData,
    });
    tracing::info!(%kind, namespace = namespace.as_deref().unwrap_or("(all)"), "Reconciling");
    let shutdown = shutdown.shared();
    let controller = Controller::for_stream(events, primaries)
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|_| async {});
    // Graceful shutdown lets running reconciles finish; a watch stuck in its retry backoff must
    // not keep the process alive past that.
    tokio::select! {
        () = controller => {}
        () = async { shutdown.await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, %kind, "Controller still busy after shutdown; leaving");
        }
    }
}

/// How long reconciles in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn reconcile<K: Kind>(primary: Arc<K>, ctx: Arc<Context<K>>) -> Result<Action, Error> {
    let key = Key::new(primary.namespace().unwrap_or_default(), primary.name_any());
    let span = tracing::info_span!("reconcile", object.ref = %key, kind = %K::kind(&()));
    let started = Instant::now();
    ctx.in_flight.inc();
    let result = reconcile_inner::<K>(primary.as_ref(), &key, ctx.as_ref()).instrument(span.clone()).await;
    ctx.in_flight.dec();
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    ctx.shared.metrics.reconciled(&K::kind(&()), outcome, started);
    if let Err(error) = &result {
        span.in_scope(|| tracing::warn!(%error, "Reconcile failed"));
    }
    result
}

async fn reconcile_inner<K: Kind>(cached: &K, key: &Key, ctx: &Context<K>) -> Result<Action, Error> {
    let shared = &ctx.shared;
    let kind = K::kind(&());
    let now = (shared.clock)();
    let now_ms = unix_millis(now);
    // A reconcile triggered before the watch delivered our last status write must not decide
    // from the status before it (a RayJob would pick a second cluster name).
    let mut primary_json = crate::cache::typed_json(cached);
    let cached_version = cached.meta().resource_version.clone();
    let overlaid = ctx.written.overlay(key, cached_version.as_deref(), &mut primary_json, now).then(|| serde_json::from_value::<K>(primary_json.clone()).ok()).flatten();
    let primary = overlaid.as_ref().unwrap_or(cached);
    let uid = primary.meta().uid.clone();
    let owner = Owner { kind: &kind, namespace: &key.namespace, name: &key.name, uid: uid.as_deref(), label: K::CHILD_LABEL };
    let mut children = shared.children.of(&owner);
    for related in primary.related() {
        let found = match &related {
            Related::Labelled { kind, labels } => {
                let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                shared.children.matching(kind, &key.namespace, &labels)
            }
            Related::Named { kind, name } => shared.children.named(kind, &key.namespace, name).into_iter().collect(),
        };
        for object in found {
            let uid = &object["metadata"]["uid"];
            if !children.iter().any(|c| c["kind"] == object["kind"] && &c["metadata"]["uid"] == uid) {
                children.push(object);
            }
        }
    }
    ctx.expectations.patch(key, &mut children, now);
    let target = Primary {
        resource: &ctx.resource,
        namespace: &key.namespace,
        name: &key.name,
        reference: primary.object_ref(&()),
        reporter: &ctx.reporter,
        writable: K::WRITABLE,
        resource_version: primary.meta().resource_version.clone(),
    };

    let plugin = shared.registry.get(K::RECONCILER).ok_or_else(|| Error::NoReconciler(K::RECONCILER.into()))?;
    let mut facts = shared.facts.of(&kind, key);
    if let Some(settings) = &ctx.config.settings_fact {
        facts.push(Fact { key: SETTINGS_FACT.into(), value: settings.clone(), observed_at: now_ms });
    }
    if let Some(strategy) = K::strategy(&primary_json) {
        let input = K::upgrade_input(&primary_json, &children, &facts, now_ms);
        facts.extend(upgrade::consult(&shared.registry, &shared.metrics, &strategy, input, now_ms).await);
    }
    let snapshot = Snapshot {
        primary: primary_json.to_string(),
        // The reconciler gets only the fields it declared it reads; the host keeps whole children.
        children: plugin.child_mask().serialise(&children),
        facts,
        now: now_ms,
        seed: random_seed(),
    };
    let started = Instant::now();
    let result = plugin.reconcile(snapshot).await;
    shared.metrics.plugin_call(K::RECONCILER, "reconcile", result.as_ref().err().map_or("ok", RuntimeError::label), started);
    let plan = match result {
        Ok(plan) => plan,
        Err(RuntimeError::Plugin { error, .. }) => return Err(plugin_failed::<K>(ctx, &target, error).await),
        Err(error) => {
            let event = warning("ReconcilerFailed", &error.to_string());
            ctx.shared.writer.perform(&target, vec![prepare::Write::Event { event, after: None }]).await;
            return Err(error.into());
        }
    };
    tracing::debug!(ops = plan.ops.len(), requeue_after_ms = ?plan.requeue_after_ms, "Plan");

    let time = Time(system_to_jiff(now));
    let input = Input {
        primary: &primary_json,
        namespace: &key.namespace,
        children: &children,
        now: &time,
        build: &ctx.config.build,
        status_conditions: ctx.config.status_conditions,
    };
    let mut prepared = prepare::prepare(primary, &input, plan.ops);
    let schedule_error = match &ctx.config.batch_scheduler {
        Some(name) => {
            let scheduled = match shared.registry.get(name) {
                Some(scheduler) => {
                    let started = Instant::now();
                    let result = schedule::schedule(&mut prepared.writes, &scheduler, &primary_json, now_ms).await;
                    let outcome = match &result {
                        Ok(()) => "ok",
                        Err(Error::Runtime(e)) => e.label(),
                        Err(e) => e.label(),
                    };
                    shared.metrics.plugin_call(name, "schedule", outcome, started);
                    result
                }
                None => Err(Error::NoBatchScheduler(name.clone())),
            };
            scheduled.err().inspect(|error| {
                // Without the scheduler's PodGroup or labels the Pods would be scheduled
                // wrongly: none are created until the plugin works.
                schedule::withhold_scheduled(&mut prepared.writes, &primary_json);
                prepared.writes.push(prepare::Write::Event { event: warning("FailedToScheduleBatch", &error.to_string()), after: None });
            })
        }
        None => None,
    };

    crate::ray::poller::authorize(&mut prepared.writes, &shared.children, &key.namespace);
    // What to poll follows the status this reconcile leaves: a RayJob that just turned Running
    // is polled now, not after its next requeue.
    let mut after = primary_json.clone();
    if let Some(prepare::Write::Status { status }) = prepared.writes.iter().rev().find(|w| matches!(w, prepare::Write::Status { .. })) {
        after["status"] = status.clone();
    }
    // What to poll after the writes, whichever way they go, decided before them: the children
    // (a JSON value per Pod, several times its cached text) are not held while the writes wait
    // for their turns, which at eight reconciles in flight was the largest part of the heap.
    let polls_if_written = K::polls(&after, &children, &ctx.config.build);
    let polls_if_failed = K::polls(&primary_json, &children, &ctx.config.build);
    drop(children);
    let report = shared.writer.perform(&target, prepared.writes).await;
    match (&report.status, &report.error) {
        (Some((status, version)), _) => ctx.written.wrote(key, cached_version, status.clone(), version.clone(), now),
        // Someone else wrote the primary: decide again from what the cache shows of it.
        (None, Some(error)) if error.label() == "conflict" => ctx.written.forget(key),
        (None, _) => {}
    }
    let mut polls = if report.error.is_none() { polls_if_written } else { polls_if_failed };
    crate::ray::poller::authorize_polls(&mut polls, &shared.children, &key.namespace);
    shared.poller.track(&kind, key, polls);
    for pod in &report.created_pods {
        ctx.expectations.created(key, pod, now);
    }
    for uid in &report.deleted_pods {
        ctx.expectations.deleted(key, uid.clone(), now);
    }
    for (fact, value) in K::facts_after(&report, &prepared.unbuildable) {
        match value {
            Some(value) => {
                shared.facts.put(&kind, key, Fact { key: fact.into(), value, observed_at: now_ms });
            }
            None => {
                shared.facts.remove(&kind, key, fact);
            }
        }
    }
    if let Some(unbuildable) = prepared.unbuildable.into_iter().next() {
        return Err(unbuildable.error.into());
    }
    if let Some(error) = schedule_error {
        return Err(error);
    }
    if let Some(error) = report.error {
        return Err(error.into());
    }
    Ok(Action::requeue(plan.requeue_after_ms.map_or(ctx.config.default_requeue, Duration::from_millis)))
}

async fn plugin_failed<K: Kind>(ctx: &Context<K>, target: &Primary<'_>, error: PluginError) -> Error {
    let kind = K::kind(&());
    let (reason, message) = match &error {
        PluginError::InvalidSpec(m) => (K::INVALID_SPEC_REASON.to_string(), m.clone()),
        PluginError::InvalidInput(m) => (format!("Invalid{kind}Input"), m.clone()),
        PluginError::NotReady(m) => ("NotReady".into(), m.clone()),
        PluginError::Unsupported(m) => ("Unsupported".into(), m.clone()),
        PluginError::Internal(m) => ("ReconcilerFailed".into(), m.clone()),
    };
    if !matches!(error, PluginError::NotReady(_)) {
        let event = warning(&reason, &message);
        ctx.shared.writer.perform(target, vec![prepare::Write::Event { event, after: None }]).await;
    }
    Error::Plugin(format!("{reason}: {message}"))
}

/// Read your own status writes: the status last written for each primary, laid over the cached
/// one while the cache still shows the version that write was decided from. Status writes are
/// conditional on that version, so once the cache moves past it, it shows this write or a later
/// one (ours or another writer's) and the overlay goes; [`WRITTEN_STATUS_TTL`] bounds a watch
/// that never delivers.
#[derive(Default)]
struct WrittenStatus(std::sync::Mutex<std::collections::HashMap<Key, Written>>);

/// One status write, as [`WrittenStatus`] keeps it.
struct Written {
    /// The cached primary's `resourceVersion` when the write was decided.
    cached: Option<String>,
    status: Value,
    /// The primary's `resourceVersion` after the write.
    version: Option<String>,
    at: SystemTime,
}

/// How long a written status is laid over a cache that does not show it.
const WRITTEN_STATUS_TTL: Duration = Duration::from_secs(30);

impl WrittenStatus {
    fn wrote(&self, key: &Key, cached: Option<String>, status: Value, version: Option<String>, at: SystemTime) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), Written { cached, status, version, at });
    }

    fn forget(&self, key: &Key) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Lays the written status (and the version it got) over `primary`, cached at version
    /// `cached`, if the cache lags behind the write; whether it did.
    fn overlay(&self, key: &Key, cached: Option<&str>, primary: &mut Value, now: SystemTime) -> bool {
        let mut written = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = written.get(key) else { return false };
        let expired = now.duration_since(w.at).is_ok_and(|age| age > WRITTEN_STATUS_TTL);
        if expired || w.cached.as_deref() != cached || primary["status"] == w.status {
            written.remove(key);
            return false;
        }
        primary["status"] = w.status.clone();
        if let Some(version) = &w.version {
            primary["metadata"]["resourceVersion"] = Value::String(version.clone());
        }
        true
    }
}

fn error_policy<K: Kind>(_primary: Arc<K>, error: &Error, _ctx: Arc<Context<K>>) -> Action {
    Action::requeue(error.retry())
}

fn unix_millis(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn warning(reason: &str, message: &str) -> Event {
    Event { type_: EventType::Warning, reason: reason.into(), message: message.into(), regarding: None }
}

fn system_to_jiff(now: SystemTime) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::try_from(now).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

fn random_seed() -> u64 {
    let mut seed = [0u8; 8];
    random_bytes(&mut seed);
    u64::from_le_bytes(seed)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    #[test]
    fn a_written_status_is_read_back_with_its_version_until_the_cache_shows_it() {
        let written = WrittenStatus::default();
        let key = Key::new("ml", "pi");
        written.wrote(&key, Some("7".into()), serde_json::json!({ "rayClusterName": "pi-abc12" }), Some("8".into()), at(0));

        let mut stale = serde_json::json!({ "metadata": { "name": "pi", "resourceVersion": "7" } });
        assert!(written.overlay(&key, Some("7"), &mut stale, at(1)), "the cache has not caught up");
        assert_eq!(stale["status"]["rayClusterName"], "pi-abc12");
        assert_eq!(stale["metadata"]["resourceVersion"], "8", "the next status write is conditional on the written version");

        let mut fresh = serde_json::json!({ "metadata": { "name": "pi", "resourceVersion": "8" }, "status": { "rayClusterName": "pi-abc12" } });
        assert!(!written.overlay(&key, Some("8"), &mut fresh, at(2)), "the cache shows the write");
        let mut later = serde_json::json!({ "status": { "rayClusterName": "other" } });
        assert!(!written.overlay(&key, Some("7"), &mut later, at(3)), "once seen, the write is forgotten");
        assert_eq!(later["status"]["rayClusterName"], "other");
    }

    #[test]
    fn a_cache_past_the_version_a_write_was_decided_from_wins_over_the_write() {
        let written = WrittenStatus::default();
        let key = Key::new("ml", "pi");
        written.wrote(&key, Some("7".into()), serde_json::json!({ "state": "ready" }), Some("8".into()), at(0));
        let mut another_writer_after_us = serde_json::json!({ "metadata": { "resourceVersion": "9" }, "status": { "state": "ready", "conditions": [{ "type": "Theirs" }] } });
        assert!(!written.overlay(&key, Some("9"), &mut another_writer_after_us, at(1)));
        assert_eq!(another_writer_after_us["status"]["conditions"][0]["type"], "Theirs");
    }

    #[test]
    fn a_written_status_the_cache_never_shows_is_forgotten_after_a_while() {
        let written = WrittenStatus::default();
        let key = Key::new("ml", "pi");
        written.wrote(&key, Some("7".into()), serde_json::json!({ "state": "ready" }), Some("8".into()), at(0));
        let mut stuck = serde_json::json!({ "metadata": { "resourceVersion": "7" }, "status": { "state": "suspended" } });
        assert!(!written.overlay(&key, Some("7"), &mut stuck, at(31)));
        assert_eq!(stuck["status"]["state"], "suspended");
    }

    #[test]
    fn a_forgotten_write_is_not_laid_over_the_cache() {
        let written = WrittenStatus::default();
        let key = Key::new("ml", "pi");
        written.wrote(&key, Some("7".into()), serde_json::json!({ "state": "ready" }), Some("8".into()), at(0));
        written.forget(&key);
        let mut cached = serde_json::json!({ "metadata": { "resourceVersion": "7" }, "status": {} });
        assert!(!written.overlay(&key, Some("7"), &mut cached, at(1)));
    }
}
