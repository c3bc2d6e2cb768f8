//! RayJob's modes and rules end to end: deletion rules, SidecarMode, InteractiveMode, v1.7's status-check timeout, the failure Event's logs and the kuberay_job_* metrics, against a real local Ray head.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use wasmray_api::{RayCluster, RayJob};
use wasmray_tests::ray::RayHead;
use wasmray_tests::rayjobs::{WAIT, a_rayjob, apply, deployment_is, events, finish, wait_for};
use wasmray_tests::{TestNamespace, namespace};


/// One Ray head for the file but the status-check test's, which kills its own.
async fn head() -> &'static RayHead {
    static HEAD: OnceCell<Result<RayHead, String>> = OnceCell::const_new();
    match HEAD.get_or_init(|| async { RayHead::start().await.map_err(|e| format!("{e:#}")) }).await {
        Ok(head) => head,
        Err(error) => panic!("the Ray head did not start: {error}"),
    }
}

/// An operator for `ns` whose dashboard calls all go to `dashboard`, with `/metrics` on a free
/// loopback port, more flags, and the environment `env` (read as `wasmray run` reads its own).
async fn operator(ns: &TestNamespace, dashboard: &str, flags: &[&str], env: &[(&str, &str)]) -> anyhow::Result<wasmray_tests::Operator> {
    wasmray_tests::install_crds(&ns.client).await?;
    let mut argv = vec![
        "--kubeconfig".to_string(),
        ns.kubeconfig().display().to_string(),
        "--watch-namespace".into(),
        ns.name.clone(),
        "--operator-namespace".into(),
        ns.name.clone(),
        "--metrics-addr=127.0.0.1:0".into(),
        "--health-probe-bind-address=0".into(),
        "--enable-leader-election=false".into(),
    ];
    argv.extend(flags.iter().map(ToString::to_string));
    let env: std::collections::BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut settings = wasmray::operator::Settings::read(wasmray::operator::RunArgs::from_flags(&argv)?, &|name| env.get(name).cloned())?;
    let dashboard = dashboard.to_string();
    settings.dashboard_resolver = Some(std::sync::Arc::new(move |_: &str, _: &str| dashboard.clone()));
    wasmray_tests::start_operator_with_settings(settings)
}

/// The deletion-rules gate, off by default in KubeRay v1.5.
const DELETION_POLICY: [&str; 2] = ["--feature-gates", "RayJobDeletionPolicy=true"];

/// The RayJob with one worker group `small` of one Pod asking for `limits`.
fn with_a_worker(mut job: Value, limits: Value) -> Value {
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"] = json!([{
        "groupName": "small", "replicas": 1, "minReplicas": 1, "maxReplicas": 1, "rayStartParams": {},
        "template": { "spec": { "containers": [{ "name": "ray-worker", "image": "rayproject/ray:2.54.0",
            "resources": { "limits": limits } }] } },
    }]);
    job
}

/// The live (not terminating) Pods of `cluster` of `node_type` (`head`, `worker`).
async fn live_pods(ns: &TestNamespace, cluster: &str, node_type: &str) -> anyhow::Result<Vec<Pod>> {
    let pods = wasmray_tests::fixtures::pods(ns, &format!("ray.io/cluster={cluster},ray.io/node-type={node_type}")).await?;
    Ok(pods.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect())
}

/// The head Pod of `cluster` once it runs.
async fn running_head(ns: &TestNamespace, cluster: &str) -> anyhow::Result<Pod> {
    wasmray_tests::within(WAIT, async {
        loop {
            let heads = live_pods(ns, cluster, "head").await.unwrap_or_default();
            if let Some(pod) = heads.into_iter().find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")) {
                return pod;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .with_context(|| format!("no running head Pod of {cluster}"))
}

fn timestamp(status: &Value, field: &str) -> anyhow::Result<k8s_openapi::jiff::Timestamp> {
    Ok(status[field].as_str().with_context(|| format!("no {field} in {status}"))?.parse()?)
}

/// Seconds from the RayJob's `endTime` to now.
fn seconds_since_end(done: &Value) -> anyhow::Result<f64> {
    Ok(k8s_openapi::jiff::Timestamp::now().duration_since(timestamp(done, "endTime")?).as_secs_f64())
}

/// A thread's stack for a test's body: a debug build's deserialisers of a RayJob list (KB-sized
/// frames for every nested Pod template field) overflowed the 2 MiB of a test thread.
const STACK: usize = 16 << 20;

/// Runs a test's body on a runtime of its own whose threads have [`STACK`]-sized stacks.
fn on_a_big_stack(body: impl Future<Output = anyhow::Result<()>> + Send + 'static) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(STACK).build()?;
    let outcome = runtime.block_on(runtime.spawn(body));
    outcome?
}

// Deletion rules (KubeRay v1.5, gate RayJobDeletionPolicy).

/// What a deletion-rules test sees of a RayJob and its cluster at one moment.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    workers: usize,
    head: bool,
    cluster: bool,
    rayjob: bool,
}

async fn look(ns: &TestNamespace, job: &str, cluster: &str) -> anyhow::Result<Seen> {
    let clusters: Api<RayCluster> = ns.api();
    let jobs: Api<RayJob> = ns.api();
    Ok(Seen {
        workers: live_pods(ns, cluster, "worker").await?.len(),
        head: !live_pods(ns, cluster, "head").await?.is_empty(),
        cluster: clusters.get_opt(cluster).await?.is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
        rayjob: jobs.get_opt(job).await?.is_some_and(|j| j.metadata.deletion_timestamp.is_none()),
    })
}

#[test]
fn deletion_rules_remove_the_workers_then_the_cluster_then_the_rayjob_each_after_its_ttl() -> anyhow::Result<()> {
    on_a_big_stack(async {
        let head = head().await;
        let ns = namespace("rjm-rules").await?;
        let operator = operator(&ns, &head.dashboard_address(), &DELETION_POLICY, &[]).await?;
        let rules = json!({ "deletionRules": [
            { "policy": "DeleteWorkers", "condition": { "jobStatus": "SUCCEEDED", "ttlSeconds": 0 } },
            { "policy": "DeleteCluster", "condition": { "jobStatus": "SUCCEEDED", "ttlSeconds": 10 } },
            { "policy": "DeleteSelf", "condition": { "jobStatus": "SUCCEEDED", "ttlSeconds": 20 } },
        ] });
        let job = a_rayjob("tidy", "HTTPMode", "python -c \"print('tidy')\"", json!({ "deletionStrategy": rules }));
        apply(&ns, &with_a_worker(job, json!({ "cpu": "1", "memory": "1Gi" }))).await?;
        // Running means the cluster was ready, its worker with it.
        let running = wait_for(&ns, "tidy", |s| s["jobDeploymentStatus"] == "Running" || s["jobDeploymentStatus"] == "Complete").await?;
        let cluster = running["rayClusterName"].as_str().context("a cluster")?.to_string();
        assert_eq!(running["rayClusterStatus"]["readyWorkerReplicas"], 1, "{running:#}");
        let done = wait_for(&ns, "tidy", deployment_is("Complete")).await?;
        assert_eq!(done["jobStatus"], "SUCCEEDED", "{done:#}");

        // Watch until the RayJob is gone, keeping every change seen.
        let mut seen = vec![look(&ns, "tidy", &cluster).await?];
        wasmray_tests::within(WAIT, async {
            while seen.last().is_some_and(|s| s.rayjob) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(now) = look(&ns, "tidy", &cluster).await
                    && seen.last() != Some(&now)
                {
                    seen.push(now);
                }
            }
        })
        .await
        .with_context(|| format!("the RayJob was never deleted; seen: {seen:#?}"))?;
        let after_rayjob = seconds_since_end(&done)?;

        let workers_gone = seen.iter().position(|s| s.workers == 0).context("the workers never went")?;
        let cluster_gone = seen.iter().position(|s| !s.cluster).context("the cluster never went")?;
        assert!(seen[workers_gone].head && seen[workers_gone].cluster, "the workers went first, the head stayed: {seen:#?}");
        assert!(workers_gone < cluster_gone && seen[cluster_gone].rayjob, "then the cluster, with the RayJob still there: {seen:#?}");
        assert!(after_rayjob >= 20.0, "DeleteSelf waited for its TTL: {after_rayjob:.1} s after the end");
        let updated = events(&ns, "UpdatedRayCluster").await?;
        assert!(updated.iter().any(|e| e.message.as_deref().is_some_and(|n| n.contains("Suspended the worker groups"))), "{updated:#?}");
        let deleted = events(&ns, "DeletedRayCluster").await?;
        assert_eq!(deleted.len(), 1, "{deleted:#?}");
        let deleted_at = deleted[0].event_time.as_ref().map(|t| t.0).context("the Event's time")?;
        let after_cluster = deleted_at.duration_since(timestamp(&done, "endTime")?).as_secs_f64();
        assert!(after_cluster >= 10.0, "DeleteCluster waited for its TTL: {after_cluster:.1} s after the end");
        finish(&ns, operator).await
    })
}

#[test]
fn delete_none_deletes_nothing_while_a_delete_cluster_rule_beside_it_fires() -> anyhow::Result<()> {
    on_a_big_stack(async {
        let head = head().await;
        let ns = namespace("rjm-delete-none").await?;
        let operator = operator(&ns, &head.dashboard_address(), &DELETION_POLICY, &[]).await?;
        let rule = |policy: &str| json!({ "deletionRules": [{ "policy": policy, "condition": { "jobStatus": "SUCCEEDED", "ttlSeconds": 3 } }] });
        let worker = json!({ "cpu": "1", "memory": "1Gi" });
        apply(&ns, &with_a_worker(a_rayjob("keep", "HTTPMode", "python -c 'print(1)'", json!({ "deletionStrategy": rule("DeleteNone") })), worker.clone())).await?;
        apply(&ns, &with_a_worker(a_rayjob("drop", "HTTPMode", "python -c 'print(2)'", json!({ "deletionStrategy": rule("DeleteCluster") })), worker)).await?;
        let kept = wait_for(&ns, "keep", deployment_is("Complete")).await?;
        let dropped = wait_for(&ns, "drop", deployment_is("Complete")).await?;
        let (kept_cluster, dropped_cluster) = (kept["rayClusterName"].as_str().unwrap_or_default(), dropped["rayClusterName"].as_str().unwrap_or_default());

        // Once the operator has carried out the other RayJob's rule of the same TTL, it has passed this one's too.
        let clusters: Api<RayCluster> = ns.api();
        let gone = wasmray_tests::within(WAIT, async {
            while clusters.get_opt(dropped_cluster).await.ok().flatten().is_some_and(|c| c.metadata.deletion_timestamp.is_none()) {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "the DeleteCluster rule deleted {dropped_cluster}");
        let now = look(&ns, "keep", kept_cluster).await?;
        assert_eq!(now, Seen { workers: 1, head: true, cluster: true, rayjob: true }, "DeleteNone keeps all");
        let suspended = clusters.get(kept_cluster).await?.spec.worker_group_specs.iter().flatten().any(|g| g.suspend == Some(true));
        assert!(!suspended, "no worker group suspended");
        assert_eq!(wait_for(&ns, "keep", |_| true).await?["jobDeploymentStatus"], "Complete");
        finish(&ns, operator).await
    })
}

// SidecarMode.

/// The env of the Pod's container `name`, as name → value.
fn env_of(pod: &Pod, name: &str) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let spec = pod.spec.as_ref().context("a Pod spec")?;
    let container = spec.containers.iter().find(|c| c.name == name).with_context(|| format!("no container {name}"))?;
    Ok(container.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect())
}

#[test]
fn a_sidecar_mode_rayjob_completes_from_what_its_head_pods_submitter_submitted() -> anyhow::Result<()> {
    on_a_big_stack(async {
        let head = head().await;
        let ns = namespace("rjm-sidecar").await?;
        let operator = operator(&ns, &head.dashboard_address(), &[], &[]).await?;
        let entrypoint = "python -c \"print('submitted from the head Pod')\"";
        apply(&ns, &a_rayjob("beside", "SidecarMode", entrypoint, json!({}))).await?;
        let named = wait_for(&ns, "beside", |s| s["rayClusterName"].as_str().is_some_and(|n| !n.is_empty())).await?;
        let cluster = named["rayClusterName"].as_str().unwrap_or_default();
        let pod = running_head(&ns, cluster).await?;

        let env = env_of(&pod, "ray-job-submitter")?;
        let id = named["jobId"].as_str().context("a job id")?;
        assert_eq!(env.get("RAY_JOB_SUBMISSION_ID").map(String::as_str), Some(id), "{env:?}");
        assert_eq!(env.get("RAY_DASHBOARD_ADDRESS").map(String::as_str), Some("127.0.0.1:8265"), "the head's own dashboard: {env:?}");
        assert_eq!(env.get("PYTHONUNBUFFERED").map(String::as_str), Some("1"), "{env:?}");
        assert_eq!(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()), Some("Never"), "a restarted head would submit again");

        // The test plays the submitter container: it submits what the container would.
        head.submit_cli(id, entrypoint).await?;
        let done = wait_for(&ns, "beside", deployment_is("Complete")).await?;
        assert_eq!((done["jobStatus"].as_str(), done["jobId"].as_str()), (Some("SUCCEEDED"), Some(id)), "{done:#}");
        finish(&ns, operator).await
    })
}

#[test]
fn a_sidecar_submitter_that_exits_non_zero_before_the_cluster_is_ready_fails_the_rayjob() -> anyhow::Result<()> {
    on_a_big_stack(async {
        let head = head().await;
        let ns = namespace("rjm-sidecar-fail").await?;
        let operator = operator(&ns, &head.dashboard_address(), &[], &[]).await?;
        // A worker that never schedules keeps the cluster from being ready, while the head runs.
        let job = a_rayjob("early", "SidecarMode", "python -c 'print(1)'", json!({}));
        apply(&ns, &with_a_worker(job, json!({ "cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "99" }))).await?;
        let named = wait_for(&ns, "early", |s| s["rayClusterName"].as_str().is_some_and(|n| !n.is_empty())).await?;
        let cluster = named["rayClusterName"].as_str().unwrap_or_default().to_string();
        let pod = running_head(&ns, &cluster).await?;
        let before = wait_for(&ns, "early", |_| true).await?;
        assert_eq!(before["jobDeploymentStatus"], "Initializing", "the cluster is not ready: {before:#}");

        // KWOK ends all of a Pod's containers at once; the kubelet's part for one container is
        // played through the status subresource: the submitter exits 1, the Ray container runs on.
        let pods: Api<Pod> = ns.api();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let statuses = json!({ "status": { "containerStatuses": [
            { "name": "ray-head", "image": "rayproject/ray:2.54.0", "imageID": "", "ready": true, "restartCount": 0, "started": true,
              "state": { "running": { "startedAt": now } } },
            { "name": "ray-job-submitter", "image": "rayproject/ray:2.54.0", "imageID": "", "ready": false, "restartCount": 0, "started": false,
              "state": { "terminated": { "exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now } } },
        ] } });
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&statuses)).await?;

        let failed = wait_for(&ns, "early", deployment_is("Failed")).await?;
        assert_eq!(failed["reason"], "SubmissionFailed", "{failed:#}");
        let message = failed["message"].as_str().unwrap_or_default();
        assert!(message.contains("ray-job-submitter terminated with exit code 1"), "{message}");
        let warnings = events(&ns, "SubmissionFailed").await?;
        assert!(warnings.iter().any(|e| e.type_.as_deref() == Some("Warning") && e.message.as_deref() == Some(message)), "{warnings:#?}");
        finish(&ns, operator).await
    })
}

// InteractiveMode.

#[test]
fn an_interactive_rayjob_waits_for_the_id_of_a_job_submitted_by_hand_and_completes_from_its_status() -> anyhow::Result<()> {
    on_a_big_stack(async {
        let head = head().await;
        let ns = namespace("rjm-interactive").await?;
        let operator = operator(&ns, &head.dashboard_address(), &[], &[]).await?;
        let mut job = a_rayjob("notebook", "InteractiveMode", "", json!({}));
        job["spec"].as_object_mut().map(|spec| spec.remove("entrypoint"));
        apply(&ns, &job).await?;
        let waiting = wait_for(&ns, "notebook", deployment_is("Waiting")).await?;
        assert!(waiting["jobId"].as_str().is_none_or(str::is_empty), "no job id of its own: {waiting:#}");
        assert!(waiting["rayClusterName"].as_str().is_some_and(|n| !n.is_empty()), "{waiting:#}");

        // The user submits to the cluster, then says which job is theirs.
        let id = format!("by-hand-{}", ns.name);
        head.submit_cli(&id, "python -c \"print('by hand')\"").await?;
        let mut told = job.clone();
        told["spec"]["jobId"] = id.clone().into();
        apply(&ns, &told).await?;

        let done = wait_for(&ns, "notebook", deployment_is("Complete")).await?;
        assert_eq!((done["jobStatus"].as_str(), done["jobId"].as_str()), (Some("SUCCEEDED"), Some(id.as_str())), "{done:#}");
        finish(&ns, operator).await
    })
}

// v1.7's status-check timeout.

#[test]
fn a_running_rayjob_whose_dashboard_dies_fails_after_the_status_check_timeout() -> anyhow::Result<()> {
    on_a_big_stack(async {
        // A head of its own: this test kills it. Started after the shared one, since two heads
        // starting at once on a busy machine may both miss Ray's own start timeout.
        head().await;
        let own = RayHead::start().await?;
        let ns = namespace("rjm-status-check").await?;
        let timeout = [("RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS", "5")];
        let operator = operator(&ns, &own.dashboard_address(), &[], &timeout).await?;
        apply(&ns, &a_rayjob("orphan", "HTTPMode", "sleep 600", json!({}))).await?;
        wait_for(&ns, "orphan", |s| s["jobStatus"] == "RUNNING").await?;

        // SIGKILL, all at once: a head stopped in order may first tell the dashboard that its jobs failed.
        kill(&own)?;
        let failed = wait_for(&ns, "orphan", deployment_is("Failed")).await?;
        assert_eq!(failed["reason"], "JobStatusCheckTimeoutExceeded", "{failed:#}");
        let message = failed["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("The Ray job status could not be checked for 5s since"), "{message}");
        assert_eq!(failed["jobStatus"], "RUNNING", "Ray's last word is kept: {failed:#}");
        finish(&ns, operator).await?;
        tokio::task::spawn_blocking(move || drop(own)).await?;
        Ok(())
    })
}

/// SIGKILLs the process group of the head's `ray start` (its own group, which holds every Ray
/// process of the head), found by the dashboard port on its command line.
fn kill(head: &RayHead) -> anyhow::Result<()> {
    let port = head.dashboard_address().rsplit(':').next().unwrap_or_default().to_string();
    let flag = format!("--dashboard-port={port}");
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.iter().any(|a| a == "--head") && args.contains(&flag) {
            let group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))?;
            anyhow::ensure!(group.as_raw() == pid, "ray start {pid} is not the leader of its process group");
            nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL)?;
            return Ok(());
        }
    }
    anyhow::bail!("no ray start process with {flag}")
}

// The failure Event and the metrics.

#[test]
fn a_failed_jobs_warning_ends_with_its_logs_and_the_kuberay_job_metrics_show_it() -> anyhow::Result<()> {
    on_a_big_stack(async {
        let head = head().await;
        let ns = namespace("rjm-logs").await?;
        let operator = operator(&ns, &head.dashboard_address(), &[], &[]).await?;
        // More output than a note holds, then the line that says what went wrong.
        let entrypoint = "python -c \"import sys; print('loading shards ' * 400); print('wasmray-marker: no such shard 7'); sys.exit(1)\"";
        apply(&ns, &a_rayjob("shards", "HTTPMode", entrypoint, json!({}))).await?;
        let failed = wait_for(&ns, "shards", deployment_is("Failed")).await?;
        assert_eq!(failed["reason"], "AppFailed", "{failed:#}");

        let warnings = events(&ns, "AppFailed").await?;
        assert_eq!(warnings.len(), 1, "one Warning for the failure: {warnings:#?}");
        let note = warnings[0].message.clone().unwrap_or_default();
        assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
        assert!(note.contains("The end of the job's logs:\n") && note.trim_end().ends_with("wasmray-marker: no such shard 7"), "{note}");
        assert!(note.len() <= 1024, "{} bytes", note.len());

        let metrics = operator.metrics_addr().context("metrics are served")?;
        let jobs: Api<RayJob> = ns.api();
        let uid = jobs.get("shards").await?.metadata.uid.unwrap_or_default();
        let labels = format!(r#"name="shards",namespace="{}",uid="{uid}""#, ns.name);
        let execution = format!(r#"kuberay_job_execution_duration_seconds{{{labels},job_deployment_status="Failed",retry_count="1"}}"#);
        let text = wasmray_tests::within(WAIT, async {
            loop {
                if let Ok((200, text)) = wasmray_tests::http_get(metrics, "/metrics").await
                    && wasmray_tests::metric(&text, &execution).is_some()
                {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
        .await
        .context("no execution duration for the failed RayJob in /metrics")?;
        assert_eq!(wasmray_tests::metric(&text, &format!("kuberay_job_info{{{labels}}}")), Some(1.0), "{text}");
        let deployment = format!(r#"kuberay_job_deployment_status{{{labels},deployment_status="Failed"}}"#);
        assert_eq!(wasmray_tests::metric(&text, &deployment), Some(1.0), "{text}");
        let seconds = wasmray_tests::metric(&text, &execution).unwrap_or_default();
        let ran = timestamp(&failed, "endTime")?.duration_since(timestamp(&failed, "startTime")?).as_secs_f64();
        assert!((seconds - ran).abs() < 0.001 && seconds > 0.0, "from startTime to endTime: {seconds} s, status says {ran} s");
        finish(&ns, operator).await
    })
}
