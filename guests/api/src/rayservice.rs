//! RayService: Ray Serve applications on a RayCluster, upgraded without downtime.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::{Deserialize, Serialize};

use crate::{RayClusterSpec, RayClusterStatus};

crate::ray_resource!(
    /// Ray Serve applications and the cluster that serves them (`ray.io/v1`, kind `RayService`).
    RayService,
    "RayServiceList",
    "rayservices",
    RayServiceSpec,
    RayServiceStatuses
);

/// The desired state of a RayService.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::service_spec_rules))]
#[serde(rename_all = "camelCase")]
pub struct RayServiceSpec {
    /// Seconds before a cluster that is no longer active or pending is deleted (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub ray_cluster_deletion_delay_seconds: Option<i32>,
    /// Deprecated and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_unhealthy_second_threshold: Option<i32>,
    /// Deprecated and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_unhealthy_second_threshold: Option<i32>,
    /// Template of the serve Service (name honoured; selector and ports are set by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::embedded::<Service>")
    )]
    pub serve_service: Option<Service>,
    /// How a changed cluster spec is rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_strategy: Option<UpgradeStrategy>,
    /// The Ray Serve multi-application config, as YAML.
    #[serde(
        default,
        rename = "serveConfigV2",
        skip_serializing_if = "Option::is_none"
    )]
    pub serve_config_v2: Option<String>,
    /// The cluster to serve from.
    pub ray_cluster_config: RayClusterSpec,
    /// Keep the head Pod out of the serve Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_head_pod_from_serve_svc: Option<bool>,
    /// KubeRay v1.6: the controller that reconciles this RayService; any value but
    /// `ray.io/kuberay-operator` (the default) leaves it to another controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// KubeRay v1.7: `true` deletes the RayService's clusters and Services until it is `false` again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// `spec.upgradeStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// The strategy: KubeRay's `NewCluster` (the default), `NewClusterWithIncrementalUpgrade`
    /// or `None`, wasmray's `Canary`, or the registry name of any loaded upgrade-strategy
    /// plugin (see [`crate::serve`]). A name no plugin has leaves the active cluster serving,
    /// with a condition saying so.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Settings of `NewClusterWithIncrementalUpgrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_upgrade_options: Option<ClusterUpgradeOptions>,
}

/// `upgradeStrategy.clusterUpgradeOptions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterUpgradeOptions {
    /// Capacity the new cluster may add above 100%, in percent (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 100)))]
    pub max_surge_percent: Option<i32>,
    /// Traffic moved per step, in percent.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    pub step_size_percent: i32,
    /// Seconds between steps.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub interval_seconds: i32,
    /// The GatewayClass of the Gateway that splits the traffic.
    pub gateway_class_name: String,
}

/// The observed state of a RayService (`RayServiceStatuses` in KubeRay).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RayServiceStatuses {
    /// `Ready` and `UpgradeInProgress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::conditions")
    )]
    pub conditions: Option<Vec<Condition>>,
    /// When the status was last computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time"))]
    pub last_update_time: Option<Time>,
    /// Deprecated: `Running` while the Ready condition is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_status: Option<String>,
    /// The cluster that serves traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_service_status: Option<RayServiceStatus>,
    /// The cluster being prepared to take over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_service_status: Option<RayServiceStatus>,
    /// Ready addresses behind the serve Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_serve_endpoints: Option<i32>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// wasmray: each RayCluster of this RayService that is neither active nor pending, with
    /// the time it became so; it is deleted `rayClusterDeletionDelaySeconds` later. Kept in the
    /// status (KubeRay keeps it in memory) so an operator restart does not reset the delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time_map"))]
    pub unreferenced_clusters: Option<BTreeMap<String, Time>>,
    /// wasmray: the spec hash (`wasmray.dev/cluster-spec-hash`) of the last pending cluster an
    /// upgrade strategy rolled back; no new pending cluster is made for this spec until
    /// `rayClusterConfig` changes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_cluster_hash: Option<String>,
}

/// The state of one of a RayService's clusters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RayServiceStatus {
    /// Serve application name to its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_statuses: Option<BTreeMap<String, AppStatus>>,
    /// Serve's target capacity on this cluster, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_capacity: Option<i32>,
    /// Traffic sent to this cluster, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routed_percent: Option<i32>,
    /// When traffic last moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time"))]
    pub last_traffic_migrated_time: Option<Time>,
    /// The RayCluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_cluster_name: Option<String>,
    /// A copy of the RayCluster's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_cluster_status: Option<RayClusterStatus>,
    /// wasmray: the hash of the Serve config and target capacity this cluster's Serve last
    /// accepted (KubeRay keeps the config in an in-memory cache, lost on a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_config_hash: Option<String>,
    /// wasmray: the deploy asked of this cluster's Serve that has not been accepted yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_config_request: Option<ServeConfigRequest>,
}

/// wasmray: a Serve deploy in flight on one cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServeConfigRequest {
    /// The request's `configHash`.
    pub config_hash: String,
    /// When it was (last) asked for; an answer observed earlier is about an older request.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::time"))]
    pub requested_at: Time,
    /// Serve refused this hash and the Warning Event saying so was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<bool>,
}

/// The status of one Serve application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// `NOT_STARTED`, `DEPLOYING`, `RUNNING`, `DEPLOY_FAILED`, `DELETING` or `UNHEALTHY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Serve's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Deployment name to its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_deployment_statuses: Option<BTreeMap<String, ServeDeploymentStatus>>,
}

/// The status of one Serve deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServeDeploymentStatus {
    /// `UPDATING`, `HEALTHY` or `UNHEALTHY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Serve's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
