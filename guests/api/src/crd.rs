//! The CustomResourceDefinitions of RayCluster, RayJob and RayService, generated from the types.
//!
//! Same names, categories, printer columns and status subresource as KubeRay v1.5.2, so `kubectl get`
//! looks the same. `v1` types every field KubeRay's types, embedded Kubernetes objects included
//! (without their descriptions, so each CRD fits in client-side apply's last-applied annotation);
//! `v1alpha1` keeps the embedded objects open. CEL rules reject at apply time what KubeRay only
//! rejects while reconciling (see [`crate::schema`]).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::schema::{loose, name_rules, structural, typed};
use crate::{
    RayClusterSpec, RayClusterStatus, RayJobSpec, RayJobStatus, RayServiceSpec, RayServiceStatuses,
};

/// Longest RayCluster name: Pod names add suffixes and must stay within 63 characters.
pub const MAX_RAY_CLUSTER_NAME: usize = 53;
/// Longest RayJob or RayService name: their cluster's name appends 6 characters.
pub const MAX_RAY_JOB_NAME: usize = 47;
/// Longest RayService name, for the same reason as RayJob.
pub const MAX_RAY_SERVICE_NAME: usize = 47;

/// The three CRDs, in the order RayCluster, RayJob, RayService.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![ray_cluster(), ray_job(), ray_service()]
}

/// `rayclusters.ray.io`.
pub fn ray_cluster() -> CustomResourceDefinition {
    build::<RayClusterSpec, RayClusterStatus>(
        Names {
            kind: "RayCluster",
            plural: "rayclusters",
            max_name: MAX_RAY_CLUSTER_NAME,
        },
        json!([
            { "jsonPath": ".status.desiredWorkerReplicas", "name": "desired workers", "type": "integer" },
            { "jsonPath": ".status.availableWorkerReplicas", "name": "available workers", "type": "integer" },
            { "jsonPath": ".status.desiredCPU", "name": "cpus", "type": "string" },
            { "jsonPath": ".status.desiredMemory", "name": "memory", "type": "string" },
            { "jsonPath": ".status.desiredGPU", "name": "gpus", "type": "string" },
            { "jsonPath": ".status.desiredTPU", "name": "tpus", "priority": 1, "type": "string" },
            { "jsonPath": ".status.state", "name": "status", "type": "string" },
            { "jsonPath": ".metadata.creationTimestamp", "name": "age", "type": "date" },
            { "jsonPath": ".status.head.podIP", "name": "head pod IP", "priority": 1, "type": "string" },
            { "jsonPath": ".status.head.serviceIP", "name": "head service IP", "priority": 1, "type": "string" },
        ]),
    )
}

/// `rayjobs.ray.io`.
pub fn ray_job() -> CustomResourceDefinition {
    build::<RayJobSpec, RayJobStatus>(
        Names {
            kind: "RayJob",
            plural: "rayjobs",
            max_name: MAX_RAY_JOB_NAME,
        },
        json!([
            { "jsonPath": ".status.jobStatus", "name": "job status", "type": "string" },
            { "jsonPath": ".status.jobDeploymentStatus", "name": "deployment status", "type": "string" },
            { "jsonPath": ".status.rayClusterName", "name": "ray cluster name", "type": "string" },
            { "jsonPath": ".status.startTime", "name": "start time", "type": "string" },
            { "jsonPath": ".status.endTime", "name": "end time", "type": "string" },
            { "jsonPath": ".metadata.creationTimestamp", "name": "age", "type": "date" },
        ]),
    )
}

/// `rayservices.ray.io`.
pub fn ray_service() -> CustomResourceDefinition {
    build::<RayServiceSpec, RayServiceStatuses>(
        Names {
            kind: "RayService",
            plural: "rayservices",
            max_name: MAX_RAY_SERVICE_NAME,
        },
        json!([
            { "jsonPath": ".status.serviceStatus", "name": "service status", "type": "string" },
            { "jsonPath": ".status.numServeEndpoints", "name": "num serve endpoints", "type": "string" },
        ]),
    )
}

struct Names {
    kind: &'static str,
    plural: &'static str,
    max_name: usize,
}

fn build<Spec: JsonSchema, Status: JsonSchema>(
    names: Names,
    printer_columns: Value,
) -> CustomResourceDefinition {
    let mut root = schemars::Schema::try_from(json!({
        "description": format!("{} (ray.io/v1), reconciled by wasmray.", names.kind),
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": { "type": "object" },
            "spec": structural::<Spec>(),
            "status": structural::<Status>(),
        },
    }))
    .expect("an object schema");
    name_rules(&mut root, names.kind, names.max_name);
    let mut schema = root.to_value();
    strip_nullable(&mut schema);
    let mut v1 = schema.clone();
    typed(&mut v1);
    // KubeRay still serves ray.io/v1alpha1 (stored as v1, no conversion webhook), so manifests
    // written against it keep applying. Its schema is v1's with the embedded Kubernetes objects
    // open: served, never stored, and a second typed copy would not fit in the annotation.
    let mut v1alpha1 = schema;
    loose(&mut v1alpha1);

    let versions: Vec<Value> = [(crate::VERSION, v1), ("v1alpha1", v1alpha1)]
        .into_iter()
        .map(|(version, schema)| {
            json!({
                "name": version,
                "served": true,
                "storage": version == crate::VERSION,
                "additionalPrinterColumns": printer_columns,
                "schema": { "openAPIV3Schema": schema },
                "subresources": { "status": {} },
            })
        })
        .collect();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{}.{}", names.plural, crate::GROUP) },
        "spec": {
            "group": crate::GROUP,
            "names": {
                "categories": ["all"],
                "kind": names.kind,
                "listKind": format!("{}List", names.kind),
                "plural": names.plural,
                "singular": names.kind.to_lowercase(),
            },
            "scope": "Namespaced",
            "versions": versions,
        },
    });
    serde_json::from_value(crd).expect("the generated CRD matches the apiextensions/v1 types")
}

/// Drops `nullable: true`, which schemars puts on every `Option`. Like KubeRay's CRDs, an explicit
/// `null` is then pruned instead of stored, so readers never see a null where a value is optional.
fn strip_nullable(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.remove("nullable");
            object.values_mut().for_each(strip_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nullable),
        _ => {}
    }
}
