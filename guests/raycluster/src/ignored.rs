//! Settings that look right but do nothing: found here, reported as a Warning Event and the
//! condition `RayClusterIgnoredSettings`, and otherwise treated exactly as KubeRay treats them.
//!
//! - `ray.io/ft-enabled` on a Pod template (head or worker) of a cluster without fault tolerance:
//!   KubeRay reads it only from the RayCluster's own annotations (and the head Pod's copy is
//!   overwritten with the cluster's setting), so the cluster runs without GCS fault tolerance.
//! - `rayStartParams.num-gpus` that differs from the Ray container's GPU limit: the parameter
//!   wins, so Ray schedules GPUs the container does not have (or leaves some unused).
//!
//! The Warning is sent when the list of findings changes (the condition's message is the
//! record), not on every reconcile.

use wasmray_api::RayCluster;
use wasmray_api::quantity::ParsedQuantity;
use wasmray_guest_sdk::{Condition, ConditionStatus};

use crate::gcs;
use crate::vocab::{annotations, conditions};

/// One ignored setting: a condition reason and a message naming the field and where it belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub reason: &'static str,
    pub message: String,
}

/// Condition reasons, one per kind of finding.
pub mod reasons {
    pub const FT_ANNOTATION_ON_POD_TEMPLATE: &str = "FaultToleranceAnnotationOnPodTemplate";
    pub const NUM_GPUS_DISAGREES_WITH_LIMIT: &str = "NumGpusDisagreesWithGpuLimit";
}

/// Every ignored setting of the spec, head first, then the worker groups in order.
pub fn find(cluster: &RayCluster) -> Vec<Finding> {
    let mut out = Vec::new();
    let head = &cluster.spec.head_group_spec;
    let groups = cluster.spec.worker_group_specs.as_deref().unwrap_or_default();
    let templates = std::iter::once(("headGroupSpec".to_owned(), &head.template)).chain(
        groups
            .iter()
            .map(|g| (format!("workerGroupSpecs[{}]", g.group_name), &g.template)),
    );
    if !gcs::enabled(cluster) {
        for (path, template) in templates.clone() {
            let value = template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(annotations::FT_ENABLED));
            if value.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                out.push(Finding {
                    reason: reasons::FT_ANNOTATION_ON_POD_TEMPLATE,
                    message: format!(
                        "{path}.template.metadata.annotations[\"{key}\"] is ignored: GCS fault tolerance is read only from the \
                         RayCluster's own metadata.annotations[\"{key}\"] or spec.gcsFaultToleranceOptions, so this cluster runs \
                         without fault tolerance",
                        key = annotations::FT_ENABLED
                    ),
                });
            }
        }
    }
    let params = std::iter::once(("headGroupSpec".to_owned(), head.ray_start_params.as_ref()))
        .chain(groups.iter().map(|g| {
            (
                format!("workerGroupSpecs[{}]", g.group_name),
                g.ray_start_params.as_ref(),
            )
        }));
    for ((path, params), (_, template)) in params.zip(templates) {
        let Some(text) = params.and_then(|p| p.get("num-gpus")) else {
            continue;
        };
        let Ok(wanted) = text.trim().trim_matches(['\'', '"']).parse::<f64>() else {
            continue;
        };
        let limit = gpu_limit(template);
        let have = limit.as_ref().map_or(0.0, |(_, n)| *n);
        if (wanted - have).abs() > f64::EPSILON {
            let container = match &limit {
                Some((key, n)) => format!("a GPU limit of {n} ({key})"),
                None => "no GPU limit".to_owned(),
            };
            out.push(Finding {
                reason: reasons::NUM_GPUS_DISAGREES_WITH_LIMIT,
                message: format!(
                    "{path}.rayStartParams[\"num-gpus\"] = {text:?} disagrees with the Ray container's resources ({container}): \
                     Ray schedules {text} GPUs on each Pod regardless; set the GPU limit in \
                     {path}.template.spec.containers[0].resources.limits and drop num-gpus, which is inferred from it"
                ),
            });
        }
    }
    out
}

/// The Ray container's GPU limit as the Pod builder infers `num-gpus`: the first GPU resource
/// (by name) with a non-zero limit, rounded up.
fn gpu_limit(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> Option<(String, f64)> {
    let limits = template
        .spec
        .as_ref()?
        .containers
        .first()?
        .resources
        .as_ref()?
        .limits
        .as_ref()?;
    limits.iter().find_map(|(key, value)| {
        if !is_gpu_resource(key) {
            return None;
        }
        let quantity = ParsedQuantity::parse(&value.0).ok()?;
        let count = quantity.ceil()?;
        (count != 0).then(|| (key.clone(), count as f64))
    })
}

/// The host's GPU rule (KubeRay's `*gpu` keys and NVIDIA MIG profiles, plus Intel GPUs).
fn is_gpu_resource(key: &str) -> bool {
    key.ends_with("gpu")
        || key.contains("nvidia.com/mig-")
        || key == "gpu.intel.com/i915"
        || key == "gpu.intel.com/xe"
}

/// The condition for these findings: True with the first one's reason and every message, or a
/// removal when there are none.
pub fn condition(findings: &[Finding]) -> Condition {
    match findings.first() {
        None => Condition::removal(conditions::IGNORED_SETTINGS),
        Some(first) => Condition::new(
            conditions::IGNORED_SETTINGS,
            ConditionStatus::True,
            first.reason,
            &message(findings),
        ),
    }
}

/// Every finding's message, one per line.
pub fn message(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
