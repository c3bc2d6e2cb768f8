//! KubeRay v1.5.2's RayJob state machine: the RayJob is classified into one [`State`], and each state's arm makes its one move.

use serde_json::json;
use wasmray_api::{DeletionPolicyType, JobDeploymentStatus as D, JobStatus};
use wasmray_guest_sdk::{Child, EventType, ObjectRef};

use crate::children::{head_service_name, terminating};
use wasmray_guest_sdk::k8s::{millis, rfc3339};
use crate::suffixes::Suffixes;
use crate::validate::Invalid;
use crate::vocab::{
    EVENT_NOTE_MAX_BYTES, LOGS_IN_EVENT_MAX_CHARS, MESSAGE_IN_EVENT_MAX_BYTES, SUBMITTER_FINISHED_TIMEOUT_S, events, reasons,
};
use crate::{Ctx, Mode, Out, cluster, submitter, timers};

/// Where the RayJob is, as far as this pass is concerned.
#[derive(Debug, PartialEq)]
pub enum State {
    /// `deletionTimestamp` is set: stop the Ray job if it runs, release the finalizer.
    Deleting,
    /// The RayJob breaks a validation rule.
    Invalid(Invalid),
    New,
    Initializing,
    Waiting,
    Running,
    /// Suspending or Retrying: delete the cluster and the submitter, then move on. Atomic: a
    /// suspend that started finishes whatever `spec.suspend` says meanwhile.
    TearingDown { suspend: bool },
    Suspended,
    /// Complete or Failed: the cleanup rules.
    Finished,
    /// ValidationFailed with a spec that is valid now: KubeRay leaves it there, and so do we.
    Stuck,
}

impl State {
    pub fn of(ctx: &Ctx) -> Self {
        if ctx.job.metadata.deletion_timestamp.is_some() {
            return State::Deleting;
        }
        if let Err(invalid) = crate::validate::check(ctx) {
            return State::Invalid(invalid);
        }
        match ctx.job.status.as_ref().and_then(|s| s.job_deployment_status).unwrap_or_default() {
            D::New => State::New,
            D::Initializing => State::Initializing,
            D::Waiting => State::Waiting,
            D::Running => State::Running,
            D::Suspending => State::TearingDown { suspend: true },
            D::Retrying => State::TearingDown { suspend: false },
            D::Suspended => State::Suspended,
            D::Complete | D::Failed => State::Finished,
            D::ValidationFailed => State::Stuck,
        }
    }
}

/// Plans the pass for the RayJob's state.
pub fn run(ctx: &Ctx, out: &mut Out) {
    let bottom = match State::of(ctx) {
        State::Deleting => deleting(ctx, out),
        State::Invalid((reason, message)) => invalid(ctx, out, reason, message),
        State::New => new(ctx, out),
        State::Initializing => initializing(ctx, out),
        State::Waiting => waiting(ctx, out),
        State::Running => running(ctx, out),
        State::TearingDown { suspend } => tearing_down(ctx, out, suspend),
        State::Suspended => suspended(ctx, out),
        State::Finished => finished(ctx, out),
        State::Stuck => false,
    };
    if bottom {
        tell_the_failure(ctx, out);
        count_and_retry(ctx, out);
    }
    if !out.status.deployment().is_terminal() && out.status.deployment() != D::ValidationFailed {
        out.poll();
    }
    // The status write that ends the attempt wakes nothing (the host does not reconcile on its
    // own status writes), so the cleanup's first look, which schedules its TTLs, is asked for here.
    if out.status.deployment().is_terminal() && !out.status.old_deployment().is_terminal() && timers::has_cleanup(ctx) {
        out.wake_at(ctx.now_ms, ctx.now_ms);
    }
}

// Each arm returns whether KubeRay's pass would reach its end (counters, retry, status write).

fn deleting(ctx: &Ctx, out: &mut Out) -> bool {
    if !ctx.has_finalizer() {
        return false;
    }
    let running = !ctx.job_status().is_terminal();
    if let (true, Some(job_id), Some(_)) = (running, out.status.str("jobId"), out.status.str("dashboardURL")) {
        out.delete(submitter::stop_request(ctx, job_id));
    }
    out.apply(ctx.finalizer_patch(false));
    false
}

fn invalid(ctx: &Ctx, out: &mut Out, reason: &str, message: String) -> bool {
    let already = out.status.deployment() == D::ValidationFailed && out.status.str("message") == Some(message.as_str());
    if !already {
        out.event(EventType::Warning, reason, format!("{}/{}: {message}", ctx.namespace, ctx.name));
    }
    out.status.fail(D::ValidationFailed, reasons::VALIDATION_FAILED, message);
    false
}

fn new(ctx: &Ctx, out: &mut Out) -> bool {
    if !ctx.has_finalizer() {
        out.apply(ctx.finalizer_patch(true));
    }
    let mut suffixes = Suffixes::new(ctx.seed);
    // Recorded before anything is submitted, so every later submission uses this one id.
    if ctx.mode != Mode::Interactive && out.status.str("jobId").is_none() {
        let id = match ctx.job.spec.job_id.as_deref().filter(|j| !j.is_empty()) {
            Some(id) => id.to_owned(),
            None => format!("{}-{}", ctx.name, suffixes.next()),
        };
        out.status.set("jobId", id);
    }
    if out.status.str("rayClusterName").is_none() {
        let name = match ctx.selector() {
            Some(selected) => selected.to_owned(),
            None => format!("{}-{}", ctx.name, suffixes.next()),
        };
        out.status.set("rayClusterName", name);
    }
    if out.status.str("jobStatus").is_none() {
        out.status.set_job_status(JobStatus::New);
    }
    out.status.set_deployment(D::Initializing);
    out.status.set("startTime", rfc3339(ctx.now_ms));
    true
}

fn initializing(ctx: &Ctx, out: &mut Out) -> bool {
    if deadline_passed(ctx, out) {
        return true;
    }
    let Some(cluster_name) = out.status.str("rayClusterName").map(str::to_owned) else {
        // Only an edited status gets here; New draws the names again.
        out.status.set_deployment(D::New);
        return true;
    };
    let Some(live) = &ctx.children.cluster else {
        create_cluster(ctx, out, &cluster_name);
        return true;
    };
    if ctx.mode == Mode::Sidecar && let Some(failure) = sidecar_failure(ctx) {
        // kuberay#4945: a submitter that died before the cluster was ready fails the job.
        out.status.fail(D::Failed, reasons::SUBMISSION_FAILED, failure);
        return true;
    }
    out.status.set("rayClusterStatus", live["status"].clone());
    if !ctx.children.cluster_ready() {
        say_why_the_cluster_waits(ctx, out);
        return true;
    }
    out.status.clear("message");
    let url = match out.status.str("dashboardURL") {
        Some(url) => url.to_owned(),
        None => cluster::dashboard_url(live, ctx.namespace, &ctx.settings().cluster_domain),
    };
    out.status.set("dashboardURL", url.clone());
    match ctx.mode {
        Mode::Interactive => out.status.set_deployment(D::Waiting),
        Mode::K8sJob if ctx.children.submitter.is_none() => {
            // kuberay#4760: `ready` is sticky; the head must be Ready now, or the submitter's
            // retries burn on a dashboard that does not answer.
            if ctx.children.head_ready_now() {
                create_submitter(ctx, out, live, &url);
                out.status.set_deployment(D::Running);
            } else {
                let message = format!("Waiting for the head Pod of RayCluster {cluster_name} to be Ready before submitting");
                out.status.set("message", message);
            }
        }
        Mode::K8sJob | Mode::Http | Mode::Sidecar => out.status.set_deployment(D::Running),
    }
    true
}

fn waiting(ctx: &Ctx, out: &mut Out) -> bool {
    if let Some(deadline) = timers::pre_running_deadline_ms(ctx) {
        if ctx.now_ms >= deadline {
            pre_running_exceeded(ctx, out);
            return true;
        }
        out.wake_at(ctx.now_ms, deadline);
    }
    match ctx.job.spec.job_id.as_deref().filter(|j| !j.is_empty()) {
        Some(id) => {
            out.status.set("jobId", id);
            out.status.set_deployment(D::Running);
            out.status.clear("message");
        }
        // The cluster was ready once; a worker that cannot come back is still worth saying.
        None => say_why_the_cluster_waits(ctx, out),
    }
    true
}

fn running(ctx: &Ctx, out: &mut Out) -> bool {
    if deadline_passed(ctx, out) {
        return true;
    }
    if grace_period_passed(ctx, out) || status_check_timed_out(ctx, out) {
        return true;
    }
    let Some(live) = &ctx.children.cluster else {
        // KubeRay gets or creates the cluster in Running too; a selected one must exist.
        let name = out.status.str("rayClusterName").unwrap_or_default().to_owned();
        create_cluster(ctx, out, &name);
        return true;
    };
    out.status.set("rayClusterStatus", live["status"].clone());
    if ctx.selector().is_none() && ctx.children.head_service.is_none() {
        out.render(Child::HeadService);
        let message = format!("Created the service {}/{}", ctx.namespace, head_service_name(ctx.name));
        out.event(EventType::Normal, events::CREATED_SERVICE, message);
    }
    let url = out.status.str("dashboardURL").unwrap_or_default().to_owned();
    let finished = match ctx.mode {
        Mode::K8sJob => match ctx.children.submitter_finished() {
            None if ctx.children.submitter.is_none() && ctx.children.head_ready_now() => {
                // The create of the Initializing pass did not land (or the Job was deleted).
                create_submitter(ctx, out, live, &url);
                return true;
            }
            finished => finished,
        },
        Mode::Sidecar if ctx.children.head.is_none() => {
            out.status.fail(D::Failed, reasons::APP_FAILED, "Ray head pod not found.".into());
            return true;
        }
        Mode::Sidecar => ctx.children.sidecar_finished(),
        Mode::Http | Mode::Interactive => None,
    };
    if let Some(failure) = finished.as_ref().and_then(|f| f.failure.clone()) {
        let reason = if ctx.job_status() == JobStatus::Failed { reasons::APP_FAILED } else { reasons::SUBMISSION_FAILED };
        out.status.fail(D::Failed, reason, failure);
        return true;
    }
    if let Some(f) = &finished {
        let limit = f.at_ms + SUBMITTER_FINISHED_TIMEOUT_S * 1000;
        if !ctx.job_status().is_terminal() && ctx.now_ms >= limit {
            out.status.set_job_status(JobStatus::Failed);
            let message = format!(
                "The RayJob submitter finished at {} but the ray job did not reach terminal state within {SUBMITTER_FINISHED_TIMEOUT_S}s",
                rfc3339(f.at_ms)
            );
            out.status.fail(D::Failed, reasons::GRACE_PERIOD_EXCEEDED, message);
            return true;
        }
        out.wake_at(ctx.now_ms, limit);
    }
    let Some(info) = &ctx.facts.job_info else {
        // No answer from the dashboard yet: the host's poller will bring one.
        return true;
    };
    if info.not_found {
        match ctx.mode {
            Mode::Http => submit(ctx, out, &url),
            _ if finished.is_some() => out.status.fail(
                D::Failed,
                reasons::APP_FAILED,
                "Submitter completed but Ray job not found in RayCluster.".into(),
            ),
            _ => {}
        }
        return true;
    }
    let status = info.status.unwrap_or_default();
    out.status.set_job_status(status);
    out.status.set("message", info.message.clone().unwrap_or_default());
    let times = [("startTime", info.start_time), ("endTime", info.end_time)];
    for (key, ms) in times.into_iter().filter_map(|(k, t)| Some((k, t.filter(|t| *t > 0)?))) {
        let mut ray_job_info = out.status.get("rayJobInfo").cloned().unwrap_or_else(|| json!({}));
        ray_job_info[key] = json!(rfc3339(ms));
        out.status.set("rayJobInfo", ray_job_info);
    }
    // Ray's word ends the RayJob, whatever the submitter is doing: once submitted, the submitter
    // only follows the logs, and a log tail's exit is no job result (kuberay#3553, #2154).
    if status.is_terminal() {
        if status == JobStatus::Failed {
            out.status.set_deployment(D::Failed);
            out.status.set("reason", reasons::APP_FAILED);
        } else {
            out.status.set_deployment(D::Complete);
            out.status.clear("reason");
        }
    }
    true
}

fn tearing_down(ctx: &Ctx, out: &mut Out, suspend: bool) -> bool {
    let mut remaining = false;
    if ctx.selector().is_none() && let Some(live) = &ctx.children.cluster {
        remaining = true;
        if !terminating(live) {
            out.delete(ctx.child_ref(live));
            let message = format!("Deleted RayCluster {}/{}", ctx.namespace, live["metadata"]["name"].as_str().unwrap_or_default());
            out.event(EventType::Normal, events::DELETED_CLUSTER, message);
        }
    }
    if let Some(job) = &ctx.children.submitter {
        remaining = true;
        if !terminating(job) {
            out.delete(ctx.child_ref(job));
            let message = format!("Deleted submitter K8s Job {}/{}", ctx.namespace, ctx.name);
            out.event(EventType::Normal, events::DELETED_SUBMITTER, message);
        }
    }
    if let Some(service) = &ctx.children.head_service {
        // Its selector names this attempt's cluster; the next attempt renders its own.
        remaining = true;
        if !terminating(service) {
            out.delete(ctx.child_ref(service));
        }
    }
    if remaining {
        // Not before all are gone: a status that moved on would leak them.
        return false;
    }
    for key in ["rayClusterStatus", "rayClusterName", "dashboardURL", "jobId", "message", "reason", "rayJobInfo"] {
        out.status.clear(key);
    }
    out.status.set_job_status(JobStatus::New);
    out.status.set_deployment(if suspend { D::Suspended } else { D::New });
    true
}

fn suspended(ctx: &Ctx, out: &mut Out) -> bool {
    if ctx.job.spec.suspend == Some(true) {
        return false;
    }
    out.status.set_job_status(JobStatus::New);
    out.status.set_deployment(D::New);
    true
}

fn finished(ctx: &Ctx, out: &mut Out) -> bool {
    let cleanup = timers::cleanup(ctx);
    if let Some(next) = cleanup.next_ms {
        out.wake_at(ctx.now_ms, next);
    }
    let live = ctx.children.cluster.as_ref();
    let cluster_name = live.and_then(|c| c["metadata"]["name"].as_str()).unwrap_or_default();
    match (cleanup.due, live) {
        (Some(DeletionPolicyType::DeleteCluster), Some(live)) => {
            out.delete(ctx.child_ref(live));
            out.event(EventType::Normal, events::DELETED_CLUSTER, format!("Deleted RayCluster {}/{cluster_name}", ctx.namespace));
        }
        (Some(DeletionPolicyType::DeleteWorkers), Some(live)) => {
            out.apply(cluster::workers_suspended(live).to_string());
            let message = format!("Suspended the worker groups of RayCluster {}/{cluster_name}", ctx.namespace);
            out.event(EventType::Normal, events::UPDATED_CLUSTER, message);
        }
        (Some(DeletionPolicyType::DeleteSelf), _) => out.delete(ObjectRef {
            uid: ctx.uid.map(str::to_owned),
            ..ObjectRef::namespaced(wasmray_api::API_VERSION, "RayJob", ctx.namespace, ctx.name)
        }),
        _ => {}
    }
    false
}

// Steps the arms share.

/// `activeDeadlineSeconds` and v1.6's `preRunningDeadlineSeconds` (and `spec.suspend`, which
/// KubeRay checks first): whether one of them ended the pass.
fn deadline_passed(ctx: &Ctx, out: &mut Out) -> bool {
    if ctx.job.spec.suspend == Some(true) {
        out.status.set_deployment(D::Suspending);
        return true;
    }
    if let Some(deadline) = timers::active_deadline_ms(ctx) {
        if ctx.now_ms >= deadline {
            stop_if_submitted(ctx, out);
            let message = format!(
                "The RayJob has passed the activeDeadlineSeconds. StartTime: {}. ActiveDeadlineSeconds: {}",
                rfc3339(ctx.start_ms().unwrap_or_default()),
                ctx.job.spec.active_deadline_seconds.unwrap_or_default()
            );
            out.status.fail(D::Failed, reasons::DEADLINE_EXCEEDED, message);
            return true;
        }
        out.wake_at(ctx.now_ms, deadline);
    }
    if let Some(deadline) = timers::pre_running_deadline_ms(ctx) {
        if ctx.now_ms >= deadline {
            pre_running_exceeded(ctx, out);
            return true;
        }
        out.wake_at(ctx.now_ms, deadline);
    }
    false
}

fn pre_running_exceeded(ctx: &Ctx, out: &mut Out) {
    stop_if_submitted(ctx, out);
    let message = format!(
        "The RayJob did not start running within preRunningDeadlineSeconds ({}s from {})",
        timers::pre_running_deadline_s(ctx.raw).unwrap_or_default(),
        rfc3339(ctx.start_ms().unwrap_or_default())
    );
    out.status.fail(D::Failed, reasons::PRE_RUNNING_DEADLINE_EXCEEDED, message);
}

/// A Ray job that may still run on a cluster that stays is stopped when its RayJob gives up on it.
fn stop_if_submitted(ctx: &Ctx, out: &mut Out) {
    if ctx.job.status.as_ref().and_then(|s| s.job_deployment_status) == Some(D::Running)
        && !ctx.job_status().is_terminal()
        && let Some(id) = out.status.str("jobId")
    {
        out.delete(submitter::stop_request(ctx, id));
    }
}

/// Ray said terminal, yet the RayJob is still Running this long after Ray's `endTime` (a status
/// written by an operator that waited for its submitter; this one ends the RayJob at once).
fn grace_period_passed(ctx: &Ctx, out: &mut Out) -> bool {
    let status = ctx.job_status();
    if !status.is_terminal() {
        return false;
    }
    let end = ctx.job.status.as_ref().and_then(|s| s.ray_job_info.as_ref()).and_then(|i| i.end_time.as_ref());
    let Some(end) = end else { return false };
    let limit = millis(end) + ctx.settings().ray_job_transition_grace_period_seconds * 1000;
    if ctx.now_ms < limit {
        out.wake_at(ctx.now_ms, limit);
        return false;
    }
    let to = if status == JobStatus::Failed { D::Failed } else { D::Complete };
    let message = "JobDeploymentStatus does not transition to Complete or Failed within the grace period after JobStatus reaches a terminal state.";
    out.status.fail(to, reasons::GRACE_PERIOD_EXCEEDED, message.into());
    true
}

/// v1.7: the dashboard has not answered for the job this long.
fn status_check_timed_out(ctx: &Ctx, out: &mut Out) -> bool {
    let Some(dashboard) = ctx.facts.dashboard.as_ref().filter(|d| !d.reachable) else { return false };
    let Some(since) = dashboard.since else { return false };
    let timeout_s = ctx.settings().ray_job_status_check_timeout_seconds;
    let limit = since + timeout_s * 1000;
    if ctx.now_ms < limit {
        out.wake_at(ctx.now_ms, limit);
        return false;
    }
    let why = dashboard.message.as_deref().unwrap_or("no answer");
    let message = format!("The Ray job status could not be checked for {timeout_s}s since {}: {why}", rfc3339(since));
    out.status.fail(D::Failed, reasons::STATUS_CHECK_TIMEOUT_EXCEEDED, message);
    true
}

/// Says why the cluster is not ready, instead of sitting silently in Initializing: the cause its
/// conditions name goes into `status.message`, with a Warning Event when the message already
/// there is another (the status is the record, so a cause that lasts is told once); no cause
/// clears the message.
fn say_why_the_cluster_waits(ctx: &Ctx, out: &mut Out) {
    let Some(why) = ctx.children.cluster_waiting_on() else {
        out.status.clear("message");
        return;
    };
    if ctx.raw["status"]["message"].as_str() != Some(why.as_str()) {
        out.event(EventType::Warning, events::CLUSTER_NOT_READY, why.clone());
    }
    out.status.set("message", why);
}

fn create_cluster(ctx: &Ctx, out: &mut Out, name: &str) {
    if let Some(selected) = ctx.selector() {
        out.event(EventType::Warning, events::CLUSTER_NOT_FOUND, format!("RayCluster {}/{selected} set by the clusterSelector is not found", ctx.namespace));
        return;
    }
    let job_id = out.status.str("jobId").unwrap_or_default().to_owned();
    out.apply(cluster::desired(ctx, name, &job_id).to_string());
    out.event(EventType::Normal, events::CREATED_CLUSTER, format!("Created RayCluster {}/{name}", ctx.namespace));
}

fn create_submitter(ctx: &Ctx, out: &mut Out, live: &serde_json::Value, url: &str) {
    let job_id = out.status.str("jobId").unwrap_or_default().to_owned();
    out.apply(submitter::job(ctx, live, url, &job_id).to_string());
    out.event(EventType::Normal, events::CREATED_SUBMITTER, format!("Created Kubernetes Job {}/{}", ctx.namespace, ctx.name));
}

/// HTTPMode: asks the host to submit, unless its last try for this id failed — then the message says why and the next pass asks again.
fn submit(ctx: &Ctx, out: &mut Out, url: &str) {
    if let Some(failed) = ctx.facts.submission.as_ref().filter(|s| !s.submitted) {
        out.status.set("message", format!("Submitting the Ray job failed: {}", failed.message.as_deref().unwrap_or("no reason given")));
    }
    let job_id = out.status.str("jobId").unwrap_or_default().to_owned();
    let cluster_name = out.status.str("rayClusterName").unwrap_or_default().to_owned();
    out.apply(submitter::submission_request(ctx, url, &cluster_name, &job_id).to_string());
}

/// SidecarMode before Running: the submitter container exited non-zero, or the head Pod failed.
fn sidecar_failure(ctx: &Ctx) -> Option<String> {
    if let Some(failure) = ctx.children.sidecar_finished().and_then(|f| f.failure) {
        return Some(failure);
    }
    ctx.children.head_failed().then(|| "The Ray head Pod failed before the job was submitted.".into())
}

/// An attempt that failed in this pass is told once, as a Warning named by its reason (retried
/// or not); a Ray job that failed brings the end of its logs, where the cause usually is.
fn tell_the_failure(ctx: &Ctx, out: &mut Out) {
    if out.status.deployment() != D::Failed || out.status.old_deployment() == D::Failed {
        return;
    }
    let reason = out.status.str("reason").unwrap_or(reasons::APP_FAILED).to_owned();
    let logs = ctx.facts.job_info.as_ref().filter(|_| reason == reasons::APP_FAILED).and_then(|i| i.logs_tail.as_deref());
    let note = failure_note(out.status.str("message").unwrap_or_default(), logs);
    out.event(EventType::Warning, &reason, note);
}

/// The status message's first line, then the end of the logs, within the API server's limit
/// on an Event's note.
pub fn failure_note(message: &str, logs: Option<&str>) -> String {
    let first_line = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("The Ray job failed.");
    let summary = head_within(first_line, MESSAGE_IN_EVENT_MAX_BYTES);
    let Some(logs) = logs.map(str::trim_end).filter(|l| !l.trim().is_empty()) else {
        return summary;
    };
    let intro = format!("{summary}\nThe end of the job's logs:\n");
    let room = EVENT_NOTE_MAX_BYTES.saturating_sub(intro.len());
    format!("{intro}{}", tail_within(logs, room, LOGS_IN_EVENT_MAX_CHARS))
}

/// The start of `text` in at most `max_bytes`, cut at a char boundary, `…` when cut.
fn head_within(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let ellipsis = '…';
    let mut end = max_bytes.saturating_sub(ellipsis.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end])
}

/// The end of `text`: at most `max_chars` characters in at most `max_bytes`.
fn tail_within(text: &str, max_bytes: usize, max_chars: usize) -> &str {
    let start = text
        .char_indices()
        .rev()
        .take(max_chars)
        .map(|(at, _)| at)
        .take_while(|at| text.len() - at <= max_bytes)
        .last()
        .unwrap_or(text.len());
    &text[start..]
}

/// KubeRay's end of the pass: count the attempt that just ended, and retry a failure while
/// `backoffLimit` allows (a deadline is never retried).
fn count_and_retry(ctx: &Ctx, out: &mut Out) {
    let mut failed = out.status.counter("failed");
    let mut succeeded = out.status.counter("succeeded");
    let deployment = out.status.deployment();
    if deployment == D::Failed {
        failed += 1;
    }
    if deployment == D::Complete && out.status.job_status() == JobStatus::Succeeded {
        succeeded += 1;
    }
    out.status.set("failed", failed);
    out.status.set("succeeded", succeeded);
    let deadline = matches!(out.status.str("reason"), Some(reasons::DEADLINE_EXCEEDED | reasons::PRE_RUNNING_DEADLINE_EXCEEDED));
    if let Some(limit) = ctx.job.spec.backoff_limit
        && deployment == D::Failed
        && failed < i64::from(limit) + 1
        && !deadline
    {
        out.status.set_deployment(D::Retrying);
    }
}
