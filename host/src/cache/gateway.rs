//! The Gateway API's `gateway.networking.k8s.io/v1` Gateway and HTTPRoute, as far as the child caches need them: namespaced objects whose spec and status the host passes on unread (the RayService reconciler reads them).

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The API group, served only where the Gateway API's CRDs are installed.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The spec of a Gateway, kept as the server sent it.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize)]
#[kube(group = "gateway.networking.k8s.io", version = "v1", kind = "Gateway", namespaced, schema = "disabled", status = "Unread")]
pub struct GatewaySpec {
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// The spec of an HTTPRoute, kept as the server sent it.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize)]
#[kube(group = "gateway.networking.k8s.io", version = "v1", kind = "HTTPRoute", namespaced, schema = "disabled", status = "Unread")]
pub struct HTTPRouteSpec {
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// A status kept as the server sent it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Unread {
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}
