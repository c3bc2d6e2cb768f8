//! KubeRay's RayService vocabulary and the keys of the contract with the host: conditions, reasons, Events, annotations, facts, defaults.

pub use wasmray_api::labels;

/// `ray.io/originated-from-crd` on the RayService's clusters and Services.
pub const ORIGINATED_FROM_CRD_VALUE: &str = "RayService";
/// The only `managedBy` value under which this reconciler acts.
pub const MANAGED_BY_OPERATOR: &str = wasmray_api::MANAGED_BY_OPERATOR;

/// Condition types of the RayService's status.
pub mod conditions {
    pub const READY: &str = "Ready";
    pub const UPGRADE_IN_PROGRESS: &str = "UpgradeInProgress";
    /// v1.7: the HTTPRoute still sends traffic to a pending cluster that was given up.
    pub const ROLLBACK_IN_PROGRESS: &str = "RollbackInProgress";
    /// v1.7: `spec.suspend` is being carried out.
    pub const SUSPENDING: &str = "Suspending";
    /// v1.7: the clusters and Services are gone.
    pub const SUSPENDED: &str = "Suspended";
}

/// Condition reasons (KubeRay's, then wasmray's).
pub mod reasons {
    pub const INITIALIZING: &str = "Initializing";
    pub const NON_ZERO_SERVE_ENDPOINTS: &str = "NonZeroServeEndpoints";
    pub const ZERO_SERVE_ENDPOINTS: &str = "ZeroServeEndpoints";
    pub const INITIALIZING_TIMEOUT: &str = "InitializingTimeout";
    pub const BOTH_CLUSTERS_EXIST: &str = "BothActivePendingClustersExist";
    pub const NO_PENDING_CLUSTER: &str = "NoPendingCluster";
    /// v1.6: an invalid spec fails the RayService directly.
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    pub const SUSPEND_REQUESTED: &str = "SuspendRequested";
    pub const SUSPEND_IN_PROGRESS: &str = "SuspendInProgress";
    pub const SUSPEND_COMPLETE: &str = "SuspendComplete";
    pub const RESUMED: &str = "RayServiceResumed";
    /// v1.7: the rollback of an incremental upgrade.
    pub const ROLLBACK_IN_PROGRESS: &str = "RollbackInProgress";
    /// Ours: `upgradeStrategy.type` names no loaded strategy plugin.
    pub const UNKNOWN_UPGRADE_STRATEGY: &str = "UnknownUpgradeStrategy";
    /// Ours: the strategy aborted the upgrade.
    pub const UPGRADE_ROLLED_BACK: &str = "UpgradeRolledBack";
    /// Ours: the strategy plugin failed (trapped, timed out) for this reconcile.
    pub const UPGRADE_STRATEGY_FAILED: &str = "UpgradeStrategyFailed";
    /// Ours: the spec changed but upgrades are off (`None`, or `ENABLE_ZERO_DOWNTIME=false`).
    pub const UPGRADES_DISABLED: &str = "ZeroDowntimeUpgradeDisabled";
    /// Ours: the cluster spec is the one last rolled back.
    pub const SPEC_ROLLED_BACK: &str = "ClusterSpecRolledBack";
}

/// Event reasons (KubeRay's RayService list, then wasmray's).
pub mod events {
    pub const INVALID_SPEC: &str = "InvalidRayServiceSpec";
    pub const INVALID_METADATA: &str = "InvalidRayServiceMetadata";
    pub const INITIALIZING_TIMEOUT: &str = "RayServiceInitializingTimeout";
    pub const UPDATED_SERVE_LABEL: &str = "UpdatedHeadPodServeLabel";
    pub const UPDATED_SERVE_APPLICATIONS: &str = "UpdatedServeApplications";
    pub const FAILED_SERVE_APPLICATIONS: &str = "FailedToUpdateServeApplications";
    pub const UPDATED_TARGET_CAPACITY: &str = "UpdatedServeTargetCapacity";
    pub const CREATED_GATEWAY: &str = "CreatedGateway";
    pub const CREATED_HTTP_ROUTE: &str = "CreatedHTTPRoute";
    pub const UPDATED_HTTP_ROUTE: &str = "UpdatedHTTPRoute";
    pub const CREATED_CLUSTER: &str = "CreatedRayCluster";
    pub const UPDATED_CLUSTER: &str = "UpdatedRayCluster";
    pub const DELETED_CLUSTER: &str = "DeletedRayCluster";
    pub const CREATED_SERVICE: &str = "CreatedService";
    pub const UPDATED_SERVICE: &str = "UpdatedService";
    pub const DELETED_SERVICE: &str = "DeletedService";
    /// Ours: the pending cluster took over, by the strategy's decision.
    pub const PROMOTED: &str = "PromotedPendingCluster";
    /// Ours: the strategy moved traffic (and capacity).
    pub const SHIFTED: &str = "ShiftedTraffic";
    /// Ours: the strategy gave up on the pending cluster.
    pub const ROLLED_BACK: &str = "UpgradeRolledBack";
    /// Ours: the strategy plugin failed for this reconcile.
    pub const STRATEGY_FAILED: &str = "UpgradeStrategyFailed";
    /// Ours: `upgradeStrategy.type` names no loaded plugin.
    pub const UNKNOWN_STRATEGY: &str = "UnknownUpgradeStrategy";
}

/// Annotations read or written.
pub mod annotations {
    /// On the RayService: how long Ready may stay `Initializing` (`30m`, `1800`).
    pub const INITIALIZING_TIMEOUT: &str = "ray.io/initializing-timeout";
    /// On a cluster: wasmray's hash of the `rayClusterConfig` it was built from (see `cluster::spec_hash`).
    pub const CLUSTER_SPEC_HASH: &str = "wasmray.dev/cluster-spec-hash";
    /// On a cluster: how many worker groups it was built with (KubeRay's key).
    pub const NUM_WORKER_GROUPS: &str = "ray.io/num-worker-groups";
    /// Not copied from the RayService onto its clusters.
    pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
}

/// Facts this reconciler reads besides those of [`wasmray_api::serve`].
pub mod facts {
    /// The operator's settings that change decisions (shared with the other reconcilers).
    pub const OPERATOR_SETTINGS: &str = "wasmray.dev/operator-settings";
}

/// Serve application statuses.
pub mod app_status {
    pub const RUNNING: &str = "RUNNING";
    pub const DEPLOY_FAILED: &str = "DEPLOY_FAILED";
    pub const UNHEALTHY: &str = "UNHEALTHY";
}

/// KubeRay's requeue of a RayService whose state moves.
pub const POLL_MS: u64 = 2_000;
/// `rayClusterDeletionDelaySeconds`' default.
pub const DEFAULT_DELETION_DELAY_S: i64 = 60;
/// How long a Serve deploy may go unanswered before it is asked for again (a host restart
/// loses requests in flight).
pub const SUBMISSION_ANSWER_TIMEOUT_MS: i64 = 30_000;
/// The name of the Gateway's one listener.
pub const GATEWAY_LISTENER: &str = "http";
/// Gateway API's group/version.
pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";
