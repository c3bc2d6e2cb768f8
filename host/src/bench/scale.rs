//! `wasmray bench scale`: K RayClusters × M workers through the operator, and the same Pods from a raw parallel client, on one control plane in one run.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use wasmray_api::RayCluster;

use super::plane::{PlaneLoad, Probe};
use super::progress::Progress;
use super::report::{Fairness, Phase, Report, Usage};
use crate::dev::{self, ControlPlane, Lifetime, NodeSet, Options};
use crate::pods::{BuildContext, WorkerSlot};

/// The figures of one run of `wasmray bench scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// A control plane to measure on; without it one is started in a temporary directory,
    /// with KWOK capacity for the run, and stopped at the end.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// RayClusters.
    #[arg(long, default_value_t = 100)]
    pub clusters: usize,
    /// Workers per RayCluster.
    #[arg(long, default_value_t = 100)]
    pub workers: usize,
    /// Creates in flight of the raw client.
    #[arg(long, default_value_t = 16)]
    pub raw_concurrency: usize,
    /// Workers of the big cluster of the fairness phase: a 1-worker cluster's time to ready is
    /// measured alone and while this one scales up. 0 skips the phase.
    #[arg(long, default_value_t = 500)]
    pub fairness_workers: usize,
    /// Where to write the report as JSON; the plot goes next to it as `.svg`, the operator's
    /// last `/metrics` as `.metrics.txt`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How long each phase may take, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout_s: u64,
    /// A flag for the operator's `wasmray run` (repeatable), e.g. `--operator-arg=--reconcile-concurrency=16`.
    #[arg(long = "operator-arg", allow_hyphen_values = true)]
    pub operator_args: Vec<String>,
    /// A program to run the operator under, for profiling it (`heaptrack`, or a script around
    /// `perf record`); its usage figures are then the wrapper's, not the operator's alone.
    #[arg(long)]
    pub operator_wrapper: Option<PathBuf>,
}

/// Namespaces of the two phases.
const RAW_NS: &str = "bench-raw";
const OPERATOR_NS: &str = "bench-operator";

/// Runs the benchmark and prints its table.
///
/// # Errors
///
/// If the control plane cannot start or a phase does not finish in time.
pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    let pods_per_run = args.clusters * (args.workers + 1) + args.fairness_workers + 4;
    let (control_plane, kubeconfig) = match &args.kubeconfig {
        Some(path) => (None, path.clone()),
        None => {
            let dir = std::env::temp_dir().join(format!("wasmray-bench-{}", std::process::id()));
            let mut options = Options::new(&dir);
            options.nodes = capacity_for(pods_per_run)?;
            options.lifetime = Lifetime::TiedToThisProcess;
            eprintln!("Starting a control plane in {}", dir.display());
            let plane = ControlPlane::start(options).await?;
            let kubeconfig = plane.kubeconfig().to_path_buf();
            (Some(plane), kubeconfig)
        }
    };
    let client = dev::client_for(&kubeconfig).await?;
    crate::crd::install(&client).await?;
    let probe = Probe::new(client.clone(), control_plane.as_ref());
    let timeout = Duration::from_secs(args.timeout_s);
    let cluster = bench_cluster("bench", args.workers);
    let total = args.clusters * (args.workers + 1);

    eprintln!("Raw client: {total} Pods, {} in flight", args.raw_concurrency);
    let (raw, raw_plane) = raw_phase(&client, &probe, &cluster, total, args.raw_concurrency, timeout).await?;
    eprintln!("Operator: {} RayClusters × {} workers", args.clusters, args.workers);
    // The namespace first: an operator watching a namespace being deleted would spend the run
    // retrying creates there.
    recreate_namespace(&client, OPERATOR_NS, timeout).await?;
    let operator = OperatorProcess::start(&kubeconfig, &args.operator_args, args.operator_wrapper.as_deref())?;
    let result = operator_phase(&client, &probe, &operator, &args, timeout).await;
    let usage = operator.usage();
    let metrics = operator.metrics().await.unwrap_or_default();
    drop(operator);
    if let Some(plane) = control_plane {
        let dir = plane.dir().to_path_buf();
        plane.stop();
        let _ = std::fs::remove_dir_all(dir);
    }
    let ((phase, operator_plane), idle_cores, fairness) = result?;
    let report = Report::new(&args, (raw, raw_plane), (phase, operator_plane), usage, idle_cores, &metrics, fairness);
    println!("{}", report.table());
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", out.display()))?;
        std::fs::write(out.with_extension("metrics.txt"), &metrics).with_context(|| format!("writing the operator's metrics next to {}", out.display()))?;
        let plot = out.with_extension("svg");
        super::plot::svg(&report, &plot)?;
        eprintln!("Report written to {} and {}", out.display(), plot.display());
    }
    Ok(())
}

/// Enough KWOK nodes for `pods` small Pods twice over (the raw Pods are gone before the
/// operator's come, but a slow namespace deletion must not starve the second phase).
fn capacity_for(pods: usize) -> anyhow::Result<NodeSet> {
    let per_node = 500;
    let count = (2 * pods).div_ceil(per_node).max(2);
    let yaml = format!("nodes:\n  - name: bench\n    count: {count}\n    cpu: \"1000\"\n    memory: 4Ti\n    pods: {per_node}\n");
    Ok(NodeSet::from_yaml(&yaml)?)
}

/// The RayCluster every phase uses: a small head and `workers` small workers of one group.
fn bench_cluster(name: &str, workers: usize) -> RayCluster {
    let container = |name: &str| json!({
        "name": name, "image": "rayproject/ray:2.54.0",
        "resources": { "requests": { "cpu": "100m", "memory": "128Mi" }, "limits": { "cpu": "100m", "memory": "128Mi" } },
    });
    serde_json::from_value(json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": { "name": name, "namespace": OPERATOR_NS, "uid": "00000000-0000-0000-0000-000000000000" },
        "spec": {
            "rayVersion": "2.54.0",
            "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [container("ray-head")] } } },
            "workerGroupSpecs": [{
                "groupName": "workers", "replicas": workers, "minReplicas": workers, "maxReplicas": workers, "rayStartParams": {},
                "template": { "spec": { "containers": [container("ray-worker")] } },
            }],
        },
    }))
    .expect("the bench cluster is a valid RayCluster")
}

/// The raw client's Pods: the operator's own rendering of a worker of the bench cluster, with
/// no owner and no Ray labels, so no controller takes them.
async fn raw_phase(
    client: &Client,
    probe: &Probe,
    cluster: &RayCluster,
    total: usize,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<(Phase, PlaneLoad)> {
    recreate_namespace(client, RAW_NS, timeout).await?;
    let slot = WorkerSlot { suffix: "raw00", replica_index: 0, host_index: 0, replica_name: "" };
    let mut pod: Pod = crate::pods::worker_pod(cluster, 0, &slot, &BuildContext::default())?;
    pod.metadata.owner_references = None;
    pod.metadata.labels = Some([("wasmray.dev/bench".to_string(), "raw".to_string())].into());
    let before = probe.snapshot().await;
    let start = Instant::now();
    let progress = Progress::watch(client.clone(), RAW_NS, start);
    let failed = super::raw::create(client.clone(), RAW_NS, &pod, total, concurrency).await?;
    anyhow::ensure!(failed == 0, "{failed} raw creates failed");
    let mut samples = Vec::new();
    progress.wait(&mut samples, timeout, |c| c.running >= total).await.context("raw Pods Running")?;
    let plane = PlaneLoad::between(&before, &probe.snapshot().await);
    let (created, running) = progress.last();
    drop(progress);
    eprintln!("Deleting the raw Pods");
    delete_namespace(client, RAW_NS, timeout).await?;
    Ok((Phase::new(total, created, running, None, samples), plane))
}

/// The operator's phase: every cluster applied at once, then Pods and readiness watched; then
/// the idle CPU once all are ready, and the fairness figure.
async fn operator_phase(
    client: &Client,
    probe: &Probe,
    operator: &OperatorProcess,
    args: &ScaleArgs,
    timeout: Duration,
) -> anyhow::Result<((Phase, PlaneLoad), f64, Option<Fairness>)> {
    operator.wait_ready(Duration::from_secs(120)).await?;
    let total = args.clusters * (args.workers + 1);
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), OPERATOR_NS);
    let before = probe.snapshot().await;
    let start = Instant::now();
    let progress = Progress::watch(client.clone(), OPERATOR_NS, start);
    let names: Vec<String> = (0..args.clusters).map(|i| format!("bench-{i:03}")).collect();
    futures::stream::iter(names.iter().map(|name| create_cluster(&clusters, name, args.workers)))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let mut samples = Vec::new();
    progress.wait(&mut samples, timeout, |c| c.running >= total).await.context("the operator's Pods Running")?;
    let plane = PlaneLoad::between(&before, &probe.snapshot().await);
    let (created, running) = progress.last();
    let ready = wait_ready(&clusters, &names, start, timeout).await?;
    drop(progress);

    let before = operator.usage().cpu_s;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cores = (operator.usage().cpu_s - before) / 10.0;

    let fairness = if args.fairness_workers > 0 { Some(fairness(&clusters, args.fairness_workers, timeout).await?) } else { None };
    Ok(((Phase::new(total, created, running, Some(ready), samples), plane), idle_cores, fairness))
}

async fn create_cluster(clusters: &Api<RayCluster>, name: &str, workers: usize) -> anyhow::Result<()> {
    let mut cluster = bench_cluster(name, workers);
    cluster.metadata.uid = None;
    cluster.metadata.name = Some(name.into());
    clusters.create(&PostParams::default(), &cluster).await.with_context(|| format!("creating RayCluster {name}"))?;
    Ok(())
}

/// Waits until every named cluster's state is `ready`; returns when, since `start`.
async fn wait_ready(clusters: &Api<RayCluster>, names: &[String], start: Instant, timeout: Duration) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = clusters.list(&ListParams::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|c| c.metadata.name.as_ref().is_some_and(|n| names.contains(n)))
            .filter(|c| c.status.as_ref().and_then(|s| s.state) == Some(wasmray_api::ClusterState::Ready))
            .count();
        if ready == names.len() {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(Instant::now() < deadline, "{ready} of {} clusters ready after {timeout:?}", names.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A 1-worker cluster's time to ready alone, then while a `big`-worker cluster scales up; and,
/// apart, the time until its two Pods exist: the part the operator decides, before the
/// scheduler and KWOK, which the big cluster's Pods queue in too.
async fn fairness(clusters: &Api<RayCluster>, big: usize, timeout: Duration) -> anyhow::Result<Fairness> {
    let (alone_created, alone) = time_to_ready(clusters, "small-alone", timeout).await?;
    let big_start = Instant::now();
    create_cluster(clusters, "big", big).await?;
    wait_pods(clusters, "big", 20, timeout).await?;
    let (busy_created, busy) = time_to_ready(clusters, "small-busy", timeout).await?;
    let big_ready = wait_ready(clusters, &["big".to_string()], big_start, timeout).await?;
    Ok(Fairness {
        big_workers: big,
        alone_s: alone.as_secs_f64(),
        while_big_scales_s: busy.as_secs_f64(),
        alone_created_s: alone_created.as_secs_f64(),
        while_big_scales_created_s: busy_created.as_secs_f64(),
        big_ready_after_s: big_ready.as_secs_f64(),
    })
}

/// How long a new 1-worker cluster takes until its Pods exist, and until it is ready.
async fn time_to_ready(clusters: &Api<RayCluster>, name: &str, timeout: Duration) -> anyhow::Result<(Duration, Duration)> {
    let start = Instant::now();
    create_cluster(clusters, name, 1).await?;
    let created = async {
        wait_pods(clusters, name, 2, timeout).await?;
        Ok(start.elapsed())
    };
    let names = [name.to_string()];
    let (created, ready) = tokio::try_join!(created, wait_ready(clusters, &names, start, timeout))?;
    Ok((created, ready))
}

/// Waits until cluster `name` has at least `count` Pods.
async fn wait_pods(clusters: &Api<RayCluster>, name: &str, count: usize, timeout: Duration) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(clusters.clone().into_client(), OPERATOR_NS);
    let selector = format!("ray.io/cluster={name}");
    let deadline = Instant::now() + timeout;
    while pods.list(&ListParams::default().labels(&selector)).await.map(|l| l.items.len()).unwrap_or(0) < count {
        anyhow::ensure!(Instant::now() < deadline, "{name} has fewer than {count} Pods after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn recreate_namespace(client: &Client, name: &str, timeout: Duration) -> anyhow::Result<()> {
    delete_namespace(client, name, timeout).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    namespaces.create(&PostParams::default(), &namespace).await.with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Deletes a namespace's Pods at once (no grace) and then the namespace, and waits until it is gone.
async fn delete_namespace(client: &Client, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(name).await?.is_none() {
        return Ok(());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), name);
    let _ = pods.delete_collection(&DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }, &ListParams::default()).await;
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
    let deadline = Instant::now() + timeout;
    while namespaces.get_opt(name).await?.is_some() {
        anyhow::ensure!(Instant::now() < deadline, "namespace {name} not gone after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// The operator under test: this binary's `run`, in a process of its own so its memory and CPU
/// are its own.
struct OperatorProcess {
    child: Child,
    metrics: std::net::SocketAddr,
    health: std::net::SocketAddr,
}

impl OperatorProcess {
    fn start(kubeconfig: &std::path::Path, extra: &[String], wrapper: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let metrics = free_port()?;
        let health = free_port()?;
        let this = std::env::current_exe()?;
        let mut command = match wrapper {
            Some(wrapper) => {
                let mut command = Command::new(wrapper);
                command.arg(this);
                command
            }
            None => Command::new(this),
        };
        let child = command
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--watch-namespace", OPERATOR_NS, "--enable-leader-election", "false"])
            .arg(format!("--metrics-addr={metrics}"))
            .arg(format!("--health-probe-bind-address={health}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the operator")?;
        Ok(Self { child, metrics, health })
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while http_get(self.health, "/readyz").await.map(|(status, _)| status) != Some(200) {
            anyhow::ensure!(Instant::now() < deadline, "the operator was not ready after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        Usage::of_process(self.child.id())
    }

    async fn metrics(&self) -> Option<String> {
        http_get(self.metrics, "/metrics").await.map(|(_, body)| body)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// One GET to a local endpoint of the operator: its status and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use http_body_util::BodyExt as _;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::client::legacy::connect::HttpConnector::new());
    let uri: http::Uri = format!("http://{addr}{path}").parse().ok()?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri)).await.ok()?.ok()?;
    let status = response.status().as_u16();
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect()).await.ok()?.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}
