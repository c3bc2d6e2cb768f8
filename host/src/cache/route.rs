//! OpenShift's `route.openshift.io/v1` Route, as far as the child caches need it: a namespaced object whose spec the host never reads.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The spec of a Route, kept as the server sent it.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize)]
#[kube(group = "route.openshift.io", version = "v1", kind = "Route", namespaced, schema = "disabled")]
pub struct RouteSpec {
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}
