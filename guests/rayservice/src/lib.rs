//! The RayService reconciler: a pure function from a snapshot of a RayService, its RayClusters, Services, head Pods, EndpointSlices and Serve facts to a plan.
//!
//! [`reconcile`] classifies the RayService into one state ([`State`]: Deleting, Invalid,
//! TimedOut, Suspending, Serving) and, when serving, runs KubeRay v1.5.2's steps in its order:
//! the clusters (name a pending one, create it, update one in place), the head Pods' Serve
//! label, the Serve config of the pending cluster (and of the active one unless an upgrade
//! freezes it), the promotion or the upgrade strategy's step, the Services (and the Gateway and
//! HTTPRoute of a Gateway strategy), the delayed deletion of unreferenced clusters, then the
//! conditions. The same snapshot always gives the same plan: cluster names come from the
//! snapshot's seed, time from its `now`, and everything KubeRay keeps in memory (the config
//! last deployed per cluster, when a cluster became unreferenced) lives in the status, so an
//! operator restart resumes where the last pass stopped.
//!
//! # The contract with the host
//!
//! ## Children the snapshot must hold (all in the RayService's namespace)
//!
//! - the RayClusters labelled `ray.io/originated-from-cr-name: <rayservice>` and
//!   `ray.io/originated-from-crd: RayService`, with their status (others are ignored);
//! - the Services the RayService made: `<rayservice>-head-svc`, the serve Service
//!   (`spec.serveService.metadata.name` or `<rayservice>-serve-svc`) and, with a Gateway
//!   strategy, the per-cluster `<cluster>-serve-svc`; the Gateway `<rayservice>-gateway` and the
//!   HTTPRoute `<rayservice>-httproute` (`gateway.networking.k8s.io/v1`), with their status;
//! - the head Pod of the active and of the pending cluster (`ray.io/cluster=<cluster>`,
//!   `ray.io/node-type=head`), with its status (phase, Ready condition);
//! - the `discovery.k8s.io/v1` EndpointSlices labelled `kubernetes.io/service-name: <serve
//!   Service>` (and per-cluster serve Service): `numServeEndpoints` counts their endpoints
//!   whose `conditions.ready` is not false.
//!
//! ## Facts (`snapshot.facts`), all JSON (types in [`wasmray_api::serve`])
//!
//! - `ray.io/serve-applications/<cluster>`, `ray.io/serve-proxy/<cluster>` and
//!   `wasmray.dev/serve-submission/<cluster>` for the clusters named in
//!   `status.activeServiceStatus.rayClusterName` and `status.pendingServiceStatus.rayClusterName`
//!   (a pending cluster is named in the status one pass before it is created, so the host polls
//!   it from the start). A submission answer counts only if its `configHash` is the request's
//!   and the host observed it (`observed-at`) at or after the request's `requestedAt`.
//! - `wasmray.dev/upgrade-strategy`: every pass; `loaded: false` stops a changed spec from
//!   being rolled out (`UpgradeInProgress` False `UnknownUpgradeStrategy`, one Warning). Absent:
//!   taken as loaded.
//! - `wasmray.dev/upgrade-step`: while both clusters exist; used only when its `active` and
//!   `pending` are this pass's names. Its `strategy` and `version` are in every Event and
//!   condition message about a step.
//! - `wasmray.dev/operator-settings`: `clusterDomain` (default `cluster.local`) and
//!   `enableZeroDowntime` (default `true`; `false` is KubeRay's `ENABLE_ZERO_DOWNTIME=false`,
//!   which turns upgrades off for RayServices that set no `upgradeStrategy.type`).
//!
//! ## Ops
//!
//! - `apply` of a RayCluster: the RayService's labels and annotations (less
//!   `kubectl.kubernetes.io/last-applied-configuration`) plus the originated-from labels, the
//!   annotations `wasmray.dev/cluster-spec-hash` (see [`cluster`]'s docs) and
//!   `ray.io/num-worker-groups`, the raw `rayClusterConfig` as spec, owned by the RayService
//!   (controller reference with its UID). The same apply updates a cluster in place.
//! - `apply` of Services, the Gateway and the HTTPRoute, whole, with namespace and owner
//!   reference (the RayService; a per-cluster serve Service is owned by its RayCluster). They are
//!   applied every pass: the host drops applies whose fields already hold.
//! - `apply` of a partial head Pod `{apiVersion: v1, kind: Pod, metadata: {name, namespace,
//!   labels: {ray.io/serve: "true"|"false"}}}`, only when the label differs.
//! - `apply` of `dashboard.wasmray.dev/v1` `ServeApplications` named by the cluster, `spec` a
//!   [`wasmray_api::serve::ServeRequest`]; never sent to the API server.
//! - `delete` of a RayCluster (with its UID) after the delay, and on suspend of the clusters,
//!   Services, Gateway and HTTPRoute.
//! - `status`: only the top-level fields that changed (`null` clears one), `lastUpdateTime`
//!   when anything did, and the conditions `Ready`, `UpgradeInProgress`, `RollbackInProgress`,
//!   `Suspending`, `Suspended` (removal markers for those that go).
//! - `event`s with KubeRay's reasons where KubeRay has one; each follows the write it tells of.
//! - `requeue-after-ms`: 2 s (KubeRay's requeue) while anything moves (a pending cluster, a
//!   deploy in flight, Ready not True), else the next deletion or timeout, else none.
//!
//! ## wasmray's status fields
//!
//! - `unreferencedClusters` (map cluster → RFC 3339): when each cluster stopped being active
//!   or pending; it is deleted `rayClusterDeletionDelaySeconds` (default 60) later.
//! - `rolledBackClusterHash`: the spec hash of the last pending cluster a strategy aborted; no
//!   pending cluster is made for that spec again until `rayClusterConfig` changes.
//! - per cluster (`activeServiceStatus`, `pendingServiceStatus`): `serveConfigHash` (the
//!   config + target capacity Serve accepted last) and `serveConfigRequest` (`configHash`,
//!   `requestedAt`, `failed`: the deploy in flight; asked again after 30 s without an answer,
//!   and at once after a refusal, which is told once as a Warning).
//!
//! # Where wasmray differs from KubeRay v1.5.2
//!
//! - v1.6 and v1.7 behaviour is in: `managedBy` (another value: an empty plan), an invalid spec
//!   is Ready False `ValidationFailed` with one Warning (and nothing else happens), `suspend`
//!   (conditions `Suspending`/`Suspended`, reasons `SuspendInProgress`, `SuspendComplete`,
//!   `RayServiceResumed`), `RollbackInProgress`, EndpointSlices.
//! - `upgradeStrategy.type` names any loaded strategy plugin; the plugin decides `wait`,
//!   `shift`, `promote` or `abort`; an unloaded one is said in the condition, and a plugin that
//!   fails moves nothing (`UpgradeInProgress` True `UpgradeStrategyFailed`, a Warning).
//! - The first cluster is promoted as soon as its applications are all RUNNING, without the
//!   strategy (no traffic to move yet).
//! - A `shift` is applied only through a Gateway (`clusterUpgradeOptions.gatewayClassName`).
//!   The active cluster's new target capacity is pushed only while Serve there runs the
//!   RayService's current `serveConfigV2` (KubeRay re-sends the config it cached for that
//!   cluster; wasmray keeps only its hash): when the Serve config changed together with the
//!   cluster spec, the old cluster keeps its config and its capacity until it is replaced.
//! - The spec hash is wasmray's own: a cluster without `wasmray.dev/cluster-spec-hash` (one
//!   KubeRay made) is adopted as up to date rather than replaced. The `ray.io/kuberay-version`
//!   annotation is neither written nor compared.
//! - Ready's message says what the RayService waits for (the cluster, its head Pod and the
//!   cause the RayCluster's conditions name, the deploy, the applications not yet RUNNING) and a
//!   DEPLOY_FAILED or UNHEALTHY application's Serve message (kuberay#3467, #5088); KubeRay
//!   leaves it empty. During an upgrade, `UpgradeInProgress` says why the pending cluster
//!   cannot start (`Unschedulable: 0/3 nodes…`, kuberay#4239) instead of waiting in silence.
//! - KubeRay's §2.2 RayCluster spec rules are left to the RayCluster reconciler, which
//!   validates the cluster made from `rayClusterConfig`; only an empty head container list
//!   fails here.
//! - The pending cluster of `NewClusterWithIncrementalUpgrade` keeps the worker replicas of the
//!   spec (KubeRay unsets them for the autoscaler).

mod children;
mod cluster;
mod facts;
mod machine;
mod serve;
mod services;
mod status;
mod validate;
pub mod vocab;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;


use serde_json::Value;
use wasmray_api::RayService;
use wasmray_guest_sdk::{EventType, ObjectRef, Op, Plan, PluginError, Reconciler, Snapshot, parse};

use children::Children;
use facts::Facts;
pub use machine::State;
use status::Status;

/// What every step reads.
pub struct Ctx<'a> {
    pub service: &'a RayService,
    pub raw: &'a Value,
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: Option<&'a str>,
    pub children: &'a Children,
    pub facts: &'a Facts,
    pub now_ms: i64,
    pub seed: u64,
}

impl Ctx<'_> {
    /// A RayService annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.service.metadata.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The controller reference every object the RayService creates carries.
    pub fn owner_reference(&self) -> Value {
        wasmray_guest_sdk::controller_reference(wasmray_api::API_VERSION, "RayService", self.name, self.uid)
    }

    /// A child, by its own apiVersion, kind, name and UID.
    pub fn child_ref(&self, child: &Value) -> ObjectRef {
        ObjectRef::of_child(child, self.namespace)
    }
}

/// The plan being built: child writes and Events in order, the status last.
pub struct Out {
    pub ops: Vec<Op>,
    pub status: Status,
    pub requeue_after_ms: Option<u64>,
}

impl Out {
    fn apply(&mut self, object: Value) {
        self.ops.push(Op::Apply(object.to_string()));
    }
    fn delete(&mut self, object: ObjectRef) {
        self.ops.push(Op::Delete(object));
    }
    fn event(&mut self, type_: EventType, reason: &str, message: impl Into<String>) {
        let plan = Plan { ops: std::mem::take(&mut self.ops), requeue_after_ms: None };
        self.ops = plan.event(type_, reason, &message.into()).ops;
    }
    /// Come back at `at_ms` (never later than another timer asked).
    fn wake_at(&mut self, now_ms: i64, at_ms: i64) {
        let after = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0).max(1);
        self.requeue_after_ms = Some(self.requeue_after_ms.map_or(after, |r| r.min(after)));
    }
    /// KubeRay's regular look at a RayService whose state moves.
    fn poll(&mut self) {
        self.requeue_after_ms = Some(self.requeue_after_ms.map_or(vocab::POLL_MS, |r| r.min(vocab::POLL_MS)));
    }
}

/// Decides what to do about one RayService.
///
/// # Errors
/// [`PluginError::InvalidInput`] when the primary or a child does not parse. An invalid spec is
/// not an error: it is v1.6's `ValidationFailed` condition and a Warning Event.
pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PluginError> {
    let raw: Value = parse(&snapshot.primary)?;
    let service: RayService = serde_json::from_value(raw.clone())
        .map_err(|e| PluginError::InvalidInput(format!("the primary object is not a RayService: {e}")))?;
    let name = service.metadata.name.as_deref().filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| PluginError::InvalidInput("the RayService has no metadata.name".into()))?;
    if service.spec.managed_by.as_deref().is_some_and(|m| m != vocab::MANAGED_BY_OPERATOR) {
        // Another controller owns it; not even its status is ours.
        return Ok(Plan::new());
    }
    let status = service.status.as_ref();
    let names = [
        status.and_then(|s| s.active_service_status.as_ref()).and_then(|s| s.ray_cluster_name.as_deref()),
        status.and_then(|s| s.pending_service_status.as_ref()).and_then(|s| s.ray_cluster_name.as_deref()),
    ];
    let children = Children::parse(&snapshot.children, name)?;
    let facts = Facts::read(snapshot, names.into_iter().flatten());
    let ctx = Ctx {
        service: &service,
        raw: &raw,
        name,
        namespace: service.metadata.namespace.as_deref().unwrap_or("default"),
        uid: service.metadata.uid.as_deref(),
        children: &children,
        facts: &facts,
        now_ms: snapshot.now,
        seed: snapshot.seed,
    };
    let mut out = Out { ops: Vec::new(), status: Status::of(status), requeue_after_ms: None };
    machine::run(&ctx, &mut out);
    let mut ops = out.ops;
    if service.metadata.deletion_timestamp.is_none()
        && let Some(update) = out.status.into_update(snapshot.now, service.metadata.generation)
    {
        ops.push(Op::Status(update));
    }
    Ok(Plan { ops, requeue_after_ms: out.requeue_after_ms })
}

/// The component's entry point.
pub struct RayServiceReconciler;

impl Reconciler for RayServiceReconciler {
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError> {
        reconcile(&snapshot)
    }
}

wasmray_guest_sdk::export_reconciler!(RayServiceReconciler);
