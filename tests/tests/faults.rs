//! Faults on a control plane of the test's own: the apiserver restarted and etcd paused for 10 s in the middle of a 100-worker scale-up, watches expired by compaction, and status writes that conflict with another writer. Reconciles resume by themselves and the cluster ends with exactly the Pods it wants.

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
    ends_with_workers(client, cluster, WORKERS).await
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

/// A control plane whose apiserver reads watches from etcd (`--watch-cache=false`): a watch
/// then expires only by compaction, which the test does itself.
async fn control_plane_without_watch_cache(test: &str) -> anyhow::Result<(ControlPlane, Client)> {
    let dir = std::env::temp_dir().join(format!("cp-faults-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = wasmray::dev::Options {
        nodes: wasmray_tests::test_nodes(),
        lifetime: wasmray::dev::Lifetime::TiedToThisProcess,
        apiserver_flags: vec!["--watch-cache=false".into()],
        ..wasmray::dev::Options::new(&dir)
    };
    let plane = ControlPlane::start(options).await?;
    let client = plane.client().await?;
    wasmray_tests::install_crds(&client).await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces.create(&PostParams::default(), &serde_json::from_value(json!({ "metadata": { "name": NS } }))?).await?;
    Ok((plane, client))
}

/// One call to etcd's v3 JSON gateway: `POST path body` on its plain-HTTP client URL.
async fn etcd_call(plane: &ControlPlane, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let authority = plane.etcd_url().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&authority).await?;
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, payload) = answer.split_once("\r\n\r\n").context("an HTTP answer")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "etcd {path}: {head}");
    Ok(serde_json::from_str(payload.trim())?)
}

/// Compacts etcd at its current revision, so that every older resourceVersion is gone.
async fn compact_etcd(plane: &ControlPlane) -> anyhow::Result<i64> {
    // The key "/" (base64 "Lw=="): any range read answers with the store's revision.
    let range = etcd_call(plane, "/v3/kv/range", json!({ "key": "Lw==" })).await?;
    let revision: i64 = range["header"]["revision"].as_str().context("etcd's revision")?.parse()?;
    etcd_call(plane, "/v3/kv/compaction", json!({ "revision": revision.to_string(), "physical": true })).await?;
    Ok(revision)
}

/// Whether a watch of the namespace's Pods from `resource_version` is refused as expired (410).
async fn watch_expired(client: &Client, resource_version: &str) -> anyhow::Result<bool> {
    use futures::StreamExt as _;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    match pods.watch(&kube::api::WatchParams::default().timeout(5), resource_version).await {
        Err(kube::Error::Api(status)) => Ok(status.code == 410),
        Err(other) => Err(other.into()),
        Ok(stream) => {
            let mut stream = stream.boxed();
            match stream.next().await {
                Some(Ok(kube::api::WatchEvent::Error(status))) => Ok(status.code == 410),
                _ => Ok(false),
            }
        }
    }
}

/// The operator's warnings, kept for the test to read.
fn operator_log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        struct Into;
        impl std::io::Write for Into {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                operator_log().lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("wasmray=warn"))
            .with_ansi(false)
            .with_writer(|| Into)
            .try_init();
        std::sync::Mutex::new(Vec::new())
    })
}

/// Pods the operator created, by its own count.
async fn pods_created(operator: &wasmray_tests::Operator) -> anyhow::Result<f64> {
    let (_, text) = wasmray_tests::http_get(operator.metrics_addr().context("metrics")?, "/metrics").await?;
    Ok(wasmray_tests::metric(&text, "wasmray_writes_total{verb=\"create\",kind=\"Pod\",outcome=\"ok\"}").unwrap_or(0.0))
}

/// The operator's watches expire: etcd is compacted past every resourceVersion they hold (the
/// test's own watch from an older one is answered 410 Gone), and the apiserver is restarted so
/// that they resume from it. Each watch is told 410 and lists again; afterwards a scale-up gets
/// exactly its Pods and a deleted Pod is replaced once, without restarting the operator.
#[tokio::test(flavor = "multi_thread")]
async fn a_watch_expired_by_compaction_lists_again_and_loses_no_pod() -> anyhow::Result<()> {
    let log = operator_log();
    let (mut plane, client) = control_plane_without_watch_cache("expired").await?;
    let apiserver = plane.pid("kube-apiserver").context("the apiserver's pid")?;
    let cmdline = std::fs::read_to_string(format!("/proc/{apiserver}/cmdline"))?;
    assert!(cmdline.split('\0').any(|f| f == "--watch-cache=false"), "the extra flag reached the apiserver");
    let operator = operator(&plane)?;
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), NS);
    let mut cluster = a_wide_cluster("expiring")?;
    let group = cluster.spec.worker_group_specs.as_mut().and_then(|g| g.first_mut()).context("a worker group")?;
    (group.replicas, group.min_replicas) = (Some(10), Some(0));
    clusters.create(&PostParams::default(), &cluster).await?;
    ends_with_workers(&client, "expiring", 10).await?;

    let before = Api::<Pod>::namespaced(client.clone(), NS).list(&ListParams::default()).await?.metadata.resource_version.context("a list's resourceVersion")?;
    // Writes the operator does not watch move etcd past every revision the operator has seen.
    // Two: a watch from revision r starts at r + 1, which a compaction at r + 1 still keeps.
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), NS);
    for name in ["newer", "newest"] {
        config_maps.create(&PostParams::default(), &serde_json::from_value(json!({ "metadata": { "name": name } }))?).await?;
    }
    let compacted = compact_etcd(&plane).await?;
    assert!(watch_expired(&client, &before).await?, "a watch from {before} is 410 Gone after compaction at {compacted}");
    log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    plane.restart("kube-apiserver").await?;
    let expired = wasmray_tests::within(WAIT, async {
        loop {
            let text = String::from_utf8_lossy(&log.lock().unwrap_or_else(|p| p.into_inner())).to_string();
            // A 410 reads `too old resource version: …: Expired` (kube shows a Status as message: reason).
            let gone = |l: &&str| l.contains("Watch error") && (l.contains("Expired") || l.contains("too old resource version"));
            let lines: Vec<String> = text.lines().filter(gone).map(str::to_string).collect();
            if lines.iter().any(|l| l.contains("kind=Pod")) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .with_context(|| format!("the operator's Pod watch told 410 Gone; its warnings:\n{}", String::from_utf8_lossy(&log.lock().unwrap_or_else(|p| p.into_inner()))))?;
    eprintln!("the operator's expired watches: {expired:#?}");

    clusters.patch("expiring", &kube::api::PatchParams::default(), &kube::api::Patch::Json::<()>(serde_json::from_value(json!([
        { "op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 30 },
    ]))?)).await?;
    ends_with_workers(&client, "expiring", 30).await?;
    let workers = |pods: &[Pod]| pods.iter().filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get("ray.io/node-type")).is_some_and(|r| r == "worker")).filter_map(|p| p.metadata.name.clone()).collect::<Vec<_>>();
    let victim = workers(&pods_of(&client, "expiring").await)[0].clone();
    Api::<Pod>::namespaced(client.clone(), NS).delete(&victim, &Default::default()).await?;
    wasmray_tests::within(WAIT, async {
        while workers(&pods_of(&client, "expiring").await).contains(&victim) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await?;
    ends_with_workers(&client, "expiring", 30).await?;
    assert_eq!(pods_created(&operator).await?, 1.0 + 30.0 + 1.0, "the head, 30 workers and one replacement, each created once");
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    Ok(())
}

/// Waits until the cluster is ready with `workers` workers available and as many live, then
/// checks it has exactly one head and `workers` workers (no duplicate from a retried create,
/// none lost).
async fn ends_with_workers(client: &Client, cluster: &str, workers: usize) -> anyhow::Result<()> {
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), NS);
    wasmray_tests::within(WAIT, async {
        loop {
            if let Ok(rc) = clusters.get(cluster).await
                && let Some(status) = rc.status
                && status.state == Some(ClusterState::Ready)
                && status.available_worker_replicas == Some(workers as i32)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .with_context(|| format!("{cluster} ready with {workers} workers"))?;
    let role = |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get("ray.io/node-type")).cloned().unwrap_or_default();
    let live_workers = |pods: &[Pod]| pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && role(p) == "worker").count();
    // A status read right after a worker went can still count it: the operator reconciles a
    // moment after the watch shows the loss. A lost worker is one never replaced, so wait for
    // the replacement (bounded); a duplicate still shows as one worker too many below.
    let pods = wasmray_tests::within(WAIT, async {
        loop {
            let pods = pods_of(client, cluster).await;
            if live_workers(&pods) >= workers {
                return pods;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .with_context(|| format!("{cluster} never got back to {workers} live workers: one was lost"))?;
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    assert_eq!(live.iter().filter(|p| role(p) == "head").count(), 1, "one head");
    assert_eq!(live.iter().filter(|p| role(p) == "worker").count(), workers, "exactly {workers} workers");
    Ok(())
}

/// The condition the test's other status writer keeps on the RayCluster.
const THEIRS: &str = "ExampleComOtherWriter";

/// Another controller that owns one condition of the RayCluster's status, as Kueue or a
/// monitoring tool might: every `period` it reads the RayCluster and writes its condition back
/// with a new message through a status update conditional on what it read (it retries its own
/// 409s). Each of its writes moves the RayCluster's resourceVersion, so the operator's status
/// writes in between conflict. Stops when `stop` is set; returns how many writes it made.
async fn another_status_writer(client: Client, cluster: &str, period: Duration, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u32 {
    // Untyped, so that the update keeps every status field the operator wrote.
    let resource = kube::api::ApiResource::erase::<RayCluster>(&());
    let clusters: Api<kube::api::DynamicObject> = Api::namespaced_with(client, NS, &resource);
    let mut written = 0u32;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if let Ok(mut rc) = clusters.get(cluster).await {
            let conditions = rc.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conditions: Vec<serde_json::Value> = conditions.into_iter().filter(|c| c["type"] != THEIRS).collect();
            conditions.push(json!({
                "type": THEIRS, "status": "True", "reason": "StillWatching", "message": format!("write {}", written + 1),
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }));
            rc.data["status"]["conditions"] = json!(conditions);
            if clusters.replace_status(cluster, &PostParams::default(), &rc).await.is_ok() {
                written += 1;
            }
        }
        tokio::time::sleep(period).await;
    }
    written
}

/// Status writes that conflict (409) with another writer of the same RayCluster's status: the
/// operator's status writes are conditional on the version it decided from, so it never writes
/// over a status it has not seen. Its conflicts are retried (and counted), the scale-up ends
/// with exactly its Pods, and the other writer's condition is still there at the end.
#[tokio::test(flavor = "multi_thread")]
async fn status_writes_that_conflict_with_another_writer_are_retried_and_keep_its_condition() -> anyhow::Result<()> {
    let (_plane, client) = own_control_plane("conflict").await?;
    let operator = operator(&_plane)?;
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), NS);
    clusters.create(&PostParams::default(), &a_wide_cluster("contended")?).await?;
    until_pods(&client, "contended", 1).await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(another_status_writer(client.clone(), "contended", Duration::from_millis(300), stop.clone()));

    ends_with_exactly_its_pods(&client, "contended").await?;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.await?;
    let last = format!("write {writes}");
    // A Pod event after the other writer stopped makes the operator write its status once more.
    let victim = pods_of(&client, "contended").await.into_iter().find(|p| p.metadata.name.as_deref().is_some_and(|n| n.contains("worker"))).context("a worker")?;
    let victim = victim.metadata.name.clone().unwrap_or_default();
    Api::<Pod>::namespaced(client.clone(), NS).delete(&victim, &Default::default()).await?;
    wasmray_tests::within(WAIT, async {
        loop {
            let pods = pods_of(&client, "contended").await;
            let live = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && p.metadata.name.as_deref().is_some_and(|n| n.contains("worker")));
            let names: Vec<&str> = live.filter_map(|p| p.metadata.name.as_deref()).collect();
            if names.len() == WORKERS && !names.contains(&victim.as_str()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .context("the deleted worker replaced")?;
    // The reconcile that replaced it wrote the status too (the operator writes status last).
    tokio::time::sleep(Duration::from_secs(3)).await;
    ends_with_exactly_its_pods(&client, "contended").await?;

    let status = clusters.get("contended").await?.status.context("a status")?;
    let conditions = serde_json::to_value(&status.conditions)?;
    let theirs: Vec<&serde_json::Value> = conditions.as_array().into_iter().flatten().filter(|c| c["type"] == THEIRS).collect();
    assert_eq!(theirs.len(), 1, "the other writer's condition survives the operator's status writes: {conditions:#}");
    assert_eq!(theirs[0]["message"], last.as_str(), "and is the other writer's last one: {conditions:#}");
    let (_, text) = wasmray_tests::http_get(operator.metrics_addr().context("metrics")?, "/metrics").await?;
    let conflicts = wasmray_tests::metric(&text, "wasmray_writes_total{verb=\"status\",kind=\"RayCluster\",outcome=\"conflict\"}").unwrap_or(0.0);
    eprintln!("the other writer wrote {writes} times; the operator's status writes that conflicted: {conflicts}; errors retried: {:#?}", retried_errors(&operator).await?);
    assert!(writes >= 5, "the other writer wrote throughout the scale-up ({writes} writes)");
    assert!(conflicts >= 1.0, "the operator's metrics count the conflicts it retried");
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    Ok(())
}
