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
use wasmray_api::RayCluster;

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
