//! The Ray jobs the operator follows: a poller per RayJob asking its dashboard how the job is, and the plans' submit and stop calls — all answered as facts, none awaited by a reconcile.
//!
//! A reconcile never waits on the network (a dead dashboard would stall every controller
//! sharing the runtime, kuberay#2646). Instead:
//!
//! - after each reconcile the skeleton says what to poll ([`Jobs::track`]); each target gets a
//!   task that asks `GET /api/jobs/<id>` every [`POLL_INTERVAL`] and puts the answer into the
//!   facts store as [`JOB_INFO_FACT`] and [`DASHBOARD_FACT`]; a changed fact wakes the RayJob.
//!   When the job has FAILED, the poller asks once for the end of its logs
//!   ([`LOGS_TAIL_CHARS`]) before it tells, so the fact that fails the RayJob carries them;
//!   A target no reconcile renewed for [`EXPIRY`] stops by itself, so a deleted RayJob is not
//!   polled forever;
//! - a plan's `dashboard.wasmray.dev/v1` writes become [`Call`]s that the writer hands to
//!   [`Jobs::call`]: submitted in a task of their own, the outcome put as [`SUBMISSION_FACT`];
//! - at most [`MAX_CALLS`] requests are in flight at once, each bounded by the client's
//!   timeout, so many dead dashboards cost tasks waiting on a semaphore, not threads.
//!
//! Where a dashboard is reached is decided by one [`Resolver`]: by default the address in the
//! RayJob's status as it is (the head Service's DNS name). Only code embedding the operator can
//! replace it (tests point it at a local Ray); no flag or annotation can, since the cluster's
//! auth token goes wherever it points.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::dashboard::{Dashboard, DashboardError, JobInfo, Submitted};
use crate::cache::{CLUSTER_LABEL, Children, Facts, Key};
use crate::controller::apply::Leadership;
use crate::controller::metrics::Metrics;
use crate::controller::prepare::Write;
use crate::runtime::Fact;

/// The virtual API group of a plan's requests to a Ray dashboard; never sent to the API server.
pub const DASHBOARD_API_VERSION: &str = "dashboard.wasmray.dev/v1";
/// The dashboard's latest answer about the job (`GET /api/jobs/<id>`).
pub const JOB_INFO_FACT: &str = "ray.io/job-info";
/// Whether the dashboard answered the last question, and since when it has not.
pub const DASHBOARD_FACT: &str = "wasmray.dev/dashboard";
/// What became of the last submission.
pub const SUBMISSION_FACT: &str = "wasmray.dev/job-submission";

/// How often a followed job is asked about.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Dashboard requests in flight at once, for the whole operator.
pub const MAX_CALLS: usize = 16;
/// A target that no reconcile asked for this long is dropped.
pub const EXPIRY: Duration = Duration::from_secs(30);
/// Characters of a FAILED job's logs its fact carries (`logsTail`): the cause is usually at the
/// end, and the fact is copied into every reconcile of the RayJob.
pub const LOGS_TAIL_CHARS: usize = 4_000;

/// Maps a dashboard address as a status holds it (`<svc>.<ns>.svc.cluster.local:8265`) to the
/// one dialled.
pub type Resolver = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A Ray job to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The dashboard, as the RayJob's status names it.
    pub address: String,
    /// The submission id.
    pub job_id: String,
    /// The RayCluster running it, whose auth Secret holds the token.
    pub cluster: String,
    /// Filled by [`authorize_polls`] from the cluster's Secret.
    pub token: Option<String>,
}

/// A plan's request to a dashboard.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `POST /api/jobs/` with `body`, idempotent by its submission id.
    Submit { id: String, address: String, cluster: String, body: Value, token: Option<String> },
    /// `POST /api/jobs/<id>/stop`, best effort.
    Stop { id: String, address: String, cluster: String, token: Option<String> },
}

impl Call {
    /// From a plan's `apply` of a `RayJobSubmission`: its name is the submission id, its spec
    /// the address, the cluster and the exact body.
    pub fn submit(object: &Value) -> Self {
        let spec = &object["spec"];
        Call::Submit {
            id: text(&object["metadata"]["name"]),
            address: text(&spec["dashboardURL"]),
            cluster: text(&spec["rayClusterName"]),
            body: spec["body"].clone(),
            token: None,
        }
    }

    /// From a plan's `delete` of a `RayJobSubmission`: the address and the cluster are the
    /// primary's (`status.dashboardURL`, `status.rayClusterName`).
    pub fn stop(primary: &Value, id: &str) -> Self {
        let status = &primary["status"];
        Call::Stop { id: id.to_string(), address: text(&status["dashboardURL"]), cluster: text(&status["rayClusterName"]), token: None }
    }

    /// `submit` or `stop`, for messages and metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            Call::Submit { .. } => "submit",
            Call::Stop { .. } => "stop",
        }
    }

    /// The submission id it is about.
    pub fn id(&self) -> &str {
        match self {
            Call::Submit { id, .. } | Call::Stop { id, .. } => id,
        }
    }

    fn target(&self) -> Target {
        let (Call::Submit { id, address, cluster, token, .. } | Call::Stop { id, address, cluster, token }) = self;
        Target { address: address.clone(), job_id: id.clone(), cluster: cluster.clone(), token: token.clone() }
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Fills in the token of every dashboard call among `writes` from its cluster's auth Secret.
/// Tokens never pass through a guest: plans name the cluster, the host reads its Secret.
pub fn authorize(writes: &mut [Write], children: &Children, namespace: &str) {
    for write in writes {
        if let Write::Dashboard { call: Call::Submit { cluster, token, .. } | Call::Stop { cluster, token, .. }, .. } = write {
            *token = auth_token(children, namespace, cluster);
        }
    }
}

/// Fills in the token of every target from its cluster's auth Secret.
pub fn authorize_polls(targets: &mut [Target], children: &Children, namespace: &str) {
    for target in targets {
        target.token = auth_token(children, namespace, &target.cluster);
    }
}

/// The `auth_token` of the Secret named like the cluster and labelled as its own (what the
/// RayCluster controller creates when `authOptions.mode` is `token`).
fn auth_token(children: &Children, namespace: &str, cluster: &str) -> Option<String> {
    if cluster.is_empty() {
        return None;
    }
    let secret = children.named("Secret", namespace, cluster)?;
    if secret["metadata"]["labels"][CLUSTER_LABEL] != cluster {
        return None;
    }
    let encoded = secret["data"]["auth_token"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

/// The fact a poll's answer becomes: the contract of the RayJob reconciler. `logs_tail` is the
/// end of a FAILED job's logs, when they could be read.
pub fn job_info_fact(id: &str, answer: Option<&JobInfo>, logs_tail: Option<&str>) -> Value {
    match answer {
        Some(info) => {
            let mut fact = json!({
                "jobId": id,
                "status": info.status,
                "message": info.message,
                "startTime": info.start_time,
                "endTime": info.end_time,
            });
            if let Some(logs) = logs_tail.filter(|_| info.status == FAILED) {
                fact["logsTail"] = logs.into();
            }
            fact
        }
        None => json!({ "jobId": id, "notFound": true }),
    }
}

/// Ray's status of a job that failed.
const FAILED: &str = "FAILED";

/// What a poller remembers between its questions.
#[derive(Debug, Default)]
struct Followed {
    /// When the current run of failed questions began (Unix milliseconds).
    failing_since: Option<i64>,
    /// The end of a FAILED job's logs, asked for once: `Some(None)` when that failed.
    logs_tail: Option<Option<String>>,
}

/// One followed job: what is polled, when a reconcile last asked for it, and its task.
struct Polling {
    target: Target,
    renewed: Arc<Mutex<Instant>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The operator's pollers and dashboard calls.
pub struct Jobs {
    dashboard: Dashboard,
    facts: Arc<Facts>,
    resolve: Resolver,
    permits: Arc<Semaphore>,
    leadership: Leadership,
    metrics: Metrics,
    polls: Mutex<HashMap<(String, Key), Polling>>,
    submitting: Mutex<HashSet<(String, Key, String)>>,
}

impl Jobs {
    /// Pollers that put what they learn into `facts`; `resolve` (default: the address as is)
    /// decides where requests go. Nothing is asked while this replica does not lead.
    pub fn new(facts: Arc<Facts>, resolve: Option<Resolver>, leadership: Leadership, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            dashboard: Dashboard::new(REQUEST_TIMEOUT),
            facts,
            resolve: resolve.unwrap_or_else(|| Arc::new(str::to_string)),
            permits: Arc::new(Semaphore::new(MAX_CALLS)),
            leadership,
            metrics,
            polls: Mutex::default(),
            submitting: Mutex::default(),
        })
    }

    /// What a reconcile of `kind` `key` wants polled now: a new target starts a poller, the
    /// same one renews it, none stops it. One job per primary; only the first target counts.
    pub fn track(self: &Arc<Self>, kind: &str, key: &Key, targets: Vec<Target>) {
        let slot = (kind.to_string(), key.clone());
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        let Some(target) = targets.into_iter().next() else {
            polls.remove(&slot);
            return;
        };
        if let Some(polling) = polls.get(&slot)
            && polling.target == target
            && !polling.task.is_finished()
        {
            *polling.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            return;
        }
        let renewed = Arc::new(Mutex::new(Instant::now()));
        let task = tokio::spawn(self.clone().poll(kind.to_string(), key.clone(), target.clone(), renewed.clone())).abort_handle();
        polls.insert(slot, Polling { target, renewed, task });
    }

    /// Performs a plan's call in a task of its own; the outcome becomes a fact.
    pub fn call(self: &Arc<Self>, kind: &str, key: &Key, call: Call) {
        if !self.leadership.leading() {
            return; // the writer stops before this; a standby never calls a dashboard
        }
        let (kind, key) = (kind.to_string(), key.clone());
        if let Call::Submit { id, .. } = &call {
            let flight = (kind.clone(), key.clone(), id.clone());
            if !self.submitting.lock().unwrap_or_else(|p| p.into_inner()).insert(flight) {
                return; // this id is being submitted already
            }
        }
        let jobs = self.clone();
        tokio::spawn(async move {
            match &call {
                Call::Submit { id, body, .. } => {
                    let target = call.target();
                    let outcome = jobs.request("submit", &target, |d, address, token| async move { d.submit(&address, token.as_deref(), body).await }).await;
                    jobs.submitting.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind.clone(), key.clone(), id.clone()));
                    let fact = match &outcome {
                        Ok(submitted) => {
                            tracing::info!(object.ref = %key, job = %id, already = (*submitted == Submitted::AlreadyExists), "Submitted the Ray job");
                            json!({ "jobId": id, "submitted": true })
                        }
                        Err(error) => {
                            tracing::warn!(object.ref = %key, job = %id, %error, "Submitting the Ray job failed");
                            json!({ "jobId": id, "submitted": false, "message": error.to_string() })
                        }
                    };
                    jobs.put(&kind, &key, SUBMISSION_FACT, &fact);
                    if outcome.is_ok() {
                        // The reconciler waits for the job's status: ask at once, not at the next tick.
                        jobs.ask(&kind, &key, &target, &mut Followed::default()).await;
                    }
                }
                Call::Stop { id, .. } => {
                    let target = call.target();
                    match jobs.request("stop", &target, |d, address, token| async move { d.stop(&address, token.as_deref(), id).await }).await {
                        Ok(stopped) => tracing::info!(object.ref = %key, job = %id, stopped, "Asked Ray to stop the job"),
                        Err(error) => tracing::warn!(object.ref = %key, job = %id, %error, "Stopping the Ray job failed"),
                    }
                }
            }
        });
    }

    /// Asks about `target` every [`POLL_INTERVAL`] until it expires or is replaced.
    async fn poll(self: Arc<Self>, kind: String, key: Key, target: Target, renewed: Arc<Mutex<Instant>>) {
        let mut followed = Followed::default();
        loop {
            if renewed.lock().unwrap_or_else(|p| p.into_inner()).elapsed() > EXPIRY {
                let slot = (kind.clone(), key.clone());
                let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
                if polls.get(&slot).is_some_and(|p| Arc::ptr_eq(&p.renewed, &renewed)) {
                    // Dropping it aborts this task, which is returning anyway.
                    polls.remove(&slot);
                    tracing::debug!(object.ref = %key, job = %target.job_id, "No reconcile asked for this job lately; polling stops");
                }
                return;
            }
            if self.leadership.leading() {
                self.ask(&kind, &key, &target, &mut followed).await;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// One question about the job (and, the first time it says FAILED, one about its logs); the
    /// answers (or the failure) become facts.
    async fn ask(&self, kind: &str, key: &Key, target: &Target, followed: &mut Followed) {
        let id = target.job_id.clone();
        let result = self.request("job", target, |d, address, token| async move { d.job(&address, token.as_deref(), &id).await }).await;
        match result {
            Ok(answer) => {
                followed.failing_since = None;
                if answer.as_ref().is_some_and(|info| info.status == FAILED) && followed.logs_tail.is_none() {
                    followed.logs_tail = Some(self.logs_tail(key, target).await);
                }
                let logs = followed.logs_tail.as_ref().and_then(Option::as_deref);
                self.put(kind, key, DASHBOARD_FACT, &json!({ "reachable": true }));
                self.put(kind, key, JOB_INFO_FACT, &job_info_fact(&target.job_id, answer.as_ref(), logs));
            }
            Err(error) => {
                let since = *followed.failing_since.get_or_insert_with(now_ms);
                self.put(kind, key, DASHBOARD_FACT, &json!({ "reachable": false, "since": since, "message": error.to_string() }));
            }
        }
    }

    /// The end of the job's logs, or `None` (logged) when they cannot be read: the failure is
    /// told without them rather than later.
    async fn logs_tail(&self, key: &Key, target: &Target) -> Option<String> {
        let id = target.job_id.clone();
        let result = self
            .request("logs", target, |d, address, token| async move { d.logs_tail(&address, token.as_deref(), &id, LOGS_TAIL_CHARS).await })
            .await;
        result.map_err(|error| tracing::warn!(object.ref = %key, job = %target.job_id, %error, "Reading the failed Ray job's logs failed")).ok()
    }

    /// One request, within the operator's bound on requests in flight, counted in the metrics.
    async fn request<T, F, Fut>(&self, call: &'static str, target: &Target, send: F) -> Result<T, DashboardError>
    where
        F: FnOnce(Dashboard, String, Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<T, DashboardError>>,
    {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(DashboardError::Connect("the operator is shutting down".into()));
        };
        let started = Instant::now();
        let address = (self.resolve)(&target.address);
        let result = send(self.dashboard.clone(), address, target.token.clone()).await;
        self.metrics.dashboard_call(call, result.as_ref().err().map_or("ok", DashboardError::label), started);
        result
    }

    fn put(&self, kind: &str, key: &Key, fact: &str, value: &Value) {
        self.facts.put(kind, key, Fact { key: fact.into(), value: value.to_string(), observed_at: now_ms() });
    }
}

/// Wall-clock milliseconds: when a fact was observed, which the reconciler compares with its
/// own injected `now` (this is the host's side, which the guest never reads a clock for).
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_submission_request() -> Value {
        json!({
            "apiVersion": DASHBOARD_API_VERSION, "kind": "RayJobSubmission",
            "metadata": { "name": "pi-abc12", "namespace": "ml" },
            "spec": { "dashboardURL": "pi-raycluster-x-head-svc.ml.svc.cluster.local:8265", "rayClusterName": "pi-raycluster-x",
                      "body": { "entrypoint": "python pi.py", "submission_id": "pi-abc12" } },
        })
    }

    #[test]
    fn a_submission_request_becomes_a_submit_call_with_its_exact_body() {
        let Call::Submit { id, address, cluster, body, token } = Call::submit(&a_submission_request()) else { panic!("not a submit") };
        assert_eq!(id, "pi-abc12");
        assert_eq!(address, "pi-raycluster-x-head-svc.ml.svc.cluster.local:8265");
        assert_eq!(cluster, "pi-raycluster-x");
        assert_eq!(body, json!({ "entrypoint": "python pi.py", "submission_id": "pi-abc12" }));
        assert_eq!(token, None, "tokens come from the host, never from the plan");
    }

    #[test]
    fn a_stop_goes_to_the_dashboard_and_cluster_of_the_rayjobs_status() {
        let rayjob = json!({ "status": { "dashboardURL": "a:8265", "rayClusterName": "c" } });
        assert_eq!(Call::stop(&rayjob, "id-1"), Call::Stop { id: "id-1".into(), address: "a:8265".into(), cluster: "c".into(), token: None });
    }

    #[test]
    fn answers_become_the_reconcilers_job_info_fact() {
        let info = JobInfo {
            submission_id: Some("j".into()),
            job_id: None,
            status: "SUCCEEDED".into(),
            message: Some("Job finished successfully.".into()),
            error_type: None,
            start_time: Some(1),
            end_time: Some(2),
            driver_exit_code: Some(0),
        };
        assert_eq!(
            job_info_fact("j", Some(&info), None),
            json!({ "jobId": "j", "status": "SUCCEEDED", "message": "Job finished successfully.", "startTime": 1, "endTime": 2 })
        );
        assert_eq!(job_info_fact("j", None, None), json!({ "jobId": "j", "notFound": true }));
    }

    #[test]
    fn a_failed_jobs_fact_carries_the_end_of_its_logs_and_no_other_does() {
        let info = |status: &str| JobInfo {
            submission_id: Some("j".into()),
            job_id: None,
            status: status.into(),
            message: Some("Job entrypoint command failed with exit code 1".into()),
            error_type: Some("JOB_ENTRYPOINT_COMMAND_ERROR".into()),
            start_time: Some(1),
            end_time: Some(2),
            driver_exit_code: Some(1),
        };
        let failed = job_info_fact("j", Some(&info("FAILED")), Some("Traceback…\nKeyError: 'lr'\n"));
        assert_eq!(failed["logsTail"], "Traceback…\nKeyError: 'lr'\n");
        assert_eq!(failed["status"], "FAILED");
        let running = job_info_fact("j", Some(&info("RUNNING")), Some("stale"));
        assert!(running.get("logsTail").is_none(), "{running}");
        assert!(job_info_fact("j", Some(&info("FAILED")), None).get("logsTail").is_none(), "logs that could not be read are left out");
    }
}
