//! Cached Pods packed with LZ4 against a dictionary of typical Ray Pods: under a fifth of their text.
//!
//! A Running Ray Pod's projection is about 2 KiB of JSON, nearly all of it what every Ray Pod
//! says: the same keys, KubeRay's labels, the owner reference's shape, four conditions and a
//! container status. At 10 000 Pods the texts were the largest live part of the operator's heap.
//! Packed against a dictionary of such Pods, made by the same projection and serialiser as the
//! cache's own texts so their byte sequences match, a Pod keeps only what is its own (names,
//! uids, times, addresses). A reconcile unpacks its cluster's Pods once, in microseconds each.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::{project, typed_json};

/// What packed Pods are matched against: a Running head, a Running worker and a Pending worker,
/// projected and serialised as the cache does.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut dictionary = Vec::new();
    for pod in [typical_pod("head", "Pending"), typical_pod("head", "Running"), typical_pod("worker", "Running")] {
        if let Ok(mut pod) = serde_json::from_value::<Pod>(pod) {
            project::pod(&mut pod);
            dictionary.extend_from_slice(typed_json(&pod).to_string().as_bytes());
        }
    }
    dictionary
});

/// `text` packed.
pub fn pack(text: &str) -> Box<[u8]> {
    lz4_flex::block::compress_prepend_size_with_dict(text.as_bytes(), &DICTIONARY).into_boxed_slice()
}

/// The text `packed` was packed from; `None` if it is not what [`pack`] returned.
pub fn unpack(packed: &[u8]) -> Option<Vec<u8>> {
    lz4_flex::block::decompress_size_prepended_with_dict(packed, &DICTIONARY).ok()
}

/// A Ray Pod of `node_type` as the apiserver shows it in `phase`, with the fields KubeRay's
/// builder and the kubelet set; names, uids and times are placeholders.
fn typical_pod(node_type: &str, phase: &str) -> serde_json::Value {
    let container = if node_type == "head" { "ray-head" } else { "ray-worker" };
    let time = "2026-01-01T00:00:00Z";
    let condition = |type_: &str, status: &str| json!({ "type": type_, "status": status, "lastTransitionTime": time });
    let running = phase == "Running";
    let ready = if running { "True" } else { "False" };
    let mut status = json!({
        "phase": phase,
        "qosClass": "Burstable",
        "conditions": [condition("PodScheduled", "True"), condition("Initialized", ready), condition("Ready", ready), condition("ContainersReady", ready)],
    });
    if running {
        status["hostIP"] = json!("10.96.0.1");
        status["hostIPs"] = json!([{ "ip": "10.96.0.1" }]);
        status["podIP"] = json!("10.244.0.10");
        status["podIPs"] = json!([{ "ip": "10.244.0.10" }]);
        status["startTime"] = json!(time);
        status["containerStatuses"] = json!([{
            "name": container, "image": "rayproject/ray:2.54.0", "imageID": "", "lastState": {},
            "ready": true, "restartCount": 0, "started": true, "state": { "running": { "startedAt": time } },
        }]);
        status["initContainerStatuses"] = json!([{
            "name": "wait-gcs-ready", "image": "rayproject/ray:2.54.0", "imageID": "", "lastState": {},
            "ready": true, "restartCount": 0, "started": false,
            "state": { "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": time, "finishedAt": time } },
        }]);
    }
    let ports = if node_type == "head" {
        json!([
            { "containerPort": 6379, "name": "gcs-server", "protocol": "TCP" },
            { "containerPort": 8265, "name": "dashboard", "protocol": "TCP" },
            { "containerPort": 10001, "name": "client", "protocol": "TCP" },
            { "containerPort": 8080, "name": "metrics", "protocol": "TCP" },
        ])
    } else {
        json!([{ "containerPort": 8080, "name": "metrics", "protocol": "TCP" }])
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("raycluster-{node_type}-abcde"), "generateName": format!("raycluster-{node_type}-"), "namespace": "default",
            "uid": "00000000-0000-0000-0000-000000000000", "resourceVersion": "1000", "generation": 1, "creationTimestamp": time,
            "labels": {
                "app.kubernetes.io/created-by": "kuberay-operator", "app.kubernetes.io/name": "kuberay",
                "ray.io/cluster": "raycluster", "ray.io/group": if node_type == "head" { "headgroup" } else { "workergroup" },
                "ray.io/identifier": format!("raycluster-{node_type}"), "ray.io/is-ray-node": "yes", "ray.io/node-type": node_type,
            },
            "annotations": { "ray.io/upgrade-strategy-recreate-hash": "0000000000000000", "wasmray.dev/template-hash": "0000000000000000" },
            "ownerReferences": [{
                "apiVersion": "ray.io/v1", "kind": "RayCluster", "name": "raycluster", "uid": "00000000-0000-0000-0000-000000000000",
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "containers": [{ "name": container, "image": "rayproject/ray:2.54.0", "ports": ports }],
            "restartPolicy": "Always", "nodeName": "node-0", "schedulerName": "default-scheduler",
        },
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker of another cluster than the dictionary's, Running, as the cache keeps it.
    fn a_running_worker_of_cluster_demo() -> String {
        let mut pod = typical_pod("worker", "Running");
        let text = pod.to_string().replace("raycluster", "demo-cluster").replace("abcde", "x7k2p").replace("00000000-0000-0000-0000-000000000000", "5fb31bf8-54ed-43e0-bfd9-7989913aea18");
        pod = serde_json::from_str(&text).expect("JSON");
        pod["status"]["podIP"] = json!("10.244.3.77");
        let mut pod: Pod = serde_json::from_value(pod).expect("a Pod");
        project::pod(&mut pod);
        typed_json(&pod).to_string()
    }

    #[test]
    fn a_packed_pod_unpacks_to_the_same_text() {
        let text = a_running_worker_of_cluster_demo();
        assert_eq!(unpack(&pack(&text)).as_deref(), Some(text.as_bytes()));
    }

    #[test]
    fn a_running_ray_pod_packs_to_under_a_fifth_of_its_text() {
        let text = a_running_worker_of_cluster_demo();
        let packed = pack(&text);
        assert!(packed.len() * 5 < text.len(), "{} bytes of text packed into {}", text.len(), packed.len());
    }

    #[test]
    fn text_unlike_a_pod_still_round_trips() {
        let text = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ünïcødé"},"spec":{"containers":[]}}"#;
        assert_eq!(unpack(&pack(text)).as_deref(), Some(text.as_bytes()));
        assert_eq!(unpack(&pack("")).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn bytes_that_were_not_packed_are_refused() {
        assert_eq!(unpack(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]), None);
    }
}
