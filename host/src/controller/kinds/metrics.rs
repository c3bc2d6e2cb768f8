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
use wasmray_api::{RayCluster, RayJob};

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

/// The RayCluster caches of every namespace scope, read at each scrape.
#[derive(Default)]
pub struct ClusterMetrics {
    stores: Mutex<Vec<Store<RayCluster>>>,
}

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMetrics").finish_non_exhaustive()
    }
}

impl ClusterMetrics {
    /// Adds one scope's RayCluster cache.
    pub fn watch(&self, store: Store<RayCluster>) {
        self.stores.lock().unwrap_or_else(|p| p.into_inner()).push(store);
    }
}

impl Collector for ClusterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info: Family<InfoLabels, Gauge> = Family::default();
        let provisioned_seconds: Family<ObjectLabels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        let provisioned: Family<ConditionLabels, Gauge> = Family::default();
        for store in self.stores.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for cluster in store.state() {
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

/// The RayJob caches of every namespace scope, read at each scrape.
#[derive(Default)]
pub struct JobMetrics {
    stores: Mutex<Vec<Store<RayJob>>>,
}

impl std::fmt::Debug for JobMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobMetrics").finish_non_exhaustive()
    }
}

impl JobMetrics {
    /// Adds one scope's RayJob cache.
    pub fn watch(&self, store: Store<RayJob>) {
        self.stores.lock().unwrap_or_else(|p| p.into_inner()).push(store);
    }
}

impl Collector for JobMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info: Family<ObjectLabels, Gauge> = Family::default();
        let deployment: Family<DeploymentLabels, Gauge> = Family::default();
        let execution: Family<ExecutionLabels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        for store in self.stores.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for job in store.state() {
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
