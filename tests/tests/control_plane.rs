//! The local control plane is a real Kubernetes: scheduling of GPU Pods, garbage collection,
//! the Job controller, KWOK's scripted Pod lives, CRDs with CEL rules, and kubectl.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::conditions;
use serde_json::json;
use wasmray_tests::{kwok, namespace};

const WAIT: Duration = Duration::from_secs(60);

/// A Pod that asks for `gpus` NVIDIA GPUs; `tolerant` adds the GPU nodes' toleration.
fn gpu_pod(name: &str, gpus: u32, tolerant: bool) -> Pod {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "containers": [{
                "name": "ray-worker",
                "image": "rayproject/ray:2.54.0-gpu",
                "resources": { "limits": { "nvidia.com/gpu": gpus.to_string() } }
            }]
        }
    }))
    .unwrap();
    if tolerant {
        pod.spec.as_mut().unwrap().tolerations = Some(vec![serde_json::from_value(json!({
            "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"
        }))
        .unwrap()]);
    }
    pod
}

fn plain_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "containers": [{ "name": "main", "image": "busybox" }] }
    }))
    .unwrap()
}

fn is_running_and_ready(pod: Option<&Pod>) -> bool {
    let Some(status) = pod.and_then(|p| p.status.as_ref()) else { return false };
    status.phase.as_deref() == Some("Running")
        && status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

fn is_unschedulable(pod: Option<&Pod>) -> bool {
    pod.and_then(|p| p.status.as_ref()).is_some_and(|s| {
        s.phase.as_deref() == Some("Pending")
            && s.conditions.iter().flatten().any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))
    })
}

async fn node_of(pod: &Pod, nodes: &Api<Node>) -> Node {
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).expect("the pod is bound");
    nodes.get(&node_name).await.unwrap()
}

fn gpu_capacity(node: &Node) -> Option<String> {
    node.status.as_ref()?.capacity.as_ref()?.get("nvidia.com/gpu").map(|q| q.0.clone())
}

#[tokio::test]
async fn a_pod_requesting_one_gpu_is_bound_to_a_gpu_node_and_becomes_ready() -> anyhow::Result<()> {
    let ns = namespace("gpu-pod-binds-to-gpu-node").await?;
    let pods: Api<Pod> = ns.api();
    pods.create(&PostParams::default(), &gpu_pod("worker", 1, true)).await?;

    let pod = ns.wait_until(&pods, "worker", is_running_and_ready, WAIT).await?;

    let node = node_of(&pod, &Api::all(ns.client.clone())).await;
    assert_eq!(gpu_capacity(&node).as_deref(), Some("8"), "bound to {:?}", node.metadata.name);
    assert_eq!(node.metadata.labels.as_ref().unwrap()["nvidia.com/gpu.product"], "A100");
    Ok(())
}

#[tokio::test]
async fn a_pod_requesting_nine_gpus_stays_pending_as_unschedulable() -> anyhow::Result<()> {
    let ns = namespace("nine-gpus-unschedulable").await?;
    let pods: Api<Pod> = ns.api();
    pods.create(&PostParams::default(), &gpu_pod("too-big", 9, true)).await?;

    let pod = ns.wait_until(&pods, "too-big", is_unschedulable, WAIT).await?;

    let scheduled = pod.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "PodScheduled").unwrap();
    assert!(scheduled.message.unwrap_or_default().contains("Insufficient nvidia.com/gpu"));
    assert!(pod.spec.unwrap().node_name.is_none());
    Ok(())
}

#[tokio::test]
async fn a_pod_requesting_a_gpu_is_given_the_gpu_toleration_as_on_managed_clouds() -> anyhow::Result<()> {
    let ns = namespace("extended-resource-toleration").await?;
    let pods: Api<Pod> = ns.api();
    // No toleration of its own: the ExtendedResourceToleration admission plugin adds it.
    pods.create(&PostParams::default(), &gpu_pod("samples-do-this", 2, false)).await?;

    let pod = ns.wait_until(&pods, "samples-do-this", is_running_and_ready, WAIT).await?;

    let tolerations = pod.spec.as_ref().unwrap().tolerations.clone().unwrap_or_default();
    assert!(tolerations.iter().any(|t| t.key.as_deref() == Some("nvidia.com/gpu")), "{tolerations:?}");
    let node = node_of(&pod, &Api::all(ns.client.clone())).await;
    assert_eq!(gpu_capacity(&node).as_deref(), Some("8"));
    Ok(())
}

#[tokio::test]
async fn a_pod_without_the_toleration_never_lands_on_a_gpu_node() -> anyhow::Result<()> {
    let ns = namespace("no-toleration-no-gpu-node").await?;
    let pods: Api<Pod> = ns.api();
    let nodes: Api<Node> = Api::all(ns.client.clone());
    // Enough Pods that the scheduler's spreading would put some on GPU nodes if it could.
    for i in 0..8 {
        pods.create(&PostParams::default(), &plain_pod(&format!("cpu-{i}"))).await?;
    }
    // Pinned to the GPU nodes without tolerating their taint: nowhere to go.
    let mut intolerant = plain_pod("intolerant");
    intolerant.spec.as_mut().unwrap().node_selector =
        Some([("nvidia.com/gpu.product".to_string(), "A100".to_string())].into());
    pods.create(&PostParams::default(), &intolerant).await?;

    for i in 0..8 {
        let pod = ns.wait_until(&pods, &format!("cpu-{i}"), is_running_and_ready, WAIT).await?;
        let node = node_of(&pod, &nodes).await;
        assert_eq!(gpu_capacity(&node), None, "cpu-{i} landed on {:?}", node.metadata.name);
    }
    let pod = ns.wait_until(&pods, "intolerant", is_unschedulable, WAIT).await?;
    let message = pod.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "PodScheduled").unwrap().message;
    assert!(message.unwrap_or_default().contains("untolerated taint"), "the scheduler names the taint");
    Ok(())
}

#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents() -> anyhow::Result<()> {
    let ns = namespace("garbage-collection").await?;
    let maps: Api<ConfigMap> = ns.api();
    let owner = maps.create(&PostParams::default(), &config_map("owner", None)).await?;
    let owner_ref = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        ..Default::default()
    };
    maps.create(&PostParams::default(), &config_map("dependent", Some(owner_ref))).await?;

    maps.delete("owner", &DeleteParams::background()).await?;

    let uid = maps.get("dependent").await?.metadata.uid.unwrap();
    wasmray_tests::within(WAIT, kube::runtime::wait::await_condition(maps.clone(), "dependent", conditions::is_deleted(&uid)))
        .await??;
    Ok(())
}

fn config_map(name: &str, owner: Option<OwnerReference>) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), owner_references: owner.map(|o| vec![o]), ..Default::default() },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..Default::default()
    }
}

/// A Job whose Pod exits with `phase` (KWOK's scripted exit) after half a second.
fn job_exiting(name: &str, phase: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "annotations": {
                    kwok::EXIT_ANNOTATION: phase,
                    kwok::EXIT_AFTER_ANNOTATION: "500ms"
                } },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{ "name": "ray-job-submitter", "image": "rayproject/ray:2.54.0" }]
                }
            }
        }
    }))
    .unwrap()
}

fn job_has_condition(kind: &'static str) -> impl Fn(Option<&Job>) -> bool {
    move |job| {
        job.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.conditions.iter().flatten().any(|c| c.type_ == kind && c.status == "True"))
    }
}

#[tokio::test]
async fn a_job_completes_or_fails_as_its_pods_marker_says() -> anyhow::Result<()> {
    let ns = namespace("job-completes-or-fails").await?;
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job_exiting("succeeds", "Succeeded")).await?;
    jobs.create(&PostParams::default(), &job_exiting("fails", "Failed")).await?;

    let succeeded = ns.wait_until(&jobs, "succeeds", job_has_condition("Complete"), WAIT).await?;
    let failed = ns.wait_until(&jobs, "fails", job_has_condition("Failed"), WAIT).await?;

    assert_eq!(succeeded.status.unwrap().succeeded, Some(1));
    let failed = failed.status.unwrap();
    assert_eq!(failed.failed, Some(1));
    assert!(failed.conditions.unwrap().iter().any(|c| c.reason.as_deref() == Some("BackoffLimitExceeded")));
    // The Job controller really created the Pods: they carry its labels.
    let pods: Api<Pod> = ns.api();
    let listed = pods.list(&kube::api::ListParams::default().labels("job-name=succeeds")).await?;
    assert_eq!(listed.items.len(), 1);
    Ok(())
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.test.wasmray.dev" },
        "spec": {
            "group": "test.wasmray.dev",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "properties": {
                            "minReplicas": { "type": "integer" },
                            "maxReplicas": { "type": "integer" }
                        },
                        "x-kubernetes-validations": [{
                            "rule": "self.minReplicas <= self.maxReplicas",
                            "message": "minReplicas must not exceed maxReplicas"
                        }]
                    } }
                } }
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_crd_applied_server_side_is_served_and_its_cel_rule_rejects_a_bad_object() -> anyhow::Result<()> {
    let ns = namespace("crd-cel-rule").await?;
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    let apply = PatchParams::apply("wasmray-tests").force();
    crds.patch("widgets.test.wasmray.dev", &apply, &Patch::Apply(widget_crd())).await?;
    ns.wait_until(&crds, "widgets.test.wasmray.dev", conditions::is_crd_established(), WAIT).await?;

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("test.wasmray.dev", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    let widget = |name: &str, min: i64, max: i64| {
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "test.wasmray.dev/v1", "kind": "Widget",
            "metadata": { "name": name },
            "spec": { "minReplicas": min, "maxReplicas": max }
        }))
        .unwrap()
    };

    widgets.patch("good", &apply, &Patch::Apply(widget("good", 1, 3))).await?;
    let served = widgets.get("good").await?;
    assert_eq!(served.data["spec"]["maxReplicas"], 3);

    let rejected = widgets.patch("bad", &apply, &Patch::Apply(widget("bad", 5, 2))).await.unwrap_err();
    let kube::Error::Api(status) = rejected else { panic!("expected an API error, got {rejected:?}") };
    assert_eq!(status.code, 422);
    assert!(status.message.contains("minReplicas must not exceed maxReplicas"), "{}", status.message);
    Ok(())
}

#[tokio::test]
async fn kubectl_lists_the_nodes_with_the_generated_kubeconfig() -> anyhow::Result<()> {
    let cluster = wasmray_tests::cluster().await?;
    let kubectl = std::env::var("WASMRAY_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let output = std::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["get", "nodes", "-o", "name"])
        .output()
        .map_err(|e| anyhow::anyhow!("running {kubectl} (tests/run installs it): {e}"))?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed = String::from_utf8(output.stdout)?;
    for node in ["node/cpu-0", "node/cpu-1", "node/gpu-0", "node/gpu-1"] {
        assert!(listed.lines().any(|l| l == node), "{node} missing from:\n{listed}");
    }
    Ok(())
}
