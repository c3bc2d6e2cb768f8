//! RayJob as a [`Kind`]: its children (its RayCluster, submitter Job and head Service, tied by `ray.io/originated-from-cr-name`), the head Pod it reads, its head Service built from the cluster, KubeRay's failure reasons, and the Ray job the host polls for it.

use std::collections::BTreeMap;

use serde_json::Value;
use wasmray_api::{RayCluster, RayJob, labels, names};

use crate::cache::ORIGINATED_LABEL;
use crate::controller::apply::Report;
use crate::controller::prepare::{Role, Unbuildable, Verb};
use crate::controller::{Kind, Related};
use crate::pods::{self, BuildContext, BuildError};
use crate::ray::poller::Target;
use crate::runtime::Child;

/// `ray.io/originated-from-crd` of what a RayJob creates.
const CREATED_BY: &str = "RayJob";

impl Kind for RayJob {
    const CHILD_LABEL: &'static str = ORIGINATED_LABEL;
    const RECORDER: &'static str = "rayjob-controller";
    const RECONCILER: &'static str = "rayjob";
    const WRITABLE: &'static [(&'static str, &'static str)] =
        &[("ray.io/v1", "RayCluster"), ("batch/v1", "Job"), ("v1", "Service")];
    const INVALID_SPEC_REASON: &'static str = "InvalidRayJobSpec";

    fn render(&self, child: &Child, ctx: &BuildContext, children: &[Value]) -> Result<Vec<Value>, BuildError> {
        match child {
            Child::HeadService => head_service(self, ctx, children),
            // The reconciler renders nothing else: its cluster and submitter it applies itself.
            _ => Ok(Vec::new()),
        }
    }

    /// The head Pod of its cluster (which carries only the cluster's labels), and the cluster a
    /// `clusterSelector` names (which carries none of the RayJob's).
    fn related(&self) -> Vec<Related> {
        let mut related = Vec::new();
        if let Some(cluster) = cluster_name(self) {
            related.push(Related::Labelled {
                kind: "Pod",
                labels: vec![(labels::CLUSTER, cluster.clone()), (labels::NODE_TYPE, "head".into())],
            });
        }
        if let Some(selected) = selected_cluster(self) {
            related.push(Related::Named { kind: "RayCluster", name: selected });
        }
        related
    }

    fn failure_reason(verb: Verb, kind: &str, _role: Role) -> &'static str {
        match (verb, kind) {
            (Verb::Create, "RayCluster") => "FailedToCreateRayCluster",
            (Verb::Update, "RayCluster") => "FailedToUpdateRayCluster",
            (Verb::Delete, "RayCluster") => "FailedToDeleteRayCluster",
            (Verb::Create | Verb::Update, "Job") => "FailedToCreateRayJobSubmitter",
            (Verb::Delete, "Job") => "FailedToDeleteRayJobSubmitter",
            (Verb::Create, "Service") => "FailedToCreateService",
            (Verb::Update, "Service") => "FailedToUpdateService",
            (Verb::Delete, "Service") => "FailedToDeleteService",
            (Verb::Delete, "RayJob") => "FailedToDeleteRayJob",
            (Verb::Create | Verb::Update, _) => "FailedToApply",
            (Verb::Delete, _) => "FailedToDelete",
        }
    }

    fn facts_after(_report: &Report, _unbuildable: &[Unbuildable]) -> Vec<(&'static str, Option<String>)> {
        Vec::new()
    }

    /// KubeRay asks the dashboard about a RayJob's job on every reconcile while it runs; here
    /// the host's poller does, while the status says Running with a job id and a dashboard.
    fn polls(primary: &Value, _children: &[Value], _build: &BuildContext) -> Vec<Target> {
        let status = &primary["status"];
        let running = status["jobDeploymentStatus"] == "Running";
        let (Some(job_id), Some(address)) = (nonempty(&status["jobId"]), nonempty(&status["dashboardURL"])) else {
            return Vec::new();
        };
        if !running {
            return Vec::new();
        }
        let cluster = nonempty(&status["rayClusterName"]).unwrap_or_default();
        vec![Target::job(address, cluster, job_id)]
    }
}

fn nonempty(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The cluster the RayJob runs on now: its status's, or the one its selector names.
fn cluster_name(job: &RayJob) -> Option<String> {
    job.status.as_ref().and_then(|s| s.ray_cluster_name.clone()).filter(|n| !n.is_empty()).or_else(|| selected_cluster(job))
}

fn selected_cluster(job: &RayJob) -> Option<String> {
    job.spec.cluster_selector.as_ref()?.get(labels::CLUSTER).filter(|n| !n.is_empty()).cloned()
}

/// KubeRay's `<rayjob>-head-svc`: the head Service of the RayJob's current cluster, renamed,
/// labelled as the RayJob's and owned by it, so the address outlives a retry's new cluster.
/// Nothing while the cluster is not in the cache yet: the next reconcile renders it.
fn head_service(job: &RayJob, ctx: &BuildContext, children: &[Value]) -> Result<Vec<Value>, BuildError> {
    let Some(name) = job.status.as_ref().and_then(|s| s.ray_cluster_name.as_deref()) else { return Ok(Vec::new()) };
    let Some(cluster) = children.iter().find(|c| c["kind"] == "RayCluster" && c["metadata"]["name"] == name) else {
        return Ok(Vec::new());
    };
    let Ok(cluster) = serde_json::from_value::<RayCluster>(cluster.clone()) else { return Ok(Vec::new()) };
    let job_name = job.metadata.name.clone().ok_or(BuildError::MissingMetadata("name"))?;
    let uid = job.metadata.uid.clone().ok_or(BuildError::MissingMetadata("uid"))?;
    let mut service = pods::head_service(&cluster, ctx)?;
    service.metadata.name = Some(names::head_service_name(&job_name, None));
    service.metadata.labels = Some(BTreeMap::from([
        (labels::ORIGINATED_FROM_CR_NAME.to_string(), job_name.clone()),
        (labels::ORIGINATED_FROM_CRD.to_string(), CREATED_BY.to_string()),
        (labels::NODE_TYPE.to_string(), "head".to_string()),
        (labels::IDENTIFIER.to_string(), names::check_label(&names::identifier(&job_name, "head"))),
    ]));
    service.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "ray.io/v1".into(),
        kind: "RayJob".into(),
        name: job_name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let mut value = serde_json::to_value(&service).unwrap_or(Value::Null);
    value["apiVersion"] = "v1".into();
    value["kind"] = "Service".into();
    Ok(vec![value])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a_running_rayjob(status: Value) -> Value {
        json!({ "apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": { "name": "pi", "namespace": "ml" }, "status": status })
    }

    #[test]
    fn a_running_job_with_an_id_and_a_dashboard_is_polled() {
        let job = a_running_rayjob(json!({
            "jobDeploymentStatus": "Running", "jobId": "pi-x1", "dashboardURL": "pi-rc-head-svc.ml.svc.cluster.local:8265", "rayClusterName": "pi-rc",
        }));
        assert_eq!(
            <RayJob as Kind>::polls(&job, &[], &BuildContext::default()),
            [Target::job("pi-rc-head-svc.ml.svc.cluster.local:8265", "pi-rc", "pi-x1")]
        );
    }

    #[test]
    fn a_job_not_running_or_without_a_dashboard_is_not_polled() {
        let initializing = a_running_rayjob(json!({ "jobDeploymentStatus": "Initializing", "jobId": "pi-x1", "dashboardURL": "d:8265" }));
        assert!(<RayJob as Kind>::polls(&initializing, &[], &BuildContext::default()).is_empty());
        let no_dashboard = a_running_rayjob(json!({ "jobDeploymentStatus": "Running", "jobId": "pi-x1" }));
        assert!(<RayJob as Kind>::polls(&no_dashboard, &[], &BuildContext::default()).is_empty());
    }

    #[test]
    fn failed_writes_get_kuberays_rayjob_reasons() {
        let reason = <RayJob as Kind>::failure_reason;
        assert_eq!(reason(Verb::Create, "RayCluster", Role::Other), "FailedToCreateRayCluster");
        assert_eq!(reason(Verb::Create, "Job", Role::Other), "FailedToCreateRayJobSubmitter");
        assert_eq!(reason(Verb::Delete, "Job", Role::Other), "FailedToDeleteRayJobSubmitter");
        assert_eq!(reason(Verb::Delete, "RayCluster", Role::Other), "FailedToDeleteRayCluster");
    }

    #[test]
    fn the_head_pod_of_its_cluster_and_a_selected_cluster_are_read() {
        let job: RayJob = serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": { "name": "pi", "namespace": "ml" },
            "spec": { "clusterSelector": { "ray.io/cluster": "shared" } },
        }))
        .unwrap();
        assert_eq!(
            job.related(),
            [
                Related::Labelled { kind: "Pod", labels: vec![("ray.io/cluster", "shared".into()), ("ray.io/node-type", "head".into())] },
                Related::Named { kind: "RayCluster", name: "shared".into() },
            ]
        );
    }
}
