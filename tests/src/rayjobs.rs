//! RayJob end-to-end helpers: apply a RayJob, wait on its status, read its Events, and finish a test by releasing its finalizers before the operator stops.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use wasmray_api::RayJob;

use crate::{Operator, TestNamespace, within};

/// Long enough for a cluster on KWOK nodes and a Ray job of a second or two, on a busy machine.
pub const WAIT: Duration = Duration::from_secs(150);

/// A RayJob with a one-node cluster (a small head, no workers) running `entrypoint` in `mode`;
/// `extra` is merged into its spec.
pub fn a_rayjob(name: &str, mode: &str, entrypoint: &str, extra: Value) -> Value {
    let mut job = json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": { "name": name },
        "spec": {
            "submissionMode": mode,
            "entrypoint": entrypoint,
            "rayClusterSpec": {
                "rayVersion": "2.54.0",
                "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [{
                    "name": "ray-head", "image": "rayproject/ray:2.54.0",
                    "resources": { "requests": { "cpu": "100m", "memory": "256Mi" }, "limits": { "cpu": "1", "memory": "1Gi" } },
                }] } } },
            },
        },
    });
    if let (Some(spec), Some(extra)) = (job["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    job
}

/// Server-side applies the RayJob, as `kubectl apply --server-side` would.
pub async fn apply(ns: &TestNamespace, job: &Value) -> anyhow::Result<()> {
    let api: Api<RayJob> = ns.api();
    let name = job["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(name, &PatchParams::apply("wasmray-tests").force(), &Patch::Apply(job)).await.with_context(|| format!("applying RayJob {name}"))?;
    Ok(())
}

/// The RayJob's status as JSON (null without one).
pub fn status(job: Option<&RayJob>) -> Value {
    job.and_then(|j| serde_json::to_value(&j.status).ok()).unwrap_or(Value::Null)
}

/// Waits until the RayJob's status (as JSON) satisfies `done`.
pub async fn wait_for(ns: &TestNamespace, name: &str, done: impl Fn(&Value) -> bool + Send + 'static) -> anyhow::Result<Value> {
    let api: Api<RayJob> = ns.api();
    let job = ns.wait_until(&api, name, move |j: Option<&RayJob>| done(&status(j)), WAIT).await?;
    Ok(status(Some(&job)))
}

/// A status whose `jobDeploymentStatus` is `wanted`.
pub fn deployment_is(wanted: &'static str) -> impl Fn(&Value) -> bool + Send + 'static {
    move |s: &Value| s["jobDeploymentStatus"] == wanted
}

/// The namespace's Events of `reason`, once there is one (waiting up to 15 s: the operator
/// posts an Event after the write it tells of, so a test may see the write first).
pub async fn events(ns: &TestNamespace, reason: &str) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = ns.api();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found: Vec<Event> =
            api.list(&ListParams::default()).await?.items.into_iter().filter(|e| e.reason.as_deref() == Some(reason)).collect();
        if !found.is_empty() || std::time::Instant::now() > deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes the namespace's RayJobs while the operator still runs, so it releases their
/// finalizers and the namespace can go; then stops the operator.
pub async fn finish(ns: &TestNamespace, operator: Operator) -> anyhow::Result<()> {
    let api: Api<RayJob> = ns.api();
    api.delete_collection(&DeleteParams::background(), &ListParams::default()).await?;
    within(WAIT, async {
        while !api.list(&ListParams::default()).await.is_ok_and(|l| l.items.is_empty()) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .context("the operator did not release its RayJobs")?;
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    Ok(())
}
