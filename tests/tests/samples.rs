//! KubeRay's sample RayClusters, applied unchanged, each in a namespace of its own with the
//! operator running: those the test nodes (`tests/nodes.yaml`) can run become `ready` with their
//! GPU and TPU Pods bound to nodes that have them; those that name another batch scheduler run
//! with that scheduler's plugin and get its scheduler name and PodGroup; the one that needs 64 TPU
//! hosts gets its Pods, the TPU ones Pending.
//!
//! Every RayCluster sample is classified in [`SAMPLES`]; a new one fails the test until it is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use wasmray_api::RayCluster;
use wasmray_tests::fixtures::{is_live, label};
use wasmray_tests::{TestNamespace, namespace, within};

/// How long one sample may take to reach what its class expects.
const WAIT: Duration = Duration::from_secs(120);
/// Samples running at once (each with its own namespace and operator).
const PARALLEL: usize = 8;

/// What a sample is expected to do on the local control plane.
#[derive(Debug, Clone, Copy)]
enum Class {
    /// Runs here: reaches `status.state == ready`, and every Pod asking for an accelerator is
    /// bound to a node that has it.
    Ready,
    /// Names a batch scheduler: run with that scheduler's built-in plugin (`wasmray run
    /// --batch-scheduler <plugin>`, as KubeRay runs with `--batch-scheduler`), every Pod is
    /// created with `schedulerName: scheduler`, and the plugin's PodGroup (if it makes one)
    /// exists, owned by the RayCluster. No such scheduler runs here, so the Pods stay Pending.
    OtherScheduler { plugin: &'static str, scheduler: &'static str, pod_group: Option<(&'static str, &'static str)> },
    /// Cannot run here for `reason`: every Pod is created, the Pods of `group` stay Pending as
    /// unschedulable, the rest run.
    Pending {
        group: &'static str,
        reason: &'static str,
    },
}

/// Every sample file under `samples/` that holds a `ray.io/v1` RayCluster, and its class.
const SAMPLES: &[(&str, Class)] = &[
    ("ray-cluster-label-selector.yaml", Class::Ready),
    ("ray-cluster.auth-manual.yaml", Class::Ready),
    ("ray-cluster.auth.yaml", Class::Ready),
    ("ray-cluster.autoscaler-v2.yaml", Class::Ready),
    ("ray-cluster.autoscaler.yaml", Class::Ready),
    ("ray-cluster.complete.yaml", Class::Ready),
    ("ray-cluster.custom-head-service.yaml", Class::Ready),
    // GCS fault tolerance: the external Redis matters to Ray only; KWOK's Pods are ready anyway.
    ("ray-cluster.deprecate-gcs-ft.yaml", Class::Ready),
    ("ray-cluster.embed-grafana.yaml", Class::Ready),
    ("ray-cluster.external-redis-uri.yaml", Class::Ready),
    ("ray-cluster.external-redis.yaml", Class::Ready),
    ("ray-cluster.fluentbit.yaml", Class::Ready),
    // Runs as the ServiceAccount `my-ksa` the sample's guide has you create (see `prerequisites`).
    ("ray-cluster.gke-bucket.yaml", Class::Ready),
    ("ray-cluster.head-command.yaml", Class::Ready),
    ("ray-cluster.overwrite-command.yaml", Class::Ready),
    ("ray-cluster.persistent-redis.yaml", Class::Ready),
    ("ray-cluster.py-spy.yaml", Class::Ready),
    ("ray-cluster.sample.yaml", Class::Ready),
    ("ray-cluster.separate-ingress.yaml", Class::Ready),
    ("ray-cluster.tls.yaml", Class::Ready),
    ("ray-cluster.tpu-v4-multihost.yaml", Class::Ready),
    ("ray-cluster.tpu-v4-singlehost.yaml", Class::Ready),
    ("ray-cluster.tpu-v6e-16-multihost.yaml", Class::Ready),
    ("ray-cluster.tpu-v6e-singlehost.yaml", Class::Ready),
    ("ray-cluster.uv.yaml", Class::Ready),
    ("ray-cluster.verl.yaml", Class::Ready),
    (
        "ray-cluster.kai-gpu-sharing.yaml",
        Class::OtherScheduler {
            plugin: "kai-scheduler",
            scheduler: "kai-scheduler",
            pod_group: None,
        },
    ),
    (
        "ray-cluster.kai-scheduler.yaml",
        Class::OtherScheduler {
            plugin: "kai-scheduler",
            scheduler: "kai-scheduler",
            pod_group: None,
        },
    ),
    (
        "ray-cluster.scheduler-plugins.yaml",
        Class::OtherScheduler {
            plugin: "scheduler-plugins",
            scheduler: "scheduler-plugins-scheduler",
            pod_group: Some(("scheduling.x-k8s.io/v1alpha1", "{name}")),
        },
    ),
    (
        "ray-cluster.volcano-scheduler-queue.yaml",
        Class::OtherScheduler {
            plugin: "volcano",
            scheduler: "volcano",
            pod_group: Some(("scheduling.volcano.sh/v1beta1", "ray-{name}-pg")),
        },
    ),
    (
        "ray-cluster.volcano-scheduler.yaml",
        Class::OtherScheduler {
            plugin: "volcano",
            scheduler: "volcano",
            pod_group: Some(("scheduling.volcano.sh/v1beta1", "ray-{name}-pg")),
        },
    ),
    (
        "ray-cluster.yunikorn-scheduler.yaml",
        Class::OtherScheduler {
            plugin: "yunikorn",
            scheduler: "yunikorn",
            pod_group: None,
        },
    ),
    (
        "ray-cluster.tpu-v6e-256-multihost.yaml",
        Class::Pending {
            group: "tpu-group",
            reason: "a 16x16 v6e slice is 64 TPU hosts; the test nodes have no such pool",
        },
    ),
];

/// The extended resources that are accelerators.
const ACCELERATORS: &[&str] = &["nvidia.com/gpu", "amd.com/gpu", "google.com/tpu"];

/// Every YAML file of KubeRay's samples, as (path relative to the samples, its documents).
fn yaml_files() -> Vec<(String, Vec<Value>)> {
    wasmray_samples::files()
        .into_iter()
        .map(|file| {
            let documents = wasmray_samples::load(&file);
            (file, documents)
        })
        .collect()
}

fn is_ray_cluster(object: &Value) -> bool {
    object["apiVersion"] == "ray.io/v1" && object["kind"] == "RayCluster"
}

/// The sample files that hold a RayCluster, each with its class from [`SAMPLES`].
fn classified_samples() -> anyhow::Result<Vec<(String, Vec<Value>, Class)>> {
    let table: BTreeMap<&str, Class> = SAMPLES.iter().copied().collect();
    let found: Vec<_> = yaml_files()
        .into_iter()
        .filter(|(_, docs)| docs.iter().any(is_ray_cluster))
        .collect();
    let unclassified: Vec<&str> = found
        .iter()
        .map(|(f, _)| f.as_str())
        .filter(|f| !table.contains_key(f))
        .collect();
    anyhow::ensure!(
        unclassified.is_empty(),
        "RayCluster samples missing from SAMPLES (classify them): {unclassified:?}"
    );
    let missing: Vec<&str> = table
        .keys()
        .copied()
        .filter(|f| !found.iter().any(|(g, _)| g == f))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "SAMPLES lists files that hold no RayCluster or do not exist: {missing:?}"
    );
    Ok(found
        .into_iter()
        .map(|(file, docs)| {
            let class = table[file.as_str()];
            (file, docs, class)
        })
        .collect())
}

#[test]
fn every_raycluster_sample_is_classified() -> anyhow::Result<()> {
    let samples = classified_samples()?;
    assert_eq!(samples.len(), SAMPLES.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_raycluster_sample_applies_unchanged_and_runs_as_its_class_says() -> anyhow::Result<()>
{
    let samples = classified_samples()?;
    let cluster = wasmray_tests::cluster().await?;
    let client = cluster.client().await?;
    wasmray_tests::install_batch_scheduler_crds(&client).await?;

    let started = std::time::Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut runs = tokio::task::JoinSet::new();
    for (file, documents, class) in samples {
        let permits = permits.clone();
        runs.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore stays open");
            let began = std::time::Instant::now();
            let outcome = run_sample(&file, &documents, class).await;
            (file, class, began.elapsed(), outcome)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = runs.join_next().await {
        let (file, class, took, outcome) = joined?;
        match outcome {
            Ok(summary) => eprintln!("ok   {file} ({class:?}) in {took:.1?}: {summary}"),
            Err(e) => {
                eprintln!("FAIL {file} ({class:?}) in {took:.1?}: {e:#}");
                failures.push(format!("{file}: {e:#}"));
            }
        }
    }
    eprintln!("{} samples in {:.1?}", SAMPLES.len(), started.elapsed());
    remove_sample_queues(&client).await;
    assert!(
        failures.is_empty(),
        "{} of {} samples failed:\n{}",
        failures.len(),
        SAMPLES.len(),
        failures.join("\n")
    );
    Ok(())
}

/// One sample, in a namespace of its own with its own operator; cleans up whatever happens.
async fn run_sample(file: &str, documents: &[Value], class: Class) -> anyhow::Result<String> {
    let ns = namespace(&format!("sample-{}", file.trim_end_matches(".yaml"))).await?;
    let operator = match class {
        Class::OtherScheduler { plugin, .. } => ns.operator_with_batch_scheduler(plugin).await?,
        _ => ns.operator().await?,
    };
    let outcome = async {
        prerequisites(&ns).await?;
        wasmray_tests::kubectl_apply(&ns, &wasmray_samples::samples_dir().join(file)).await?;
        let mut summaries = Vec::new();
        for object in documents.iter().filter(|o| is_ray_cluster(o)) {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            summaries.push(
                check(&ns, object, name, class)
                    .await
                    .with_context(|| format!("RayCluster {name}"))?,
            );
        }
        anyhow::Ok(summaries.join("; "))
    }
    .await;
    // The operator goes first, so that nothing re-adds the GCS fault-tolerance finalizer the
    // namespace's deletion would otherwise wait on.
    within(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || drop(operator)),
    )
    .await
    .context("the operator did not stop")??;
    let clusters: Api<RayCluster> = ns.api();
    for cluster in clusters
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let _ = clusters
            .patch(
                &cluster.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
            )
            .await;
    }
    tokio::task::spawn_blocking(move || drop(ns)).await?;
    outcome
}

/// What a sample's guide has you create before applying it: `ray-cluster.gke-bucket.yaml` runs as
/// the Kubernetes ServiceAccount `my-ksa` (Pods naming a missing ServiceAccount are refused).
async fn prerequisites(ns: &TestNamespace) -> anyhow::Result<()> {
    let account =
        json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "my-ksa" } });
    ns.api::<ServiceAccount>()
        .patch(
            "my-ksa",
            &PatchParams::apply("wasmray-tests"),
            &Patch::Apply(&account),
        )
        .await?;
    Ok(())
}

/// Server-side applies one object through the API (for objects that are not sample files).
async fn apply_object(ns: &TestNamespace, object: &Value) -> anyhow::Result<()> {
    let api: Api<RayCluster> = ns.api();
    let name = object["metadata"]["name"]
        .as_str()
        .context("no metadata.name")?;
    api.patch(
        name,
        &PatchParams::apply("wasmray-tests").force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// Checks what `class` expects of the RayCluster `name` (whose sample is `sample`).
async fn check(
    ns: &TestNamespace,
    sample: &Value,
    name: &str,
    class: Class,
) -> anyhow::Result<String> {
    let expected = expected_pods(sample);
    match class {
        Class::Ready => {
            let clusters: Api<RayCluster> = ns.api();
            ns.wait_until(
                &clusters,
                name,
                |rc: Option<&RayCluster>| state(rc).as_deref() == Some("ready"),
                WAIT,
            )
            .await?;
            let pods = pods_of(ns, name).await?;
            anyhow::ensure!(
                pods.len() == expected,
                "ready with {} Pods, expected {expected}",
                pods.len()
            );
            let nodes = nodes(&ns.client).await?;
            let mut on_accelerators = Vec::new();
            for pod in &pods {
                for (resource, wanted) in accelerator_requests(pod) {
                    let node_name = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .context("a ready Pod is bound")?;
                    let has = nodes
                        .get(&node_name)
                        .and_then(|n| capacity(n, resource))
                        .unwrap_or(0);
                    anyhow::ensure!(
                        has >= wanted,
                        "{} asks for {wanted} {resource} and is bound to {node_name}, which has {has}",
                        pod.name_any()
                    );
                    on_accelerators.push(format!("{} on {node_name}", pod.name_any()));
                }
            }
            Ok(format!(
                "ready, {expected} Pods{}",
                if on_accelerators.is_empty() {
                    String::new()
                } else {
                    format!(", {}", on_accelerators.join(", "))
                }
            ))
        }
        Class::OtherScheduler { plugin, scheduler, pod_group } => {
            let pods = wait_for_pods(ns, name, expected).await?;
            for pod in &pods {
                let actual = pod.spec.as_ref().and_then(|s| s.scheduler_name.clone()).unwrap_or_default();
                anyhow::ensure!(actual == scheduler, "{} has schedulerName {actual:?}, not {scheduler:?}", pod.name_any());
            }
            let mut summary = format!("{expected} Pods created with schedulerName {scheduler} by the {plugin} plugin");
            if let Some((api_version, pattern)) = pod_group {
                let group_name = pattern.replace("{name}", name);
                let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
                let resource = kube::api::ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, "PodGroup"));
                let groups: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
                let pod_group = groups.get(&group_name).await.with_context(|| format!("PodGroup {group_name}"))?;
                let owner = pod_group.metadata.owner_references.unwrap_or_default();
                anyhow::ensure!(
                    owner.iter().any(|o| o.kind == "RayCluster" && o.name == name && o.controller == Some(true)),
                    "PodGroup {group_name} is not owned by RayCluster {name}: {owner:?}"
                );
                summary.push_str(&format!(", PodGroup {group_name} (minMember {})", pod_group.data["spec"]["minMember"]));
            }
            Ok(summary)
        }
        Class::Pending { group, reason } => {
            wait_for_pods(ns, name, expected).await?;
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let pods = pods_of(ns, name).await?;
                let pending: Vec<&Pod> = pods
                    .iter()
                    .filter(|p| label(p, "ray.io/group") == Some(group))
                    .collect();
                let unschedulable = pending.iter().filter(|p| is_unschedulable(p)).count();
                let running = pods
                    .iter()
                    .filter(|p| label(p, "ray.io/group") != Some(group) && is_running_and_ready(p))
                    .count();
                if unschedulable == pending.len()
                    && running == pods.len() - pending.len()
                    && !pending.is_empty()
                {
                    return Ok(format!(
                        "{} Pods created, {group}'s {} Pending as unschedulable: {reason}",
                        pods.len(),
                        pending.len()
                    ));
                }
                let last = format!(
                    "{unschedulable} of {} {group} Pods unschedulable, {running} others running",
                    pending.len()
                );
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "after {WAIT:?}: {last}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// How many Pods a sample's cluster has: the head, and per group its replicas (clamped to
/// min/max) times its hosts.
fn expected_pods(sample: &Value) -> usize {
    let groups = sample["spec"]["workerGroupSpecs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    1 + groups
        .iter()
        .map(|g| {
            let min = g["minReplicas"].as_i64().unwrap_or(0);
            let max = g["maxReplicas"].as_i64().unwrap_or(i64::from(i32::MAX));
            let replicas = g["replicas"].as_i64().unwrap_or(min).min(max).max(min);
            (replicas * g["numOfHosts"].as_i64().unwrap_or(1)) as usize
        })
        .sum::<usize>()
}

fn state(rc: Option<&RayCluster>) -> Option<String> {
    let status = serde_json::to_value(rc?.status.as_ref()?).ok()?;
    status["state"].as_str().map(str::to_string)
}

fn is_running_and_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn is_unschedulable(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| s.node_name.is_none())
        && pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Pending")
                && s.conditions.iter().flatten().any(|c| {
                    c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                })
        })
}

async fn pods_of(ns: &TestNamespace, cluster: &str) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = ns.api();
    let selector = format!("ray.io/cluster={cluster}");
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(is_live)
        .collect())
}

async fn wait_for_pods(
    ns: &TestNamespace,
    cluster: &str,
    count: usize,
) -> anyhow::Result<Vec<Pod>> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let pods = pods_of(ns, cluster).await?;
        if pods.len() == count {
            return Ok(pods);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{} Pods after {WAIT:?}, expected {count}",
            pods.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The accelerators a Pod asks for, summed over its containers.
fn accelerator_requests(pod: &Pod) -> BTreeMap<&'static str, u64> {
    let mut wanted = BTreeMap::new();
    for container in pod.spec.iter().flat_map(|s| &s.containers) {
        let resources = container.resources.as_ref();
        for resource in ACCELERATORS {
            let amount = [
                resources.and_then(|r| r.limits.as_ref()),
                resources.and_then(|r| r.requests.as_ref()),
            ]
            .into_iter()
            .flatten()
            .filter_map(|m| m.get(*resource)?.0.parse::<u64>().ok())
            .max();
            if let Some(n) = amount.filter(|n| *n > 0) {
                *wanted.entry(*resource).or_insert(0) += n;
            }
        }
    }
    wanted
}

async fn nodes(client: &Client) -> anyhow::Result<BTreeMap<String, Node>> {
    let nodes: Api<Node> = Api::all(client.clone());
    Ok(nodes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|n| (n.name_any(), n))
        .collect())
}

fn capacity(node: &Node, resource: &str) -> Option<u64> {
    node.status
        .as_ref()?
        .capacity
        .as_ref()?
        .get(resource)?
        .0
        .parse()
        .ok()
}

/// Deletes the cluster-scoped Queues the samples created (the CRDs stay, like wasmray's own).
async fn remove_sample_queues(client: &Client) {
    for (group, version) in [
        ("scheduling.volcano.sh", "v1beta1"),
        ("scheduling.run.ai", "v2"),
    ] {
        let Ok((resource, _)) =
            kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, "Queue"))
                .await
        else {
            continue;
        };
        let queues: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        for queue in queues
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let _ = queues
                .delete(&queue.name_any(), &DeleteParams::default())
                .await;
        }
    }
}

/// No KubeRay RayCluster sample asks for AMD GPUs; this one, derived from `ray-cluster.sample.yaml`
/// with one `amd.com/gpu` per worker, shows the test nodes' AMD pool takes such workers.
#[tokio::test]
async fn a_worker_group_asking_for_amd_gpus_is_bound_to_amd_gpu_nodes() -> anyhow::Result<()> {
    let ns = namespace("sample-amd-gpu-workers").await?;
    let _operator = ns.operator().await?;
    let mut cluster = wasmray_samples::first("ray-cluster.sample.yaml", "RayCluster");
    cluster["metadata"]["name"] = json!("amd-workers");
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = json!(2);
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]
        ["amd.com/gpu"] = json!("1");
    apply_object(&ns, &cluster).await?;

    let clusters: Api<RayCluster> = ns.api();
    ns.wait_until(
        &clusters,
        "amd-workers",
        |rc: Option<&RayCluster>| state(rc).as_deref() == Some("ready"),
        WAIT,
    )
    .await?;
    let nodes = nodes(&ns.client).await?;
    let workers: Vec<Pod> = pods_of(&ns, "amd-workers")
        .await?
        .into_iter()
        .filter(|p| label(p, "ray.io/node-type") == Some("worker"))
        .collect();
    assert_eq!(workers.len(), 2);
    for pod in &workers {
        let node = &nodes[pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .expect("a ready Pod is bound")];
        assert_eq!(
            capacity(node, "amd.com/gpu"),
            Some(8),
            "{} runs on an AMD GPU node",
            pod.name_any()
        );
        assert_eq!(
            node.labels().get("amd.com/gpu.family").map(String::as_str),
            Some("AI")
        );
    }
    Ok(())
}
