//! The snapshot's children reduced to what the reconciler decides from: Pods, Services, Jobs and RBAC by name.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodCondition, Service};
use serde::Deserialize;
use serde::de::IgnoredAny;
use wasmray_guest_sdk::{FieldMask, ObjectRef, PluginError, parse};

/// Whether a Pod is the head or a worker (the host writes the same label values).
pub use wasmray_api::labels::NodeType;

/// One Ray Pod of the cluster, classified.
#[derive(Clone, Debug)]
pub struct RayPod {
    pub name: String,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub node_type: NodeType,
    pub group: String,
    /// `ray.io/worker-group-replica-name`, on multi-host workers.
    pub replica_name: Option<String>,
    /// `ray.io/worker-group-replica-index`.
    pub replica_index: Option<u32>,
    pub phase: String,
    /// `deletionTimestamp` is set: the Pod is on its way out and counts as gone for scaling.
    pub terminating: bool,
    /// Phase Running and condition Ready=True.
    pub running_and_ready: bool,
    /// The `Ready` condition's type, status, reason and message; its times are not read.
    pub ready_condition: Option<PodCondition>,
    /// Why the Pod must be replaced (KubeRay's `shouldDeletePod`), if it must.
    pub unhealthy: Option<String>,
    pub pod_ip: Option<String>,
    /// The first container that is not ready: (name, waiting or terminated reason, message).
    pub first_not_ready: Option<(String, String, String)>,
    /// Why the Pod cannot run, when its status names a cause (see [`Cause`]).
    pub cause: Option<Cause>,
    /// The host's record of the group spec the Pod was built from
    /// (`wasmray_api::template_hash::TEMPLATE_HASH_ANNOTATION`); absent on Pods from before it.
    pub template_hash: Option<String>,
    /// The cluster's recreate hash when the Pod was built (KubeRay v1.6's annotation).
    pub recreate_hash: Option<String>,
}

/// Why a Pod cannot run, as its status says, first found in this order: the scheduler refused it
/// (`PodScheduled` False: `Unschedulable`, `SchedulingGated`), an init container is stuck or failed,
/// a container is stuck (`ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`,
/// `CreateContainerConfigError`…) or exited non-zero. A container that is merely being created
/// (`ContainerCreating`, `PodInitializing`) names no cause: it will get there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// The scheduler's or the container's reason, as Kubernetes spells it.
    pub reason: String,
    /// The scheduler's message as it is; for a container, `container <name>: <message>` (or
    /// `init container <name>: <message>`).
    pub message: String,
}

/// Waiting reasons of a container on its way up, not stuck.
const ON_ITS_WAY: [&str; 3] = ["", "ContainerCreating", "PodInitializing"];

impl Cause {
    fn of(status: &PodStatusView<'_>) -> Option<Self> {
        let unscheduled = status
            .conditions
            .iter()
            .flatten()
            .find(|c| text(&c.type_) == "PodScheduled" && text(&c.status) == "False")
            .map(|c| Cause {
                reason: Some(text(&c.reason))
                    .filter(|r| !r.is_empty())
                    .unwrap_or("Unschedulable")
                    .to_owned(),
                message: text(&c.message).to_owned(),
            });
        let first = |statuses: &Option<Vec<ContainerStatusView<'_>>>, kind: &str| {
            statuses
                .iter()
                .flatten()
                .find_map(|s| Self::of_container(s, kind))
        };
        unscheduled
            .or_else(|| first(&status.init_container_statuses, "init container"))
            .or_else(|| first(&status.container_statuses, "container"))
    }

    /// A container stuck waiting, or one that exited non-zero (and is not ready again).
    fn of_container(s: &ContainerStatusView<'_>, kind: &str) -> Option<Self> {
        if s.ready == Some(true) {
            return None;
        }
        let state = s.state.as_ref()?;
        let (reason, detail) = match (&state.waiting, &state.terminated) {
            (Some(w), _) if !ON_ITS_WAY.contains(&text(&w.reason)) => {
                (text(&w.reason).to_owned(), text(&w.message).to_owned())
            }
            (None, Some(t)) if t.exit_code.is_some_and(|c| c != 0) => {
                let code = t.exit_code.unwrap_or_default();
                let reason = Some(text(&t.reason))
                    .filter(|r| !r.is_empty())
                    .unwrap_or("Error");
                let detail = match text(&t.message) {
                    "" => format!("exited with code {code}"),
                    message => format!("exited with code {code}: {message}"),
                };
                (reason.to_owned(), detail)
            }
            _ => return None,
        };
        let name = text(&s.name);
        let message = if detail.is_empty() {
            format!("{kind} {name}")
        } else {
            format!("{kind} {name}: {detail}")
        };
        Some(Cause { reason, message })
    }
}

impl RayPod {
    /// A delete of exactly this Pod (UID precondition).
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    /// Classifies a child read as a Pod; `None` for a Pod that is not a Ray node.
    fn of(pod: ChildView<'_>) -> Option<Self> {
        let meta = pod.metadata?;
        let labels = meta.labels?;
        // Redis cleanup Job Pods and strangers are not Ray nodes.
        let node_type = NodeType::from_label(&labels.node_type?.0)?;
        let spec = pod.spec.unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let cause = Cause::of(&status);
        let phase = status.phase.map(Text::into_string).unwrap_or_default();
        let ready_condition = status
            .conditions
            .into_iter()
            .flatten()
            .find(|c| text(&c.type_) == "Ready")
            .map(|c| PodCondition {
                type_: "Ready".into(),
                status: c.status.map(Text::into_string).unwrap_or_default(),
                reason: owned(c.reason),
                message: owned(c.message),
                ..PodCondition::default()
            });
        let ready = ready_condition.as_ref().is_some_and(|c| c.status == "True");
        let ray_container = spec
            .containers
            .as_deref()
            .and_then(<[_]>::first)
            .map_or("", |c| text(&c.name));
        let statuses = status.container_statuses.unwrap_or_default();
        let ray_terminated = statuses
            .iter()
            .find(|s| text(&s.name) == ray_container)
            .and_then(|s| s.state.as_ref())
            .is_some_and(|s| s.terminated.is_some());
        let name = meta.name.map(Text::into_string).unwrap_or_default();
        let hashes = meta.annotations.unwrap_or_default();
        let restart_policy = spec.restart_policy.as_ref().map_or("Always", |p| &p.0);
        let unhealthy = if phase == "Failed" || phase == "Succeeded" {
            Some(format!("Pod {name} is {phase}, a terminal phase"))
        } else if phase == "Running" && ray_terminated && restart_policy == "Never" {
            Some(format!(
                "the Ray container of Pod {name} terminated and restartPolicy Never keeps it down"
            ))
        } else {
            None
        };
        let first_not_ready = statuses
            .iter()
            .find(|s| !s.ready.unwrap_or_default())
            .and_then(|s| {
                let state = s.state.as_ref()?;
                let why = state.waiting.as_ref().or(state.terminated.as_ref())?;
                Some((
                    text(&s.name).to_owned(),
                    text(&why.reason).to_owned(),
                    text(&why.message).to_owned(),
                ))
            });
        Some(RayPod {
            namespace: owned(meta.namespace),
            uid: owned(meta.uid),
            node_type,
            group: labels.group.map(Text::into_string).unwrap_or_default(),
            replica_name: owned(labels.replica_name),
            replica_index: labels.replica_index.and_then(|v| v.0.parse().ok()),
            terminating: meta.deletion_timestamp.is_some(),
            running_and_ready: phase == "Running" && ready,
            phase,
            ready_condition,
            unhealthy,
            pod_ip: owned(status.pod_ip),
            first_not_ready,
            cause,
            template_hash: owned(hashes.template),
            recreate_hash: owned(hashes.recreate),
            name,
        })
    }
}

/// The children the reconciler looks at.
#[derive(Debug, Default)]
pub struct Children {
    /// Ray Pods, sorted by name so every decision is independent of the host's list order.
    pub pods: Vec<RayPod>,
    pub services: Vec<Service>,
    pub jobs: Vec<Job>,
    /// Ingresses as JSON: only their name, UID and owner references are read.
    pub ingresses: Vec<serde_json::Value>,
    /// Names of other children by kind (`ServiceAccount`, `Role`, `RoleBinding`, `Secret`).
    pub names: BTreeMap<String, Vec<String>>,
}

impl Children {
    /// Parses the children of the cluster `cluster`; Pods of another cluster are ignored.
    ///
    /// Each child is deserialised once into a [`ChildView`] that borrows from `children`, so a
    /// Pod costs a few allocations (the strings [`RayPod`] keeps) instead of the hundreds of a
    /// `k8s_openapi` `Pod`. Services and Jobs are then parsed again as their full types: a
    /// cluster has a handful of them.
    pub fn parse(children: &[String], cluster: &str) -> Result<Self, PluginError> {
        let mut out = Children {
            pods: Vec::with_capacity(children.len()),
            ..Children::default()
        };
        for json in children {
            let child = ChildView::read(json, cluster)?;
            match text(&child.kind) {
                "Pod" => {
                    if child.of_other_cluster(cluster) {
                        continue;
                    }
                    if let Some(pod) = RayPod::of(child) {
                        out.pods.push(pod);
                    }
                }
                "Service" => out.services.push(parse(json)?),
                "Job" => out.jobs.push(parse(json)?),
                "Ingress" => out.ingresses.push(parse(json)?),
                "" => return Err(PluginError::InvalidInput("a child has no kind".into())),
                kind => {
                    let name = owned(child.metadata.and_then(|m| m.name));
                    let names = out.names.entry(kind.to_owned()).or_default();
                    names.push(name.unwrap_or_default());
                }
            }
        }
        out.pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether a child of this kind and name exists.
    pub fn has(&self, kind: &str, name: &str) -> bool {
        match kind {
            "Service" => self.service(name).is_some(),
            "Job" => self
                .jobs
                .iter()
                .any(|j| j.metadata.name.as_deref() == Some(name)),
            _ => self
                .names
                .get(kind)
                .is_some_and(|names| names.iter().any(|n| n == name)),
        }
    }

    /// The Ingress with this name.
    pub fn ingress(&self, name: &str) -> Option<&serde_json::Value> {
        self.ingresses
            .iter()
            .find(|i| i["metadata"]["name"] == name)
    }

    /// The Service with this name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    /// Head Pods.
    pub fn heads(&self) -> impl Iterator<Item = &RayPod> {
        self.pods.iter().filter(|p| p.node_type == NodeType::Head)
    }

    /// Worker Pods of one group.
    pub fn workers<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a RayPod> {
        self.pods
            .iter()
            .filter(move |p| p.node_type == NodeType::Worker && p.group == group)
    }
}

/// What the views below read of a Pod, declared to the host (`child-fields`) so it sends no
/// more: each path is a field of [`ChildView`] and the views under it. Services, Jobs, Ingresses
/// and the rest are read as whole objects or by name, and few, so they are sent whole.
/// `a_masked_snapshot_plans_as_the_whole_one` (in `tests.rs`) checks the plans agree.
pub fn child_fields() -> Vec<FieldMask> {
    vec![FieldMask::new(
        "v1",
        "Pod",
        &[
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            // Only some `ray.io/*` labels and two annotations are read, but their keys contain
            // dots, which a path cannot name one by one.
            "metadata.labels",
            "metadata.annotations",
            "metadata.deletionTimestamp",
            "spec.containers.name",
            "spec.restartPolicy",
            "status.phase",
            "status.podIP",
            "status.conditions.type",
            "status.conditions.status",
            "status.conditions.reason",
            "status.conditions.message",
            "status.containerStatuses.name",
            "status.containerStatuses.ready",
            "status.containerStatuses.state.waiting",
            "status.containerStatuses.state.terminated",
            "status.initContainerStatuses.name",
            "status.initContainerStatuses.ready",
            "status.initContainerStatuses.state.waiting",
            "status.initContainerStatuses.state.terminated",
        ],
    )]
}

// The views below are what a child is read into: only the fields the reconciler reads, strings
// borrowed from the snapshot's text. Fields are `Option`s because k8s-openapi reads an absent or
// `null` field as its default, and so must the views; serde skips every field a view does not
// name without allocating. Pods come from the host projected (spec reduced to the containers'
// names, images and ports, restartPolicy, nodeName and schedulerName), so nothing else of the
// spec may be read.

/// A JSON string, borrowed from the child's text unless it has escapes.
///
/// A newtype rather than a bare `Cow`: serde_derive borrows a `Cow<'a, str>` only when it is a
/// field's whole type, and an `Option<Cow<'a, str>>` always allocates.
#[derive(Deserialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl Text<'_> {
    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

/// The string, or `""` when absent (k8s-openapi's default for a required string).
fn text<'b>(t: &'b Option<Text<'_>>) -> &'b str {
    t.as_ref().map_or("", |t| &t.0)
}

fn owned(t: Option<Text<'_>>) -> Option<String> {
    t.map(Text::into_string)
}

/// One child: the kind and metadata every child has, and a spec and status read as a Pod's.
///
/// The spec and status are read before the kind is known (JSON objects have no key order), so
/// they are a Pod's shape whatever the kind; a child of another kind whose spec or status does
/// not fit that shape is read again without them (see [`ChildView::read`]).
#[derive(Deserialize)]
struct ChildView<'a> {
    #[serde(borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    metadata: Option<MetaView<'a>>,
    #[serde(borrow)]
    spec: Option<PodSpecView<'a>>,
    #[serde(borrow)]
    status: Option<PodStatusView<'a>>,
}

/// A child's kind and metadata alone.
#[derive(Deserialize)]
struct HeadView<'a> {
    #[serde(borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    metadata: Option<MetaView<'a>>,
}

impl<'a> ChildView<'a> {
    /// Reads one child. One whose spec or status does not fit a Pod's is read again for its kind
    /// and metadata only: that is an error for a Pod of this cluster (malformed), and none for
    /// any other child, which the reconciler reads by kind and name or ignores.
    fn read(json: &'a str, cluster: &str) -> Result<Self, PluginError> {
        let invalid =
            |e: serde_json::Error| PluginError::InvalidInput(format!("cannot parse a child: {e}"));
        let as_pod = match serde_json::from_str(json) {
            Ok(child) => return Ok(child),
            Err(e) => e,
        };
        let head: HeadView = serde_json::from_str(json).map_err(invalid)?;
        let child = ChildView {
            kind: head.kind,
            metadata: head.metadata,
            spec: None,
            status: None,
        };
        if text(&child.kind) == "Pod" && !child.of_other_cluster(cluster) {
            return Err(invalid(as_pod));
        }
        Ok(child)
    }

    /// Labelled as a Ray node of a cluster other than `cluster`.
    fn of_other_cluster(&self, cluster: &str) -> bool {
        self.metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.cluster.as_ref())
            .is_some_and(|c| c.0 != cluster)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaView<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    namespace: Option<Text<'a>>,
    #[serde(borrow)]
    uid: Option<Text<'a>>,
    #[serde(borrow)]
    labels: Option<RayLabels<'a>>,
    #[serde(borrow)]
    annotations: Option<HashAnnotations<'a>>,
    /// Only whether it is set matters.
    deletion_timestamp: Option<IgnoredAny>,
}

/// The `ray.io/*` labels the reconciler reads; every other label is skipped, so no map is built.
///
/// The keys are `wasmray_api::labels`' constants written out, since `rename` takes only a literal;
/// `ray_labels_are_read_under_wasmray_api_keys` checks that they agree.
#[derive(Deserialize)]
struct RayLabels<'a> {
    #[serde(borrow, rename = "ray.io/cluster")]
    cluster: Option<Text<'a>>,
    #[serde(borrow, rename = "ray.io/node-type")]
    node_type: Option<Text<'a>>,
    #[serde(borrow, rename = "ray.io/group")]
    group: Option<Text<'a>>,
    #[serde(borrow, rename = "ray.io/worker-group-replica-name")]
    replica_name: Option<Text<'a>>,
    #[serde(borrow, rename = "ray.io/worker-group-replica-index")]
    replica_index: Option<Text<'a>>,
}

/// The upgrade strategies' annotations (`wasmray_api::template_hash`'s keys written out, checked
/// by `hash_annotations_are_read_under_wasmray_api_keys`); every other annotation is skipped.
#[derive(Deserialize, Default)]
struct HashAnnotations<'a> {
    #[serde(borrow, rename = "wasmray.dev/template-hash")]
    template: Option<Text<'a>>,
    #[serde(borrow, rename = "ray.io/upgrade-strategy-recreate-hash")]
    recreate: Option<Text<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpecView<'a> {
    /// Only the first container's name is read: the Ray container.
    #[serde(borrow)]
    containers: Option<Vec<NameView<'a>>>,
    #[serde(borrow)]
    restart_policy: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct NameView<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatusView<'a> {
    #[serde(borrow)]
    phase: Option<Text<'a>>,
    #[serde(borrow, rename = "podIP")]
    pod_ip: Option<Text<'a>>,
    #[serde(borrow)]
    conditions: Option<Vec<ConditionView<'a>>>,
    #[serde(borrow)]
    container_statuses: Option<Vec<ContainerStatusView<'a>>>,
    #[serde(borrow)]
    init_container_statuses: Option<Vec<ContainerStatusView<'a>>>,
}

#[derive(Deserialize)]
struct ConditionView<'a> {
    #[serde(borrow, rename = "type")]
    type_: Option<Text<'a>>,
    #[serde(borrow)]
    status: Option<Text<'a>>,
    #[serde(borrow)]
    reason: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct ContainerStatusView<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
    ready: Option<bool>,
    #[serde(borrow)]
    state: Option<ContainerStateView<'a>>,
}

/// `running` is not read: a running container has neither of these.
#[derive(Deserialize)]
struct ContainerStateView<'a> {
    #[serde(borrow)]
    waiting: Option<ReasonView<'a>>,
    #[serde(borrow)]
    terminated: Option<ReasonView<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasonView<'a> {
    #[serde(borrow)]
    reason: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
    /// Terminated only.
    exit_code: Option<i32>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::{head, object};
    use crate::vocab::labels;

    #[test]
    fn ray_labels_are_read_under_wasmray_api_keys() {
        let mut map = serde_json::Map::new();
        for (key, value) in [
            (labels::CLUSTER, "rc"),
            (labels::NODE_TYPE, "worker"),
            (labels::GROUP, "gpu"),
            (labels::REPLICA_NAME, "gpu-a"),
            (labels::REPLICA_INDEX, "1"),
            (labels::IS_RAY_NODE, "yes"),
        ] {
            map.insert(key.into(), value.into());
        }
        let json = serde_json::Value::Object(map).to_string();
        let l: RayLabels = serde_json::from_str(&json).unwrap();
        let read = [
            l.cluster,
            l.node_type,
            l.group,
            l.replica_name,
            l.replica_index,
        ];
        assert_eq!(
            read.map(owned),
            ["rc", "worker", "gpu", "gpu-a", "1"].map(|v| Some(v.to_owned()))
        );
    }

    #[test]
    fn hash_annotations_are_read_under_wasmray_api_keys() {
        use wasmray_api::template_hash::{RECREATE_HASH_ANNOTATION, TEMPLATE_HASH_ANNOTATION};
        let json = json!({ TEMPLATE_HASH_ANNOTATION: "t", RECREATE_HASH_ANNOTATION: "r", "other": "x" }).to_string();
        let a: HashAnnotations = serde_json::from_str(&json).unwrap();
        assert_eq!((owned(a.template), owned(a.recreate)), (Some("t".into()), Some("r".into())));
    }

    fn cause(status: serde_json::Value) -> Option<Cause> {
        let mut pod = head("rc-head-x").0;
        pod["status"] = status;
        Children::parse(&[pod.to_string()], "rc").unwrap().pods[0]
            .cause
            .clone()
    }

    fn waiting(name: &str, reason: &str) -> serde_json::Value {
        json!({ "name": name, "ready": false, "state": { "waiting": { "reason": reason, "message": "m" } } })
    }

    #[test]
    fn a_pods_cause_is_the_scheduler_then_init_containers_then_containers() {
        let unscheduled = json!({ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no room" });
        let all = json!({ "conditions": [unscheduled],
            "initContainerStatuses": [waiting("init", "CrashLoopBackOff")],
            "containerStatuses": [waiting("ray", "ErrImagePull")] });
        assert_eq!(
            cause(all),
            Some(Cause {
                reason: "Unschedulable".into(),
                message: "no room".into()
            })
        );
        let containers = json!({ "initContainerStatuses": [waiting("init", "CrashLoopBackOff")],
            "containerStatuses": [waiting("ray", "ErrImagePull")] });
        assert_eq!(cause(containers).unwrap().message, "init container init: m");
        let config = json!({ "containerStatuses": [waiting("ray", "CreateContainerConfigError")] });
        assert_eq!(
            cause(config),
            Some(Cause {
                reason: "CreateContainerConfigError".into(),
                message: "container ray: m".into()
            })
        );
    }

    #[test]
    fn containers_on_their_way_up_or_done_name_no_cause_and_a_failed_init_container_does() {
        let coming = json!({ "initContainerStatuses": [waiting("init", "PodInitializing")],
            "containerStatuses": [waiting("ray", "ContainerCreating"), { "name": "log", "ready": true, "state": { "running": {} } }] });
        assert_eq!(cause(coming), None);
        let done = json!({ "initContainerStatuses": [{ "name": "init", "ready": true, "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } }] });
        assert_eq!(cause(done), None);
        let failed = json!({ "initContainerStatuses": [{ "name": "init", "ready": false, "state": { "terminated": { "exitCode": 2, "reason": "Error" } } }] });
        assert_eq!(
            cause(failed),
            Some(Cause {
                reason: "Error".into(),
                message: "init container init: exited with code 2".into()
            })
        );
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let m: MetaView =
            serde_json::from_str(r#"{ "name": "plain", "namespace": "tab\t" }"#).unwrap();
        assert!(matches!(m.name, Some(Text(Cow::Borrowed("plain")))));
        assert!(matches!(m.namespace, Some(Text(Cow::Owned(ns))) if ns == "tab\t"));
    }

    #[test]
    fn a_child_whose_status_is_not_a_pods_is_still_read_by_kind_and_name() {
        let mut group = object("scheduling.x-k8s.io/v1alpha1", "PodGroup", "rc-pg");
        group["status"] = json!({ "phase": { "not": "a string" }, "conditions": "none" });
        let children = Children::parse(&[group.to_string()], "rc").unwrap();
        assert!(children.has("PodGroup", "rc-pg"));
    }

    #[test]
    fn a_malformed_pod_is_an_error_unless_it_belongs_to_another_cluster() {
        let mut pod = head("rc-head-x").0;
        pod["status"]["phase"] = json!(1);
        assert!(matches!(
            Children::parse(&[pod.to_string()], "rc"),
            Err(PluginError::InvalidInput(_))
        ));
        let others = Children::parse(&[pod.to_string()], "other").unwrap();
        assert!(others.pods.is_empty());
    }
}
