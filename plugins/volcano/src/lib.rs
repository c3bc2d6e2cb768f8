//! Volcano batch scheduling: one PodGroup per RayCluster or RayJob, and the queue, priority and group of every Pod.
//!
//! The logic is plain functions over the owner's JSON ([`pod_group`], [`decoration`]), unit-tested
//! natively; [`Volcano`] is the thin shim the component exports. The host adds the owner
//! reference to each companion and applies it, so the PodGroup here carries none.

use serde_json::{Value, json};
use wasmray_api::labels::{ORIGINATED_FROM_CR_NAME, ORIGINATED_FROM_CRD};
use wasmray_api::resources::{self, ResourceList};
use wasmray_api::workload::Workload;
use wasmray_guest_sdk::{
    BatchScheduler, CompanionKind, Json, OwnerContext, PluginError, PodContext, PodDecoration,
};

/// The Pods' `schedulerName`.
pub const SCHEDULER_NAME: &str = "volcano";
pub const POD_GROUP_API_VERSION: &str = "scheduling.volcano.sh/v1beta1";
pub const POD_GROUP_KIND: &str = "PodGroup";
/// The owner label naming the Volcano queue; copied to the PodGroup and to every Pod.
pub const QUEUE_NAME: &str = "volcano.sh/queue-name";
/// The owner label naming a PriorityClass; copied to the PodGroup and to every Pod.
pub const PRIORITY_CLASS_NAME: &str = "ray.io/priority-class-name";
pub const NETWORK_TOPOLOGY_MODE: &str = "volcano.sh/network-topology-mode";
pub const NETWORK_TOPOLOGY_HIGHEST_TIER: &str = "volcano.sh/network-topology-highest-tier-allowed";
/// The Pod annotation Volcano reads to find a Pod's PodGroup.
pub const GROUP_NAME_ANNOTATION: &str = "scheduling.k8s.io/group-name";
/// The Pod annotation naming the task (Ray group) inside the PodGroup.
pub const TASK_SPEC_ANNOTATION: &str = "volcano.sh/task-spec";

fn owner(json: &str) -> Result<Workload, PluginError> {
    Workload::from_json(json).map_err(PluginError::InvalidInput)
}

/// True for a RayCluster a RayJob created: the RayJob's PodGroup covers its Pods.
fn made_by_ray_job(owner: &Workload) -> bool {
    matches!(owner, Workload::Cluster(_)) && owner.label(ORIGINATED_FROM_CRD) == Some("RayJob")
}

/// `ray-<name>-pg`, where the name is the RayJob's for a RayCluster a RayJob created, so the
/// cluster's Pods join the RayJob's PodGroup.
pub fn pod_group_name(owner: &Workload) -> String {
    let name = match owner.non_empty_label(ORIGINATED_FROM_CR_NAME) {
        Some(job) if made_by_ray_job(owner) => job,
        _ => owner.name(),
    };
    format!("ray-{name}-pg")
}

/// Gang size and resources of a cluster: desired workers + 1 and desired resources, or with the
/// autoscaler on, the minimum the autoscaler keeps (so the gang is schedulable before scale-up).
fn gang(spec: &wasmray_api::RayClusterSpec) -> (i32, ResourceList) {
    if resources::autoscaling(spec) {
        (resources::min_workers(spec).saturating_add(1), resources::min_resources(spec))
    } else {
        (resources::desired_workers(spec).saturating_add(1), resources::desired_resources(spec))
    }
}

/// The PodGroup for the owner, or `None` for a RayCluster a RayJob created. For a RayJob the
/// submitter's resources are reserved too, but it is not counted in `minMember`: the submitter
/// waits for the cluster, so a gang that waited for the submitter would never start.
pub fn pod_group(owner_json: &str) -> Result<Option<Value>, PluginError> {
    let owner = owner(owner_json)?;
    if made_by_ray_job(&owner) {
        return Ok(None);
    }
    let Some(spec) = owner.cluster_spec() else {
        return Err(PluginError::InvalidSpec(format!(
            "gang scheduling does not support RayJob {}/{} referencing an existing RayCluster",
            owner.namespace(),
            owner.name()
        )));
    };
    let (min_member, mut min_resources) = gang(spec);
    if let Workload::Job(job) = &owner {
        resources::add(&mut min_resources, &resources::submitter_resources(&job.spec), 1);
    }
    let name = pod_group_name(&owner);
    let mut pg_spec = json!({
        "minMember": min_member,
        "minResources": resources::canonical(&min_resources),
    });
    if let Some(mode) = owner.label(NETWORK_TOPOLOGY_MODE) {
        let mut topology = json!({ "mode": mode });
        if let Some(tier) = owner.label(NETWORK_TOPOLOGY_HIGHEST_TIER) {
            let tier: i64 = tier.parse().map_err(|e| {
                PluginError::InvalidSpec(format!(
                    "failed to convert {NETWORK_TOPOLOGY_HIGHEST_TIER} label {tier:?} to int: {e} for podgroup {name} in namespace {}",
                    owner.namespace()
                ))
            })?;
            topology["highestTierAllowed"] = json!(tier);
        }
        pg_spec["networkTopology"] = topology;
    }
    if let Some(queue) = owner.label(QUEUE_NAME) {
        pg_spec["queue"] = json!(queue);
    }
    if let Some(priority) = owner.label(PRIORITY_CLASS_NAME) {
        pg_spec["priorityClassName"] = json!(priority);
    }
    Ok(Some(json!({
        "apiVersion": POD_GROUP_API_VERSION,
        "kind": POD_GROUP_KIND,
        "metadata": { "name": name, "namespace": owner.namespace() },
        "spec": pg_spec,
    })))
}

/// What every Pod of the owner gets: the queue and priority labels (when the owner has them),
/// its PodGroup and task, and Volcano as its scheduler.
pub fn decoration(owner_json: &str, group_name: &str) -> Result<PodDecoration, PluginError> {
    let owner = owner(owner_json)?;
    let mut decoration = PodDecoration::scheduler(SCHEDULER_NAME);
    for key in [QUEUE_NAME, PRIORITY_CLASS_NAME] {
        if let Some(value) = owner.non_empty_label(key) {
            decoration = decoration.label(key, value);
        }
    }
    Ok(decoration
        .annotation(GROUP_NAME_ANNOTATION, &pod_group_name(&owner))
        .annotation(TASK_SPEC_ANNOTATION, group_name))
}

/// The component's exports.
pub struct Volcano;

impl BatchScheduler for Volcano {
    fn companion_kinds() -> Vec<CompanionKind> {
        vec![CompanionKind {
            api_version: POD_GROUP_API_VERSION.into(),
            kind: POD_GROUP_KIND.into(),
            namespaced: true,
        }]
    }

    fn on_submission(ctx: OwnerContext) -> Result<Vec<Json>, PluginError> {
        pod_group(&ctx.owner)?
            .map(|pg| wasmray_guest_sdk::to_json(&pg))
            .into_iter()
            .collect()
    }

    fn decorate_pod(ctx: PodContext) -> Result<PodDecoration, PluginError> {
        decoration(&ctx.owner, &ctx.group_name)
    }
}

wasmray_guest_sdk::export_batch_scheduler!(Volcano);

#[cfg(test)]
mod tests;
