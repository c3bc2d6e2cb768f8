//! The operator as a platform team runs it: its endpoints, leader election between replicas,
//! KubeRay's settings, label edits, and an Event only for a write that happened.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use wasmray_api::RayCluster;
use wasmray_tests::fixtures::{WAIT, apply, condition, eventually, ray_cluster, wait_for_state, wait_for_workers, workers};
use wasmray_tests::{TestNamespace, http_get, metric, namespace, wasmray_binary};

/// An operator in this process with its endpoints on free loopback ports.
async fn operator_with_endpoints(ns: &TestNamespace, extra: &[&str]) -> anyhow::Result<wasmray_tests::Operator> {
    wasmray_tests::install_crds(&ns.client).await?;
    let mut flags = vec![
        "--watch-namespace".to_string(),
        ns.name.clone(),
        "--operator-namespace".into(),
        ns.name.clone(),
        "--metrics-addr=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
        "--kubeconfig".into(),
        ns.kubeconfig().display().to_string(),
        "--enable-leader-election=false".into(),
    ];
    flags.extend(extra.iter().map(|f| f.to_string()));
    let settings = wasmray::operator::Settings::read(wasmray::operator::RunArgs::from_flags(&flags)?, &|_| None)?;
    wasmray_tests::start_operator_with_settings(settings)
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_until_the_caches_sync_and_metrics_show_kuberays_and_our_own() -> anyhow::Result<()> {
    let ns = namespace("operator-endpoints").await?;
    wasmray_tests::install_crds(&ns.client).await?;
    let flags = [
        "--kubeconfig", &ns.kubeconfig().display().to_string(), "--watch-namespace", &ns.name, "--operator-namespace", &ns.name,
        "--metrics-addr=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0", "--enable-leader-election=false",
    ]
    .map(String::from);
    let settings = wasmray::operator::Settings::read(wasmray::operator::RunArgs::from_flags(&flags)?, &|_| None)?;
    let started = Instant::now();
    let operator = wasmray::operator::Operator::start(settings).await?;
    let (metrics, health) = (operator.metrics_addr.unwrap(), operator.health_addr.unwrap());
    assert_eq!(http_get(health, "/healthz").await?.0, 200);
    assert_eq!(http_get(health, "/readyz").await?.0, 503, "not ready before the caches are synced");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(operator.run(async {
        let _ = stopped.await;
    }));
    eventually("/readyz turns 200", WAIT, || async { Ok(if http_get(health, "/readyz").await?.0 == 200 { Ok(()) } else { Err("503".into()) }) }).await?;
    eprintln!("start to /readyz 200: {:?}", started.elapsed());

    let cluster = apply(&ns, &ray_cluster("metered", &[("cpu", 1, 0, 2)])).await?;
    wait_for_state(&ns, "metered", "ready").await?;
    let uid = cluster.metadata.uid.unwrap_or_default();
    let info = format!(r#"kuberay_cluster_info{{name="metered",namespace="{}",uid="{uid}",owner_kind="None"}}"#, ns.name);
    eventually("the provisioned condition metric", WAIT, || async {
        let (_, text) = http_get(metrics, "/metrics").await?;
        let provisioned = format!(r#"kuberay_cluster_condition_provisioned{{name="metered",namespace="{}",uid="{uid}",condition="true"}}"#, ns.name);
        Ok(if metric(&text, &provisioned) == Some(1.0) { Ok(()) } else { Err("not provisioned in /metrics".into()) })
    })
    .await?;
    let (status, text) = http_get(metrics, "/metrics").await?;
    assert_eq!(status, 200);
    assert_eq!(metric(&text, &info), Some(1.0), "{text}");
    assert!(text.contains("kuberay_cluster_provisioned_duration_seconds{name=\"metered\""), "{text}");
    assert!(metric(&text, r#"wasmray_reconcile_duration_seconds_count{controller="RayCluster",outcome="ok"}"#).unwrap_or(0.0) >= 1.0, "{text}");
    assert!(metric(&text, r#"wasmray_plugin_calls_total{plugin="raycluster",function="reconcile",outcome="ok"}"#).unwrap_or(0.0) >= 1.0, "{text}");
    assert!(text.contains(r#"wasmray_workqueue_depth{controller="RayCluster"}"#), "{text}");
    assert!(metric(&text, r#"wasmray_writes_total{verb="create",kind="Pod",outcome="ok"}"#).unwrap_or(0.0) >= 2.0, "{text}");

    let _ = stop.send(());
    running.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_label_edit_is_reconciled_within_two_seconds() -> anyhow::Result<()> {
    let ns = namespace("operator-label-edit").await?;
    let operator = operator_with_endpoints(&ns, &[]).await?;
    let metrics = operator.metrics_addr().unwrap();
    apply(&ns, &ray_cluster("labelled", &[("cpu", 1, 0, 2)])).await?;
    wait_for_state(&ns, "labelled", "ready").await?;
    let reconciles = || async move {
        let (_, text) = http_get(metrics, "/metrics").await?;
        anyhow::Ok(metric(&text, r#"wasmray_reconciles_total{controller="RayCluster",outcome="ok"}"#).unwrap_or(0.0))
    };
    // Quiet first: no reconcile for 1.5 s.
    let mut last = reconciles().await?;
    let quiet_since = loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = reconciles().await?;
        if now == last {
            break now;
        }
        last = now;
    };

    let api: Api<RayCluster> = ns.api();
    let edited = Instant::now();
    api.patch("labelled", &PatchParams::default(), &Patch::Merge(&json!({ "metadata": { "labels": { "team": "vision" } } }))).await?;
    loop {
        if reconciles().await? > quiet_since {
            break;
        }
        anyhow::ensure!(edited.elapsed() < Duration::from_secs(2), "no reconcile within 2 s of a label edit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("label edit reconciled after {:?}", edited.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_the_host_cannot_build_gets_one_warning_no_created_event_and_the_replica_failure_condition() -> anyhow::Result<()> {
    let ns = namespace("operator-banana").await?;
    let _operator = ns.operator().await?;
    // The schema takes it (rayStartParams are strings), the host's builder cannot: the Ray
    // resources it must merge the TPU limit into are not JSON.
    let mut cluster = ray_cluster("banana", &[("cpu", 1, 0, 2)]);
    cluster["spec"]["headGroupSpec"]["rayStartParams"]["resources"] = "'{banana'".into();
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["google.com/tpu"] = "4".into();
    apply(&ns, &cluster).await?;

    let clusters: Api<RayCluster> = ns.api();
    let failed = ns
        .wait_until(&clusters, "banana", |rc: Option<&RayCluster>| rc.and_then(|rc| condition(rc, "RayClusterReplicaFailure")).map(|c| c.0).as_deref() == Some("True"), WAIT)
        .await?;
    let status = serde_json::to_value(failed.status.as_ref().unwrap())?;
    let replica_failure = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "RayClusterReplicaFailure").unwrap().clone();
    assert_eq!(replica_failure["reason"], "FailedCreateHeadPod");
    // Later reconciles must not add Events about it either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events: Api<Event> = ns.api();
    let about: Vec<Event> = events.list(&ListParams::default()).await?.items.into_iter().filter(|e| e.involved_object.name.as_deref() == Some("banana")).collect();
    let reasons: Vec<&str> = about.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert!(!reasons.contains(&"CreatedHeadPod"), "no Event for a head Pod never created: {reasons:?}");
    // Only the spec's Warning: a guest call that overran its deadline on a loaded machine would
    // add a ReconcilerFailed one, which is about the call, not the spec.
    let warnings: Vec<&Event> = about.iter().filter(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() != Some("ReconcilerFailed")).collect();
    assert_eq!(warnings.len(), 1, "one Warning: {reasons:?}");
    let message = warnings[0].message.as_deref().unwrap_or_default();
    assert_eq!(warnings[0].reason.as_deref(), Some("InvalidRayClusterSpec"));
    assert!(message.contains("rayStartParams resources") && message.contains("banana"), "the Warning names the field: {message}");
    assert_eq!(warnings[0].reporting_component.as_deref().or(warnings[0].source.as_ref().and_then(|s| s.component.as_deref())), Some("raycluster-controller"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_multi_host_indexing_gate_turns_on_the_replica_labels() -> anyhow::Result<()> {
    let ns = namespace("operator-feature-gate").await?;
    let _operator = operator_with_endpoints(&ns, &["--feature-gates=RayMultiHostIndexing=true"]).await?;
    let mut cluster = ray_cluster("tpu", &[("slice", 1, 0, 1)]);
    cluster["spec"]["workerGroupSpecs"][0]["numOfHosts"] = 2.into();
    apply(&ns, &cluster).await?;
    let pods = wait_for_workers(&ns, "tpu", "slice", 2).await?;
    let mut hosts: Vec<&str> = pods.iter().filter_map(|p| wasmray_tests::fixtures::label(p, "ray.io/replica-host-index")).collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["0", "1"]);
    assert!(pods.iter().all(|p| wasmray_tests::fixtures::label(p, "ray.io/worker-group-replica-index") == Some("0")));
    Ok(())
}

#[tokio::test]
async fn a_bad_setting_stops_the_start_with_the_flag_or_variable_named() -> anyhow::Result<()> {
    let cluster = wasmray_tests::cluster().await?;
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let output = Command::new(wasmray_binary())
            .arg("run")
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("running wasmray");
        assert!(!output.status.success(), "{args:?} {env:?} must not start");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(run(&["--feature-gates", "RayTurbo=true"], &[]).contains("--feature-gates: unknown feature gate \"RayTurbo\""));
    assert!(run(&["--metrics-addr", "everywhere"], &[]).contains("--metrics-addr"));
    assert!(run(&[], &[("ENABLE_PROBES_INJECTION", "perhaps")]).contains("ENABLE_PROBES_INJECTION"));
    Ok(())
}

/// A `wasmray run` process with leader election on, its Lease in the test's namespace.
struct Replica {
    child: Child,
    metrics: std::net::SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(ns: &TestNamespace, kubeconfig: &std::path::Path, log: &std::path::Path) -> anyhow::Result<Replica> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = Command::new(wasmray_binary())
        .args(["run", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--watch-namespace", &ns.name, "--operator-namespace", &ns.name, "--leader-election-namespace", &ns.name])
        .args(["--metrics-addr", &metrics.to_string(), "--health-probe-bind-address", "0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    Ok(Replica { child, metrics })
}

/// The process id in a Lease holder's identity (`<host>_<pid>_<random>`).
fn holder_pid(lease: Option<&Lease>) -> Option<u32> {
    let identity = lease?.spec.as_ref()?.holder_identity.as_deref()?;
    identity.rsplit('_').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_replicas_one_leads_and_the_other_takes_over_a_scale_up_when_the_leader_is_killed() -> anyhow::Result<()> {
    let ns = namespace("operator-leader-election").await?;
    wasmray_tests::install_crds(&ns.client).await?;
    let logs = tempfile_dir()?;
    let kubeconfig = wasmray_tests::cluster().await?.kubeconfig().to_path_buf();
    let replicas = [replica(&ns, &kubeconfig, &logs.join("a.log"))?, replica(&ns, &kubeconfig, &logs.join("b.log"))?];
    let pids = [replicas[0].child.id(), replicas[1].child.id()];

    let leases: Api<Lease> = ns.api();
    let lease = ns.wait_until(&leases, "ray-operator-leader", |l: Option<&Lease>| holder_pid(l).is_some_and(|p| pids.contains(&p)), WAIT).await?;
    let leader_pid = holder_pid(Some(&lease)).unwrap();
    let [mut leader, standby] = replicas;
    let mut standby = standby;
    if leader.child.id() != leader_pid {
        std::mem::swap(&mut leader, &mut standby);
    }

    apply(&ns, &ray_cluster("big", &[("cpu", 50, 0, 50)])).await?;
    eventually("the leader creates workers", WAIT, || async {
        let n = workers(&ns, "big", "cpu").await?.len();
        Ok(if n >= 10 { Ok(()) } else { Err(format!("{n} workers")) })
    })
    .await?;
    let (_, standby_metrics) = http_get(standby.metrics, "/metrics").await?;
    assert!(!standby_metrics.contains("wasmray_writes_total{"), "the standby wrote nothing:\n{standby_metrics}");
    assert!(!standby_metrics.contains("wasmray_reconciles_total{"), "the standby reconciled nothing:\n{standby_metrics}");

    leader.child.kill()?;
    leader.child.wait()?;
    let killed = Instant::now();
    let at_kill = workers(&ns, "big", "cpu").await?.len();
    let standby_pid = standby.child.id();
    ns.wait_until(&leases, "ray-operator-leader", |l: Option<&Lease>| holder_pid(l) == Some(standby_pid), Duration::from_secs(30)).await?;
    let took_over = killed.elapsed();
    eprintln!("leader SIGKILLed with {at_kill} of 50 workers; the standby took the lease after {took_over:?}");
    assert!(took_over <= wasmray::operator::leader::LEASE_DURATION + Duration::from_secs(3), "took over after {took_over:?}");

    wait_for_workers(&ns, "big", "cpu", 50).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = ns.api::<k8s_openapi::api::core::v1::Pod>().list(&ListParams::default().labels("ray.io/cluster=big,ray.io/node-type=worker")).await?;
    assert_eq!(all.items.len(), 50, "exactly 50 workers, none duplicated, none lost");
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("wasmray-leader-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
