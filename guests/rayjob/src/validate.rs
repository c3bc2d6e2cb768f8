//! KubeRay's reconcile-time RayJob validation: metadata, spec and status rules, each failure with its Event reason.

use std::collections::{BTreeMap, BTreeSet};

use wasmray_api::{DeletionJobStatus, DeletionPolicyType, JobDeploymentStatus, RayJob, SubmissionMode};

use crate::facts::Settings;
use crate::vocab::events;
use crate::{Ctx, Mode};

/// A rule the RayJob breaks: the Event reason and the message.
pub type Invalid = (&'static str, String);

/// The first rule the RayJob breaks, metadata first, then spec, then status.
pub fn check(ctx: &Ctx) -> Result<(), Invalid> {
    metadata(ctx.name).map_err(|m| (events::INVALID_METADATA, m))?;
    spec(ctx, &ctx.settings()).map_err(|m| (events::INVALID_SPEC, m))?;
    status(ctx.job, ctx.mode).map_err(|m| (events::INVALID_STATUS, m))
}

fn metadata(name: &str) -> Result<(), String> {
    // The cluster is `<name>-<5 random>`, and a RayCluster's name may be 53 characters long.
    if name.len() > 47 {
        return Err(format!("RayJob name should be no more than 47 characters, got {}", name.len()));
    }
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(format!("RayJob name {name:?} should be a valid DNS-1035 label"));
    }
    Ok(())
}

fn spec(ctx: &Ctx, settings: &Settings) -> Result<(), String> {
    let spec = &ctx.job.spec;
    let shutdown = spec.shutdown_after_job_finishes == Some(true);
    let selector = spec.cluster_selector.as_ref().filter(|s| !s.is_empty());
    if spec.suspend == Some(true) && !shutdown {
        return Err("a RayJob with shutdownAfterJobFinishes set to false is not allowed to be suspended".into());
    }
    if spec.suspend == Some(true) && selector.is_some() {
        return Err("the ClusterSelector mode doesn't support the suspend operation".into());
    }
    // With both, the selector wins, as in KubeRay: the spec is then ignored.
    match (spec.ray_cluster_spec.is_some(), selector) {
        (false, None) => return Err("one of RayClusterSpec or ClusterSelector must be set".into()),
        (_, Some(s)) if s.get(crate::vocab::labels::CLUSTER).is_none_or(String::is_empty) => {
            return Err("cluster name in ClusterSelector should not be empty".into());
        }
        _ => {}
    }
    if selector.is_some() && ctx.mode == Mode::Sidecar {
        return Err("the ClusterSelector mode doesn't support SidecarMode".into());
    }
    if ctx.mode == Mode::Interactive && spec.backoff_limit.is_some_and(|b| b > 0) {
        return Err("BackoffLimit is incompatible with InteractiveMode".into());
    }
    if ctx.mode == Mode::Sidecar {
        if spec.submitter_pod_template.is_some() {
            return Err("SubmitterPodTemplate is not allowed in SidecarMode".into());
        }
        if spec.submitter_config.is_some() {
            return Err("SubmitterConfig is not allowed in SidecarMode".into());
        }
        let policy = spec
            .ray_cluster_spec
            .as_ref()
            .and_then(|c| c.head_group_spec.template.spec.as_ref())
            .and_then(|s| s.restart_policy.as_deref());
        if policy.is_some_and(|p| p != "Never") {
            return Err("the head Pod's restartPolicy must be Never or unset in SidecarMode".into());
        }
    }
    if let Some(yaml) = spec.runtime_env_yaml.as_deref().filter(|y| !y.is_empty())
        && let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(yaml)
    {
        return Err(format!("runtimeEnvYAML is not valid YAML: {e}"));
    }
    if spec.active_deadline_seconds.is_some_and(|s| s <= 0) {
        return Err("activeDeadlineSeconds must be a positive integer".into());
    }
    if crate::timers::pre_running_deadline_s(ctx.raw).is_some_and(|s| s <= 0) {
        return Err("preRunningDeadlineSeconds must be a positive integer".into());
    }
    if spec.backoff_limit.is_some_and(|b| b < 0) {
        return Err("backoffLimit must be a non-negative integer".into());
    }
    let ttl = spec.ttl_seconds_after_finished.unwrap_or(0);
    if ttl < 0 {
        return Err("ttlSecondsAfterFinished must be a non-negative integer".into());
    }
    if ttl > 0 && !shutdown {
        return Err("a RayJob with shutdownAfterJobFinishes set to false cannot have ttlSecondsAfterFinished".into());
    }
    deletion_strategy(ctx, settings, shutdown, selector.is_some())?;
    cluster_spec(ctx.job)
}

fn deletion_strategy(ctx: &Ctx, settings: &Settings, shutdown: bool, selector: bool) -> Result<(), String> {
    let Some(strategy) = &ctx.job.spec.deletion_strategy else { return Ok(()) };
    if !settings.ray_job_deletion_policy {
        return Err("deletionStrategy requires the RayJobDeletionPolicy feature gate".into());
    }
    let legacy = strategy.on_success.is_some() || strategy.on_failure.is_some();
    let Some(rules) = &strategy.deletion_rules else {
        let (Some(on_success), Some(on_failure)) = (&strategy.on_success, &strategy.on_failure) else {
            return Err("deletionStrategy needs both onSuccess and onFailure, or deletionRules".into());
        };
        let none = |p: &wasmray_api::DeletionPolicy| p.policy == Some(DeletionPolicyType::DeleteNone);
        if shutdown && (none(on_success) || none(on_failure)) {
            return Err("shutdownAfterJobFinishes is incompatible with a DeleteNone deletion policy".into());
        }
        return Ok(());
    };
    if legacy {
        return Err("deletionRules cannot be combined with onSuccess or onFailure".into());
    }
    if shutdown {
        return Err("deletionRules are incompatible with shutdownAfterJobFinishes".into());
    }
    let autoscaling = ctx.job.spec.ray_cluster_spec.as_ref().is_some_and(|c| c.enable_in_tree_autoscaling == Some(true));
    let mut seen = BTreeSet::new();
    let mut ttls: BTreeMap<(u8, u8), i32> = BTreeMap::new();
    for rule in rules {
        let status = match rule.condition.job_status {
            DeletionJobStatus::Succeeded => 0,
            DeletionJobStatus::Failed => 1,
        };
        let impact = crate::timers::impact(rule.policy);
        if !seen.insert((status, impact)) {
            return Err(format!("deletionRules has more than one {:?} rule for {:?}", rule.policy, rule.condition.job_status));
        }
        let ttl = rule.condition.ttl_seconds.unwrap_or(0);
        if ttl < 0 {
            return Err("deletionRules ttlSeconds must be non-negative".into());
        }
        if selector && matches!(rule.policy, DeletionPolicyType::DeleteCluster | DeletionPolicyType::DeleteWorkers) {
            return Err(format!("the {:?} policy cannot be used with clusterSelector", rule.policy));
        }
        if autoscaling && rule.policy == DeletionPolicyType::DeleteWorkers {
            return Err("the DeleteWorkers policy cannot be used with enableInTreeAutoscaling".into());
        }
        ttls.insert((status, impact), ttl);
    }
    // Deleting more must not come before deleting less: workers ≤ cluster ≤ self, per status.
    for status in [0u8, 1] {
        let ordered: Vec<i32> = (1..=3).filter_map(|impact| ttls.get(&(status, impact)).copied()).collect();
        if ordered.windows(2).any(|w| w[0] > w[1]) {
            return Err("deletionRules TTLs must satisfy DeleteWorkers <= DeleteCluster <= DeleteSelf for each jobStatus".into());
        }
    }
    Ok(())
}

/// The part of the RayCluster validation a RayJob can fail at once: no Ray container, a group name twice.
fn cluster_spec(job: &RayJob) -> Result<(), String> {
    let Some(spec) = &job.spec.ray_cluster_spec else { return Ok(()) };
    let empty = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| t.spec.as_ref().is_none_or(|s| s.containers.is_empty());
    if empty(&spec.head_group_spec.template) {
        return Err("rayClusterSpec.headGroupSpec.template.spec.containers is empty".into());
    }
    let mut names = BTreeSet::new();
    for group in spec.worker_group_specs.iter().flatten() {
        if empty(&group.template) {
            return Err(format!("rayClusterSpec.workerGroupSpecs[{}].template.spec.containers is empty", group.group_name));
        }
        if !names.insert(group.group_name.as_str()) {
            return Err(format!("worker group name {:?} is used more than once", group.group_name));
        }
    }
    Ok(())
}

fn status(job: &RayJob, mode: Mode) -> Result<(), String> {
    let deployment = job.status.as_ref().and_then(|s| s.job_deployment_status);
    if deployment == Some(JobDeploymentStatus::Waiting) && mode != Mode::Interactive {
        return Err("the Waiting status is only allowed in InteractiveMode".into());
    }
    Ok(())
}

impl From<Option<SubmissionMode>> for Mode {
    fn from(mode: Option<SubmissionMode>) -> Self {
        match mode.unwrap_or_default() {
            SubmissionMode::K8sJobMode => Mode::K8sJob,
            SubmissionMode::HttpMode => Mode::Http,
            SubmissionMode::InteractiveMode => Mode::Interactive,
            SubmissionMode::SidecarMode => Mode::Sidecar,
        }
    }
}
