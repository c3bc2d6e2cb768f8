//! The RayJob reconciler: a pure function from a snapshot of a RayJob, its RayCluster, its submitter and the host's facts to a plan.
//!
//! [`reconcile`] classifies the RayJob into one state of KubeRay v1.5.2's machine
//! (`machine::State`: New → Initializing → Running → Complete/Failed, Waiting, Suspending →
//! Suspended, Retrying → New, ValidationFailed, plus deletion) and makes that state's move. The
//! same snapshot always gives the same plan: generated names come from the snapshot's seed, time
//! from its `now`, and every timer from timestamps in the RayJob's status, so timers survive an
//! operator restart.
//!
//! # The contract with the host
//!
//! ## Children the snapshot must hold
//!
//! - the RayCluster named `status.rayClusterName` (owned by the RayJob, or the one
//!   `spec.clusterSelector["ray.io/cluster"]` names, which it does not own), with its status;
//! - the submitter `batch/v1` Job named like the RayJob, with its status;
//! - the RayJob's head Service `<rayjob>-head-svc`;
//! - the head Pod of that cluster (labels `ray.io/cluster=<cluster>`, `ray.io/node-type=head`),
//!   with its status: K8sJobMode submits only while it is Ready, SidecarMode reads its
//!   `ray-job-submitter` container.
//!
//! Others are ignored. The RayCluster and the Job carry `ray.io/originated-from-cr-name:
//! <rayjob>` and `ray.io/originated-from-crd: RayJob`; the head Pod carries only the cluster's
//! labels, so the host maps it through `ray.io/cluster`.
//!
//! ## Facts (`snapshot.facts`), all JSON
//!
//! - `ray.io/job-info` ([`vocab::facts::JOB_INFO`]): the dashboard's latest answer to
//!   `GET /api/jobs/<status.jobId>`: `{"jobId": "…", "status": "PENDING|RUNNING|STOPPED|SUCCEEDED|FAILED",
//!   "message": "…", "startTime": <ms>, "endTime": <ms>}`, or `{"jobId": "…", "notFound": true}`
//!   for a 404; a FAILED answer also carries `"logsTail": "…"`, the end of the job's logs (a few
//!   KB), when the host could read them. `jobId` is required; a fact about another id (an
//!   earlier attempt's) is ignored.
//!   The host polls while `status.jobDeploymentStatus` is `Running` and `status.jobId` and
//!   `status.dashboardURL` are set, and triggers a reconcile when the answer changes.
//! - `wasmray.dev/dashboard` ([`vocab::facts::DASHBOARD`]): `{"reachable": false, "since": <ms>,
//!   "message": "…"}` while queries fail (`since`: when the current run of failures began),
//!   `{"reachable": true}` once one succeeds. Drives v1.7's `JobStatusCheckTimeoutExceeded`.
//! - `wasmray.dev/job-submission` ([`vocab::facts::SUBMISSION`]), HTTPMode: `{"jobId": "…",
//!   "submitted": true|false, "message": "…"}`, the outcome of the last submission request.
//! - `wasmray.dev/operator-settings` ([`vocab::facts::OPERATOR_SETTINGS`]), shared with the
//!   RayCluster reconciler; the keys read here, all optional: `rayJobDeletionPolicy` (the
//!   `RayJobDeletionPolicy` gate, default `false`), `deleteRayJobAfterJobFinishes` (default
//!   `false`), `rayJobTransitionGracePeriodSeconds` (default 300),
//!   `rayJobStatusCheckTimeoutSeconds` (default 300), `clusterDomain` (default `cluster.local`).
//!
//! ## Ops
//!
//! - `apply` of the RayCluster (`ray.io/v1`), created once and then left alone (KubeRay
//!   ignores later edits of `rayClusterSpec`), and of its worker groups' `suspend` for
//!   `DeleteWorkers`; of the submitter Job (`batch/v1`); of the RayJob's own
//!   `metadata.finalizers` (`ray.io/rayjob-finalizer`, added in New, released on deletion).
//!   Each object carries its owner reference; the host applies it as it is.
//! - `render(head-service)` in Running (not with `clusterSelector`): the RayJob's own head
//!   Service `<rayjob>-head-svc`, which KubeRay builds with the RayCluster head-Service builder
//!   from the current cluster (`status.rayClusterName`), renamed, labelled
//!   `ray.io/originated-from-cr-name: <rayjob>`, `ray.io/originated-from-crd: RayJob`,
//!   `ray.io/node-type: head`, `ray.io/identifier: <rayjob>-head`, and owned by the RayJob.
//! - `delete` of the RayCluster, the submitter Job and that Service (with their UIDs), and of the
//!   RayJob itself (`DeleteSelf`).
//! - `apply` of a **`dashboard.wasmray.dev/v1` `RayJobSubmission`** (HTTPMode): never sent to the
//!   API server. `metadata.name` is the submission id, `spec.dashboardURL` the address,
//!   `spec.rayClusterName` the cluster (for its auth token Secret), `spec.body` the exact JSON to
//!   `POST /api/jobs/` (`entrypoint`, `submission_id`, `runtime_env`, `metadata`,
//!   `entrypoint_num_cpus`, `entrypoint_num_gpus`, `entrypoint_resources`). The host submits
//!   asynchronously; a reply that the id exists already counts as submitted; the outcome comes
//!   back as `wasmray.dev/job-submission`. The id was written to `status.jobId` in an earlier
//!   pass, so a restarted operator never submits a second job.
//! - `delete` of a `dashboard.wasmray.dev/v1` `RayJobSubmission` named by the submission id:
//!   `POST /api/jobs/<id>/stop`, best effort (on deletion of a running RayJob and when a deadline
//!   fails it). Its address is the RayJob's `status.dashboardURL`.
//! - `status`: only the fields that changed (`null` clears one); no conditions (the v1.5.2
//!   RayJob status has none). Events use KubeRay's reasons and recorder `rayjob-controller`.
//! - `requeue-after-ms`: 3 s while the RayJob is not finished (KubeRay's poll), or the next timer
//!   if sooner; when finished, the next deletion TTL, or none.
//!
//! # Where wasmray differs from KubeRay v1.5.2
//!
//! - K8sJobMode creates the submitter only while the head Pod is Ready at that moment, not on
//!   the sticky `ready` cluster state alone (kuberay#4760); a Job that is missing in Running is
//!   created again.
//! - SidecarMode: a submitter container that exits non-zero, or a head Pod that fails, while
//!   the cluster is still Initializing fails the RayJob with `SubmissionFailed` (kuberay#4945).
//! - `preRunningDeadlineSeconds` (v1.6) is read from the raw spec: it fails the RayJob
//!   (`PreRunningDeadlineExceeded`, never retried) if the Ray job is not `RUNNING` by
//!   `startTime` + the deadline. v1.7's status-check timeout measures from the host's `since`,
//!   since the v1.5 status schema has no `jobStatusCheckFailureStartTime`: after an operator
//!   restart it starts again (later, never earlier).
//! - A terminal Ray job status ends the RayJob at once in every mode (kuberay#3553): KubeRay
//!   also waits for the submitter (which by then only follows the logs) to finish. A submitter
//!   still following when the cluster is deleted may end Failed; the RayJob's status is Ray's.
//! - A RayJob that gives up on a running Ray job (a deadline) asks the host to stop it.
//! - Every failed attempt (retried or not) is told by a Warning Event whose reason is the
//!   status's (`AppFailed`, `SubmissionFailed`, `DeadlineExceeded`, …) and whose note is the
//!   first line of the status message; for `AppFailed` it ends with the last lines of the job's
//!   logs (at most 1 000 characters, and the whole note within the 1 024 bytes the API server
//!   allows), so `kubectl describe` shows the traceback without a trip to the dashboard.
//! - The RayJob's head Service `<rayjob>-head-svc` is deleted with the cluster on a retry or a
//!   suspend and rendered again for the next cluster (KubeRay updates its selector in place).
//! - A RayJob whose cluster cannot start says why (KubeRay leaves `status.message` empty in
//!   Initializing): while it is Initializing, or Waiting in InteractiveMode, and the cluster's
//!   conditions name a cause, `status.message` is `Waiting for RayCluster <name>: <reason>:
//!   <message>`, from the first of `RayClusterReplicaFailure` True (a failed create), `HeadPodReady`
//!   False and the RayCluster reconciler's own `WorkerPodsReady` False, each with a reason that
//!   names a cause (`Unschedulable`, `ImagePullBackOff`, `FailedCreateWorkerPod`…; not
//!   `HeadPodNotFound`, `Unknown` or `WorkerPodsNotReady`, which say only that Pods are not up
//!   yet). For example `Waiting for RayCluster job-x7k2p: Unschedulable: worker Pod
//!   job-x7k2p-gpu-worker-abcde (group gpu): 0/3 nodes are available: 3 Insufficient
//!   nvidia.com/gpu.` A Warning Event `RayClusterNotReady` with the same message is recorded when
//!   the message changes to a new cause, not on every pass; once no cause is named the message is
//!   cleared. Without the feature gate `RayClusterStatusConditions` the cluster has no conditions,
//!   and nothing is said.

mod children;
mod cluster;
mod facts;
mod machine;
mod status;
mod submitter;
mod suffixes;
mod timers;
mod validate;
pub mod vocab;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use serde_json::{Value, json};
use wasmray_api::{JobStatus, RayJob};
use wasmray_guest_sdk::{Child, EventType, ObjectRef, Op, Plan, PluginError, Reconciler, Snapshot, parse};

use children::Children;
use facts::{Facts, Settings};
pub use machine::State;
use status::Status;

/// How the job reaches Ray (`spec.submissionMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    K8sJob,
    Http,
    Interactive,
    Sidecar,
}

/// What every step reads.
pub struct Ctx<'a> {
    pub job: &'a RayJob,
    pub raw: &'a Value,
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: Option<&'a str>,
    pub mode: Mode,
    pub children: &'a Children,
    pub facts: &'a Facts,
    pub now_ms: i64,
    pub seed: u64,
}

impl Ctx<'_> {
    pub fn settings(&self) -> Settings {
        self.facts.settings.clone()
    }

    /// The name `clusterSelector` picks, if the RayJob uses an existing cluster.
    pub fn selector(&self) -> Option<&str> {
        let selector = self.job.spec.cluster_selector.as_ref()?;
        selector.get(vocab::labels::CLUSTER).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// `status.startTime` in Unix milliseconds.
    pub fn start_ms(&self) -> Option<i64> {
        self.job.status.as_ref()?.start_time.as_ref().map(wasmray_guest_sdk::k8s::millis)
    }

    /// The Ray job's status as the RayJob's status recorded it before this pass.
    pub fn job_status(&self) -> JobStatus {
        self.job.status.as_ref().and_then(|s| s.job_status).unwrap_or_default()
    }

    pub fn has_finalizer(&self) -> bool {
        self.job.metadata.finalizers.iter().flatten().any(|f| f == vocab::FINALIZER)
    }

    /// A server-side apply of the RayJob's metadata that owns the finalizer, or owns none (which
    /// removes it, since the host's field manager added it).
    pub fn finalizer_patch(&self, present: bool) -> String {
        let finalizers: &[&str] = if present { &[vocab::FINALIZER] } else { &[] };
        json!({
            "apiVersion": wasmray_api::API_VERSION,
            "kind": "RayJob",
            "metadata": { "name": self.name, "namespace": self.namespace, "finalizers": finalizers },
        })
        .to_string()
    }

    /// The controller reference every object the RayJob creates carries.
    pub fn owner_reference(&self) -> Value {
        wasmray_guest_sdk::controller_reference(wasmray_api::API_VERSION, "RayJob", self.name, self.uid)
    }

    /// A child, by its own apiVersion, kind, name and UID.
    pub fn child_ref(&self, child: &Value) -> ObjectRef {
        ObjectRef::of_child(child, self.namespace)
    }
}

/// The plan being built: child writes and Events in order, the status last.
pub struct Out {
    pub ops: Vec<Op>,
    pub status: Status,
    pub requeue_after_ms: Option<u64>,
}

impl Out {
    fn apply(&mut self, json: String) {
        self.ops.push(Op::Apply(json));
    }
    fn render(&mut self, child: Child) {
        self.ops.push(Op::Render(child));
    }
    fn delete(&mut self, object: ObjectRef) {
        self.ops.push(Op::Delete(object));
    }
    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        let plan = Plan { ops: std::mem::take(&mut self.ops), requeue_after_ms: None };
        self.ops = plan.event(type_, reason, &message).ops;
    }
    /// Come back at `at_ms` (never later than another timer asked).
    fn wake_at(&mut self, now_ms: i64, at_ms: i64) {
        let after = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0).max(1);
        self.requeue_after_ms = Some(self.requeue_after_ms.map_or(after, |r| r.min(after)));
    }
    /// KubeRay's regular look at a RayJob that is not finished.
    fn poll(&mut self) {
        self.requeue_after_ms = Some(self.requeue_after_ms.map_or(vocab::POLL_MS, |r| r.min(vocab::POLL_MS)));
    }
}

/// Decides what to do about one RayJob.
///
/// # Errors
/// [`PluginError::InvalidInput`] when the primary or a child does not parse. An invalid spec is
/// not an error: it is KubeRay's `ValidationFailed` status and a Warning Event.
pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PluginError> {
    let raw: Value = parse(&snapshot.primary)?;
    let job: RayJob = serde_json::from_value(raw.clone())
        .map_err(|e| PluginError::InvalidInput(format!("the primary object is not a RayJob: {e}")))?;
    let name = job.metadata.name.as_deref().filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| PluginError::InvalidInput("the RayJob has no metadata.name".into()))?;
    if job.spec.managed_by.as_deref().is_some_and(|m| m != vocab::MANAGED_BY_OPERATOR) {
        // Another controller (MultiKueue) owns it; not even its status is ours.
        return Ok(Plan::new());
    }
    let status = job.status.as_ref();
    let selected = job.spec.cluster_selector.as_ref().and_then(|s| s.get(vocab::labels::CLUSTER));
    let cluster_name = status.and_then(|s| s.ray_cluster_name.as_deref()).filter(|n| !n.is_empty());
    let children = Children::parse(&snapshot.children, name, cluster_name.or(selected.map(String::as_str)))?;
    let facts = Facts::read(snapshot, status.and_then(|s| s.job_id.as_deref()));
    let ctx = Ctx {
        job: &job,
        raw: &raw,
        name,
        namespace: job.metadata.namespace.as_deref().unwrap_or("default"),
        uid: job.metadata.uid.as_deref(),
        mode: job.spec.submission_mode.into(),
        children: &children,
        facts: &facts,
        now_ms: snapshot.now,
        seed: snapshot.seed,
    };
    let mut out = Out { ops: Vec::new(), status: Status::of(&raw), requeue_after_ms: None };
    machine::run(&ctx, &mut out);
    let mut ops = out.ops;
    if job.metadata.deletion_timestamp.is_none()
        && let Some(update) = out.status.into_update(snapshot.now, job.metadata.generation)
    {
        ops.push(Op::Status(update));
    }
    Ok(Plan { ops, requeue_after_ms: out.requeue_after_ms })
}

/// The component's entry point.
pub struct RayJobReconciler;

impl Reconciler for RayJobReconciler {
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError> {
        reconcile(&snapshot)
    }
}

wasmray_guest_sdk::export_reconciler!(RayJobReconciler);
