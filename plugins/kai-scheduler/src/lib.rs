//! KAI scheduler: every Pod gets `schedulerName: kai-scheduler` and the owner's `kai.scheduler/queue` label.
//!
//! KAI's own PodGrouper makes the PodGroups, so the plugin creates no companions. A Pod without a
//! queue label is left to KAI, which keeps it pending; the plugin logs why. [`decoration`] is the
//! logic, unit-tested natively; [`KaiScheduler`] is the shim the component exports.

use wasmray_api::workload::Workload;
use wasmray_guest_sdk::{BatchScheduler, PluginError, PodContext, PodDecoration};

/// The Pods' `schedulerName`.
pub const SCHEDULER_NAME: &str = "kai-scheduler";
/// The owner label naming the KAI queue, copied to every Pod.
pub const QUEUE: &str = "kai.scheduler/queue";

/// What every Pod of the owner gets, and a warning when the owner names no queue.
pub fn decoration(owner_json: &str) -> Result<(PodDecoration, Option<String>), PluginError> {
    let owner = Workload::from_json(owner_json).map_err(PluginError::InvalidInput)?;
    let decoration = PodDecoration::scheduler(SCHEDULER_NAME);
    Ok(match owner.non_empty_label(QUEUE) {
        Some(queue) => (decoration.label(QUEUE, queue), None),
        None => (
            decoration,
            Some(format!(
                "{}/{} has no {QUEUE} label; KAI keeps its Pods pending",
                owner.namespace(),
                owner.name()
            )),
        ),
    })
}

/// The component's exports; `on_submission` keeps its default (no companions), which also lets a
/// RayJob through rather than failing it.
pub struct KaiScheduler;

impl BatchScheduler for KaiScheduler {
    fn decorate_pod(ctx: PodContext) -> Result<PodDecoration, PluginError> {
        let (decoration, warning) = decoration(&ctx.owner)?;
        if let Some(warning) = warning {
            wasmray_guest_sdk::log::info(&warning);
        }
        Ok(decoration)
    }
}

wasmray_guest_sdk::export_batch_scheduler!(KaiScheduler);

#[cfg(test)]
mod tests;
