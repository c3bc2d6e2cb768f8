//! YuniKorn: every Pod gets the owner's application id and queue, and with gang scheduling the task groups.
//!
//! YuniKorn needs no companion objects: it builds its gang from the `yunikorn.apache.org/task-groups`
//! annotation on the Pods themselves. [`decoration`] is the logic, unit-tested natively;
//! [`YuniKorn`] is the shim the component exports.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, PodSpec, Toleration};
use serde::Serialize;
use wasmray_api::labels::HEAD_GROUP;
use wasmray_api::resources::{self, ResourceList};
use wasmray_api::workload::Workload;
use wasmray_guest_sdk::{BatchScheduler, PluginError, PodContext, PodDecoration};

/// The Pods' `schedulerName`.
pub const SCHEDULER_NAME: &str = "yunikorn";
/// The owner label holding the YuniKorn application id; on Pods it becomes [`POD_APP_ID`].
pub const APP_ID: &str = "yunikorn.apache.org/app-id";
/// The owner label naming the YuniKorn queue; on Pods it becomes [`POD_QUEUE`].
pub const QUEUE: &str = "yunikorn.apache.org/queue";
pub const POD_APP_ID: &str = "applicationId";
pub const POD_QUEUE: &str = "queue";
/// The owner label that turns gang scheduling on, whatever its value.
pub const GANG_SCHEDULING: &str = "ray.io/gang-scheduling-enabled";
pub const TASK_GROUPS: &str = "yunikorn.apache.org/task-groups";
pub const TASK_GROUP_NAME: &str = "yunikorn.apache.org/task-group-name";
/// The task group of a RayJob's submitter Pod.
pub const SUBMITTER_GROUP: &str = "submittergroup";

/// One YuniKorn task group: how many Pods of which shape the gang reserves.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskGroup<'a> {
    name: &'a str,
    min_member: i64,
    min_resource: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_selector: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tolerations: Option<&'a Vec<Toleration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    affinity: Option<&'a Affinity>,
}

impl<'a> TaskGroup<'a> {
    /// A group of `min_member` Pods shaped like `spec` (one Pod's resources, placement rules).
    fn new(name: &'a str, min_member: i64, spec: Option<&'a PodSpec>, min_resource: ResourceList) -> Self {
        TaskGroup {
            name,
            min_member,
            min_resource: resources::canonical(&min_resource),
            node_selector: spec.and_then(|s| s.node_selector.as_ref()).filter(|m| !m.is_empty()),
            tolerations: spec.and_then(|s| s.tolerations.as_ref()).filter(|t| !t.is_empty()),
            affinity: spec.and_then(|s| s.affinity.as_ref()),
        }
    }
}

/// The task groups of the owner, as the annotation's JSON: `headgroup` (1 Pod), one group per
/// worker group (`minReplicas` × hosts Pods, so the gang is what the autoscaler never goes below),
/// and for a RayJob the submitter.
pub fn task_groups(owner: &Workload) -> Result<String, PluginError> {
    let mut groups = Vec::new();
    if let Some(spec) = owner.cluster_spec() {
        let head = spec.head_group_spec.template.spec.as_ref();
        groups.push(TaskGroup::new(HEAD_GROUP, 1, head, resources::pod_resources(head)));
        for group in spec.worker_group_specs.iter().flatten() {
            let pod = group.template.spec.as_ref();
            let min = i64::from(group.min_replicas_or_default()) * i64::from(group.num_of_hosts_or_default());
            groups.push(TaskGroup::new(&group.group_name, min, pod, resources::pod_resources(pod)));
        }
    }
    if let Workload::Job(job) = owner {
        let pod = job.spec.submitter_pod_template.as_ref().and_then(|t| t.spec.as_ref());
        let shape = match pod {
            Some(_) => resources::pod_resources(pod),
            None => resources::default_submitter_resources(),
        };
        groups.push(TaskGroup::new(SUBMITTER_GROUP, 1, pod, shape));
    }
    serde_json::to_string(&groups).map_err(|e| PluginError::Internal(format!("cannot serialise the task groups: {e}")))
}

/// What every Pod of the owner gets: application id and queue (when the owner has them), YuniKorn
/// as its scheduler, and with gang scheduling the task groups (the owner's own annotation wins)
/// and, for a Pod of a named group, its task group.
pub fn decoration(owner_json: &str, group_name: &str) -> Result<PodDecoration, PluginError> {
    let owner = Workload::from_json(owner_json).map_err(PluginError::InvalidInput)?;
    let mut decoration = PodDecoration::scheduler(SCHEDULER_NAME);
    for (from, to) in [(APP_ID, POD_APP_ID), (QUEUE, POD_QUEUE)] {
        if let Some(value) = owner.non_empty_label(from) {
            decoration = decoration.label(to, value);
        }
    }
    if owner.label(GANG_SCHEDULING).is_some() {
        let groups = match owner.annotation(TASK_GROUPS).filter(|v| !v.is_empty()) {
            Some(own) => own.to_owned(),
            None => task_groups(&owner)?,
        };
        decoration = decoration.annotation(TASK_GROUPS, &groups);
        if !group_name.is_empty() {
            decoration = decoration.annotation(TASK_GROUP_NAME, group_name);
        }
    }
    Ok(decoration)
}

/// The component's exports; no companions, so the other methods keep their defaults.
pub struct YuniKorn;

impl BatchScheduler for YuniKorn {
    fn decorate_pod(ctx: PodContext) -> Result<PodDecoration, PluginError> {
        decoration(&ctx.owner, &ctx.group_name)
    }
}

wasmray_guest_sdk::export_batch_scheduler!(YuniKorn);

#[cfg(test)]
mod tests;
