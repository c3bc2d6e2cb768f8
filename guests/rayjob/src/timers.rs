//! Every timer of a RayJob, measured from timestamps in its status so it survives an operator restart: deadlines, grace periods, TTLs, deletion rules.

use serde_json::Value;
use wasmray_api::{DeletionJobStatus, DeletionPolicyType, JobStatus};

use crate::Ctx;
use wasmray_guest_sdk::k8s::millis;

/// v1.6's `spec.preRunningDeadlineSeconds`, read from the raw object (our types predate it).
pub fn pre_running_deadline_s(raw: &Value) -> Option<i64> {
    raw["spec"]["preRunningDeadlineSeconds"].as_i64()
}

/// When `activeDeadlineSeconds` runs out: `status.startTime` plus the deadline.
pub fn active_deadline_ms(ctx: &Ctx) -> Option<i64> {
    let seconds = ctx.job.spec.active_deadline_seconds?;
    Some(ctx.start_ms()? + i64::from(seconds) * 1000)
}

/// When `preRunningDeadlineSeconds` runs out, if the Ray job has not started running by then.
pub fn pre_running_deadline_ms(ctx: &Ctx) -> Option<i64> {
    let seconds = pre_running_deadline_s(ctx.raw)?;
    let started = matches!(ctx.job_status(), JobStatus::Running) || ctx.job_status().is_terminal();
    (!started).then_some(ctx.start_ms()? + seconds * 1000)
}

/// How much a deletion policy removes: the most impactful overdue rule runs first.
pub fn impact(policy: DeletionPolicyType) -> u8 {
    match policy {
        DeletionPolicyType::DeleteNone => 0,
        DeletionPolicyType::DeleteWorkers => 1,
        DeletionPolicyType::DeleteCluster => 2,
        DeletionPolicyType::DeleteSelf => 3,
    }
}

/// What the finished RayJob's cleanup wants now, and when to look again.
#[derive(Debug, Default, PartialEq)]
pub struct Cleanup {
    /// The policy to carry out in this pass.
    pub due: Option<DeletionPolicyType>,
    /// The next TTL still to come, in Unix milliseconds.
    pub next_ms: Option<i64>,
}

/// Whether a finished RayJob has any cleanup to carry out (a deletion strategy under the gate,
/// or `shutdownAfterJobFinishes`), however long its TTLs.
pub fn has_cleanup(ctx: &Ctx) -> bool {
    let spec = &ctx.job.spec;
    let rules = spec.deletion_strategy.is_some() && ctx.settings().ray_job_deletion_policy;
    ctx.selector().is_none() && (rules || spec.shutdown_after_job_finishes == Some(true))
}

/// The cleanup of a Complete or Failed RayJob (never anything with `clusterSelector`).
pub fn cleanup(ctx: &Ctx) -> Cleanup {
    let mut out = Cleanup::default();
    if ctx.selector().is_some() {
        return out;
    }
    let end_ms = ctx.job.status.as_ref().and_then(|s| s.end_time.as_ref()).map_or(ctx.now_ms, millis);
    let at = |ttl: i32| end_ms + i64::from(ttl.max(0)) * 1000;
    let spec = &ctx.job.spec;
    let ttl = spec.ttl_seconds_after_finished.unwrap_or(0);
    let consider = |policy: DeletionPolicyType, when: i64, out: &mut Cleanup| {
        if done(ctx, policy) {
            return;
        }
        if ctx.now_ms >= when {
            if out.due.is_none_or(|d| impact(d) < impact(policy)) {
                out.due = Some(policy);
            }
        } else {
            out.next_ms = Some(out.next_ms.map_or(when, |n| n.min(when)));
        }
    };
    match (&spec.deletion_strategy, ctx.settings().ray_job_deletion_policy) {
        (Some(strategy), true) => {
            let status = match ctx.job_status() {
                JobStatus::Succeeded => Some(DeletionJobStatus::Succeeded),
                JobStatus::Failed => Some(DeletionJobStatus::Failed),
                _ => None,
            };
            if let Some(rules) = &strategy.deletion_rules {
                for rule in rules.iter().filter(|r| Some(r.condition.job_status) == status) {
                    consider(rule.policy, at(rule.condition.ttl_seconds.unwrap_or(0)), &mut out);
                }
            } else {
                let legacy = match status {
                    Some(DeletionJobStatus::Succeeded) => strategy.on_success.as_ref(),
                    Some(DeletionJobStatus::Failed) => strategy.on_failure.as_ref(),
                    None => None,
                };
                if let Some(policy) = legacy.and_then(|p| p.policy) {
                    consider(policy, at(ttl), &mut out);
                }
            }
        }
        _ if spec.shutdown_after_job_finishes == Some(true) => {
            let policy = if ctx.settings().delete_ray_job_after_job_finishes {
                DeletionPolicyType::DeleteSelf
            } else {
                DeletionPolicyType::DeleteCluster
            };
            consider(policy, at(ttl), &mut out);
        }
        _ => {}
    }
    out
}

/// Whether the policy's effect already holds, so an overdue rule is not carried out again.
fn done(ctx: &Ctx, policy: DeletionPolicyType) -> bool {
    let cluster = ctx.children.cluster.as_ref().filter(|c| !crate::children::terminating(c));
    match policy {
        DeletionPolicyType::DeleteNone => true,
        DeletionPolicyType::DeleteCluster => cluster.is_none(),
        DeletionPolicyType::DeleteWorkers => cluster.is_none_or(crate::cluster::all_workers_suspended),
        // Once the RayJob is being deleted the deletion branch runs instead of this one.
        DeletionPolicyType::DeleteSelf => false,
    }
}
