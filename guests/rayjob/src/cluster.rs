//! The RayJob's RayCluster as JSON for a server-side apply: KubeRay's name, labels, owner, the SidecarMode submitter, and the DeleteWorkers edit.

use serde_json::{Map, Value, json};
use wasmray_api::names;

use crate::vocab::{DEFAULT_DASHBOARD_PORT, ORIGINATED_FROM_CRD_VALUE, labels};
use crate::{Ctx, submitter};

/// Annotations of the RayJob that describe the RayJob itself and must not be copied onto its cluster.
const NOT_INHERITED: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

/// The RayCluster `name` built from `spec.rayClusterSpec`: the RayJob's labels and annotations
/// plus KubeRay's origin labels, owned by the RayJob; in SidecarMode the head Pod runs the submitter.
pub fn desired(ctx: &Ctx, name: &str, job_id: &str) -> Value {
    let mut labels_map: Map<String, Value> = ctx.raw["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels_map.insert(labels::ORIGINATED_FROM_CR_NAME.into(), json!(ctx.name));
    labels_map.insert(labels::ORIGINATED_FROM_CRD.into(), json!(ORIGINATED_FROM_CRD_VALUE));
    let mut annotations: Map<String, Value> = ctx.raw["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
    for key in NOT_INHERITED {
        annotations.remove(key);
    }
    // The raw spec, not a re-serialised one: fields newer than our types reach the cluster too.
    let mut spec = ctx.raw["spec"]["rayClusterSpec"].clone();
    if ctx.mode == crate::Mode::Sidecar {
        let port = dashboard_port(&spec);
        let container = submitter::sidecar_container(ctx, &spec, name, job_id, port);
        let head = &mut spec["headGroupSpec"]["template"]["spec"];
        if let Some(containers) = head["containers"].as_array_mut() {
            containers.push(container);
        }
        // The submitter runs once: a restarted head Pod would submit again.
        head["restartPolicy"] = json!("Never");
    }
    let mut metadata = json!({
        "name": name,
        "namespace": ctx.namespace,
        "labels": labels_map,
        "ownerReferences": [ctx.owner_reference()],
    });
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    json!({ "apiVersion": wasmray_api::API_VERSION, "kind": "RayCluster", "metadata": metadata, "spec": spec })
}

/// The live cluster with every worker group suspended (`DeleteWorkers`): the whole object again, so
/// the apply keeps owning what the create set.
pub fn workers_suspended(cluster: &Value) -> Value {
    let mut spec = cluster["spec"].clone();
    for group in spec["workerGroupSpecs"].as_array_mut().into_iter().flatten() {
        group["suspend"] = json!(true);
    }
    let m = &cluster["metadata"];
    let mut metadata = json!({ "name": m["name"], "namespace": m["namespace"] });
    for key in ["labels", "annotations", "ownerReferences"] {
        if !m[key].is_null() {
            metadata[key] = m[key].clone();
        }
    }
    json!({ "apiVersion": wasmray_api::API_VERSION, "kind": "RayCluster", "metadata": metadata, "spec": spec })
}

/// Whether every worker group of the live cluster is suspended already.
pub fn all_workers_suspended(cluster: &Value) -> bool {
    cluster["spec"]["workerGroupSpecs"].as_array().into_iter().flatten().all(|g| g["suspend"] == true)
}

/// `<head Service>.<namespace>.svc.<domain>:<dashboard port>`, KubeRay's `status.dashboardURL`.
pub fn dashboard_url(cluster: &Value, namespace: &str, domain: &str) -> String {
    let name = cluster["metadata"]["name"].as_str().unwrap_or_default();
    let custom = cluster["spec"]["headGroupSpec"]["headService"]["metadata"]["name"].as_str();
    let service = names::head_service_name(name, custom);
    format!("{service}.{namespace}.svc.{domain}:{}", dashboard_port(&cluster["spec"]))
}

/// The head container's port named `dashboard`, else Ray's default.
pub fn dashboard_port(cluster_spec: &Value) -> i64 {
    cluster_spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "dashboard")
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or(DEFAULT_DASHBOARD_PORT)
}

/// `authOptions.mode: token` on the cluster: submitters then need the token too.
pub fn token_auth(cluster_spec: &Value) -> bool {
    cluster_spec["authOptions"]["mode"] == "token"
}
