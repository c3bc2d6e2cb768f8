//! The one writer: creates rendered children, server-side applies, deletes with UID
//! preconditions, patches status only when it changed, and records Events.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use wasmray_api::RayCluster;

use crate::runtime::{Condition, ConditionStatus, ObjectRef as WitRef, StatusUpdate};

use super::metrics::Metrics;

/// A write that failed, with what it was.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused or failed a write.
    #[error("{action}: {source}")]
    Api {
        /// What was being written.
        action: String,
        /// The cause.
        source: kube::Error,
    },
    /// The plan asked for a write this controller may not do.
    #[error("refused {action}: {reason}")]
    Refused {
        /// What was asked.
        action: String,
        /// Why not.
        reason: String,
    },
}

/// Kinds a RayCluster plan may write, besides the RayCluster itself (finalizers).
const WRITABLE: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("batch/v1", "Job"),
    ("ray.io/v1", "RayCluster"),
];

/// Performs a plan's writes for one RayCluster.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    field_manager: String,
    reporter: Reporter,
    metrics: Metrics,
}

impl Applier {
    /// An applier writing as `field_manager`.
    pub fn new(client: Client, field_manager: &str, metrics: Metrics) -> Self {
        let reporter = Reporter { controller: field_manager.to_string(), instance: std::env::var("POD_NAME").ok() };
        Self { client, field_manager: field_manager.to_string(), reporter, metrics }
    }

    /// Creates objects in slow-start batches (1, 2, 4, … 32), stopping after a batch with a
    /// failure, so a quota or an invalid template fails once, not a hundred times. Returns what
    /// was created (for expectations) and the first error. An object that already exists counts
    /// as created.
    pub async fn create_all(&self, namespace: &str, objects: Vec<Value>) -> (Vec<Value>, Option<ApplyError>) {
        let mut created = Vec::new();
        let mut rest = objects.into_iter().peekable();
        let mut batch = 1usize;
        while rest.peek().is_some() {
            let chunk: Vec<Value> = rest.by_ref().take(batch).collect();
            let results: Vec<Result<Value, ApplyError>> = futures::stream::iter(chunk)
                .map(|object| self.create(namespace, object))
                .buffer_unordered(batch)
                .collect()
                .await;
            let mut failure = None;
            for result in results {
                match result {
                    Ok(object) => created.push(object),
                    Err(error) => failure = failure.or(Some(error)),
                }
            }
            if failure.is_some() {
                return (created, failure);
            }
            batch = (batch * 2).min(32);
        }
        (created, None)
    }

    async fn create(&self, namespace: &str, object: Value) -> Result<Value, ApplyError> {
        let (api, kind, name) = self.dynamic_api(namespace, &object)?;
        let action = format!("creating {kind} {namespace}/{name}");
        let body: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|e| ApplyError::Refused { action: action.clone(), reason: e.to_string() })?;
        let params = PostParams { field_manager: Some(self.field_manager.clone()), ..Default::default() };
        let result = match api.create(&params, &body).await {
            Ok(created) => Ok(serde_json::to_value(created).unwrap_or(object)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(object),
            Err(source) => Err(ApplyError::Api { action, source }),
        };
        self.metrics.write("create", &kind, result.is_ok());
        result
    }

    /// Server-side apply of one object (the primary's own metadata, say).
    pub async fn apply(&self, namespace: &str, object: Value) -> Result<(), ApplyError> {
        let (api, kind, name) = self.dynamic_api(namespace, &object)?;
        let params = PatchParams::apply(&self.field_manager).force();
        let result = api.patch(&name, &params, &Patch::Apply(&object)).await;
        self.metrics.write("apply", &kind, result.is_ok());
        result.map(drop).map_err(|source| ApplyError::Api { action: format!("applying {kind} {namespace}/{name}"), source })
    }

    /// Server-side apply of a batch-scheduler plugin's companion object (its kind was declared
    /// by the plugin, so it is not in this controller's own list of kinds).
    pub async fn apply_companion(&self, namespace: &str, object: Value) -> Result<(), ApplyError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &resource);
        let params = PatchParams::apply(&self.field_manager).force();
        let result = api.patch(&name, &params, &Patch::Apply(&object)).await;
        self.metrics.write("apply", &kind, result.is_ok());
        result.map(drop).map_err(|source| ApplyError::Api { action: format!("applying {kind} {namespace}/{name}"), source })
    }

    /// Deletes an object; with a UID, only that incarnation. Already gone is fine.
    pub async fn delete(&self, namespace: &str, target: &WitRef) -> Result<(), ApplyError> {
        let action = format!("deleting {} {namespace}/{}", target.kind, target.name);
        if target.namespace.as_deref().is_some_and(|ns| ns != namespace) {
            return Err(ApplyError::Refused { action, reason: "outside the RayCluster's namespace".into() });
        }
        let head = json!({ "apiVersion": target.api_version, "kind": target.kind, "metadata": { "name": target.name } });
        let (api, kind, _) = self.dynamic_api(namespace, &head)?;
        let params = DeleteParams {
            preconditions: target.uid.clone().map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
            propagation_policy: Some(kube::api::PropagationPolicy::Background),
            ..Default::default()
        };
        let result = match api.delete(&target.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
            Err(source) => Err(ApplyError::Api { action, source }),
        };
        self.metrics.write("delete", &kind, result.is_ok());
        result
    }

    /// Merges the update into the RayCluster's status and writes it if anything changed.
    /// Returns whether it wrote.
    pub async fn status(&self, cluster: &RayCluster, update: &StatusUpdate, now: &Time) -> Result<bool, ApplyError> {
        let current = serde_json::to_value(&cluster.status).unwrap_or(Value::Null);
        let next = merged_status(&current, update, now);
        if next == current {
            return Ok(false);
        }
        let namespace = cluster.namespace().unwrap_or_default();
        let api: Api<RayCluster> = Api::namespaced(self.client.clone(), &namespace);
        let patch = json!({ "status": next });
        let result = api.patch_status(&cluster.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
        self.metrics.write("status", "RayCluster", result.is_ok());
        result.map(|_| true).map_err(|source| ApplyError::Api {
            action: format!("writing the status of RayCluster {namespace}/{}", cluster.name_any()),
            source,
        })
    }

    /// Records an Event about the RayCluster (or another object).
    pub async fn event(&self, cluster: &RayCluster, event: &crate::runtime::Event) -> Result<(), ApplyError> {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let regarding = match &event.regarding {
            Some(r) => k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(r.api_version.clone()),
                kind: Some(r.kind.clone()),
                name: Some(r.name.clone()),
                namespace: r.namespace.clone().or_else(|| cluster.namespace()),
                uid: r.uid.clone(),
                ..Default::default()
            },
            None => cluster.object_ref(&()),
        };
        let type_ = match event.type_ {
            crate::runtime::EventType::Normal => EventType::Normal,
            crate::runtime::EventType::Warning => EventType::Warning,
        };
        let result = recorder
            .publish(
                &Event {
                    type_,
                    reason: event.reason.clone(),
                    note: Some(event.message.clone()),
                    action: event.reason.clone(),
                    secondary: None,
                },
                &regarding,
            )
            .await;
        self.metrics.write("event", "Event", result.is_ok());
        result.map_err(|source| ApplyError::Api { action: format!("recording event {}", event.reason), source })
    }

    fn dynamic_api(&self, namespace: &str, object: &Value) -> Result<(Api<DynamicObject>, String, String), ApplyError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let action = format!("writing {kind} {namespace}/{name}");
        if !WRITABLE.contains(&(api_version, kind)) {
            return Err(ApplyError::Refused { action, reason: format!("{api_version} {kind} is not a kind this controller writes") });
        }
        if object["metadata"]["namespace"].as_str().is_some_and(|ns| ns != namespace) {
            return Err(ApplyError::Refused { action, reason: "outside the RayCluster's namespace".into() });
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        Ok((Api::namespaced_with(self.client.clone(), namespace, &resource), kind.to_string(), name))
    }
}

/// The status after an update: `fields` merged over the current status, and conditions set by
/// type. A condition keeps its `lastTransitionTime` unless its status changed, so an unchanged
/// update yields exactly the current status and no write.
pub fn merged_status(current: &Value, update: &StatusUpdate, now: &Time) -> Value {
    let mut next = match current {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(Value::Object(fields)) = update.fields.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok()) {
        for (key, value) in fields {
            if value.is_null() {
                next.remove(&key);
            } else {
                next.insert(key, value);
            }
        }
    }
    if !update.conditions.is_empty() {
        let existing: BTreeMap<String, Value> = next
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["type"].as_str()?.to_string(), c.clone())))
            .collect();
        let mut conditions: Vec<Value> = existing.values().cloned().collect();
        for condition in &update.conditions {
            let value = condition_json(condition, existing.get(&condition.type_), now);
            match conditions.iter_mut().find(|c| c["type"] == condition.type_.as_str()) {
                Some(slot) => *slot = value,
                None => conditions.push(value),
            }
        }
        next.insert("conditions".into(), Value::Array(conditions));
    }
    Value::Object(next)
}

fn condition_json(condition: &Condition, previous: Option<&Value>, now: &Time) -> Value {
    let status = match condition.status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    };
    let unchanged = previous.is_some_and(|p| p["status"] == status);
    let transition = match previous {
        Some(p) if unchanged => p["lastTransitionTime"].clone(),
        _ => serde_json::to_value(now).unwrap_or(Value::Null),
    };
    let mut value = json!({
        "type": condition.type_,
        "status": status,
        "reason": condition.reason,
        "message": condition.message,
        "lastTransitionTime": transition,
    });
    if let Some(generation) = previous.and_then(|p| p.get("observedGeneration")) {
        value["observedGeneration"] = generation.clone();
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        serde_json::from_value(json!(s)).unwrap()
    }

    fn ready(status: ConditionStatus) -> StatusUpdate {
        StatusUpdate {
            conditions: vec![Condition {
                type_: "HeadPodReady".into(),
                status,
                reason: "HeadPodRunningAndReady".into(),
                message: String::new(),
            }],
            fields: Some(r#"{"state":"ready"}"#.into()),
        }
    }

    #[test]
    fn an_unchanged_update_yields_the_current_status() {
        let first = merged_status(&Value::Null, &ready(ConditionStatus::True), &time("2026-01-01T00:00:00Z"));
        let again = merged_status(&first, &ready(ConditionStatus::True), &time("2026-01-01T00:05:00Z"));
        assert_eq!(first, again);
    }

    #[test]
    fn a_condition_that_flips_gets_a_new_transition_time() {
        let first = merged_status(&Value::Null, &ready(ConditionStatus::True), &time("2026-01-01T00:00:00Z"));
        let flipped = merged_status(&first, &ready(ConditionStatus::False), &time("2026-01-01T00:05:00Z"));
        assert_eq!(flipped["conditions"][0]["lastTransitionTime"], "2026-01-01T00:05:00Z");
        assert_eq!(flipped["conditions"][0]["status"], "False");
    }

    #[test]
    fn null_fields_remove_a_status_field() {
        let current = json!({ "state": "ready", "reason": "old" });
        let update = StatusUpdate { conditions: vec![], fields: Some(r#"{"reason":null}"#.into()) };
        assert_eq!(merged_status(&current, &update, &time("2026-01-01T00:00:00Z")), json!({ "state": "ready" }));
    }
}
