//! Decide, then write: a validated plan becomes the list of writes the one writer performs.
//!
//! Pure (the batch-scheduler plugin's decorations are added afterwards by
//! [`super::schedule`]). Here children are rendered by the kind's builders, writes whose result
//! already holds are dropped, status updates are merged into the status they will produce, and
//! each Event that follows a write in the plan is tied to it: the writer records it only if
//! that write succeeded, so an Event never claims a write that did not happen.

use serde_json::Value;

use crate::runtime::{Child, Event, EventType, ObjectRef as WitRef, Op, StatusUpdate};

use super::apply::merged_status;
use crate::ray::poller::{Call, DASHBOARD_API_VERSION};
use super::Kind;
use crate::pods::{BuildContext, BuildError};

/// Whether a Pod is a head, a worker, or not a Ray node at all, as the plan said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Head,
    Worker,
    Other,
}

impl Role {
    /// The role the plan's render op gives its objects.
    pub fn of_child(child: &Child) -> Self {
        match child {
            Child::HeadPod(_) => Role::Head,
            Child::WorkerPod(_) => Role::Worker,
            _ => Role::Other,
        }
    }

    /// The role a cached Pod was rendered with (its `ray.io/node-type`, written by the host).
    fn of_cached(child: &Value) -> Self {
        match child["metadata"]["labels"]["ray.io/node-type"].as_str() {
            Some("head") => Role::Head,
            Some("worker") => Role::Worker,
            _ => Role::Other,
        }
    }
}

/// What kind of write, for KubeRay's failure reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Create,
    /// A server-side apply of a child that already exists.
    Update,
    Delete,
}

/// One write. Writes of the same `group` came from one op of the plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Create a rendered child; consecutive creates go out as one slow-start batch.
    Create { object: Value, role: Role, group: usize, failure_reason: &'static str },
    /// Server-side apply of an object of the controller's own kinds; a child's apply carries
    /// the kind's reason for the Warning if it fails (the primary's own metadata has none).
    Apply { object: Value, group: usize, failure_reason: Option<&'static str> },
    /// Server-side apply of a batch-scheduler plugin's companion object (a declared kind).
    Companion { object: Value },
    /// Delete one object, with its UID as a precondition when the plan gave one.
    Delete { target: WitRef, role: Role, group: usize, failure_reason: &'static str },
    /// Replace the primary's status with this one (already merged; only when it changed).
    Status { status: Value },
    /// Record an Event; with `after`, only if every write of that group succeeded.
    Event { event: Event, after: Option<usize> },
    /// Ask a Ray dashboard (submit or stop a job); the answer comes back as a fact.
    Dashboard { call: Call, group: usize },
}

/// What [`prepare`] reads besides the plan.
pub struct Input<'a> {
    /// The primary as JSON, as the guest received it.
    pub primary: &'a Value,
    /// The primary's namespace: every write goes there.
    pub namespace: &'a str,
    /// The snapshot's children (cache plus expectations).
    pub children: &'a [Value],
    /// The time conditions transition at.
    pub now: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// The builders' settings.
    pub build: &'a BuildContext,
    /// Feature gate `RayClusterStatusConditions`: without it no condition is written.
    pub status_conditions: bool,
}

/// A child the kind's builders could not build: a Warning Event is among the writes, and the
/// reconcile fails with the error after the other writes.
#[derive(Debug)]
pub struct Unbuildable {
    pub role: Role,
    pub error: BuildError,
}

/// The writes of one plan, in order, and the children that could not be built.
#[derive(Debug, Default)]
pub struct Prepared {
    pub writes: Vec<Write>,
    pub unbuildable: Vec<Unbuildable>,
}

/// Turns `ops` into writes for the primary `typed` (see the module docs).
pub fn prepare<K: Kind>(typed: &K, input: &Input<'_>, ops: Vec<Op>) -> Prepared {
    let mut out = Prepared::default();
    // The group of the last write op seen, for the Events that follow it.
    let mut last_write: Option<usize> = None;
    for (group, op) in ops.into_iter().enumerate() {
        match op {
            Op::Render(child) => {
                last_write = Some(group);
                let role = Role::of_child(&child);
                match typed.render(&child, input.build, input.children) {
                    Ok(objects) => {
                        for mut object in objects {
                            if exists(input.children, &object) {
                                continue;
                            }
                            object["metadata"]["namespace"] = input.namespace.into();
                            let kind = object["kind"].as_str().unwrap_or_default().to_string();
                            let failure_reason = K::failure_reason(Verb::Create, &kind, role);
                            out.writes.push(Write::Create { object, role, group, failure_reason });
                        }
                    }
                    Err(error) => {
                        out.writes.push(Write::Event { event: warning(K::INVALID_SPEC_REASON, &error.to_string()), after: None });
                        out.unbuildable.push(Unbuildable { role, error });
                    }
                }
            }
            Op::Apply(text) => {
                last_write = Some(group);
                let object: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if object["apiVersion"] == DASHBOARD_API_VERSION {
                    out.writes.push(Write::Dashboard { call: Call::request(&object), group });
                    continue;
                }
                let own = same_object(&object, input.primary);
                let current = if own { Some(input.primary) } else { input.children.iter().find(|c| same_object(c, &object)) };
                if !current.is_some_and(|current| holds(current, &object)) {
                    let failure_reason = (!own).then(|| {
                        let verb = if current.is_some() { Verb::Update } else { Verb::Create };
                        K::failure_reason(verb, object["kind"].as_str().unwrap_or_default(), Role::Other)
                    });
                    out.writes.push(Write::Apply { object, group, failure_reason });
                }
            }
            Op::Delete(target) => {
                last_write = Some(group);
                if target.api_version == DASHBOARD_API_VERSION {
                    out.writes.push(Write::Dashboard { call: Call::stop(input.primary, &target.name), group });
                    continue;
                }
                let cached = input.children.iter().find(|c| {
                    c["kind"] == target.kind.as_str()
                        && c["metadata"]["name"] == target.name.as_str()
                        && target.uid.as_deref().is_none_or(|uid| c["metadata"]["uid"] == uid)
                });
                if cached.is_some_and(|c| !c["metadata"]["deletionTimestamp"].is_null()) {
                    continue; // already on its way out
                }
                let role = cached.map_or(Role::Other, Role::of_cached);
                let failure_reason = K::failure_reason(Verb::Delete, &target.kind, role);
                out.writes.push(Write::Delete { target, role, group, failure_reason });
            }
            Op::Status(mut update) => {
                if !input.status_conditions {
                    update.conditions.clear();
                }
                if let Some(status) = next_status(input.primary, &update, input.now) {
                    out.writes.push(Write::Status { status });
                }
            }
            Op::Event(event) => out.writes.push(Write::Event { event, after: last_write }),
        }
    }
    drop_orphaned_events(&mut out.writes);
    out
}

/// The status an update produces, if it differs from the current one.
fn next_status(primary: &Value, update: &StatusUpdate, now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<Value> {
    let current = primary.get("status").cloned().unwrap_or(Value::Null);
    let next = merged_status(&current, update, now);
    let unchanged = next == current || (current.is_null() && next.as_object().is_some_and(serde_json::Map::is_empty));
    (!unchanged).then_some(next)
}

/// Events tied to a group none of whose writes remain (they all already held, or the child
/// could not be built) would claim writes that will not happen: they go.
pub(super) fn drop_orphaned_events(writes: &mut Vec<Write>) {
    let groups: std::collections::HashSet<usize> = writes.iter().filter_map(group_of).collect();
    writes.retain(|w| match w {
        Write::Event { after: Some(group), .. } => groups.contains(group),
        _ => true,
    });
}

/// The plan op a write came from, for the Events tied to it.
pub fn group_of(write: &Write) -> Option<usize> {
    match write {
        Write::Create { group, .. } | Write::Apply { group, .. } | Write::Delete { group, .. } | Write::Dashboard { group, .. } => {
            Some(*group)
        }
        _ => None,
    }
}

/// Whether the children already hold an object of this kind and name.
fn exists(children: &[Value], object: &Value) -> bool {
    children.iter().any(|c| same_object(c, object))
}

fn same_object(a: &Value, b: &Value) -> bool {
    a["kind"] == b["kind"] && a["metadata"]["name"] == b["metadata"]["name"] && !a["kind"].is_null()
}

/// Whether every field `desired` sets already has that value in `current` (objects compared
/// key by key, anything else by equality); `apiVersion` is not compared.
fn holds(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(current), Value::Object(desired)) => desired
            .iter()
            .filter(|(key, _)| key.as_str() != "apiVersion")
            .all(|(key, value)| current.get(key).is_some_and(|c| holds(c, value))),
        _ => current == desired,
    }
}

fn warning(reason: &str, message: &str) -> Event {
    Event { type_: EventType::Warning, reason: reason.into(), message: message.into(), regarding: None }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runtime::{Condition, ConditionStatus, WorkerPod};
    use serde_json::json;
    use wasmray_api::RayCluster;

    pub(crate) fn a_cluster_with_one_cpu_group() -> (RayCluster, Value) {
        let primary = json!({
            "apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": { "name": "demo", "namespace": "ml", "uid": "uid-demo", "finalizers": ["ray.io/gcs-ft-redis-cleanup-finalizer"] },
            "spec": {
                "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [
                    { "name": "ray-head", "image": "rayproject/ray:2.54.0", "resources": { "limits": { "cpu": "2", "memory": "4Gi" } } } ] } } },
                "workerGroupSpecs": [ { "groupName": "cpu", "replicas": 2, "minReplicas": 0, "maxReplicas": 4, "rayStartParams": {},
                    "template": { "spec": { "containers": [ { "name": "ray-worker", "image": "rayproject/ray:2.54.0",
                        "resources": { "limits": { "cpu": "1", "memory": "1Gi" } } } ] } } } ]
            },
            "status": { "state": "ready" }
        });
        (serde_json::from_value(primary.clone()).unwrap(), primary)
    }

    fn with_a_banana_head_cpu() -> (RayCluster, Value) {
        let (_, mut primary) = a_cluster_with_one_cpu_group();
        primary["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "banana".into();
        (serde_json::from_value(primary.clone()).unwrap(), primary)
    }

    pub(crate) fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        serde_json::from_value(json!("2026-12-01T12:00:00Z")).unwrap()
    }

    pub(crate) fn input<'a>(primary: &'a Value, children: &'a [Value], now: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Time, build: &'a BuildContext) -> Input<'a> {
        Input { primary, namespace: "ml", children, now, build, status_conditions: true }
    }

    pub(crate) fn event(reason: &str) -> Op {
        Op::Event(Event { type_: EventType::Normal, reason: reason.into(), message: format!("{reason} message"), regarding: None })
    }

    pub(crate) fn worker(suffix: &str) -> Op {
        Op::Render(Child::WorkerPod(WorkerPod { group: "cpu".into(), suffix: suffix.into(), replica: None }))
    }

    pub(crate) fn reasons(writes: &[Write]) -> Vec<String> {
        writes.iter().filter_map(|w| if let Write::Event { event, .. } = w { Some(event.reason.clone()) } else { None }).collect()
    }

    #[test]
    fn a_render_becomes_a_create_in_the_namespace_with_its_event_tied_to_it() {
        let (cluster, primary) = a_cluster_with_one_cpu_group();
        let build = BuildContext::default();
        let time = now();
        let prepared = prepare(&cluster, &input(&primary, &[], &time, &build), vec![
            Op::Render(Child::HeadPod("abcde".into())),
            event("CreatedHeadPod"),
            worker("x1y2z"),
            event("CreatedWorkerPod"),
        ]);

        assert!(prepared.unbuildable.is_empty());
        let [Write::Create { object: head, role: Role::Head, group: 0, failure_reason: "FailedToCreateHeadPod" },
             Write::Event { after: Some(0), .. },
             Write::Create { object: worker, role: Role::Worker, group: 2, failure_reason: "FailedToCreateWorkerPod" },
             Write::Event { after: Some(2), .. }] = prepared.writes.as_slice()
        else {
            panic!("unexpected writes: {:#?}", prepared.writes)
        };
        assert_eq!(head["metadata"]["name"], "demo-head-abcde");
        assert_eq!(head["metadata"]["namespace"], "ml");
        assert_eq!(worker["metadata"]["name"], "demo-cpu-worker-x1y2z");
        assert_eq!(worker["metadata"]["ownerReferences"][0]["uid"], "uid-demo");
    }

    #[test]
    fn a_head_that_cannot_be_built_gets_one_warning_naming_the_field_and_no_created_event() {
        let (cluster, primary) = with_a_banana_head_cpu();
        let build = BuildContext::default();
        let time = now();
        let prepared = prepare(&cluster, &input(&primary, &[], &time, &build), vec![
            Op::Render(Child::HeadPod("abcde".into())),
            event("CreatedHeadPod"),
        ]);

        assert_eq!(reasons(&prepared.writes), ["InvalidRayClusterSpec"]);
        let Write::Event { event, after: None } = &prepared.writes[0] else { panic!() };
        assert!(event.message.contains("\"cpu\"") && event.message.contains("banana"), "{}", event.message);
        assert_eq!(prepared.unbuildable.len(), 1);
        assert_eq!(prepared.unbuildable[0].role, Role::Head);
    }

    #[test]
    fn writes_whose_result_already_holds_are_dropped_with_their_events() {
        let (cluster, primary) = a_cluster_with_one_cpu_group();
        let build = BuildContext::default();
        let time = now();
        let cached_service = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "demo-head-svc", "namespace": "ml" } });
        let children = [cached_service];
        let same_finalizer = json!({ "apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": { "name": "demo", "namespace": "ml", "finalizers": ["ray.io/gcs-ft-redis-cleanup-finalizer"] } });
        let prepared = prepare(&cluster, &input(&primary, &children, &time, &build), vec![
            Op::Render(Child::HeadService),
            event("CreatedService"),
            Op::Apply(same_finalizer.to_string()),
            Op::Status(StatusUpdate { conditions: vec![], fields: Some(r#"{"state":"ready"}"#.into()) }),
        ]);
        assert_eq!(prepared.writes, [], "the Service exists, the finalizer is there, the status is unchanged");
    }

    #[test]
    fn an_apply_that_changes_something_and_a_changed_status_are_kept() {
        let (cluster, primary) = a_cluster_with_one_cpu_group();
        let build = BuildContext::default();
        let time = now();
        let no_finalizer = json!({ "apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": { "name": "demo", "finalizers": [] } });
        let prepared = prepare(&cluster, &input(&primary, &[], &time, &build), vec![
            Op::Apply(no_finalizer.to_string()),
            Op::Status(StatusUpdate { conditions: vec![], fields: Some(r#"{"state":"suspended"}"#.into()) }),
        ]);
        let [Write::Apply { group: 0, failure_reason: None, .. }, Write::Status { status }] = prepared.writes.as_slice() else { panic!("{:#?}", prepared.writes) };
        assert_eq!(status["state"], "suspended");
    }

    #[test]
    fn an_ingress_apply_carries_kuberays_failure_reason_and_is_dropped_with_its_event_once_it_holds() {
        let (cluster, primary) = a_cluster_with_one_cpu_group();
        let build = BuildContext::default();
        let time = now();
        let ingress = json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": { "name": "demo-head-ingress", "namespace": "ml", "annotations": { "a": "1" } },
            "spec": { "ingressClassName": "nginx" } });
        let plan = || vec![Op::Apply(ingress.to_string()), event("CreatedIngress")];

        let fresh = prepare(&cluster, &input(&primary, &[], &time, &build), plan());
        let [Write::Apply { group: 0, failure_reason: Some("FailedToCreateIngress"), .. }, Write::Event { after: Some(0), .. }] = fresh.writes.as_slice()
        else {
            panic!("{:#?}", fresh.writes)
        };

        let mut cached = ingress.clone();
        cached["metadata"]["annotations"]["a"] = "0".into();
        let changed = [cached];
        let update = prepare(&cluster, &input(&primary, &changed, &time, &build), plan());
        assert!(matches!(update.writes.as_slice(), [Write::Apply { failure_reason: Some("FailedToUpdateIngress"), .. }, Write::Event { .. }]), "{:#?}", update.writes);

        let mut cached = ingress.clone();
        cached["metadata"]["uid"] = "u-ingress".into();
        cached["status"] = json!({ "loadBalancer": {} });
        let same = [cached];
        assert_eq!(prepare(&cluster, &input(&primary, &same, &time, &build), plan()).writes, [], "the Ingress already holds");
    }

    #[test]
    fn without_the_status_conditions_gate_no_condition_is_written() {
        let (cluster, primary) = a_cluster_with_one_cpu_group();
        let build = BuildContext::default();
        let time = now();
        let mut input = input(&primary, &[], &time, &build);
        input.status_conditions = false;
        let update = StatusUpdate {
            conditions: vec![Condition { type_: "HeadPodReady".into(), status: ConditionStatus::True, reason: "HeadPodRunningAndReady".into(), message: String::new() }],
            fields: None,
        };
        assert_eq!(prepare(&cluster, &input, vec![Op::Status(update)]).writes, []);
    }

    #[test]
    fn a_delete_knows_the_role_from_the_cached_pod_and_skips_one_already_terminating() {
        let (cluster, primary) = a_cluster_with_one_cpu_group();
        let build = BuildContext::default();
        let time = now();
        let pod = |name: &str, uid: &str, node_type: &str, deleting: bool| {
            let mut pod = json!({ "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": name, "uid": uid, "labels": { "ray.io/node-type": node_type } } });
            if deleting {
                pod["metadata"]["deletionTimestamp"] = "2026-12-01T11:59:00Z".into();
            }
            pod
        };
        // Named like a worker, labelled as the head: the label the host rendered decides.
        let children = [pod("demo-cpu-worker-odd", "u1", "head", false), pod("demo-cpu-worker-gone", "u2", "worker", true)];
        let delete = |name: &str, uid: &str| Op::Delete(WitRef { api_version: "v1".into(), kind: "Pod".into(), namespace: None, name: name.into(), uid: Some(uid.into()) });
        let prepared = prepare(&cluster, &input(&primary, &children, &time, &build), vec![
            delete("demo-cpu-worker-odd", "u1"),
            event("DeletedHeadPod"),
            delete("demo-cpu-worker-gone", "u2"),
            event("DeletedWorkerPod"),
        ]);
        let [Write::Delete { role: Role::Head, failure_reason: "FailedToDeleteHeadPod", .. }, Write::Event { after: Some(0), .. }] =
            prepared.writes.as_slice()
        else {
            panic!("{:#?}", prepared.writes)
        };
    }
}
