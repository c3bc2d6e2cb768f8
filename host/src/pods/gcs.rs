//! The Redis cleanup Job that empties a GCS fault-tolerant cluster's storage namespace after the
//! cluster is deleted, and the bounded lifetime of the finalizer that waits for it (§5).

use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wasmray_api::RayCluster;

use super::{BuildContext, BuildError, ClusterFacts, labels, names, pod};

/// Annotation overriding how long the finalizer may block deletion (KubeRay v1.7's name).
pub use wasmray_api::labels::GCS_FT_DELETION_TIMEOUT as DELETION_TIMEOUT_ANNOTATION;
/// The finalizer that keeps a GCS fault-tolerant RayCluster until its Redis namespace is cleaned.
pub use wasmray_api::labels::REDIS_CLEANUP_FINALIZER;
/// The Event reason when the finalizer is removed because the timeout passed (KubeRay v1.7's name).
pub const FORCED_DELETION_REASON: &str = "ForceDeletedStuckCluster";
/// How long the finalizer may block deletion by default: the Job's own deadline.
const DEFAULT_DELETION_TIMEOUT: Duration = Duration::from_secs(300);

/// The cleanup Job `<cluster>-redis-cleanup`: the head Pod's Ray container (env, image, mounts)
/// running Ray's `cleanup_redis_storage` for the storage namespace, at most once, for at most 5 minutes.
pub fn redis_cleanup_job(cluster: &RayCluster, ctx: &BuildContext) -> Result<Job, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    let head = pod::head_pod(cluster, "", ctx)?;
    let mut meta = head.metadata;
    let mut spec = head.spec.unwrap_or_default();
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(labels::NODE_TYPE.into(), "redis-cleanup".into());
    // A Job's Pods are named by the Job controller.
    meta.name = None;
    // The Job is no Ray node: no upgrade strategy looks at it.
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(wasmray_api::template_hash::RECREATE_HASH_ANNOTATION);
        annotations.remove(wasmray_api::template_hash::TEMPLATE_HASH_ANNOTATION);
    }

    spec.containers.truncate(1);
    let ray = &mut spec.containers[0];
    let has_username = ray.env.iter().flatten().any(|e| e.name == "REDIS_USERNAME");
    let username = if has_username {
        "username=os.getenv('REDIS_USERNAME', parsed.username), "
    } else {
        ""
    };
    let script = format!(
        "echo \"To get more information about manually deleting the storage namespace in Redis and removing the RayCluster's finalizer, please check https://docs.ray.io/en/master/cluster/kubernetes/user-guides/kuberay-gcs-ft.html for more details.\" && \
python -c \"from ray._private.gcs_utils import cleanup_redis_storage; \
from urllib.parse import urlparse; \
import os; \
import sys; \
redis_address = os.getenv('RAY_REDIS_ADDRESS', '').split(',')[0]; \
redis_address = redis_address if '://' in redis_address else 'redis://' + redis_address; \
parsed = urlparse(redis_address); \
sys.exit(1) if not cleanup_redis_storage(host=parsed.hostname, port=parsed.port, {username}password=os.getenv('REDIS_PASSWORD', parsed.password or ''), use_ssl=parsed.scheme=='rediss', storage_namespace=os.getenv('RAY_external_storage_namespace')) else None\""
    );
    ray.command = Some(vec![
        "/bin/bash".into(),
        if ctx.enable_login_shell { "-cl" } else { "-c" }.into(),
        "--".into(),
    ]);
    ray.args = Some(vec![script]);
    // The Job starts no Raylet or GCS, so there is nothing to probe.
    ray.liveness_probe = None;
    ray.readiness_probe = None;
    // Give Redis a minute to come back before the cleanup gives up.
    let env = ray.env.get_or_insert_with(Vec::new);
    env.push(EnvVar {
        name: "RAY_redis_db_connect_retries".into(),
        value: Some("120".into()),
        value_from: None,
    });
    env.push(EnvVar {
        name: "RAY_redis_db_connect_wait_milliseconds".into(),
        value: Some("500".into()),
        value_from: None,
    });
    // Fixed and small: the cleanup needs no GPU.
    let fixed = || {
        Some(
            [
                ("cpu".to_owned(), Quantity("200m".into())),
                ("memory".to_owned(), Quantity("256Mi".into())),
            ]
            .into(),
        )
    };
    ray.resources = Some(ResourceRequirements {
        limits: fixed(),
        requests: fixed(),
        ..Default::default()
    });
    spec.restart_policy = Some("Never".into());

    Ok(Job {
        metadata: ObjectMeta {
            name: Some(names::redis_cleanup_job_name(facts.name)),
            namespace: Some(facts.namespace.clone()),
            labels: meta.labels.clone(),
            annotations: meta.annotations.clone(),
            owner_references: Some(vec![facts.owner.clone()]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(300),
            template: PodTemplateSpec {
                metadata: Some(meta),
                spec: Some(spec),
            },
            ..Default::default()
        }),
        status: None,
    })
}

/// How long the cleanup finalizer may hold a deleted cluster: the annotation
/// `ray.io/gcs-ft-deletion-timeout` (seconds, or a duration like `90s`, `10m`, `1h`), else 300 s.
/// An unparsable or zero value falls back to the default rather than holding the cluster forever.
pub fn redis_cleanup_timeout(cluster: &RayCluster) -> Duration {
    super::annotation(cluster, DELETION_TIMEOUT_ANNOTATION)
        .and_then(parse_duration)
        .unwrap_or(DEFAULT_DELETION_TIMEOUT)
}

/// True once the finalizer has held the cluster longer than [`redis_cleanup_timeout`]; the
/// controller then removes it and records a Warning Event with reason [`FORCED_DELETION_REASON`].
/// Times are Unix seconds from the caller.
pub fn finalizer_deadline(cluster: &RayCluster, deleted_at_unix_s: i64, now_unix_s: i64) -> bool {
    let timeout = i64::try_from(redis_cleanup_timeout(cluster).as_secs()).unwrap_or(i64::MAX);
    now_unix_s.saturating_sub(deleted_at_unix_s) >= timeout
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number.checked_mul(60)?,
        "h" => number.checked_mul(3600)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> RayCluster {
        serde_yaml::from_str(yaml).unwrap()
    }

    const FT_CLUSTER: &str = "
metadata:
  name: redis-ha
  namespace: ns
  uid: u-1
spec:
  gcsFaultToleranceOptions:
    redisAddress: redis:6379
    redisPassword: {valueFrom: {secretKeyRef: {name: redis-password-secret, key: password}}}
  headGroupSpec:
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.46.0
          resources: {limits: {cpu: '1', memory: 2Gi, nvidia.com/gpu: '1'}}
        - name: sidecar
          image: busybox
";

    #[test]
    fn the_cleanup_job_runs_only_the_ray_container_without_probes_or_gpus() {
        let job = redis_cleanup_job(&cluster(FT_CLUSTER), &BuildContext::default()).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("redis-ha-redis-cleanup"));
        assert_eq!(
            job.metadata.labels.as_ref().unwrap()["ray.io/node-type"],
            "redis-cleanup"
        );
        let spec = job.spec.unwrap();
        assert_eq!(
            (spec.backoff_limit, spec.active_deadline_seconds),
            (Some(0), Some(300))
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.containers.len(), 1);
        let ray = &pod.containers[0];
        assert!(ray.liveness_probe.is_none() && ray.readiness_probe.is_none());
        assert_eq!(
            ray.resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        let env: Vec<&str> = ray.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert!(env.contains(&"RAY_REDIS_ADDRESS") && env.contains(&"REDIS_PASSWORD"));
        assert!(env.ends_with(&[
            "RAY_redis_db_connect_retries",
            "RAY_redis_db_connect_wait_milliseconds"
        ]));
        assert!(
            ray.args.as_ref().unwrap()[0]
                .contains("storage_namespace=os.getenv('RAY_external_storage_namespace')")
        );
        assert!(!ray.args.as_ref().unwrap()[0].contains("username="));
    }

    #[test]
    fn the_finalizer_gives_up_after_the_timeout() {
        let mut c = cluster(FT_CLUSTER);
        assert!(!finalizer_deadline(&c, 1000, 1299));
        assert!(finalizer_deadline(&c, 1000, 1300));
        c.metadata.annotations =
            Some([(DELETION_TIMEOUT_ANNOTATION.to_owned(), "10m".to_owned())].into());
        assert_eq!(redis_cleanup_timeout(&c), Duration::from_secs(600));
        c.metadata.annotations =
            Some([(DELETION_TIMEOUT_ANNOTATION.to_owned(), "soon".to_owned())].into());
        assert_eq!(redis_cleanup_timeout(&c), Duration::from_secs(300));
    }
}
