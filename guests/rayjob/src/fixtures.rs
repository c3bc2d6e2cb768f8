//! Test fixtures that read like sentences: `rayjob().http().running()`, `cluster().ready()`,
//! `head().ready()`, `submitter().failed()`, and readers that pick a plan apart.

use serde_json::{Value, json};
use wasmray_guest_sdk::{Event, Fact, Op, Plan, Snapshot};

/// The snapshot's `now`: 2024-05-01T12:00:00Z.
pub const NOW_MS: i64 = 1_714_564_800_000;
/// The RayCluster of the fixtures' RayJob.
pub const CLUSTER: &str = "job-abcde";
/// Its submission id.
pub const JOB_ID: &str = "job-xyz12";
/// Where its dashboard answers.
pub const DASHBOARD: &str = "job-abcde-head-svc.ns.svc.cluster.local:8265";

/// `seconds` before [`NOW_MS`], as a status timestamp.
pub fn ago(seconds: i64) -> String {
    wasmray_guest_sdk::k8s::rfc3339(NOW_MS - seconds * 1000)
}

/// A RayJob `job` in namespace `ns`: K8sJobMode, `python app.py`, a head and a worker group `gpu`.
pub fn rayjob() -> JobFx {
    JobFx(json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": { "name": "job", "namespace": "ns", "uid": "uid-job", "generation": 1,
                      "labels": { "team": "ml" } },
        "spec": {
            "entrypoint": "python app.py",
            "rayClusterSpec": {
                "rayVersion": "2.52.0",
                "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [
                    { "name": "ray-head", "image": "rayproject/ray:2.52.0",
                      "ports": [ { "name": "dashboard", "containerPort": 8265 } ] }
                ] } } },
                "workerGroupSpecs": [ { "groupName": "gpu", "replicas": 1, "rayStartParams": {},
                    "template": { "spec": { "containers": [ { "name": "ray-worker", "image": "rayproject/ray:2.52.0" } ] } } } ]
            }
        }
    }))
}

/// A RayJob under construction.
pub struct JobFx(pub Value);

impl JobFx {
    fn spec(mut self, key: &str, value: Value) -> Self {
        self.0["spec"][key] = value;
        self
    }
    pub fn http(self) -> Self {
        self.spec("submissionMode", json!("HTTPMode"))
    }
    pub fn interactive(self) -> Self {
        self.spec("submissionMode", json!("InteractiveMode"))
    }
    pub fn sidecar(self) -> Self {
        self.spec("submissionMode", json!("SidecarMode"))
    }
    pub fn suspended(self) -> Self {
        self.spec("suspend", json!(true)).spec("shutdownAfterJobFinishes", json!(true))
    }
    pub fn unsuspended(self) -> Self {
        self.spec("suspend", json!(false))
    }
    pub fn shutdown_after(self, ttl: i32) -> Self {
        self.spec("shutdownAfterJobFinishes", json!(true)).spec("ttlSecondsAfterFinished", json!(ttl))
    }
    pub fn backoff_limit(self, n: i32) -> Self {
        self.spec("backoffLimit", json!(n))
    }
    pub fn active_deadline(self, seconds: i32) -> Self {
        self.spec("activeDeadlineSeconds", json!(seconds))
    }
    pub fn pre_running_deadline(self, seconds: i32) -> Self {
        self.spec("preRunningDeadlineSeconds", json!(seconds))
    }
    pub fn job_id(self, id: &str) -> Self {
        self.spec("jobId", json!(id))
    }
    pub fn managed_by(self, manager: &str) -> Self {
        self.spec("managedBy", json!(manager))
    }
    pub fn deletion_rules(self, rules: Value) -> Self {
        self.spec("deletionStrategy", json!({ "deletionRules": rules }))
    }
    /// `clusterSelector` naming [`CLUSTER`] instead of a `rayClusterSpec`.
    pub fn selecting(mut self) -> Self {
        self.0["spec"].as_object_mut().unwrap().remove("rayClusterSpec");
        self.spec("clusterSelector", json!({ "ray.io/cluster": CLUSTER }))
    }
    pub fn with_spec(self, key: &str, value: Value) -> Self {
        self.spec(key, value)
    }
    pub fn raw_edit(mut self, edit: impl FnOnce(&mut Value)) -> Self {
        edit(&mut self.0);
        self
    }
    pub fn named(mut self, name: &str) -> Self {
        self.0["metadata"]["name"] = json!(name);
        self
    }
    pub fn with_finalizer(mut self) -> Self {
        self.0["metadata"]["finalizers"] = json!(["ray.io/rayjob-finalizer"]);
        self
    }
    pub fn deleted(mut self) -> Self {
        self.0["metadata"]["deletionTimestamp"] = json!(ago(1));
        self
    }
    /// Merges fields into the status.
    pub fn status(mut self, fields: Value) -> Self {
        for (k, v) in fields.as_object().unwrap() {
            self.0["status"][k] = v.clone();
        }
        self
    }
    /// In `deployment` with the names drawn, started `started` seconds ago, Ray's status `job`.
    pub fn at(self, deployment: &str, job: &str, started: i64) -> Self {
        self.with_finalizer().status(json!({
            "jobDeploymentStatus": deployment, "jobStatus": job, "jobId": JOB_ID,
            "rayClusterName": CLUSTER, "startTime": ago(started), "failed": 0, "succeeded": 0,
            "observedGeneration": 1,
        }))
    }
    pub fn initializing(self) -> Self {
        self.at("Initializing", "", 10)
    }
    /// Running for 60 s, Ray reporting RUNNING, the dashboard known.
    pub fn running(self) -> Self {
        self.at("Running", "RUNNING", 60).status(json!({ "dashboardURL": DASHBOARD }))
    }
    /// Finished `ended` seconds ago with Ray's status `job`.
    pub fn finished(self, deployment: &str, job: &str, ended: i64) -> Self {
        self.at(deployment, job, 600).status(json!({ "dashboardURL": DASHBOARD, "endTime": ago(ended) }))
    }

    /// A snapshot of this RayJob with these children.
    pub fn with(self, children: impl IntoIterator<Item = Value>) -> Snapshot {
        Snapshot {
            primary: self.0.to_string(),
            children: children.into_iter().map(|c| c.to_string()).collect(),
            facts: Vec::new(),
            now: NOW_MS,
            seed: 42,
        }
    }
}

/// A fact on a snapshot.
pub fn with_fact(mut snapshot: Snapshot, key: &str, value: Value) -> Snapshot {
    snapshot.facts.push(Fact { key: key.into(), value: value.to_string(), observed_at: NOW_MS });
    snapshot
}

/// The dashboard's answer about [`JOB_ID`].
pub fn ray_says(snapshot: Snapshot, status: &str) -> Snapshot {
    let info = json!({ "jobId": JOB_ID, "status": status, "message": format!("Job is {status}"),
                       "startTime": NOW_MS - 50_000, "endTime": if status == "RUNNING" { 0 } else { NOW_MS - 1_000 } });
    with_fact(snapshot, "ray.io/job-info", info)
}

/// The dashboard's answer that [`JOB_ID`] FAILED, with `message` and the end of its logs as
/// the host fetched them.
pub fn ray_says_failed(snapshot: Snapshot, message: &str, logs_tail: &str) -> Snapshot {
    let info = json!({ "jobId": JOB_ID, "status": "FAILED", "message": message, "startTime": NOW_MS - 50_000,
                       "endTime": NOW_MS - 1_000, "logsTail": logs_tail });
    with_fact(snapshot, "ray.io/job-info", info)
}

/// The dashboard knows no job [`JOB_ID`].
pub fn ray_knows_no_such_job(snapshot: Snapshot) -> Snapshot {
    with_fact(snapshot, "ray.io/job-info", json!({ "jobId": JOB_ID, "notFound": true }))
}

/// The operator settings fact.
pub fn settings(snapshot: Snapshot, value: Value) -> Snapshot {
    with_fact(snapshot, "wasmray.dev/operator-settings", value)
}

/// The RayJob's RayCluster [`CLUSTER`], provisioning.
pub fn cluster() -> ChildFx {
    let spec = rayjob().0["spec"]["rayClusterSpec"].clone();
    ChildFx(json!({ "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": { "name": CLUSTER, "namespace": "ns", "uid": "uid-rc",
                      "labels": { "ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": "job" } },
        "spec": spec, "status": { "desiredWorkerReplicas": 1 } }))
}

/// The cluster's head Pod, Pending.
pub fn head() -> ChildFx {
    ChildFx(json!({ "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "job-abcde-head-q7x2z", "namespace": "ns", "uid": "uid-head",
                      "labels": { "ray.io/cluster": CLUSTER, "ray.io/node-type": "head" } },
        "status": { "phase": "Pending" } }))
}

/// The submitter Job, running.
pub fn submitter() -> ChildFx {
    ChildFx(json!({ "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": "job", "namespace": "ns", "uid": "uid-submitter" },
        "status": { "active": 1 } }))
}

/// The RayJob's head Service `job-head-svc`, selecting [`CLUSTER`].
pub fn head_svc() -> ChildFx {
    ChildFx(json!({ "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "job-head-svc", "namespace": "ns", "uid": "uid-svc",
                      "labels": { "ray.io/originated-from-cr-name": "job" } },
        "spec": { "selector": { "ray.io/cluster": CLUSTER, "ray.io/node-type": "head" } } }))
}

/// A child under construction.
pub struct ChildFx(pub Value);

impl ChildFx {
    /// The cluster reached `ready`.
    pub fn ready(mut self) -> Self {
        self.0["status"]["state"] = json!("ready");
        self
    }
    /// The cluster's status condition `type_` (replacing one of that type).
    pub fn condition(mut self, type_: &str, status: &str, reason: &str, message: &str) -> Self {
        let mut conditions: Vec<Value> = self.0["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conditions.retain(|c| c["type"] != type_);
        conditions.push(json!({ "type": type_, "status": status, "reason": reason, "message": message,
                                "lastTransitionTime": ago(60) }));
        self.0["status"]["conditions"] = json!(conditions);
        self
    }
    /// The head Pod is Running and Ready.
    pub fn running_ready(mut self) -> Self {
        self.0["status"] = json!({ "phase": "Running", "conditions": [ { "type": "Ready", "status": "True" } ] });
        self
    }
    /// The head Pod is Running, not Ready (restarted, say).
    pub fn running_not_ready(mut self) -> Self {
        self.0["status"] = json!({ "phase": "Running", "conditions": [ { "type": "Ready", "status": "False" } ] });
        self
    }
    /// The head Pod's submitter container exited with `code`.
    pub fn sidecar_exited(mut self, code: i64) -> Self {
        self.0["status"]["containerStatuses"] = json!([ { "name": "ray-job-submitter",
            "state": { "terminated": { "exitCode": code, "reason": "Error", "finishedAt": ago(5) } } } ]);
        self
    }
    /// The Job's condition `type_` (Complete, Failed) turned True `seconds` ago.
    pub fn finished(mut self, type_: &str, seconds: i64) -> Self {
        self.0["status"] = json!({ "conditions": [ { "type": type_, "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit", "lastTransitionTime": ago(seconds) } ] });
        self
    }
    pub fn terminating(mut self) -> Self {
        self.0["metadata"]["deletionTimestamp"] = json!(ago(1));
        self
    }
}

impl From<ChildFx> for Value {
    fn from(c: ChildFx) -> Value {
        c.0
    }
}

/// The JSON objects the plan applies.
pub fn applies(plan: &Plan) -> Vec<Value> {
    plan.ops.iter().filter_map(|op| if let Op::Apply(j) = op { serde_json::from_str(j).ok() } else { None }).collect()
}

/// `kind/name` of what the plan applies, in order.
pub fn applied(plan: &Plan) -> Vec<String> {
    applies(plan).iter().map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap())).collect()
}

/// `kind/name` of what the plan deletes, in order.
pub fn deleted(plan: &Plan) -> Vec<String> {
    plan.ops.iter().filter_map(|op| if let Op::Delete(r) = op { Some(format!("{}/{}", r.kind, r.name)) } else { None }).collect()
}

/// The plan's Events.
pub fn events(plan: &Plan) -> Vec<Event> {
    plan.ops.iter().filter_map(|op| if let Op::Event(e) = op { Some(e.clone()) } else { None }).collect()
}

/// Reasons of the plan's Events, in order.
pub fn event_reasons(plan: &Plan) -> Vec<String> {
    events(plan).into_iter().map(|e| e.reason).collect()
}

/// The status fields the plan changes (`{}` when it writes no status).
pub fn changed(plan: &Plan) -> Value {
    plan.ops
        .iter()
        .find_map(|op| if let Op::Status(s) = op { s.fields.as_deref().map(|f| serde_json::from_str(f).unwrap()) } else { None })
        .unwrap_or_else(|| json!({}))
}

/// `(jobDeploymentStatus, reason)` the plan moves to, `""` for what it leaves alone.
pub fn moved_to(plan: &Plan) -> (String, String) {
    let c = changed(plan);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&c["jobDeploymentStatus"]), text(&c["reason"]))
}
