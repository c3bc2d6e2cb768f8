//! What the cache keeps of an owned object: what reconcilers read, not the bulk of a Pod's spec.
//!
//! A Ray Pod's spec is most of its size (a dozen environment variables, probes, volumes,
//! resources, affinity), yet no reconciler decides from it: the host's builder made it from the
//! RayCluster, which the reconciler reads itself. Dropping it as objects enter the cache makes
//! the cache several times smaller on large clusters, and every snapshot, which crosses into
//! WebAssembly as JSON on each reconcile, several times cheaper to serialise and to parse.
//!
//! The contract (documented on `snapshot.children` in `wit/plugin.wit`): Pods keep their whole
//! metadata (less `managedFields`) and status; of the spec, the containers' names, images and
//! ports, `restartPolicy`, `nodeName` and `schedulerName`. Other kinds keep everything but
//! `managedFields`.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::Resource;
use kube::api::DynamicObject;

/// Strips `managedFields`: the apiserver's bookkeeping, never read by a reconciler.
pub fn object<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Reduces a Pod to what reconcilers read.
pub fn pod(pod: &mut Pod) {
    object(pod);
    if let Some(spec) = pod.spec.take() {
        pod.spec = Some(PodSpec {
            containers: spec
                .containers
                .into_iter()
                .map(|c| Container { name: c.name, image: c.image, ports: c.ports, ..Container::default() })
                .collect(),
            restart_policy: spec.restart_policy,
            node_name: spec.node_name,
            scheduler_name: spec.scheduler_name,
            ..PodSpec::default()
        });
    }
}

/// A Pod the apiserver just created (or the one sent, when it already existed) as the cache
/// would keep it, in JSON; `None` for any other kind. The expectations hold it until the cache
/// shows the Pod, so it is projected at once: a Pod as the apiserver returns it, managedFields
/// and all, is several times larger as a JSON value, and a plan creating a thousand of them held
/// every one until the plan ended.
pub fn created_pod(object: DynamicObject) -> Option<serde_json::Value> {
    let is_pod = object.types.as_ref().is_some_and(|t| t.kind == "Pod" && t.api_version == "v1");
    let mut parsed: Pod = if is_pod { object.try_parse().ok()? } else { return None };
    pod(&mut parsed);
    serde_json::to_value(parsed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a_worker_pod_as_the_apiserver_returns_it() -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "demo-cpu-worker-x7k2p", "namespace": "ml", "uid": "u-1",
                "labels": { "ray.io/cluster": "demo", "ray.io/group": "cpu" },
                "annotations": { "ray.io/ft-enabled": "false" },
                "deletionTimestamp": "2026-11-25T10:00:00Z",
                "managedFields": [ { "manager": "wasmray", "operation": "Apply" } ]
            },
            "spec": {
                "containers": [ {
                    "name": "ray-worker", "image": "rayproject/ray:2.54.0",
                    "env": [ { "name": "RAY_CLUSTER_NAME", "value": "demo" } ],
                    "ports": [ { "containerPort": 8080, "name": "metrics" } ],
                    "resources": { "limits": { "cpu": "4" } }
                } ],
                "volumes": [ { "name": "shared-mem", "emptyDir": { "medium": "Memory" } } ],
                "restartPolicy": "Never", "nodeName": "kwok-node-3", "schedulerName": "volcano",
                "tolerations": [ { "key": "nvidia.com/gpu", "operator": "Exists" } ]
            },
            "status": {
                "phase": "Running", "podIP": "10.0.0.7",
                "conditions": [ { "type": "Ready", "status": "True" } ],
                "containerStatuses": [ { "name": "ray-worker", "ready": true, "restartCount": 0, "image": "rayproject/ray:2.54.0", "imageID": "",
                                         "state": { "running": { "startedAt": "2026-11-25T10:00:09Z" } } } ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_keeps_metadata_status_and_the_spec_fields_reconcilers_read() {
        let projected = created_pod(a_worker_pod_as_the_apiserver_returns_it()).unwrap();
        let original = serde_json::to_value(a_worker_pod_as_the_apiserver_returns_it()).unwrap();

        assert_eq!(projected["metadata"]["labels"], original["metadata"]["labels"]);
        assert_eq!(projected["metadata"]["annotations"], original["metadata"]["annotations"]);
        assert_eq!(projected["metadata"]["deletionTimestamp"], original["metadata"]["deletionTimestamp"]);
        assert_eq!(projected["status"], original["status"]);
        assert_eq!(
            projected["spec"],
            json!({
                "containers": [ { "name": "ray-worker", "image": "rayproject/ray:2.54.0",
                                  "ports": [ { "containerPort": 8080, "name": "metrics" } ] } ],
                "restartPolicy": "Never", "nodeName": "kwok-node-3", "schedulerName": "volcano"
            })
        );
    }

    #[test]
    fn managed_fields_are_dropped() {
        let projected = created_pod(a_worker_pod_as_the_apiserver_returns_it()).unwrap();
        assert!(projected["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn what_is_not_a_pod_is_not_kept() {
        let service = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "demo-head-svc" }, "spec": { "ports": "not a list" } });
        assert_eq!(created_pod(serde_json::from_value(service).unwrap()), None);
    }
}
