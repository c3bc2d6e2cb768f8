//! RayJob end to end: the operator on the local control plane, its RayClusters on KWOK nodes, and the Ray jobs themselves on a real local Ray head that every dashboard address resolves to.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use wasmray::ray::dashboard::Dashboard;
use wasmray_api::{RayCluster, RayJob};
use wasmray_tests::ray::RayHead;
use wasmray_tests::rayjobs::{WAIT, a_rayjob, apply, deployment_is, events, finish, status, wait_for};
use wasmray_tests::{TestNamespace, namespace};


/// One Ray head for the whole file: each costs a GiB, and RayJobs' ids never collide.
async fn head() -> &'static RayHead {
    static HEAD: OnceCell<Result<RayHead, String>> = OnceCell::const_new();
    match HEAD.get_or_init(|| async { RayHead::start().await.map_err(|e| format!("{e:#}")) }).await {
        Ok(head) => head,
        Err(error) => panic!("the Ray head did not start: {error}"),
    }
}

fn dashboard() -> Dashboard {
    Dashboard::new(Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_mode_rayjob_runs_a_real_entrypoint_to_complete() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-http").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    apply(&ns, &a_rayjob("hello", "HTTPMode", "python -c \"print('hello from wasmray')\"", json!({}))).await?;

    let done = wait_for(&ns, "hello", deployment_is("Complete")).await?;
    assert_eq!(done["jobStatus"], "SUCCEEDED", "{done:#}");
    let id = done["jobId"].as_str().context("a job id")?;
    assert!(id.starts_with("hello-"), "KubeRay's <rayjob>-<suffix> id: {id}");
    let cluster = done["rayClusterName"].as_str().context("a cluster name")?;
    let clusters: Api<RayCluster> = ns.api();
    let owned = clusters.get(cluster).await?;
    assert_eq!(owned.metadata.owner_references.unwrap_or_default()[0].kind, "RayJob");

    let ray = dashboard().job(&head.dashboard_address(), None, id).await?.context("Ray knows the job")?;
    assert_eq!(ray.status, "SUCCEEDED");
    let logs = dashboard().logs_tail(&head.dashboard_address(), None, id, 2_000).await?;
    assert!(logs.contains("hello from wasmray"), "{logs}");
    assert_eq!(events(&ns, "CreatedRayCluster").await?.len(), 1);
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_entrypoint_ends_failed_with_rays_message() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-fail").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    let entrypoint = "python -c \"import sys; print('boom'); sys.exit(1)\"";
    apply(&ns, &a_rayjob("boom", "HTTPMode", entrypoint, json!({}))).await?;

    let failed = wait_for(&ns, "boom", deployment_is("Failed")).await?;
    assert_eq!(failed["jobStatus"], "FAILED", "{failed:#}");
    assert_eq!(failed["reason"], "AppFailed", "{failed:#}");
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(message.contains("exit code 1"), "Ray's own message: {message}");
    assert_eq!(failed["failed"], 1, "{failed:#}");
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rayjob_past_its_active_deadline_fails_and_its_ray_job_is_stopped() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-deadline").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    apply(&ns, &a_rayjob("slow", "HTTPMode", "sleep 600", json!({ "activeDeadlineSeconds": 20 }))).await?;

    let running = wait_for(&ns, "slow", |s| s["jobStatus"] == "RUNNING").await?;
    let id = running["jobId"].as_str().context("a job id")?.to_string();
    let failed = wait_for(&ns, "slow", deployment_is("Failed")).await?;
    assert_eq!(failed["reason"], "DeadlineExceeded", "{failed:#}");
    let stopped = wasmray_tests::within(Duration::from_secs(60), async {
        loop {
            if let Ok(Some(info)) = dashboard().job(&head.dashboard_address(), None, &id).await
                && info.status == "STOPPED"
            {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .context("Ray was never asked to stop the job")?;
    assert_eq!(stopped.status, "STOPPED");
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_restarted_while_a_job_runs_does_not_submit_it_twice() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-restart").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    apply(&ns, &a_rayjob("steady", "HTTPMode", "sleep 15", json!({}))).await?;
    let running = wait_for(&ns, "steady", |s| s["jobStatus"] == "RUNNING").await?;
    tokio::task::spawn_blocking(move || drop(operator)).await?;

    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    let done = wait_for(&ns, "steady", deployment_is("Complete")).await?;
    assert_eq!(done["jobId"], running["jobId"], "the same Ray job before and after the restart");
    assert_eq!(done["jobStatus"], "SUCCEEDED");
    let address: std::net::SocketAddr = head.dashboard_address().parse()?;
    let (code, body) = wasmray_tests::http_get(address, "/api/jobs/").await?;
    assert_eq!(code, 200);
    let jobs: Vec<Value> = serde_json::from_str(&body)?;
    let ours = jobs.iter().filter(|j| j["submission_id"].as_str().is_some_and(|id| id.starts_with("steady-"))).count();
    assert_eq!(ours, 1, "one submission for the RayJob: {body}");
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_rayjob_gets_no_cluster_until_resumed_and_loses_it_when_suspended_again() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-suspend").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    // The CRD refuses a suspended RayJob that would keep its cluster after it finishes.
    let job = a_rayjob("later", "HTTPMode", "sleep 600", json!({ "suspend": true, "shutdownAfterJobFinishes": true }));
    apply(&ns, &job).await?;

    let suspended = wait_for(&ns, "later", deployment_is("Suspended")).await?;
    assert!(suspended["rayClusterName"].as_str().is_none_or(str::is_empty), "{suspended:#}");
    let clusters: Api<RayCluster> = ns.api();
    assert!(clusters.list(&ListParams::default()).await?.items.is_empty(), "no cluster while suspended");

    let mut resumed = job.clone();
    resumed["spec"]["suspend"] = false.into();
    apply(&ns, &resumed).await?;
    let running = wait_for(&ns, "later", |s| s["jobStatus"] == "RUNNING").await?;
    assert!(running["rayClusterName"].as_str().is_some_and(|n| !n.is_empty()), "{running:#}");

    apply(&ns, &job).await?;
    let again = wait_for(&ns, "later", deployment_is("Suspended")).await?;
    assert!(again["rayClusterName"].as_str().is_none_or(str::is_empty), "{again:#}");
    let gone = wasmray_tests::within(WAIT, async {
        loop {
            if clusters.list(&ListParams::default()).await.is_ok_and(|l| l.items.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the cluster is deleted when the RayJob is suspended");
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_k8s_job_mode_rayjob_completes_from_the_status_of_what_its_submitter_submitted() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-k8sjob").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    let entrypoint = "python -c \"print('submitted by the submitter')\"";
    apply(&ns, &a_rayjob("batch", "K8sJobMode", entrypoint, json!({ "submitterConfig": { "backoffLimit": 3 } }))).await?;

    let jobs: Api<Job> = ns.api();
    let submitter = ns.wait_until(&jobs, "batch", |j: Option<&Job>| j.is_some(), WAIT).await?;
    let spec = submitter.spec.as_ref().context("a Job spec")?;
    assert_eq!(spec.backoff_limit, Some(3), "submitterConfig.backoffLimit");
    let container = &spec.template.spec.as_ref().context("a Pod spec")?.containers[0];
    let id = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "RAY_JOB_SUBMISSION_ID")
        .and_then(|e| e.value.clone())
        .context("the submitter is told its submission id")?;

    // The test plays the submitter Pod: it submits what the Pod would, then lets it succeed.
    let pod = submitter_pod(&ns, "batch").await?;
    head.submit_cli(&id, entrypoint).await?;
    exit_pod(&ns, &pod, "Succeeded").await?;

    let done = wait_for(&ns, "batch", deployment_is("Complete")).await?;
    assert_eq!(done["jobStatus"], "SUCCEEDED", "{done:#}");
    assert_eq!(done["jobId"], id.as_str());
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_submitter_that_fails_ends_the_rayjob_failed_with_submission_failed() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-submitfail").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    apply(&ns, &a_rayjob("broken", "K8sJobMode", "python -c 'print(1)'", json!({ "submitterConfig": { "backoffLimit": 0 } }))).await?;

    let pod = submitter_pod(&ns, "broken").await?;
    exit_pod(&ns, &pod, "Failed").await?;
    let failed = wait_for(&ns, "broken", deployment_is("Failed")).await?;
    assert_eq!(failed["reason"], "SubmissionFailed", "{failed:#}");
    finish(&ns, operator).await
}

/// The Pod the Job controller made for the submitter Job `job`.
async fn submitter_pod(ns: &TestNamespace, job: &str) -> anyhow::Result<String> {
    let pods: Api<Pod> = ns.api();
    let selector = format!("job-name={job}");
    wasmray_tests::within(WAIT, async {
        loop {
            if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await
                && let Some(pod) = list.items.into_iter().find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            {
                return pod.metadata.name.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .with_context(|| format!("no running Pod of the submitter Job {job}"))
}

/// Ends a KWOK Pod with `phase` (our KWOK stages read the annotation).
async fn exit_pod(ns: &TestNamespace, pod: &str, phase: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = ns.api();
    let patch = json!({ "metadata": { "annotations": {
        wasmray::dev::kwok::EXIT_ANNOTATION: phase, wasmray::dev::kwok::EXIT_AFTER_ANNOTATION: "100ms",
    } } });
    pods.patch(pod, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Sample files applied at once (each in a namespace of its own, with its own operator).
const SAMPLES_AT_ONCE: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn every_rayjob_sample_applies_unchanged_and_gets_its_cluster() -> anyhow::Result<()> {
    let files: Vec<String> = wasmray_samples::files()
        .into_iter()
        .filter(|f| wasmray_samples::load(f).iter().any(|o| o["apiVersion"] == "ray.io/v1" && o["kind"] == "RayJob"))
        .collect();
    assert!(files.len() >= 15, "KubeRay v1.5.2 has 17 RayJob samples: {files:?}");
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(SAMPLES_AT_ONCE));
    let mut running = tokio::task::JoinSet::new();
    for file in files {
        let permits = permits.clone();
        running.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let outcome = run_sample(&file).await;
            (file, outcome)
        });
    }
    let mut results: Vec<(String, anyhow::Result<String>)> = running.join_all().await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let failures: Vec<String> = results.iter().filter_map(|(f, r)| r.as_ref().err().map(|e| format!("{f}: {e:#}"))).collect();
    for (file, outcome) in &results {
        if let Ok(what) = outcome {
            println!("{file}: {what}");
        }
    }
    assert!(failures.is_empty(), "{} of {} samples failed:\n{}", failures.len(), results.len(), failures.join("\n"));
    Ok(())
}

/// One sample, as its comments say to use it: `kubectl apply --server-side`, or `kubectl create`
/// for a sample whose RayJob has only a `generateName`. Each of its RayJobs gets its own
/// cluster, or the one its `clusterSelector` names (created first: the sample expects it to
/// exist), or — created suspended, as for Kueue — stays Suspended with none. The
/// `RayJobDeletionPolicy` gate is on, since the deletion-rules sample needs it.
async fn run_sample(file: &str) -> anyhow::Result<String> {
    let ns = namespace(&format!("rjs-{}", file.rsplit('/').next().unwrap_or(file).trim_end_matches(".yaml").trim_start_matches("ray-job."))).await?;
    let operator = ns.operator_with_dashboard_and_flags("127.0.0.1:1", &["--feature-gates", "RayJobDeletionPolicy=true"]).await?;
    // The Volcano sample's queue is a Volcano Queue: its stand-in CRD must be there whatever ran before.
    wasmray_tests::install_batch_scheduler_crds(&ns.client).await?;
    let documents: Vec<Value> =
        wasmray_samples::load(file).into_iter().filter(|o| o["apiVersion"] == "ray.io/v1" && o["kind"] == "RayJob").collect();
    for job in &documents {
        if let Some(selected) = job["spec"]["clusterSelector"]["ray.io/cluster"].as_str() {
            wasmray_tests::fixtures::apply(&ns, &wasmray_tests::fixtures::ray_cluster(selected, &[])).await?;
        }
    }
    let path = wasmray_samples::samples_dir().join(file);
    if documents.iter().any(|j| j["metadata"]["name"].is_null()) {
        wasmray_tests::kubectl(&ns, &["create", "-f", &path.display().to_string()]).await?;
    } else {
        wasmray_tests::kubectl_apply(&ns, &path).await?;
    }
    let api: Api<RayJob> = ns.api();
    let jobs = api.list(&ListParams::default()).await?.items;
    anyhow::ensure!(jobs.len() == documents.len(), "{} RayJobs for {} in the file", jobs.len(), documents.len());
    let mut seen = Vec::new();
    for job in &jobs {
        let name = job.metadata.name.clone().unwrap_or_default();
        let selected = job.spec.cluster_selector.as_ref().and_then(|s| s.get("ray.io/cluster")).cloned();
        if job.spec.suspend == Some(true) {
            wait_for(&ns, &name, deployment_is("Suspended")).await?;
            seen.push(format!("{name} Suspended"));
            continue;
        }
        let named = wait_for(&ns, &name, |s| s["rayClusterName"].as_str().is_some_and(|n| !n.is_empty())).await?;
        let cluster = named["rayClusterName"].as_str().unwrap_or_default().to_string();
        match &selected {
            Some(selected) => anyhow::ensure!(&cluster == selected, "{name} runs on {cluster}, not the selected {selected}"),
            None => {
                // The name is in the status before the cluster is created (so a restart reuses it).
                let clusters: Api<RayCluster> = ns.api();
                let created = ns.wait_until(&clusters, &cluster, |c: Option<&RayCluster>| c.is_some(), WAIT).await;
                let created = match created {
                    Ok(created) => created,
                    Err(error) => {
                        let now = status(api.get_opt(&name).await?.as_ref());
                        let warnings: Vec<String> = events_of(&ns).await?.into_iter().filter(|e| e.type_.as_deref() == Some("Warning")).filter_map(|e| e.message).collect();
                        anyhow::bail!("{name}'s cluster {cluster} never appeared ({error:#}); its status now: {now}; Warnings: {warnings:?}");
                    }
                };
                let owner = created.metadata.owner_references.unwrap_or_default();
                anyhow::ensure!(owner.first().is_some_and(|o| o.kind == "RayJob" && o.name == name), "{cluster} is not owned by {name}");
            }
        }
        seen.push(format!("{name} on {cluster}"));
    }
    finish(&ns, operator).await?;
    Ok(seen.join(", "))
}

async fn events_of(ns: &TestNamespace) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = ns.api();
    Ok(api.list(&ListParams::default()).await?.items)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rayjob_whose_worker_asks_for_99_gpus_says_so() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-99gpus").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    let mut job = a_rayjob("greedy", "HTTPMode", "python -c 'print(1)'", json!({}));
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"] = json!([{
        "groupName": "gpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 1, "rayStartParams": {},
        "template": { "spec": { "containers": [{ "name": "ray-worker", "image": "rayproject/ray:2.54.0",
            "resources": { "limits": { "cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "99" } } }] } },
    }]);
    apply(&ns, &job).await?;
    let applied = std::time::Instant::now();
    let waiting = wait_for(&ns, "greedy", |s| s["message"].as_str().is_some_and(|m| m.contains("nvidia.com/gpu"))).await?;
    let took = applied.elapsed();
    assert_eq!(waiting["jobDeploymentStatus"], "Initializing", "{waiting:#}");
    println!("the RayJob named the missing nvidia.com/gpu {took:?} after it was applied: {}", waiting["message"]);
    let warnings = events(&ns, "RayClusterNotReady").await?;
    assert!(warnings.iter().any(|e| e.message.as_deref().is_some_and(|n| n.contains("nvidia.com/gpu"))), "{warnings:#?}");
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_rayjob_with_backoff_limit_1_gets_a_second_cluster_and_ends_failed_twice() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-retry").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    let entrypoint = "python -c \"import sys; sys.exit(3)\"";
    apply(&ns, &a_rayjob("flaky", "HTTPMode", entrypoint, json!({ "backoffLimit": 1 }))).await?;

    let first = wait_for(&ns, "flaky", |s| s["failed"] == 1).await?;
    let done = wait_for(&ns, "flaky", |s| s["jobDeploymentStatus"] == "Failed" && s["failed"] == 2).await?;
    assert_eq!(done["reason"], "AppFailed", "{done:#}");
    assert_ne!(done["rayClusterName"], first["rayClusterName"], "the retry ran on a new cluster: {first:#} {done:#}");
    assert_eq!(events(&ns, "CreatedRayCluster").await?.len(), 2);
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_rayjobs_cluster_goes_after_its_ttl_even_across_an_operator_restart() -> anyhow::Result<()> {
    let head = head().await;
    let ns = namespace("rayjob-ttl").await?;
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    let spec = json!({ "shutdownAfterJobFinishes": true, "ttlSecondsAfterFinished": 20 });
    apply(&ns, &a_rayjob("brief", "HTTPMode", "python -c 'print(1)'", spec)).await?;
    let done = wait_for(&ns, "brief", deployment_is("Complete")).await?;
    let cluster = done["rayClusterName"].as_str().context("a cluster")?.to_string();

    // Stopped during the TTL: the timer is the status's end time, not a clock in the process.
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    let clusters: Api<RayCluster> = ns.api();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(clusters.get_opt(&cluster).await?.is_some(), "nothing deletes the cluster while no operator runs");
    let operator = ns.operator_with_dashboard(&head.dashboard_address()).await?;
    let gone = wasmray_tests::within(WAIT, async {
        while clusters.get_opt(&cluster).await.ok().flatten().is_some_and(|c| c.metadata.deletion_timestamp.is_none()) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the cluster {cluster} was deleted after the TTL");
    let end = done["endTime"].as_str().context("an end time")?.parse::<k8s_openapi::jiff::Timestamp>()?;
    let after = k8s_openapi::jiff::Timestamp::now().duration_since(end).as_secs_f64();
    assert!(after >= 20.0, "not before the TTL: {after:.1} s after the end");
    finish(&ns, operator).await
}
