//! RayJobs with batch schedulers and queues end to end: one gang for the RayJob's cluster, its submitter reserved and decorated (the test plays the batch scheduler by binding the Pods it would place), and `managedBy` left to MultiKueue.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::{Value, json};
use wasmray_api::{RayCluster, RayJob};
use wasmray_tests::rayjobs::{WAIT, apply, finish};
use wasmray_tests::{TestNamespace, install_batch_scheduler_crds, namespace};


/// A K8sJobMode RayJob `name` labelled `labels`, whose cluster is a head and two `small` workers.
fn a_gang_rayjob(name: &str, labels: Value) -> Value {
    let container = |name: &str| json!({
        "name": name, "image": "rayproject/ray:2.54.0",
        "resources": { "requests": { "cpu": "1", "memory": "1Gi" }, "limits": { "cpu": "1", "memory": "1Gi" } },
    });
    json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "submissionMode": "K8sJobMode",
            "entrypoint": "python -c 'print(1)'",
            "rayClusterSpec": {
                "rayVersion": "2.54.0",
                "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [container("ray-head")] } } },
                "workerGroupSpecs": [{
                    "groupName": "small", "replicas": 2, "minReplicas": 2, "maxReplicas": 2, "rayStartParams": {},
                    "template": { "spec": { "containers": [container("ray-worker")] } },
                }],
            },
        },
    })
}

/// Plays the batch scheduler: binds every Pod of the namespace that asks for `scheduler` and
/// has no node yet to a KWOK CPU node, until dropped.
fn bind_pods_for(ns: &TestNamespace, scheduler: &'static str) -> tokio::task::JoinHandle<()> {
    let pods: Api<Pod> = ns.api();
    tokio::spawn(async move {
        loop {
            for pod in pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                let spec = pod.spec.as_ref();
                let waiting = spec.is_some_and(|s| s.scheduler_name.as_deref() == Some(scheduler) && s.node_name.is_none());
                let (Some(name), true) = (pod.metadata.name.clone(), waiting) else { continue };
                let binding = json!({
                    "apiVersion": "v1", "kind": "Binding", "metadata": { "name": name },
                    "target": { "apiVersion": "v1", "kind": "Node", "name": "cpu-0" },
                });
                let _ = pods.create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &binding).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// The RayJob's RayCluster, once it has one.
async fn cluster_of(ns: &TestNamespace, job: &str) -> anyhow::Result<RayCluster> {
    let jobs: Api<RayJob> = ns.api();
    let named = ns
        .wait_until(&jobs, job, |j: Option<&RayJob>| j.and_then(|j| j.status.as_ref()).and_then(|s| s.ray_cluster_name.as_ref()).is_some(), WAIT)
        .await?;
    let name = named.status.and_then(|s| s.ray_cluster_name).context("a cluster name")?;
    let clusters: Api<RayCluster> = ns.api();
    ns.wait_until(&clusters, &name, |c: Option<&RayCluster>| c.is_some(), WAIT).await
}

/// The cluster's Pods, once it has `count` of them.
async fn pods_of(ns: &TestNamespace, cluster: &str, count: usize) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = ns.api();
    let selector = format!("ray.io/cluster={cluster}");
    wasmray_tests::within(WAIT, async {
        loop {
            let items = pods.list(&ListParams::default().labels(&selector)).await.map(|l| l.items).unwrap_or_default();
            if items.len() >= count {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .with_context(|| format!("the {count} Pods of {cluster}"))
}

fn annotations(meta: &kube::api::ObjectMeta) -> BTreeMap<String, String> {
    meta.annotations.clone().unwrap_or_default()
}

fn labels(meta: &kube::api::ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_volcano_rayjob_is_one_gang_of_its_cluster_that_reserves_its_submitter() -> anyhow::Result<()> {
    let ns = namespace("rayjob-volcano").await?;
    install_batch_scheduler_crds(&ns.client).await?;
    let operator = ns.operator_with_batch_scheduler("volcano").await?;
    let binder = bind_pods_for(&ns, "volcano");
    apply(&ns, &a_gang_rayjob("nightly", json!({ "volcano.sh/queue-name": "ml" }))).await?;

    // One PodGroup, the RayJob's: the head and two workers, plus the submitter's resources.
    let gvk = GroupVersionKind::gvk("scheduling.volcano.sh", "v1beta1", "PodGroup");
    let groups: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk));
    let group = wasmray_tests::within(WAIT, async {
        loop {
            if let Ok(group) = groups.get("ray-nightly-pg").await {
                return group;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .context("the RayJob's PodGroup ray-nightly-pg")?;
    let owner = &group.metadata.owner_references.as_ref().context("an owner")?[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("RayJob", "nightly"));
    assert_eq!(group.data["spec"]["minMember"], 3, "the head and two workers, not the submitter: {:#}", group.data);
    assert_eq!(group.data["spec"]["queue"], "ml");
    assert_eq!(
        group.data["spec"]["minResources"]["cpu"], "3500m",
        "three 1-CPU Ray Pods and the default submitter's 500m: {:#}", group.data
    );

    // The cluster joins the RayJob's gang: its Pods name that PodGroup, and it has none of its own.
    let cluster = cluster_of(&ns, "nightly").await?;
    let cluster_name = cluster.metadata.name.clone().unwrap_or_default();
    assert_eq!(labels(&cluster.metadata).get("volcano.sh/queue-name").map(String::as_str), Some("ml"));
    assert_eq!(annotations(&cluster.metadata).get("scheduling.k8s.io/group-name").map(String::as_str), Some("ray-nightly-pg"));
    for pod in pods_of(&ns, &cluster_name, 3).await? {
        let spec = pod.spec.as_ref().context("a Pod spec")?;
        assert_eq!(spec.scheduler_name.as_deref(), Some("volcano"));
        let notes = annotations(&pod.metadata);
        assert_eq!(notes.get("scheduling.k8s.io/group-name").map(String::as_str), Some("ray-nightly-pg"), "{:?}", pod.metadata.name);
        let group = labels(&pod.metadata).get("ray.io/group").cloned().unwrap_or_default();
        assert_eq!(notes.get("volcano.sh/task-spec"), Some(&group));
    }
    assert!(groups.get_opt(&format!("ray-{cluster_name}-pg")).await?.is_none(), "the cluster has no PodGroup of its own");

    // The submitter, created once the bound cluster is ready, is the gang's `submittergroup` task.
    let jobs: Api<Job> = ns.api();
    let submitter = ns.wait_until(&jobs, "nightly", |j: Option<&Job>| j.is_some(), WAIT).await?;
    let template = &submitter.spec.as_ref().context("a Job spec")?.template;
    let meta = template.metadata.as_ref().context("template metadata")?;
    assert_eq!(template.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()), Some("volcano"));
    assert_eq!(annotations(meta).get("volcano.sh/task-spec").map(String::as_str), Some("submittergroup"));
    assert_eq!(annotations(meta).get("scheduling.k8s.io/group-name").map(String::as_str), Some("ray-nightly-pg"));
    assert_eq!(labels(meta).get("volcano.sh/queue-name").map(String::as_str), Some("ml"));

    binder.abort();
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_yunikorn_gang_rayjob_gives_its_cluster_and_submitter_one_set_of_task_groups() -> anyhow::Result<()> {
    let ns = namespace("rayjob-yunikorn").await?;
    let operator = ns.operator_with_batch_scheduler("yunikorn").await?;
    let binder = bind_pods_for(&ns, "yunikorn");
    let gang = json!({
        "ray.io/gang-scheduling-enabled": "true", "yunikorn.apache.org/app-id": "nightly-app", "yunikorn.apache.org/queue": "root.ml",
    });
    apply(&ns, &a_gang_rayjob("nightly", gang)).await?;

    let jobs: Api<Job> = ns.api();
    let submitter = ns.wait_until(&jobs, "nightly", |j: Option<&Job>| j.is_some(), WAIT).await?;
    let template = &submitter.spec.as_ref().context("a Job spec")?.template;
    let meta = template.metadata.as_ref().context("template metadata")?;
    assert_eq!(template.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()), Some("yunikorn"));
    assert_eq!(labels(meta).get("applicationId").map(String::as_str), Some("nightly-app"));
    assert_eq!(labels(meta).get("queue").map(String::as_str), Some("root.ml"));
    assert_eq!(annotations(meta).get("yunikorn.apache.org/task-group-name").map(String::as_str), Some("submittergroup"));
    let task_groups = annotations(meta).get("yunikorn.apache.org/task-groups").cloned().context("task groups")?;
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&task_groups)?
        .iter()
        .map(|g| g["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["headgroup", "small", "submittergroup"]);

    // The cluster's Pods carry the same task groups (the RayJob's), each naming its own group.
    let cluster = cluster_of(&ns, "nightly").await?;
    for pod in pods_of(&ns, cluster.metadata.name.as_deref().unwrap_or_default(), 3).await? {
        let notes = annotations(&pod.metadata);
        assert_eq!(notes.get("yunikorn.apache.org/task-groups"), Some(&task_groups), "{:?}", pod.metadata.name);
        assert_eq!(pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()), Some("yunikorn"));
        let group = labels(&pod.metadata).get("ray.io/group").cloned().unwrap_or_default();
        assert_eq!(notes.get("yunikorn.apache.org/task-group-name"), Some(&group));
    }

    binder.abort();
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rayjob_managed_by_multikueue_is_left_to_it_and_one_managed_by_the_operator_is_not() -> anyhow::Result<()> {
    let ns = namespace("rayjob-managedby").await?;
    let operator = ns.operator().await?;
    let mut elsewhere = a_gang_rayjob("elsewhere", json!({}));
    elsewhere["spec"]["managedBy"] = json!("kueue.x-k8s.io/multikueue");
    let mut here = a_gang_rayjob("here", json!({}));
    here["spec"]["managedBy"] = json!("ray.io/kuberay-operator");
    apply(&ns, &elsewhere).await?;
    apply(&ns, &here).await?;

    // The one the operator manages gets its cluster; by then the other has had as long and has
    // neither a cluster nor a status (MultiKueue writes it).
    cluster_of(&ns, "here").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let jobs: Api<RayJob> = ns.api();
    let left = jobs.get("elsewhere").await?;
    assert!(left.status.is_none(), "{:?}", left.status);
    assert!(left.metadata.finalizers.unwrap_or_default().is_empty(), "no finalizer on a RayJob another controller manages");
    let clusters: Api<RayCluster> = ns.api();
    let names: Vec<String> = clusters.list(&ListParams::default()).await?.items.into_iter().filter_map(|c| c.metadata.name).collect();
    assert!(names.iter().all(|n| !n.starts_with("elsewhere")), "{names:?}");
    finish(&ns, operator).await
}
