//! Field masks (WIT 0.2.0's `field-mask`): a child reduced to the fields a reconciler declared it reads.
//!
//! The host projects children with it before serialising a snapshot (`cache::mask`); it lives
//! here, in the crate host and guests share, so a reconciler's tests can check their plans
//! under the very projection the host applies. The syntax is the WIT's (`wit/plugin.wit`):
//!
//! - a path is dot-separated object keys from the child's root: `metadata.name`,
//!   `status.conditions`;
//! - an array met on the way is crossed element by element: `spec.containers.name` keeps the
//!   `name` of every container, and each element stays where it was;
//! - a path keeps the whole value it ends on; `apiVersion` and `kind` are always kept;
//! - where a path expects an object and finds anything else (a string, a number, `null`), the
//!   value is kept whole, so a malformed child reaches the plugin as malformed as it was;
//! - kinds the mask does not name, and every child of a plugin that declares nothing, are sent
//!   whole.
//!
//! Keys that themselves contain a dot (labels such as `ray.io/cluster`) cannot be named one by
//! one; a plugin declares the map that holds them (`metadata.labels`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One kind's declared fields, as a plugin returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldMask {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    pub kind: String,
    /// Dotted paths, as described in the module documentation.
    pub paths: Vec<String>,
}

/// Why a declared mask is refused when the plugin is loaded.
#[derive(Debug, PartialEq, Eq)]
pub enum MaskError {
    UnnamedKind,
    Duplicate { api_version: String, kind: String },
    MalformedPath { kind: String, path: String },
}

impl std::fmt::Display for MaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaskError::UnnamedKind => f.write_str("a field mask has an empty apiVersion or kind"),
            MaskError::Duplicate { api_version, kind } => {
                write!(f, "the field mask of {kind} ({api_version}) is declared twice")
            }
            MaskError::MalformedPath { kind, path } => {
                write!(f, "the field mask of {kind} has the malformed path `{path}` (dot-separated keys, none empty)")
            }
        }
    }
}

impl std::error::Error for MaskError {}

/// The fields kept below one key: all of them, or only some of its own keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tree {
    /// Empty means the whole value.
    keys: BTreeMap<String, Tree>,
}

impl Tree {
    fn insert(&mut self, path: &[&str]) {
        let Some((first, rest)) = path.split_first() else { return };
        let whole_already = self.keys.get(*first).is_some_and(|t| t.keys.is_empty());
        if whole_already {
            return;
        }
        let child = self.keys.entry((*first).to_owned()).or_default();
        if rest.is_empty() {
            // This path ends here: the whole value, whatever narrower paths said.
            child.keys.clear();
        } else {
            child.insert(rest);
        }
    }

    /// Keeps what this tree names of `value`; `self` names some of `value`'s keys.
    fn project(&self, value: &Value) -> Value {
        match value {
            Value::Object(object) => {
                let mut kept = Map::new();
                for (key, below) in &self.keys {
                    if let Some(field) = object.get(key) {
                        let field = if below.keys.is_empty() { field.clone() } else { below.project(field) };
                        kept.insert(key.clone(), field);
                    }
                }
                Value::Object(kept)
            }
            Value::Array(items) => Value::Array(items.iter().map(|item| self.project(item)).collect()),
            other => other.clone(),
        }
    }
}

/// A value as [`Tree::project`] would make it, serialised straight from the original: nothing
/// is copied, and the parts the mask drops are never visited. Keys come out in the tree's
/// order, which is the order the projected map would have, so the text is the same.
struct Masked<'a> {
    tree: &'a Tree,
    value: &'a Value,
}

impl serde::Serialize for Masked<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        match self.value {
            Value::Object(object) => {
                let mut map = serializer.serialize_map(None)?;
                for (key, below) in &self.tree.keys {
                    match object.get(key) {
                        Some(field) if below.keys.is_empty() => map.serialize_entry(key, field)?,
                        Some(field) => map.serialize_entry(key, &Masked { tree: below, value: field })?,
                        None => {}
                    }
                }
                map.end()
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(|item| Masked { tree: self.tree, value: item })),
            other => other.serialize(serializer),
        }
    }
}

/// The masks of one plugin, by (apiVersion, kind); empty sends every child whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildMask {
    kinds: BTreeMap<(String, String), Tree>,
}

impl ChildMask {
    /// Checks and compiles a plugin's declaration.
    pub fn new(masks: Vec<FieldMask>) -> Result<Self, MaskError> {
        let mut kinds = BTreeMap::new();
        for mask in masks {
            if mask.api_version.is_empty() || mask.kind.is_empty() {
                return Err(MaskError::UnnamedKind);
            }
            let mut tree = Tree::default();
            for path in ["apiVersion", "kind"].into_iter().chain(mask.paths.iter().map(String::as_str)) {
                let segments: Vec<&str> = path.split('.').collect();
                if segments.iter().any(|s| s.is_empty()) {
                    return Err(MaskError::MalformedPath { kind: mask.kind.clone(), path: path.to_owned() });
                }
                tree.insert(&segments);
            }
            let key = (mask.api_version, mask.kind);
            if kinds.contains_key(&key) {
                let (api_version, kind) = key;
                return Err(MaskError::Duplicate { api_version, kind });
            }
            kinds.insert(key, tree);
        }
        Ok(ChildMask { kinds })
    }

    /// Whether every child is sent whole.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// One child as the plugin is sent it: projected if its kind is declared, else whole.
    pub fn project(&self, child: &Value) -> Value {
        match self.tree_of(child) {
            Some(tree) => tree.project(child),
            None => child.clone(),
        }
    }

    /// Every child serialised for the snapshot; children of undeclared kinds are not copied.
    pub fn serialise(&self, children: &[Value]) -> Vec<String> {
        children
            .iter()
            .map(|child| match self.tree_of(child) {
                // Writing JSON into a String cannot fail; the fallback is never taken.
                Some(tree) => serde_json::to_string(&Masked { tree, value: child }).unwrap_or_else(|_| tree.project(child).to_string()),
                None => child.to_string(),
            })
            .collect()
    }

    fn tree_of(&self, child: &Value) -> Option<&Tree> {
        if self.kinds.is_empty() {
            return None;
        }
        let api_version = child.get("apiVersion")?.as_str()?;
        let kind = child.get("kind")?.as_str()?;
        self.kinds.get(&(api_version.to_owned(), kind.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod_mask(paths: &[&str]) -> ChildMask {
        let paths = paths.iter().map(|p| (*p).to_owned()).collect();
        ChildMask::new(vec![FieldMask { api_version: "v1".into(), kind: "Pod".into(), paths }]).unwrap()
    }

    fn a_running_worker_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "rc-cpu-worker-x", "uid": "u1", "labels": { "ray.io/group": "cpu" },
                          "resourceVersion": "7" },
            "spec": { "containers": [ { "name": "ray-worker", "image": "ray:2.54.0" },
                                      { "name": "sidecar", "image": "log:1" } ],
                      "nodeName": "node-1" },
            "status": { "phase": "Running", "podIP": "10.0.0.7" }
        })
    }

    #[test]
    fn a_pod_keeps_its_identity_and_the_declared_fields_only() {
        let mask = pod_mask(&["metadata.name", "metadata.labels", "status.phase"]);
        assert_eq!(
            mask.project(&a_running_worker_pod()),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": "rc-cpu-worker-x", "labels": { "ray.io/group": "cpu" } },
                "status": { "phase": "Running" }
            })
        );
    }

    #[test]
    fn arrays_are_crossed_element_by_element() {
        let mask = pod_mask(&["spec.containers.name"]);
        assert_eq!(
            mask.project(&a_running_worker_pod())["spec"],
            json!({ "containers": [ { "name": "ray-worker" }, { "name": "sidecar" } ] })
        );
    }

    #[test]
    fn a_shorter_path_wins_over_a_longer_one_in_either_order() {
        let pod = a_running_worker_pod();
        let whole_status = json!({ "phase": "Running", "podIP": "10.0.0.7" });
        assert_eq!(pod_mask(&["status", "status.phase"]).project(&pod)["status"], whole_status);
        assert_eq!(pod_mask(&["status.phase", "status"]).project(&pod)["status"], whole_status);
    }

    #[test]
    fn undeclared_kinds_and_an_empty_declaration_send_children_whole() {
        let service = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "rc-head-svc" }, "spec": { "ports": [] } });
        assert_eq!(pod_mask(&["metadata.name"]).project(&service), service);
        let nothing_declared = ChildMask::new(vec![]).unwrap();
        assert!(nothing_declared.is_empty());
        assert_eq!(nothing_declared.project(&a_running_worker_pod()), a_running_worker_pod());
        let same_kind_other_group = json!({ "apiVersion": "example.com/v1", "kind": "Pod", "spec": { "x": 1 } });
        assert_eq!(pod_mask(&["metadata.name"]).project(&same_kind_other_group), same_kind_other_group);
    }

    #[test]
    fn a_value_that_is_not_the_object_a_path_expects_is_kept_whole() {
        let malformed = json!({ "apiVersion": "v1", "kind": "Pod", "spec": "not an object", "status": null,
                                "metadata": { "labels": ["a", 1] } });
        let mask = pod_mask(&["spec.containers.name", "status.phase", "metadata.labels.x"]);
        assert_eq!(
            mask.project(&malformed),
            json!({ "apiVersion": "v1", "kind": "Pod", "spec": "not an object", "status": null,
                    "metadata": { "labels": ["a", 1] } })
        );
    }

    #[test]
    fn any_json_value_is_projected_without_panicking() {
        let mask = pod_mask(&["metadata.name", "spec.containers.name"]);
        for value in [json!(null), json!(3), json!("Pod"), json!([1, { "kind": "Pod" }]), json!({}),
                      json!({ "apiVersion": 1, "kind": "Pod" }), json!({ "apiVersion": "v1", "kind": "Pod" })] {
            let _ = mask.project(&value);
        }
        assert_eq!(mask.serialise(&[json!({ "apiVersion": "v1", "kind": "Pod", "x": 1 })]),
                   vec![r#"{"apiVersion":"v1","kind":"Pod"}"#.to_owned()]);
    }

    #[test]
    fn the_serialised_child_is_the_projected_child_as_text() {
        let malformed = json!({ "apiVersion": "v1", "kind": "Pod", "spec": "not an object", "status": null,
                                "metadata": { "labels": ["a", 1], "name": "x" } });
        let masks = [pod_mask(&["metadata.name", "metadata.labels", "status.phase"]), pod_mask(&["spec.containers.name", "status"]),
                     pod_mask(&["spec.containers.name", "status.phase", "metadata.labels.x"])];
        for mask in &masks {
            for child in [a_running_worker_pod(), malformed.clone()] {
                assert_eq!(mask.serialise(std::slice::from_ref(&child)), vec![mask.project(&child).to_string()]);
            }
        }
    }

    #[test]
    fn declarations_without_a_kind_with_empty_segments_or_twice_are_refused() {
        let mask = |api_version: &str, kind: &str, path: &str| FieldMask {
            api_version: api_version.into(),
            kind: kind.into(),
            paths: vec![path.into()],
        };
        assert_eq!(ChildMask::new(vec![mask("v1", "", "metadata.name")]), Err(MaskError::UnnamedKind));
        for path in ["", "metadata.", ".name", "spec..containers"] {
            assert!(matches!(ChildMask::new(vec![mask("v1", "Pod", path)]), Err(MaskError::MalformedPath { .. })), "{path:?}");
        }
        assert!(matches!(
            ChildMask::new(vec![mask("v1", "Pod", "metadata.name"), mask("v1", "Pod", "status")]),
            Err(MaskError::Duplicate { .. })
        ));
    }
}
