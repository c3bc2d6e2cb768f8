//! The primary watch: every object read on its own, so one that does not fit the types is
//! reported and skipped instead of stopping the whole watch.

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::watcher::{self, ListSemantic};
use kube::{Client, ResourceExt};

use super::Kind;
use super::apply::Writer;

/// Primaries of `K` as a typed watch that survives objects it cannot read.
///
/// The CRDs keep Pod templates open (`x-kubernetes-preserve-unknown-fields`), so the apiserver
/// can hold an object that does not fit the Kubernetes types (`defaultMode: "0777"`). A typed
/// watch would fail the whole list on it and reconcile nothing; here every object is read on
/// its own, and one that does not fit is left out with a Warning Event naming the field.
pub(super) fn primaries<K: Kind>(
    client: &Client,
    namespace: Option<&str>,
    writer: Writer,
    reporter: Reporter,
) -> impl futures::Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static {
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    watcher::watcher(api, watcher::Config::default().list_semantic(ListSemantic::MostRecent))
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .filter_map(move |event| {
            let (writer, reporter) = (writer.clone(), reporter.clone());
            async move {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => return Some(Err(error)),
                };
                let typed = |object: DynamicObject| match read::<K>(&object) {
                    Ok(primary) => Some(primary),
                    Err(error) => {
                        report_unreadable::<K>(writer.clone(), reporter.clone(), &object, error);
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

/// A primary from its JSON, or the path of the first field that does not fit.
fn read<K: Kind>(object: &DynamicObject) -> Result<K, String> {
    let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

fn report_unreadable<K: Kind>(writer: Writer, reporter: Reporter, object: &DynamicObject, error: String) {
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(K::api_version(&()).into()),
        kind: Some(K::kind(&()).into()),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        ..Default::default()
    };
    let kind = K::kind(&());
    tracing::warn!(name = ?object.metadata.name, namespace = ?object.metadata.namespace, %error, "{kind} does not fit the ray.io/v1 types; not reconciled");
    tokio::spawn(async move {
        let event = Event {
            type_: EventType::Warning,
            reason: K::INVALID_SPEC_REASON.into(),
            note: Some(format!("the {} is not reconciled until this is fixed: {error}", K::kind(&()))),
            action: "Read".into(),
            secondary: None,
        };
        if let Err(error) = writer.record(&reporter, &reference, &event).await {
            tracing::warn!(%error, "Event not recorded");
        }
    });
}
