//! The GPU-aware pod builder: the Pods, Services, RBAC, Secret and Job a RayCluster needs, built as KubeRay v1.5.2 builds them.
//!
//! Everything here is a pure function of the RayCluster and a [`BuildContext`] (what KubeRay reads
//! from operator flags and environment variables). Nothing reads the clock, the environment or a
//! random source: the random pieces (the 5-character Pod name suffix, the auth token) come in as
//! arguments. Bad user input is a [`BuildError`], which the controller turns into a condition and an
//! Event; nothing here panics on user data.
//!
//! The rules are KubeRay's (`ray-operator/controllers/ray/common` at v1.5.2), checked field by field
//! against goldens produced by KubeRay's own builders (`tests/kuberay-oracle/`,
//! `tests/fixtures/kuberay-pods/`).
//!
//! # Deliberate differences from KubeRay v1.5.2
//!
//! 1. **Pods get a name.** KubeRay sets `generateName` and lets the API server add 5 random
//!    characters; wasmray writes with server-side apply, which needs a name, so the Pod is named
//!    `<generateName><suffix>` with a suffix the caller chooses (and `generateName` is kept as a
//!    record of the prefix). With `deterministic_head_pod_name` the head is `<cluster>-head`, as in KubeRay.
//! 2. **HTTP probes for Ray ≥ 2.53** (what KubeRay v1.6 does): liveness and readiness are
//!    `GET /api/healthz` on the dashboard agent port, so the image needs neither `bash` nor `wget`.
//!    The Ray version is `spec.rayVersion`, or, when that is unset, the version at the start of the
//!    head Ray container's image tag (`rayproject/ray:2.53.0-py311`). Older or unknown versions keep the
//!    `bash`/`wget` exec probes.
//! 3. **Exec probes honour custom ports** (`dashboard-agent-listen-port`, `dashboard-port` in
//!    rayStartParams), as KubeRay v1.6 does; v1.5 always probed 52365 and 8265.
//! 4. **More accelerators.** Besides `*gpu` keys (`nvidia.com/gpu`, `amd.com/gpu`) and MIG profiles,
//!    `gpu.intel.com/i915` and `gpu.intel.com/xe` give `--num-gpus` (Ray schedules Intel GPUs as
//!    `GPU`), and `habana.ai/gaudi` gives the custom resource `HPU` (Ray's name for Gaudi), next to
//!    KubeRay's `google.com/tpu` → `TPU` and `aws.amazon.com/neuroncore` → `neuron_cores`.
//! 5. **Errors instead of silence.** An unparsable quantity in a group's `resources` or a Ray
//!    container's limits, or an unparsable `resources` JSON in rayStartParams, is a
//!    [`BuildError`] naming the group and key; KubeRay logs and skips (or, for container limits,
//!    would have failed earlier in its Go decoder). A group without containers, a missing group
//!    index or a cluster without a UID are errors too, where KubeRay would panic or write a broken
//!    owner reference.
//! 6. **The Redis cleanup Job carries its deadline as data.** [`redis_cleanup_job`] builds the same
//!    Job as KubeRay; [`finalizer_deadline`] says when the controller must give up on the
//!    finalizer (KubeRay v1.5 never gives up; v1.7 gives up after 300 s by default). The time comes
//!    from the caller.
//!
//! 7. **A custom head Service gets its generated ports sorted by name.** KubeRay appends them to a
//!    user's `headService` in Go map order, which changes from run to run; without a user Service
//!    both sort by name.
//!
//! Not differences, but worth knowing: `RAY_USAGE_STATS_EXTRA_TAGS` reports
//! [`BuildContext::kuberay_version`] (default `v1.5.2`), since Ray's usage stats know KubeRay's
//! versions; and the Pod's `metadata.name` from a head template is kept, as KubeRay keeps it.

mod gcs;
mod pod;
mod rbac;
mod services;
mod start;

#[cfg(test)]
mod golden;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use wasmray_api::RayCluster;
// KubeRay's naming rules, quantities and label keys are shared with the RayCluster guest.
pub use wasmray_api::labels::{self, NodeType};
use wasmray_api::{names, quantity};

pub use gcs::{
    DELETION_TIMEOUT_ANNOTATION, FORCED_DELETION_REASON, REDIS_CLEANUP_FINALIZER,
    finalizer_deadline, redis_cleanup_job, redis_cleanup_timeout,
};
pub use names::{
    check_label, check_name, head_service_name, headless_service_name, serve_service_name,
};
pub use pod::{WorkerSlot, head_pod, worker_pod};
pub use quantity::{ParsedQuantity, QuantityError};
pub use rbac::{AutoscalerRbac, auth_token, auth_token_secret, autoscaler_rbac};
pub use services::{head_service, headless_worker_service, serve_service};
pub use start::{is_gpu_key, is_gpu_resource};

/// What the operator's flags, config file and environment say, for the builder.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildContext {
    /// `CLUSTER_DOMAIN`; default `cluster.local`.
    pub cluster_domain: String,
    /// `ENABLE_INIT_CONTAINER_INJECTION` (the `wait-gcs-ready` init container); default true.
    pub enable_init_container_injection: bool,
    /// `ENABLE_PROBES_INJECTION`; default true.
    pub enable_probes_injection: bool,
    /// Use HTTP probes for Ray ≥ 2.53 (difference 2 above); default true.
    pub http_probes_for_new_ray: bool,
    /// `ENABLE_LOGIN_SHELL`: `/bin/bash -cl --` instead of `-c`; default false.
    pub enable_login_shell: bool,
    /// `ENABLE_DETERMINISTIC_HEAD_POD_NAME`: the head Pod is `<cluster>-head`; default false.
    pub deterministic_head_pod_name: bool,
    /// `ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE`: a ClusterIP head Service instead of a headless one.
    pub enable_ray_head_cluster_ip_service: bool,
    /// Feature gate `RayMultiHostIndexing` (replica index/name/host labels); default off in v1.5.
    pub multi_host_indexing: bool,
    /// The version in `RAY_USAGE_STATS_EXTRA_TAGS`.
    pub kuberay_version: String,
    /// `defaultContainerEnvs` of the operator configuration, added to Ray containers when absent.
    pub default_container_envs: Vec<EnvVar>,
    /// `headSidecarContainers` of the operator configuration, appended to head Pods.
    pub head_sidecar_containers: Vec<Container>,
    /// `workerSidecarContainers` of the operator configuration, appended to worker Pods.
    pub worker_sidecar_containers: Vec<Container>,
}

impl Default for BuildContext {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            enable_init_container_injection: true,
            enable_probes_injection: true,
            http_probes_for_new_ray: true,
            enable_login_shell: false,
            deterministic_head_pod_name: false,
            enable_ray_head_cluster_ip_service: false,
            multi_host_indexing: false,
            kuberay_version: "v1.5.2".into(),
            default_container_envs: Vec::new(),
            head_sidecar_containers: Vec::new(),
            worker_sidecar_containers: Vec::new(),
        }
    }
}

/// Input the builder cannot turn into objects. Each variant names what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A group's Pod template has no containers; the Ray container is `containers[0]`.
    #[error(
        "group {group:?}: the Pod template has no containers (the Ray container is containers[0])"
    )]
    NoContainers { group: String },
    /// A worker group index past the end of `workerGroupSpecs`.
    #[error("worker group index {index} does not exist (the cluster has {count} worker groups)")]
    NoSuchGroup { index: usize, count: usize },
    /// A resource amount that is not a Kubernetes quantity.
    #[error("group {group:?}: resource {key:?} = {value:?} is not a quantity: {reason}")]
    InvalidQuantity {
        group: String,
        key: String,
        value: String,
        reason: String,
    },
    /// rayStartParams `resources` is not a JSON object of numbers.
    #[error(
        "group {group:?}: rayStartParams resources {value:?} is not a JSON object of numbers: {reason}"
    )]
    InvalidResourcesParam {
        group: String,
        value: String,
        reason: String,
    },
    /// The RayCluster has no name or UID, so nothing can point back to it.
    #[error("the RayCluster has no metadata.{0}; owner references need it")]
    MissingMetadata(&'static str),
    /// A serve Service was asked for, but the head container has no port named `serve`.
    #[error("the head container has no port named \"serve\"; the serve Service needs one")]
    NoServePort,
}

/// Which kind created the RayCluster (label `ray.io/originated-from-crd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreatedBy {
    RayCluster,
    RayJob,
    RayService,
}

impl CreatedBy {
    fn of(cluster: &RayCluster) -> Self {
        match cluster
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::ORIGINATED_FROM_CRD))
            .map(String::as_str)
        {
            Some("RayJob") => CreatedBy::RayJob,
            Some("RayService") => CreatedBy::RayService,
            _ => CreatedBy::RayCluster,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            CreatedBy::RayCluster => "RayCluster",
            CreatedBy::RayJob => "RayJob",
            CreatedBy::RayService => "RayService",
        }
    }
}

/// Facts about the cluster every builder needs, computed once.
struct ClusterFacts<'a> {
    cluster: &'a RayCluster,
    name: &'a str,
    namespace: String,
    owner: OwnerReference,
    created_by: CreatedBy,
    /// `<head-svc>.<ns>.svc.<domain>`.
    fqdn: String,
    /// rayStartParams `port` of the head, or 6379.
    head_port: String,
    autoscaling: bool,
    autoscaler_v2: bool,
    ft_enabled: bool,
    auth: bool,
}

impl<'a> ClusterFacts<'a> {
    fn of(cluster: &'a RayCluster, ctx: &BuildContext) -> Result<Self, BuildError> {
        let name = cluster
            .metadata
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or(BuildError::MissingMetadata("name"))?;
        let uid = cluster
            .metadata
            .uid
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or(BuildError::MissingMetadata("uid"))?;
        let spec = &cluster.spec;
        let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
        let custom_svc = spec.head_group_spec.custom_head_service_name();
        let fqdn = format!(
            "{}.{}.svc.{}",
            head_service_name(name, custom_svc),
            namespace,
            ctx.cluster_domain
        );
        let head_port = spec
            .head_group_spec
            .ray_start_params
            .as_ref()
            .and_then(|p| p.get("port"))
            .cloned()
            .unwrap_or_else(|| "6379".into());
        let autoscaling = spec.enable_in_tree_autoscaling == Some(true);
        let autoscaler_v2 = spec.autoscaler_options.as_ref().and_then(|o| o.version)
            == Some(wasmray_api::AutoscalerVersion::V2);
        let ft_annotation =
            annotation(cluster, labels::FT_ENABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let auth =
            spec.auth_options.as_ref().and_then(|a| a.mode) == Some(wasmray_api::AuthMode::Token);
        Ok(Self {
            cluster,
            name,
            namespace,
            owner: OwnerReference {
                api_version: wasmray_api::API_VERSION.into(),
                kind: "RayCluster".into(),
                name: name.to_owned(),
                uid: uid.to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            created_by: CreatedBy::of(cluster),
            fqdn,
            head_port,
            autoscaling,
            autoscaler_v2,
            ft_enabled: ft_annotation || spec.gcs_fault_tolerance_options.is_some(),
            auth,
        })
    }

    /// `<fqdn>:<port>`, the address workers and `wait-gcs-ready` use.
    fn head_address(&self) -> String {
        format!("{}:{}", self.fqdn, self.head_port)
    }
}

fn annotation<'a>(cluster: &'a RayCluster, key: &str) -> Option<&'a str> {
    cluster
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The labels KubeRay puts on every object of a cluster's autoscaler RBAC.
fn rbac_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::CLUSTER.to_owned(), cluster.to_owned()),
        (
            labels::APP_NAME.to_owned(),
            labels::APP_NAME_VALUE.to_owned(),
        ),
        (
            labels::CREATED_BY.to_owned(),
            labels::CREATED_BY_VALUE.to_owned(),
        ),
    ])
}

/// A Ray version `major.minor.patch` from `spec.rayVersion`, else from the Ray container's image tag.
fn ray_version(cluster: &RayCluster) -> Option<(u64, u64, u64)> {
    if let Some(version) = cluster
        .spec
        .ray_version
        .as_deref()
        .filter(|v| !v.is_empty())
    {
        return parse_version(version);
    }
    let image = cluster
        .spec
        .head_group_spec
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_deref()?;
    let image = image.split('@').next()?;
    let (repository, tag) = image.rsplit_once(':')?;
    // A `:` inside the registry host (`host:5000/ray`) is not a tag separator.
    if tag.contains('/') || repository.is_empty() {
        return None;
    }
    parse_version(tag)
}

/// `2.53`, `2.53.0`, `v2.53.1`, `2.53.0-py311-gpu` → (2, 53, patch).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_ray_version_or_image_tag() {
        assert_eq!(parse_version("2.46.0"), Some((2, 46, 0)));
        assert_eq!(parse_version("2.53"), Some((2, 53, 0)));
        assert_eq!(parse_version("v2.53.1"), Some((2, 53, 1)));
        assert_eq!(parse_version("2.53.0-py311-gpu"), Some((2, 53, 0)));
        assert_eq!(parse_version("nightly"), None);
        assert_eq!(parse_version("ngc-th2.6.0"), None);
    }

    #[test]
    fn the_image_tag_is_used_only_without_ray_version() {
        let mut cluster: RayCluster = serde_yaml::from_str(
            "metadata: {name: c}\nspec:\n  headGroupSpec:\n    template:\n      spec:\n        containers: [{name: ray-head, image: 'registry:5000/rayproject/ray:2.54.0-py311'}]\n",
        )
        .unwrap();
        assert_eq!(ray_version(&cluster), Some((2, 54, 0)));
        cluster.spec.ray_version = Some("2.46.0".into());
        assert_eq!(ray_version(&cluster), Some((2, 46, 0)));
    }
}
