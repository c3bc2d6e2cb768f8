//! What the host learned outside a reconcile, per primary: failed writes, and (as pollers land)
//! Ray dashboard replies. Putting a changed fact wakes the primary's controller.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};

use super::expectations::Key;
use crate::runtime::Fact;

/// Facts by primary kind and key, shared by every controller and poller of the operator.
#[derive(Default)]
pub struct Facts {
    inner: Mutex<HashMap<(String, Key), BTreeMap<String, Fact>>>,
    subscribers: Mutex<HashMap<String, UnboundedSender<Key>>>,
}

impl Facts {
    /// The primaries of `kind` whose facts changed; the controller of that kind drives it.
    pub fn subscribe(&self, kind: &str) -> UnboundedReceiver<Key> {
        let (tx, rx) = unbounded();
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner()).insert(kind.to_string(), tx);
        rx
    }

    /// Sets `fact` for the primary; if its value differs from what was there, the primary's
    /// controller is woken. Returns whether it changed.
    pub fn put(&self, kind: &str, owner: &Key, fact: Fact) -> bool {
        let changed = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let facts = inner.entry((kind.to_string(), owner.clone())).or_default();
            let changed = facts.get(&fact.key).is_none_or(|old| old.value != fact.value);
            facts.insert(fact.key.clone(), fact);
            changed
        };
        if changed {
            self.wake(kind, owner);
        }
        changed
    }

    /// Removes one fact; wakes the controller if there was one. Returns whether there was.
    pub fn remove(&self, kind: &str, owner: &Key, key: &str) -> bool {
        let removed = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (kind.to_string(), owner.clone());
            let removed = inner.get_mut(&slot).and_then(|facts| facts.remove(key)).is_some();
            if inner.get(&slot).is_some_and(BTreeMap::is_empty) {
                inner.remove(&slot);
            }
            removed
        };
        if removed {
            self.wake(kind, owner);
        }
        removed
    }

    /// The primary's facts, ordered by key (so snapshots are deterministic).
    pub fn of(&self, kind: &str, owner: &Key) -> Vec<Fact> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.get(&(kind.to_string(), owner.clone())).map(|f| f.values().cloned().collect()).unwrap_or_default()
    }

    /// Forgets a primary that is gone.
    pub fn forget(&self, kind: &str, owner: &Key) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind.to_string(), owner.clone()));
    }

    fn wake(&self, kind: &str, owner: &Key) {
        if let Some(tx) = self.subscribers.lock().unwrap_or_else(|p| p.into_inner()).get(kind) {
            let _ = tx.unbounded_send(owner.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn fact(key: &str, value: &str) -> Fact {
        Fact { key: key.into(), value: value.into(), observed_at: 0 }
    }

    #[tokio::test]
    async fn a_changed_fact_wakes_its_controller_and_an_unchanged_one_does_not() {
        let facts = Facts::default();
        let mut woken = facts.subscribe("RayJob");
        let job = Key::new("ml", "train");

        assert!(facts.put("RayJob", &job, fact("ray.io/job-status", r#"{"status":"RUNNING"}"#)));
        assert_eq!(woken.next().await, Some(job.clone()));
        assert!(!facts.put("RayJob", &job, fact("ray.io/job-status", r#"{"status":"RUNNING"}"#)));
        assert!(facts.put("RayJob", &job, fact("ray.io/job-status", r#"{"status":"SUCCEEDED"}"#)));
        assert_eq!(woken.next().await, Some(job.clone()));
        assert_eq!(facts.of("RayJob", &job)[0].value, r#"{"status":"SUCCEEDED"}"#);
        assert!(facts.of("RayCluster", &job).is_empty(), "facts are per kind");
    }

    #[test]
    fn facts_come_back_ordered_by_key() {
        let facts = Facts::default();
        let owner = Key::new("ns", "rc");
        facts.put("RayCluster", &owner, fact("b", "2"));
        facts.put("RayCluster", &owner, fact("a", "1"));
        let keys: Vec<String> = facts.of("RayCluster", &owner).into_iter().map(|f| f.key).collect();
        assert_eq!(keys, ["a", "b"]);
        assert!(facts.remove("RayCluster", &owner, "a"));
        assert!(!facts.remove("RayCluster", &owner, "a"));
    }
}
