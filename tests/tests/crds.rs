//! Our CRDs on a real apiserver: they install with server-side apply, every KubeRay sample applies
//! unchanged, and invalid specs are rejected at apply time with the CEL rule's message.

#[path = "../../guests/api/tests/support/mod.rs"]
mod support;

use anyhow::{Context, bail};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use wasmray_api::{RayCluster, RayJob, RayService};
use wasmray_tests::install_crds;

const FIELD_MANAGER: &str = "wasmray";

fn plural(kind: &str) -> &'static str {
    match kind {
        "RayCluster" => "rayclusters",
        "RayJob" => "rayjobs",
        "RayService" => "rayservices",
        other => panic!("not a ray.io kind: {other}"),
    }
}

fn api(client: &Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("ray.io", "v1", kind);
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural(kind)),
    )
}

/// Server-side applies a ray.io object into `namespace`.
async fn apply(
    client: &Client,
    namespace: &str,
    object: &Value,
) -> Result<DynamicObject, kube::Error> {
    let kind = object["kind"].as_str().expect("a kind");
    let name = object["metadata"]["name"].as_str().expect("a name");
    let params = PatchParams::apply(FIELD_MANAGER);
    api(client, namespace, kind)
        .patch(name, &params, &Patch::Apply(object))
        .await
}

#[tokio::test]
async fn crds_install_with_server_side_apply_twice() -> anyhow::Result<()> {
    let cluster = wasmray_tests::cluster().await?;
    install_crds(&cluster.client().await?).await?;
    // A second apply of the same CRDs is a no-op, not a conflict.
    install_crds(&cluster.client().await?).await?;
    Ok(())
}

#[tokio::test]
async fn every_kuberay_sample_applies_unchanged_and_reads_back_into_our_types() -> anyhow::Result<()>
{
    let ns = wasmray_tests::namespace("crds-samples").await?;
    install_crds(&ns.client).await?;
    let samples = support::samples();
    let mut rejected = Vec::new();
    for sample in &samples {
        // Samples with `generateName` are created, as with `kubectl create`; the rest are applied.
        let result = match sample.object["metadata"]["name"].as_str() {
            Some(_) => apply(&ns.client, &ns.name, &sample.object).await,
            None => {
                let object: DynamicObject = serde_json::from_value(sample.object.clone())?;
                api(&ns.client, &ns.name, &sample.kind)
                    .create(&Default::default(), &object)
                    .await
            }
        };
        match result {
            Ok(stored) => {
                // Several samples share a name; each is judged on its own, not merged into the last.
                api(&ns.client, &ns.name, &sample.kind)
                    .delete(&stored.name_any(), &Default::default())
                    .await?;
                // What the apiserver returns (with its defaults) is what guests will parse.
                let stored = serde_json::to_value(&stored)?;
                let parsed = match sample.kind.as_str() {
                    "RayCluster" => serde_json::from_value::<RayCluster>(stored).map(drop),
                    "RayJob" => serde_json::from_value::<RayJob>(stored).map(drop),
                    _ => serde_json::from_value::<RayService>(stored).map(drop),
                };
                if let Err(e) = parsed {
                    rejected.push(format!(
                        "{} ({}): stored object does not parse: {e}",
                        sample.file, sample.kind
                    ));
                }
            }
            Err(e) => rejected.push(format!("{} ({}): {e}", sample.file, sample.kind)),
        }
    }
    assert!(samples.len() >= 60, "only {} samples found", samples.len());
    assert!(
        rejected.is_empty(),
        "{} of {} samples were rejected:\n{}",
        rejected.len(),
        samples.len(),
        rejected.join("\n")
    );
    Ok(())
}

/// A small valid RayCluster: a head and one worker group named `small-group`.
fn a_small_cluster(name: &str) -> Value {
    json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": { "name": name },
        "spec": {
            "rayVersion": "2.54.0",
            "headGroupSpec": { "template": { "spec": { "containers": [ray_container("ray-head")] } } },
            "workerGroupSpecs": [a_worker_group("small-group")],
        },
    })
}

fn ray_container(name: &str) -> Value {
    json!({ "name": name, "image": "rayproject/ray:2.54.0" })
}

fn a_worker_group(name: &str) -> Value {
    json!({
        "groupName": name,
        "replicas": 1,
        "minReplicas": 1,
        "maxReplicas": 3,
        "template": { "spec": { "containers": [ray_container("ray-worker")] } },
    })
}

/// A RayJob that creates a small cluster.
fn a_job(name: &str) -> Value {
    json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": { "name": name },
        "spec": { "entrypoint": "python -c 'print(1)'", "rayClusterSpec": a_small_cluster("unused")["spec"] },
    })
}

/// A RayService on a small cluster.
fn a_service(name: &str) -> Value {
    json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": { "name": name },
        "spec": { "rayClusterConfig": a_small_cluster("unused")["spec"] },
    })
}

/// Applies `object` and expects a rejection whose message contains `message`.
async fn expect_rejected(
    client: &Client,
    namespace: &str,
    object: Value,
    message: &str,
) -> anyhow::Result<()> {
    match apply(client, namespace, &object).await {
        Ok(_) => bail!(
            "{} {} was accepted; expected: {message}",
            object["kind"],
            object["metadata"]["name"]
        ),
        Err(kube::Error::Api(status)) if status.code == 422 && status.message.contains(message) => {
            Ok(())
        }
        Err(e) => bail!(
            "{} was rejected, but not with {message:?}: {e}",
            object["metadata"]["name"]
        ),
    }
}

#[tokio::test]
async fn the_valid_fixtures_are_accepted() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-valid").await?;
    install_crds(&ns.client).await?;
    for object in [
        a_small_cluster("small"),
        a_job("small-job"),
        a_service("small-service"),
    ] {
        apply(&ns.client, &ns.name, &object)
            .await
            .with_context(|| format!("applying {}", object["kind"]))?;
    }
    Ok(())
}

#[tokio::test]
async fn a_cluster_with_two_groups_of_the_same_name_is_rejected() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-duplicate-groups").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("twins");
    cluster["spec"]["workerGroupSpecs"] = json!([
        a_worker_group("gpu"),
        a_worker_group("cpu"),
        a_worker_group("gpu")
    ]);
    expect_rejected(
        &ns.client,
        &ns.name,
        cluster,
        "every groupName must be unique within the cluster",
    )
    .await
}

#[tokio::test]
async fn a_group_with_more_min_than_max_replicas_is_rejected() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-min-max").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("upside-down");
    cluster["spec"]["workerGroupSpecs"][0]["minReplicas"] = json!(5);
    cluster["spec"]["workerGroupSpecs"][0]["maxReplicas"] = json!(2);
    expect_rejected(
        &ns.client,
        &ns.name,
        cluster,
        "minReplicas must be less than or equal to maxReplicas",
    )
    .await
}

#[tokio::test]
async fn an_unknown_managed_by_is_rejected_on_every_kind() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-managed-by").await?;
    install_crds(&ns.client).await?;
    let message = "the managedBy field value must be either 'ray.io/kuberay-operator' or 'kueue.x-k8s.io/multikueue'";
    let mut cluster = a_small_cluster("someone-elses");
    cluster["spec"]["managedBy"] = json!("example.com/other-operator");
    expect_rejected(&ns.client, &ns.name, cluster, message).await?;
    let mut job = a_job("someone-elses-job");
    job["spec"]["managedBy"] = json!("example.com/other-operator");
    expect_rejected(&ns.client, &ns.name, job, message).await?;
    let mut service = a_service("someone-elses-service");
    service["spec"]["rayClusterConfig"]["managedBy"] = json!("example.com/other-operator");
    expect_rejected(&ns.client, &ns.name, service, message).await
}

#[tokio::test]
async fn managed_by_cannot_change_once_set() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-managed-by-immutable").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("kueue-managed");
    cluster["spec"]["managedBy"] = json!("kueue.x-k8s.io/multikueue");
    apply(&ns.client, &ns.name, &cluster).await?;
    cluster["spec"]["managedBy"] = json!("ray.io/kuberay-operator");
    expect_rejected(
        &ns.client,
        &ns.name,
        cluster,
        "the managedBy field is immutable",
    )
    .await
}

#[tokio::test]
async fn names_too_long_for_derived_pod_names_are_rejected() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-names").await?;
    install_crds(&ns.client).await?;
    let fifty_four = "c".repeat(54);
    let forty_eight = "j".repeat(48);
    expect_rejected(
        &ns.client,
        &ns.name,
        a_small_cluster(&fifty_four),
        "RayCluster name should be no more than 53 characters",
    )
    .await?;
    expect_rejected(
        &ns.client,
        &ns.name,
        a_job(&forty_eight),
        "RayJob name should be no more than 47 characters",
    )
    .await?;
    expect_rejected(
        &ns.client,
        &ns.name,
        a_service(&forty_eight),
        "RayService name should be no more than 47 characters",
    )
    .await?;
    // The longest allowed names are fine.
    apply(&ns.client, &ns.name, &a_small_cluster(&"c".repeat(53))).await?;
    apply(&ns.client, &ns.name, &a_job(&"j".repeat(47))).await?;
    Ok(())
}

#[tokio::test]
async fn gcs_fault_tolerance_options_exclude_the_legacy_redis_env() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-gcs-ft").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("redis-twice");
    cluster["spec"]["gcsFaultToleranceOptions"] = json!({ "redisAddress": "redis:6379" });
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{ "name": "RAY_REDIS_ADDRESS", "value": "redis:6379" }]);
    expect_rejected(
        &ns.client,
        &ns.name,
        cluster,
        "cannot set the RAY_REDIS_ADDRESS env var in the head Pod",
    )
    .await?;

    let mut cluster = a_small_cluster("redis-password-twice");
    cluster["spec"]["gcsFaultToleranceOptions"] = json!({ "redisAddress": "redis:6379" });
    cluster["spec"]["headGroupSpec"]["rayStartParams"] = json!({ "redis-password": "secret" });
    expect_rejected(
        &ns.client,
        &ns.name,
        cluster,
        "cannot set `redis-password` in rayStartParams",
    )
    .await
}

#[tokio::test]
async fn a_head_without_containers_is_rejected() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-no-containers").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("empty-head");
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"] = json!([]);
    expect_rejected(
        &ns.client,
        &ns.name,
        cluster,
        "should have at least 1 items",
    )
    .await
}

#[tokio::test]
async fn ray_job_mode_conflicts_are_rejected() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-rayjob").await?;
    install_crds(&ns.client).await?;
    let mut job = a_job("suspended-forever");
    job["spec"]["suspend"] = json!(true);
    expect_rejected(
        &ns.client,
        &ns.name,
        job,
        "shutdownAfterJobFinishes set to false is not allowed to be suspended",
    )
    .await?;

    let mut job = a_job("no-cluster");
    job["spec"]
        .as_object_mut()
        .unwrap()
        .remove("rayClusterSpec");
    expect_rejected(
        &ns.client,
        &ns.name,
        job,
        "one of rayClusterSpec or clusterSelector must be set",
    )
    .await?;

    let mut job = a_job("interactive-retries");
    job["spec"]["submissionMode"] = json!("InteractiveMode");
    job["spec"]["backoffLimit"] = json!(2);
    expect_rejected(
        &ns.client,
        &ns.name,
        job,
        "backoffLimit is incompatible with InteractiveMode",
    )
    .await?;

    let mut job = a_job("unknown-mode");
    job["spec"]["submissionMode"] = json!("CarrierPigeonMode");
    expect_rejected(&ns.client, &ns.name, job, "Unsupported value").await
}

#[tokio::test]
async fn a_ray_io_v1alpha1_cluster_applies_and_reads_back_as_v1() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-v1alpha1").await?;
    wasmray_tests::install_crds(&ns.client).await?;
    let alpha = ApiResource::from_gvk(&GroupVersionKind::gvk("ray.io", "v1alpha1", "RayCluster"));
    let old: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &alpha);
    let manifest = json!({
        "apiVersion": "ray.io/v1alpha1", "kind": "RayCluster",
        "metadata": { "name": "legacy" },
        "spec": { "headGroupSpec": { "rayStartParams": {}, "template": { "spec": {
            "containers": [{ "name": "ray-head", "image": "rayproject/ray:2.54.0" }] } } } }
    });
    old.patch("legacy", &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&manifest)).await?;

    let current: Api<RayCluster> = Api::namespaced(ns.client.clone(), &ns.name);
    let read = current.get("legacy").await?;
    assert_eq!(read.spec.head_group_spec.template.spec.as_ref().unwrap().containers[0].name, "ray-head");
    Ok(())
}
