//! The one writer: performs every write of the operator — creates in slow-start batches,
//! server-side applies, deletes with UID preconditions, status, and Events — and only while
//! this replica leads. An Event about a write is recorded from that write's result.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Reporter};
use kube::Client;
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::runtime::{Condition, ConditionStatus, Event, EventType, ObjectRef as WitRef, StatusUpdate};

use super::events::{Correlator, Recorders};
use super::metrics::Metrics;
use crate::ray::poller::Poller;
use super::prepare::{Role, Verb, Write};
use super::share::{Budget, Owner, Share};

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
    /// This replica does not hold the leader lease: it writes nothing.
    #[error("not the leader: {action} not performed")]
    NotLeader {
        /// What was asked.
        action: String,
    },
}

impl ApplyError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ApplyError::Api { source: kube::Error::Api(s), .. } if s.code == 409 => "conflict",
            ApplyError::Api { .. } => "api_error",
            ApplyError::Refused { .. } => "refused",
            ApplyError::NotLeader { .. } => "not_leader",
        }
    }
}

/// Whether this replica may write. Without leader election it always may; with it, only while
/// it holds the lease, and a lost lease stops the very next write.
#[derive(Clone, Debug)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// Leading from the start (leader election off).
    pub fn always() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// Not leading until [`Leadership::set`] says so.
    pub fn standby() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }

    pub fn set(&self, leading: bool) {
        self.0.store(leading, Ordering::SeqCst);
    }

    pub fn leading(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The primary a batch of writes is for.
pub struct Primary<'a> {
    /// Its API resource (for status writes).
    pub resource: &'a ApiResource,
    pub namespace: &'a str,
    pub name: &'a str,
    /// What its Events regard.
    pub reference: ObjectReference,
    /// Who its Events are reported by (KubeRay's recorder name for the kind).
    pub reporter: &'a Reporter,
    /// The kinds its plans may write, besides itself.
    pub writable: &'a [(&'a str, &'a str)],
    /// The `resourceVersion` the plan was decided from: the status write is conditional on it,
    /// so a status another writer changed since is never overwritten unseen (409, retried).
    pub resource_version: Option<String>,
}

/// The creates of a run that starts with `first`, as one slow-start batch, and the Events tied
/// to them, which wait for the batch. A plan says each create's Event right after it (`Created
/// WorkerPod` after each worker): taking only adjacent creates would make every create a batch
/// of its own, sent one at a time and never stopped by a failure.
fn gather_creates(first: Pending, writes: &mut std::iter::Peekable<impl Iterator<Item = Write>>) -> (Vec<Pending>, Vec<(Event, usize)>) {
    let mut batch = vec![first];
    let mut tied = Vec::new();
    loop {
        match writes.peek() {
            Some(Write::Create { .. }) => {
                if let Some(Write::Create { object, role, group, failure_reason }) = writes.next() {
                    batch.push(Pending::new(object, role, group, failure_reason));
                }
            }
            Some(Write::Event { after: Some(group), .. }) if batch.iter().any(|p| p.group == *group) => {
                if let Some(Write::Event { event, after: Some(group) }) = writes.next() {
                    tied.push((event, group));
                }
            }
            _ => return (batch, tied),
        }
    }
}

/// A create waiting for its slow-start batch.
#[derive(Debug)]
struct Pending {
    /// What [`Writer::dynamic_api`] reads of the object: apiVersion, kind, name, namespace.
    head: Value,
    /// The object as JSON text, or why it is not one the apiserver could take. A batch waits
    /// for its turns, and a `Value` holds a Ray Pod in about six times its text's size: eight
    /// 100-Pod plans waiting held some 25 MiB of them.
    body: Result<String, String>,
    role: Role,
    group: usize,
    failure_reason: &'static str,
}

impl Pending {
    fn new(object: Value, role: Role, group: usize, failure_reason: &'static str) -> Self {
        let metadata = &object["metadata"];
        let head = json!({
            "apiVersion": object["apiVersion"], "kind": object["kind"],
            "metadata": { "name": metadata["name"], "namespace": metadata["namespace"] },
        });
        // The check a typed read of the object would make (of its metadata; its apiVersion and
        // kind are checked by `dynamic_api`), without building one.
        let body = ObjectMeta::deserialize(metadata)
            .map_err(|e| e.to_string())
            .and_then(|_| serde_json::to_string(&object).map_err(|e| e.to_string()));
        Self { head, body, role, group, failure_reason }
    }
}

/// A write that failed, for the reconcile's outcome.
#[derive(Clone, Debug)]
pub struct Failure {
    pub verb: Verb,
    pub kind: String,
    pub role: Role,
    pub message: String,
}

/// What a batch of writes came to.
#[derive(Debug, Default)]
pub struct Report {
    /// Pods the API server created (or found existing), projected as the cache keeps them.
    pub created_pods: Vec<Value>,
    /// UIDs of Pods whose deletion it accepted.
    pub deleted_pods: Vec<String>,
    /// Creates and deletes that failed.
    pub failures: Vec<Failure>,
    /// The first error of any write (the reconcile returns it so the error policy retries).
    pub error: Option<ApplyError>,
    /// The primary's status as written and the `resourceVersion` it got, if a status write
    /// succeeded.
    pub status: Option<(Value, Option<String>)>,
}

/// Performs writes as `field_manager`; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    field_manager: String,
    metrics: Metrics,
    leadership: Leadership,
    /// Which Events are sent, as which series ([`super::events`]).
    correlator: Arc<Correlator>,
    recorders: Recorders,
    /// Who performs the dashboard calls of plans (submit, stop); none: such plans fail.
    poller: Option<Arc<Poller>>,
    /// Every write waits for its primary's turn.
    share: Share,
    /// Events wait for their primary's turn within a budget of their own, as KubeRay's recorder
    /// sends them through a client of its own: a scale-up's Events never halve its creates.
    event_share: Share,
}

impl Writer {
    pub fn new(client: Client, field_manager: &str, metrics: Metrics, leadership: Leadership) -> Self {
        Self {
            client,
            field_manager: field_manager.to_string(),
            metrics,
            leadership,
            correlator: Arc::default(),
            recorders: Recorders::default(),
            poller: None,
            share: Share::new(Budget::default()),
            event_share: Share::new(Budget::default()),
        }
    }

    /// This writer's writes share `budget` of the API server, taking turns by primary; its
    /// Events share another such budget.
    #[must_use]
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.share = Share::new(budget);
        self.event_share = Share::new(budget);
        self
    }

    /// This writer hands the plans' dashboard calls to `poller`.
    #[must_use]
    pub fn with_poller(mut self, poller: Arc<Poller>) -> Self {
        self.poller = Some(poller);
        self
    }

    /// The field manager of every write.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// Performs `writes` in order. Writes after a failure still run: a failed create must not
    /// keep the status or other Events from being written; but a lost lease stops everything.
    pub async fn perform(&self, primary: &Primary<'_>, writes: Vec<Write>) -> Report {
        let mut report = Report::default();
        let mut failed_groups: HashSet<usize> = HashSet::new();
        // A plan that applies the primary's own metadata (a finalizer) moves its version on.
        let mut version = primary.resource_version.clone();
        let mut writes = writes.into_iter().peekable();
        while let Some(write) = writes.next() {
            if !self.leadership.leading() {
                report.error.get_or_insert(ApplyError::NotLeader { action: "the rest of the plan".into() });
                break;
            }
            match write {
                Write::Create { object, role, group, failure_reason } => {
                    let (batch, tied) = gather_creates(Pending::new(object, role, group, failure_reason), &mut writes);
                    self.create_batch(primary, batch, &mut report, &mut failed_groups).await;
                    for (event, group) in tied {
                        if !failed_groups.contains(&group) {
                            self.publish(primary, &event).await;
                        }
                    }
                }
                Write::Apply { object, group, failure_reason } => match self.apply(primary, object, false).await {
                    Ok(applied) => {
                        if is_primary(primary, &applied) {
                            version = applied.metadata.resource_version.or(version);
                        }
                    }
                    Err(error) => {
                        failed_groups.insert(group);
                        if let Some(reason) = failure_reason {
                            self.publish(primary, &warning(reason, &error.to_string())).await;
                        }
                        report.error.get_or_insert(error);
                    }
                },
                Write::Companion { object } => {
                    if let Err(error) = self.apply(primary, object, true).await {
                        report.error.get_or_insert(error);
                    }
                }
                Write::Delete { target, role, group, failure_reason } => match self.delete(primary, &target).await {
                    Ok(()) => {
                        if target.kind == "Pod"
                            && let Some(uid) = target.uid
                        {
                            report.deleted_pods.push(uid);
                        }
                    }
                    Err(error) => {
                        failed_groups.insert(group);
                        let message = error.to_string();
                        self.publish(primary, &warning(failure_reason, &message)).await;
                        report.failures.push(Failure { verb: Verb::Delete, kind: target.kind.clone(), role, message });
                        report.error.get_or_insert(error);
                    }
                },
                Write::Status { status } => match self.status(primary, version.as_deref(), status.clone()).await {
                    Ok(written) => {
                        version.clone_from(&written);
                        report.status = Some((status, written));
                    }
                    Err(error) => {
                        report.error.get_or_insert(error);
                    }
                },
                Write::Dashboard { call, group } => match &self.poller {
                    Some(poller) => poller.call(&primary.resource.kind, &crate::cache::Key::new(primary.namespace, primary.name), call),
                    None => {
                        failed_groups.insert(group);
                        report.error.get_or_insert(ApplyError::Refused {
                            action: format!("{} {}", call.verb(), call.id()),
                            reason: "this operator has no Ray dashboard client".into(),
                        });
                    }
                },
                Write::Event { event, after } => {
                    if after.is_none_or(|group| !failed_groups.contains(&group)) {
                        self.publish(primary, &event).await;
                    }
                }
            }
        }
        report
    }

    /// Creates in slow-start batches (1, 2, 4, … 32), stopping after a batch with a failure, so
    /// a quota or an invalid template fails once, not a hundred times. An object that already
    /// exists counts as created. Creates never attempted fail their group too.
    async fn create_batch(
        &self,
        primary: &Primary<'_>,
        objects: Vec<Pending>,
        report: &mut Report,
        failed_groups: &mut HashSet<usize>,
    ) {
        let mut rest = objects.into_iter().peekable();
        let mut size = 1usize;
        while rest.peek().is_some() {
            let chunk: Vec<_> = rest.by_ref().take(size).collect();
            let results: Vec<_> = futures::stream::iter(chunk)
                .map(|pending: Pending| async move {
                    let kind = pending.head["kind"].as_str().unwrap_or_default().to_string();
                    (self.create(primary, &pending.head, pending.body).await, kind, pending.role, pending.group, pending.failure_reason)
                })
                .buffer_unordered(size)
                .collect()
                .await;
            let mut failed = false;
            for (result, kind, role, group, reason) in results {
                match result {
                    Ok(pod) => report.created_pods.extend(pod),
                    Err(error) => {
                        failed = true;
                        failed_groups.insert(group);
                        let message = error.to_string();
                        // One Warning per failed batch: the first failure says it.
                        if !report.failures.iter().any(|f| f.verb == Verb::Create) {
                            self.publish(primary, &warning(reason, &message)).await;
                        }
                        report.failures.push(Failure { verb: Verb::Create, kind, role, message });
                        report.error.get_or_insert(error);
                    }
                }
            }
            if failed {
                for pending in rest {
                    failed_groups.insert(pending.group);
                }
                return;
            }
            size = (size * 2).min(32);
        }
    }

    /// Creates one object from its JSON text (`head` names it); a Pod comes back as the cache
    /// will keep it, anything else as `None`.
    async fn create(&self, primary: &Primary<'_>, head: &Value, body: Result<String, String>) -> Result<Option<Value>, ApplyError> {
        let (api, kind, name) = self.dynamic_api(primary, head, false)?;
        let action = format!("creating {kind} {}/{name}", primary.namespace);
        let body = body.map_err(|reason| ApplyError::Refused { action: action.clone(), reason })?;
        let params = PostParams { field_manager: Some(self.field_manager.clone()), ..Default::default() };
        let mut request = kube::core::Request::new(api.resource_url())
            .create(&params, body.as_bytes().to_vec())
            .map_err(|e| ApplyError::Refused { action: action.clone(), reason: e.to_string() })?;
        request.extensions_mut().insert("create");
        let turn = self.share.turn(owner(primary)).await;
        let created = self.client.request::<DynamicObject>(request).await;
        drop(turn);
        let result = match created {
            Ok(created) => Ok(crate::cache::project::created_pod(created)),
            // Already there (a create whose answer was lost): the cache will keep what was sent.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Ok(serde_json::from_str::<DynamicObject>(&body).ok().and_then(crate::cache::project::created_pod))
            }
            Err(source) => Err(ApplyError::Api { action, source }),
        };
        self.metrics.write("create", &kind, result.as_ref().err());
        result
    }

    /// Server-side apply of one object: the primary's own metadata, or a companion object of a
    /// kind its batch-scheduler plugin declared (not in the controller's own list of kinds).
    async fn apply(&self, primary: &Primary<'_>, object: Value, companion: bool) -> Result<DynamicObject, ApplyError> {
        let (api, kind, name) = self.dynamic_api(primary, &object, companion)?;
        let params = PatchParams::apply(&self.field_manager).force();
        let _turn = self.share.turn(owner(primary)).await;
        let result = api
            .patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(|source| ApplyError::Api { action: format!("applying {kind} {}/{name}", primary.namespace), source });
        self.metrics.write("apply", &kind, result.as_ref().err());
        result
    }

    /// Deletes an object; with a UID, only that incarnation. Already gone is fine.
    async fn delete(&self, primary: &Primary<'_>, target: &WitRef) -> Result<(), ApplyError> {
        let action = format!("deleting {} {}/{}", target.kind, primary.namespace, target.name);
        if target.namespace.as_deref().is_some_and(|ns| ns != primary.namespace) {
            return Err(ApplyError::Refused { action, reason: "outside the primary's namespace".into() });
        }
        let head = json!({ "apiVersion": target.api_version, "kind": target.kind, "metadata": { "name": target.name } });
        let (api, kind, _) = self.dynamic_api(primary, &head, false)?;
        let params = DeleteParams {
            preconditions: target.uid.clone().map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
            propagation_policy: Some(kube::api::PropagationPolicy::Background),
            ..Default::default()
        };
        let turn = self.share.turn(owner(primary)).await;
        let deleted = api.delete(&target.name, &params).await;
        drop(turn);
        let result = match deleted {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
            Err(source) => Err(ApplyError::Api { action, source }),
        };
        self.metrics.write("delete", &kind, result.as_ref().err());
        result
    }

    /// Writes the primary's status (already merged by the plan's preparation), only if the
    /// primary is still at `version`; the `resourceVersion` it has after the write.
    async fn status(&self, primary: &Primary<'_>, version: Option<&str>, status: Value) -> Result<Option<String>, ApplyError> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), primary.namespace, primary.resource);
        let _turn = self.share.turn(owner(primary)).await;
        let result = api
            .patch_status(primary.name, &PatchParams::default(), &Patch::<()>::Json(status_patch(version, status)))
            .await
            .map(|written| written.metadata.resource_version)
            .map_err(|source| ApplyError::Api {
                action: format!("writing the status of {} {}/{}", primary.resource.kind, primary.namespace, primary.name),
                source,
            });
        self.metrics.write("status", &primary.resource.kind, result.as_ref().err());
        result
    }

    /// Records an Event about the primary (or what the event names), reported as the primary's
    /// controller. A failure to record is logged, never a reason to fail the reconcile.
    async fn publish(&self, primary: &Primary<'_>, event: &Event) {
        let regarding = match &event.regarding {
            Some(r) => ObjectReference {
                api_version: Some(r.api_version.clone()),
                kind: Some(r.kind.clone()),
                name: Some(r.name.clone()),
                namespace: r.namespace.clone().or_else(|| Some(primary.namespace.to_string())),
                uid: r.uid.clone(),
                ..Default::default()
            },
            None => primary.reference.clone(),
        };
        let type_ = match event.type_ {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        };
        let event = KubeEvent { type_, reason: event.reason.clone(), note: Some(event.message.clone()), action: event.reason.clone(), secondary: None };
        if let Err(error) = self.record_as(owner(primary), primary.reporter, &regarding, &event).await {
            tracing::warn!(%error, reason = %event.reason, "Event not recorded");
        }
    }

    /// Records one Event, as `reporter`: the one way any part of the operator records Events
    /// (reconciles, the primary watches, the plugin registry).
    ///
    /// # Errors
    ///
    /// If this replica does not lead, or the API server refuses the Event.
    pub async fn record(&self, reporter: &Reporter, regarding: &ObjectReference, event: &KubeEvent) -> Result<(), ApplyError> {
        let field = |f: &Option<String>| f.clone().unwrap_or_default();
        let owner = Owner::new(&field(&regarding.kind), &field(&regarding.namespace), &field(&regarding.name));
        self.record_as(owner, reporter, regarding, event).await
    }

    /// Records one Event in `owner`'s turn: an Event about a plan's Pod waits in its primary's
    /// line. An Event past its object's budget is counted, not sent.
    async fn record_as(&self, owner: Owner, reporter: &Reporter, regarding: &ObjectReference, event: &KubeEvent) -> Result<(), ApplyError> {
        if !self.leadership.leading() {
            return Err(ApplyError::NotLeader { action: format!("recording event {}", event.reason) });
        }
        let Some(admitted) = self.correlator.correlate(reporter, regarding, event) else {
            self.metrics.event_skipped(&reporter.controller);
            return Ok(());
        };
        let recorder = self.recorders.for_series(&self.client, reporter, &admitted.series);
        let _turn = self.event_share.turn(owner).await;
        let result = recorder
            .publish(&admitted.event(event), regarding)
            .await
            .map_err(|source| ApplyError::Api { action: format!("recording event {}", event.reason), source });
        self.metrics.write("event", "Event", result.as_ref().err());
        result
    }

    fn dynamic_api(&self, primary: &Primary<'_>, object: &Value, companion: bool) -> Result<(Api<DynamicObject>, String, String), ApplyError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let action = format!("writing {kind} {}/{name}", primary.namespace);
        let own = (api_version, kind) == (primary.resource.api_version.as_str(), primary.resource.kind.as_str());
        if !companion && !own && !primary.writable.contains(&(api_version, kind)) {
            return Err(ApplyError::Refused { action, reason: format!("{api_version} {kind} is not a kind this controller writes") });
        }
        if object["metadata"]["namespace"].as_str().is_some_and(|ns| ns != primary.namespace) {
            return Err(ApplyError::Refused { action, reason: "outside the primary's namespace".into() });
        }
        if !self.leadership.leading() {
            return Err(ApplyError::NotLeader { action });
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        Ok((Api::namespaced_with(self.client.clone(), primary.namespace, &resource), kind.to_string(), name))
    }
}

/// Whose turn a write of `primary`'s plan waits for.
fn owner(primary: &Primary<'_>) -> Owner {
    Owner::new(&primary.resource.kind, primary.namespace, primary.name)
}

/// The status write: the whole status replaced (a merge patch would keep the fields the plan
/// cleared, such as a suspended RayJob's `rayClusterName`, at any depth), with the version the
/// plan saw as a precondition: the apiserver answers 409 if the primary changed since.
pub fn status_patch(version: Option<&str>, status: Value) -> json_patch::Patch {
    let add = |tokens: &[&str], value: Value| {
        json_patch::PatchOperation::Add(json_patch::AddOperation { path: json_patch::jsonptr::PointerBuf::from_tokens(tokens.iter().copied()), value })
    };
    let precondition = version.map(|v| add(&["metadata", "resourceVersion"], Value::String(v.to_owned())));
    json_patch::Patch(precondition.into_iter().chain([add(&["status"], status)]).collect())
}

/// Whether `object` (as the apiserver returned it) is the primary itself.
fn is_primary(primary: &Primary<'_>, object: &DynamicObject) -> bool {
    let kind = object.types.as_ref().map(|t| t.kind.as_str());
    kind == Some(primary.resource.kind.as_str())
        && object.metadata.name.as_deref() == Some(primary.name)
        && object.metadata.namespace.as_deref() == Some(primary.namespace)
}

fn warning(reason: &str, message: &str) -> Event {
    Event { type_: EventType::Warning, reason: reason.into(), message: message.into(), regarding: None }
}

/// The reason that marks a condition of an update as the removal of its type (documented on
/// `status-update` in the WIT): 0.1 has no op to remove a condition, and a reason with a `/`
/// can never be a real one.
pub const REMOVE_CONDITION_REASON: &str = "wasmray.dev/remove";

/// The status after an update: `fields` merged over the current status, and conditions set by
/// type, or removed by a [`REMOVE_CONDITION_REASON`] marker. A condition keeps its
/// `lastTransitionTime` unless its status changed, so an unchanged update yields exactly the
/// current status and no write.
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
            if condition.reason == REMOVE_CONDITION_REASON {
                conditions.retain(|c| c["type"] != condition.type_.as_str());
                continue;
            }
            let value = condition_json(condition, existing.get(&condition.type_), now);
            match conditions.iter_mut().find(|c| c["type"] == condition.type_.as_str()) {
                Some(slot) => *slot = value,
                None => conditions.push(value),
            }
        }
        // Removing from a status without conditions leaves it without the field.
        if !conditions.is_empty() || next.contains_key("conditions") {
            next.insert("conditions".into(), Value::Array(conditions));
        }
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

    #[test]
    fn a_status_write_is_conditional_on_the_version_the_plan_saw() {
        let patch = serde_json::to_value(status_patch(Some("41"), json!({ "state": "ready" }))).unwrap();
        assert_eq!(
            patch,
            json!([
                { "op": "add", "path": "/metadata/resourceVersion", "value": "41" },
                { "op": "add", "path": "/status", "value": { "state": "ready" } },
            ])
        );
    }

    #[test]
    fn a_primary_never_read_from_the_apiserver_gets_its_status_written_unconditionally() {
        let patch = serde_json::to_value(status_patch(None, json!({}))).unwrap();
        assert_eq!(patch, json!([{ "op": "add", "path": "/status", "value": {} }]));
    }

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

    #[test]
    fn a_removal_marker_takes_the_condition_out_and_leaves_the_others() {
        let failing = StatusUpdate {
            conditions: vec![
                Condition { type_: "RayClusterReplicaFailure".into(), status: ConditionStatus::True, reason: "FailedCreateWorkerPod".into(), message: "quota".into() },
                Condition { type_: "HeadPodReady".into(), status: ConditionStatus::True, reason: "HeadPodRunningAndReady".into(), message: String::new() },
            ],
            fields: None,
        };
        let first = merged_status(&Value::Null, &failing, &time("2026-01-01T00:00:00Z"));
        let removal = |type_: &str| Condition { type_: type_.into(), status: ConditionStatus::Unknown, reason: REMOVE_CONDITION_REASON.into(), message: String::new() };
        let over = StatusUpdate { conditions: vec![removal("RayClusterReplicaFailure")], fields: None };
        let after = merged_status(&first, &over, &time("2026-01-01T00:05:00Z"));
        let types: Vec<&str> = after["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["HeadPodReady"]);
        let head_ready = first["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "HeadPodReady").unwrap();
        assert_eq!(&after["conditions"][0], head_ready, "the other condition is untouched");
        assert_eq!(merged_status(&after, &over, &time("2026-01-01T00:06:00Z")), after, "removing what is gone changes nothing");
        let fresh = merged_status(&Value::Null, &over, &time("2026-01-01T00:00:00Z"));
        assert_eq!(fresh, json!({}), "a removal is never written as a condition");
    }

    #[test]
    fn a_standby_replica_leads_only_once_told() {
        let leadership = Leadership::standby();
        assert!(!leadership.leading());
        leadership.set(true);
        assert!(leadership.clone().leading(), "clones share the one flag");
    }

    #[test]
    fn creates_with_an_event_after_each_go_out_as_one_batch_and_their_events_wait_for_it() {
        let create = |name: &str, group: usize| Write::Create {
            object: json!({ "kind": "Pod", "metadata": { "name": name } }),
            role: Role::Worker,
            group,
            failure_reason: "FailedToCreateWorkerPod",
        };
        let created = |group: usize| Write::Event {
            event: Event { type_: EventType::Normal, reason: "CreatedWorkerPod".into(), message: String::new(), regarding: None },
            after: Some(group),
        };
        let mut writes = vec![create("a", 0), created(0), create("b", 1), created(1), create("c", 2), Write::Status { status: json!({}) }]
            .into_iter()
            .peekable();
        let Some(Write::Create { object, role, group, failure_reason }) = writes.next() else { panic!() };
        let (batch, tied) = gather_creates(Pending::new(object, role, group, failure_reason), &mut writes);
        let names: Vec<&str> = batch.iter().map(|p| p.head["metadata"]["name"].as_str().unwrap_or_default()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(tied.iter().map(|(_, group)| *group).collect::<Vec<_>>(), [0, 1]);
        assert!(matches!(writes.next(), Some(Write::Status { .. })), "the status comes after the batch");
    }

    #[test]
    fn a_waiting_create_is_kept_as_text_with_what_names_it() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "demo-head", "namespace": "ml", "labels": { "ray.io/cluster": "demo" } },
            "spec": { "containers": [ { "name": "ray-head", "image": "rayproject/ray:2.54.0" } ] }
        });
        let pending = Pending::new(pod.clone(), Role::Head, 0, "FailedToCreateHeadPod");
        assert_eq!(pending.head, json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "demo-head", "namespace": "ml" } }));
        let body: Value = serde_json::from_str(pending.body.as_ref().unwrap()).unwrap();
        assert_eq!(body, pod, "the text is the whole object");
    }

    #[test]
    fn a_create_whose_metadata_is_not_object_metadata_is_refused_before_it_is_sent() {
        let pending = Pending::new(json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p", "labels": ["not", "a", "map"] } }), Role::Worker, 0, "FailedToCreateWorkerPod");
        let reason = pending.body.unwrap_err();
        assert!(reason.contains("invalid type"), "{reason}");
    }
}
