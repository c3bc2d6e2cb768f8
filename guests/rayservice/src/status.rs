//! The RayService's status as the pass changes it, and the change as one status op: the top-level fields that differ (`null` for those cleared) and the conditions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use wasmray_api::{RayServiceStatus, RayServiceStatuses};
use wasmray_guest_sdk::{Condition, ConditionStatus, StatusUpdate};

/// A condition as the old status has it: status, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub status: String,
    pub reason: String,
    pub message: String,
    /// Unix milliseconds.
    pub since_ms: Option<i64>,
}

/// The status before the pass and the one it is turning into.
#[derive(Debug)]
pub struct Status {
    old: RayServiceStatuses,
    /// The status being built; steps edit it directly.
    pub next: RayServiceStatuses,
    /// Conditions to set (`None`: remove), by type.
    conditions: BTreeMap<String, Option<Condition>>,
}

impl Status {
    pub fn of(old: Option<&RayServiceStatuses>) -> Self {
        let old = old.cloned().unwrap_or_default();
        Status { next: old.clone(), old, conditions: BTreeMap::new() }
    }

    /// The condition `type_` of the status before the pass.
    pub fn seen(&self, type_: &str) -> Option<Seen> {
        let c = self.old.conditions.iter().flatten().find(|c| c.type_ == type_)?;
        Some(Seen {
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            since_ms: Some(wasmray_guest_sdk::k8s::millis(&c.last_transition_time)),
        })
    }

    /// Whether the old status had `type_` with `reason` (and, when given, `message`).
    pub fn had(&self, type_: &str, reason: &str, message: Option<&str>) -> bool {
        self.seen(type_).is_some_and(|s| s.reason == reason && message.is_none_or(|m| s.message == m))
    }

    pub fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: impl Into<String>) {
        self.conditions.insert(type_.into(), Some(Condition::new(type_, status, reason, &message.into())));
    }

    /// Removes `type_` (a no-op when the status has none).
    pub fn remove(&mut self, type_: &str) {
        self.conditions.insert(type_.into(), None);
    }

    /// The condition this pass sets for `type_`, if any.
    pub fn setting(&self, type_: &str) -> Option<&Condition> {
        self.conditions.get(type_).and_then(Option::as_ref)
    }

    pub fn active_name(&self) -> Option<&str> {
        cluster_name(self.next.active_service_status.as_ref())
    }

    pub fn pending_name(&self) -> Option<&str> {
        cluster_name(self.next.pending_service_status.as_ref())
    }

    pub fn old_active_name(&self) -> Option<&str> {
        cluster_name(self.old.active_service_status.as_ref())
    }

    pub fn old_pending_name(&self) -> Option<&str> {
        cluster_name(self.old.pending_service_status.as_ref())
    }

    /// The op with what changed, `lastUpdateTime` stamped when anything did; `None` when nothing did.
    pub fn into_update(mut self, now_ms: i64, generation: Option<i64>) -> Option<StatusUpdate> {
        self.next.observed_generation = generation.or(self.next.observed_generation);
        let conditions_changed = self.conditions.iter().any(|(type_, wanted)| {
            let old = self.old.conditions.iter().flatten().find(|c| &c.type_ == type_);
            match (old, wanted) {
                (None, None) => false,
                (Some(_), None) | (None, Some(_)) => true,
                (Some(o), Some(w)) => o.status != status_text(w.status) || o.reason != w.reason || o.message != w.message,
            }
        });
        let old = fields(&self.old);
        let mut next = fields(&self.next);
        let differs = |next: &serde_json::Map<String, Value>| {
            next.iter().any(|(k, v)| old.get(k) != Some(v)) || old.keys().any(|k| !next.contains_key(k))
        };
        if !differs(&next) && !conditions_changed {
            return None;
        }
        if let Some(now) = time(now_ms) {
            next.insert("lastUpdateTime".into(), serde_json::to_value(now).unwrap_or(Value::Null));
        }
        let mut changed = serde_json::Map::new();
        for (key, value) in &next {
            if old.get(key) != Some(value) {
                changed.insert(key.clone(), value.clone());
            }
        }
        for key in old.keys().filter(|k| !next.contains_key(*k)) {
            changed.insert(key.clone(), Value::Null);
        }
        let conditions = self
            .conditions
            .into_iter()
            .map(|(type_, c)| c.unwrap_or_else(|| Condition::removal(&type_)))
            .collect();
        Some(StatusUpdate { conditions, fields: Some(Value::Object(changed).to_string()) })
    }
}

/// The status as JSON without its conditions (written through the update's conditions).
fn fields(status: &RayServiceStatuses) -> serde_json::Map<String, Value> {
    let mut map = match serde_json::to_value(status) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    map.remove("conditions");
    map.remove("lastUpdateTime");
    map
}

fn status_text(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

fn cluster_name(status: Option<&RayServiceStatus>) -> Option<&str> {
    status.and_then(|s| s.ray_cluster_name.as_deref()).filter(|n| !n.is_empty())
}

/// A status timestamp for Unix milliseconds.
pub fn time(ms: i64) -> Option<Time> {
    serde_json::from_value(Value::String(wasmray_guest_sdk::k8s::rfc3339(ms))).ok()
}

/// Unix milliseconds of a status timestamp.
pub fn ms(time: &Time) -> i64 {
    wasmray_guest_sdk::k8s::millis(time)
}
