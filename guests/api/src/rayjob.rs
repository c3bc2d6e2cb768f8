//! RayJob: a Ray job submitted to a RayCluster that the job creates (or selects), with cleanup after.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

use crate::{RayClusterSpec, RayClusterStatus};

crate::ray_resource!(
    /// A Ray job and the cluster it runs on (`ray.io/v1`, kind `RayJob`).
    RayJob,
    "RayJobList",
    "rayjobs",
    RayJobSpec,
    RayJobStatus
);

/// The desired state of a Ray job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::job_spec_rules))]
#[serde(rename_all = "camelCase")]
pub struct RayJobSpec {
    /// Seconds from `status.startTime` after which the job fails with `DeadlineExceeded`; > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub active_deadline_seconds: Option<i32>,
    /// Retries, each on a fresh cluster (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub backoff_limit: Option<i32>,
    /// The cluster to create. Exactly one of this and `clusterSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_cluster_spec: Option<RayClusterSpec>,
    /// Pod template of the submitter Job (K8sJobMode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::pod_template")
    )]
    pub submitter_pod_template: Option<PodTemplateSpec>,
    /// Job metadata passed to Ray.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// `ray.io/cluster: <name>` selects an existing RayCluster instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<BTreeMap<String, String>>,
    /// Settings of the submitter Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter_config: Option<SubmitterConfig>,
    /// Which controller reconciles this object; as in RayCluster. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::managed_by_rules))]
    pub managed_by: Option<String>,
    /// What to delete once the job has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_strategy: Option<DeletionStrategy>,
    /// The command Ray runs as the job's driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// The job's runtime environment, as YAML.
    #[serde(
        default,
        rename = "runtimeEnvYAML",
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_env_yaml: Option<String>,
    /// The submission ID; generated when empty. In InteractiveMode setting it submits the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// How the job is submitted (default `K8sJobMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "K8sJobMode")))]
    pub submission_mode: Option<SubmissionMode>,
    /// Custom resources reserved for the driver, as a JSON map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint_resources: Option<String>,
    /// CPUs reserved for the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_cpus: Option<f32>,
    /// GPUs reserved for the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_gpus: Option<f32>,
    /// Seconds to keep the cluster after the job finished (default 0); needs
    /// `shutdownAfterJobFinishes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Delete the cluster once the job has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_after_job_finishes: Option<bool>,
    /// Suspend the job: delete its cluster until it is resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// `spec.submissionMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SubmissionMode {
    /// A Kubernetes Job runs `ray job submit`.
    #[default]
    K8sJobMode,
    /// The operator submits through the dashboard's HTTP API.
    #[serde(rename = "HTTPMode")]
    HttpMode,
    /// The user submits; setting `spec.jobId` tells the operator which job to follow.
    InteractiveMode,
    /// A sidecar of the head Pod submits.
    SidecarMode,
}

/// `spec.submitterConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubmitterConfig {
    /// The submitter Job's `backoffLimit` (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
}

/// `spec.deletionStrategy`: either `onSuccess` and `onFailure` (legacy) or `deletionRules`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::deletion_strategy_rules))]
#[serde(rename_all = "camelCase")]
pub struct DeletionStrategy {
    /// Legacy: what to delete when the job succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<DeletionPolicy>,
    /// Legacy: what to delete when the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<DeletionPolicy>,
    /// Rules applied in order of their TTLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub deletion_rules: Option<Vec<DeletionRule>>,
}

/// A legacy deletion policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeletionPolicy {
    /// What to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<DeletionPolicyType>,
}

/// `deletionRules[]`: delete something a while after the job reached a status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeletionRule {
    /// What to delete.
    pub policy: DeletionPolicyType,
    /// When to delete it.
    pub condition: DeletionCondition,
}

/// `deletionRules[].condition`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeletionCondition {
    /// The terminal job status the rule applies to.
    pub job_status: DeletionJobStatus,
    /// Seconds after the job finished (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    pub ttl_seconds: Option<i32>,
}

/// What a deletion rule deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum DeletionPolicyType {
    /// The RayCluster.
    DeleteCluster,
    /// The worker Pods (the worker groups are suspended).
    DeleteWorkers,
    /// The RayJob itself, and with it everything it owns.
    DeleteSelf,
    /// Nothing.
    DeleteNone,
}

/// The job status a deletion rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum DeletionJobStatus {
    /// The Ray job succeeded.
    Succeeded,
    /// The Ray job failed.
    Failed,
}

/// The observed state of a Ray job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RayJobStatus {
    /// Start and end times reported by the Ray dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_job_info: Option<RayJobInfo>,
    /// The submission ID in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The RayCluster the job runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_cluster_name: Option<String>,
    /// `host:port` of the dashboard, no scheme.
    #[serde(
        default,
        rename = "dashboardURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub dashboard_url: Option<String>,
    /// The Ray job's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
    /// Where the operator is in the job's lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_deployment_status: Option<JobDeploymentStatus>,
    /// Why the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the job entered Initializing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time"))]
    pub start_time: Option<Time>,
    /// When the job reached Complete or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time"))]
    pub end_time: Option<Time>,
    /// Attempts that succeeded (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    pub succeeded: Option<i32>,
    /// Attempts that failed (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    pub failed: Option<i32>,
    /// A copy of the RayCluster's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_cluster_status: Option<RayClusterStatus>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// `status.rayJobInfo`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RayJobInfo {
    /// When Ray started the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time"))]
    pub start_time: Option<Time>,
    /// When Ray finished the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time"))]
    pub end_time: Option<Time>,
}

/// The status Ray reports for a job; `""` before it was submitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Not submitted yet.
    #[default]
    #[serde(rename = "")]
    New,
    /// Submitted, waiting to run.
    Pending,
    /// Running.
    Running,
    /// Stopped by a user (terminal).
    Stopped,
    /// Succeeded (terminal).
    Succeeded,
    /// Failed (terminal).
    Failed,
}

impl JobStatus {
    /// Whether Ray will not change this status again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Stopped | Self::Succeeded | Self::Failed)
    }
}

/// Where the operator is in a job's lifecycle; `""` for a new object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum JobDeploymentStatus {
    /// Not yet seen by the operator.
    #[default]
    #[serde(rename = "")]
    New,
    /// Creating or waiting for the cluster.
    Initializing,
    /// The job runs.
    Running,
    /// Finished (terminal).
    Complete,
    /// Failed (terminal).
    Failed,
    /// The spec is invalid.
    ValidationFailed,
    /// Deleting the cluster because the job is suspended.
    Suspending,
    /// Suspended.
    Suspended,
    /// Deleting the cluster before a retry.
    Retrying,
    /// InteractiveMode: waiting for the user to set `spec.jobId`.
    Waiting,
}

impl JobDeploymentStatus {
    /// Whether the lifecycle is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Complete | Self::Failed)
    }
}
