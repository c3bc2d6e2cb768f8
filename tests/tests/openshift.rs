//! On an apiserver that serves OpenShift's Route API (a stand-in CRD, on a control plane of the test's own), a RayCluster with `enableIngress` gets KubeRay's Route for its dashboard instead of an Ingress.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::Api;
use serde_json::json;
use wasmray_api::RayCluster;

const NS: &str = "openshift";
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn on_openshift_enable_ingress_makes_a_route_to_the_dashboard_and_no_ingress() -> anyhow::Result<()> {
    let (plane, client) = wasmray_tests::control_plane_of_its_own("openshift", NS).await?;
    wasmray_tests::install_crd_fixture(&client, include_str!("../fixtures/openshift-route-crd.yaml")).await?;
    let operator = wasmray_tests::start_operator(plane.kubeconfig().to_path_buf(), Some(NS.into()), None)?;

    let cluster: RayCluster = serde_json::from_value(json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": { "name": "dash", "annotations": { "team": "ml" } },
        "spec": {
            "rayVersion": "2.54.0",
            "headGroupSpec": { "enableIngress": true, "rayStartParams": {}, "template": { "spec": { "containers": [{
                "name": "ray-head", "image": "rayproject/ray:2.54.0",
                "ports": [{ "name": "dashboard", "containerPort": 8265 }],
                "resources": { "requests": { "cpu": "100m", "memory": "128Mi" }, "limits": { "cpu": "100m", "memory": "128Mi" } },
            }] } } },
        },
    }))?;
    let clusters: Api<RayCluster> = Api::namespaced(client.clone(), NS);
    clusters.create(&PostParams::default(), &cluster).await?;

    let gvk = GroupVersionKind::gvk("route.openshift.io", "v1", "Route");
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ApiResource::from_gvk(&gvk));
    let route = wasmray_tests::within(WAIT, async {
        loop {
            if let Ok(route) = routes.get("dash-head-route").await {
                return route;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .context("the Route dash-head-route")?;
    assert_eq!(route.data["spec"]["to"]["kind"], "Service");
    assert_eq!(route.data["spec"]["to"]["name"], "dash-head-svc");
    assert_eq!(route.data["spec"]["to"]["weight"], 100);
    assert_eq!(route.data["spec"]["port"]["targetPort"], "dashboard");
    assert_eq!(route.data["spec"]["wildcardPolicy"], "None");
    assert_eq!(route.metadata.annotations.as_ref().and_then(|a| a.get("team")).map(String::as_str), Some("ml"));
    let owner = &route.metadata.owner_references.as_ref().context("an owner")?[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("RayCluster", "dash"));

    // The cluster becomes ready with its Route and without an Ingress; the Route is made once
    // (it is cached, so later reconciles see it).
    let ready = |c: Option<&RayCluster>| c.and_then(|c| c.status.as_ref()).and_then(|s| s.state) == Some(wasmray_api::ClusterState::Ready);
    let deadline = std::time::Instant::now() + WAIT;
    while !ready(clusters.get_opt("dash").await?.as_ref()) {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the cluster was not ready");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), NS);
    assert!(ingresses.list(&ListParams::default()).await?.items.is_empty(), "no Ingress on OpenShift");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), NS);
    let created = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("CreatedRoute"))
        .map(|e| e.count.unwrap_or(1).max(e.series.as_ref().and_then(|s| s.count).unwrap_or(1)))
        .sum::<i32>();
    assert_eq!(created, 1, "one CreatedRoute Event");
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    Ok(())
}
