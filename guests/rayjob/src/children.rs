//! The RayJob's children as the snapshot holds them: its RayCluster, its submitter Job, the cluster's head Pod.

use serde_json::Value;
use wasmray_guest_sdk::PluginError;

use crate::vocab::{SUBMITTER_CONTAINER, cluster_conditions, labels};

/// The children this reconcile looks at.
#[derive(Debug, Default)]
pub struct Children {
    /// The RayCluster named `status.rayClusterName` (or by `clusterSelector`).
    pub cluster: Option<Value>,
    /// The submitter Job, named like the RayJob.
    pub submitter: Option<Value>,
    /// The cluster's head Pod, a live one before a terminating one.
    pub head: Option<Value>,
    /// The RayJob's own head Service `<rayjob>-head-svc`, a stable address across retries.
    pub head_service: Option<Value>,
}

impl Children {
    /// Picks the children out of the snapshot's list.
    pub fn parse(children: &[String], job_name: &str, cluster_name: Option<&str>) -> Result<Self, PluginError> {
        let mut out = Children::default();
        for text in children {
            let child: Value = serde_json::from_str(text)
                .map_err(|e| PluginError::InvalidInput(format!("a child does not parse: {e}")))?;
            let name = child["metadata"]["name"].as_str().unwrap_or_default();
            match child["kind"].as_str().unwrap_or_default() {
                "RayCluster" if Some(name) == cluster_name => out.cluster = Some(child),
                "Job" if name == job_name => out.submitter = Some(child),
                "Service" if name == head_service_name(job_name) => out.head_service = Some(child),
                "Pod" if is_head_of(&child, cluster_name) => {
                    let keep = out.head.as_ref().is_some_and(|h| !terminating(h) && terminating(&child));
                    if !keep {
                        out.head = Some(child);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// `status.state` of the cluster is `ready` (sticky in KubeRay: it never goes back).
    pub fn cluster_ready(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c["status"]["state"] == "ready")
    }

    /// The head Pod is Running and Ready at this moment, not merely once (kuberay#4760).
    pub fn head_ready_now(&self) -> bool {
        self.head.as_ref().is_some_and(|p| {
            !terminating(p)
                && p["status"]["phase"] == "Running"
                && conditions(p).any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    }

    /// When the submitter Job finished (Complete or Failed), and whether it failed, with its reason.
    pub fn submitter_finished(&self) -> Option<Finished> {
        let job = self.submitter.as_ref()?;
        let c = conditions(job).find(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")?;
        let at_ms = c["lastTransitionTime"].as_str().and_then(wasmray_guest_sdk::k8s::parse_millis).unwrap_or(0);
        let failure = (c["type"] == "Failed").then(|| {
            format!(
                "Job submission has failed. Reason: {}. Message: {}",
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        });
        Some(Finished { at_ms, failure })
    }

    /// SidecarMode: the submitter container of the head Pod has terminated: when, and how.
    pub fn sidecar_finished(&self) -> Option<Finished> {
        let pod = self.head.as_ref()?;
        let statuses = pod["status"]["containerStatuses"].as_array()?;
        let status = statuses.iter().find(|s| s["name"] == SUBMITTER_CONTAINER)?;
        let terminated = status["state"]["terminated"].as_object()?;
        let code = terminated.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
        let at_ms = terminated.get("finishedAt").and_then(Value::as_str).and_then(wasmray_guest_sdk::k8s::parse_millis).unwrap_or(0);
        let failure = (code != 0).then(|| {
            let why = terminated.get("reason").and_then(Value::as_str).unwrap_or_default();
            format!("Ray head pod container {SUBMITTER_CONTAINER} terminated with exit code {code}: {why}")
        });
        Some(Finished { at_ms, failure })
    }

    /// Why the cluster is not ready yet, as its own conditions say, first found in this order: a
    /// failed create, a head Pod that cannot run (unschedulable, an image it cannot pull…), a
    /// worker Pod that cannot run. `None` when they name no cause.
    pub fn cluster_waiting_on(&self) -> Option<String> {
        let cluster = self.cluster.as_ref()?;
        let name = cluster["metadata"]["name"].as_str().unwrap_or_default();
        let say = |c: &Value| {
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            format!("Waiting for RayCluster {name}: {reason}: {message}").trim_end_matches([' ', ':']).to_owned()
        };
        let failure = conditions(cluster).find(|c| c["type"] == cluster_conditions::REPLICA_FAILURE && c["status"] == "True");
        let not_ready = |type_: &'static str| {
            conditions(cluster).find(move |c| {
                c["type"] == type_
                    && c["status"] == "False"
                    && !cluster_conditions::NO_CAUSE.contains(&c["reason"].as_str().unwrap_or_default())
            })
        };
        failure
            .or_else(|| not_ready(cluster_conditions::HEAD_POD_READY))
            .or_else(|| not_ready(cluster_conditions::WORKER_PODS_READY))
            .map(say)
    }

    /// The head Pod itself failed (phase Failed): with `restartPolicy: Never` it never comes back.
    pub fn head_failed(&self) -> bool {
        self.head.as_ref().is_some_and(|p| p["status"]["phase"] == "Failed")
    }
}

/// A submitter that finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub at_ms: i64,
    /// The RayJob's message when it failed.
    pub failure: Option<String>,
}

/// `<rayjob>-head-svc`: KubeRay's name for the RayJob's head Service.
pub fn head_service_name(job_name: &str) -> String {
    wasmray_api::names::head_service_name(job_name, None)
}

/// Whether the object is being deleted.
pub fn terminating(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

fn conditions(object: &Value) -> impl Iterator<Item = &Value> {
    object["status"]["conditions"].as_array().into_iter().flatten()
}

fn is_head_of(pod: &Value, cluster: Option<&str>) -> bool {
    let l = &pod["metadata"]["labels"];
    cluster.is_some() && l[labels::CLUSTER].as_str() == cluster && l[labels::NODE_TYPE] == "head"
}
