//! RayCluster: a head group and any number of worker groups of Ray Pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, EnvVarSource, PodTemplateSpec, ResourceRequirements, SecurityContext,
    Service, VolumeMount,
};
use k8s_openapi::api::networking::v1::IngressTLS;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::{Deserialize, Serialize};

crate::ray_resource!(
    /// A Ray cluster: one head Pod and groups of worker Pods (`ray.io/v1`, kind `RayCluster`).
    RayCluster,
    "RayClusterList",
    "rayclusters",
    RayClusterSpec,
    RayClusterStatus
);

/// The desired state of a Ray cluster. Also embedded in RayJob (`rayClusterSpec`) and RayService
/// (`rayClusterConfig`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::cluster_spec_rules))]
#[serde(rename_all = "camelCase")]
pub struct RayClusterSpec {
    /// Ray's own authentication between clients and the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_options: Option<AuthOptions>,
    /// Delete every Pod of the cluster while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Which controller reconciles this object: `ray.io/kuberay-operator` (this operator) or
    /// `kueue.x-k8s.io/multikueue`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::managed_by_rules))]
    pub managed_by: Option<String>,
    /// Settings of the Ray autoscaler sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_options: Option<AutoscalerOptions>,
    /// Annotations copied onto the head Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_service_annotations: Option<BTreeMap<String, String>>,
    /// Run the Ray autoscaler as a sidecar of the head Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_in_tree_autoscaling: Option<bool>,
    /// GCS fault tolerance backed by an external Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs_fault_tolerance_options: Option<GcsFaultToleranceOptions>,
    /// The head Pod.
    pub head_group_spec: HeadGroupSpec,
    /// The Ray version of the images, used for feature checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::ray_version")
    )]
    pub ray_version: Option<String>,
    /// The worker groups; group names are unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::worker_groups_rules))]
    pub worker_group_specs: Option<Vec<WorkerGroupSpec>>,
    /// What happens to running Pods when their templates change (KubeRay v1.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_strategy: Option<RayClusterUpgradeStrategy>,
}

/// `spec.upgradeStrategy` (KubeRay v1.6).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RayClusterUpgradeStrategy {
    /// `Recreate` replaces every Pod when the Pod-shaping spec changes; `None` (the default)
    /// leaves running Pods alone.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<RayClusterUpgradeType>,
}

/// `upgradeStrategy.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum RayClusterUpgradeType {
    /// Delete every Pod once the spec hash on the head Pod differs from the spec's.
    Recreate,
    /// Running Pods keep the template they were created from.
    None,
}

/// `spec.authOptions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    /// Authentication is on only when the mode is `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
}

/// How Ray authenticates clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication.
    Disabled,
    /// A bearer token kept in a Secret named after the cluster.
    Token,
}

/// `spec.autoscalerOptions`: the autoscaler sidecar container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerOptions {
    /// Replaces the sidecar's default resources (500m CPU, 512Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<ResourceRequirements>")
    )]
    pub resources: Option<ResourceRequirements>,
    /// The sidecar image; defaults to the head's Ray image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The sidecar's image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// The sidecar's security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<SecurityContext>")
    )]
    pub security_context: Option<SecurityContext>,
    /// Seconds a node stays idle before the autoscaler removes it (autoscaler default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<i32>,
    /// How fast the autoscaler scales up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscaling_mode: Option<UpscalingMode>,
    /// Autoscaler v1 or v2; unset means chosen by Ray version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<AutoscalerVersion>,
    /// Extra environment of the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<Vec<EnvVar>>")
    )]
    pub env: Option<Vec<EnvVar>>,
    /// Extra environment sources of the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<Vec<EnvFromSource>>")
    )]
    pub env_from: Option<Vec<EnvFromSource>>,
    /// Extra volume mounts of the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<Vec<VolumeMount>>")
    )]
    pub volume_mounts: Option<Vec<VolumeMount>>,
}

/// `autoscalerOptions.upscalingMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum UpscalingMode {
    /// Ray's default pace.
    Default,
    /// Scale up as fast as possible.
    Aggressive,
    /// Rate-limited scale-up.
    Conservative,
}

/// `autoscalerOptions.version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AutoscalerVersion {
    /// The original autoscaler.
    V1,
    /// Autoscaler v2 (Pods get `restartPolicy: Never`).
    V2,
}

/// `spec.gcsFaultToleranceOptions`: GCS state kept in an external Redis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GcsFaultToleranceOptions {
    /// Redis user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_username: Option<RedisCredential>,
    /// Redis password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_password: Option<RedisCredential>,
    /// Storage namespace in Redis; defaults to the RayCluster's UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_storage_namespace: Option<String>,
    /// `host:port`, a `redis://`/`rediss://` URI, or a comma-separated list of them.
    pub redis_address: String,
}

/// A literal value or a reference, like an env var.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RedisCredential {
    /// The literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from (Secret key, ConfigMap key, field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<EnvVarSource>")
    )]
    pub value_from: Option<EnvVarSource>,
}

/// `spec.headGroupSpec`: the head Pod and its Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::head_group_rules))]
#[serde(rename_all = "camelCase")]
pub struct HeadGroupSpec {
    /// The head Pod's template; the Ray container is `containers[0]`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::pod_template")
    )]
    pub template: PodTemplateSpec,
    /// A Service used as the base of the head Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<Service>")
    )]
    pub head_service: Option<Service>,
    /// Create an Ingress for the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ingress: Option<bool>,
    /// The dashboard Ingress's host, path and TLS (KubeRay v1.7); read with `enableIngress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_options: Option<IngressOptions>,
    /// Ray logical resources of the head (`CPU`, `memory`, `GPU`, custom), as quantities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, String>>,
    /// Ray node labels of the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Extra `ray start` parameters, `--key=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_start_params: Option<BTreeMap<String, String>>,
    /// The head Service's type; an empty or `ClusterIP` type gives a headless Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
}

/// `headGroupSpec.ingressOptions` (KubeRay v1.7).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct IngressOptions {
    /// The rule's host; unset, the rule matches every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The dashboard's path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How the path matches (default `Prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_type: Option<IngressPathType>,
    /// The Ingress's TLS entries, as in `networking.k8s.io/v1` Ingress `spec.tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<Vec<IngressTLS>>")
    )]
    pub tls: Option<Vec<IngressTLS>>,
}

/// `ingressOptions.pathType`: the Ingress path types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum IngressPathType {
    /// The URL path exactly.
    Exact,
    /// The path and everything under it, element by element.
    Prefix,
    /// As the Ingress class says.
    ImplementationSpecific,
}

impl IngressPathType {
    /// The value as the Ingress API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            IngressPathType::Exact => "Exact",
            IngressPathType::Prefix => "Prefix",
            IngressPathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

/// `spec.workerGroupSpecs[]`: a group of identical worker Pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::worker_group_rules))]
#[serde(rename_all = "camelCase")]
pub struct WorkerGroupSpec {
    /// Delete the group's Pods while true (used by RayJob deletion rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// The group's name, unique within the cluster; it becomes the `ray.io/group` label.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::group_name")
    )]
    pub group_name: String,
    /// Desired number of replicas (default 0); each replica is `numOfHosts` Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    pub replicas: Option<i32>,
    /// Lower bound for the autoscaler (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    pub min_replicas: Option<i32>,
    /// Upper bound for the autoscaler (default 2147483647).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 2147483647)))]
    pub max_replicas: Option<i32>,
    /// Idle seconds before autoscaler v2 removes a worker of this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<i32>,
    /// Ray logical resources of each worker, as quantities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, String>>,
    /// Ray node labels of each worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Extra `ray start` parameters, `--key=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_start_params: Option<BTreeMap<String, String>>,
    /// The worker Pod's template; the Ray container is `containers[0]`.
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::pod_template")
    )]
    pub template: PodTemplateSpec,
    /// Pods the autoscaler asked to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_strategy: Option<ScaleStrategy>,
    /// Pods per replica (default 1), for multi-host TPU slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 1)))]
    pub num_of_hosts: Option<i32>,
}

impl HeadGroupSpec {
    /// `headService.metadata.name`: the head Service's name when the user chose one.
    pub fn custom_head_service_name(&self) -> Option<&str> {
        self.head_service.as_ref().and_then(|s| s.metadata.name.as_deref())
    }
}

impl WorkerGroupSpec {
    /// `replicas`, or its default 0.
    pub fn replicas_or_default(&self) -> i32 {
        self.replicas.unwrap_or(0)
    }
    /// `minReplicas`, or its default 0.
    pub fn min_replicas_or_default(&self) -> i32 {
        self.min_replicas.unwrap_or(0)
    }
    /// `maxReplicas`, or its default `i32::MAX`.
    pub fn max_replicas_or_default(&self) -> i32 {
        self.max_replicas.unwrap_or(i32::MAX)
    }
    /// `numOfHosts`, or its default 1.
    pub fn num_of_hosts_or_default(&self) -> i32 {
        self.num_of_hosts.unwrap_or(1)
    }
}

/// `workerGroupSpecs[].scaleStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScaleStrategy {
    /// Names of worker Pods to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers_to_delete: Option<Vec<String>>,
}

/// The observed state of a Ray cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RayClusterStatus {
    /// Deprecated summary: `ready` or `suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ClusterState>,
    /// Sum of CPU over all desired Pods.
    #[serde(
        default,
        rename = "desiredCPU",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::quantity"))]
    pub desired_cpu: Option<Quantity>,
    /// Sum of memory over all desired Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::quantity"))]
    pub desired_memory: Option<Quantity>,
    /// Sum of GPUs over all desired Pods.
    #[serde(
        default,
        rename = "desiredGPU",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::quantity"))]
    pub desired_gpu: Option<Quantity>,
    /// Sum of `google.com/tpu` over all desired Pods.
    #[serde(
        default,
        rename = "desiredTPU",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::quantity"))]
    pub desired_tpu: Option<Quantity>,
    /// When the status was last computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time"))]
    pub last_update_time: Option<Time>,
    /// When each state was last entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time_map"))]
    pub state_transition_times: Option<BTreeMap<String, Time>>,
    /// Head Service port name to NodePort or target port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<BTreeMap<String, String>>,
    /// Addresses of the head Pod and Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadInfo>,
    /// Free-text reason for the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `HeadPodReady`, `RayClusterProvisioned`, `ReplicaFailure`, `RayClusterSuspending`,
    /// `RayClusterSuspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::conditions")
    )]
    pub conditions: Option<Vec<Condition>>,
    /// Worker Pods Running and Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_worker_replicas: Option<i32>,
    /// Worker Pods Running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_worker_replicas: Option<i32>,
    /// Desired worker Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_worker_replicas: Option<i32>,
    /// Sum of `minReplicas × numOfHosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_worker_replicas: Option<i32>,
    /// Sum of `maxReplicas × numOfHosts`, saturating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_worker_replicas: Option<i32>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// `status.state` of a RayCluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    /// All Pods are up.
    Ready,
    /// Kept for compatibility; never set.
    Failed,
    /// The cluster is suspended.
    Suspended,
}

/// `status.head`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct HeadInfo {
    /// The head Pod's IP.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// The head Service's cluster IP, or the head Pod's IP when the Service is headless.
    #[serde(default, rename = "serviceIP", skip_serializing_if = "Option::is_none")]
    pub service_ip: Option<String>,
    /// The head Pod's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// The head Service's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}
