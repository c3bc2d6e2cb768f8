//! The RayService contract between the host and its guests: the facts the host gathers about Ray Serve (and the upgrade strategy it consulted), the dashboard request a plan makes, and the strategy options annotation.
//!
//! The host never reads a RayService's business rules and the guests never touch the network:
//! the host's poller asks each cluster's dashboard and Serve proxy and leaves the answers as
//! facts under the keys below (one per cluster, the cluster's name after the prefix); a plan
//! asks for a Serve config to be deployed by applying a [`SERVE_REQUEST_KIND`] object of the
//! virtual group [`DASHBOARD_API_VERSION`], which the host turns into
//! `PUT /api/serve/applications/` and answers with a [`ServeSubmissionFact`].
//!
//! Upgrades: while a RayService has both an active and a pending cluster, the host calls the
//! upgrade-strategy plugin that `spec.upgradeStrategy.type` names (the registry name) before the
//! reconcile and hands its decision in as the [`UPGRADE_STEP_FACT`]; on every reconcile it also
//! says whether that plugin is loaded ([`UPGRADE_STRATEGY_FACT`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The virtual API group of a plan's requests to a Ray dashboard; never sent to the API server.
pub const DASHBOARD_API_VERSION: &str = "dashboard.wasmray.dev/v1";
/// Kind of a plan's request to deploy a Serve config on one cluster: `metadata.name` is the
/// cluster, `spec` a [`ServeRequest`].
pub const SERVE_REQUEST_KIND: &str = "ServeApplications";

/// Prefix of the fact with a cluster's Serve applications ([`ServeApplicationsFact`]).
pub const SERVE_APPLICATIONS_FACT: &str = "ray.io/serve-applications/";
/// Prefix of the fact with the health of a cluster's head Serve proxy ([`ProxyHealthFact`]).
pub const SERVE_PROXY_FACT: &str = "ray.io/serve-proxy/";
/// Prefix of the fact with the outcome of the last Serve deploy on a cluster ([`ServeSubmissionFact`]).
pub const SERVE_SUBMISSION_FACT: &str = "wasmray.dev/serve-submission/";
/// The decision of the upgrade strategy ([`UpgradeStepFact`]), present while an upgrade runs.
pub const UPGRADE_STEP_FACT: &str = "wasmray.dev/upgrade-step";
/// Whether the strategy `spec.upgradeStrategy.type` names is loaded ([`UpgradeStrategyFact`]).
pub const UPGRADE_STRATEGY_FACT: &str = "wasmray.dev/upgrade-strategy";

/// The annotation with strategy options beyond KubeRay's fields, as JSON ([`UpgradeOptions`]).
pub const UPGRADE_OPTIONS_ANNOTATION: &str = "wasmray.dev/upgrade-options";

/// `spec.upgradeStrategy.type` values KubeRay knows; any other names a loaded plugin.
pub const NEW_CLUSTER: &str = "NewCluster";
/// Traffic moved in steps through a Gateway API HTTPRoute, capacity through Serve's `target_capacity`.
pub const NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE: &str = "NewClusterWithIncrementalUpgrade";
/// Upgrades disabled: a changed cluster spec is not rolled out.
pub const NONE: &str = "None";
/// wasmray's canary: traffic in configured steps, each held, rolled back on unhealthy applications.
pub const CANARY: &str = "Canary";

/// What a plan asks the host to deploy on one cluster's Serve.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeRequest {
    /// The dashboard, `<cluster>-head-svc.<namespace>.svc.cluster.local:<dashboard port>`.
    #[serde(rename = "dashboardURL")]
    pub dashboard_url: String,
    /// The cluster (its auth Secret holds the token).
    pub ray_cluster_name: String,
    /// `serveConfigV2` as the user wrote it (YAML); the host converts it to JSON.
    pub config: String,
    /// Serve's `target_capacity`, 0–100, added to the body when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_capacity: Option<u8>,
    /// Names this config and capacity; the submission fact echoes it.
    pub config_hash: String,
}

/// A cluster's Serve applications, as `GET /api/serve/applications/?api_type=declarative` said.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeApplicationsFact {
    pub cluster: String,
    /// Whether the dashboard answered the last question.
    pub reachable: bool,
    /// Why it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Application name (an empty one reported as `default`) to its status.
    #[serde(default)]
    pub applications: BTreeMap<String, ServeApplicationFact>,
    /// Serve's `target_capacity`, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_capacity: Option<f64>,
}

/// One Serve application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeApplicationFact {
    /// `NOT_STARTED`, `DEPLOYING`, `RUNNING`, `DEPLOY_FAILED`, `UNHEALTHY` or `DELETING`.
    pub status: String,
    #[serde(default)]
    pub message: String,
    /// Deployment name to its status and message.
    #[serde(default)]
    pub deployments: BTreeMap<String, ServeDeploymentFact>,
}

/// One Serve deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeDeploymentFact {
    /// `UPDATING`, `HEALTHY`, `UNHEALTHY`, `DEPLOY_FAILED`, `UPSCALING` or `DOWNSCALING`.
    pub status: String,
    #[serde(default)]
    pub message: String,
}

/// Whether a cluster's head Pod's Serve proxy answers `GET /-/healthz` with 200.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyHealthFact {
    pub cluster: String,
    /// The head Pod asked.
    pub pod: String,
    pub healthy: bool,
}

/// What became of the last Serve deploy on a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeSubmissionFact {
    pub cluster: String,
    /// The request's `configHash`.
    pub config_hash: String,
    pub submitted: bool,
    /// Serve's or the network's error when not submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Whether the upgrade strategy the RayService names is loaded, and which version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategyFact {
    /// The registry name (`spec.upgradeStrategy.type`, `NewCluster` when unset).
    pub strategy: String,
    pub loaded: bool,
    /// The loaded version's digest (short), when loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The strategy's decision for this reconcile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStepFact {
    pub strategy: String,
    /// The version that decided (digest, short).
    pub version: String,
    /// The clusters it decided about.
    pub active: String,
    pub pending: String,
    /// `None` when the call failed (`error` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepFact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeue_after_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A strategy's step (the WIT `step`), as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepFact {
    /// Nothing to do yet.
    Wait { reason: String },
    /// Move traffic and capacity.
    #[serde(rename_all = "camelCase")]
    Shift { pending_traffic_percent: u8, pending_target_capacity: Option<u8>, active_target_capacity: Option<u8> },
    /// The pending cluster takes over.
    Promote,
    /// Give up on the pending cluster.
    Abort { reason: String },
}

/// Options of [`UPGRADE_OPTIONS_ANNOTATION`], read by the strategies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeOptions {
    /// Seconds an upgrade may take before the strategy rolls it back (ray#50883: with many
    /// applications "all RUNNING at once" may never hold). Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The canary's traffic steps, in percent of traffic to the new cluster, ascending; after
    /// the last it promotes (default `[10, 50]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<u8>>,
    /// Seconds the canary holds each step before the next (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<u64>,
}

impl UpgradeOptions {
    /// The options a RayService's annotations carry; `Err` names what is wrong.
    pub fn of(annotations: Option<&BTreeMap<String, String>>) -> Result<Self, String> {
        match annotations.and_then(|a| a.get(UPGRADE_OPTIONS_ANNOTATION)) {
            None => Ok(Self::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| format!("annotation {UPGRADE_OPTIONS_ANNOTATION}: {e}")),
        }
    }
}

/// The fact key of a per-cluster fact.
pub fn fact_key(prefix: &str, cluster: &str) -> String {
    format!("{prefix}{cluster}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_as_json_with_their_names() {
        let shift = StepFact::Shift { pending_traffic_percent: 10, pending_target_capacity: Some(20), active_target_capacity: None };
        assert_eq!(
            serde_json::to_value(&shift).unwrap(),
            serde_json::json!({ "shift": { "pendingTrafficPercent": 10, "pendingTargetCapacity": 20, "activeTargetCapacity": null } })
        );
        assert_eq!(serde_json::to_value(StepFact::Promote).unwrap(), serde_json::json!("promote"));
    }

    #[test]
    fn options_come_from_the_annotation_and_a_typo_is_named() {
        let annotations = |v: &str| BTreeMap::from([(UPGRADE_OPTIONS_ANNOTATION.to_string(), v.to_string())]);
        let options = UpgradeOptions::of(Some(&annotations(r#"{"steps": [10, 50], "holdSeconds": 5, "timeoutSeconds": 600}"#))).unwrap();
        assert_eq!(options.steps, Some(vec![10, 50]));
        assert_eq!(options.timeout_seconds, Some(600));
        assert_eq!(UpgradeOptions::of(None).unwrap(), UpgradeOptions::default());
        let typo = UpgradeOptions::of(Some(&annotations(r#"{"holdSecond": 5}"#))).unwrap_err();
        assert!(typo.contains("holdSecond"), "{typo}");
    }
}
