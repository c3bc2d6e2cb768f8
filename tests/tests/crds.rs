//! Our CRDs on a real apiserver: they install with server-side and with plain client-side `kubectl
//! apply` (KubeRay's do not fit in its annotation), every KubeRay sample applies unchanged under
//! strict field validation, invalid specs are rejected at apply time with the CEL rule's message,
//! and the typed Pod templates refuse a bad quantity and report a misspelt field.

#[path = "../../guests/api/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use wasmray_api::{RayCluster, RayJob, RayService};
use wasmray_tests::helm::Output;
use wasmray_tests::{install_crds, within};

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

/// Server-side applies a ray.io object into `namespace`, with strict field validation as `kubectl`
/// does by default: a field the schema does not know is an error, not silently dropped.
async fn apply(
    client: &Client,
    namespace: &str,
    object: &Value,
) -> Result<DynamicObject, kube::Error> {
    let kind = object["kind"].as_str().expect("a kind");
    let name = object["metadata"]["name"].as_str().expect("a name");
    let params = PatchParams::apply(FIELD_MANAGER).validation_strict();
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
                // Creating has no strict mode here; a strict dry-run apply under a name checks
                // the fields first.
                let mut named = sample.object.clone();
                named["metadata"]["name"] = json!("generated-name-check");
                let params = PatchParams::apply(FIELD_MANAGER).validation_strict().dry_run();
                let checked = api(&ns.client, &ns.name, &sample.kind)
                    .patch("generated-name-check", &params, &Patch::Apply(&named))
                    .await;
                match checked {
                    Ok(_) => {
                        let object: DynamicObject = serde_json::from_value(sample.object.clone())?;
                        api(&ns.client, &ns.name, &sample.kind)
                            .create(&Default::default(), &object)
                            .await
                    }
                    Err(e) => Err(e),
                }
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

/// kubectl: `$WASMRAY_KUBECTL` (tests/run sets it), else the one tests/run installs into
/// `$WASMRAY_CACHE_DIR/venv`, else `kubectl` on the PATH.
fn kubectl_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMRAY_KUBECTL") {
        return path.into();
    }
    let cache = std::env::var_os("WASMRAY_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/wasmray")));
    match cache.map(|dir| dir.join("venv/bin/kubectl")) {
        Some(path) if path.is_file() => path,
        _ => "kubectl".into(),
    }
}

/// Runs kubectl against the test control plane with `args`, feeding it `stdin`.
async fn kubectl(args: &[&str], stdin: Option<String>) -> anyhow::Result<Output> {
    let kubeconfig = wasmray_tests::cluster().await?.kubeconfig().display().to_string();
    let mut all = vec!["--kubeconfig".to_owned(), kubeconfig];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        wasmray_tests::helm::run(&kubectl_binary(), &args, stdin.as_deref())
    })
    .await?
}

/// The chart's CRD files, which the drift test in host/src/crd.rs keeps equal to `wasmray crd`.
fn chart_crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wasmray-operator/crds")
}

/// A CRD moved to API group `group`, so that installing it touches no CRD other tests use.
fn in_group(mut crd: Value, group: &str) -> Value {
    let plural = crd["spec"]["names"]["plural"].as_str().expect("a plural").to_owned();
    crd["metadata"] = json!({ "name": format!("{plural}.{group}") });
    crd["spec"]["group"] = json!(group);
    crd
}

/// Writes `objects` as one JSON list file for `kubectl apply -f`.
fn list_file(dir: &Path, name: &str, objects: Vec<Value>) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": objects });
    std::fs::write(&path, serde_json::to_vec(&list)?)?;
    Ok(path)
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(serde_yaml::from_str(&text)?)
}

/// What client-side apply stores, and KubeRay's CRDs overflow.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[tokio::test]
async fn crds_install_with_client_side_kubectl_apply_and_kuberays_do_not() -> anyhow::Result<()> {
    let client = wasmray_tests::cluster().await?.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = std::env::temp_dir().join(format!("wasmray-crds-csa-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let files = ["ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml", "ray.io_rayservices.yaml"];

    // A fresh install: the chart's CRDs, moved to a group of their own, are created by plain
    // `kubectl apply`, which keeps each whole in the last-applied annotation.
    let group = "csa.wasmray.test";
    let ours: Vec<Value> = files.iter().map(|f| read_yaml(&chart_crds_dir().join(f)).map(|c| in_group(c, group))).collect::<Result<_, _>>()?;
    let names: Vec<String> = ours.iter().map(|c| c["metadata"]["name"].as_str().unwrap().to_owned()).collect();
    let file = list_file(&dir, "ours.json", ours)?;
    let file = file.display().to_string();
    let created = kubectl(&["apply", "-f", &file], None).await?;
    let result = async {
        anyhow::ensure!(created.success, "client-side apply of our CRDs failed:\n{}{}", created.stderr, created.stdout);
        for name in &names {
            within(Duration::from_secs(30), await_condition(crds.clone(), name, conditions::is_crd_established()))
                .await
                .with_context(|| format!("CRD {name} was not Established"))??;
            let crd = crds.get(name).await?;
            let annotation = crd.annotations().get(LAST_APPLIED).with_context(|| format!("{name} has no {LAST_APPLIED}"))?;
            println!("{name}: {} bytes of last-applied annotation", annotation.len());
        }
        // A second apply diffs against that annotation and changes nothing.
        let again = kubectl(&["apply", "-f", &file], None).await?;
        anyhow::ensure!(again.success && again.stdout.matches("unchanged").count() == 3, "second apply:\n{}{}", again.stderr, again.stdout);
        Ok(())
    }
    .await;
    let deleted = kubectl(&["delete", "--wait=false", "-f", &file], None).await;
    result?;
    deleted?;

    // The chart's files as they are, over the CRDs the other tests installed server-side.
    let chart = chart_crds_dir().display().to_string();
    let applied = kubectl(&["apply", "-f", &chart], None).await?;
    anyhow::ensure!(applied.success, "client-side apply of charts/wasmray-operator/crds failed:\n{}{}", applied.stderr, applied.stdout);
    for crd in wasmray_api::crd::all() {
        let name = crd.metadata.name.unwrap_or_default();
        anyhow::ensure!(crds.get(&name).await?.annotations().contains_key(LAST_APPLIED), "{name}: no {LAST_APPLIED}");
    }

    // KubeRay's CRDs, moved to a group of their own, do not fit in the annotation.
    let theirs: Vec<Value> = files
        .iter()
        .map(|f| read_yaml(&support::crds_dir().join(f)).map(|c| in_group(c, "kuberay-csa.wasmray.test")))
        .collect::<Result<_, _>>()?;
    let file = list_file(&dir, "theirs.json", theirs)?.display().to_string();
    let refused = kubectl(&["apply", "-f", &file], None).await?;
    let _ = kubectl(&["delete", "--ignore-not-found", "--wait=false", "-f", &file], None).await;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(!refused.success, "KubeRay's CRDs applied client-side, so this test proves nothing:\n{}", refused.stdout);
    anyhow::ensure!(
        refused.stderr.matches("Too long").count() == 3,
        "KubeRay's CRDs were refused, but not all three for the annotation's size:\n{}",
        refused.stderr
    );
    Ok(())
}

#[tokio::test]
async fn a_quantity_that_is_not_one_is_rejected_at_apply_time() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-banana").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("banana");
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({ "limits": { "cpu": "banana" } });
    expect_rejected(
        &ns.client,
        &ns.name,
        cluster.clone(),
        "spec.headGroupSpec.template.spec.containers[0].resources.limits.cpu in body should match",
    )
    .await?;
    // In a worker group and in a RayJob's submitter template too; real quantities still apply.
    let mut cluster = a_small_cluster("banana-worker");
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"] =
        json!({ "requests": { "memory": "lots" } });
    expect_rejected(&ns.client, &ns.name, cluster, "resources.requests.memory in body should match").await?;
    let mut job = a_job("banana-submitter");
    job["spec"]["submitterPodTemplate"] = json!({ "spec": { "restartPolicy": "Never", "containers": [
        { "name": "submit", "image": "rayproject/ray:2.54.0", "resources": { "limits": { "cpu": "one" } } }] } });
    expect_rejected(&ns.client, &ns.name, job, "submitterPodTemplate.spec.containers[0].resources.limits.cpu in body should match").await?;
    let mut fine = a_small_cluster("real-quantities");
    fine["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({ "limits": { "cpu": 2, "memory": "2Gi", "nvidia.com/gpu": "1" }, "requests": { "cpu": "500m", "memory": "1.5e9" } });
    apply(&ns.client, &ns.name, &fine).await.context("real quantities")?;
    Ok(())
}

#[tokio::test]
async fn a_misspelt_container_field_is_refused_under_strict_and_warned_about_and_dropped_under_warn() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-misspelt").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("misspelt");
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
    let field = "spec.headGroupSpec.template.spec.containers[0].imagePullPolicyy";

    // Server-side apply with fieldValidation=Strict: the apiserver cannot build the typed patch
    // ("field not declared in schema", with the path).
    match apply(&ns.client, &ns.name, &cluster).await {
        Ok(_) => bail!("a misspelt field was accepted under strict field validation"),
        Err(kube::Error::Api(status))
            if status.message.contains("field not declared in schema")
                && status.message.contains("containers[0].imagePullPolicyy") => {}
        Err(e) => bail!("rejected, but not for the unknown field {field}: {e}"),
    }

    // Plain client-side `kubectl apply`, whose default is `--validate=strict`.
    let manifest = serde_json::to_string(&cluster)?;
    let strict = kubectl(&["apply", "-n", &ns.name, "-f", "-"], Some(manifest.clone())).await?;
    anyhow::ensure!(!strict.success, "kubectl apply accepted a misspelt field:\n{}", strict.stdout);
    anyhow::ensure!(strict.stderr.contains(&format!("unknown field \"{field}\"")), "kubectl apply failed otherwise:\n{}", strict.stderr);

    // `--validate=warn` (fieldValidation=Warn): applied, with a warning naming the field, and the
    // field is not stored.
    let warned = kubectl(&["apply", "--validate=warn", "-n", &ns.name, "-f", "-"], Some(manifest)).await?;
    anyhow::ensure!(warned.success, "kubectl apply --validate=warn failed:\n{}", warned.stderr);
    anyhow::ensure!(warned.stderr.contains(&format!("unknown field \"{field}\"")), "no warning naming the field:\n{}", warned.stderr);
    let stored = api(&ns.client, &ns.name, "RayCluster").get("misspelt").await?;
    let container = &serde_json::to_value(&stored)?["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0];
    anyhow::ensure!(container.get("imagePullPolicyy").is_none(), "the misspelt field was stored: {container}");
    anyhow::ensure!(container["image"] == "rayproject/ray:2.54.0", "the rest of the container was not stored: {container}");
    Ok(())
}

#[tokio::test]
async fn fields_kubernetes_defaults_may_be_left_out_and_get_kubernetes_defaults() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-k8s-defaults").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("defaults");
    let head = &mut cluster["spec"]["headGroupSpec"];
    // A Service without metadata, a Secret reference without a name, a port without a protocol:
    // KubeRay's CRD takes them, as Kubernetes does.
    head["headService"] = json!({ "spec": { "type": "ClusterIP" } });
    head["template"]["spec"]["containers"][0]["env"] =
        json!([{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "key": "token" } } }]);
    head["template"]["spec"]["containers"][0]["ports"] = json!([{ "containerPort": 6379 }]);
    let stored = serde_json::to_value(apply(&ns.client, &ns.name, &cluster).await?)?;
    let head = &stored["spec"]["headGroupSpec"];
    let container = &head["template"]["spec"]["containers"][0];
    assert_eq!(container["env"][0]["valueFrom"]["secretKeyRef"]["name"], "", "{container}");
    assert_eq!(container["ports"][0]["protocol"], "TCP", "{container}");
    assert_eq!(head["headService"]["spec"]["type"], "ClusterIP");
    Ok(())
}

#[tokio::test]
async fn kuberay_v1_6_upgrade_strategy_and_v1_7_ingress_options_apply_strictly_and_bad_values_are_refused() -> anyhow::Result<()> {
    let ns = wasmray_tests::namespace("crds-upgrade").await?;
    install_crds(&ns.client).await?;
    let mut cluster = a_small_cluster("upgraded");
    cluster["spec"]["upgradeStrategy"] = json!({ "type": "Recreate" });
    cluster["spec"]["headGroupSpec"]["enableIngress"] = json!(true);
    cluster["spec"]["headGroupSpec"]["ingressOptions"] =
        json!({ "host": "ray.example.com", "path": "/ray", "pathType": "Prefix", "tls": [{ "hosts": ["ray.example.com"], "secretName": "ray-tls" }] });
    let applied = apply(&ns.client, &ns.name, &cluster).await.context("upgradeStrategy and ingressOptions")?;
    let back: RayCluster = serde_json::from_value(serde_json::to_value(&applied)?)?;
    assert_eq!(back.spec.upgrade_strategy.and_then(|s| s.type_), Some(wasmray_api::RayClusterUpgradeType::Recreate));
    assert_eq!(back.spec.head_group_spec.ingress_options.and_then(|o| o.host).as_deref(), Some("ray.example.com"));

    let mut unknown = a_small_cluster("rolling-field");
    unknown["spec"]["upgradeStrategy"] = json!({ "type": "RollingUpdate" });
    expect_rejected(&ns.client, &ns.name, unknown, "spec.upgradeStrategy.type").await?;
    let mut bad_path = a_small_cluster("bad-path-type");
    bad_path["spec"]["headGroupSpec"]["ingressOptions"] = json!({ "pathType": "Regex" });
    expect_rejected(&ns.client, &ns.name, bad_path, "spec.headGroupSpec.ingressOptions.pathType").await?;
    Ok(())
}
