//! The RayCluster watch: every object read on its own, so one that does not fit the types is
//! reported and skipped instead of stopping the whole watch.

use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, ListSemantic};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource, ResourceExt};
use futures::StreamExt;
use wasmray_api::RayCluster;

/// RayClusters as a typed watch that survives objects it cannot read.
///
/// The CRD keeps Pod templates open (`x-kubernetes-preserve-unknown-fields`), so the apiserver
/// can hold a RayCluster that does not fit the Kubernetes types (`defaultMode: "0777"`). A typed
/// watch would fail the whole list on it and reconcile nothing; here every object is read on
/// its own, and one that does not fit is left out with a Warning Event naming the field.
pub(super) fn typed_clusters(
    client: &Client,
    namespace: Option<&str>,
    field_manager: &str,
) -> impl futures::Stream<Item = watcher::Result<watcher::Event<RayCluster>>> + Send + 'static {
    let resource = ApiResource::erase::<RayCluster>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let reporter = kube::runtime::events::Reporter { controller: field_manager.to_string(), instance: None };
    let client = client.clone();
    watcher::watcher(api, watcher::Config::default().list_semantic(ListSemantic::MostRecent))
        .default_backoff()
        .modify(|c| c.managed_fields_mut().clear())
        .filter_map(move |event| {
            let (client, reporter) = (client.clone(), reporter.clone());
            async move {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => return Some(Err(error)),
                };
                let typed = |object: DynamicObject| match read_cluster(&object) {
                    Ok(cluster) => Some(cluster),
                    Err(error) => {
                        report_unreadable(client.clone(), reporter.clone(), &object, error);
                        None
                    }
                };
                Some(Ok(match event {
                    watcher::Event::Apply(o) => watcher::Event::Apply(typed(o)?),
                    watcher::Event::InitApply(o) => watcher::Event::InitApply(typed(o)?),
                    watcher::Event::Delete(o) => watcher::Event::Delete(typed(o)?),
                    watcher::Event::Init => watcher::Event::Init,
                    watcher::Event::InitDone => watcher::Event::InitDone,
                }))
            }
        })
}

/// A RayCluster from its JSON, or the path of the first field that does not fit.
fn read_cluster(object: &DynamicObject) -> Result<RayCluster, String> {
    let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

fn report_unreadable(client: Client, reporter: kube::runtime::events::Reporter, object: &DynamicObject, error: String) {
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(RayCluster::api_version(&()).into()),
        kind: Some(RayCluster::kind(&()).into()),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        ..Default::default()
    };
    tracing::warn!(name = ?object.metadata.name, namespace = ?object.metadata.namespace, %error, "RayCluster does not fit the ray.io/v1 types; not reconciled");
    tokio::spawn(async move {
        let recorder = kube::runtime::events::Recorder::new(client, reporter);
        let event = kube::runtime::events::Event {
            type_: kube::runtime::events::EventType::Warning,
            reason: "InvalidRayClusterSpec".into(),
            note: Some(format!("the RayCluster is not reconciled until this is fixed: {error}")),
            action: "Read".into(),
            secondary: None,
        };
        let _ = recorder.publish(&event, &reference).await;
    });
}
