//! The RayService's RayClusters: the object to apply, wasmray's spec hash, and how a live cluster differs from the spec (same, in place, or a new cluster).
//!
//! # The spec hash (`wasmray.dev/cluster-spec-hash`)
//!
//! KubeRay's `ray.io/hash-without-replicas-and-workers-to-delete` is a SHA-1 of its Go JSON;
//! wasmray's is its own, so a cluster is never compared with a hash of the other algorithm:
//! the raw `rayClusterConfig` JSON with, blanked first, the cluster's `suspend`, and in every
//! worker group `replicas`, `minReplicas`, `maxReplicas`, `suspend` and
//! `scaleStrategy.workersToDelete`, and in the head's and every group's Pod template
//! `tolerations` and `schedulingGates` (which Kueue edits); serialised with every object's keys
//! sorted, hashed with FNV-1a 64, written as 16 hex digits. A cluster without the annotation (made
//! by KubeRay before a switch to wasmray) is taken as up to date: it is adopted, not replaced.

use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::vocab::{ORIGINATED_FROM_CRD_VALUE, annotations, labels};

/// How a live cluster stands against the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drift {
    /// Nothing to do.
    Same,
    /// Only replicas, appended worker groups or `suspend` changed: the same cluster is updated.
    InPlace,
    /// Anything else: a new cluster is needed.
    New,
}

/// wasmray's spec hash of a `rayClusterConfig` (see the module docs).
pub fn spec_hash(config: &Value) -> String {
    let mut config = config.clone();
    if let Some(spec) = config.as_object_mut() {
        spec.remove("suspend");
    }
    strip_template(&mut config["headGroupSpec"]);
    for group in config["workerGroupSpecs"].as_array_mut().into_iter().flatten() {
        if let Some(g) = group.as_object_mut() {
            for key in ["replicas", "minReplicas", "maxReplicas", "suspend"] {
                g.remove(key);
            }
        }
        if let Some(scale) = group["scaleStrategy"].as_object_mut() {
            scale.remove("workersToDelete");
        }
        strip_template(group);
    }
    let mut text = String::new();
    canonical(&config, &mut text);
    format!("{:016x}", fnv1a(text.as_bytes()))
}

fn strip_template(group: &mut Value) {
    if let Some(spec) = group["template"]["spec"].as_object_mut() {
        spec.remove("tolerations");
        spec.remove("schedulingGates");
    }
}

/// JSON with every object's keys sorted, whatever map the build's serde_json uses.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The RayCluster `name` built from `spec.rayClusterConfig`: the RayService's labels and
/// annotations plus KubeRay's origin labels, the spec hash and the worker group count, owned by
/// the RayService.
pub fn desired(ctx: &Ctx, name: &str) -> Value {
    let config = &ctx.raw["spec"]["rayClusterConfig"];
    let mut labels_map: Map<String, Value> = ctx.raw["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels_map.insert(labels::ORIGINATED_FROM_CR_NAME.into(), json!(ctx.name));
    labels_map.insert(labels::ORIGINATED_FROM_CRD.into(), json!(ORIGINATED_FROM_CRD_VALUE));
    let mut annotations_map: Map<String, Value> = ctx.raw["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
    annotations_map.remove(annotations::LAST_APPLIED);
    annotations_map.insert(annotations::CLUSTER_SPEC_HASH.into(), json!(spec_hash(config)));
    annotations_map.insert(annotations::NUM_WORKER_GROUPS.into(), json!(worker_groups(config).to_string()));
    json!({
        "apiVersion": wasmray_api::API_VERSION,
        "kind": "RayCluster",
        "metadata": {
            "name": name,
            "namespace": ctx.namespace,
            "labels": labels_map,
            "annotations": annotations_map,
            "ownerReferences": [ctx.owner_reference()],
        },
        // The raw spec, not a re-serialised one: fields newer than our types reach the cluster too.
        "spec": config,
    })
}

fn worker_groups(config: &Value) -> usize {
    config["workerGroupSpecs"].as_array().map_or(0, Vec::len)
}

/// How the live cluster differs from `config` (the RayService's `rayClusterConfig`).
pub fn drift(live: &Value, config: &Value) -> Drift {
    let Some(live_hash) = live["metadata"]["annotations"][annotations::CLUSTER_SPEC_HASH].as_str() else {
        return Drift::Same;
    };
    if live_hash == spec_hash(config) {
        let suspend_differs = live["spec"]["suspend"].as_bool().unwrap_or(false) != config["suspend"].as_bool().unwrap_or(false);
        // With the autoscaler the replicas are its choice, not the spec's (KubeRay's reason
        // for leaving them out of the hash).
        let autoscaling = config["enableInTreeAutoscaling"] == true;
        let replicas_differ = !autoscaling && replicas(&live["spec"]) != replicas(config);
        return if suspend_differs || replicas_differ { Drift::InPlace } else { Drift::Same };
    }
    let live_groups = live["metadata"]["annotations"][annotations::NUM_WORKER_GROUPS]
        .as_str()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| worker_groups(&live["spec"]));
    if worker_groups(config) > live_groups {
        let mut truncated = config.clone();
        if let Some(groups) = truncated["workerGroupSpecs"].as_array_mut() {
            groups.truncate(live_groups);
        }
        if spec_hash(&truncated) == live_hash {
            return Drift::InPlace;
        }
    }
    Drift::New
}

fn replicas(spec: &Value) -> Vec<Value> {
    let groups = spec["workerGroupSpecs"].as_array().into_iter().flatten();
    groups.map(|g| json!([g["replicas"], g["minReplicas"], g["maxReplicas"]])).collect()
}

/// The cluster's spec hash, if it carries one.
pub fn hash_of(live: &Value) -> Option<&str> {
    live["metadata"]["annotations"][annotations::CLUSTER_SPEC_HASH].as_str()
}
