//! The names of a child store's objects by namespace and the value of the store's label.
//!
//! A reconcile reads the children of one primary; scanning every store of a typed kind
//! (Services, RBAC, Jobs…) for them made each reconcile cost as much as all the clusters of
//! the scope. The index turns that into a lookup of the primary's own names (Pods have a store
//! of their own that is grouped the same way, `super::pod`). The watch keeps it: an object's name is added as it
//! arrives and removed with its deletion, and each completed (re)list rebuilds it from the
//! store. Between those it may name an object that is gone; readers look every name up.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Object names by (namespace, label value).
#[derive(Debug, Default)]
pub struct ByOwner {
    names: Mutex<HashMap<(String, String), HashSet<String>>>,
}

impl ByOwner {
    /// Records that `name` in `namespace` carries the label with value `owner`.
    pub fn add(&self, namespace: &str, owner: &str, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), owner.to_string());
        let entry = names.entry(key).or_default();
        if !entry.contains(name) {
            entry.insert(name.to_string());
        }
    }

    /// The names recorded for `owner` in `namespace` (possibly some that are gone).
    pub fn names(&self, namespace: &str, owner: &str) -> Vec<String> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.get(&(namespace.to_string(), owner.to_string())).map(|n| n.iter().cloned().collect()).unwrap_or_default()
    }

    /// Forgets `name` under `owner`: its object was deleted.
    pub fn forget(&self, namespace: &str, owner: &str, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), owner.to_string());
        if let Some(entry) = names.get_mut(&key) {
            entry.remove(name);
            if entry.is_empty() {
                names.remove(&key);
            }
        }
    }
}

impl ByOwner {
    /// Replaces every entry with `objects` (namespace, label value, name): a relist's result.
    pub fn rebuild(&self, objects: impl IntoIterator<Item = (String, String, String)>) {
        let mut fresh: HashMap<(String, String), HashSet<String>> = HashMap::new();
        for (namespace, owner, name) in objects {
            fresh.entry((namespace, owner)).or_default().insert(name);
        }
        *self.names.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_per_namespace_and_owner() {
        let index = ByOwner::default();
        index.add("ml", "demo", "demo-head");
        index.add("ml", "demo", "demo-worker-1");
        index.add("ml", "demo", "demo-worker-1");
        index.add("ml", "other", "other-head");
        index.add("prod", "demo", "demo-head");

        let mut names = index.names("ml", "demo");
        names.sort();
        assert_eq!(names, ["demo-head", "demo-worker-1"]);
        assert_eq!(index.names("prod", "demo"), ["demo-head"]);
        assert!(index.names("ml", "unknown").is_empty());
    }

    #[test]
    fn a_forgotten_name_is_gone_and_an_empty_owner_with_it() {
        let index = ByOwner::default();
        index.add("ml", "demo", "demo-head");
        index.forget("ml", "demo", "demo-head");
        index.forget("ml", "never-seen", "x");
        assert!(index.names("ml", "demo").is_empty());
        assert!(index.names.lock().unwrap().is_empty(), "no empty sets are kept");
    }

    #[test]
    fn a_relist_replaces_what_went_unseen() {
        let index = ByOwner::default();
        index.add("ml", "demo", "deleted-while-the-watch-was-down");
        index.add("ml", "demo", "demo-head");
        index.rebuild([("ml".to_string(), "demo".to_string(), "demo-head".to_string()), ("ml".into(), "demo".into(), "created-meanwhile".into())]);
        let mut names = index.names("ml", "demo");
        names.sort();
        assert_eq!(names, ["created-meanwhile", "demo-head"]);
    }
}
