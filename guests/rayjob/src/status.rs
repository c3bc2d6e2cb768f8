//! The RayJob's status as the pass changes it, and the change as one status op: only fields that differ, `null` for those cleared.

use serde_json::{Map, Value, json};
use wasmray_api::{JobDeploymentStatus, JobStatus};
use wasmray_guest_sdk::StatusUpdate;


/// The status before the pass and the one it is turning into.
#[derive(Debug)]
pub struct Status {
    old: Map<String, Value>,
    next: Map<String, Value>,
}

impl Status {
    /// The status of the raw primary.
    pub fn of(raw: &Value) -> Self {
        let old = raw["status"].as_object().cloned().unwrap_or_default();
        Status { next: old.clone(), old }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.next.insert(key.into(), value.into());
    }

    pub fn clear(&mut self, key: &str) {
        self.next.remove(key);
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.next.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.next.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    pub fn deployment(&self) -> JobDeploymentStatus {
        self.next.get("jobDeploymentStatus").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
    }

    pub fn old_deployment(&self) -> JobDeploymentStatus {
        self.old.get("jobDeploymentStatus").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
    }

    pub fn job_status(&self) -> JobStatus {
        self.next.get("jobStatus").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
    }

    pub fn set_deployment(&mut self, to: JobDeploymentStatus) {
        self.set("jobDeploymentStatus", json!(to));
    }

    pub fn set_job_status(&mut self, to: JobStatus) {
        self.set("jobStatus", json!(to));
    }

    /// Ends the attempt: the deployment status, `reason` and `message` together.
    pub fn fail(&mut self, to: JobDeploymentStatus, reason: &str, message: String) {
        self.set_deployment(to);
        self.set("reason", reason);
        self.set("message", message);
    }

    pub fn counter(&self, key: &str) -> i64 {
        self.next.get(key).and_then(Value::as_i64).unwrap_or(0)
    }

    /// `endTime` when the deployment becomes terminal in this pass (KubeRay's rule), then the op
    /// with what changed; `None` when nothing did.
    pub fn into_update(mut self, now_ms: i64, generation: Option<i64>) -> Option<StatusUpdate> {
        if self.deployment() != self.old_deployment() && self.deployment().is_terminal() {
            self.set("endTime", wasmray_guest_sdk::k8s::rfc3339(now_ms));
        }
        if let Some(generation) = generation {
            self.set("observedGeneration", generation);
        }
        let mut fields = Map::new();
        for (key, value) in &self.next {
            if self.old.get(key) != Some(value) {
                fields.insert(key.clone(), value.clone());
            }
        }
        for key in self.old.keys() {
            if !self.next.contains_key(key) {
                fields.insert(key.clone(), Value::Null);
            }
        }
        (!fields.is_empty()).then(|| StatusUpdate { conditions: Vec::new(), fields: Some(Value::Object(fields).to_string()) })
    }
}
