//! The Pod cache: every Ray Pod as the JSON text of its projection, grouped by the primary its label names.
//!
//! Pods are the one kind whose count grows with the clusters' size, and a typed `Pod` of
//! k8s-openapi keeps every optional field of its structs inline whether set or not (a
//! `Container` alone is over a kilobyte of `None`s), plus a map node and two allocations per
//! label and annotation: a projected Ray Pod ([`super::project::pod`]) took about 4.3 KiB in a
//! reflector store, and 10 000 of them were the largest part of the operator's heap. Nothing in
//! the host reads a cached Pod through the types: children reach reconcilers, and the host's
//! own decisions, as JSON. So each Pod is kept as the text of its projection (about 2 KiB
//! Running), packed against a dictionary of typical Ray Pods ([`super::pack`], 150–300 bytes),
//! with only what the cache selects on beside it: the value of its label and its owners.
//!
//! The store follows the watch as kube's reflector does: applies and deletes as they come, and a
//! (re)list buffered until it is complete and then put in place of everything, so a Pod deleted
//! while the watch was down does not linger.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::Value;

use super::{ChildStore, Owner, project, typed_json};

/// A cached Pod.
#[derive(Debug)]
struct Cached {
    /// The projected Pod as JSON, apiVersion and kind included, packed.
    packed: Box<[u8]>,
    /// (kind, uid) of each owner reference: which primary may read it as a child.
    owners: Box<[(Box<str>, Box<str>)]>,
}

impl Cached {
    fn json(&self) -> Value {
        super::pack::unpack(&self.packed).and_then(|text| serde_json::from_slice(&text).ok()).unwrap_or_default()
    }
}

/// Pods in `namespace` whose label has `value`, by name.
type Group = HashMap<String, Arc<Cached>>;

#[derive(Debug, Default)]
struct Inner {
    /// Pods by (namespace, value of the label), then by name.
    groups: HashMap<(String, String), Group>,
    /// The label value of each Pod, by (namespace, name): a lookup by name, and a move when the
    /// value changes.
    values: HashMap<(String, String), String>,
    /// A list under way: what it has returned so far, kept as compactly as the rest.
    listing: Option<Box<Inner>>,
}

impl Inner {
    fn insert(&mut self, label: &str, mut pod: Pod) {
        let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        self.remove(&namespace, &name);
        let Some(value) = pod.labels().get(label).cloned() else { return };
        project::pod(&mut pod);
        let owners = pod.owner_references().iter().map(|o| (o.kind.as_str().into(), o.uid.as_str().into())).collect();
        let packed = super::pack::pack(&typed_json(&pod).to_string());
        let cached = Arc::new(Cached { packed, owners });
        self.groups.entry((namespace.clone(), value.clone())).or_default().insert(name.clone(), cached);
        self.values.insert((namespace, name), value);
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let Some(value) = self.values.remove(&key) else { return };
        let group_key = (key.0, value);
        if let Some(group) = self.groups.get_mut(&group_key) {
            group.remove(name);
            if group.is_empty() {
                self.groups.remove(&group_key);
            }
        }
    }
}

/// The Pods of one namespace scope carrying `label`, fed by [`PodStore::apply_event`].
#[derive(Debug)]
pub struct PodStore {
    label: &'static str,
    inner: RwLock<Inner>,
    /// True once the first list is complete.
    ready: tokio::sync::watch::Sender<bool>,
}

impl PodStore {
    pub fn new(label: &'static str) -> Self {
        Self { label, inner: RwLock::default(), ready: tokio::sync::watch::Sender::new(false) }
    }

    /// Follows one watch event.
    pub fn apply_event(&self, event: kube::runtime::watcher::Event<Pod>) {
        use kube::runtime::watcher::Event;
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Apply(pod) => inner.insert(self.label, pod),
            Event::Delete(pod) => inner.remove(&pod.namespace().unwrap_or_default(), &pod.name_any()),
            Event::Init => inner.listing = Some(Box::default()),
            Event::InitApply(pod) => inner.listing.get_or_insert_default().insert(self.label, pod),
            Event::InitDone => {
                *inner = *inner.listing.take().unwrap_or_default();
                drop(inner);
                self.ready.send_replace(true);
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl ChildStore for Arc<PodStore> {
    fn kind(&self) -> &str {
        "Pod"
    }

    fn label(&self) -> &'static str {
        self.label
    }

    fn owned(&self) -> bool {
        true
    }

    fn collect(&self, owner: &Owner<'_>, out: &mut Vec<Value>) {
        let pods: Vec<Arc<Cached>> = {
            let inner = self.read();
            let group = inner.groups.get(&(owner.namespace.to_string(), owner.name.to_string()));
            group.map(|g| g.values().cloned().collect()).unwrap_or_default()
        };
        // Parsed outside the lock: a reconcile must not hold up the watch.
        for pod in pods {
            if pod.owners.iter().all(|(kind, uid)| Some(&**uid) == owner.uid || &**kind != owner.kind) {
                out.push(pod.json());
            }
        }
    }

    fn matching(&self, namespace: &str, labels: &[(&str, &str)], out: &mut Vec<Value>) {
        let pods: Vec<Arc<Cached>> = {
            let inner = self.read();
            match labels.iter().find(|(k, _)| *k == self.label) {
                Some((_, value)) => inner.groups.get(&(namespace.to_string(), value.to_string())).map(|g| g.values().cloned().collect()).unwrap_or_default(),
                None => inner.groups.iter().filter(|((ns, _), _)| ns == namespace).flat_map(|(_, g)| g.values().cloned()).collect(),
            }
        };
        for pod in pods {
            let json = pod.json();
            if labels.iter().all(|(k, v)| json["metadata"]["labels"][*k].as_str() == Some(*v)) {
                out.push(json);
            }
        }
    }

    fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        let pod = {
            let inner = self.read();
            let value = inner.values.get(&(namespace.to_string(), name.to_string()))?;
            inner.groups.get(&(namespace.to_string(), value.clone()))?.get(name)?.clone()
        };
        Some(pod.json())
    }

    fn ready(&self) -> BoxFuture<'static, ()> {
        let mut ready = self.ready.subscribe();
        async move {
            let _ = ready.wait_for(|ready| *ready).await;
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    const LABEL: &str = "ray.io/cluster";

    fn pod(name: &str, cluster: &str, uid_of_cluster: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": "ml", "uid": format!("uid-{name}"),
                "labels": { "ray.io/cluster": cluster, "ray.io/node-type": if name.ends_with("head") { "head" } else { "worker" } },
                "ownerReferences": [ { "apiVersion": "ray.io/v1", "kind": "RayCluster", "name": cluster, "uid": uid_of_cluster } ],
                "managedFields": [ { "manager": "wasmray", "operation": "Apply" } ]
            },
            "spec": { "containers": [ { "name": "ray-worker", "image": "rayproject/ray:2.54.0",
                                        "env": [ { "name": "RAY_CLUSTER_NAME", "value": cluster } ] } ] },
            "status": { "phase": "Running", "podIP": "10.0.0.7" }
        }))
        .unwrap()
    }

    fn owner<'a>(name: &'a str, uid: &'a str) -> Owner<'a> {
        Owner { kind: "RayCluster", namespace: "ml", name, uid: Some(uid), label: LABEL }
    }

    fn names(children: &[Value]) -> Vec<&str> {
        let mut names: Vec<&str> = children.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
        names.sort();
        names
    }

    fn listed(pods: Vec<Pod>) -> Arc<PodStore> {
        let store = Arc::new(PodStore::new(LABEL));
        store.apply_event(Event::Init);
        for pod in pods {
            store.apply_event(Event::InitApply(pod));
        }
        store.apply_event(Event::InitDone);
        store
    }

    #[test]
    fn a_cached_pod_reads_back_as_its_projection() {
        let store = listed(vec![pod("demo-head", "demo", "c-1")]);
        let mut children = Vec::new();
        store.collect(&owner("demo", "c-1"), &mut children);

        let mut projected = pod("demo-head", "demo", "c-1");
        project::pod(&mut projected);
        assert_eq!(children, [typed_json(&projected)]);
        assert!(children[0]["metadata"].get("managedFields").is_none());
        assert_eq!(children[0]["spec"]["containers"][0].get("env"), None, "the spec is projected");
    }

    #[test]
    fn a_primary_reads_its_own_pods_and_not_those_of_an_earlier_one_of_its_name() {
        let store = listed(vec![pod("demo-head", "demo", "c-1"), pod("demo-worker-a", "demo", "c-1"), pod("other-head", "other", "o-1")]);
        store.apply_event(Event::Apply(pod("demo-worker-old", "demo", "c-0")));

        let mut children = Vec::new();
        store.collect(&owner("demo", "c-1"), &mut children);
        assert_eq!(names(&children), ["demo-head", "demo-worker-a"]);
    }

    #[test]
    fn applies_replace_and_deletes_remove() {
        let store = listed(vec![pod("demo-head", "demo", "c-1")]);
        let mut running = pod("demo-worker-a", "demo", "c-1");
        store.apply_event(Event::Apply(running.clone()));
        running.status.as_mut().unwrap().phase = Some("Failed".into());
        store.apply_event(Event::Apply(running.clone()));
        assert_eq!(store.get("ml", "demo-worker-a").unwrap()["status"]["phase"], "Failed");

        store.apply_event(Event::Delete(running));
        assert_eq!(store.get("ml", "demo-worker-a"), None);
        let mut children = Vec::new();
        store.collect(&owner("demo", "c-1"), &mut children);
        assert_eq!(names(&children), ["demo-head"]);
    }

    #[test]
    fn a_relabelled_pod_moves_to_its_new_primary() {
        let store = listed(vec![pod("p", "demo", "c-1")]);
        store.apply_event(Event::Apply(pod("p", "other", "c-1")));
        let (mut demo, mut other) = (Vec::new(), Vec::new());
        store.collect(&owner("demo", "c-1"), &mut demo);
        store.collect(&owner("other", "c-1"), &mut other);
        assert!(demo.is_empty());
        assert_eq!(names(&other), ["p"]);
    }

    #[test]
    fn a_relist_replaces_everything_and_drops_what_was_deleted_meanwhile() {
        let store = listed(vec![pod("demo-head", "demo", "c-1"), pod("demo-worker-deleted-while-down", "demo", "c-1")]);
        store.apply_event(Event::Init);
        store.apply_event(Event::InitApply(pod("demo-head", "demo", "c-1")));
        let mut during = Vec::new();
        store.collect(&owner("demo", "c-1"), &mut during);
        assert_eq!(during.len(), 2, "the old view serves until the list is complete");
        store.apply_event(Event::InitApply(pod("demo-worker-created-meanwhile", "demo", "c-1")));
        store.apply_event(Event::InitDone);

        let mut after = Vec::new();
        store.collect(&owner("demo", "c-1"), &mut after);
        assert_eq!(names(&after), ["demo-head", "demo-worker-created-meanwhile"]);
    }

    #[test]
    fn matching_selects_on_every_label_given() {
        let store = listed(vec![pod("demo-head", "demo", "c-1"), pod("demo-worker-a", "demo", "c-1"), pod("other-head", "other", "o-1")]);
        let mut heads = Vec::new();
        store.matching("ml", &[(LABEL, "demo"), ("ray.io/node-type", "head")], &mut heads);
        assert_eq!(names(&heads), ["demo-head"]);
        let mut all_heads = Vec::new();
        store.matching("ml", &[("ray.io/node-type", "head")], &mut all_heads);
        assert_eq!(names(&all_heads), ["demo-head", "other-head"]);
        let mut elsewhere = Vec::new();
        store.matching("prod", &[(LABEL, "demo")], &mut elsewhere);
        assert!(elsewhere.is_empty());
    }

    #[tokio::test]
    async fn ready_once_the_first_list_is_complete() {
        let store = Arc::new(PodStore::new(LABEL));
        store.apply_event(Event::Init);
        let ready = store.ready();
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), store.ready()).await.is_err());
        store.apply_event(Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(1), ready).await.expect("ready after InitDone");
    }
}
