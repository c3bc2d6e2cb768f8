//! What the spec asks for: clamped replicas per group, worker totals and desired resources (KubeRay's rules).
//!
//! The rules themselves live once in [`wasmray_api::resources`], shared with the batch-scheduler
//! plugins that size PodGroups from them; this module shapes them for the reconciler's status.

use wasmray_api::quantity::Quantity;
use wasmray_api::resources::{self, desired_replicas};
use wasmray_api::{RayCluster, WorkerGroupSpec};

/// Whether the group is suspended (`workerGroupSpecs[].suspend`).
pub fn group_suspended(group: &WorkerGroupSpec) -> bool {
    group.suspend == Some(true)
}

/// Replicas the group should run: 0 when suspended, else `replicas` clamped to `[min, max]`.
pub fn replicas(group: &WorkerGroupSpec) -> i32 {
    desired_replicas(group)
}

/// Pods per replica; 0 (or less) hosts is an invalid group that gets no Pods at all.
pub fn hosts(group: &WorkerGroupSpec) -> i64 {
    resources::hosts(group)
}

/// Worker Pods the group should run: replicas × hosts.
pub fn pods(group: &WorkerGroupSpec) -> i64 {
    i64::from(replicas(group)) * hosts(group)
}

/// The worker totals of `status`: desired, min and max Pods over the groups not suspended.
pub struct Totals {
    pub desired: i32,
    pub min: i32,
    pub max: i32,
}

/// Sums over the worker groups; suspended groups count for nothing, sums saturate at `i32::MAX`.
pub fn totals(cluster: &RayCluster) -> Totals {
    let max: i64 = cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .filter(|g| !group_suspended(g))
        .map(|g| i64::from(g.max_replicas_or_default().max(0)) * hosts(g))
        .sum();
    Totals {
        desired: resources::desired_workers(&cluster.spec),
        min: resources::min_workers(&cluster.spec),
        max: i32::try_from(max.min(i64::from(i32::MAX))).unwrap_or(i32::MAX),
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
    let total = resources::desired_resources(&cluster.spec);
    let get = |key: &str| total.get(key).copied().unwrap_or_default();
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
