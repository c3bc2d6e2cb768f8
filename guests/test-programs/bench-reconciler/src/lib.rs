//! Benchmark guest: reconcile a RayCluster against its Pods, as the real reconciler will.
//!
//! It parses the RayCluster and every child Pod into slim serde views, counts the live Pods
//! per group, creates the missing ones, deletes the surplus, and reports the status.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmray_guest_sdk::{
    Condition, ConditionStatus, ObjectRef, Plan, PluginError, Reconciler, Snapshot, StatusUpdate,
    parse, to_json,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RayCluster {
    metadata: Meta,
    spec: ClusterSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    deletion_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterSpec {
    #[serde(default)]
    worker_group_specs: Vec<WorkerGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkerGroup {
    group_name: String,
    replicas: Option<u32>,
    #[serde(default)]
    min_replicas: u32,
    #[serde(default)]
    suspend: bool,
}

#[derive(Deserialize)]
struct Pod {
    metadata: Meta,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize, Default)]
struct PodStatus {
    phase: Option<String>,
}

/// Live Pods of one group: names, and how many are running.
#[derive(Default)]
struct GroupPods {
    names: Vec<String>,
    running: u32,
}

/// The decision, as a pure function of the snapshot.
pub fn plan(snapshot: &Snapshot) -> Result<Plan, PluginError> {
    let cluster: RayCluster = parse(&snapshot.primary)?;
    let mut groups: BTreeMap<String, GroupPods> = BTreeMap::new();
    for child in &snapshot.children {
        let pod: Pod = parse(child)?;
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let group = pod.metadata.labels.get("ray.io/group").cloned().unwrap_or_default();
        let entry = groups.entry(group).or_default();
        entry.names.push(pod.metadata.name);
        entry.running += u32::from(pod.status.phase.as_deref() == Some("Running"));
    }
    let mut plan = Plan::new();
    let mut ready_workers = 0;
    let mut desired_workers = 0;
    for group in &cluster.spec.worker_group_specs {
        let desired = if group.suspend { 0 } else { group.replicas.unwrap_or(group.min_replicas) };
        desired_workers += desired;
        let live = groups.remove(&group.group_name).unwrap_or_default();
        ready_workers += live.running;
        let have = live.names.len() as u32;
        for i in have..desired {
            // Names come from the seed so the same snapshot gives the same plan.
            let name = format!("{}-{}-worker-{:x}", cluster.metadata.name, group.group_name, snapshot.seed.wrapping_add(u64::from(i)));
            plan = plan.apply(worker_pod(&cluster, &group.group_name, &name)?);
        }
        let mut names = live.names;
        names.sort();
        for name in names.into_iter().skip(desired as usize) {
            plan = plan.delete(ObjectRef::namespaced("v1", "Pod", &cluster.metadata.namespace, &name));
        }
    }
    let fields = to_json(&serde_json::json!({
        "readyWorkerReplicas": ready_workers,
        "desiredWorkerReplicas": desired_workers,
        "lastUpdateTime": snapshot.now,
    }))?;
    let ready = ready_workers == desired_workers;
    let status = if ready { ConditionStatus::True } else { ConditionStatus::False };
    let reason = if ready { "AllPodsRunning" } else { "PodsPending" };
    let condition = Condition::new("RayClusterProvisioned", status, reason, "");
    Ok(plan
        .status(StatusUpdate { conditions: vec![condition], fields: Some(fields) })
        .requeue_after_ms(if ready { 300_000 } else { 5_000 }))
}

fn worker_pod(cluster: &RayCluster, group: &str, name: &str) -> Result<String, PluginError> {
    to_json(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": cluster.metadata.namespace,
            "labels": { "ray.io/cluster": cluster.metadata.name, "ray.io/group": group, "ray.io/node-type": "worker" },
            "ownerReferences": [{ "apiVersion": "ray.io/v1", "kind": "RayCluster", "name": cluster.metadata.name, "uid": cluster.metadata.uid, "controller": true }],
        },
        "spec": { "containers": [{ "name": "ray-worker", "image": "rayproject/ray:2.54.0" }] },
    }))
}

struct Bench;

impl Reconciler for Bench {
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError> {
        plan(&snapshot)
    }
}

wasmray_guest_sdk::export_reconciler!(Bench);
