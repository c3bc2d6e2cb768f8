//! One test per behaviour of the state machine, the submission modes, the timers and the cleanup, asserting exact plan ops.

use serde_json::{Value, json};
use wasmray_guest_sdk::{EventType, Op, Plan, Snapshot};

use crate::fixtures::*;
use crate::reconcile;

fn reconciled(snapshot: Snapshot) -> Plan {
    reconcile(&snapshot).expect("the reconcile fails")
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// The snapshot the next pass would see once the host wrote this plan's status.
fn after(job: JobFx, plan: &Plan) -> JobFx {
    let mut job = job;
    for (k, v) in changed(plan).as_object().unwrap() {
        if v.is_null() {
            job.0["status"].as_object_mut().unwrap().remove(k);
        } else {
            job.0["status"][k] = v.clone();
        }
    }
    job
}

// New.

#[test]
fn a_new_rayjob_gets_its_finalizer_and_records_job_id_and_cluster_name_before_anything_is_created() {
    let plan = reconciled(rayjob().with([]));
    assert_eq!(applied(&plan), ["RayJob/job"]);
    assert_eq!(applies(&plan)[0]["metadata"]["finalizers"], json!(["ray.io/rayjob-finalizer"]));
    let status = changed(&plan);
    assert_eq!(status["jobDeploymentStatus"], "Initializing");
    assert_eq!(status["jobStatus"], "");
    assert_eq!(status["startTime"], ago(0));
    assert_eq!(status["failed"], 0);
    assert_eq!(status["observedGeneration"], 1);
    for key in ["jobId", "rayClusterName"] {
        let name = status[key].as_str().unwrap();
        assert!(name.starts_with("job-") && name.len() == 9, "{key} = {name}");
    }
    assert_ne!(status["jobId"], status["rayClusterName"]);
    assert!(matches!(plan.ops.last(), Some(Op::Status(_))), "the status comes last");
    assert_eq!(plan.requeue_after_ms, Some(3_000));
}

#[test]
fn generated_names_come_from_the_seed() {
    let a = changed(&reconciled(rayjob().with([])));
    assert_eq!(a, changed(&reconciled(rayjob().with([]))));
    let mut other = rayjob().with([]);
    other.seed = 7;
    assert_ne!(a["rayClusterName"], changed(&reconciled(other))["rayClusterName"]);
}

#[test]
fn spec_job_id_is_the_submission_id_and_interactive_mode_records_none() {
    assert_eq!(changed(&reconciled(rayjob().job_id("mine").with([])))["jobId"], "mine");
    assert!(changed(&reconciled(rayjob().interactive().with([])))["jobId"].is_null());
}

// Initializing.

#[test]
fn initializing_creates_the_cluster_owned_and_labelled_like_kuberay() {
    let plan = reconciled(rayjob().initializing().with([]));
    assert_eq!(applied(&plan), [format!("RayCluster/{CLUSTER}")]);
    let cluster = &applies(&plan)[0];
    assert_eq!(cluster["metadata"]["labels"], json!({ "team": "ml", "ray.io/originated-from-cr-name": "job", "ray.io/originated-from-crd": "RayJob" }));
    assert_eq!(cluster["metadata"]["ownerReferences"][0]["uid"], "uid-job");
    assert_eq!(cluster["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(cluster["spec"], rayjob().0["spec"]["rayClusterSpec"]);
    assert_eq!(event_reasons(&plan), ["CreatedRayCluster"]);
    assert_eq!(moved_to(&plan).0, "", "still Initializing");
}

#[test]
fn a_cluster_that_is_not_ready_is_waited_for_with_its_status_copied() {
    let plan = reconciled(rayjob().initializing().with([cluster().into()]));
    assert_eq!(applied(&plan), Vec::<String>::new());
    assert_eq!(changed(&plan)["rayClusterStatus"], json!({ "desiredWorkerReplicas": 1 }));
    assert_eq!(plan.requeue_after_ms, Some(3_000));
}

#[test]
fn a_cluster_that_cannot_start_says_why_in_the_message() {
    let mut live = cluster();
    live.0["status"]["conditions"] = json!([
        { "type": "HeadPodReady", "status": "False", "reason": "ImagePullBackOff", "message": "Back-off pulling image" },
    ]);
    let plan = reconciled(rayjob().initializing().with([live.into()]));
    assert_eq!(changed(&plan)["message"], format!("Waiting for RayCluster {CLUSTER}: ImagePullBackOff: Back-off pulling image"));
    let mut failing = cluster();
    failing.0["status"]["conditions"] = json!([
        { "type": "HeadPodReady", "status": "False", "reason": "HeadPodNotFound", "message": "Head Pod not found" },
        { "type": "RayClusterReplicaFailure", "status": "True", "reason": "FailedCreateHeadPod", "message": "pods \"x\" is forbidden: exceeded quota" },
    ]);
    let plan = reconciled(rayjob().initializing().with([failing.into()]));
    assert_eq!(changed(&plan)["message"], format!("Waiting for RayCluster {CLUSTER}: FailedCreateHeadPod: pods \"x\" is forbidden: exceeded quota"));
}

const NO_GPU: &str = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.";

/// The cluster with its head up and a worker the scheduler cannot place for lack of GPUs.
fn a_cluster_short_of_gpus() -> ChildFx {
    cluster()
        .condition("HeadPodReady", "True", "HeadPodRunningAndReady", "")
        .condition("WorkerPodsReady", "False", "Unschedulable", &format!("worker Pod {CLUSTER}-gpu-worker-q2w3e (group gpu): {NO_GPU}"))
}

#[test]
fn a_rayjob_whose_cluster_cannot_schedule_a_worker_says_so_once_as_a_warning() {
    let job = || rayjob().initializing();
    let plan = reconciled(job().with([a_cluster_short_of_gpus().into()]));
    let message = format!("Waiting for RayCluster {CLUSTER}: Unschedulable: worker Pod {CLUSTER}-gpu-worker-q2w3e (group gpu): {NO_GPU}");
    assert_eq!(changed(&plan)["message"], message);
    let warnings = events(&plan);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!((warnings[0].type_, warnings[0].reason.as_str()), (EventType::Warning, "RayClusterNotReady"));
    assert!(warnings[0].message.contains("Insufficient nvidia.com/gpu"), "{}", warnings[0].message);

    let next = reconciled(after(job(), &plan).with([a_cluster_short_of_gpus().into()]));
    assert_eq!(events(&next), [], "the same cause is not told again");
    assert_eq!(changed(&next).get("message"), None);
}

#[test]
fn a_new_cause_is_told_again_and_a_cause_that_is_over_clears_the_message() {
    let first = reconciled(rayjob().initializing().with([a_cluster_short_of_gpus().into()]));
    let pulling = a_cluster_short_of_gpus().condition("HeadPodReady", "False", "ImagePullBackOff", "container ray-head: Back-off pulling image");
    let plan = reconciled(after(rayjob().initializing(), &first).with([pulling.into()]));
    assert_eq!(
        changed(&plan)["message"],
        format!("Waiting for RayCluster {CLUSTER}: ImagePullBackOff: container ray-head: Back-off pulling image"),
        "the head comes before the workers"
    );
    assert_eq!(event_reasons(&plan), ["RayClusterNotReady"]);

    let coming = cluster().condition("WorkerPodsReady", "False", "WorkerPodsNotReady", "0 of 1 worker Pods are Ready");
    let plan = reconciled(after(rayjob().initializing(), &first).with([coming.into()]));
    assert_eq!(changed(&plan).get("message"), Some(&Value::Null), "Pods on their way up are no cause: the message is cleared");
    assert_eq!(events(&plan), []);
}

#[test]
fn a_head_pod_the_scheduler_cannot_place_is_the_reason_a_rayjob_waits() {
    let live = cluster().condition("HeadPodReady", "False", "Unschedulable", NO_GPU);
    let plan = reconciled(rayjob().initializing().with([live.into()]));
    assert_eq!(changed(&plan)["message"], format!("Waiting for RayCluster {CLUSTER}: Unschedulable: {NO_GPU}"));
    assert_eq!(event_reasons(&plan), ["RayClusterNotReady"]);
}

#[test]
fn an_interactive_rayjob_waiting_for_its_job_id_says_why_its_cluster_lost_a_worker() {
    let waiting = || rayjob().interactive().at("Waiting", "", 10);
    let plan = reconciled(waiting().with([a_cluster_short_of_gpus().ready().into()]));
    assert!(changed(&plan)["message"].as_str().unwrap().ends_with(NO_GPU));
    assert_eq!(event_reasons(&plan), ["RayClusterNotReady"]);
    let set = after(waiting(), &plan).job_id("by-hand");
    let plan = reconciled(set.with([a_cluster_short_of_gpus().ready().into()]));
    assert_eq!(moved_to(&plan).0, "Running");
    assert_eq!(changed(&plan).get("message"), Some(&Value::Null), "Running has Ray's message to tell");
    assert_eq!(events(&plan), []);
}

#[test]
fn k8s_job_mode_does_not_submit_while_the_head_pod_is_not_ready_now() {
    // kuberay#4760: the cluster's `ready` is sticky; the head restarted and is not up.
    let plan = reconciled(rayjob().initializing().with([cluster().ready().into(), head().running_not_ready().into()]));
    assert_eq!(applied(&plan), Vec::<String>::new());
    assert_eq!(changed(&plan)["dashboardURL"], DASHBOARD);
    assert_eq!(changed(&plan)["message"], format!("Waiting for the head Pod of RayCluster {CLUSTER} to be Ready before submitting"));
    assert_eq!(moved_to(&plan).0, "");
}

#[test]
fn k8s_job_mode_creates_the_submitter_job_with_kuberays_script_env_and_backoff_limit() {
    let job = rayjob().initializing().with_spec("submitterConfig", json!({ "backoffLimit": 3 }))
        .with_spec("runtimeEnvYAML", json!("pip:\n  - requests\n")).with_spec("entrypointNumCpus", json!(1.5));
    let plan = reconciled(job.with([cluster().ready().into(), head().running_ready().into()]));
    assert_eq!(applied(&plan), ["Job/job"]);
    let submitter = &applies(&plan)[0];
    assert_eq!(submitter["spec"]["backoffLimit"], 3);
    assert_eq!(submitter["metadata"]["labels"]["ray.io/originated-from-crd"], "RayJob");
    assert_eq!(submitter["metadata"]["labels"]["app.kubernetes.io/created-by"], "kuberay-operator");
    assert_eq!(submitter["metadata"]["ownerReferences"][0]["name"], "job");
    let pod = &submitter["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "ray-job-submitter");
    assert_eq!(container["image"], "rayproject/ray:2.52.0");
    assert_eq!(container["command"], json!(["/bin/bash", "-ce", "--"]));
    let a = format!("http://{DASHBOARD}");
    assert_eq!(
        container["args"][0],
        format!("if ! ray job status --address {a} {JOB_ID} >/dev/null 2>&1 ; then ray job submit --address {a} --no-wait \
                 --runtime-env-json '{{\"pip\":[\"requests\"]}}' --submission-id {JOB_ID} --entrypoint-num-cpus 1.500000 -- python app.py ; fi ; \
                 ray job logs --address {a} --follow {JOB_ID}")
    );
    assert_eq!(
        container["env"],
        json!([{ "name": "PYTHONUNBUFFERED", "value": "1" }, { "name": "RAY_DASHBOARD_ADDRESS", "value": DASHBOARD },
               { "name": "RAY_JOB_SUBMISSION_ID", "value": JOB_ID }])
    );
    assert_eq!(event_reasons(&plan), ["CreatedRayJobSubmitter"]);
    assert_eq!(moved_to(&plan).0, "Running");
}

#[test]
fn the_submitter_pod_template_is_used_and_a_users_command_kept() {
    let template = json!({ "spec": { "restartPolicy": "Never", "containers": [
        { "name": "mine", "image": "submitter:1", "command": ["/submit"] } ] } });
    let job = rayjob().initializing().with_spec("submitterPodTemplate", template);
    let plan = reconciled(job.with([cluster().ready().into(), head().running_ready().into()]));
    let container = &applies(&plan)[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], json!(["/submit"]));
    assert!(container["args"].is_null());
    assert_eq!(container["env"][2]["name"], "RAY_JOB_SUBMISSION_ID");
}

#[test]
fn token_auth_gives_the_submitter_the_clusters_token() {
    let mut live = cluster().ready();
    live.0["spec"]["authOptions"] = json!({ "mode": "token" });
    let plan = reconciled(rayjob().initializing().with([live.into(), head().running_ready().into()]));
    let env = &applies(&plan)[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[3], json!({ "name": "RAY_AUTH_MODE", "value": "token" }));
    assert_eq!(env[4]["valueFrom"]["secretKeyRef"], json!({ "name": CLUSTER, "key": "auth_token" }));
}

#[test]
fn http_mode_goes_running_once_the_cluster_is_ready_without_a_submitter() {
    let plan = reconciled(rayjob().http().initializing().with([cluster().ready().into()]));
    assert_eq!(applied(&plan), Vec::<String>::new());
    assert_eq!(moved_to(&plan).0, "Running");
}

#[test]
fn interactive_mode_waits_until_the_user_sets_spec_job_id() {
    let plan = reconciled(rayjob().interactive().initializing().with([cluster().ready().into()]));
    assert_eq!(moved_to(&plan).0, "Waiting");
    let waiting = rayjob().interactive().at("Waiting", "", 10);
    assert_eq!(changed(&reconciled(waiting.with([cluster().ready().into()]))), json!({}));
    let set = rayjob().interactive().at("Waiting", "", 10).job_id("by-hand");
    let plan = reconciled(set.with([cluster().ready().into()]));
    assert_eq!((changed(&plan)["jobId"].clone(), moved_to(&plan).0), (json!("by-hand"), s("Running")));
}

#[test]
fn sidecar_mode_puts_the_submitter_in_the_head_pod_that_never_restarts() {
    let plan = reconciled(rayjob().sidecar().initializing().with([]));
    let head = &applies(&plan)[0]["spec"]["headGroupSpec"]["template"]["spec"];
    assert_eq!(head["restartPolicy"], "Never");
    let sidecar = &head["containers"][1];
    assert_eq!(sidecar["name"], "ray-job-submitter");
    let script = sidecar["args"][0].as_str().unwrap();
    assert!(script.starts_with("until wget -q -O- http://localhost:8265/api/gcs_healthz"), "{script}");
    assert!(script.ends_with(&format!("ray job submit --address http://127.0.0.1:8265 --submission-id {JOB_ID} -- python app.py")), "{script}");
    assert!(!script.contains("--no-wait"));
}

#[test]
fn a_sidecar_submitter_that_fails_before_the_cluster_is_ready_fails_the_rayjob() {
    // kuberay#4945: without this the RayJob waits for a ready cluster forever.
    let plan = reconciled(rayjob().sidecar().initializing().with([cluster().into(), head().sidecar_exited(1).into()]));
    assert_eq!(moved_to(&plan), (s("Failed"), s("SubmissionFailed")));
    assert_eq!(changed(&plan)["message"], "Ray head pod container ray-job-submitter terminated with exit code 1: Error");
    assert_eq!(changed(&plan)["failed"], 1);
}

// Running.

#[test]
fn running_copies_rays_status_message_and_times() {
    let plan = reconciled(ray_says(rayjob().http().running().with([cluster().ready().into()]), "RUNNING"));
    let status = changed(&plan);
    assert_eq!(status["message"], "Job is RUNNING");
    assert_eq!(status["rayJobInfo"], json!({ "startTime": ago(50) }));
    assert_eq!(moved_to(&plan).0, "");
    assert_eq!(plan.requeue_after_ms, Some(3_000));
}

#[test]
fn a_pass_that_learns_nothing_new_writes_no_status() {
    let job = rayjob().http().running().status(json!({ "message": "Job is RUNNING", "rayJobInfo": { "startTime": ago(50) },
        "rayClusterStatus": { "desiredWorkerReplicas": 1, "state": "ready" } }));
    let plan = reconciled(ray_says(job.with([cluster().ready().into(), head_svc().into()]), "RUNNING"));
    assert_eq!(plan.ops, []);
}

#[test]
fn running_renders_the_rayjobs_own_head_service_until_it_exists() {
    let plan = reconciled(ray_says(rayjob().http().running().with([cluster().ready().into()]), "RUNNING"));
    assert_eq!(plan.ops[0], Op::Render(wasmray_guest_sdk::Child::HeadService));
    assert_eq!(event_reasons(&plan), ["CreatedService"]);
    assert_eq!(events(&plan)[0].message, "Created the service ns/job-head-svc");
    let selected = reconciled(ray_says(rayjob().http().selecting().running().with([cluster().ready().into()]), "RUNNING"));
    assert_eq!(event_reasons(&selected), Vec::<String>::new(), "not with clusterSelector");
}

#[test]
fn a_retry_deletes_the_head_service_with_the_cluster() {
    let retrying = rayjob().http().backoff_limit(1).running().status(json!({ "jobDeploymentStatus": "Retrying" }));
    let plan = reconciled(retrying.with([head_svc().into()]));
    assert_eq!(deleted(&plan), ["Service/job-head-svc"]);
    assert_eq!(changed(&plan), json!({}), "the status waits until it is gone");
}

#[test]
fn a_terminal_ray_status_completes_the_rayjob_and_counts_the_success() {
    let plan = reconciled(ray_says(rayjob().http().running().with([cluster().ready().into()]), "SUCCEEDED"));
    let status = changed(&plan);
    assert_eq!(status["jobDeploymentStatus"], "Complete");
    assert_eq!(status["jobStatus"], "SUCCEEDED");
    assert_eq!(status["succeeded"], 1);
    assert_eq!(status["endTime"], ago(0));
    assert_eq!(plan.requeue_after_ms, None, "nothing to clean up, nothing to come back for");

    let stopped = reconciled(ray_says(rayjob().http().running().with([cluster().ready().into()]), "STOPPED"));
    assert_eq!(moved_to(&stopped).0, "Complete");
    assert!(changed(&stopped)["succeeded"].is_null(), "a stopped job is no success");
}

#[test]
fn a_failed_ray_job_fails_the_rayjob_as_app_failed() {
    let plan = reconciled(ray_says(rayjob().http().running().with([cluster().ready().into()]), "FAILED"));
    assert_eq!(moved_to(&plan), (s("Failed"), s("AppFailed")));
    assert_eq!(changed(&plan)["failed"], 1);
}

#[test]
fn a_failed_ray_job_is_told_as_a_warning_ending_with_the_end_of_its_logs() {
    let message = "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\nloading\nKeyError: 'lr'\n";
    let snapshot = ray_says_failed(rayjob().http().running().with([cluster().ready().into(), head_svc().into()]), message, "loading\nKeyError: 'lr'\n");
    let plan = reconciled(snapshot);
    let told = events(&plan);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!((told[0].type_, told[0].reason.as_str()), (EventType::Warning, "AppFailed"));
    assert_eq!(
        told[0].message,
        "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n\
         The end of the job's logs:\nloading\nKeyError: 'lr'"
    );
    assert!(matches!(plan.ops.last(), Some(Op::Status(_))), "the Event comes before the status");
}

#[test]
fn a_failure_event_keeps_the_last_1000_characters_of_the_logs_within_the_1024_bytes_of_a_note() {
    let message = format!("{}\nsecond line", "m".repeat(2_000));
    let logs = format!("{}\nthe last line: é🚀", "ü".repeat(5_000));
    let plan = reconciled(ray_says_failed(rayjob().http().running().with([cluster().ready().into(), head_svc().into()]), &message, &logs));
    let note = &events(&plan)[0].message;
    assert!(note.len() <= 1024, "{} bytes", note.len());
    assert!(note.starts_with("mmm") && !note.contains("second line"), "the message's first line, cut: {note}");
    assert!(note.contains("m…\nThe end of the job's logs:\n"), "{note}");
    assert!(note.ends_with("\nthe last line: é🚀"), "{note}");
    let tail = note.split_once("The end of the job's logs:\n").unwrap().1;
    assert!(tail.chars().count() <= 1_000 && tail.chars().count() > 300, "{} characters", tail.chars().count());

    let long_logs = "x".repeat(3_000);
    let plan = reconciled(ray_says_failed(rayjob().http().running().with([cluster().ready().into(), head_svc().into()]), "failed", &long_logs));
    let note = events(&plan)[0].message.clone();
    assert_eq!(note.len(), 1024, "as much of the logs as the note holds: {note}");
    assert!(note.starts_with("failed\nThe end of the job's logs:\nxxx"), "{note}");
}

#[test]
fn every_failed_attempt_is_told_once_even_when_retried_and_without_logs_when_ray_did_not_fail() {
    let retried = reconciled(ray_says_failed(rayjob().http().backoff_limit(1).running().with([cluster().ready().into(), head_svc().into()]), "boom", "boom"));
    assert_eq!(moved_to(&retried).0, "Retrying");
    assert_eq!(event_reasons(&retried), ["AppFailed"]);
    let deadline = reconciled(rayjob().http().running().active_deadline(60).with([cluster().ready().into(), head_svc().into()]));
    let told = events(&deadline);
    assert_eq!((told.len(), told[0].reason.as_str()), (1, "DeadlineExceeded"));
    assert!(told[0].message.starts_with("The RayJob has passed the activeDeadlineSeconds.") && !told[0].message.contains("logs"), "{}", told[0].message);
    let failed = rayjob().http().finished("Failed", "FAILED", 5);
    assert_eq!(events(&reconciled(failed.with([cluster().ready().into(), head_svc().into()]))), [], "a finished RayJob is not told again");
}

#[test]
fn http_mode_asks_the_host_to_submit_when_ray_knows_no_such_job() {
    let job = rayjob().http().running().with_spec("metadata", json!({ "owner": "me" }))
        .with_spec("entrypointResources", json!("{\"TPU\": 1}"));
    let plan = reconciled(ray_knows_no_such_job(job.with([cluster().ready().into()])));
    assert_eq!(applied(&plan), [format!("RayJobSubmission/{JOB_ID}")]);
    let request = &applies(&plan)[0];
    assert_eq!(request["apiVersion"], "dashboard.wasmray.dev/v1");
    assert_eq!(request["spec"]["dashboardURL"], DASHBOARD);
    assert_eq!(request["spec"]["rayClusterName"], CLUSTER);
    assert_eq!(
        request["spec"]["body"],
        json!({ "entrypoint": "python app.py", "submission_id": JOB_ID, "metadata": { "owner": "me" }, "entrypoint_resources": { "TPU": 1 } })
    );
}

#[test]
fn http_mode_says_why_a_submission_failed_and_asks_again() {
    let snapshot = ray_knows_no_such_job(rayjob().http().running().with([cluster().ready().into()]));
    let snapshot = with_fact(snapshot, "wasmray.dev/job-submission", json!({ "jobId": JOB_ID, "submitted": false, "message": "502 Bad Gateway" }));
    let plan = reconciled(snapshot);
    assert_eq!(applied(&plan), [format!("RayJobSubmission/{JOB_ID}")]);
    assert_eq!(changed(&plan)["message"], "Submitting the Ray job failed: 502 Bad Gateway");
}

#[test]
fn facts_about_an_earlier_attempts_job_are_ignored() {
    let snapshot = rayjob().http().running().with([cluster().ready().into()]);
    let snapshot = with_fact(snapshot, "ray.io/job-info", json!({ "jobId": "job-old00", "status": "FAILED" }));
    assert_eq!(moved_to(&reconciled(snapshot)).0, "");
}

#[test]
fn a_terminal_ray_status_ends_the_rayjob_even_while_the_submitter_still_follows_the_logs() {
    // kuberay#3553: the submitter's log tail is no job result; Ray's status is.
    let children = || vec![cluster().ready().into(), head().running_ready().into(), submitter().into()];
    let plan = reconciled(ray_says(rayjob().running().with(children()), "SUCCEEDED"));
    assert_eq!((moved_to(&plan).0, changed(&plan)["succeeded"].clone()), (s("Complete"), json!(1)));
    let sidecar = vec![cluster().ready().into(), head().running_ready().into()];
    assert_eq!(moved_to(&reconciled(ray_says(rayjob().sidecar().running().with(sidecar), "FAILED"))), (s("Failed"), s("AppFailed")));
}

#[test]
fn a_failed_submitter_fails_the_rayjob_as_submission_failed() {
    let plan = reconciled(rayjob().running().with([cluster().ready().into(), submitter().finished("Failed", 1).into()]));
    assert_eq!(moved_to(&plan), (s("Failed"), s("SubmissionFailed")));
    assert_eq!(changed(&plan)["message"], "Job submission has failed. Reason: BackoffLimitExceeded. Message: Job has reached the specified backoff limit");
    let ray_failed_first = rayjob().running().status(json!({ "jobStatus": "FAILED" }));
    let plan = reconciled(ray_failed_first.with([cluster().ready().into(), submitter().finished("Failed", 1).into()]));
    assert_eq!(moved_to(&plan), (s("Failed"), s("AppFailed")));
}

#[test]
fn a_submitter_that_finished_30s_ago_without_a_terminal_ray_status_fails_the_rayjob() {
    let plan = reconciled(ray_says(rayjob().running().with([cluster().ready().into(), submitter().finished("Complete", 31).into()]), "RUNNING"));
    assert_eq!(moved_to(&plan), (s("Failed"), s("JobDeploymentStatusTransitionGracePeriodExceeded")));
    assert_eq!(changed(&plan)["jobStatus"], "FAILED");
    let recent = reconciled(ray_says(rayjob().running().with([cluster().ready().into(), submitter().finished("Complete", 29).into()]), "RUNNING"));
    assert_eq!(recent.requeue_after_ms, Some(1_000), "back when the 30 s are up");
}

#[test]
fn a_submitter_that_completed_for_a_job_ray_never_heard_of_is_app_failed() {
    let plan = reconciled(ray_knows_no_such_job(rayjob().running().with([cluster().ready().into(), submitter().finished("Complete", 1).into()])));
    assert_eq!(moved_to(&plan), (s("Failed"), s("AppFailed")));
    assert_eq!(changed(&plan)["message"], "Submitter completed but Ray job not found in RayCluster.");
}

#[test]
fn a_missing_submitter_job_in_running_is_created_again() {
    let plan = reconciled(rayjob().running().with([cluster().ready().into(), head().running_ready().into()]));
    assert_eq!(applied(&plan), ["Job/job"]);
}

#[test]
fn sidecar_mode_without_a_head_pod_fails() {
    let plan = reconciled(rayjob().sidecar().running().with([cluster().ready().into()]));
    assert_eq!(moved_to(&plan), (s("Failed"), s("AppFailed")));
    assert_eq!(changed(&plan)["message"], "Ray head pod not found.");
}

// Timers.

#[test]
fn the_active_deadline_fails_the_rayjob_stops_the_ray_job_and_is_never_retried() {
    let job = rayjob().http().running().active_deadline(60).backoff_limit(3);
    let plan = reconciled(job.with([cluster().ready().into()]));
    assert_eq!(moved_to(&plan), (s("Failed"), s("DeadlineExceeded")));
    assert_eq!(deleted(&plan), [format!("RayJobSubmission/{JOB_ID}")]);
    assert_eq!(changed(&plan)["failed"], 1);
    let early = reconciled(rayjob().http().running().active_deadline(61).with([cluster().ready().into()]));
    assert_eq!(early.requeue_after_ms, Some(1_000), "the deadline is sooner than the poll");
}

#[test]
fn the_active_deadline_counts_from_status_start_time_in_initializing_too() {
    let plan = reconciled(rayjob().initializing().active_deadline(10).with([cluster().into()]));
    assert_eq!(moved_to(&plan), (s("Failed"), s("DeadlineExceeded")));
    assert_eq!(deleted(&plan), Vec::<String>::new(), "nothing was submitted");
}

#[test]
fn the_pre_running_deadline_fails_a_job_that_never_started_running() {
    let pending = rayjob().http().running().pre_running_deadline(30).status(json!({ "jobStatus": "PENDING" }));
    let plan = reconciled(ray_says(pending.with([cluster().ready().into()]), "PENDING"));
    assert_eq!(moved_to(&plan), (s("Failed"), s("PreRunningDeadlineExceeded")));
    let started = rayjob().http().running().pre_running_deadline(30);
    assert_eq!(moved_to(&reconciled(ray_says(started.with([cluster().ready().into()]), "RUNNING"))).0, "");
    let waiting = rayjob().initializing().pre_running_deadline(5).backoff_limit(2);
    assert_eq!(moved_to(&reconciled(waiting.with([cluster().into()]))), (s("Failed"), s("PreRunningDeadlineExceeded")));
}

#[test]
fn the_grace_period_ends_a_rayjob_whose_ray_job_ended_long_ago() {
    let job = rayjob().running().status(json!({ "jobStatus": "SUCCEEDED", "rayJobInfo": { "endTime": ago(301) } }));
    let plan = reconciled(job.with([cluster().ready().into(), submitter().into()]));
    assert_eq!(moved_to(&plan), (s("Complete"), s("JobDeploymentStatusTransitionGracePeriodExceeded")));
    let short = rayjob().running().status(json!({ "jobStatus": "FAILED", "rayJobInfo": { "endTime": ago(11) } }));
    let snapshot = settings(short.with([cluster().ready().into(), submitter().into()]), json!({ "rayJobTransitionGracePeriodSeconds": 10 }));
    assert_eq!(moved_to(&reconciled(snapshot)).0, "Failed");
}

#[test]
fn a_dashboard_that_stays_unreachable_fails_the_rayjob_after_the_status_check_timeout() {
    let down = |since_s: i64| json!({ "reachable": false, "since": NOW_MS - since_s * 1000, "message": "connection refused" });
    let snapshot = with_fact(rayjob().http().running().with([cluster().ready().into()]), "wasmray.dev/dashboard", down(300));
    let plan = reconciled(snapshot);
    assert_eq!(moved_to(&plan), (s("Failed"), s("JobStatusCheckTimeoutExceeded")));
    assert!(changed(&plan)["message"].as_str().unwrap().ends_with("connection refused"));
    let snapshot = with_fact(rayjob().http().running().with([cluster().ready().into()]), "wasmray.dev/dashboard", down(10));
    assert_eq!(moved_to(&reconciled(snapshot)).0, "");

    // RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS reaches the reconciler in the settings fact.
    let short = json!({ "rayJobStatusCheckTimeoutSeconds": 5 });
    let snapshot = with_fact(rayjob().http().running().with([cluster().ready().into()]), "wasmray.dev/dashboard", down(5));
    let plan = reconciled(settings(snapshot, short.clone()));
    assert_eq!(moved_to(&plan), (s("Failed"), s("JobStatusCheckTimeoutExceeded")));
    assert!(changed(&plan)["message"].as_str().unwrap().starts_with("The Ray job status could not be checked for 5s since"));
    let snapshot = with_fact(rayjob().http().running().with([cluster().ready().into()]), "wasmray.dev/dashboard", down(3));
    let plan = reconciled(settings(snapshot, short));
    assert_eq!((moved_to(&plan).0, plan.requeue_after_ms), (s(""), Some(2_000)), "back when the 5 s are up");
}

// Retrying.

#[test]
fn a_failure_within_the_backoff_limit_retries_on_a_new_cluster_and_counts_both_failures() {
    let job = rayjob().http().backoff_limit(1).running();
    let plan = reconciled(ray_says(job.with([cluster().ready().into()]), "FAILED"));
    assert_eq!((moved_to(&plan).0, changed(&plan)["failed"].clone()), (s("Retrying"), json!(1)));
    assert!(changed(&plan)["endTime"].is_null(), "a retry is not the end");

    let retrying = after(rayjob().http().backoff_limit(1).running(), &plan);
    let teardown = reconciled(retrying.with([cluster().ready().into()]));
    assert_eq!(deleted(&teardown), [format!("RayCluster/{CLUSTER}")]);
    assert_eq!(event_reasons(&teardown), ["DeletedRayCluster"]);
    assert_eq!(changed(&teardown), json!({}), "the status waits until the cluster is gone");

    let gone = reconciled(after(rayjob().http().backoff_limit(1).running(), &plan).with([]));
    let status = changed(&gone);
    assert_eq!(status["jobDeploymentStatus"], "");
    for key in ["rayClusterName", "jobId", "dashboardURL", "rayJobInfo", "rayClusterStatus"] {
        assert!(status[key].is_null() && status.get(key).is_some(), "{key} is cleared");
    }

    let starting_over = || after(after(rayjob().http().backoff_limit(1).running(), &plan), &gone);
    let new_names = reconciled(starting_over().with([]));
    assert_eq!(moved_to(&new_names).0, "Initializing");
    assert_ne!(changed(&new_names)["rayClusterName"], json!(CLUSTER), "a new cluster");
    assert_ne!(changed(&new_names)["jobId"], json!(JOB_ID), "a new submission id");
    let last = after(starting_over(), &new_names)
        .status(json!({ "jobDeploymentStatus": "Running", "jobId": JOB_ID, "rayClusterName": CLUSTER, "dashboardURL": DASHBOARD }));
    let plan = reconciled(ray_says(last.with([cluster().ready().into()]), "FAILED"));
    assert_eq!((moved_to(&plan).0, changed(&plan)["failed"].clone()), (s("Failed"), json!(2)));
}

// Suspend and resume (Kueue).

#[test]
fn a_rayjob_created_suspended_never_gets_a_cluster() {
    let job = rayjob().suspended();
    let first = reconciled(job.with([]));
    let initializing = after(rayjob().suspended().with_finalizer(), &first);
    let second = reconciled(initializing.with([]));
    assert_eq!((applied(&second), moved_to(&second).0), (vec![], s("Suspending")));
    let suspending = after(after(rayjob().suspended().with_finalizer(), &first), &second);
    let third = reconciled(suspending.with([]));
    assert_eq!((deleted(&third), moved_to(&third).0), (vec![], s("Suspended")));
}

#[test]
fn suspending_a_running_rayjob_deletes_cluster_and_submitter_and_completes_even_if_resumed_meanwhile() {
    let job = || rayjob().suspended().running();
    let plan = reconciled(job().with([cluster().ready().into(), submitter().into()]));
    assert_eq!(moved_to(&plan).0, "Suspending");
    let suspending = || rayjob().suspended().unsuspended().running().status(json!({ "jobDeploymentStatus": "Suspending" }));
    let plan = reconciled(suspending().with([cluster().ready().into(), submitter().into()]));
    assert_eq!(deleted(&plan), [format!("RayCluster/{CLUSTER}"), s("Job/job")]);
    assert_eq!(event_reasons(&plan), ["DeletedRayCluster", "DeletedRayJobSubmitter"]);
    let plan = reconciled(suspending().with([cluster().terminating().into()]));
    assert_eq!((deleted(&plan), changed(&plan)), (vec![], json!({})), "waits for the cluster to be gone");
    let plan = reconciled(suspending().with([]));
    assert_eq!(moved_to(&plan).0, "Suspended");
    assert_eq!(changed(&plan)["jobStatus"], "");
}

#[test]
fn a_suspended_rayjob_waits_then_starts_over_when_resumed() {
    let suspended = rayjob().suspended().at("Suspended", "", 10);
    assert_eq!(reconciled(suspended.with([])).ops, []);
    let resumed = rayjob().suspended().unsuspended().at("Suspended", "", 10);
    assert_eq!(moved_to(&reconciled(resumed.with([]))).0, "");
    assert_eq!(changed(&reconciled(rayjob().suspended().unsuspended().at("Suspended", "", 10).with([])))["jobDeploymentStatus"], "");
}

// Cleanup after the job.

#[test]
fn shutdown_after_job_finishes_deletes_the_cluster_once_the_ttl_has_passed() {
    let waiting = reconciled(rayjob().shutdown_after(60).finished("Complete", "SUCCEEDED", 20).with([cluster().ready().into()]));
    assert_eq!((deleted(&waiting), waiting.requeue_after_ms), (vec![], Some(40_000)));
    let due = reconciled(rayjob().shutdown_after(60).finished("Complete", "SUCCEEDED", 60).with([cluster().ready().into(), submitter().into()]));
    assert_eq!(deleted(&due), [format!("RayCluster/{CLUSTER}")], "the submitter Job stays, with its logs");
    assert_eq!(event_reasons(&due), ["DeletedRayCluster"]);
    let done = reconciled(rayjob().shutdown_after(60).finished("Complete", "SUCCEEDED", 90).with([]));
    assert_eq!((done.ops.clone(), done.requeue_after_ms), (vec![], None));
}

#[test]
fn the_pass_that_finishes_a_rayjob_with_a_cleanup_comes_back_at_once_to_schedule_it() {
    // Nothing else wakes it: the host does not reconcile on its own status writes.
    let plan = reconciled(ray_says(rayjob().http().shutdown_after(60).running().with([cluster().ready().into(), head_svc().into()]), "SUCCEEDED"));
    assert_eq!((moved_to(&plan).0, plan.requeue_after_ms), (s("Complete"), Some(1)));
    let rules = json!([{ "policy": "DeleteWorkers", "condition": { "jobStatus": "FAILED", "ttlSeconds": 0 } }]);
    let gated = rayjob().http().deletion_rules(rules.clone()).running().with([cluster().ready().into(), head_svc().into()]);
    let plan = reconciled(settings(ray_says(gated, "FAILED"), json!({ "rayJobDeletionPolicy": true })));
    assert_eq!((moved_to(&plan).0, plan.requeue_after_ms), (s("Failed"), Some(1)));
    let ungated = rayjob().http().deletion_rules(rules).running().with([cluster().ready().into(), head_svc().into()]);
    assert_eq!(reconciled(ray_says(ungated, "FAILED")).requeue_after_ms, None, "without the gate the rules do nothing");
}

#[test]
fn delete_rayjob_after_job_finishes_deletes_the_rayjob_itself() {
    let snapshot = rayjob().shutdown_after(0).finished("Failed", "FAILED", 1).with([cluster().ready().into()]);
    let plan = reconciled(settings(snapshot, json!({ "deleteRayJobAfterJobFinishes": true })));
    assert_eq!(deleted(&plan), ["RayJob/job"]);
}

#[test]
fn deletion_rules_carry_out_the_most_impactful_overdue_rule_first() {
    let rules = json!([
        { "policy": "DeleteWorkers", "condition": { "jobStatus": "SUCCEEDED", "ttlSeconds": 0 } },
        { "policy": "DeleteCluster", "condition": { "jobStatus": "SUCCEEDED", "ttlSeconds": 30 } },
        { "policy": "DeleteSelf", "condition": { "jobStatus": "SUCCEEDED", "ttlSeconds": 600 } },
        { "policy": "DeleteCluster", "condition": { "jobStatus": "FAILED", "ttlSeconds": 0 } },
    ]);
    let gate = json!({ "rayJobDeletionPolicy": true });
    let at = |ended: i64, children: Vec<Value>| {
        let job = rayjob().deletion_rules(rules.clone()).finished("Complete", "SUCCEEDED", ended);
        reconciled(settings(job.with(children), gate.clone()))
    };
    let early = at(10, vec![cluster().ready().into()]);
    assert_eq!(applied(&early), [format!("RayCluster/{CLUSTER}")]);
    let edit = &applies(&early)[0];
    assert_eq!(edit["spec"]["workerGroupSpecs"][0]["suspend"], true);
    assert_eq!(edit["metadata"]["labels"]["ray.io/originated-from-cr-name"], "job", "the apply keeps what the create set");
    assert_eq!(event_reasons(&early), ["UpdatedRayCluster"]);
    assert_eq!(early.requeue_after_ms, Some(20_000));
    let late = at(40, vec![cluster().ready().into()]);
    assert_eq!((deleted(&late), applied(&late)), (vec![format!("RayCluster/{CLUSTER}")], vec![]), "workers and cluster overdue: the cluster goes");
    assert_eq!(deleted(&at(700, vec![])), ["RayJob/job"]);
}

#[test]
fn the_legacy_deletion_policy_picks_on_success_or_on_failure() {
    let strategy = json!({ "onSuccess": { "policy": "DeleteNone" }, "onFailure": { "policy": "DeleteCluster" } });
    let gate = json!({ "rayJobDeletionPolicy": true });
    let job = |d: &str, j: &str| rayjob().with_spec("deletionStrategy", strategy.clone()).finished(d, j, 1);
    let ok = reconciled(settings(job("Complete", "SUCCEEDED").with([cluster().ready().into()]), gate.clone()));
    assert_eq!(deleted(&ok), Vec::<String>::new());
    let failed = reconciled(settings(job("Failed", "FAILED").with([cluster().ready().into()]), gate));
    assert_eq!(deleted(&failed), [format!("RayCluster/{CLUSTER}")]);
}

// clusterSelector.

#[test]
fn cluster_selector_uses_the_existing_cluster_and_never_creates_or_deletes_it() {
    let plan = reconciled(rayjob().http().selecting().with([]));
    assert_eq!(changed(&plan)["rayClusterName"], CLUSTER);
    let missing = reconciled(rayjob().http().selecting().initializing().with([]));
    assert_eq!((applied(&missing), event_reasons(&missing)), (vec![], vec![s("RayClusterNotFound")]));
    assert_eq!(events(&missing)[0].type_, EventType::Warning);
    let plan = reconciled(rayjob().http().selecting().initializing().with([cluster().ready().into()]));
    assert_eq!(moved_to(&plan).0, "Running");
    let both = rayjob().http().with_spec("clusterSelector", json!({ "ray.io/cluster": CLUSTER })).initializing();
    assert_eq!(applied(&reconciled(both.with([]))), Vec::<String>::new(), "with both, the selector wins");
    let done = reconciled(rayjob().selecting().shutdown_after(0).finished("Complete", "SUCCEEDED", 100).with([cluster().ready().into()]));
    assert_eq!(done.ops, []);
}

// Validation, managedBy, deletion.

#[test]
fn invalid_rayjobs_fail_validation_with_kuberays_event_reasons() {
    let cases = [
        (rayjob().named(&"j".repeat(48)), "InvalidRayJobMetadata"),
        (rayjob().with_spec("suspend", json!(true)), "InvalidRayJobSpec"),
        (rayjob().selecting().with_spec("clusterSelector", json!({ "ray.io/cluster": "" })), "InvalidRayJobSpec"),
        (rayjob().selecting().sidecar(), "InvalidRayJobSpec"),
        (rayjob().selecting().suspended(), "InvalidRayJobSpec"),
        (rayjob().sidecar().with_spec("submitterPodTemplate", json!({ "spec": { "containers": [] } })), "InvalidRayJobSpec"),
        (rayjob().active_deadline(0), "InvalidRayJobSpec"),
        (rayjob().sidecar().raw_edit(|j| j["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["restartPolicy"] = json!("Always")), "InvalidRayJobSpec"),
        (rayjob().backoff_limit(-1), "InvalidRayJobSpec"),
        (rayjob().sidecar().with_spec("submitterConfig", json!({ "backoffLimit": 1 })), "InvalidRayJobSpec"),
        (rayjob().interactive().backoff_limit(1), "InvalidRayJobSpec"),
        (rayjob().with_spec("runtimeEnvYAML", json!("a: [b")), "InvalidRayJobSpec"),
        (rayjob().with_spec("ttlSecondsAfterFinished", json!(10)), "InvalidRayJobSpec"),
        (rayjob().deletion_rules(json!([{ "policy": "DeleteSelf", "condition": { "jobStatus": "FAILED" } }])), "InvalidRayJobSpec"),
        (rayjob().at("Waiting", "", 1), "InvalidRayJobStatus"),
    ];
    for (job, reason) in cases {
        let plan = reconciled(job.with([]));
        assert_eq!(event_reasons(&plan), [reason]);
        assert_eq!(moved_to(&plan), (s("ValidationFailed"), s("ValidationFailed")));
        assert_eq!(plan.requeue_after_ms, None);
    }
}

#[test]
fn deletion_rule_ttls_must_grow_with_impact() {
    let rules = json!([
        { "policy": "DeleteCluster", "condition": { "jobStatus": "FAILED", "ttlSeconds": 60 } },
        { "policy": "DeleteWorkers", "condition": { "jobStatus": "FAILED", "ttlSeconds": 120 } },
    ]);
    let plan = reconciled(settings(rayjob().deletion_rules(rules).with([]), json!({ "rayJobDeletionPolicy": true })));
    assert_eq!(moved_to(&plan).0, "ValidationFailed");
}

#[test]
fn a_rayjob_managed_by_another_controller_is_left_alone() {
    assert_eq!(reconciled(rayjob().managed_by("kueue.x-k8s.io/multikueue").with([])).ops, []);
}

#[test]
fn deleting_a_running_rayjob_stops_its_ray_job_and_releases_the_finalizer() {
    let plan = reconciled(rayjob().http().running().deleted().with([cluster().ready().into()]));
    assert_eq!(deleted(&plan), [format!("RayJobSubmission/{JOB_ID}")]);
    assert_eq!(applies(&plan)[0]["metadata"]["finalizers"], json!([]));
    assert!(!plan.ops.iter().any(|op| matches!(op, Op::Status(_))));
    let finished = reconciled(rayjob().finished("Complete", "SUCCEEDED", 5).deleted().with([]));
    assert_eq!((deleted(&finished), applied(&finished)), (vec![], vec![s("RayJob/job")]));
}
