//! Writes the cache has not shown yet, per primary: the gap between a write and its watch event.
//!
//! A Pod created a moment ago may not be in the cache at the next reconcile; without this the
//! guest would see too few Pods and create more. A Pod deleted a moment ago may still be in the
//! cache without its deletion mark; the guest would count it as alive. Expectations patch the
//! snapshot for both, until the cache catches up or [`EXPECTATION_TTL`] passes.
//!
//! Time is passed in by the caller (the controller's injected clock), never read here.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long a write is assumed to be on its way to the cache. Far longer than a watch event
/// takes; after it the cache is trusted again, so a lost event costs one duplicate at worst.
pub const EXPECTATION_TTL: Duration = Duration::from_secs(60);

/// A primary object of any kind, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Pending writes per primary; one per controller.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<Key, Pending>>,
}

#[derive(Default)]
struct Pending {
    created: Vec<Created>,
    deleted: Vec<(SystemTime, String)>,
}

/// A created object the cache has not shown yet. Kept as text: a 500-worker scale-up has
/// hundreds waiting at once, and a `Value` holds a Pod in several times its text's size.
struct Created {
    at: SystemTime,
    kind: Box<str>,
    name: Box<str>,
    text: Box<str>,
}

impl Expectations {
    /// Remembers a Pod the API server accepted at `now`, already projected as the cache would
    /// store it ([`super::project::created_pod`]).
    pub fn created(&self, owner: &Key, pod: &serde_json::Value, now: SystemTime) {
        let created = Created {
            at: now,
            kind: pod["kind"].as_str().unwrap_or_default().into(),
            name: pod["metadata"]["name"].as_str().unwrap_or_default().into(),
            text: pod.to_string().into_boxed_str(),
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entry(owner.clone()).or_default().created.push(created);
    }

    /// Remembers the UID of a Pod whose deletion the API server accepted at `now`.
    pub fn deleted(&self, owner: &Key, uid: String, now: SystemTime) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entry(owner.clone()).or_default().deleted.push((now, uid));
    }

    /// Applies the pending writes to `children` (the cache's view) and forgets those the cache
    /// has caught up with or that are older than [`EXPECTATION_TTL`] at `now`.
    pub fn patch(&self, owner: &Key, children: &mut Vec<serde_json::Value>, now: SystemTime) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pending) = inner.get_mut(owner) else { return };
        let fresh = |at: &SystemTime| now.duration_since(*at).unwrap_or_default() < EXPECTATION_TTL;
        if !pending.created.is_empty() {
            let cached: HashSet<(&str, &str)> = children
                .iter()
                .map(|c| (c["kind"].as_str().unwrap_or_default(), c["metadata"]["name"].as_str().unwrap_or_default()))
                .collect();
            pending.created.retain(|c| fresh(&c.at) && !cached.contains(&(&*c.kind, &*c.name)));
        }
        for created in &pending.created {
            children.push(serde_json::from_str(&created.text).unwrap_or_default());
        }
        let deletion_time = timestamp(now);
        pending.deleted.retain(|(at, uid)| {
            let Some(child) = children.iter_mut().find(|c| c["metadata"]["uid"].as_str() == Some(uid)) else {
                return false; // gone from the cache: the deletion is complete
            };
            if !child["metadata"]["deletionTimestamp"].is_null() {
                return false; // the cache shows the deletion itself now
            }
            child["metadata"]["deletionTimestamp"] = deletion_time.clone().into();
            fresh(at)
        });
        if pending.created.is_empty() && pending.deleted.is_empty() {
            inner.remove(owner);
        }
    }

    /// Forgets everything about a primary that is gone.
    pub fn forget(&self, owner: &Key) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).remove(owner);
    }
}

/// RFC 3339 as Kubernetes writes it.
pub fn timestamp(at: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(at).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> Key {
        Key::new("ns", "raycluster")
    }

    fn pod(name: &str, uid: &str) -> serde_json::Value {
        json!({ "kind": "Pod", "metadata": { "name": name, "uid": uid } })
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    #[test]
    fn a_created_pod_the_cache_has_not_seen_is_added_until_it_has() {
        let expectations = Expectations::default();
        expectations.created(&owner(), &pod("w-1", "u1"), at(0));

        let mut children = vec![pod("w-0", "u0")];
        expectations.patch(&owner(), &mut children, at(1));
        assert_eq!(children.len(), 2);

        let mut children = vec![pod("w-0", "u0"), pod("w-1", "u1")];
        expectations.patch(&owner(), &mut children, at(2));
        assert_eq!(children.len(), 2, "not added twice once cached");
        let mut children = vec![pod("w-0", "u0")];
        expectations.patch(&owner(), &mut children, at(3));
        assert_eq!(children.len(), 1, "forgotten once the cache caught up");
    }

    #[test]
    fn a_created_pod_is_trusted_to_the_cache_again_after_the_ttl() {
        let expectations = Expectations::default();
        expectations.created(&owner(), &pod("w-1", "u1"), at(0));
        let mut children = vec![];
        expectations.patch(&owner(), &mut children, at(61));
        assert!(children.is_empty(), "a lost watch event costs one duplicate at worst, never a stuck count");
    }

    #[test]
    fn a_deleted_pod_still_in_the_cache_is_marked_as_deleting() {
        let expectations = Expectations::default();
        expectations.deleted(&owner(), "u0".into(), at(0));

        let mut children = vec![pod("w-0", "u0"), pod("w-1", "u1")];
        expectations.patch(&owner(), &mut children, at(0));

        assert_eq!(children[0]["metadata"]["deletionTimestamp"], "2027-01-15T08:00:00Z");
        assert!(children[1]["metadata"]["deletionTimestamp"].is_null());
    }
}
