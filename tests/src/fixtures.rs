//! RayCluster fixtures and the polling helpers the end-to-end tests share.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod, ResourceQuota};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use wasmray_api::RayCluster;

use crate::TestNamespace;

/// How long a test waits for the operator to bring a RayCluster or its Pods to a state.
pub const WAIT: Duration = Duration::from_secs(90);

/// A RayCluster with a small head and the given worker groups: (name, replicas, min, max).
pub fn ray_cluster(name: &str, groups: &[(&str, i32, i32, i32)]) -> Value {
    let workers: Vec<Value> = groups
        .iter()
        .map(|(group, replicas, min, max)| {
            json!({
                "groupName": group, "replicas": replicas, "minReplicas": min, "maxReplicas": max,
                "rayStartParams": {},
                "template": { "spec": { "containers": [container("ray-worker")] } }
            })
        })
        .collect();
    json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": { "name": name },
        "spec": {
            "rayVersion": "2.54.0",
            "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [container("ray-head")] } } },
            "workerGroupSpecs": workers
        }
    })
}

/// A Ray container small enough that a hundred of them fit on the test nodes.
fn container(name: &str) -> Value {
    json!({
        "name": name,
        "image": "rayproject/ray:2.54.0",
        "resources": { "requests": { "cpu": "100m", "memory": "256Mi" }, "limits": { "cpu": "1", "memory": "1Gi" } }
    })
}

/// Creates a ResourceQuota `name` with these `hard` limits and waits until the quota controller
/// enforces it (its status shows the limits); returns its `Api` to raise it later.
pub async fn quota(ns: &TestNamespace, name: &str, hard: Value) -> anyhow::Result<Api<ResourceQuota>> {
    let quota: ResourceQuota = serde_json::from_value(json!({ "metadata": { "name": name }, "spec": { "hard": hard } }))?;
    let quotas: Api<ResourceQuota> = ns.api();
    quotas.create(&Default::default(), &quota).await?;
    ns.wait_until(&quotas, name, |q: Option<&ResourceQuota>| q.and_then(|q| q.status.as_ref()).and_then(|s| s.hard.as_ref()).is_some(), WAIT)
        .await?;
    Ok(quotas)
}

/// Server-side applies a RayCluster into the test's namespace, taking every field it names.
pub async fn apply(ns: &TestNamespace, object: &Value) -> anyhow::Result<RayCluster> {
    let api: Api<RayCluster> = ns.api();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    Ok(api
        .patch(
            name,
            &PatchParams::apply("wasmray-tests").force(),
            &Patch::Apply(object),
        )
        .await?)
}

/// A Pod that is neither being deleted nor finished: one the operator counts.
pub fn is_live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Failed" | "Succeeded")
        )
}

/// The live Pods matching a label selector.
pub async fn pods(ns: &TestNamespace, selector: &str) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = ns.api();
    Ok(pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items
        .into_iter()
        .filter(is_live)
        .collect())
}

/// The live worker Pods of one group of a cluster.
pub async fn workers(ns: &TestNamespace, cluster: &str, group: &str) -> anyhow::Result<Vec<Pod>> {
    pods(
        ns,
        &format!("ray.io/cluster={cluster},ray.io/group={group},ray.io/node-type=worker"),
    )
    .await
}

/// Waits until `check` holds, polling; fails with the last observation after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<(), String>>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match check().await? {
            Ok(()) => return Ok(()),
            Err(last) if std::time::Instant::now() > deadline => {
                anyhow::bail!("{what}: still {last} after {timeout:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Waits until a group has exactly `count` live workers, and returns them.
pub async fn wait_for_workers(
    ns: &TestNamespace,
    cluster: &str,
    group: &str,
    count: usize,
) -> anyhow::Result<Vec<Pod>> {
    eventually(&format!("{group} has {count} workers"), WAIT, || async {
        let n = workers(ns, cluster, group).await?.len();
        Ok(if n == count {
            Ok(())
        } else {
            Err(format!("{n} workers"))
        })
    })
    .await?;
    workers(ns, cluster, group).await
}

/// Waits until the cluster's `status.state` is `state`, and returns the cluster.
pub async fn wait_for_state(
    ns: &TestNamespace,
    cluster: &str,
    state: &str,
) -> anyhow::Result<RayCluster> {
    let api: Api<RayCluster> = ns.api();
    ns.wait_until(
        &api,
        cluster,
        |rc: Option<&RayCluster>| status_field(rc, "state") == Some(state.into()),
        WAIT,
    )
    .await
}

/// One field of the cluster's status, as JSON; `None` without a cluster, status or field.
pub fn status_field(rc: Option<&RayCluster>, field: &str) -> Option<Value> {
    let status = serde_json::to_value(rc?.status.as_ref()?).ok()?;
    status.get(field).cloned()
}

/// A condition's (status, reason).
pub fn condition(rc: &RayCluster, kind: &str) -> Option<(String, String)> {
    let status = serde_json::to_value(rc.status.as_ref()?).ok()?;
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// A Pod's label.
pub fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The Events about `object` with this reason.
pub async fn raw_events_about(ns: &TestNamespace, object: &str, reason: &str) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = ns.api();
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(object) && e.reason.as_deref() == Some(reason))
        .collect())
}

/// Waits until an Event about `object` with this reason matches, and returns all of them as
/// (type, message, reporting controller). The operator posts an Event after the write it
/// tells of, so a test that has just seen the write may be a moment ahead of its Event.
pub async fn wait_for_events_about(
    ns: &TestNamespace,
    object: &str,
    reason: &str,
    timeout: Duration,
    matching: impl Fn(&(String, String, String)) -> bool,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let found = events_about(ns, object, reason).await?;
        if found.iter().any(&matching) {
            return Ok(found);
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("no matching {reason} Event about {object} within {timeout:?}; those seen: {found:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The Events about `object` with this reason, as (type, message, reporting controller).
pub async fn events_about(ns: &TestNamespace, object: &str, reason: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    Ok(raw_events_about(ns, object, reason)
        .await?
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.reporting_component.or(e.source.and_then(|s| s.component)).unwrap_or_default(),
            )
        })
        .collect())
}
