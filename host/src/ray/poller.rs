//! What the operator learns from Ray dashboards and Serve proxies, and the plans' calls to them: pollers per primary asking about its Ray job, its clusters' Serve applications and proxies — all answered as facts, none awaited by a reconcile.
//!
//! A reconcile never waits on the network (a dead dashboard would stall every controller
//! sharing the runtime, kuberay#2646). Instead:
//!
//! - after each reconcile the skeleton says what to poll ([`Poller::track`]): each [`Target`]
//!   gets a task that asks every [`POLL_INTERVAL`] and puts the answer into the facts store; a
//!   changed fact wakes the primary. A RayJob's job (`GET /api/jobs/<id>`) becomes
//!   [`JOB_INFO_FACT`] and [`DASHBOARD_FACT`] — when the job has FAILED, the poller asks once
//!   for the end of its logs ([`LOGS_TAIL_CHARS`]) before it tells, so the fact that fails the
//!   RayJob carries them. A RayService's clusters' Serve applications
//!   (`GET /api/serve/applications/?api_type=declarative`) and head proxies (`GET /-/healthz`)
//!   become the per-cluster facts of [`wasmray_api::serve`]. A target no reconcile renewed for
//!   [`EXPIRY`] stops by itself, so a deleted primary is not polled forever;
//! - a plan's `dashboard.wasmray.dev/v1` writes become [`Call`]s that the writer hands to
//!   [`Poller::call`]: sent in a task of their own, the outcome put as a fact
//!   ([`SUBMISSION_FACT`], or a Serve submission fact);
//! - at most [`MAX_CALLS`] requests are in flight at once, each bounded by the client's
//!   timeout, so many dead dashboards cost tasks waiting on a semaphore, not threads.
//!
//! Where a request goes is decided by one [`Resolver`]: by default the address as the status
//! or the Pod holds it (the head Service's DNS name, the Pod's IP). Only code embedding the
//! operator can replace it (tests point it at a local Ray); no flag or annotation can, since the
//! cluster's auth token goes wherever it points.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use wasmray_api::serve::{self, ProxyHealthFact, ServeApplicationFact, ServeApplicationsFact, ServeDeploymentFact, ServeRequest, ServeSubmissionFact};

use super::dashboard::{Dashboard, DashboardError, JobInfo, ServeDetails, Submitted};
use crate::cache::{CLUSTER_LABEL, Children, Facts, Key};
use crate::controller::apply::Leadership;
use crate::controller::metrics::Metrics;
use crate::controller::prepare::Write;
use crate::runtime::Fact;

/// The virtual API group of a plan's requests to a Ray dashboard; never sent to the API server.
pub const DASHBOARD_API_VERSION: &str = serve::DASHBOARD_API_VERSION;
/// The kind of a plan's request to submit a Ray job.
pub const JOB_SUBMISSION_KIND: &str = "RayJobSubmission";
/// The dashboard's latest answer about the job (`GET /api/jobs/<id>`).
pub const JOB_INFO_FACT: &str = "ray.io/job-info";
/// Whether the dashboard answered the last question, and since when it has not.
pub const DASHBOARD_FACT: &str = "wasmray.dev/dashboard";
/// What became of the last submission.
pub const SUBMISSION_FACT: &str = "wasmray.dev/job-submission";

/// How often a followed target is asked about.
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

/// Maps `(cluster, address)` — the RayCluster asked about and the address as the operator
/// would dial it (a dashboard's `<svc>.<ns>.svc.cluster.local:8265`, a proxy's `<pod IP>:8000`)
/// — to the `host:port` dialled.
pub type Resolver = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// Something to follow on one Ray cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The dashboard (or, for [`Ask::ProxyHealth`], the proxy) as the operator would dial it.
    pub address: String,
    /// The RayCluster, whose auth Secret holds the token.
    pub cluster: String,
    /// Filled by [`authorize_polls`] from the cluster's Secret.
    pub token: Option<String>,
    pub ask: Ask,
}

/// What a [`Target`] asks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ask {
    /// A Ray job, by submission id.
    Job { id: String },
    /// The cluster's Serve applications.
    ServeApplications,
    /// The health of the Serve proxy on the cluster's head Pod `pod`.
    ProxyHealth { pod: String },
}

impl Target {
    /// A Ray job on the cluster whose dashboard is `address`.
    pub fn job(address: impl Into<String>, cluster: impl Into<String>, id: impl Into<String>) -> Self {
        Self { address: address.into(), cluster: cluster.into(), token: None, ask: Ask::Job { id: id.into() } }
    }

    /// What tells two targets of one primary apart.
    fn slot(&self) -> (String, Ask) {
        (self.cluster.clone(), self.ask.clone())
    }
}

/// A plan's request to a dashboard.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `POST /api/jobs/` with `body`, idempotent by its submission id.
    Submit { id: String, address: String, cluster: String, body: Value, token: Option<String> },
    /// `POST /api/jobs/<id>/stop`, best effort.
    Stop { id: String, address: String, cluster: String, token: Option<String> },
    /// `PUT /api/serve/applications/` with `config` (serveConfigV2 as JSON, or why it is not),
    /// named by `hash` in the submission fact.
    Serve { address: String, cluster: String, config: Result<Value, String>, hash: String, token: Option<String> },
}

impl Call {
    /// From a plan's `apply` of a dashboard request: a `RayJobSubmission` (its name is the
    /// submission id, its spec the address, the cluster and the exact body) or a
    /// `ServeApplications` ([`ServeRequest`]; the YAML config converted to JSON here).
    pub fn request(object: &Value) -> Self {
        if object["kind"] == serve::SERVE_REQUEST_KIND {
            let cluster = text(&object["metadata"]["name"]);
            return match serde_json::from_value::<ServeRequest>(object["spec"].clone()) {
                Ok(request) => Call::Serve {
                    config: serve_body(&request),
                    address: request.dashboard_url,
                    cluster: if request.ray_cluster_name.is_empty() { cluster } else { request.ray_cluster_name },
                    hash: request.config_hash,
                    token: None,
                },
                Err(error) => Call::Serve {
                    address: String::new(),
                    hash: text(&object["spec"]["configHash"]),
                    config: Err(format!("the plan's Serve request does not parse: {error}")),
                    cluster,
                    token: None,
                },
            };
        }
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

    /// `submit`, `stop` or `serve`, for messages and metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            Call::Submit { .. } => "submit",
            Call::Stop { .. } => "stop",
            Call::Serve { .. } => "serve",
        }
    }

    /// What it is about: the submission id, or the cluster and config hash.
    pub fn id(&self) -> String {
        match self {
            Call::Submit { id, .. } | Call::Stop { id, .. } => id.clone(),
            Call::Serve { cluster, hash, .. } => format!("{cluster}/{hash}"),
        }
    }

    fn cluster_and_token(&mut self) -> (&str, &mut Option<String>) {
        match self {
            Call::Submit { cluster, token, .. } | Call::Stop { cluster, token, .. } | Call::Serve { cluster, token, .. } => (cluster, token),
        }
    }

    fn target(&self) -> Target {
        match self {
            Call::Submit { id, address, cluster, token, .. } | Call::Stop { id, address, cluster, token } => {
                Target { address: address.clone(), cluster: cluster.clone(), token: token.clone(), ask: Ask::Job { id: id.clone() } }
            }
            Call::Serve { address, cluster, token, .. } => {
                Target { address: address.clone(), cluster: cluster.clone(), token: token.clone(), ask: Ask::ServeApplications }
            }
        }
    }
}

/// The PUT body of a Serve request: `serveConfigV2` (YAML, as users write it) as JSON, with
/// `target_capacity` when the request sets one.
fn serve_body(request: &ServeRequest) -> Result<Value, String> {
    let mut body: Value = serde_yaml::from_str(&request.config).map_err(|e| format!("serveConfigV2 is not valid YAML: {e}"))?;
    if body.is_null() {
        body = json!({});
    }
    let Some(map) = body.as_object_mut() else { return Err("serveConfigV2 is not a YAML mapping".into()) };
    if let Some(capacity) = request.target_capacity {
        map.insert("target_capacity".into(), capacity.into());
    }
    Ok(body)
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Fills in the token of every dashboard call among `writes` from its cluster's auth Secret.
/// Tokens never pass through a guest: plans name the cluster, the host reads its Secret.
pub fn authorize(writes: &mut [Write], children: &Children, namespace: &str) {
    for write in writes {
        if let Write::Dashboard { call, .. } = write {
            let (cluster, token) = call.cluster_and_token();
            *token = auth_token(children, namespace, cluster);
        }
    }
}

/// Fills in the token of every target from its cluster's auth Secret (proxies ask for none).
pub fn authorize_polls(targets: &mut [Target], children: &Children, namespace: &str) {
    for target in targets.iter_mut().filter(|t| !matches!(t.ask, Ask::ProxyHealth { .. })) {
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

/// The fact Serve's answer (or its failure) about `cluster` becomes: the contract of the
/// RayService reconciler. An application with an empty name is reported as `default`, as
/// KubeRay does.
pub fn serve_applications_fact(cluster: &str, answer: &Result<ServeDetails, DashboardError>) -> ServeApplicationsFact {
    match answer {
        Ok(details) => ServeApplicationsFact {
            cluster: cluster.to_string(),
            reachable: true,
            message: None,
            applications: details
                .applications
                .iter()
                .map(|(name, app)| {
                    let name = if name.is_empty() { "default".to_string() } else { name.clone() };
                    let deployments = app
                        .deployments
                        .iter()
                        .map(|(name, d)| (name.clone(), ServeDeploymentFact { status: d.status.clone(), message: d.message.clone().unwrap_or_default() }))
                        .collect();
                    (name, ServeApplicationFact { status: app.status.clone(), message: app.message.clone().unwrap_or_default(), deployments })
                })
                .collect(),
            target_capacity: details.target_capacity,
        },
        Err(error) => ServeApplicationsFact { cluster: cluster.to_string(), reachable: false, message: Some(error.to_string()), ..Default::default() },
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

/// One followed target: what is polled, when a reconcile last asked for it, and its task.
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

/// The pollers of one primary, by what they ask.
type Pollings = HashMap<(String, Ask), Polling>;

/// The operator's pollers and dashboard calls.
pub struct Poller {
    dashboard: Dashboard,
    facts: Arc<Facts>,
    resolve: Resolver,
    permits: Arc<Semaphore>,
    leadership: Leadership,
    metrics: Metrics,
    polls: Mutex<HashMap<(String, Key), Pollings>>,
    submitting: Mutex<HashSet<(String, Key, String)>>,
}

impl Poller {
    /// Pollers that put what they learn into `facts`; `resolve` (default: the address as is)
    /// decides where requests go. Nothing is asked while this replica does not lead.
    pub fn new(facts: Arc<Facts>, resolve: Option<Resolver>, leadership: Leadership, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            dashboard: Dashboard::new(REQUEST_TIMEOUT),
            facts,
            resolve: resolve.unwrap_or_else(|| Arc::new(|_: &str, address: &str| address.to_string())),
            permits: Arc::new(Semaphore::new(MAX_CALLS)),
            leadership,
            metrics,
            polls: Mutex::default(),
            submitting: Mutex::default(),
        })
    }

    /// What a reconcile of `kind` `key` wants polled now: a new target starts a poller, the
    /// same one renews it, one no longer asked for stops.
    pub fn track(self: &Arc<Self>, kind: &str, key: &Key, targets: Vec<Target>) {
        let primary = (kind.to_string(), key.clone());
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        if targets.is_empty() {
            polls.remove(&primary);
            return;
        }
        let pollings = polls.entry(primary).or_default();
        let wanted: HashSet<(String, Ask)> = targets.iter().map(Target::slot).collect();
        pollings.retain(|slot, _| wanted.contains(slot));
        for target in targets {
            let slot = target.slot();
            if let Some(polling) = pollings.get(&slot)
                && polling.target == target
                && !polling.task.is_finished()
            {
                *polling.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                continue;
            }
            let renewed = Arc::new(Mutex::new(Instant::now()));
            let task = tokio::spawn(self.clone().poll(kind.to_string(), key.clone(), target.clone(), renewed.clone())).abort_handle();
            pollings.insert(slot, Polling { target, renewed, task });
        }
    }

    /// Performs a plan's call in a task of its own; the outcome becomes a fact.
    pub fn call(self: &Arc<Self>, kind: &str, key: &Key, call: Call) {
        if !self.leadership.leading() {
            return; // the writer stops before this; a standby never calls a dashboard
        }
        let (kind, key) = (kind.to_string(), key.clone());
        if matches!(call, Call::Submit { .. } | Call::Serve { .. }) {
            let flight = (kind.clone(), key.clone(), call.id());
            if !self.submitting.lock().unwrap_or_else(|p| p.into_inner()).insert(flight) {
                return; // this one is being sent already
            }
        }
        let poller = self.clone();
        tokio::spawn(async move {
            let target = call.target();
            match &call {
                Call::Submit { id, body, .. } => {
                    let outcome = poller.request("submit", &target, |d, address, token| async move { d.submit(&address, token.as_deref(), body).await }).await;
                    poller.landed(&kind, &key, &call);
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
                    poller.put(&kind, &key, SUBMISSION_FACT, &fact);
                    if outcome.is_ok() {
                        // The reconciler waits for the job's status: ask at once, not at the next tick.
                        poller.ask(&kind, &key, &target, &mut Followed::default()).await;
                    }
                }
                Call::Stop { id, .. } => {
                    match poller.request("stop", &target, |d, address, token| async move { d.stop(&address, token.as_deref(), id).await }).await {
                        Ok(stopped) => tracing::info!(object.ref = %key, job = %id, stopped, "Asked Ray to stop the job"),
                        Err(error) => tracing::warn!(object.ref = %key, job = %id, %error, "Stopping the Ray job failed"),
                    }
                }
                Call::Serve { cluster, config, hash, .. } => {
                    let outcome = match config {
                        Ok(config) => poller
                            .request("serve_deploy", &target, |d, address, token| async move { d.deploy_serve(&address, token.as_deref(), config).await })
                            .await
                            .map_err(|e| e.to_string()),
                        Err(why) => Err(why.clone()),
                    };
                    poller.landed(&kind, &key, &call);
                    match &outcome {
                        Ok(()) => tracing::info!(object.ref = %key, %cluster, config = %hash, "Deployed the Serve config"),
                        Err(error) => tracing::warn!(object.ref = %key, %cluster, config = %hash, %error, "Deploying the Serve config failed"),
                    }
                    let fact = ServeSubmissionFact { cluster: cluster.clone(), config_hash: hash.clone(), submitted: outcome.is_ok(), message: outcome.err() };
                    poller.put(&kind, &key, &serve::fact_key(serve::SERVE_SUBMISSION_FACT, cluster), &to_json(&fact));
                    if fact.submitted {
                        poller.ask(&kind, &key, &target, &mut Followed::default()).await;
                    }
                }
            }
        });
    }

    /// A call's answer is in: the same call may be made again.
    fn landed(&self, kind: &str, key: &Key, call: &Call) {
        self.submitting.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind.to_string(), key.clone(), call.id()));
    }

    /// Asks about `target` every [`POLL_INTERVAL`] until it expires or is replaced.
    async fn poll(self: Arc<Self>, kind: String, key: Key, target: Target, renewed: Arc<Mutex<Instant>>) {
        let mut followed = Followed::default();
        loop {
            if renewed.lock().unwrap_or_else(|p| p.into_inner()).elapsed() > EXPIRY {
                let primary = (kind.clone(), key.clone());
                let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(pollings) = polls.get_mut(&primary) {
                    // Dropping it aborts this task, which is returning anyway.
                    let slot = target.slot();
                    if pollings.get(&slot).is_some_and(|p| Arc::ptr_eq(&p.renewed, &renewed)) {
                        pollings.remove(&slot);
                        tracing::debug!(object.ref = %key, cluster = %target.cluster, "No reconcile asked for this lately; polling stops");
                    }
                    if pollings.is_empty() {
                        polls.remove(&primary);
                    }
                }
                return;
            }
            if self.leadership.leading() {
                self.ask(&kind, &key, &target, &mut followed).await;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// One question about the target; the answer (or the failure) becomes facts.
    async fn ask(&self, kind: &str, key: &Key, target: &Target, followed: &mut Followed) {
        match &target.ask {
            Ask::Job { id } => self.ask_job(kind, key, target, id, followed).await,
            Ask::ServeApplications => {
                let answer = self.request("serve_applications", target, |d, address, token| async move { d.serve_applications(&address, token.as_deref()).await }).await;
                let fact = serve_applications_fact(&target.cluster, &answer);
                self.put(kind, key, &serve::fact_key(serve::SERVE_APPLICATIONS_FACT, &target.cluster), &to_json(&fact));
            }
            Ask::ProxyHealth { pod } => {
                let answer = self.request("serve_proxy", target, |d, address, _| async move { d.proxy_healthy(&address).await }).await;
                let fact = ProxyHealthFact { cluster: target.cluster.clone(), pod: pod.clone(), healthy: answer.unwrap_or(false) };
                self.put(kind, key, &serve::fact_key(serve::SERVE_PROXY_FACT, &target.cluster), &to_json(&fact));
            }
        }
    }

    /// One question about a job (and, the first time it says FAILED, one about its logs).
    async fn ask_job(&self, kind: &str, key: &Key, target: &Target, id: &str, followed: &mut Followed) {
        let owned = id.to_string();
        let result = self.request("job", target, |d, address, token| async move { d.job(&address, token.as_deref(), &owned).await }).await;
        match result {
            Ok(answer) => {
                followed.failing_since = None;
                if answer.as_ref().is_some_and(|info| info.status == FAILED) && followed.logs_tail.is_none() {
                    followed.logs_tail = Some(self.logs_tail(key, target, id).await);
                }
                let logs = followed.logs_tail.as_ref().and_then(Option::as_deref);
                self.put(kind, key, DASHBOARD_FACT, &json!({ "reachable": true }));
                self.put(kind, key, JOB_INFO_FACT, &job_info_fact(id, answer.as_ref(), logs));
            }
            Err(error) => {
                let since = *followed.failing_since.get_or_insert_with(now_ms);
                self.put(kind, key, DASHBOARD_FACT, &json!({ "reachable": false, "since": since, "message": error.to_string() }));
            }
        }
    }

    /// The end of the job's logs, or `None` (logged) when they cannot be read: the failure is
    /// told without them rather than later.
    async fn logs_tail(&self, key: &Key, target: &Target, id: &str) -> Option<String> {
        let owned = id.to_string();
        let result = self
            .request("logs", target, |d, address, token| async move { d.logs_tail(&address, token.as_deref(), &owned, LOGS_TAIL_CHARS).await })
            .await;
        result.map_err(|error| tracing::warn!(object.ref = %key, job = %id, %error, "Reading the failed Ray job's logs failed")).ok()
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
        let address = (self.resolve)(&target.cluster, &target.address);
        let result = send(self.dashboard.clone(), address, target.token.clone()).await;
        self.metrics.dashboard_call(call, result.as_ref().err().map_or("ok", DashboardError::label), started);
        result
    }

    fn put(&self, kind: &str, key: &Key, fact: &str, value: &Value) {
        self.facts.put(kind, key, Fact { key: fact.into(), value: value.to_string(), observed_at: now_ms() });
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
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
        let Call::Submit { id, address, cluster, body, token } = Call::request(&a_submission_request()) else { panic!("not a submit") };
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
    fn a_serve_request_becomes_a_put_of_its_yaml_as_json_with_the_target_capacity() {
        let request = json!({
            "apiVersion": DASHBOARD_API_VERSION, "kind": "ServeApplications", "metadata": { "name": "svc-ab12c" },
            "spec": { "dashboardURL": "svc-ab12c-head-svc.ml.svc.cluster.local:8265", "rayClusterName": "svc-ab12c", "configHash": "h1",
                      "config": "applications:\n  - name: text\n    import_path: hello:app\n", "targetCapacity": 40 },
        });
        let Call::Serve { address, cluster, config, hash, token } = Call::request(&request) else { panic!("not a serve call") };
        assert_eq!((address.as_str(), cluster.as_str(), hash.as_str(), token), ("svc-ab12c-head-svc.ml.svc.cluster.local:8265", "svc-ab12c", "h1", None));
        assert_eq!(config, Ok(json!({ "applications": [{ "name": "text", "import_path": "hello:app" }], "target_capacity": 40 })));

        let mut broken = request.clone();
        broken["spec"]["config"] = "applications: [".into();
        let Call::Serve { config: Err(why), .. } = Call::request(&broken) else { panic!("a broken config is still a call, answered with its error") };
        assert!(why.contains("not valid YAML"), "{why}");
    }

    #[test]
    fn serves_answer_becomes_the_per_cluster_applications_fact() {
        let details: ServeDetails = serde_json::from_value(json!({
            "applications": { "": { "status": "RUNNING", "message": "", "deployments": { "Hello": { "status": "HEALTHY", "message": "" } } },
                              "text": { "status": "DEPLOY_FAILED", "message": "ModuleNotFoundError" } },
            "target_capacity": 50.0, "proxies": {},
        }))
        .unwrap();
        let fact = serve_applications_fact("c1", &Ok(details));
        assert!(fact.reachable);
        assert_eq!(fact.applications["default"].deployments["Hello"].status, "HEALTHY", "an unnamed application is `default`");
        assert_eq!(fact.applications["text"].message, "ModuleNotFoundError");
        assert_eq!(fact.target_capacity, Some(50.0));
        let down = serve_applications_fact("c1", &Err(DashboardError::Timeout));
        assert!(!down.reachable && down.applications.is_empty());
        assert_eq!(down.message.as_deref(), Some("the dashboard did not answer in time"));
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
