//! Benchmark guest: reconcile a RayCluster against its Pods, as the real reconciler will.
//!
//! It parses the RayCluster into a slim owned view and every child Pod into a view borrowing
//! from the snapshot (only name, group label, deletion mark and phase), counts the live Pods
//! per group, creates the missing ones, deletes the surplus, and reports the status.

use std::{borrow::Cow, collections::BTreeMap};

use serde::{Deserialize, de::IgnoredAny};
use wasmray_guest_sdk::{
    Condition, ConditionStatus, ObjectRef, Plan, PluginError, Reconciler, Snapshot, StatusUpdate,
    parse, parse_view, to_json,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RayCluster {
    metadata: Meta,
    spec: ClusterSpec,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
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
struct Pod<'a> {
    #[serde(borrow)]
    metadata: PodMeta<'a>,
    #[serde(default, borrow)]
    status: PodStatus<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodMeta<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    labels: PodLabels<'a>,
    deletion_timestamp: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct PodLabels<'a> {
    #[serde(rename = "ray.io/group", borrow)]
    group: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct PodStatus<'a> {
    #[serde(borrow)]
    phase: Option<Cow<'a, str>>,
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
        let pod: Pod = parse_view(child)?;
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let group = pod.metadata.labels.group.map(Cow::into_owned).unwrap_or_default();
        let entry = groups.entry(group).or_default();
        entry.names.push(pod.metadata.name.into_owned());
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
