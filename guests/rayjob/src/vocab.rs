//! KubeRay's RayJob vocabulary and the keys of the contract with the host: finalizer, labels, reasons, Events, facts, defaults.

pub use wasmray_api::labels;

/// The finalizer that lets the operator stop a running Ray job before its RayJob goes.
pub const FINALIZER: &str = "ray.io/rayjob-finalizer";
/// The container KubeRay's default submitter (Job or head sidecar) is called.
pub const SUBMITTER_CONTAINER: &str = "ray-job-submitter";
/// `ray.io/originated-from-crd` on the RayCluster and the submitter Job.
pub const ORIGINATED_FROM_CRD_VALUE: &str = "RayJob";
/// The only `managedBy` value under which this reconciler acts.
pub const MANAGED_BY_OPERATOR: &str = wasmray_api::MANAGED_BY_OPERATOR;

/// `status.reason` values (KubeRay's `JobFailedReason`, plus v1.6's and v1.7's).
pub mod reasons {
    pub const SUBMISSION_FAILED: &str = "SubmissionFailed";
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    pub const APP_FAILED: &str = "AppFailed";
    pub const GRACE_PERIOD_EXCEEDED: &str = "JobDeploymentStatusTransitionGracePeriodExceeded";
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    /// v1.6: not Running before `preRunningDeadlineSeconds`.
    pub const PRE_RUNNING_DEADLINE_EXCEEDED: &str = "PreRunningDeadlineExceeded";
    /// v1.7: the dashboard could not be asked about the job for too long.
    pub const STATUS_CHECK_TIMEOUT_EXCEEDED: &str = "JobStatusCheckTimeoutExceeded";
}

/// Event reasons (KubeRay's RayJob list).
pub mod events {
    pub const INVALID_SPEC: &str = "InvalidRayJobSpec";
    pub const INVALID_METADATA: &str = "InvalidRayJobMetadata";
    pub const INVALID_STATUS: &str = "InvalidRayJobStatus";
    pub const CREATED_SUBMITTER: &str = "CreatedRayJobSubmitter";
    pub const DELETED_SUBMITTER: &str = "DeletedRayJobSubmitter";
    pub const CREATED_CLUSTER: &str = "CreatedRayCluster";
    pub const UPDATED_CLUSTER: &str = "UpdatedRayCluster";
    pub const DELETED_CLUSTER: &str = "DeletedRayCluster";
    pub const CLUSTER_NOT_FOUND: &str = "RayClusterNotFound";
    /// Ours (a Warning): the RayCluster's conditions name why it cannot start; recorded when the
    /// RayJob's `status.message` takes a new such cause, not on every pass.
    pub const CLUSTER_NOT_READY: &str = "RayClusterNotReady";
    pub const CREATED_SERVICE: &str = "CreatedService";
}

/// The RayCluster's conditions read to say why it is not ready (the RayCluster reconciler's).
pub mod cluster_conditions {
    pub const REPLICA_FAILURE: &str = "RayClusterReplicaFailure";
    pub const HEAD_POD_READY: &str = "HeadPodReady";
    /// Ours: False names the first worker Pod that cannot run, and why.
    pub const WORKER_PODS_READY: &str = "WorkerPodsReady";
    /// Reasons that say only that Pods are not there or not up yet, which is no cause.
    pub const NO_CAUSE: [&str; 4] = ["", "HeadPodNotFound", "Unknown", "WorkerPodsNotReady"];
}

/// Facts the host gathers outside the reconcile; each value is JSON, documented in the crate docs.
pub mod facts {
    /// The Ray job's status from the dashboard (`GET /api/jobs/<status.jobId>`).
    pub const JOB_INFO: &str = "ray.io/job-info";
    /// Whether the last dashboard query of this RayJob got an answer.
    pub const DASHBOARD: &str = "wasmray.dev/dashboard";
    /// HTTPMode: what became of the host's submission of a `RayJobSubmission` request.
    pub const SUBMISSION: &str = "wasmray.dev/job-submission";
    /// The operator's settings that change decisions (shared with the RayCluster reconciler).
    pub const OPERATOR_SETTINGS: &str = "wasmray.dev/operator-settings";
}

/// The virtual kind through which the plan asks the host's dashboard client to submit (`apply`)
/// or stop (`delete`) a Ray job. Never sent to the API server.
pub const DASHBOARD_API_VERSION: &str = "dashboard.wasmray.dev/v1";
pub const SUBMISSION_KIND: &str = "RayJobSubmission";

/// KubeRay's requeue of every non-terminal RayJob.
pub const POLL_MS: u64 = 3_000;
/// `RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS`'s default.
pub const DEFAULT_GRACE_PERIOD_S: i64 = 300;
/// v1.7's `RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS` default.
pub const DEFAULT_STATUS_CHECK_TIMEOUT_S: i64 = 300;
/// How long a finished submitter may wait for Ray to report a terminal status.
pub const SUBMITTER_FINISHED_TIMEOUT_S: i64 = 30;
/// The submitter Job's `backoffLimit` unless `submitterConfig` says otherwise.
pub const DEFAULT_SUBMITTER_BACKOFF_LIMIT: i32 = 2;
/// The longest Event note the API server takes (events.k8s.io/v1), in bytes.
pub const EVENT_NOTE_MAX_BYTES: usize = 1024;
/// Characters of a failed job's logs a failure Event carries at most.
pub const LOGS_IN_EVENT_MAX_CHARS: usize = 1_000;
/// Bytes of the status message a failure Event starts with at most (Ray's own message of a
/// failed job carries up to 20 000 characters of logs).
pub const MESSAGE_IN_EVENT_MAX_BYTES: usize = 300;
/// The dashboard port when the head container names none.
pub const DEFAULT_DASHBOARD_PORT: i64 = 8265;
