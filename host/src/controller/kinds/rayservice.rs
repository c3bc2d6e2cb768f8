//! RayService as a [`Kind`]: its children (its RayClusters, Services, EndpointSlices, Gateway and HTTPRoute, tied by `ray.io/originated-from-cr-name`), the head Pods of its active and pending clusters, the Serve applications and proxies the host polls for them, and what its upgrade strategy decides from.

use serde_json::Value;
use wasmray_api::serve::{self, ProxyHealthFact, ServeApplicationsFact};
use wasmray_api::{RayClusterSpec, RayService, labels, names, ports};

use crate::cache::ORIGINATED_LABEL;
use crate::controller::apply::Report;
use crate::controller::prepare::{Role, Unbuildable, Verb};
use crate::controller::{Kind, Related};
use crate::pods::{BuildContext, BuildError};
use crate::ray::poller::{Ask, Target};
use crate::runtime::{Child, ClusterState, Fact, ServeApplication, ServeStatus, UpgradeInput};

impl Kind for RayService {
    const CHILD_LABEL: &'static str = ORIGINATED_LABEL;
    const RECORDER: &'static str = "rayservice-controller";
    const RECONCILER: &'static str = "rayservice";
    const WRITABLE: &'static [(&'static str, &'static str)] = &[
        ("ray.io/v1", "RayCluster"),
        ("v1", "Service"),
        // Only the head Pods' `ray.io/serve` label: a partial apply of metadata.
        ("v1", "Pod"),
        ("gateway.networking.k8s.io/v1", "Gateway"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ];
    const INVALID_SPEC_REASON: &'static str = "InvalidRayServiceSpec";

    /// Its reconciler builds every object itself: nothing is rendered.
    fn render(&self, _child: &Child, _ctx: &BuildContext, _children: &[Value]) -> Result<Vec<Value>, BuildError> {
        Ok(Vec::new())
    }

    /// The head Pods of its active and pending clusters (which carry only their cluster's labels).
    fn related(&self) -> Vec<Related> {
        let status = self.status.as_ref();
        let names = [
            status.and_then(|s| s.active_service_status.as_ref()).and_then(|s| s.ray_cluster_name.clone()),
            status.and_then(|s| s.pending_service_status.as_ref()).and_then(|s| s.ray_cluster_name.clone()),
        ];
        names
            .into_iter()
            .flatten()
            .filter(|n| !n.is_empty())
            .map(|cluster| Related::Labelled { kind: "Pod", labels: vec![(labels::CLUSTER, cluster), (labels::NODE_TYPE, "head".into())] })
            .collect()
    }

    fn failure_reason(verb: Verb, kind: &str, _role: Role) -> &'static str {
        match (verb, kind) {
            (Verb::Create, "RayCluster") => "FailedToCreateRayCluster",
            (Verb::Update, "RayCluster") => "FailedToUpdateRayCluster",
            (Verb::Delete, "RayCluster") => "FailedToDeleteRayCluster",
            (Verb::Create, "Service") => "FailedToCreateService",
            (Verb::Update, "Service") => "FailedToUpdateService",
            (Verb::Delete, "Service") => "FailedToDeleteService",
            (Verb::Create | Verb::Update, "Pod") => "FailedToUpdateHeadPodServeLabel",
            (Verb::Create, "Gateway") => "FailedToCreateGateway",
            (Verb::Update, "Gateway") => "FailedToUpdateGateway",
            (Verb::Create, "HTTPRoute") => "FailedToCreateHTTPRoute",
            (Verb::Update, "HTTPRoute") => "FailedToUpdateHTTPRoute",
            (Verb::Create | Verb::Update, _) => "FailedToApply",
            (Verb::Delete, _) => "FailedToDelete",
        }
    }

    fn facts_after(_report: &Report, _unbuildable: &[Unbuildable]) -> Vec<(&'static str, Option<String>)> {
        Vec::new()
    }

    /// KubeRay asks each cluster's dashboard and head proxy on every reconcile; here the
    /// poller does, for the active and the pending cluster once its head Pod is Ready.
    fn polls(primary: &Value, children: &[Value], build: &BuildContext) -> Vec<Target> {
        let namespace = primary["metadata"]["namespace"].as_str().unwrap_or_default();
        let mut targets = Vec::new();
        for cluster in cluster_names(primary) {
            let Some(head) = ready_head(children, &cluster) else { continue };
            let spec = children
                .iter()
                .find(|c| c["kind"] == "RayCluster" && c["metadata"]["name"] == cluster.as_str())
                .and_then(|c| serde_json::from_value::<RayClusterSpec>(c["spec"].clone()).ok());
            let port = |of: fn(&RayClusterSpec) -> i32, default: i32| spec.as_ref().map_or(default, of);
            let dashboard_port = port(ports::dashboard_port, ports::DEFAULT_DASHBOARD_PORT);
            let service = names::head_service_name(&cluster, None);
            targets.push(Target {
                address: format!("{service}.{namespace}.svc.{}:{dashboard_port}", build.cluster_domain),
                cluster: cluster.clone(),
                token: None,
                ask: Ask::ServeApplications,
            });
            if let (Some(ip), Some(pod)) = (head["status"]["podIP"].as_str().filter(|ip| !ip.is_empty()), head["metadata"]["name"].as_str()) {
                let serve_port = port(ports::serve_port, ports::DEFAULT_SERVE_PORT);
                targets.push(Target { address: format!("{ip}:{serve_port}"), cluster, token: None, ask: Ask::ProxyHealth { pod: pod.to_string() } });
            }
        }
        targets
    }

    fn strategy(primary: &Value) -> Option<String> {
        let named = primary["spec"]["upgradeStrategy"]["type"].as_str().filter(|t| !t.is_empty());
        Some(named.unwrap_or(serve::NEW_CLUSTER).to_string())
    }

    /// Only while both an active and a pending cluster exist.
    fn upgrade_input(primary: &Value, children: &[Value], facts: &[Fact], now: i64) -> Option<UpgradeInput> {
        let status = &primary["status"];
        let active = nonempty(&status["activeServiceStatus"]["rayClusterName"])?;
        let pending = nonempty(&status["pendingServiceStatus"]["rayClusterName"])?;
        Some(UpgradeInput {
            service: primary.to_string(),
            active: Some(cluster_state(&active, &status["activeServiceStatus"], 100, children, facts)),
            pending: Some(cluster_state(&pending, &status["pendingServiceStatus"], 0, children, facts)),
            now,
        })
    }
}

/// The active and pending clusters its status names.
fn cluster_names(primary: &Value) -> Vec<String> {
    let status = &primary["status"];
    [&status["activeServiceStatus"]["rayClusterName"], &status["pendingServiceStatus"]["rayClusterName"]].into_iter().filter_map(nonempty).collect()
}

fn nonempty(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The cluster's head Pod, if it is Ready.
fn ready_head<'a>(children: &'a [Value], cluster: &str) -> Option<&'a Value> {
    children.iter().find(|c| {
        c["kind"] == "Pod"
            && c["metadata"]["labels"][labels::CLUSTER] == cluster
            && c["metadata"]["labels"][labels::NODE_TYPE] == "head"
            && c["metadata"]["deletionTimestamp"].is_null()
            && c["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    })
}

/// One cluster as a strategy sees it: ready when its head Pod is Ready and its proxy healthy;
/// traffic and capacity from the status the reconciler wrote (`default_traffic` before any move).
fn cluster_state(name: &str, status: &Value, default_traffic: u8, children: &[Value], facts: &[Fact]) -> ClusterState {
    let fact = |prefix: &str| facts.iter().find(|f| f.key == serve::fact_key(prefix, name)).map(|f| f.value.as_str());
    let proxy_healthy = fact(serve::SERVE_PROXY_FACT).and_then(|v| serde_json::from_str::<ProxyHealthFact>(v).ok()).is_some_and(|p| p.healthy);
    let serve = fact(serve::SERVE_APPLICATIONS_FACT).and_then(|v| serde_json::from_str::<ServeApplicationsFact>(v).ok()).unwrap_or_default();
    let applications = serve
        .applications
        .iter()
        .map(|(name, app)| ServeApplication { name: name.clone(), status: serve_status(&app.status), message: app.message.clone() })
        .collect();
    let created_at = children
        .iter()
        .find(|c| c["kind"] == "RayCluster" && c["metadata"]["name"] == name)
        .and_then(|c| c["metadata"]["creationTimestamp"].as_str())
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_millisecond());
    ClusterState {
        name: name.to_string(),
        ready: ready_head(children, name).is_some() && proxy_healthy,
        applications,
        traffic_percent: percent(&status["trafficRoutedPercent"]).unwrap_or(default_traffic),
        target_capacity: percent(&status["targetCapacity"]),
        created_at,
    }
}

fn percent(value: &Value) -> Option<u8> {
    value.as_i64().map(|p| u8::try_from(p.clamp(0, 100)).unwrap_or(100))
}

/// Serve's application status; an unknown one counts as not started.
fn serve_status(status: &str) -> ServeStatus {
    match status {
        "DEPLOYING" => ServeStatus::Deploying,
        "RUNNING" => ServeStatus::Running,
        "DEPLOY_FAILED" => ServeStatus::DeployFailed,
        "UNHEALTHY" => ServeStatus::Unhealthy,
        "DELETING" => ServeStatus::Deleting,
        _ => ServeStatus::NotStarted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a_rayservice_upgrading_from(active: &str, to: &str) -> Value {
        json!({
            "apiVersion": "ray.io/v1", "kind": "RayService", "metadata": { "name": "svc", "namespace": "ml" },
            "spec": { "upgradeStrategy": { "type": "Canary" } },
            "status": { "activeServiceStatus": { "rayClusterName": active, "trafficRoutedPercent": 80 },
                        "pendingServiceStatus": { "rayClusterName": to, "trafficRoutedPercent": 20, "targetCapacity": 50 } },
        })
    }

    fn a_ready_head_of(cluster: &str, ip: &str) -> Value {
        json!({ "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": format!("{cluster}-head"), "labels": { "ray.io/cluster": cluster, "ray.io/node-type": "head" } },
                "status": { "podIP": ip, "conditions": [{ "type": "Ready", "status": "True" }] } })
    }

    fn a_cluster(name: &str, created: &str) -> Value {
        json!({ "apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": { "name": name, "creationTimestamp": created },
                "spec": { "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [{ "name": "ray-head", "image": "ray", "ports": [{ "name": "dashboard", "containerPort": 8266 }] }] } } } } })
    }

    fn fact(key: String, value: Value) -> Fact {
        Fact { key, value: value.to_string(), observed_at: 0 }
    }

    #[test]
    fn both_clusters_serve_and_proxy_are_polled_once_their_heads_are_ready() {
        let service = a_rayservice_upgrading_from("svc-old", "svc-new");
        let children = [a_cluster("svc-old", "2026-12-02T08:00:00Z"), a_ready_head_of("svc-old", "10.0.0.5"), a_cluster("svc-new", "2026-12-02T08:10:00Z")];
        let targets = <RayService as Kind>::polls(&service, &children, &BuildContext::default());
        assert_eq!(
            targets,
            [
                Target { address: "svc-old-head-svc.ml.svc.cluster.local:8266".into(), cluster: "svc-old".into(), token: None, ask: Ask::ServeApplications },
                Target { address: "10.0.0.5:8000".into(), cluster: "svc-old".into(), token: None, ask: Ask::ProxyHealth { pod: "svc-old-head".into() } },
            ],
            "the new cluster's head is not ready yet"
        );
    }

    #[test]
    fn the_strategy_sees_both_clusters_traffic_capacity_applications_and_age() {
        let service = a_rayservice_upgrading_from("svc-old", "svc-new");
        let children = [a_cluster("svc-new", "2026-12-02T08:10:00Z"), a_ready_head_of("svc-new", "10.0.0.6")];
        let facts = [
            fact(serve::fact_key(serve::SERVE_PROXY_FACT, "svc-new"), json!({ "cluster": "svc-new", "pod": "svc-new-head", "healthy": true })),
            fact(
                serve::fact_key(serve::SERVE_APPLICATIONS_FACT, "svc-new"),
                json!({ "cluster": "svc-new", "reachable": true, "applications": { "text": { "status": "UNHEALTHY", "message": "check_health failed" } } }),
            ),
        ];
        let input = <RayService as Kind>::upgrade_input(&service, &children, &facts, 42).unwrap();
        let pending = input.pending.unwrap();
        assert!(pending.ready);
        assert_eq!((pending.traffic_percent, pending.target_capacity), (20, Some(50)));
        assert_eq!(pending.applications.len(), 1);
        assert_eq!(pending.applications[0].status, ServeStatus::Unhealthy);
        assert_eq!(pending.created_at, 1_796_199_000_000);
        let active = input.active.unwrap();
        assert!(!active.ready, "no head Pod in the cache");
        assert_eq!(active.traffic_percent, 80);
        assert_eq!(<RayService as Kind>::strategy(&service).as_deref(), Some("Canary"));
    }

    #[test]
    fn no_upgrade_no_strategy_call_and_the_default_strategy_is_new_cluster() {
        let mut service = a_rayservice_upgrading_from("svc-old", "svc-new");
        service["status"]["pendingServiceStatus"] = json!({});
        assert!(<RayService as Kind>::upgrade_input(&service, &[], &[], 0).is_none());
        service["spec"] = json!({});
        assert_eq!(<RayService as Kind>::strategy(&service).as_deref(), Some("NewCluster"));
    }
}
