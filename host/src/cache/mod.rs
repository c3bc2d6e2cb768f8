//! The operator's shared view of the cluster: each owned kind watched once per namespace scope
//! (label-scoped, projected as it enters), children mapped back to the primary that owns them,
//! expectations and facts.
//!
//! Controllers of every primary kind read the same [`Children`]; none keeps a copy of its own.

pub mod coalesce;
pub mod expectations;
pub mod facts;
pub mod gateway;
pub mod index;
pub mod mask;
mod pack;
pub mod pod;
pub mod project;
pub mod route;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, ListSemantic};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource, ResourceExt};
use prometheus_client::metrics::gauge::Gauge;

pub use coalesce::{Pace, Urgency, coalesce};
pub use expectations::{Expectations, Key};
use index::ByOwner;
pub use facts::Facts;

/// Every object a Ray primary owns carries this label naming its RayCluster; the child watches
/// select on it, so the caches hold Ray's objects only, whatever else the cluster runs.
pub const CLUSTER_LABEL: &str = "ray.io/cluster";

/// How child changes wake their primary: gathered for 250 ms into one reconcile (a 100-Pod
/// cluster whose Pods turn Ready one by one is reconciled a few times, not a hundred), and a
/// primary whose children keep changing (a scale-up the scheduler works through) at most once
/// a second; at 10 000 Pods that is what the operator's CPU goes to. A child going away is not
/// paced: its replacement waits one window ([`Urgency::Prompt`]).
pub const CHILD_PACE: Pace = Pace { window: Duration::from_millis(250), interval: Duration::from_secs(1) };

/// Who owns a child: the primary's kind, identity and the label its children carry.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: Option<&'a str>,
    pub label: &'a str,
}

/// The label that ties the children of RayJobs and RayServices to them (their RayCluster,
/// submitter Job and Services), whose value is the primary's name.
pub const ORIGINATED_LABEL: &str = "ray.io/originated-from-cr-name";

/// The optional APIs whose objects the caches hold when the apiserver serves them.
#[derive(Clone, Copy, Debug, Default)]
pub struct OptionalApis {
    /// OpenShift's Routes, for the clusters' dashboards (when Routes replace Ingresses).
    pub routes: bool,
    /// The Gateway API's Gateways and HTTPRoutes, for RayService traffic splitting.
    pub gateway: bool,
}

/// One kind's store, type erased so a controller reads every kind the same way.
trait ChildStore: Send + Sync {
    /// The kind it holds (`Pod`).
    fn kind(&self) -> &str;
    /// The label whose value names the primary its objects belong to.
    fn label(&self) -> &'static str;
    /// Whether [`Children::ready`] waits for it: a store another watch fills is not ours to wait on.
    fn owned(&self) -> bool;
    fn collect(&self, owner: &Owner<'_>, out: &mut Vec<serde_json::Value>);
    fn matching(&self, namespace: &str, labels: &[(&str, &str)], out: &mut Vec<serde_json::Value>);
    fn get(&self, namespace: &str, name: &str) -> Option<serde_json::Value>;
    fn ready(&self) -> BoxFuture<'static, ()>;
}

struct Typed<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    kind: String,
    label: &'static str,
    owned: bool,
    /// Names by the value of `label`, for the stores our own watches fill; a lent store (a
    /// few primaries) is scanned.
    index: Option<Arc<ByOwner>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Typed<K> {
    /// The objects in `namespace` whose `label` has the value `value`: the index's names
    /// found in the store (it may name a few that are gone), or, unindexed, the whole store.
    fn candidates(&self, namespace: &str, value: &str) -> Vec<Arc<K>> {
        let Some(index) = &self.index else { return self.store.state() };
        index
            .names(namespace, value)
            .into_iter()
            .filter_map(|name| self.store.get(&ObjectRef::new(&name).within(namespace)))
            .filter(|object| object.labels().get(self.label).map(String::as_str) == Some(value))
            .collect()
    }
}

impl<K> ChildStore for Typed<K>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + Send + Sync + 'static,
{
    fn kind(&self) -> &str {
        &self.kind
    }

    fn label(&self) -> &'static str {
        self.label
    }

    fn owned(&self) -> bool {
        self.owned
    }

    fn collect(&self, owner: &Owner<'_>, out: &mut Vec<serde_json::Value>) {
        for object in self.candidates(owner.namespace, owner.name) {
            let owned_here = object.meta().namespace.as_deref() == Some(owner.namespace)
                && object.labels().get(owner.label).map(String::as_str) == Some(owner.name)
                && object.owner_references().iter().all(|o| Some(o.uid.as_str()) == owner.uid || o.kind != owner.kind);
            if owned_here {
                out.push(typed_json(object.as_ref()));
            }
        }
    }

    fn matching(&self, namespace: &str, labels: &[(&str, &str)], out: &mut Vec<serde_json::Value>) {
        let objects = match labels.iter().find(|(k, _)| *k == self.label) {
            Some((_, value)) => self.candidates(namespace, value),
            None => self.store.state(),
        };
        for object in objects {
            let matches = object.meta().namespace.as_deref() == Some(namespace)
                && labels.iter().all(|(k, v)| object.labels().get(*k).map(String::as_str) == Some(*v));
            if matches {
                out.push(typed_json(object.as_ref()));
            }
        }
    }

    fn get(&self, namespace: &str, name: &str) -> Option<serde_json::Value> {
        self.store.get(&ObjectRef::new(name).within(namespace)).map(|o| typed_json(o.as_ref()))
    }

    fn ready(&self) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        async move {
            let _ = store.wait_until_ready().await;
        }
        .boxed()
    }
}

/// A store another watch fills (a controller's own primaries), lent to [`Children`] so other
/// kinds' controllers see those objects as children without a second watch of the kind.
pub struct Lent(Box<dyn ChildStore>);

impl Lent {
    /// `store`'s objects are children of the primary their `label` names.
    pub fn store<K>(store: Store<K>, label: &'static str) -> Self
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + Send + Sync + 'static,
    {
        Self(Box::new(Typed { store, kind: K::kind(&()).into_owned(), label, owned: false, index: None }))
    }
}

/// A typed object as JSON with its apiVersion and kind: typed objects serialise without their
/// type, and guests need it to tell kinds apart.
pub fn typed_json<K: Resource<DynamicType = ()> + Serialize>(object: &K) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
    }
    value
}

/// A child that changed: its namespace and labels, for every controller to map to its primary.
#[derive(Clone, Debug)]
struct Touched {
    namespace: String,
    labels: std::collections::BTreeMap<String, String>,
    urgency: Urgency,
}

/// How soon a change of a child still there must reach its primary: unpaced once it is marked
/// for deletion (a deleted one is always [`Urgency::Prompt`]).
fn urgency(meta: &kube::api::ObjectMeta) -> Urgency {
    if meta.deletion_timestamp.is_some() { Urgency::Prompt } else { Urgency::Paced }
}

/// The controllers a child change wakes: each one's child label, and its queue of primaries.
type Subscribers = Arc<Mutex<Vec<(String, UnboundedSender<(Key, Urgency)>)>>>;

/// The owned kinds' caches of one namespace scope (`None`: all namespaces).
#[derive(Clone)]
pub struct Children {
    stores: Arc<Vec<Box<dyn ChildStore>>>,
    subscribers: Subscribers,
    touch: UnboundedSender<Touched>,
}

impl Children {
    /// Starts one reflector per owned kind, driven by a task of its own, so the caches fill
    /// before any controller runs. Wait for [`Children::ready`] before the first reconcile: an
    /// empty cache would look like a cluster with no Pods.
    ///
    /// Children of RayClusters carry [`CLUSTER_LABEL`]; the submitter Jobs and Services of
    /// RayJobs and RayServices carry [`ORIGINATED_LABEL`], so those two kinds are watched once
    /// per label; so do a RayService's EndpointSlices (the EndpointSlice controller copies a
    /// Service's labels onto them). `lent` adds stores other watches fill. `apis` says which
    /// optional APIs the apiserver serves, whose objects are cached too.
    pub fn start(client: &Client, namespace: Option<&str>, lent: Vec<Lent>, apis: OptionalApis) -> Self {
        let mut stores: Vec<Box<dyn ChildStore>> = Vec::new();
        let mut changes = Vec::new();
        let ns = namespace;
        // Pods, by far the most numerous, are kept as text (`pod`); the other kinds typed.
        reflect_pods(client, ns, CLUSTER_LABEL, &mut stores, &mut changes);
        reflect::<Service>(client, ns, CLUSTER_LABEL, project::object, &mut stores, &mut changes);
        reflect::<Secret>(client, ns, CLUSTER_LABEL, project::object, &mut stores, &mut changes);
        reflect::<ServiceAccount>(client, ns, CLUSTER_LABEL, project::object, &mut stores, &mut changes);
        reflect::<Role>(client, ns, CLUSTER_LABEL, project::object, &mut stores, &mut changes);
        reflect::<RoleBinding>(client, ns, CLUSTER_LABEL, project::object, &mut stores, &mut changes);
        reflect::<Job>(client, ns, CLUSTER_LABEL, project::object, &mut stores, &mut changes);
        reflect::<Ingress>(client, ns, CLUSTER_LABEL, project::object, &mut stores, &mut changes);
        reflect::<Job>(client, ns, ORIGINATED_LABEL, project::object, &mut stores, &mut changes);
        reflect::<Service>(client, ns, ORIGINATED_LABEL, project::object, &mut stores, &mut changes);
        reflect::<EndpointSlice>(client, ns, ORIGINATED_LABEL, project::object, &mut stores, &mut changes);
        if apis.routes {
            reflect::<route::Route>(client, ns, CLUSTER_LABEL, project::object, &mut stores, &mut changes);
        }
        if apis.gateway {
            reflect::<gateway::Gateway>(client, ns, ORIGINATED_LABEL, project::object, &mut stores, &mut changes);
            reflect::<gateway::HTTPRoute>(client, ns, ORIGINATED_LABEL, project::object, &mut stores, &mut changes);
        }
        stores.extend(lent.into_iter().map(|l| l.0));
        let (touch, touched) = unbounded();
        changes.push(touched.boxed());
        let subscribers: Subscribers = Arc::default();
        let fan_out = subscribers.clone();
        tokio::spawn(futures::stream::select_all(changes).for_each(move |touched| {
            for (label, tx) in fan_out.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                if let Some(name) = touched.labels.get(label) {
                    let _ = tx.unbounded_send((Key::new(touched.namespace.clone(), name.clone()), touched.urgency));
                }
            }
            async {}
        }));
        Self { stores: Arc::new(stores), subscribers, touch }
    }

    /// Tells the controllers that an object with these labels changed (a lent store's object,
    /// which no reflector of ours saw): those whose child label it carries are woken.
    pub fn touched(&self, namespace: &str, labels: &std::collections::BTreeMap<String, String>) {
        // A primary read as a child (a RayJob's RayCluster) changes rarely, and its changes
        // (ready, suspended) start the next step of its reader: not paced.
        let _ = self.touch.unbounded_send(Touched { namespace: namespace.to_string(), labels: labels.clone(), urgency: Urgency::Prompt });
    }

    /// The primaries whose children (carrying `label`) changed, paced by [`CHILD_PACE`]: a
    /// burst of changes for one primary comes out once. `waiting` counts the primaries
    /// gathered and not yet handed on.
    pub fn subscribe(&self, label: &str, waiting: Gauge) -> impl Stream<Item = Key> + Send + 'static {
        let (tx, rx) = unbounded();
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner()).push((label.to_string(), tx));
        coalesce(rx, CHILD_PACE, waiting)
    }

    /// Resolves once every store has its initial list.
    pub async fn ready(&self) {
        for store in self.stores.iter().filter(|s| s.owned()) {
            store.ready().await;
        }
    }

    /// The cached children of `owner` as JSON: same namespace, its label, and (when they have
    /// owner references of the owner's kind) owned by this very object, not an earlier one of
    /// the same name.
    pub fn of(&self, owner: &Owner<'_>) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for store in self.stores.iter().filter(|s| s.label() == owner.label) {
            store.collect(owner, &mut out);
        }
        out
    }

    /// Cached objects of `kind` in `namespace` carrying every one of `labels`, from the
    /// stores selected by one of those labels (a cluster's head Pod, for its RayJob).
    pub fn matching(&self, kind: &str, namespace: &str, labels: &[(&str, &str)]) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for store in self.stores.iter().filter(|s| s.kind() == kind && labels.iter().any(|(k, _)| *k == s.label())) {
            store.matching(namespace, labels, &mut out);
        }
        out
    }

    /// The cached object of `kind` with this name, from whichever store holds it.
    pub fn named(&self, kind: &str, namespace: &str, name: &str) -> Option<serde_json::Value> {
        self.stores.iter().filter(|s| s.kind() == kind).find_map(|s| s.get(namespace, name))
    }
}

/// The API and watch settings of a child kind's watch: objects carrying `label`, in the scope.
fn child_watch<K>(client: &Client, namespace: Option<&str>, label: &str) -> (Api<K>, watcher::Config)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // MostRecent: after a restart the first list must show every Pod created before it, or the
    // first reconcile would create them again.
    (api, watcher::Config::default().labels(label).list_semantic(ListSemantic::MostRecent))
}

/// A reflector of `K` objects carrying `label`; `project` trims each object before it
/// is stored ([`project`]).
fn reflect<K>(
    client: &Client,
    namespace: Option<&str>,
    label: &'static str,
    project: fn(&mut K),
    stores: &mut Vec<Box<dyn ChildStore>>,
    changes: &mut Vec<futures::stream::BoxStream<'static, Touched>>,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static,
{
    let (api, config) = child_watch::<K>(client, namespace, label);
    let writer: Writer<K> = Writer::default();
    let store = writer.as_reader();
    let index = Arc::new(ByOwner::default());
    stores.push(Box::new(Typed { store: store.clone(), kind: K::kind(&()).into_owned(), label, owned: true, index: Some(index.clone()) }));
    // The reflector has applied an event to the store by the time it comes out here. A relist
    // buffers its objects until `InitDone` and then replaces the store, dropping whatever went
    // meanwhile without a `Delete`: the index is rebuilt from the new store then.
    let events = reflector::reflector(writer, watcher::watcher(api, config).default_backoff().modify(project))
        .filter_map(move |event| {
            let touched = match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    let namespace = object.meta().namespace.clone().unwrap_or_default();
                    if let Some(value) = object.labels().get(label) {
                        index.add(&namespace, value, &object.name_any());
                    }
                    Some(Touched { namespace, labels: object.labels().clone(), urgency: urgency(object.meta()) })
                }
                Ok(watcher::Event::Delete(object)) => {
                    let namespace = object.meta().namespace.clone().unwrap_or_default();
                    if let Some(value) = object.labels().get(label) {
                        index.forget(&namespace, value, &object.name_any());
                    }
                    Some(Touched { namespace, labels: object.labels().clone(), urgency: Urgency::Prompt })
                }
                Ok(watcher::Event::InitDone) => {
                    index.rebuild(store.state().iter().filter_map(|object| {
                        let value = object.labels().get(label)?;
                        Some((object.meta().namespace.clone().unwrap_or_default(), value.clone(), object.name_any()))
                    }));
                    None
                }
                Ok(watcher::Event::Init) => None,
                Err(error) => {
                    tracing::warn!(%error, kind = %K::kind(&()), "Watch error");
                    None
                }
            };
            futures::future::ready(touched)
        })
        .boxed();
    changes.push(events);
}

/// The Pods carrying `label`, in a [`pod::PodStore`].
fn reflect_pods(
    client: &Client,
    namespace: Option<&str>,
    label: &'static str,
    stores: &mut Vec<Box<dyn ChildStore>>,
    changes: &mut Vec<futures::stream::BoxStream<'static, Touched>>,
) {
    let (api, config) = child_watch::<Pod>(client, namespace, label);
    let store = Arc::new(pod::PodStore::new(label));
    stores.push(Box::new(store.clone()));
    let events = watcher::watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let touched = match &event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) | watcher::Event::Delete(pod)) => {
                    let urgency = if matches!(event, Ok(watcher::Event::Delete(_))) { Urgency::Prompt } else { urgency(&pod.metadata) };
                    Some(Touched { namespace: pod.namespace().unwrap_or_default(), labels: pod.labels().clone(), urgency })
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                Err(error) => {
                    tracing::warn!(%error, kind = %"Pod", "Watch error");
                    None
                }
            };
            if let Ok(event) = event {
                store.apply_event(event);
            }
            futures::future::ready(touched)
        })
        .boxed();
    changes.push(events);
}
