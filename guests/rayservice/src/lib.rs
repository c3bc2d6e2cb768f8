//! The RayService reconciler: a pure function from a snapshot of a RayService, its RayClusters, Services, head Pods, EndpointSlices and Serve facts to a plan.
//!
//! CONTRACT_DOCS

mod children;
mod cluster;
mod facts;
mod machine;
mod serve;
mod services;
mod status;
mod validate;
pub mod vocab;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;


use serde_json::{Value, json};
use wasmray_api::RayService;
use wasmray_guest_sdk::{EventType, ObjectRef, Op, Plan, PluginError, Reconciler, Snapshot, parse};

use children::Children;
use facts::Facts;
pub use machine::State;
use status::Status;

/// What every step reads.
pub struct Ctx<'a> {
    pub service: &'a RayService,
    pub raw: &'a Value,
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: Option<&'a str>,
    pub children: &'a Children,
    pub facts: &'a Facts,
    pub now_ms: i64,
    pub seed: u64,
}

impl Ctx<'_> {
    /// A RayService annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.service.metadata.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The controller reference every object the RayService creates carries.
    pub fn owner_reference(&self) -> Value {
        json!({
            "apiVersion": wasmray_api::API_VERSION,
            "kind": "RayService",
            "name": self.name,
            "uid": self.uid.unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        })
    }

    /// A child, by its own apiVersion, kind, name and UID.
    pub fn child_ref(&self, child: &Value) -> ObjectRef {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        ObjectRef {
            api_version: text(&child["apiVersion"]),
            kind: text(&child["kind"]),
            namespace: Some(self.namespace.to_owned()),
            name: text(&child["metadata"]["name"]),
            uid: child["metadata"]["uid"].as_str().map(str::to_owned),
        }
    }
}

/// The plan being built: child writes and Events in order, the status last.
pub struct Out {
    pub ops: Vec<Op>,
    pub status: Status,
    pub requeue_after_ms: Option<u64>,
}

impl Out {
    fn apply(&mut self, object: Value) {
        self.ops.push(Op::Apply(object.to_string()));
    }
    fn delete(&mut self, object: ObjectRef) {
        self.ops.push(Op::Delete(object));
    }
    fn event(&mut self, type_: EventType, reason: &str, message: impl Into<String>) {
        let plan = Plan { ops: std::mem::take(&mut self.ops), requeue_after_ms: None };
        self.ops = plan.event(type_, reason, &message.into()).ops;
    }
    /// Come back at `at_ms` (never later than another timer asked).
    fn wake_at(&mut self, now_ms: i64, at_ms: i64) {
        let after = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0).max(1);
        self.requeue_after_ms = Some(self.requeue_after_ms.map_or(after, |r| r.min(after)));
    }
    /// KubeRay's regular look at a RayService whose state moves.
    fn poll(&mut self) {
        self.requeue_after_ms = Some(self.requeue_after_ms.map_or(vocab::POLL_MS, |r| r.min(vocab::POLL_MS)));
    }
}

/// Decides what to do about one RayService.
///
/// # Errors
/// [`PluginError::InvalidInput`] when the primary or a child does not parse. An invalid spec is
/// not an error: it is v1.6's `ValidationFailed` condition and a Warning Event.
pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PluginError> {
    let raw: Value = parse(&snapshot.primary)?;
    let service: RayService = serde_json::from_value(raw.clone())
        .map_err(|e| PluginError::InvalidInput(format!("the primary object is not a RayService: {e}")))?;
    let name = service.metadata.name.as_deref().filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| PluginError::InvalidInput("the RayService has no metadata.name".into()))?;
    if service.spec.managed_by.as_deref().is_some_and(|m| m != vocab::MANAGED_BY_OPERATOR) {
        // Another controller owns it; not even its status is ours.
        return Ok(Plan::new());
    }
    let status = service.status.as_ref();
    let names = [
        status.and_then(|s| s.active_service_status.as_ref()).and_then(|s| s.ray_cluster_name.as_deref()),
        status.and_then(|s| s.pending_service_status.as_ref()).and_then(|s| s.ray_cluster_name.as_deref()),
    ];
    let children = Children::parse(&snapshot.children, name)?;
    let facts = Facts::read(snapshot, names.into_iter().flatten());
    let ctx = Ctx {
        service: &service,
        raw: &raw,
        name,
        namespace: service.metadata.namespace.as_deref().unwrap_or("default"),
        uid: service.metadata.uid.as_deref(),
        children: &children,
        facts: &facts,
        now_ms: snapshot.now,
        seed: snapshot.seed,
    };
    let mut out = Out { ops: Vec::new(), status: Status::of(status), requeue_after_ms: None };
    machine::run(&ctx, &mut out);
    let mut ops = out.ops;
    if service.metadata.deletion_timestamp.is_none()
        && let Some(update) = out.status.into_update(snapshot.now, service.metadata.generation)
    {
        ops.push(Op::Status(update));
    }
    Ok(Plan { ops, requeue_after_ms: out.requeue_after_ms })
}

/// The component's entry point.
pub struct RayServiceReconciler;

impl Reconciler for RayServiceReconciler {
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError> {
        reconcile(&snapshot)
    }
}

wasmray_guest_sdk::export_reconciler!(RayServiceReconciler);
