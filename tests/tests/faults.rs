//! Faults in the middle of a 100-worker scale-up, each on a control plane of the test's own: the apiserver restarted, and etcd paused for 10 s. Reconciles resume by themselves and the cluster ends with exactly the Pods it wants.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use wasmray::dev::ControlPlane;
use wasmray_api::{ClusterState, RayCluster};

/// Long enough for 101 Pods on a busy 2-core machine after a fault.
const WAIT: Duration = Duration::from_secs(300);
const NS: &str = "faults";
const WORKERS: usize = 100;

/// A control plane of this test alone, so that its faults touch no other test.
async fn own_control_plane(test: &str) -> anyhow::Result<(ControlPlane, Client)> {
    wasmray_tests::control_plane_of_its_own(&format!("faults-{test}"), NS).await
}

/// An operator for the test's namespace, with its metrics on a free loopback port.
fn operator(plane: &ControlPlane) -> anyhow::Result<wasmray_tests::Operator> {
    let flags: Vec<String> = [
        "--kubeconfig", &plane.kubeconfig().display().to_string(), "--watch-namespace", NS, "--operator-namespace", NS,
        "--metrics-addr=127.0.0.1:0", "--health-probe-bind-address=0", "--enable-leader-election=false",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    let settings = wasmray::operator::Settings::read(wasmray::operator::RunArgs::from_flags(&flags)?, &|_| None)?;
    wasmray_tests::start_operator_with_settings(settings)
}

/// A head and `WORKERS` tiny workers.
fn a_wide_cluster(name: &str) -> anyhow::Result<RayCluster> {
    let container = |name: &str| json!({
        "name": name, "image": "rayproject/ray:2.54.0",
        "resources": { "requests": { "cpu": "10m", "memory": "16Mi" }, "limits": { "cpu": "10m", "memory": "16Mi" } },
    });
    Ok(serde_json::from_value(json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": { "name": name },
        "spec": {
            "rayVersion": "2.54.0",
            "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [container("ray-head")] } } },
            "workerGroupSpecs": [{
                "groupName": "wide", "replicas": WORKERS, "minReplicas": WORKERS, "maxReplicas": WORKERS, "rayStartParams": {},
                "template": { "spec": { "containers": [container("ray-worker")] } },
            }],
        },
    }))?)
}

/// The cluster's Pods, retrying while the apiserver is away.
async fn pods_of(client: &Client, cluster: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let selector = format!("ray.io/cluster={cluster}");
    loop {
        if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
            return list.items;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until at least `count` of the cluster's Pods exist.
async fn until_pods(client: &Client, cluster: &str, count: usize) -> anyhow::Result<()> {
    wasmray_tests::within(WAIT, async {
        while pods_of(client, cluster).await.len() < count {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .with_context(|| format!("{count} Pods of {cluster}"))
}

/// Waits until the cluster is ready with every worker available, then checks it has exactly
/// one head and `WORKERS` workers (no duplicate from a retried create, none lost).
async fn ends_with_exactly_its_pods(client: &Client, cluster: &str) -> anyhow::Result<()> {
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), NS);
    wasmray_tests::within(WAIT, async {
        loop {
            if let Ok(rc) = clusters.get(cluster).await
                && let Some(status) = rc.status
                && status.state == Some(ClusterState::Ready)
                && status.available_worker_replicas == Some(WORKERS as i32)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .with_context(|| format!("{cluster} ready with {WORKERS} workers"))?;
    let pods = pods_of(client, cluster).await;
    let role = |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get("ray.io/node-type")).cloned().unwrap_or_default();
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    assert_eq!(live.iter().filter(|p| role(p) == "head").count(), 1, "one head");
    assert_eq!(live.iter().filter(|p| role(p) == "worker").count(), WORKERS, "exactly {WORKERS} workers");
    Ok(())
}

/// The operator's reconciles and writes that did not end `ok`, as its metrics count them.
async fn retried_errors(operator: &wasmray_tests::Operator) -> anyhow::Result<Vec<String>> {
    let addr = operator.metrics_addr().context("the operator's metrics address")?;
    let (_, text) = wasmray_tests::http_get(addr, "/metrics").await?;
    Ok(text
        .lines()
        .filter(|l| (l.starts_with("wasmray_reconciles_total{") || l.starts_with("wasmray_writes_total{")) && !l.contains("outcome=\"ok\""))
        .map(str::to_string)
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apiserver_restarted_in_the_middle_of_a_scale_up_leaves_exactly_the_pods_wanted() -> anyhow::Result<()> {
    let (mut plane, client) = own_control_plane("apiserver").await?;
    let operator = operator(&plane)?;
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), NS);
    clusters.create(&PostParams::default(), &a_wide_cluster("restarted")?).await?;

    until_pods(&client, "restarted", 20).await?;
    plane.restart("kube-apiserver").await?;
    ends_with_exactly_its_pods(&client, "restarted").await?;
    eprintln!("errors the operator retried across the apiserver restart: {:#?}", retried_errors(&operator).await?);
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_paused_for_10_s_in_the_middle_of_a_scale_up_leaves_exactly_the_pods_wanted() -> anyhow::Result<()> {
    let (plane, client) = own_control_plane("etcd").await?;
    let operator = operator(&plane)?;
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), NS);
    clusters.create(&PostParams::default(), &a_wide_cluster("paused")?).await?;

    until_pods(&client, "paused", 20).await?;
    let etcd = nix::unistd::Pid::from_raw(i32::try_from(plane.pid("etcd").context("etcd's pid")?)?);
    nix::sys::signal::kill(etcd, nix::sys::signal::Signal::SIGSTOP)?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    nix::sys::signal::kill(etcd, nix::sys::signal::Signal::SIGCONT)?;
    ends_with_exactly_its_pods(&client, "paused").await?;
    eprintln!("errors the operator retried across the etcd pause: {:#?}", retried_errors(&operator).await?);
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    Ok(())
}
