//! The RayCluster behaviours KubeRay's own tests assert (kuberay-features.md §8, the items
//! `raycluster.rs` does not cover), end to end: the operator against the real local control
//! plane, KWOK playing the kubelet.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use wasmray_api::RayCluster;
use wasmray_tests::fixtures::{
    WAIT, apply, condition, eventually, label, pods, ray_cluster, status_field, wait_for_state,
    wait_for_workers, workers,
};
use wasmray_tests::{kwok, namespace};

fn names(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().map(|p| p.name_any()).collect()
}

// §8 item 6.
#[tokio::test]
async fn overridden_app_kubernetes_io_labels_are_honoured_but_ray_io_cluster_is_not()
-> anyhow::Result<()> {
    let ns = namespace("raycluster-label-overrides").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("labelled", &[("cpu", 1, 0, 3)]);
    let overrides = json!({ "labels": {
        "app.kubernetes.io/name": "my-ray",
        "app.kubernetes.io/created-by": "my-platform",
        "ray.io/cluster": "someone-else"
    }});
    cluster["spec"]["headGroupSpec"]["template"]["metadata"] = overrides.clone();
    cluster["spec"]["workerGroupSpecs"][0]["template"]["metadata"] = overrides;
    apply(&ns, &cluster).await?;

    wait_for_state(&ns, "labelled", "ready").await?;
    let all = pods(&ns, "ray.io/is-ray-node=yes").await?;
    assert_eq!(all.len(), 2, "a head and a worker: {:?}", names(&all));
    for pod in &all {
        assert_eq!(
            label(pod, "app.kubernetes.io/name"),
            Some("my-ray"),
            "{}",
            pod.name_any()
        );
        assert_eq!(
            label(pod, "app.kubernetes.io/created-by"),
            Some("my-platform"),
            "{}",
            pod.name_any()
        );
        assert_eq!(
            label(pod, "ray.io/cluster"),
            Some("labelled"),
            "{} keeps its cluster label",
            pod.name_any()
        );
    }
    Ok(())
}

// §8 item 9.
#[tokio::test]
async fn without_autoscaling_lowering_replicas_deletes_the_excess_workers() -> anyhow::Result<()> {
    let ns = namespace("raycluster-scale-down").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("shrinking", &[("cpu", 4, 0, 10)]);
    apply(&ns, &cluster).await?;
    let before = names(&wait_for_workers(&ns, "shrinking", "cpu", 4).await?);

    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = json!(2);
    apply(&ns, &cluster).await?;

    let after = names(&wait_for_workers(&ns, "shrinking", "cpu", 2).await?);
    assert!(
        after.is_subset(&before),
        "two of the four were deleted, none created: {after:?} vs {before:?}"
    );
    wait_for_state(&ns, "shrinking", "ready").await?;
    assert_eq!(
        names(&workers(&ns, "shrinking", "cpu").await?),
        after,
        "and it stays at those two"
    );
    Ok(())
}

// §8 item 10.
#[tokio::test]
async fn a_worker_pod_that_fails_is_deleted_and_replaced() -> anyhow::Result<()> {
    let ns = namespace("raycluster-failed-worker").await?;
    let _operator = ns.operator().await?;
    apply(&ns, &ray_cluster("crashy", &[("cpu", 2, 0, 5)])).await?;
    wait_for_state(&ns, "crashy", "ready").await?;
    let victim = workers(&ns, "crashy", "cpu").await?.remove(0).name_any();

    // KWOK ends the Pod's containers with exit code 1: phase Failed, as a crash under
    // restartPolicy Never or an eviction leaves it.
    let pods: Api<Pod> = ns.api();
    let exit = json!({ "metadata": { "annotations": { kwok::EXIT_ANNOTATION: "Failed", kwok::EXIT_AFTER_ANNOTATION: "100ms" } } });
    pods.patch(&victim, &PatchParams::default(), &Patch::Merge(&exit))
        .await?;

    eventually("the failed worker deleted and replaced", WAIT, || async {
        let gone = pods.get_opt(&victim).await?.is_none();
        let live = names(&workers(&ns, "crashy", "cpu").await?);
        Ok(if gone && live.len() == 2 && !live.contains(&victim) {
            Ok(())
        } else {
            Err(format!("failed Pod gone: {gone}, live workers {live:?}"))
        })
    })
    .await?;
    wait_for_state(&ns, "crashy", "ready").await?;
    Ok(())
}

// §8 item 12.
#[tokio::test]
async fn suspending_one_worker_group_deletes_only_that_groups_pods() -> anyhow::Result<()> {
    let ns = namespace("raycluster-suspend-group").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("partial", &[("kept", 2, 0, 5), ("paused", 2, 0, 5)]);
    apply(&ns, &cluster).await?;
    wait_for_state(&ns, "partial", "ready").await?;
    let kept = names(&workers(&ns, "partial", "kept").await?);
    let head = names(&pods(&ns, "ray.io/cluster=partial,ray.io/node-type=head").await?);

    cluster["spec"]["workerGroupSpecs"][1]["suspend"] = json!(true);
    apply(&ns, &cluster).await?;

    wait_for_workers(&ns, "partial", "paused", 0).await?;
    assert_eq!(
        names(&workers(&ns, "partial", "kept").await?),
        kept,
        "the other group is untouched"
    );
    assert_eq!(
        names(&pods(&ns, "ray.io/cluster=partial,ray.io/node-type=head").await?),
        head,
        "so is the head"
    );

    cluster["spec"]["workerGroupSpecs"][1]["suspend"] = json!(false);
    apply(&ns, &cluster).await?;
    wait_for_workers(&ns, "partial", "paused", 2).await?;
    Ok(())
}

// §8 item 13. The replica/host labels (`ray.io/worker-group-replica-name` …) come with the
// `RayMultiHostIndexing` feature gate, off by default as in KubeRay v1.5.2; the operator the
// tests start uses the defaults, so here the group is counted in Pods, replicas × hosts.
#[tokio::test]
async fn a_multi_host_group_creates_replicas_times_num_of_hosts_pods() -> anyhow::Result<()> {
    let ns = namespace("raycluster-multi-host").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("slices", &[("hosts", 2, 0, 4)]);
    cluster["spec"]["workerGroupSpecs"][0]["numOfHosts"] = json!(3);
    apply(&ns, &cluster).await?;

    let ready = wait_for_state(&ns, "slices", "ready").await?;
    assert_eq!(
        workers(&ns, "slices", "hosts").await?.len(),
        6,
        "2 replicas × 3 hosts"
    );
    assert_eq!(
        status_field(Some(&ready), "desiredWorkerReplicas"),
        Some(json!(6)),
        "counted in Pods, as KubeRay does"
    );

    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = json!(1);
    apply(&ns, &cluster).await?;
    wait_for_workers(&ns, "slices", "hosts", 3).await?;
    Ok(())
}

// §8 item 14.
#[tokio::test]
async fn a_namespace_in_the_pod_template_is_ignored() -> anyhow::Result<()> {
    let ns = namespace("raycluster-template-namespace").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("homebound", &[("cpu", 2, 0, 5)]);
    cluster["spec"]["headGroupSpec"]["template"]["metadata"] =
        json!({ "namespace": "kube-system" });
    cluster["spec"]["workerGroupSpecs"][0]["template"]["metadata"] =
        json!({ "namespace": "kube-system" });
    apply(&ns, &cluster).await?;

    wait_for_state(&ns, "homebound", "ready").await?;
    let here = pods(&ns, "ray.io/cluster=homebound").await?;
    assert_eq!(
        here.len(),
        3,
        "head and two workers in the RayCluster's namespace: {:?}",
        names(&here)
    );
    assert!(
        here.iter()
            .all(|p| p.namespace().as_deref() == Some(ns.name.as_str()))
    );
    let elsewhere: Api<Pod> = Api::namespaced(ns.client.clone(), "kube-system");
    let strays = elsewhere
        .list(&ListParams::default().labels("ray.io/cluster=homebound"))
        .await?
        .items;
    assert!(
        strays.is_empty(),
        "nothing in kube-system: {:?}",
        names(&strays)
    );
    Ok(())
}

// §8 item 15.
#[tokio::test]
async fn desired_cpu_and_memory_are_summed_even_without_requests() -> anyhow::Result<()> {
    let ns = namespace("raycluster-desired-resources").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("sized", &[("cpu", 2, 0, 5)]);
    // Limits only: the head 1 CPU and 1Gi, each worker 2 CPU and 3Gi.
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({ "limits": { "cpu": "1", "memory": "1Gi" } });
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"] =
        json!({ "limits": { "cpu": "2", "memory": "3Gi" } });
    apply(&ns, &cluster).await?;

    let ready = wait_for_state(&ns, "sized", "ready").await?;
    assert_eq!(status_field(Some(&ready), "desiredCPU"), Some(json!("5")));
    assert_eq!(
        status_field(Some(&ready), "desiredMemory"),
        Some(json!("7Gi"))
    );
    assert_eq!(status_field(Some(&ready), "desiredGPU"), Some(json!("0")));
    Ok(())
}

// §8 item 16.
#[tokio::test]
async fn a_group_of_zero_hosts_creates_no_pods() -> anyhow::Result<()> {
    let ns = namespace("raycluster-zero-hosts").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("hostless", &[("none", 2, 0, 5), ("some", 1, 0, 5)]);
    cluster["spec"]["workerGroupSpecs"][0]["numOfHosts"] = json!(0);
    apply(&ns, &cluster).await?;

    // The other group's worker and the head are created; the group of 0 hosts gets nothing.
    wait_for_workers(&ns, "hostless", "some", 1).await?;
    wait_for_state(&ns, "hostless", "ready").await?;
    let all = pods(&ns, "ray.io/cluster=hostless").await?;
    assert_eq!(all.len(), 2, "the head and one worker: {:?}", names(&all));
    assert!(workers(&ns, "hostless", "none").await?.is_empty());
    Ok(())
}

// §8 item 17.
#[tokio::test]
async fn head_pod_ready_and_provisioned_turn_true_when_the_head_runs() -> anyhow::Result<()> {
    let ns = namespace("raycluster-conditions").await?;
    let _operator = ns.operator().await?;
    // The head asks for a node label no node has yet, so it waits Pending until one gets it.
    let gate = ("wasmray.dev/test-gate", ns.name.clone());
    let mut cluster = ray_cluster("gated", &[("cpu", 1, 0, 3)]);
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["nodeSelector"] =
        json!({ gate.0: gate.1 });
    apply(&ns, &cluster).await?;

    let clusters: Api<RayCluster> = ns.api();
    let pending = ns
        .wait_until(
            &clusters,
            "gated",
            |rc: Option<&RayCluster>| rc.and_then(|rc| condition(rc, "HeadPodReady")).is_some(),
            WAIT,
        )
        .await?;
    assert_eq!(
        condition(&pending, "HeadPodReady").map(|c| c.0).as_deref(),
        Some("False")
    );
    let provisioned = condition(&pending, "RayClusterProvisioned").expect("set with HeadPodReady");
    assert_eq!(
        (provisioned.0.as_str(), provisioned.1.as_str()),
        ("False", "RayClusterPodsProvisioning")
    );
    assert_ne!(status_field(Some(&pending), "state"), Some(json!("ready")));

    let nodes: Api<Node> = Api::all(ns.client.clone());
    let label = |value: Value| json!({ "metadata": { "labels": { gate.0: value } } });
    nodes
        .patch(
            "cpu-1",
            &PatchParams::default(),
            &Patch::Merge(label(json!(gate.1))),
        )
        .await?;
    let outcome = wait_for_state(&ns, "gated", "ready").await;
    nodes
        .patch(
            "cpu-1",
            &PatchParams::default(),
            &Patch::Merge(label(Value::Null)),
        )
        .await?;

    let ready = outcome?;
    assert_eq!(
        condition(&ready, "HeadPodReady"),
        Some(("True".into(), "HeadPodRunningAndReady".into()))
    );
    assert_eq!(
        condition(&ready, "RayClusterProvisioned"),
        Some(("True".into(), "AllPodRunningAndReadyFirstTime".into()))
    );
    Ok(())
}

// §8 item 18.
#[tokio::test]
async fn a_53_character_cluster_name_yields_valid_service_names() -> anyhow::Result<()> {
    let ns = namespace("raycluster-long-name").await?;
    let _operator = ns.operator().await?;
    let name = "a-cluster-name-of-exactly-fifty-three-characters-abcd";
    assert_eq!(name.len(), 53);
    let mut cluster = ray_cluster(name, &[("cpu", 1, 0, 3)]);
    // Ask for every Service a cluster can have: head, serve, and the multi-host headless one.
    cluster["metadata"]["annotations"] = json!({ "ray.io/enable-serve-service": "true" });
    cluster["spec"]["workerGroupSpecs"][0]["numOfHosts"] = json!(2);
    apply(&ns, &cluster).await?;

    wait_for_state(&ns, name, "ready").await?;
    // The namespace is this test's: every Service in it is the cluster's.
    let services: Vec<Service> = ns
        .api::<Service>()
        .list(&ListParams::default())
        .await?
        .items;
    let made: Vec<String> = services.iter().map(|s| s.name_any()).collect();
    assert_eq!(
        made.len(),
        3,
        "head, serve and headless worker Services: {made:?}"
    );
    for service in &made {
        let dns_1035 = service.len() <= 63
            && service.starts_with(|c: char| c.is_ascii_lowercase())
            && service.ends_with(|c: char| c.is_ascii_alphanumeric())
            && service
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        assert!(dns_1035, "{service:?} is a valid Service name");
    }
    for (key, value) in services.iter().flat_map(|s| s.labels()) {
        assert!(
            value.len() <= 63,
            "label {key}={value:?} is a valid label value"
        );
    }
    assert!(
        made.iter().any(|s| s.ends_with("head-svc")),
        "a head Service among {made:?}"
    );
    Ok(())
}

// §8 item 19.
#[tokio::test]
async fn gcs_fault_tolerance_keeps_a_deleted_cluster_until_its_redis_cleanup_job_completes()
-> anyhow::Result<()> {
    let ns = namespace("raycluster-gcs-ft").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("durable", &[("cpu", 1, 0, 3)]);
    cluster["spec"]["gcsFaultToleranceOptions"] = json!({ "redisAddress": "redis:6379" });
    apply(&ns, &cluster).await?;

    let clusters: Api<RayCluster> = ns.api();
    let finalizer = "ray.io/gcs-ft-redis-cleanup-finalizer";
    ns.wait_until(
        &clusters,
        "durable",
        |rc: Option<&RayCluster>| {
            rc.is_some_and(|rc| rc.finalizers().iter().any(|f| f == finalizer))
        },
        WAIT,
    )
    .await?;
    wait_for_state(&ns, "durable", "ready").await?;

    clusters.delete("durable", &DeleteParams::default()).await?;
    let jobs: Api<Job> = ns.api();
    ns.wait_until(
        &jobs,
        "durable-redis-cleanup",
        |job: Option<&Job>| job.is_some(),
        WAIT,
    )
    .await?;
    let held = clusters.get("durable").await?;
    assert!(
        held.metadata.deletion_timestamp.is_some()
            && held.finalizers().iter().any(|f| f == finalizer),
        "held by the finalizer"
    );

    // The cleanup Pod runs until it exits; make it succeed.
    let cleanup_pods = || async {
        let found = pods(&ns, "job-name=durable-redis-cleanup").await?;
        anyhow::Ok(found)
    };
    eventually("the cleanup Job's Pod", WAIT, || async {
        let n = cleanup_pods().await?.len();
        Ok(if n > 0 {
            Ok(())
        } else {
            Err("no Pod".to_string())
        })
    })
    .await?;
    let exit = json!({ "metadata": { "annotations": { kwok::EXIT_ANNOTATION: "Succeeded", kwok::EXIT_AFTER_ANNOTATION: "100ms" } } });
    for pod in cleanup_pods().await? {
        ns.api::<Pod>()
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&exit),
            )
            .await?;
    }

    eventually(
        "the RayCluster gone once the cleanup Job completed",
        WAIT,
        || async {
            Ok(match clusters.get_opt("durable").await? {
                None => Ok(()),
                Some(rc) => Err(format!("still there with finalizers {:?}", rc.finalizers())),
            })
        },
    )
    .await
}
