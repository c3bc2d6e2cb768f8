//! The template hashes that tell a running Pod from the spec it was built from: one function for the host, which stamps them on Pods, and the reconciler, which compares.
//!
//! Each hash covers what shapes a Pod and nothing else: a group's template, `rayStartParams`,
//! Ray `resources` and `labels`, `numOfHosts`, plus the cluster-wide settings the builders read
//! for every Pod (`rayVersion`, autoscaling and its version, GCS fault tolerance, auth). The
//! scale fields — `replicas`, `minReplicas`, `maxReplicas`, `scaleStrategy.workersToDelete`,
//! `suspend`, `idleTimeoutSeconds` — are left out, so the autoscaler's choices never make a Pod
//! outdated; so are the head's Service, Ingress and `upgradeStrategy`, which no Pod is built
//! from. What the host adds to a Pod itself (names, env, probes, sidecars) is not an input: the
//! hashes are computed from the spec, never from a rendered Pod.
//!
//! The bytes hashed are the serde JSON of typed values (struct fields in declaration order, maps
//! sorted), so the host and a `wasm32-wasip2` guest compute the same text; FNV-1a 64 gives 16 hex
//! characters.

use serde::Serialize;

use crate::{AuthOptions, AutoscalerVersion, GcsFaultToleranceOptions, RayClusterSpec, WorkerGroupSpec};

/// On every Pod: the hash of the Pod-shaping spec of the whole cluster, KubeRay v1.6's key for
/// `upgradeStrategy: Recreate` (KubeRay keeps it on the head Pod; wasmray stamps workers too).
pub const RECREATE_HASH_ANNOTATION: &str = "ray.io/upgrade-strategy-recreate-hash";
/// On every Pod: the hash of its own group's Pod-shaping spec ([`head_hash`] or
/// [`worker_group_hash`]); wasmray's rolling update compares it.
pub const TEMPLATE_HASH_ANNOTATION: &str = "wasmray.dev/template-hash";

/// The cluster-wide settings every Pod is built from.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shared<'a> {
    ray_version: Option<&'a str>,
    enable_in_tree_autoscaling: bool,
    autoscaler_version: Option<AutoscalerVersion>,
    gcs_fault_tolerance_options: Option<&'a GcsFaultToleranceOptions>,
    auth_options: Option<&'a AuthOptions>,
}

impl<'a> Shared<'a> {
    fn of(spec: &'a RayClusterSpec) -> Self {
        Shared {
            ray_version: spec.ray_version.as_deref(),
            enable_in_tree_autoscaling: spec.enable_in_tree_autoscaling == Some(true),
            autoscaler_version: spec.autoscaler_options.as_ref().and_then(|o| o.version),
            gcs_fault_tolerance_options: spec.gcs_fault_tolerance_options.as_ref(),
            auth_options: spec.auth_options.as_ref(),
        }
    }
}

/// The head's Pod-shaping fields; the autoscaler sidecar's options shape the head alone.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Head<'a> {
    shared: Shared<'a>,
    template: &'a k8s_openapi::api::core::v1::PodTemplateSpec,
    ray_start_params: Option<&'a std::collections::BTreeMap<String, String>>,
    resources: Option<&'a std::collections::BTreeMap<String, String>>,
    labels: Option<&'a std::collections::BTreeMap<String, String>>,
    autoscaler_options: Option<&'a crate::AutoscalerOptions>,
}

/// A worker group's Pod-shaping fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Group<'a> {
    shared: Shared<'a>,
    group_name: &'a str,
    template: &'a k8s_openapi::api::core::v1::PodTemplateSpec,
    ray_start_params: Option<&'a std::collections::BTreeMap<String, String>>,
    resources: Option<&'a std::collections::BTreeMap<String, String>>,
    labels: Option<&'a std::collections::BTreeMap<String, String>>,
    num_of_hosts: i32,
}

/// The head Pod's template hash.
pub fn head_hash(spec: &RayClusterSpec) -> String {
    let head = &spec.head_group_spec;
    hash(&Head {
        shared: Shared::of(spec),
        template: &head.template,
        ray_start_params: head.ray_start_params.as_ref(),
        resources: head.resources.as_ref(),
        labels: head.labels.as_ref(),
        autoscaler_options: if spec.enable_in_tree_autoscaling == Some(true) {
            spec.autoscaler_options.as_ref()
        } else {
            None
        },
    })
}

/// The template hash of one worker group's Pods.
pub fn worker_group_hash(spec: &RayClusterSpec, group: &WorkerGroupSpec) -> String {
    hash(&Group {
        shared: Shared::of(spec),
        group_name: &group.group_name,
        template: &group.template,
        ray_start_params: group.ray_start_params.as_ref(),
        resources: group.resources.as_ref(),
        labels: group.labels.as_ref(),
        num_of_hosts: group.num_of_hosts_or_default(),
    })
}

/// The hash of the whole cluster's Pod-shaping spec: the head's and every group's, by name, so a
/// group added or removed changes it too.
pub fn recreate_hash(spec: &RayClusterSpec) -> String {
    let groups: Vec<(&str, String)> = spec
        .worker_group_specs
        .iter()
        .flatten()
        .map(|g| (g.group_name.as_str(), worker_group_hash(spec, g)))
        .collect();
    hash(&(head_hash(spec), groups))
}

/// The template hash of the Pods of `group` (`None` for the head, `Some(name)` for a worker
/// group); `None` when the spec has no such group.
pub fn group_hash(spec: &RayClusterSpec, group: Option<&str>) -> Option<String> {
    match group {
        None => Some(head_hash(spec)),
        Some(name) => spec
            .worker_group_specs
            .iter()
            .flatten()
            .find(|g| g.group_name == name)
            .map(|g| worker_group_hash(spec, g)),
    }
}

/// FNV-1a 64 of the value's JSON, as 16 lowercase hex characters.
fn hash<T: Serialize>(value: &T) -> String {
    // Serialising these borrowed, typed values cannot fail: no maps with non-string keys.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let sum = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{sum:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RayCluster;

    fn cluster() -> RayCluster {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "rc" },
            "spec": {
                "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [{ "name": "ray-head", "image": "ray:2.54.0" }] } } },
                "workerGroupSpecs": [{
                    "groupName": "cpu", "replicas": 3, "minReplicas": 1, "maxReplicas": 5,
                    "rayStartParams": {},
                    "template": { "spec": { "containers": [{ "name": "ray-worker", "image": "ray:2.54.0" }] } }
                }]
            }
        }))
        .unwrap()
    }

    fn worker(spec: &RayClusterSpec) -> String {
        worker_group_hash(spec, &spec.worker_group_specs.as_ref().unwrap()[0])
    }

    #[test]
    fn the_scale_fields_leave_every_hash_alone() {
        let before = cluster().spec;
        let mut after = before.clone();
        let group = &mut after.worker_group_specs.as_mut().unwrap()[0];
        group.replicas = Some(9);
        group.min_replicas = Some(0);
        group.max_replicas = Some(10);
        group.suspend = Some(true);
        group.idle_timeout_seconds = Some(30);
        group.scale_strategy = Some(crate::ScaleStrategy { workers_to_delete: Some(vec!["rc-cpu-worker-x".into()]) });
        after.suspend = Some(true);
        after.upgrade_strategy = Some(crate::RayClusterUpgradeStrategy { type_: Some(crate::RayClusterUpgradeType::Recreate) });
        after.head_group_spec.enable_ingress = Some(true);
        assert_eq!(worker(&before), worker(&after));
        assert_eq!(head_hash(&before), head_hash(&after));
        assert_eq!(recreate_hash(&before), recreate_hash(&after));
    }

    #[test]
    fn a_worker_image_changes_its_group_and_the_cluster_but_not_the_head() {
        let before = cluster().spec;
        let mut after = before.clone();
        after.worker_group_specs.as_mut().unwrap()[0].template.spec.as_mut().unwrap().containers[0].image = Some("ray:2.55.0".into());
        assert_ne!(worker(&before), worker(&after));
        assert_ne!(recreate_hash(&before), recreate_hash(&after));
        assert_eq!(head_hash(&before), head_hash(&after));
        assert_eq!(worker(&before).len(), 16);
    }

    #[test]
    fn a_cluster_wide_setting_changes_every_pods_hash() {
        let before = cluster().spec;
        let mut after = before.clone();
        after.ray_version = Some("2.55.0".into());
        assert_ne!(worker(&before), worker(&after));
        assert_ne!(head_hash(&before), head_hash(&after));
    }

    #[test]
    fn a_spec_read_back_from_json_hashes_the_same() {
        let spec = cluster().spec;
        let again: RayClusterSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(recreate_hash(&spec), recreate_hash(&again));
    }
}
