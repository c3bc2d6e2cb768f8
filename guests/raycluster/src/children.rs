//! The snapshot's children reduced to what the reconciler decides from: Pods, Services, Jobs and RBAC by name.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodCondition, Service};
use serde::Deserialize;
use wasmray_guest_sdk::{ObjectRef, PluginError, parse};

use crate::vocab::labels;

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
    pub ready_condition: Option<PodCondition>,
    /// Why the Pod must be replaced (KubeRay's `shouldDeletePod`), if it must.
    pub unhealthy: Option<String>,
    pub pod_ip: Option<String>,
    /// The first container that is not ready: (name, waiting or terminated reason, message).
    pub first_not_ready: Option<(String, String, String)>,
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

    fn of(pod: Pod) -> Option<Self> {
        let meta = pod.metadata;
        let labels = meta.labels.unwrap_or_default();
        // Redis cleanup Job Pods and strangers are not Ray nodes.
        let node_type = NodeType::from_label(labels.get(labels::NODE_TYPE)?)?;
        let spec = pod.spec.unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_default();
        let ready_condition = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .cloned();
        let ready = ready_condition.as_ref().is_some_and(|c| c.status == "True");
        let ray_container = spec
            .containers
            .first()
            .map(|c| c.name.as_str())
            .unwrap_or_default();
        let statuses = status.container_statuses.clone().unwrap_or_default();
        let ray_terminated = statuses
            .iter()
            .find(|s| s.name == ray_container)
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        let name = meta.name.unwrap_or_default();
        let restart_policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let unhealthy = if phase == "Failed" || phase == "Succeeded" {
            Some(format!("Pod {name} is {phase}, a terminal phase"))
        } else if phase == "Running" && ray_terminated.is_some() && restart_policy == "Never" {
            Some(format!(
                "the Ray container of Pod {name} terminated and restartPolicy Never keeps it down"
            ))
        } else {
            None
        };
        let first_not_ready = statuses.iter().find(|s| !s.ready).and_then(|s| {
            let state = s.state.as_ref()?;
            let (reason, message) = match (&state.waiting, &state.terminated) {
                (Some(w), _) => (w.reason.clone(), w.message.clone()),
                (None, Some(t)) => (t.reason.clone(), t.message.clone()),
                _ => return None,
            };
            Some((
                s.name.clone(),
                reason.unwrap_or_default(),
                message.unwrap_or_default(),
            ))
        });
        Some(RayPod {
            namespace: meta.namespace,
            uid: meta.uid,
            node_type,
            group: labels.get(labels::GROUP).cloned().unwrap_or_default(),
            replica_name: labels.get(labels::REPLICA_NAME).cloned(),
            replica_index: labels
                .get(labels::REPLICA_INDEX)
                .and_then(|v| v.parse().ok()),
            terminating: meta.deletion_timestamp.is_some(),
            running_and_ready: phase == "Running" && ready,
            phase,
            ready_condition,
            unhealthy,
            pod_ip: status.pod_ip,
            first_not_ready,
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
    /// Names of other children by kind (`ServiceAccount`, `Role`, `RoleBinding`, `Secret`).
    pub names: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: HeadMeta,
}

#[derive(Deserialize, Default)]
struct HeadMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl Children {
    /// Parses the children of the cluster `cluster`; Pods of another cluster are ignored.
    pub fn parse(children: &[String], cluster: &str) -> Result<Self, PluginError> {
        let mut out = Children::default();
        for json in children {
            let head: Head = parse(json)?;
            match head.kind.as_str() {
                "Pod" => {
                    if head
                        .metadata
                        .labels
                        .get(labels::CLUSTER)
                        .is_some_and(|c| c != cluster)
                    {
                        continue;
                    }
                    if let Some(pod) = RayPod::of(parse(json)?) {
                        out.pods.push(pod);
                    }
                }
                "Service" => out.services.push(parse(json)?),
                "Job" => out.jobs.push(parse(json)?),
                "" => return Err(PluginError::InvalidInput("a child has no kind".into())),
                kind => out
                    .names
                    .entry(kind.to_owned())
                    .or_default()
                    .push(head.metadata.name),
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
