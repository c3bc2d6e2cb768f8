//! RayCluster's last KubeRay gaps end to end: the dashboard Ingress of `enableIngress` (created,
//! updated, refused, deleted) and settings that would be silently ignored.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use wasmray_api::RayCluster;
use wasmray_tests::fixtures::{WAIT, apply, condition, eventually, ray_cluster, wait_for_state};
use wasmray_tests::{TestNamespace, namespace};

/// How many times an Event was recorded (its series count, else its count, else once).
fn times(event: &Event) -> i32 {
    event.series.as_ref().and_then(|s| s.count).or(event.count).unwrap_or(1)
}

/// The Events about `object` with this reason.
async fn raw_events(ns: &TestNamespace, object: &str, reason: &str) -> anyhow::Result<Vec<Event>> {
    wasmray_tests::fixtures::raw_events_about(ns, object, reason).await
}

/// The Events about `object` with this reason, as (type, message, reporting controller).
async fn events(ns: &TestNamespace, object: &str, reason: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    wasmray_tests::fixtures::events_about(ns, object, reason).await
}

/// Waits for an Event about `object` with this reason, and returns the first.
async fn wait_for_event(ns: &TestNamespace, object: &str, reason: &str) -> anyhow::Result<(String, String, String)> {
    Ok(wasmray_tests::fixtures::wait_for_events_about(ns, object, reason, WAIT, |_| true).await?.remove(0))
}

/// Waits until the Ingress exists and `check` holds for it.
async fn wait_for_ingress(ns: &TestNamespace, name: &str, check: impl Fn(&Ingress) -> bool) -> anyhow::Result<Ingress> {
    let api: Api<Ingress> = ns.api();
    ns.wait_until(&api, name, |i: Option<&Ingress>| i.is_some_and(&check), WAIT).await
}

fn with_ingress(name: &str, team: &str) -> Value {
    let mut cluster = ray_cluster(name, &[("cpu", 1, 0, 2)]);
    cluster["metadata"]["annotations"] = json!({ "kubernetes.io/ingress.class": "nginx", "example.com/team": team });
    cluster["spec"]["headGroupSpec"]["enableIngress"] = json!(true);
    cluster
}

#[tokio::test]
async fn enable_ingress_creates_kuberays_ingress_which_follows_the_spec_and_goes_when_turned_off() -> anyhow::Result<()> {
    let ns = namespace("raycluster-ingress").await?;
    let _operator = ns.operator().await?;
    let created = apply(&ns, &with_ingress("dash", "a")).await?;

    let ingress = wait_for_ingress(&ns, "dash-head-ingress", |_| true).await?;
    let spec = serde_json::to_value(ingress.spec.as_ref().unwrap())?;
    assert_eq!(spec["ingressClassName"], "nginx", "the class annotation becomes the class");
    assert_eq!(
        spec["rules"],
        json!([{ "http": { "paths": [{ "path": "/dash/(.*)", "pathType": "Exact",
            "backend": { "service": { "name": "dash-head-svc", "port": { "number": 8265 } } } }] } }])
    );
    let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("example.com/team").map(String::as_str), Some("a"));
    assert!(!annotations.contains_key("kubernetes.io/ingress.class"));
    let owner = &ingress.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), Some(owner.uid.as_str()), owner.controller), ("RayCluster", created.metadata.uid.as_deref(), Some(true)));
    let (type_, message, reporter) = wait_for_event(&ns, "dash", "CreatedIngress").await?;
    assert_eq!((type_.as_str(), message.as_str(), reporter.as_str()), ("Normal", format!("Created ingress {}/dash-head-ingress", ns.name).as_str(), "raycluster-controller"));
    wait_for_state(&ns, "dash", "ready").await?;

    // KubeRay creates its Ingress once; here a changed annotation reaches it.
    apply(&ns, &with_ingress("dash", "b")).await?;
    wait_for_ingress(&ns, "dash-head-ingress", |i| {
        i.metadata.annotations.as_ref().and_then(|a| a.get("example.com/team")).map(String::as_str) == Some("b")
    })
    .await?;
    wait_for_event(&ns, "dash", "UpdatedIngress").await?;

    let mut off = with_ingress("dash", "b");
    off["spec"]["headGroupSpec"]["enableIngress"] = json!(false);
    apply(&ns, &off).await?;
    let api: Api<Ingress> = ns.api();
    eventually("the Ingress gone", WAIT, || async {
        Ok(match api.get_opt("dash-head-ingress").await? {
            Some(i) if i.metadata.deletion_timestamp.is_none() => Err("still there".to_owned()),
            _ => Ok(()),
        })
    })
    .await?;
    wait_for_event(&ns, "dash", "DeletedIngress").await?;
    Ok(())
}

#[tokio::test]
async fn an_ingress_the_api_server_refuses_records_failed_to_create_ingress_until_it_fits() -> anyhow::Result<()> {
    let ns = namespace("raycluster-ingress-refused").await?;
    let _operator = ns.operator().await?;
    let quotas = wasmray_tests::fixtures::quota(&ns, "no-ingress", json!({ "count/ingresses.networking.k8s.io": "0" })).await?;

    apply(&ns, &with_ingress("walled", "a")).await?;
    let (type_, message, reporter) = wait_for_event(&ns, "walled", "FailedToCreateIngress").await?;
    assert_eq!((type_.as_str(), reporter.as_str()), ("Warning", "raycluster-controller"));
    assert!(message.contains("exceeded quota"), "{message}");
    assert!(events(&ns, "walled", "CreatedIngress").await?.is_empty(), "no Event claims an Ingress that was never made");
    // The rest of the cluster does not wait for the Ingress.
    wait_for_state(&ns, "walled", "ready").await?;

    let raised = json!({ "spec": { "hard": { "count/ingresses.networking.k8s.io": "1" } } });
    quotas.patch("no-ingress", &PatchParams::default(), &Patch::Merge(&raised)).await?;
    wait_for_ingress(&ns, "walled-head-ingress", |_| true).await?;
    wait_for_event(&ns, "walled", "CreatedIngress").await?;
    Ok(())
}

#[tokio::test]
async fn the_ft_annotation_on_the_head_template_gets_a_warning_and_a_condition_until_it_is_moved() -> anyhow::Result<()> {
    let ns = namespace("raycluster-ignored-ft").await?;
    let _operator = ns.operator().await?;
    let mut misplaced = ray_cluster("misplaced", &[("cpu", 1, 0, 2)]);
    misplaced["spec"]["headGroupSpec"]["template"]["metadata"] = json!({ "annotations": { "ray.io/ft-enabled": "true" } });
    apply(&ns, &misplaced).await?;

    let (type_, message, _) = wait_for_event(&ns, "misplaced", "IgnoredSetting").await?;
    assert_eq!(type_, "Warning");
    assert!(
        message.contains("headGroupSpec.template.metadata.annotations[\"ray.io/ft-enabled\"]")
            && message.contains("RayCluster's own metadata.annotations[\"ray.io/ft-enabled\"]"),
        "{message}"
    );
    // KubeRay's behaviour is kept: the cluster runs, without fault tolerance.
    let ready = wait_for_state(&ns, "misplaced", "ready").await?;
    assert_eq!(
        condition(&ready, "RayClusterIgnoredSettings"),
        Some(("True".into(), "FaultToleranceAnnotationOnPodTemplate".into()))
    );
    assert!(ready.metadata.finalizers.as_ref().is_none_or(Vec::is_empty), "no fault tolerance, no Redis cleanup finalizer");

    misplaced["spec"]["headGroupSpec"]["template"].as_object_mut().unwrap().remove("metadata");
    apply(&ns, &misplaced).await?;
    let clusters: Api<RayCluster> = ns.api();
    ns.wait_until(&clusters, "misplaced", |rc: Option<&RayCluster>| rc.is_some_and(|rc| condition(rc, "RayClusterIgnoredSettings").is_none()), WAIT)
        .await?;
    // Sent when the findings change, not per reconcile; one repeat can come from a reconcile
    // that ran before the status write reached the operator's cache.
    let warnings: i32 = raw_events(&ns, "misplaced", "IgnoredSetting").await?.iter().map(times).sum();
    assert!((1..=2).contains(&warnings), "{warnings} Warnings for one misplaced annotation");
    Ok(())
}
