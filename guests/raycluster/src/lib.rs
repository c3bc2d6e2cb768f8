//! The RayCluster reconciler: a pure function from a snapshot of a RayCluster and its children to a plan.
//!
//! The host watches, caches, builds objects and writes; this crate decides. [`reconcile`] first
//! classifies the cluster ([`Phase`]: deleting, suspending, suspended, running), then plans the
//! companions (autoscaler RBAC, auth Secret, Services), the Pods and the status, in KubeRay
//! v1.5.2's order. The same snapshot always gives the same plan: randomness comes from the
//! snapshot's seed, time from its `now`.
//!
//! # The contract with the host
//!
//! - Pods are recognised by KubeRay's labels: `ray.io/node-type` (`head`, `worker`),
//!   `ray.io/group`, `ray.io/cluster`; multi-host workers by `ray.io/worker-group-replica-name`
//!   and `ray.io/worker-group-replica-index`. Services, the cleanup Job, the auth Secret and the
//!   RBAC objects are recognised by the names the host's builders give them.
//! - A failed create in the previous pass arrives as the fact `wasmray.dev/replica-failure`,
//!   `{"message": "...", "reason": "FailedCreateWorkerPod"}` (`reason` optional, one of
//!   KubeRay's `FailedCreateHeadPod`, `FailedCreateWorkerPod`, `FailedDeleteHeadPod`,
//!   `FailedDeleteWorkerPod`, `FailedDeleteAllPods`; default `FailedCreateWorkerPod`).
//! - The GCS FT finalizer `ray.io/gcs-ft-redis-cleanup-finalizer` is added and removed by
//!   server-side apply of the RayCluster's `metadata.finalizers` under the host's field manager.
//! - An invalid spec is [`PluginError::InvalidSpec`]; the host turns it into a condition and a
//!   Warning Event (`InvalidRayClusterSpec`).
//! - A condition that no longer applies (`RayClusterReplicaFailure` once the failure is over) is
//!   removed with [`wasmray_guest_sdk::Condition::removal`], the WIT's documented marker.
//!
//! # Where wasmray differs from KubeRay v1.5.2 (compatibility is not at stake in any)
//!
//! - Terminating Pods count as gone when scaling, and excess workers are deleted not-ready first,
//!   then in an order fixed by the Pod's name (not the list order): two passes that see the same
//!   surplus pick the same Pods, so no in-memory expectations are needed to avoid over-deleting.
//! - Suspend deletes the Pods in the pass that sets `RayClusterSuspending` (KubeRay waits one
//!   more pass), and resuming creates Pods in the pass that clears `RayClusterSuspended`.
//! - A status with both `RayClusterSuspending` and `RayClusterSuspended` True is repaired (the
//!   suspend finishes) with an `InvalidRayClusterStatus` Warning, instead of stalling.
//! - `RayClusterProvisioned` turns True only when the expected number of Pods is there and all are
//!   Running and Ready, not merely when the Pods that exist are.
//! - The GCS FT finalizer is bounded: after `ray.io/gcs-ft-deletion-timeout` (default 300 s,
//!   measured from `deletionTimestamp`) it is removed with a `ForceDeletedStuckCluster` Warning,
//!   as KubeRay v1.7 does. The finalizer is added in the same pass that creates the Pods.
//! - `workersToDelete` deletes only Pods of that group of this cluster; unknown names are ignored.
//! - `HeadPodReady` with the Pod reason `ContainersNotReady` carries the first non-ready
//!   container's own reason, its message appended as `; container <name>: <message>`.
//! - A head Pod that cannot run says why in `HeadPodReady` (False) even where KubeRay says
//!   nothing: an unschedulable Pod, which has no `Ready` condition, gives the scheduler's reason
//!   (`Unschedulable`) and message (`0/3 nodes are available: 3 Insufficient nvidia.com/gpu.`);
//!   a stuck or failed init container gives its reason and `init container <name>: <message>`.
//!   The causes, in the order they are looked for, are those of `children::Cause`.
//! - `WorkerPodsReady` (ours) does the same for the workers, which KubeRay's conditions do not
//!   cover: False with the first cause found among the live worker Pods taken by name (its
//!   reason, message `worker Pod <name> (group <g>): <message>`), False `WorkerPodsNotReady`
//!   (`<ready> of <expected> worker Pods are Ready`) while Pods are missing or on their way up
//!   without a cause, True `AllWorkerPodsReady` once every live worker is Running and Ready and
//!   none is missing. It is absent from a cluster without workers and removed while the cluster
//!   suspends or is suspended. Like every condition it is written only with the feature gate
//!   `RayClusterStatusConditions` (the host drops the plan's conditions without it). The RayJob
//!   reconciler reads both to say why a RayJob waits.
//! - A group of 0 hosts (`numOfHosts: 0`) gets no Pods and counts for nothing.
//! - Settings that do nothing (`ray.io/ft-enabled` on a Pod template, `num-gpus` against the
//!   container's GPU limit; see [`ignored`]) get a Warning `IgnoredSetting` and the condition
//!   `RayClusterIgnoredSettings` (ours) while they last; they still do what KubeRay does with them.
//! - `enableIngress` applies the Ingress rather than creating it once, so spec changes reach it,
//!   and turning it off deletes it (see [`ingress`]).
//! - Upgrades ([`upgrade`]): v1.6's `upgradeStrategy: Recreate`, with the recreate hash on every
//!   Pod rather than the head alone, and a rolling worker-group update of our own, opted into by
//!   the annotation `wasmray.dev/upgrade-strategy: RollingUpdate`.
//! - `AutoscalerServiceAccountNotFound` is recorded when the API server refuses the head Pod for
//!   the missing account (the account is not a child, so it is not looked up beforehand).

mod children;
mod companions;
mod desired;
mod gcs;
mod ignored;
mod ingress;
mod pods;
mod status;
mod suffixes;
pub mod upgrade;
pub mod vocab;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde_json::Value;
use wasmray_api::RayCluster;
use wasmray_guest_sdk::{
    Child, EventType, FieldMask, ObjectRef, Op, Plan, PluginError, Reconciler, Snapshot, parse,
};

use children::Children;
use suffixes::Suffixes;
use vocab::{REPLICA_FAILURE_FACT, conditions, events, reasons};

/// KubeRay's `RAYCLUSTER_DEFAULT_REQUEUE_SECONDS` (300 s): look again even if nothing happens.
pub const DEFAULT_REQUEUE_MS: u64 = 300_000;
/// KubeRay's short requeue after an error or a status change.
pub const SHORT_REQUEUE_MS: u64 = 2_000;

/// Where the cluster is in its life, from `deletionTimestamp`, `spec.suspend` and the suspend
/// conditions of its status (the conditions make suspend atomic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `deletionTimestamp` is set.
    Deleting,
    /// Pods are deleted until none remain, whatever `spec.suspend` says meanwhile. `fresh`: this
    /// pass starts the suspend; `invalid`: the status had Suspending and Suspended both True.
    Suspending { fresh: bool, invalid: bool },
    /// No Pods; `resume` once `spec.suspend` is false again.
    Suspended { resume: bool },
    /// Everything else.
    Running,
}

impl Phase {
    /// Classifies a RayCluster.
    pub fn of(cluster: &RayCluster) -> Self {
        if cluster.metadata.deletion_timestamp.is_some() {
            return Phase::Deleting;
        }
        let suspend = cluster.spec.suspend == Some(true);
        let suspending = status::condition_true(cluster, conditions::SUSPENDING);
        let suspended = status::condition_true(cluster, conditions::SUSPENDED);
        match (suspending, suspended) {
            (true, invalid) => Phase::Suspending {
                fresh: false,
                invalid,
            },
            (false, true) => Phase::Suspended { resume: !suspend },
            (false, false) if suspend => Phase::Suspending {
                fresh: true,
                invalid: false,
            },
            (false, false) => Phase::Running,
        }
    }

    /// The suspend condition that was True before this pass, if any.
    fn suspend_status(self) -> Option<&'static str> {
        match self {
            Phase::Suspending { fresh: false, .. } => Some(conditions::SUSPENDING),
            Phase::Suspended { .. } => Some(conditions::SUSPENDED),
            _ => None,
        }
    }
}

/// What every step reads.
pub(crate) struct Ctx<'a> {
    pub cluster: &'a RayCluster,
    pub name: &'a str,
    pub namespace: &'a str,
    pub children: &'a Children,
    pub autoscaling: bool,
    pub now_ms: i64,
    pub suffixes: Suffixes,
    /// What a template change does to running Pods.
    pub strategy: upgrade::Strategy,
    /// The dashboard gets an OpenShift Route instead of an Ingress (the operator's settings).
    pub openshift_route: bool,
}

/// The plan being built, and whether the pass met what KubeRay counts as a reconcile error.
#[derive(Default)]
pub(crate) struct Out {
    pub plan: Plan,
    pub failure: Option<String>,
    /// What the rolling update has left to do, for its condition.
    pub rollout: upgrade::Rollout,
}

impl Out {
    fn render(&mut self, child: Child) {
        self.plan.ops.push(Op::Render(child));
    }
    fn delete(&mut self, object: ObjectRef) {
        self.plan.ops.push(Op::Delete(object));
    }
    fn apply(&mut self, json: String) {
        self.plan.ops.push(Op::Apply(json));
    }
    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.plan = std::mem::take(&mut self.plan).event(type_, reason, &message);
    }
    fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }
}

/// Decides what to do about one RayCluster.
///
/// # Errors
/// [`PluginError::InvalidInput`] when the primary or a child does not parse;
/// [`PluginError::InvalidSpec`] when the spec breaks a rule the CRD schema cannot express.
pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PluginError> {
    let primary: Value = parse(&snapshot.primary)?;
    let cluster: RayCluster = serde_json::from_value(primary.clone()).map_err(|e| {
        PluginError::InvalidInput(format!("the primary object is not a RayCluster: {e}"))
    })?;
    let name = cluster.metadata.name.as_deref().filter(|n| !n.is_empty());
    let name = name
        .ok_or_else(|| PluginError::InvalidInput("the RayCluster has no metadata.name".into()))?;
    if cluster
        .spec
        .managed_by
        .as_deref()
        .is_some_and(|m| m != vocab::MANAGED_BY_OPERATOR)
    {
        // Another controller (MultiKueue) owns it; not even its status is ours.
        return Ok(Plan::new());
    }
    let children = Children::parse(&snapshot.children, name)?;
    let existing: BTreeSet<String> = children.pods.iter().map(|p| p.name.clone()).collect();
    let mut ctx = Ctx {
        cluster: &cluster,
        name,
        namespace: cluster.metadata.namespace.as_deref().unwrap_or("default"),
        children: &children,
        autoscaling: cluster.spec.enable_in_tree_autoscaling == Some(true),
        now_ms: snapshot.now,
        suffixes: Suffixes::new(snapshot.seed, existing),
        strategy: upgrade::Strategy::None,
        openshift_route: setting(snapshot, "useOpenShiftRoute").unwrap_or(false),
    };
    let mut out = Out::default();
    let phase = Phase::of(&cluster);
    if phase == Phase::Deleting {
        gcs::on_deletion(&ctx, &mut out);
        return Ok(out.plan);
    }
    validate(&cluster)?;
    ctx.strategy = upgrade::Strategy::of(&cluster).map_err(PluginError::InvalidSpec)?;
    let ignored = ignored::find(&cluster);
    // First in the plan, so the Warnings hang on no write; only when the findings changed.
    let recorded = status::condition_message(&cluster, conditions::IGNORED_SETTINGS);
    if !ignored.is_empty() && recorded.as_deref() != Some(ignored::message(&ignored).as_str()) {
        for finding in &ignored {
            out.event(EventType::Warning, events::IGNORED_SETTING, finding.message.clone());
        }
    }

    if gcs::enabled(&cluster) && redis_cleanup_enabled(snapshot) && !gcs::has_finalizer(&cluster) {
        out.apply(gcs::finalizer_patch(&ctx, true));
    }
    companions::reconcile(&ctx, &mut out);
    let replica_failure = replica_failure(snapshot);
    companions::missing_autoscaler_account(&ctx, &mut out, replica_failure.as_ref());
    match phase {
        Phase::Suspending { invalid, .. } => {
            if invalid {
                let message = "RayClusterSuspending and RayClusterSuspended are both True; finishing the suspend".to_owned();
                out.event(EventType::Warning, events::INVALID_STATUS, message);
            }
            pods::delete_all(&ctx, &mut out, "suspension");
        }
        Phase::Suspended { resume: false } => {}
        Phase::Running | Phase::Suspended { resume: true } => pods::reconcile(&mut ctx, &mut out),
        Phase::Deleting => unreachable!("handled above"),
    }

    let inputs = status::Inputs {
        phase,
        failed: out.failure.is_some(),
        replica_failure,
        ignored: &ignored,
        rollout: upgrade::condition(
            ctx.strategy,
            &out.rollout,
            status::has_condition(&cluster, conditions::ROLLING_UPDATE_IN_PROGRESS),
        ),
        now_ms: snapshot.now,
        children: &children,
    };
    let (update, changed) = status::compute(&cluster, &primary, &inputs);
    out.plan.ops.push(Op::Status(update));
    let busy = changed || out.failure.is_some() || matches!(phase, Phase::Suspending { .. });
    out.plan.requeue_after_ms = Some(if busy {
        SHORT_REQUEUE_MS
    } else {
        DEFAULT_REQUEUE_MS
    });
    Ok(out.plan)
}

/// Rules the CRD schema cannot hold, checked before anything is written.
fn validate(cluster: &RayCluster) -> Result<(), PluginError> {
    let invalid = |m: String| Err(PluginError::InvalidSpec(m));
    let no_containers = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| {
        t.spec.as_ref().is_none_or(|s| s.containers.is_empty())
    };
    if no_containers(&cluster.spec.head_group_spec.template) {
        return invalid("headGroupSpec.template.spec.containers is empty; the Ray container must be containers[0]".into());
    }
    // KubeRay rejects this too: the variable alone would make the head talk to Redis without
    // anything else fault tolerance needs (storage namespace, worker reconnects, cleanup).
    let head_env = cluster.spec.head_group_spec.template.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.env.as_ref());
    if !gcs::enabled(cluster) && head_env.into_iter().flatten().any(|e| e.name == "RAY_REDIS_ADDRESS") {
        return invalid(
            "headGroupSpec.template.spec.containers[0].env RAY_REDIS_ADDRESS is set but GCS fault tolerance is not enabled; \
             set spec.gcsFaultToleranceOptions.redisAddress instead (it sets RAY_REDIS_ADDRESS on the head)"
                .into(),
        );
    }
    let mut seen = BTreeSet::new();
    for group in cluster.spec.worker_group_specs.iter().flatten() {
        let name = &group.group_name;
        if no_containers(&group.template) {
            return invalid(format!(
                "workerGroupSpecs[{name}].template.spec.containers is empty; the Ray container must be containers[0]"
            ));
        }
        if !seen.insert(name.as_str()) {
            return invalid(format!("worker group name {name:?} is used more than once"));
        }
        if desired::group_suspended(group) && cluster.spec.enable_in_tree_autoscaling == Some(true)
        {
            return invalid(format!(
                "workerGroupSpecs[{name}].suspend cannot be used with enableInTreeAutoscaling: the autoscaler owns the group's size"
            ));
        }
    }
    Ok(())
}

/// The operator's `ENABLE_GCS_FT_REDIS_CLEANUP` (default true), from the host's settings fact:
/// without it a fault-tolerant cluster gets no cleanup finalizer, as in KubeRay.
fn redis_cleanup_enabled(snapshot: &Snapshot) -> bool {
    setting(snapshot, "enableGcsFtRedisCleanup").unwrap_or(true)
}

/// A boolean of the host's settings fact, if it names it.
fn setting(snapshot: &Snapshot, key: &str) -> Option<bool> {
    snapshot
        .fact(vocab::OPERATOR_SETTINGS_FACT)
        .and_then(|f| serde_json::from_str::<Value>(&f.value).ok())
        .and_then(|v| v[key].as_bool())
}

/// The host's report of a failed create: (reason, message).
fn replica_failure(snapshot: &Snapshot) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Failure {
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        message: String,
    }
    let fact = snapshot.fact(REPLICA_FAILURE_FACT)?;
    let (reason, message) = match serde_json::from_str::<Failure>(&fact.value) {
        Ok(f) => (f.reason, f.message),
        // Not the documented shape: the text is still the best message there is.
        Err(_) => (None, fact.value.clone()),
    };
    let reason = reason
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| reasons::FAILED_CREATE_WORKER_POD.into());
    Some((reason, message))
}

/// The component's entry point.
pub struct RayClusterReconciler;

impl Reconciler for RayClusterReconciler {
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError> {
        reconcile(&snapshot)
    }

    fn child_fields() -> Vec<FieldMask> {
        children::child_fields()
    }
}

wasmray_guest_sdk::export_reconciler!(RayClusterReconciler);
