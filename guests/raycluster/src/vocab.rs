//! KubeRay's vocabulary: label keys, condition types and reasons, Event reasons, finalizer and fact names.

/// Pod and Service labels the host's builders set (KubeRay's keys, shared with the host).
pub use wasmray_api::labels;

/// RayCluster annotations the reconciler reads.
pub mod annotations {
    pub use wasmray_api::labels::{ENABLE_SERVE_SERVICE, FT_ENABLED, GCS_FT_DELETION_TIMEOUT};
}

/// Condition types of `RayCluster.status.conditions`.
pub mod conditions {
    pub const HEAD_POD_READY: &str = "HeadPodReady";
    pub const PROVISIONED: &str = "RayClusterProvisioned";
    pub const REPLICA_FAILURE: &str = "RayClusterReplicaFailure";
    pub const SUSPENDING: &str = "RayClusterSuspending";
    pub const SUSPENDED: &str = "RayClusterSuspended";
    /// Ours, not KubeRay's: True while the spec holds settings that look right but do nothing
    /// (the reason names the first, the message lists each and where it belongs); removed once
    /// none are left.
    pub const IGNORED_SETTINGS: &str = "RayClusterIgnoredSettings";
    /// Ours, not KubeRay's: whether the worker Pods are all Running and Ready. False names the
    /// first worker Pod (by name) that cannot run, with the scheduler's or the container's own
    /// reason (`Unschedulable`, `ImagePullBackOff`…) and `worker Pod <name> (group <g>): <message>`,
    /// else [`super::reasons::WORKER_PODS_NOT_READY`]; absent without workers.
    pub const WORKER_PODS_READY: &str = "WorkerPodsReady";
    /// Ours, not KubeRay's: with the rolling update on (`crate::upgrade`), True while Pods are on
    /// an old template (the message gives each group's progress), False once none are.
    pub const ROLLING_UPDATE_IN_PROGRESS: &str = "RollingUpdateInProgress";
}

/// Condition reasons.
pub mod reasons {
    pub const HEAD_POD_NOT_FOUND: &str = "HeadPodNotFound";
    pub const HEAD_POD_RUNNING_AND_READY: &str = "HeadPodRunningAndReady";
    /// A head Pod without a `Ready` condition yet.
    pub const UNKNOWN: &str = "Unknown";
    pub const ALL_POD_RUNNING_AND_READY_FIRST_TIME: &str = "AllPodRunningAndReadyFirstTime";
    pub const PODS_PROVISIONING: &str = "RayClusterPodsProvisioning";
    /// `WorkerPodsReady` True.
    pub const ALL_WORKER_PODS_READY: &str = "AllWorkerPodsReady";
    /// `WorkerPodsReady` False while worker Pods are missing or on their way up, with no cause
    /// named: `<ready> of <expected> worker Pods are Ready`.
    pub const WORKER_PODS_NOT_READY: &str = "WorkerPodsNotReady";
    /// The replica-failure condition's default reason when the host's fact names none.
    pub const FAILED_CREATE_WORKER_POD: &str = "FailedCreateWorkerPod";
    /// The replica-failure reason of a head Pod the API server refused.
    pub const FAILED_CREATE_HEAD_POD: &str = "FailedCreateHeadPod";
}

/// Event reasons (KubeRay's, §7.7 of the feature inventory).
pub mod events {
    pub const CREATED_HEAD_POD: &str = "CreatedHeadPod";
    pub const DELETED_HEAD_POD: &str = "DeletedHeadPod";
    pub const CREATED_WORKER_POD: &str = "CreatedWorkerPod";
    pub const DELETED_WORKER_POD: &str = "DeletedWorkerPod";
    pub const DELETED_POD: &str = "DeletedPod";
    pub const CREATED_SERVICE: &str = "CreatedService";
    pub const CREATED_SERVICE_ACCOUNT: &str = "CreatedServiceAccount";
    pub const CREATED_ROLE: &str = "CreatedRole";
    pub const CREATED_ROLE_BINDING: &str = "CreatedRoleBinding";
    pub const CREATED_REDIS_CLEANUP_JOB: &str = "CreatedRedisCleanupJob";
    pub const CREATED_INGRESS: &str = "CreatedIngress";
    pub const CREATED_ROUTE: &str = "CreatedRoute";
    /// Ours: KubeRay never updates or deletes the Ingress it created.
    pub const UPDATED_INGRESS: &str = "UpdatedIngress";
    /// Ours, when `enableIngress` is turned off.
    pub const DELETED_INGRESS: &str = "DeletedIngress";
    /// Ours: a setting KubeRay would silently ignore (see [`super::conditions::IGNORED_SETTINGS`]).
    pub const IGNORED_SETTING: &str = "IgnoredSetting";
    pub const INVALID_STATUS: &str = "InvalidRayClusterStatus";
    /// The head template names a ServiceAccount for the autoscaler that does not exist.
    pub const AUTOSCALER_SERVICE_ACCOUNT_NOT_FOUND: &str = "AutoscalerServiceAccountNotFound";
    /// The finalizer was removed because the cleanup took too long (KubeRay v1.7's name).
    pub const FORCE_DELETED_STUCK_CLUSTER: &str = "ForceDeletedStuckCluster";
}

/// The finalizer that keeps a GCS fault-tolerant RayCluster until its Redis namespace is cleaned.
pub use wasmray_api::labels::REDIS_CLEANUP_FINALIZER;

/// The fact the host passes when creating a child failed in the previous reconcile:
/// `{"message": "...", "reason": "FailedCreateWorkerPod"}` (`reason` optional).
pub const REPLICA_FAILURE_FACT: &str = "wasmray.dev/replica-failure";

/// The fact carrying the operator's settings that change decisions, as JSON
/// (`{"enableGcsFtRedisCleanup": false, "useOpenShiftRoute": true}`); absent settings keep
/// KubeRay's defaults. `useOpenShiftRoute` is what KubeRay decides at start: the API server
/// serves an `*.openshift.io` group and `USE_INGRESS_ON_OPENSHIFT` is not true.
pub const OPERATOR_SETTINGS_FACT: &str = "wasmray.dev/operator-settings";

/// The only `managedBy` value under which this reconciler acts.
pub const MANAGED_BY_OPERATOR: &str = wasmray_api::MANAGED_BY_OPERATOR;
