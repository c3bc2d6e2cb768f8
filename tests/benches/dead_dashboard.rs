//! Benchmark: how long 50 RayClusters take to become ready, with and without a RayJob whose Ray dashboard never answers, in one run against the local control plane.
//!
//! KubeRay asks the dashboard inside the RayJob's reconcile, so a dashboard that accepts
//! connections and never answers holds a reconcile worker for the client's timeout on every
//! pass (kuberay#2646). Here the poller runs beside the controllers; this measures whether the
//! RayClusters notice. Run with the control plane of `wasmray dev up` and
//! `WASMRAY_TEST_KUBECONFIG` set: `cargo bench -p wasmray-tests --bench dead_dashboard`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use wasmray_api::{RayCluster, RayJob};
use wasmray_tests::fixtures::ray_cluster;
use wasmray_tests::{TestNamespace, namespace};

const CLUSTERS: usize = 50;
const LIMIT: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dead = dead_dashboard()?;
    let ns = namespace("bench-dead-dashboard").await?;
    let operator = ns.operator_with_dashboard(&dead).await?;

    let baseline = ready_times(&ns, "quiet").await?;
    delete_all(&ns).await?;

    let job = json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": { "name": "stuck" },
        "spec": { "submissionMode": "HTTPMode", "entrypoint": "python -c 'print(1)'",
                  "rayClusterSpec": ray_cluster("unused", &[])["spec"] },
    });
    let jobs: Api<RayJob> = ns.api();
    jobs.patch("stuck", &PatchParams::apply("bench").force(), &Patch::Apply(&job)).await?;
    ns.wait_until(&jobs, "stuck", |j: Option<&RayJob>| is_polled(j), LIMIT).await.context("the RayJob never reached Running")?;
    let asked_before = ASKED.load(Ordering::Relaxed);
    let started = Instant::now();
    let with_dead = ready_times(&ns, "busy").await?;
    let asked = ASKED.load(Ordering::Relaxed) - asked_before;

    println!("50 RayClusters, creation to `ready` (one head, one worker each), same operator, same run:");
    report("without a RayJob", &baseline);
    report("one RayJob's dashboard never answers", &with_dead);
    let ratio = |f: fn(&[f64]) -> f64| f(&with_dead) / f(&baseline);
    println!("ratio dead/quiet: p50 {:.2}, p95 {:.2}, max {:.2}", ratio(p50), ratio(p95), ratio(max));
    let status = jobs.get("stuck").await?.status.and_then(|s| serde_json::to_value(s).ok()).unwrap_or_default();
    println!(
        "the RayJob meanwhile: jobDeploymentStatus {}; its dashboard took {asked} connections in the {:.1} s of the second phase, none answered",
        status["jobDeploymentStatus"],
        started.elapsed().as_secs_f64()
    );
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    Ok(())
}

/// Connections the hung dashboard accepted.
static ASKED: AtomicUsize = AtomicUsize::new(0);

/// A listener that accepts every connection and never answers (what a hung dashboard looks like).
fn dead_dashboard() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            ASKED.fetch_add(1, Ordering::Relaxed);
            held.push(stream);
        }
    });
    Ok(address)
}

fn is_polled(job: Option<&RayJob>) -> bool {
    let status = job.and_then(|j| serde_json::to_value(&j.status).ok()).unwrap_or_default();
    status["jobDeploymentStatus"] == "Running" && status["jobId"].is_string()
}

/// Creates the clusters `<prefix>-0…49` at once and returns each one's seconds from its apply
/// to the first time its status said `ready`.
async fn ready_times(ns: &TestNamespace, prefix: &str) -> anyhow::Result<Vec<f64>> {
    let api: Api<RayCluster> = ns.api();
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut applied: BTreeMap<String, Instant> = BTreeMap::new();
    for i in 0..CLUSTERS {
        let name = format!("{prefix}-{i}");
        api.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&ray_cluster(&name, &[("workers", 1, 1, 1)]))).await?;
        applied.insert(name, Instant::now());
    }
    let mut ready: BTreeMap<String, f64> = BTreeMap::new();
    let deadline = Instant::now() + LIMIT;
    while ready.len() < CLUSTERS {
        let remaining = deadline.checked_duration_since(Instant::now()).context("clusters not ready in time")?;
        let Ok(Some(event)) = tokio::time::timeout(remaining, events.next()).await else { anyhow::bail!("the watch ended") };
        let (watcher::Event::Apply(cluster) | watcher::Event::InitApply(cluster)) = event? else { continue };
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let state = cluster.status.as_ref().and_then(|s| serde_json::to_value(s).ok()).unwrap_or_default()["state"].clone();
        if let Some(at) = applied.get(&name)
            && state == "ready"
            && !ready.contains_key(&name)
        {
            ready.insert(name, at.elapsed().as_secs_f64());
        }
    }
    Ok(ready.into_values().collect())
}

async fn delete_all(ns: &TestNamespace) -> anyhow::Result<()> {
    let api: Api<RayCluster> = ns.api();
    api.delete_collection(&DeleteParams::background(), &ListParams::default()).await?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = ns.api();
    let deadline = Instant::now() + LIMIT;
    while !pods.list(&ListParams::default()).await?.items.is_empty() || !api.list(&ListParams::default()).await?.items.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the first clusters were not deleted in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}
fn p50(values: &[f64]) -> f64 {
    let v = sorted(values);
    v[v.len() / 2]
}
fn p95(values: &[f64]) -> f64 {
    let v = sorted(values);
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}
fn max(values: &[f64]) -> f64 {
    sorted(values).last().copied().unwrap_or_default()
}

fn report(label: &str, values: &[f64]) {
    println!("  {label:<40} p50 {:>6.2} s   p95 {:>6.2} s   max {:>6.2} s", p50(values), p95(values), max(values));
}
