//! KubeRay's metrics of its custom resources, computed at scrape time from the primary caches
//! as KubeRay computes them by listing (`kuberay_cluster_info`, …).

use std::sync::Mutex;

use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use wasmray_api::{RayCluster, RayJob, RayService};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    name: String,
    namespace: String,
    uid: String,
    owner_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    name: String,
    namespace: String,
    uid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    name: String,
    namespace: String,
    uid: String,
    condition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    name: String,
    namespace: String,
    uid: String,
    deployment_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutionLabels {
    name: String,
    namespace: String,
    uid: String,
    job_deployment_status: String,
    retry_count: String,
}

/// One kind's caches, of every namespace scope, read at each scrape.
pub struct Scraped<K: Resource<DynamicType = ()> + Clone + 'static> {
    stores: Mutex<Vec<Store<K>>>,
}

/// KubeRay's RayCluster metrics.
pub type ClusterMetrics = Scraped<RayCluster>;
/// KubeRay's RayJob metrics.
pub type JobMetrics = Scraped<RayJob>;
/// KubeRay's RayService metrics, from every scope's RayService cache.
pub type ServiceMetrics = Scraped<RayService>;

impl<K: Resource<DynamicType = ()> + Clone + 'static> Default for Scraped<K> {
    fn default() -> Self {
        Self { stores: Mutex::default() }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> std::fmt::Debug for Scraped<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraped").field("kind", &K::kind(&())).finish_non_exhaustive()
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Scraped<K> {
    /// Adds one scope's cache.
    pub fn watch(&self, store: Store<K>) {
        self.stores.lock().unwrap_or_else(|p| p.into_inner()).push(store);
    }

    /// Every cached object of every scope.
    fn objects(&self) -> Vec<std::sync::Arc<K>> {
        self.stores.lock().unwrap_or_else(|p| p.into_inner()).iter().flat_map(Store::state).collect()
    }
}

impl Collector for Scraped<RayCluster> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info: Family<InfoLabels, Gauge> = Family::default();
        let provisioned_seconds: Family<ObjectLabels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        let provisioned: Family<ConditionLabels, Gauge> = Family::default();
        for cluster in self.objects() {
            let object = ObjectLabels {
                name: cluster.name_any(),
                namespace: cluster.namespace().unwrap_or_default(),
                uid: cluster.meta().uid.clone().unwrap_or_default(),
            };
            let owner_kind = cluster.labels().get(wasmray_api::labels::ORIGINATED_FROM_CRD).cloned().unwrap_or_else(|| "None".into());
            info.get_or_create(&InfoLabels { name: object.name.clone(), namespace: object.namespace.clone(), uid: object.uid.clone(), owner_kind }).set(1);
            let status = serde_json::to_value(&cluster.status).unwrap_or(Value::Null);
            let condition = status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "RayClusterProvisioned");
            let is_true = condition.is_some_and(|c| c["status"] == "True");
            let labels = |value: &str| ConditionLabels { name: object.name.clone(), namespace: object.namespace.clone(), uid: object.uid.clone(), condition: value.into() };
            provisioned.get_or_create(&labels(if is_true { "true" } else { "false" })).set(1);
            // Seconds from creation to the first time every Pod was Ready, as KubeRay sets it.
            let created = cluster.meta().creation_timestamp.as_ref().map(|t| t.0);
            let at = condition.filter(|_| is_true).and_then(|c| c["lastTransitionTime"].as_str()).and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
            if let (Some(created), Some(at)) = (created, at) {
                let seconds = at.duration_since(created).as_secs_f64();
                provisioned_seconds.get_or_create(&object).set(seconds.max(0.0));
            }
        }
        info.encode(encoder.encode_descriptor("kuberay_cluster_info", "Metadata of each RayCluster", None, info.metric_type())?)?;
        provisioned_seconds.encode(encoder.encode_descriptor(
            "kuberay_cluster_provisioned_duration_seconds",
            "Seconds from a RayCluster's creation until all its Pods were first ready",
            None,
            provisioned_seconds.metric_type(),
        )?)?;
        provisioned.encode(encoder.encode_descriptor(
            "kuberay_cluster_condition_provisioned",
            "Whether each RayCluster has been provisioned",
            None,
            provisioned.metric_type(),
        )?)?;
        Ok(())
    }
}

impl Collector for Scraped<RayJob> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info: Family<ObjectLabels, Gauge> = Family::default();
        let deployment: Family<DeploymentLabels, Gauge> = Family::default();
        let execution: Family<ExecutionLabels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        for job in self.objects() {
            let (name, namespace, uid) = (job.name_any(), job.namespace().unwrap_or_default(), job.meta().uid.clone().unwrap_or_default());
            info.get_or_create(&ObjectLabels { name: name.clone(), namespace: namespace.clone(), uid: uid.clone() }).set(1);
            let status = serde_json::to_value(&job.status).unwrap_or(Value::Null);
            let state = status["jobDeploymentStatus"].as_str().unwrap_or_default().to_string();
            if state.is_empty() {
                continue;
            }
            let labels = DeploymentLabels { name: name.clone(), namespace: namespace.clone(), uid: uid.clone(), deployment_status: state.clone() };
            deployment.get_or_create(&labels).set(1);
            // KubeRay records it on the move to a terminal state or to Retrying: from the
            // attempt's start to its end.
            let time = |field: &str| status[field].as_str().and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
            if matches!(state.as_str(), "Complete" | "Failed" | "Retrying")
                && let (Some(start), Some(end)) = (time("startTime"), time("endTime"))
            {
                let retry_count = status["failed"].as_i64().unwrap_or(0).to_string();
                let labels = ExecutionLabels { name, namespace, uid, job_deployment_status: state, retry_count };
                execution.get_or_create(&labels).set(end.duration_since(start).as_secs_f64().max(0.0));
            }
        }
        info.encode(encoder.encode_descriptor("kuberay_job_info", "Metadata of each RayJob", None, info.metric_type())?)?;
        deployment.encode(encoder.encode_descriptor(
            "kuberay_job_deployment_status",
            "The deployment status of each RayJob",
            None,
            deployment.metric_type(),
        )?)?;
        execution.encode(encoder.encode_descriptor(
            "kuberay_job_execution_duration_seconds",
            "Seconds a finished RayJob attempt ran, from its start to its end",
            None,
            execution.metric_type(),
        )?)?;
        Ok(())
    }
}

/// KubeRay's RayService metrics: `kuberay_service_info`, and the `Ready` and
/// `UpgradeInProgress` conditions as `condition="true"|"false"` (absent counts as false).
impl Collector for Scraped<RayService> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info: Family<ObjectLabels, Gauge> = Family::default();
        let ready: Family<ConditionLabels, Gauge> = Family::default();
        let upgrading: Family<ConditionLabels, Gauge> = Family::default();
        for service in self.objects() {
            let (name, namespace, uid) = (service.name_any(), service.namespace().unwrap_or_default(), service.meta().uid.clone().unwrap_or_default());
            info.get_or_create(&ObjectLabels { name: name.clone(), namespace: namespace.clone(), uid: uid.clone() }).set(1);
            let conditions = service.status.as_ref().and_then(|s| s.conditions.as_ref());
            let holds = |kind: &str| conditions.into_iter().flatten().any(|c| c.type_ == kind && c.status == "True");
            let labels = |value: bool| ConditionLabels { name: name.clone(), namespace: namespace.clone(), uid: uid.clone(), condition: value.to_string() };
            ready.get_or_create(&labels(holds("Ready"))).set(1);
            upgrading.get_or_create(&labels(holds("UpgradeInProgress"))).set(1);
        }
        info.encode(encoder.encode_descriptor("kuberay_service_info", "Metadata of each RayService", None, info.metric_type())?)?;
        ready.encode(encoder.encode_descriptor("kuberay_service_condition_ready", "Whether each RayService is ready", None, ready.metric_type())?)?;
        upgrading.encode(encoder.encode_descriptor(
            "kuberay_service_condition_upgrade_in_progress",
            "Whether each RayService is upgrading",
            None,
            upgrading.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    fn a_rayjob(name: &str, status: serde_json::Value) -> RayJob {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": { "name": name, "namespace": "ml", "uid": format!("uid-{name}") },
            "spec": { "entrypoint": "python pi.py" },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn rayservices_are_scraped_with_their_ready_and_upgrade_conditions() {
        let (store, mut writer) = reflector::store::<RayService>();
        let service: RayService = serde_json::from_value(serde_json::json!({
            "apiVersion": "ray.io/v1", "kind": "RayService", "metadata": { "name": "svc", "namespace": "ml", "uid": "uid-svc" },
            "spec": { "rayClusterConfig": { "headGroupSpec": { "rayStartParams": {}, "template": {} } } },
            "status": { "conditions": [
                { "type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints", "message": "", "lastTransitionTime": "2026-12-02T00:00:00Z" },
                { "type": "UpgradeInProgress", "status": "False", "reason": "NoPendingCluster", "message": "", "lastTransitionTime": "2026-12-02T00:00:00Z" } ] },
        }))
        .unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(service));
        let metrics = std::sync::Arc::new(ServiceMetrics::default());
        metrics.watch(store);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"kuberay_service_info{name="svc",namespace="ml",uid="uid-svc"} 1"#), "{text}");
        assert!(text.contains(r#"kuberay_service_condition_ready{name="svc",namespace="ml",uid="uid-svc",condition="true"} 1"#), "{text}");
        assert!(text.contains(r#"kuberay_service_condition_upgrade_in_progress{name="svc",namespace="ml",uid="uid-svc",condition="false"} 1"#), "{text}");
    }

    #[test]
    fn rayjobs_are_scraped_with_kuberays_names_and_labels() {
        let (store, mut writer) = reflector::store::<RayJob>();
        writer.apply_watcher_event(&watcher::Event::Apply(a_rayjob(
            "done",
            serde_json::json!({ "jobDeploymentStatus": "Complete", "failed": 1,
                                "startTime": "2026-12-02T00:00:00Z", "endTime": "2026-12-02T00:01:30Z" }),
        )));
        writer.apply_watcher_event(&watcher::Event::Apply(a_rayjob("fresh", serde_json::json!(null))));
        let metrics = std::sync::Arc::new(JobMetrics::default());
        metrics.watch(store);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(metrics));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();

        assert!(text.contains(r#"kuberay_job_info{name="done",namespace="ml",uid="uid-done"} 1"#), "{text}");
        assert!(text.contains(r#"kuberay_job_info{name="fresh",namespace="ml",uid="uid-fresh"} 1"#), "{text}");
        assert!(text.contains(r#"kuberay_job_deployment_status{name="done",namespace="ml",uid="uid-done",deployment_status="Complete"} 1"#), "{text}");
        assert!(!text.contains(r#"kuberay_job_deployment_status{name="fresh""#), "no status yet, no deployment status: {text}");
        assert!(
            text.contains(r#"kuberay_job_execution_duration_seconds{name="done",namespace="ml",uid="uid-done",job_deployment_status="Complete",retry_count="1"} 90.0"#),
            "{text}"
        );
    }
}
