//! What a RayCluster spec asks of the cluster: worker counts and summed Pod resources, for gang schedulers.
//!
//! The batch-scheduler plugins size their PodGroups and task groups from these, so the rules live
//! once here: replicas clamped to `[min, max]` (0 when the group is suspended), Pods per replica
//! from `numOfHosts`, and per container a request winning over a limit of the same name.
//! Resource lists are `BTreeMap`s so they serialise with sorted keys, as Go's maps do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;

use crate::quantity::Quantity;
use crate::{RayClusterSpec, RayJobSpec, SubmissionMode, WorkerGroupSpec};

/// Resource name → amount.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Whether the in-tree autoscaler runs (`enableInTreeAutoscaling: true`).
pub fn autoscaling(spec: &RayClusterSpec) -> bool {
    spec.enable_in_tree_autoscaling == Some(true)
}

/// Replicas the group should run: 0 when suspended; `max` when min > max; `replicas` clamped to
/// `[min, max]`, `min` when unset.
pub fn desired_replicas(group: &WorkerGroupSpec) -> i32 {
    let (min, max) = (group.min_replicas_or_default(), group.max_replicas_or_default());
    if group.suspend == Some(true) {
        0
    } else if min > max {
        max
    } else {
        group.replicas.unwrap_or(min).clamp(min, max)
    }
    .max(0)
}

/// Pods per replica; a group with 0 (or fewer) hosts gets no Pods.
pub fn hosts(group: &WorkerGroupSpec) -> i64 {
    i64::from(group.num_of_hosts_or_default().max(0))
}

fn active_groups(spec: &RayClusterSpec) -> impl Iterator<Item = &WorkerGroupSpec> {
    spec.worker_group_specs
        .iter()
        .flatten()
        .filter(|g| g.suspend != Some(true))
}

fn clamp_i32(value: i64) -> i32 {
    i32::try_from(value.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

/// Worker Pods the spec asks for: desired replicas × hosts over the groups not suspended.
pub fn desired_workers(spec: &RayClusterSpec) -> i32 {
    clamp_i32(
        active_groups(spec)
            .map(|g| i64::from(desired_replicas(g)) * hosts(g))
            .sum(),
    )
}

/// Worker Pods the autoscaler never goes below: `minReplicas` × hosts over the groups not suspended.
pub fn min_workers(spec: &RayClusterSpec) -> i32 {
    clamp_i32(
        active_groups(spec)
            .map(|g| i64::from(g.min_replicas_or_default().max(0)) * hosts(g))
            .sum(),
    )
}

/// Adds `times` × `list` into `total`; a new name keeps the format of its first term.
pub fn add(total: &mut ResourceList, list: &ResourceList, times: i64) {
    if times <= 0 {
        return;
    }
    for (name, quantity) in list {
        let amount = quantity.times(times);
        total
            .entry(name.clone())
            .and_modify(|sum| *sum = *sum + amount)
            .or_insert(amount);
    }
}

/// One Pod's resources: per container its requests, plus its limits for names it does not request.
/// A quantity that does not parse counts for nothing (the API server would have refused it).
pub fn pod_resources(spec: Option<&PodSpec>) -> ResourceList {
    let mut sum = ResourceList::new();
    for container in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        let Some(resources) = container.resources.as_ref() else {
            continue;
        };
        let requests = resources.requests.as_ref();
        let limits = resources.limits.iter().flatten().filter(|(name, _)| {
            !requests.is_some_and(|r| r.contains_key(*name))
        });
        for (name, quantity) in requests.into_iter().flatten().chain(limits) {
            if let Some(q) = Quantity::parse(&quantity.0) {
                add(&mut sum, &BTreeMap::from([(name.clone(), q)]), 1);
            }
        }
    }
    sum
}

/// The head Pod plus every desired worker Pod.
pub fn desired_resources(spec: &RayClusterSpec) -> ResourceList {
    let mut total = pod_resources(spec.head_group_spec.template.spec.as_ref());
    for group in active_groups(spec) {
        let pods = i64::from(desired_replicas(group)) * hosts(group);
        add(&mut total, &pod_resources(group.template.spec.as_ref()), pods);
    }
    total
}

/// The head Pod plus `minReplicas` × hosts Pods of every group not suspended.
pub fn min_resources(spec: &RayClusterSpec) -> ResourceList {
    let mut total = pod_resources(spec.head_group_spec.template.spec.as_ref());
    for group in active_groups(spec) {
        let pods = i64::from(group.min_replicas_or_default().max(0)) * hosts(group);
        add(&mut total, &pod_resources(group.template.spec.as_ref()), pods);
    }
    total
}

/// What the default submitter container requests: `500m` CPU and `200Mi` memory (its limits,
/// 1 CPU and 1Gi, lose to the requests).
pub fn default_submitter_resources() -> ResourceList {
    let q = |s: &str| Quantity::parse(s).unwrap_or_default();
    BTreeMap::from([("cpu".to_owned(), q("500m")), ("memory".to_owned(), q("200Mi"))])
}

/// The submitter Pod's resources for a RayJob: its `submitterPodTemplate` (or the default
/// submitter) in `K8sJobMode`, the default submitter container in `SidecarMode`, nothing in the
/// modes without a submitter.
pub fn submitter_resources(job: &RayJobSpec) -> ResourceList {
    match job.submission_mode.unwrap_or_default() {
        SubmissionMode::K8sJobMode => match &job.submitter_pod_template {
            Some(template) => pod_resources(template.spec.as_ref()),
            None => default_submitter_resources(),
        },
        SubmissionMode::SidecarMode => default_submitter_resources(),
        SubmissionMode::HttpMode | SubmissionMode::InteractiveMode => ResourceList::new(),
    }
}

/// Each amount as Go's `Quantity.String()` prints it.
pub fn canonical(list: &ResourceList) -> BTreeMap<String, String> {
    list.iter()
        .map(|(name, q)| (name.clone(), q.canonical()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> RayClusterSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    const TWO_GROUPS: &str = r#"
headGroupSpec:
  template:
    spec:
      containers:
      - name: ray-head
        resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "2", nvidia.com/gpu: "1"}}
workerGroupSpecs:
- groupName: small
  replicas: 3
  minReplicas: 1
  maxReplicas: 5
  template:
    spec:
      containers:
      - name: w
        resources: {limits: {cpu: 500m, memory: 1Gi}}
- groupName: tpu
  replicas: 2
  minReplicas: 1
  maxReplicas: 2
  numOfHosts: 4
  template:
    spec:
      containers:
      - name: w
        resources: {requests: {cpu: "1", google.com/tpu: "4"}}
- groupName: paused
  suspend: true
  replicas: 10
  template:
    spec:
      containers:
      - name: w
        resources: {requests: {cpu: "100"}}
"#;

    #[test]
    fn desired_counts_replicas_times_hosts_and_skips_suspended_groups() {
        let spec = cluster(TWO_GROUPS);
        assert_eq!(desired_workers(&spec), 3 + 2 * 4);
        assert_eq!(min_workers(&spec), 1 + 4);
    }

    #[test]
    fn a_request_wins_over_a_limit_and_a_limit_alone_still_counts() {
        let spec = cluster(TWO_GROUPS);
        let head = canonical(&pod_resources(spec.head_group_spec.template.spec.as_ref()));
        assert_eq!(head["cpu"], "1");
        assert_eq!(head["memory"], "2Gi");
        assert_eq!(head["nvidia.com/gpu"], "1");
    }

    #[test]
    fn desired_and_min_resources_sum_head_and_workers() {
        let spec = cluster(TWO_GROUPS);
        let desired = canonical(&desired_resources(&spec));
        assert_eq!(desired["cpu"], "10500m"); // 1 + 3 × 0.5 + 8 × 1
        assert_eq!(desired["memory"], "5Gi");
        assert_eq!(desired["google.com/tpu"], "32");
        let min = canonical(&min_resources(&spec));
        assert_eq!(min["cpu"], "5500m"); // 1 + 0.5 + 4 × 1
        assert_eq!(min["google.com/tpu"], "16");
    }

    #[test]
    fn replicas_are_clamped_into_min_and_max() {
        let group: WorkerGroupSpec =
            serde_yaml::from_str("{groupName: g, replicas: 9, minReplicas: 1, maxReplicas: 4, template: {}}")
                .unwrap();
        assert_eq!(desired_replicas(&group), 4);
    }

    #[test]
    fn the_default_submitter_asks_for_half_a_cpu() {
        let job: RayJobSpec = serde_yaml::from_str("{entrypoint: x}").unwrap();
        assert_eq!(canonical(&submitter_resources(&job))["cpu"], "500m");
        let job: RayJobSpec = serde_yaml::from_str("{entrypoint: x, submissionMode: HTTPMode}").unwrap();
        assert!(submitter_resources(&job).is_empty());
    }
}
