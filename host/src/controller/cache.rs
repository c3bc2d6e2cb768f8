//! The controller's view of the cluster: one label-scoped reflector per owned kind, and the
//! expectations that cover the gap between a write and the watch event that reports it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, ListSemantic};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Client, Resource, ResourceExt};
use wasmray_api::RayCluster;

use super::project;

/// Every owned object carries this label naming its RayCluster; watches select on it, so the
/// cache holds Ray's objects only, whatever else the cluster runs.
pub const CLUSTER_LABEL: &str = "ray.io/cluster";

/// How long a write is assumed to be on its way to the cache. Far longer than a watch event
/// takes; after it the cache is trusted again, so a lost event costs one duplicate at worst.
const EXPECTATION_TTL: Duration = Duration::from_secs(60);

/// Readers of the owned kinds' caches.
#[derive(Clone)]
pub struct ChildStores {
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub secrets: Store<Secret>,
    pub service_accounts: Store<ServiceAccount>,
    pub roles: Store<Role>,
    pub role_bindings: Store<RoleBinding>,
    pub jobs: Store<Job>,
}

/// A change to an owned object, mapped to the RayCluster that owns it.
pub type Trigger = ObjectRef<RayCluster>;

impl ChildStores {
    /// Starts one reflector per owned kind. Returns the stores and the stream of owners whose
    /// children changed; drive the stream, and wait for [`ChildStores::ready`] before the first
    /// reconcile (an empty cache would look like a cluster with no Pods).
    pub fn start(client: &Client, namespace: Option<&str>) -> (Self, impl Stream<Item = Trigger> + Send + 'static) {
        let (pods, pod_events) = reflect(client, namespace, project::pod);
        let (services, service_events) = reflect::<Service>(client, namespace, project::object);
        let (secrets, secret_events) = reflect::<Secret>(client, namespace, project::object);
        let (service_accounts, sa_events) = reflect::<ServiceAccount>(client, namespace, project::object);
        let (roles, role_events) = reflect::<Role>(client, namespace, project::object);
        let (role_bindings, binding_events) = reflect::<RoleBinding>(client, namespace, project::object);
        let (jobs, job_events) = reflect::<Job>(client, namespace, project::object);
        let triggers = futures::stream::select_all(vec![
            pod_events, service_events, secret_events, sa_events, role_events, binding_events, job_events,
        ]);
        (Self { pods, services, secrets, service_accounts, roles, role_bindings, jobs }, triggers)
    }

    /// Resolves once every store has its initial list.
    pub async fn ready(&self) {
        let _ = self.pods.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.secrets.wait_until_ready().await;
        let _ = self.service_accounts.wait_until_ready().await;
        let _ = self.roles.wait_until_ready().await;
        let _ = self.role_bindings.wait_until_ready().await;
        let _ = self.jobs.wait_until_ready().await;
    }

    /// The cached children of `cluster` as JSON: same namespace, its label, and (when they have
    /// owner references) owned by this very object, not an earlier one of the same name.
    pub fn children_of(&self, cluster: &RayCluster) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        collect(&self.pods, cluster, &mut out);
        collect(&self.services, cluster, &mut out);
        collect(&self.secrets, cluster, &mut out);
        collect(&self.service_accounts, cluster, &mut out);
        collect(&self.roles, cluster, &mut out);
        collect(&self.role_bindings, cluster, &mut out);
        collect(&self.jobs, cluster, &mut out);
        out
    }

    /// Whether the pod cache holds a Pod of this name in this namespace.
    pub fn has_pod(&self, namespace: &str, name: &str) -> bool {
        self.pods.get(&ObjectRef::new(name).within(namespace)).is_some()
    }
}

/// A reflector of `K` objects carrying the cluster label; `project` trims each object before it
/// is stored ([`super::project`]).
fn reflect<K>(
    client: &Client,
    namespace: Option<&str>,
    project: fn(&mut K),
) -> (Store<K>, futures::stream::BoxStream<'static, Trigger>)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // MostRecent: after a restart the first list must show every Pod created before it, or the
    // first reconcile would create them again.
    let config = watcher::Config::default().labels(CLUSTER_LABEL).list_semantic(ListSemantic::MostRecent);
    let writer: Writer<K> = Writer::default();
    let store = writer.as_reader();
    let events = reflector::reflector(
        writer,
        watcher(api, config).default_backoff().modify(project),
    )
    .touched_objects()
    .filter_map(|object| async move {
        match object {
            Ok(object) => owner_of(&object),
            Err(error) => {
                tracing::warn!(%error, kind = %K::kind(&()), "Watch error");
                None
            }
        }
    })
    .boxed();
    (store, events)
}

fn watcher<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    watcher::watcher(api, config)
}

fn owner_of<K: Resource>(object: &K) -> Option<Trigger> {
    let name = object.labels().get(CLUSTER_LABEL)?;
    Some(ObjectRef::new(name).within(object.meta().namespace.as_deref()?))
}

fn collect<K>(store: &Store<K>, cluster: &RayCluster, out: &mut Vec<serde_json::Value>)
where
    K: Resource<DynamicType = ()> + Clone + Serialize,
{
    let (Some(namespace), name, uid) = (cluster.metadata.namespace.as_deref(), cluster.name_any(), cluster.metadata.uid.clone())
    else {
        return;
    };
    for object in store.state() {
        let owned_here = object.meta().namespace.as_deref() == Some(namespace)
            && object.labels().get(CLUSTER_LABEL) == Some(&name)
            && object.owner_references().iter().all(|o| Some(&o.uid) == uid.as_ref() || o.kind != "RayCluster");
        if owned_here {
            let mut value = serde_json::to_value(object.as_ref()).unwrap_or_default();
            // Typed objects serialise without their type; the guest needs it to tell kinds apart.
            if let Some(map) = value.as_object_mut() {
                map.insert("apiVersion".into(), K::api_version(&()).into());
                map.insert("kind".into(), K::kind(&()).into());
            }
            out.push(value);
        }
    }
}

/// Writes the cache has not shown yet, per RayCluster.
///
/// A Pod created a moment ago may not be in the cache at the next reconcile; without this the
/// guest would see too few Pods and create more. A Pod deleted a moment ago may still be in the
/// cache without its deletion mark; the guest would count it as alive. Expectations patch the
/// snapshot for both, until the cache catches up or [`EXPECTATION_TTL`] passes.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<ObjectRef<RayCluster>, Pending>>,
}

#[derive(Default)]
struct Pending {
    created: Vec<(Instant, serde_json::Value)>,
    deleted: Vec<(Instant, String)>,
}

impl Expectations {
    /// Remembers a Pod the API server accepted, projected as the cache would store it.
    pub fn created(&self, owner: &ObjectRef<RayCluster>, pod: serde_json::Value) {
        let pod = project::pod_json(pod);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entry(owner.clone()).or_default().created.push((Instant::now(), pod));
    }

    /// Remembers the UID of a Pod whose deletion the API server accepted.
    pub fn deleted(&self, owner: &ObjectRef<RayCluster>, uid: String) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entry(owner.clone()).or_default().deleted.push((Instant::now(), uid));
    }

    /// Applies the pending writes to `children` (the cache's view) and forgets those the cache
    /// has caught up with.
    pub fn patch(&self, owner: &ObjectRef<RayCluster>, children: &mut Vec<serde_json::Value>, deletion_time: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pending) = inner.get_mut(owner) else { return };
        let now = Instant::now();
        pending.created.retain(|(at, pod)| {
            let cached = children.iter().any(|c| same_object(c, pod));
            now.duration_since(*at) < EXPECTATION_TTL && !cached
        });
        for (_, pod) in &pending.created {
            children.push(pod.clone());
        }
        pending.deleted.retain(|(at, uid)| {
            let Some(child) = children.iter_mut().find(|c| c["metadata"]["uid"].as_str() == Some(uid)) else {
                return false; // gone from the cache: the deletion is complete
            };
            if child["metadata"]["deletionTimestamp"].is_null() {
                child["metadata"]["deletionTimestamp"] = deletion_time.into();
            } else {
                return false; // the cache shows the deletion itself now
            }
            now.duration_since(*at) < EXPECTATION_TTL
        });
        if pending.created.is_empty() && pending.deleted.is_empty() {
            inner.remove(owner);
        }
    }

    /// Forgets everything about a RayCluster that is gone.
    pub fn forget(&self, owner: &ObjectRef<RayCluster>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).remove(owner);
    }
}

fn same_object(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    a["kind"] == b["kind"] && a["metadata"]["name"] == b["metadata"]["name"]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> ObjectRef<RayCluster> {
        ObjectRef::new("raycluster").within("ns")
    }

    fn pod(name: &str, uid: &str) -> serde_json::Value {
        json!({ "kind": "Pod", "metadata": { "name": name, "uid": uid } })
    }

    #[test]
    fn a_created_pod_the_cache_has_not_seen_is_added_until_it_has() {
        let expectations = Expectations::default();
        expectations.created(&owner(), pod("w-1", "u1"));

        let mut children = vec![pod("w-0", "u0")];
        expectations.patch(&owner(), &mut children, "2026-01-01T00:00:00Z");
        assert_eq!(children.len(), 2);

        let mut children = vec![pod("w-0", "u0"), pod("w-1", "u1")];
        expectations.patch(&owner(), &mut children, "2026-01-01T00:00:00Z");
        assert_eq!(children.len(), 2, "not added twice once cached");
        let mut children = vec![pod("w-0", "u0")];
        expectations.patch(&owner(), &mut children, "2026-01-01T00:00:00Z");
        assert_eq!(children.len(), 1, "forgotten once the cache caught up");
    }

    #[test]
    fn a_deleted_pod_still_in_the_cache_is_marked_as_deleting() {
        let expectations = Expectations::default();
        expectations.deleted(&owner(), "u0".into());

        let mut children = vec![pod("w-0", "u0"), pod("w-1", "u1")];
        expectations.patch(&owner(), &mut children, "2026-01-01T00:00:00Z");

        assert_eq!(children[0]["metadata"]["deletionTimestamp"], "2026-01-01T00:00:00Z");
        assert!(children[1]["metadata"]["deletionTimestamp"].is_null());
    }
}
