//! GCS fault tolerance with external Redis: the cleanup finalizer, the cleanup Job, and its bounded lifetime.

use serde_json::json;
use wasmray_api::{RayCluster, names};
use wasmray_guest_sdk::{Child, EventType};

use crate::companions::annotation;
use crate::vocab::{REDIS_CLEANUP_FINALIZER, annotations, events, labels};
use crate::{Ctx, Out, pods};

/// How long the finalizer may hold a deleted cluster unless the annotation says otherwise: the
/// cleanup Job's own `activeDeadlineSeconds`.
const DEFAULT_TIMEOUT_S: i64 = 300;
/// How often to look again while Pods go away or the Job runs.
const POLL_MS: u64 = 10_000;

/// FT is on with `gcsFaultToleranceOptions` or the legacy `ray.io/ft-enabled: "true"` annotation
/// (any case, as KubeRay and the host's Pod builder read it).
pub fn enabled(cluster: &RayCluster) -> bool {
    cluster.spec.gcs_fault_tolerance_options.is_some()
        || annotation(cluster, annotations::FT_ENABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Whether the cluster carries the cleanup finalizer.
pub fn has_finalizer(cluster: &RayCluster) -> bool {
    cluster
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == REDIS_CLEANUP_FINALIZER)
}

/// A server-side apply of the RayCluster's metadata owning the finalizer, or owning none (which
/// removes it, since the host's field manager is the one that added it).
pub fn finalizer_patch(ctx: &Ctx, present: bool) -> String {
    let finalizers: &[&str] = if present {
        &[REDIS_CLEANUP_FINALIZER]
    } else {
        &[]
    };
    json!({
        "apiVersion": wasmray_api::API_VERSION,
        "kind": "RayCluster",
        "metadata": { "name": ctx.name, "namespace": ctx.namespace, "finalizers": finalizers },
    })
    .to_string()
}

/// The deleted cluster's cleanup: Pods first, then the Job once the head is gone, then the
/// finalizer once the Job finished — or, whatever state it is in, once the timeout has passed.
pub fn on_deletion(ctx: &Ctx, out: &mut Out) {
    if !has_finalizer(ctx.cluster) {
        // Owner references take the children with the cluster.
        return;
    }
    let now_s = ctx.now_ms.div_euclid(1000);
    let deleted_at_s = ctx
        .cluster
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or(now_s, |t| t.0.as_second());
    let elapsed_s = now_s - deleted_at_s;
    let timeout_s = timeout_s(ctx.cluster);
    if elapsed_s >= timeout_s {
        out.apply(finalizer_patch(ctx, false));
        let message = format!(
            "Removed finalizer {REDIS_CLEANUP_FINALIZER} from RayCluster {}/{} after {timeout_s}s without a finished Redis cleanup Job; \
             the storage namespace in Redis may need manual cleanup",
            ctx.namespace, ctx.name
        );
        out.event(
            EventType::Warning,
            events::FORCE_DELETED_STUCK_CLUSTER,
            message,
        );
        return;
    }
    let remaining_ms = u64::try_from((timeout_s - elapsed_s) * 1000).unwrap_or(POLL_MS);
    out.plan.requeue_after_ms = Some(POLL_MS.min(remaining_ms));
    pods::delete_all(ctx, out, "deletion with GCS fault tolerance");
    if ctx.children.heads().next().is_some() {
        // The head still writes to Redis; clean up only after it is gone.
        return;
    }
    let job_name = names::redis_cleanup_job_name(ctx.name);
    let job = ctx.children.jobs.iter().find(|j| {
        j.metadata.name.as_deref() == Some(job_name.as_str())
            || j.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::NODE_TYPE))
                .map(String::as_str)
                == Some("redis-cleanup")
    });
    match job {
        None => {
            out.render(Child::RedisCleanupJob);
            let message = format!("Created Redis cleanup Job {}/{job_name}", ctx.namespace);
            out.event(
                EventType::Normal,
                events::CREATED_REDIS_CLEANUP_JOB,
                message,
            );
        }
        Some(job) if finished(job) => {
            out.apply(finalizer_patch(ctx, false));
            out.plan.requeue_after_ms = None;
        }
        Some(_) => {}
    }
}

/// Complete or Failed: either way the Job will do no more.
fn finished(job: &k8s_openapi::api::batch::v1::Job) -> bool {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

/// `ray.io/gcs-ft-deletion-timeout`: seconds, or `90s`, `10m`, `1h`; a bad or zero value falls back
/// to the default rather than holding the cluster forever.
fn timeout_s(cluster: &RayCluster) -> i64 {
    let parse = |text: &str| -> Option<i64> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let number: i64 = text[..split].parse().ok()?;
        let seconds = match &text[split..] {
            "" | "s" => number,
            "m" => number.checked_mul(60)?,
            "h" => number.checked_mul(3600)?,
            _ => return None,
        };
        (seconds > 0).then_some(seconds)
    };
    annotation(cluster, annotations::GCS_FT_DELETION_TIMEOUT)
        .and_then(parse)
        .unwrap_or(DEFAULT_TIMEOUT_S)
}
