//! scheduler-plugins coscheduling: a PodGroup per gang-scheduled RayCluster, and its label on every Pod.
//!
//! Gang scheduling is opt-in through the RayCluster label `ray.io/gang-scheduling-enabled` (any
//! value). The logic is plain functions over the owner's JSON ([`pod_group`], [`decoration`]),
//! unit-tested natively; [`SchedulerPlugins`] is the shim the component exports. The host adds the
//! owner reference to each companion and applies it, so the PodGroup here carries none.

use serde_json::{Value, json};
use wasmray_api::resources;
use wasmray_api::workload::Workload;
use wasmray_guest_sdk::{
    BatchScheduler, CompanionKind, Json, OwnerContext, PluginError, PodContext, PodDecoration,
};

/// The Pods' `schedulerName`: the second scheduler scheduler-plugins installs.
pub const SCHEDULER_NAME: &str = "scheduler-plugins-scheduler";
pub const POD_GROUP_API_VERSION: &str = "scheduling.x-k8s.io/v1alpha1";
pub const POD_GROUP_KIND: &str = "PodGroup";
/// The owner label that turns gang scheduling on, whatever its value.
pub const GANG_SCHEDULING: &str = "ray.io/gang-scheduling-enabled";
/// The Pod label naming its PodGroup.
pub const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";

fn owner(json: &str) -> Result<Workload, PluginError> {
    Workload::from_json(json).map_err(PluginError::InvalidInput)
}

/// The PodGroup of a gang-scheduled RayCluster, named like it: desired workers + 1 Pods and the
/// desired resources (the autoscaler is not considered). `None` without the gang label, for a
/// RayJob (its RayCluster gets its own), and when the PodGroup already exists: it is made once,
/// not resized, so a running gang is never re-evaluated under a new size.
pub fn pod_group(owner_json: &str, existing: &[Json]) -> Result<Option<Value>, PluginError> {
    let owner = owner(owner_json)?;
    let Workload::Cluster(cluster) = &owner else {
        return Ok(None);
    };
    if owner.label(GANG_SCHEDULING).is_none() {
        return Ok(None);
    }
    let exists = existing.iter().any(|json| {
        serde_json::from_str::<Value>(json).is_ok_and(|o| {
            o["kind"] == POD_GROUP_KIND
                && o["apiVersion"] == POD_GROUP_API_VERSION
                && o["metadata"]["name"] == owner.name()
        })
    });
    if exists {
        return Ok(None);
    }
    Ok(Some(json!({
        "apiVersion": POD_GROUP_API_VERSION,
        "kind": POD_GROUP_KIND,
        "metadata": { "name": owner.name(), "namespace": owner.namespace() },
        "spec": {
            "minMember": resources::desired_workers(&cluster.spec).saturating_add(1),
            "minResources": resources::canonical(&resources::desired_resources(&cluster.spec)),
        },
    })))
}

/// What every Pod of the owner gets: the scheduler name, and with gang scheduling its PodGroup.
pub fn decoration(owner_json: &str) -> Result<PodDecoration, PluginError> {
    let owner = owner(owner_json)?;
    let decoration = PodDecoration::scheduler(SCHEDULER_NAME);
    Ok(if owner.label(GANG_SCHEDULING).is_some() {
        decoration.label(POD_GROUP_LABEL, owner.name())
    } else {
        decoration
    })
}

/// The component's exports.
pub struct SchedulerPlugins;

impl BatchScheduler for SchedulerPlugins {
    fn companion_kinds() -> Vec<CompanionKind> {
        vec![CompanionKind {
            api_version: POD_GROUP_API_VERSION.into(),
            kind: POD_GROUP_KIND.into(),
            namespaced: true,
        }]
    }

    fn on_submission(ctx: OwnerContext) -> Result<Vec<Json>, PluginError> {
        pod_group(&ctx.owner, &ctx.companions)?
            .map(|pg| wasmray_guest_sdk::to_json(&pg))
            .into_iter()
            .collect()
    }

    fn decorate_pod(ctx: PodContext) -> Result<PodDecoration, PluginError> {
        decoration(&ctx.owner)
    }
}

wasmray_guest_sdk::export_batch_scheduler!(SchedulerPlugins);

#[cfg(test)]
mod tests;
