//! What the spec asks for: clamped replicas per group, worker totals and desired resources (KubeRay's rules).

use k8s_openapi::api::core::v1::PodSpec;
use wasmray_api::quantity::Quantity;
use wasmray_api::{RayCluster, WorkerGroupSpec};

/// Whether the group is suspended (`workerGroupSpecs[].suspend`).
pub fn group_suspended(group: &WorkerGroupSpec) -> bool {
    group.suspend == Some(true)
}

/// Replicas the group should run: 0 when suspended; `max` when min > max; `min` when replicas is
/// unset or below min; `max` when above it; else replicas.
pub fn replicas(group: &WorkerGroupSpec) -> i32 {
    let (min, max) = (
        group.min_replicas_or_default(),
        group.max_replicas_or_default(),
    );
    if group_suspended(group) {
        0
    } else if min > max {
        max
    } else {
        match group.replicas {
            None => min,
            Some(r) if r < min => min,
            Some(r) if r > max => max,
            Some(r) => r,
        }
    }
    .max(0)
}

/// Pods per replica; 0 (or less) hosts is an invalid group that gets no Pods at all.
pub fn hosts(group: &WorkerGroupSpec) -> i32 {
    group.num_of_hosts_or_default().max(0)
}

/// Worker Pods the group should run: replicas × hosts.
pub fn pods(group: &WorkerGroupSpec) -> i64 {
    i64::from(replicas(group)) * i64::from(hosts(group))
}

/// The worker totals of `status`: desired, min and max Pods over the groups not suspended.
pub struct Totals {
    pub desired: i32,
    pub min: i32,
    pub max: i32,
}

/// Sums over the worker groups; suspended groups count for nothing, sums saturate at `i32::MAX`.
pub fn totals(cluster: &RayCluster) -> Totals {
    let mut sums = (0i64, 0i64, 0i64);
    for group in cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .filter(|g| !group_suspended(g))
    {
        let hosts = i64::from(hosts(group));
        sums.0 += pods(group);
        sums.1 += i64::from(group.min_replicas_or_default().max(0)) * hosts;
        sums.2 += i64::from(group.max_replicas_or_default().max(0)) * hosts;
    }
    let clamp = |v: i64| i32::try_from(v.min(i64::from(i32::MAX))).unwrap_or(i32::MAX);
    Totals {
        desired: clamp(sums.0),
        min: clamp(sums.1),
        max: clamp(sums.2),
    }
}

/// `desiredCPU`, `desiredMemory`, `desiredGPU`, `desiredTPU`, canonical text.
#[derive(Debug, PartialEq, Eq)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
    pub gpu: String,
    pub tpu: String,
}

/// Sums the head Pod and every desired worker Pod. Per container a request wins over a limit,
/// so a template with limits only still counts; GPU is every resource whose name ends in `gpu`.
pub fn resources(cluster: &RayCluster) -> Resources {
    let mut total: Vec<(String, Quantity)> = Vec::new();
    let mut add = |list: Vec<(String, Quantity)>, times: i64| {
        for (name, quantity) in list {
            let amount = quantity.times(times);
            match total.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sum)) => *sum = *sum + amount,
                None => total.push((name, amount)),
            }
        }
    };
    add(
        pod_resources(cluster.spec.head_group_spec.template.spec.as_ref()),
        1,
    );
    for group in cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .filter(|g| !group_suspended(g))
    {
        let count = pods(group);
        if count > 0 {
            add(pod_resources(group.template.spec.as_ref()), count);
        }
    }
    let get = |key: &str| {
        total
            .iter()
            .find(|(n, _)| n == key)
            .map(|(_, q)| *q)
            .unwrap_or_default()
    };
    let gpu = total
        .iter()
        .filter(|(n, _)| n.ends_with("gpu"))
        .fold(Quantity::default(), |sum, (_, q)| sum + *q);
    Resources {
        cpu: get("cpu").canonical(),
        memory: get("memory").canonical(),
        gpu: gpu.canonical(),
        tpu: get("google.com/tpu").canonical(),
    }
}

/// One Pod's resources: per container the requests, plus limits for names without a request.
fn pod_resources(spec: Option<&PodSpec>) -> Vec<(String, Quantity)> {
    let mut sum: Vec<(String, Quantity)> = Vec::new();
    for container in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        let resources = container.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        let from_limits = limits
            .iter()
            .filter(|(name, _)| !requests.contains_key(*name));
        for (name, quantity) in requests.iter().chain(from_limits) {
            let Some(q) = Quantity::parse(&quantity.0) else {
                continue;
            };
            match sum.iter_mut().find(|(n, _)| n == name) {
                Some((_, s)) => *s = *s + q,
                None => sum.push((name.clone(), q)),
            }
        }
    }
    sum
}
