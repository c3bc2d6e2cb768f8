//! RayClusters end to end: the operator (host controller + the reconciler component) against
//! the real local control plane, with KWOK playing the kubelet.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;
use wasmray_api::RayCluster;
use wasmray_tests::fixtures::{
    WAIT, apply, condition, eventually, is_live, ray_cluster, status_field, wait_for_state, wait_for_workers, workers,
};
use wasmray_tests::{namespace, wasmray_binary};

#[tokio::test]
async fn a_new_cluster_gets_its_head_service_a_head_and_clamped_workers_and_becomes_ready() -> anyhow::Result<()> {
    let ns = namespace("raycluster-becomes-ready").await?;
    let _operator = ns.operator().await?;

    apply(&ns, &ray_cluster("demo", &[("small", 2, 1, 5), ("capped", 10, 0, 3)])).await?;

    let ready = wait_for_state(&ns, "demo", "ready").await?;
    assert_eq!(workers(&ns, "demo", "small").await?.len(), 2);
    assert_eq!(workers(&ns, "demo", "capped").await?.len(), 3, "replicas above maxReplicas create maxReplicas Pods");
    assert_eq!(status_field(Some(&ready), "desiredWorkerReplicas"), Some(json!(5)));
    assert_eq!(status_field(Some(&ready), "availableWorkerReplicas"), Some(json!(5)));
    assert_eq!(condition(&ready, "HeadPodReady").map(|c| c.0).as_deref(), Some("True"));
    assert_eq!(condition(&ready, "RayClusterProvisioned").map(|c| c.0).as_deref(), Some("True"));

    let service: Service = ns.api::<Service>().get("demo-head-svc").await?;
    let ports: BTreeMap<String, i32> = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect();
    assert_eq!(ports.get("gcs-server"), Some(&6379));
    assert_eq!(ports.get("dashboard"), Some(&8265));
    assert_eq!(ports.get("client"), Some(&10001));
    Ok(())
}

#[tokio::test]
async fn a_deleted_worker_is_replaced() -> anyhow::Result<()> {
    let ns = namespace("raycluster-replaces-worker").await?;
    let _operator = ns.operator().await?;
    apply(&ns, &ray_cluster("heal", &[("cpu", 3, 0, 5)])).await?;
    wait_for_workers(&ns, "heal", "cpu", 3).await?;

    let victim = workers(&ns, "heal", "cpu").await?.remove(0);
    ns.api::<Pod>().delete(&victim.name_any(), &DeleteParams::default()).await?;

    eventually("a replacement worker", WAIT, || async {
        let now = workers(&ns, "heal", "cpu").await?;
        let replaced = now.len() == 3 && now.iter().all(|p| p.name_any() != victim.name_any());
        Ok(if replaced { Ok(()) } else { Err(format!("{:?}", now.iter().map(|p| p.name_any()).collect::<Vec<_>>())) })
    })
    .await
}

#[tokio::test]
async fn workers_to_delete_removes_exactly_those_pods_and_autoscaling_gets_its_rbac() -> anyhow::Result<()> {
    let ns = namespace("raycluster-workers-to-delete").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("scaled", &[("cpu", 4, 0, 10)]);
    cluster["spec"]["enableInTreeAutoscaling"] = json!(true);
    apply(&ns, &cluster).await?;
    wait_for_workers(&ns, "scaled", "cpu", 4).await?;
    ns.api::<Role>().get("scaled").await?;
    ns.api::<RoleBinding>().get("scaled").await?;

    // What the autoscaler does: lower replicas and name the Pods to remove.
    let mut chosen: Vec<String> = workers(&ns, "scaled", "cpu").await?.iter().map(|p| p.name_any()).collect();
    chosen.sort();
    let doomed = chosen[..2].to_vec();
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = json!(2);
    cluster["spec"]["workerGroupSpecs"][0]["scaleStrategy"] = json!({ "workersToDelete": doomed });
    apply(&ns, &cluster).await?;

    wait_for_workers(&ns, "scaled", "cpu", 2).await?;
    let left: Vec<String> = workers(&ns, "scaled", "cpu").await?.iter().map(|p| p.name_any()).collect();
    assert!(left.iter().all(|p| !doomed.contains(p)), "exactly the named Pods went: {left:?} vs {doomed:?}");
    Ok(())
}

#[tokio::test]
async fn suspend_deletes_every_pod_and_resume_recreates_them() -> anyhow::Result<()> {
    let ns = namespace("raycluster-suspend").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("pausable", &[("cpu", 2, 0, 5)]);
    apply(&ns, &cluster).await?;
    wait_for_state(&ns, "pausable", "ready").await?;

    cluster["spec"]["suspend"] = json!(true);
    apply(&ns, &cluster).await?;
    let suspended = wait_for_state(&ns, "pausable", "suspended").await?;
    assert_eq!(condition(&suspended, "RayClusterSuspended").map(|c| c.0).as_deref(), Some("True"));
    let pods: Api<Pod> = ns.api();
    eventually("no Pods while suspended", WAIT, || async {
        let live = pods.list(&ListParams::default().labels("ray.io/cluster=pausable")).await?.items.into_iter().filter(is_live).count();
        Ok(if live == 0 { Ok(()) } else { Err(format!("{live} Pods")) })
    })
    .await?;

    cluster["spec"]["suspend"] = json!(false);
    apply(&ns, &cluster).await?;
    wait_for_state(&ns, "pausable", "ready").await?;
    assert_eq!(workers(&ns, "pausable", "cpu").await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn the_verl_gpu_sample_applies_unchanged_and_its_gpu_pods_land_on_gpu_nodes() -> anyhow::Result<()> {
    let ns = namespace("raycluster-verl-gpu").await?;
    let _operator = ns.operator().await?;
    let sample = wasmray_samples::first("ray-cluster.verl.yaml", "RayCluster");
    let name = sample["metadata"]["name"].as_str().unwrap().to_string();
    apply(&ns, &sample).await?;

    wait_for_state(&ns, &name, "ready").await?;
    let pods: Vec<Pod> = ns.api::<Pod>().list(&ListParams::default().labels(&format!("ray.io/cluster={name}"))).await?.items;
    let nodes: Api<Node> = Api::all(ns.client.clone());
    assert!(!pods.is_empty());
    for pod in pods.iter().filter(|p| is_live(p)) {
        let node = nodes.get(pod.spec.as_ref().unwrap().node_name.as_deref().unwrap()).await?;
        let gpus = node.status.unwrap().capacity.unwrap_or_default().get("nvidia.com/gpu").map(|q| q.0.clone());
        assert_eq!(gpus.as_deref(), Some("8"), "{} asks for GPUs and runs on a GPU node", pod.name_any());
    }
    Ok(())
}

#[tokio::test]
async fn an_operator_killed_while_scaling_to_100_workers_ends_with_exactly_100_after_restart() -> anyhow::Result<()> {
    let ns = namespace("raycluster-restart-at-scale").await?;
    wasmray_tests::install_crds(&ns.client).await?;
    // A real `wasmray run` process, so the kill is a SIGKILL mid-write, not a graceful stop.
    let cluster = wasmray_tests::cluster().await?;
    let run = |ns: &str| {
        std::process::Command::new(wasmray_binary())
            .args(["run", "--kubeconfig"])
            .arg(cluster.kubeconfig())
            .args(["--watch-namespace", ns, "--leader-election-namespace", ns, "--metrics-addr=0", "--health-probe-bind-address=0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    let mut operator = run(&ns.name)?;
    apply(&ns, &ray_cluster("big", &[("cpu", 100, 0, 100)])).await?;

    let at_kill = loop {
        let n = ns.api::<Pod>().list(&ListParams::default().labels("ray.io/cluster=big,ray.io/node-type=worker")).await?.items.len();
        if n >= 15 {
            operator.kill()?;
            operator.wait()?;
            break n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let after_kill = workers(&ns, "big", "cpu").await?.len();
    eprintln!("killed the operator with {at_kill} worker Pods seen ({after_kill} once the kill landed)");
    assert!(after_kill < 100, "the kill came mid-scaling ({after_kill} of 100 created)");

    let mut restarted = run(&ns.name)?;
    let outcome = async {
        wait_for_workers(&ns, "big", "cpu", 100).await?;
        // Let a few more reconciles run: the count must stay exactly at 100.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let all = ns.api::<Pod>().list(&ListParams::default().labels("ray.io/cluster=big,ray.io/node-type=worker")).await?;
        anyhow::Ok(all.items.len())
    }
    .await;
    restarted.kill()?;
    restarted.wait()?;
    assert_eq!(outcome?, 100, "exactly 100 workers, no duplicates, not even terminating ones");
    Ok(())
}

#[tokio::test]
async fn a_worker_the_api_server_refuses_sets_replica_failure_with_kuberays_reason() -> anyhow::Result<()> {
    let ns = namespace("raycluster-replica-failure").await?;
    let _operator = ns.operator().await?;
    // Room for the head and two workers: the third worker is refused by the quota.
    let api = wasmray_tests::fixtures::quota(&ns, "three-pods", json!({ "pods": "3" })).await?;

    apply(&ns, &ray_cluster("crowded", &[("cpu", 3, 0, 3)])).await?;

    let clusters: Api<RayCluster> = ns.api();
    let failed = ns
        .wait_until(&clusters, "crowded", |rc: Option<&RayCluster>| rc.and_then(|rc| condition(rc, "RayClusterReplicaFailure")).map(|c| c.0).as_deref() == Some("True"), WAIT)
        .await?;
    let status = serde_json::to_value(failed.status.as_ref().unwrap())?;
    let replica_failure = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "RayClusterReplicaFailure").unwrap().clone();
    assert_eq!(replica_failure["reason"], "FailedCreateWorkerPod");
    assert!(replica_failure["message"].as_str().unwrap_or_default().contains("exceeded quota"), "{replica_failure}");
    assert_eq!(workers(&ns, "crowded", "cpu").await?.len(), 2, "the Pods that fit were created");
    let events: Api<k8s_openapi::api::core::v1::Event> = ns.api();
    let warning = events.list(&ListParams::default()).await?.items.into_iter().find(|e| {
        e.involved_object.name.as_deref() == Some("crowded") && e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("FailedToCreateWorkerPod")
    });
    assert!(warning.is_some_and(|e| e.message.unwrap_or_default().contains("exceeded quota")), "KubeRay's Warning reason for the refused Pod");

    // Once the quota has room the failure is over, and, as in KubeRay, its condition is gone.
    api.patch("three-pods", &PatchParams::default(), &Patch::Merge(&json!({ "spec": { "hard": { "pods": "10" } } }))).await?;
    wait_for_workers(&ns, "crowded", "cpu", 3).await?;
    ns.wait_until(&clusters, "crowded", |rc: Option<&RayCluster>| rc.is_some_and(|rc| condition(rc, "RayClusterReplicaFailure").is_none()), WAIT)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_cluster_that_does_not_fit_the_types_gets_an_event_and_does_not_stop_the_others() -> anyhow::Result<()> {
    let ns = namespace("raycluster-unreadable").await?;
    let _operator = ns.operator().await?;
    // The CRD types Pod templates, but the apiserver does not check integer formats: it takes a
    // mode beyond int32 (`format: int32`), which the operator's types cannot read.
    let mut unreadable = ray_cluster("unreadable", &[("cpu", 1, 0, 1)]);
    unreadable["spec"]["headGroupSpec"]["template"]["spec"]["volumes"] =
        json!([{ "name": "config", "configMap": { "name": "x", "defaultMode": 4_294_967_296_i64 } }]);
    let resource = kube::api::ApiResource::erase::<RayCluster>(&());
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    raw.patch("unreadable", &PatchParams::apply("wasmray-tests").force(), &Patch::Apply(&unreadable)).await?;
    apply(&ns, &ray_cluster("fine", &[("cpu", 1, 0, 1)])).await?;

    wait_for_state(&ns, "fine", "ready").await?;
    let events: Api<k8s_openapi::api::core::v1::Event> = ns.api();
    eventually("an InvalidRayClusterSpec event naming the field", WAIT, || async {
        let listed = events.list(&ListParams::default()).await?.items;
        let found = listed.iter().find(|e| {
            e.involved_object.name.as_deref() == Some("unreadable") && e.reason.as_deref() == Some("InvalidRayClusterSpec")
        });
        Ok(match found {
            Some(e) if e.message.as_deref().unwrap_or_default().contains("defaultMode") => Ok(()),
            Some(e) => Err(format!("message {:?}", e.message)),
            None => Err(format!("{} other events", listed.len())),
        })
    })
    .await?;
    let pods: Api<Pod> = ns.api();
    assert!(pods.list(&ListParams::default().labels("ray.io/cluster=unreadable")).await?.items.is_empty());
    Ok(())
}

#[tokio::test]
async fn forty_workers_created_get_kuberays_events_nine_of_their_own_then_one_combined_and_no_more_than_the_burst_of_their_reason() -> anyhow::Result<()> {
    let ns = namespace("raycluster-events").await?;
    wasmray_tests::install_crds(&wasmray_tests::cluster().await?.client().await?).await?;
    let flags: Vec<String> = [
        "--kubeconfig", &ns.kubeconfig().display().to_string(), "--watch-namespace", &ns.name, "--operator-namespace", &ns.name,
        "--metrics-addr=127.0.0.1:0", "--health-probe-bind-address=0", "--enable-leader-election=false",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let settings = wasmray::operator::Settings::read(wasmray::operator::RunArgs::from_flags(&flags)?, &|_| None)?;
    let operator = wasmray_tests::start_operator_with_settings(settings)?;
    apply(&ns, &ray_cluster("many", &[("cpu", 40, 40, 40)])).await?;
    wait_for_workers(&ns, "many", "cpu", 40).await?;

    let times = |e: &Event| e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1);
    let about_many = || async {
        let all: Vec<Event> = ns.api::<Event>().list(&ListParams::default()).await?.items;
        anyhow::Ok(all.into_iter().filter(|e| e.involved_object.name.as_deref() == Some("many")).collect::<Vec<_>>())
    };
    let of_reason = |events: &[Event], reason: &str| -> i32 { events.iter().filter(|e| e.reason.as_deref() == Some(reason)).map(times).sum() };
    eventually("25 CreatedWorkerPod Events about the cluster, its burst", WAIT, || async {
        let sent = of_reason(&about_many().await?, "CreatedWorkerPod");
        Ok(if sent == 25 { Ok(()) } else { Err(format!("{sent} sent")) })
    })
    .await?;
    let workers_created: Vec<Event> = about_many().await?.into_iter().filter(|e| e.reason.as_deref() == Some("CreatedWorkerPod")).collect();
    let messages: Vec<&str> = workers_created.iter().filter_map(|e| e.message.as_deref()).collect();
    let (combined, own): (Vec<&str>, Vec<&str>) = messages.iter().partition(|m| m.starts_with("(combined from similar events): "));
    assert_eq!(own.len(), 9, "nine worker Events keep their own note: {messages:?}");
    assert!(own.iter().all(|m| m.starts_with(&format!("Created worker Pod {}/many-cpu-worker-", ns.name))), "{own:?}");
    assert_eq!(combined.len(), 1, "the rest are one combined Event: {messages:?}");
    // The burst is per reason: the head Pod's and the Services' Events went out beside the 25.
    assert_eq!(of_reason(&about_many().await?, "CreatedHeadPod"), 1, "another reason has a budget of its own");

    let (_, text) = wasmray_tests::http_get(operator.metrics_addr().expect("a metrics address"), "/metrics").await?;
    let skipped = wasmray_tests::metric(&text, "wasmray_events_skipped_total{controller=\"raycluster-controller\"}").unwrap_or(0.0);
    assert!(skipped >= 15.0, "at least the 40 workers' Events past the burst of 25 are counted as held back: {skipped}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = of_reason(&about_many().await?, "CreatedWorkerPod");
    assert_eq!(still, 25, "nothing more goes out before the budget refills");
    Ok(())
}
