//! The `ray.io/v1` API: RayCluster, RayJob and RayService, field for field as KubeRay v1.5.2 accepts them.
//!
//! One crate for the host (watches, CRD generation) and the guests (parsing specs). The serde types
//! build for `wasm32-wasip2`; the `schema` feature adds the JSON schemas, CEL rules and the CRDs
//! themselves ([`crd`]), which only the host needs.
//!
//! KubeRay's naming rules ([`names`]), quantity arithmetic ([`quantity`]) and label keys
//! ([`labels`]) live here too, with no dependencies of their own, so the host's builders and the
//! reconciler guest share one copy.
//!
//! JSON names, optionality and defaults follow KubeRay: a field that KubeRay leaves out when unset is
//! an `Option` here and is left out again when serialised, so a manifest survives a round trip.
//! Embedded Kubernetes objects (pod templates, Services, env vars) are the `k8s-openapi` types.

#[cfg(feature = "schema")]
pub mod crd;
pub mod field_mask;
pub mod labels;
pub mod names;
pub mod ports;
pub mod quantity;
pub mod resources;
pub mod serve;
pub mod template_hash;
pub mod workload;
mod raycluster;
mod rayjob;
mod rayservice;
#[cfg(feature = "schema")]
mod schema;

pub use raycluster::*;
pub use rayjob::*;
pub use rayservice::*;

/// The API group of every kind in this crate.
pub const GROUP: &str = "ray.io";
/// The served and stored version.
pub const VERSION: &str = "v1";
/// `GROUP/VERSION`, the `apiVersion` of every object in this crate.
pub const API_VERSION: &str = "ray.io/v1";

/// The `managedBy` value under which the operator reconciles an object.
pub const MANAGED_BY_OPERATOR: &str = "ray.io/kuberay-operator";
/// The `managedBy` value that hands an object to MultiKueue; the operator then leaves it alone.
pub const MANAGED_BY_MULTIKUEUE: &str = "kueue.x-k8s.io/multikueue";

/// Defines a namespaced top-level kind: `metadata`, `spec`, optional `status`, and the
/// `k8s-openapi` resource traits (which give `kube::Resource`, so `kube::Api<K>` works).
macro_rules! ray_resource {
    ($(#[$doc:meta])* $kind:ident, $list:literal, $plural:literal, $spec:ty, $status:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
        pub struct $kind {
            #[serde(default)]
            pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            pub spec: $spec,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<$status>,
        }

        impl $kind {
            /// An object with the given name and spec, no namespace and no status.
            pub fn new(name: &str, spec: $spec) -> Self {
                let metadata = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some(name.to_owned()),
                    ..Default::default()
                };
                Self { metadata, spec, status: None }
            }
        }

        impl k8s_openapi::Resource for $kind {
            const API_VERSION: &'static str = $crate::API_VERSION;
            const GROUP: &'static str = $crate::GROUP;
            const KIND: &'static str = stringify!($kind);
            const VERSION: &'static str = $crate::VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::ListableResource for $kind {
            const LIST_KIND: &'static str = $list;
        }

        impl k8s_openapi::Metadata for $kind {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }

        /// Always writes `apiVersion` and `kind`, so a serialised object can be applied as it is.
        impl serde::Serialize for $kind {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let fields = if self.status.is_some() { 5 } else { 4 };
                let mut s = serializer.serialize_struct(stringify!($kind), fields)?;
                s.serialize_field("apiVersion", $crate::API_VERSION)?;
                s.serialize_field("kind", stringify!($kind))?;
                s.serialize_field("metadata", &self.metadata)?;
                s.serialize_field("spec", &self.spec)?;
                if let Some(status) = &self.status {
                    s.serialize_field("status", status)?;
                }
                s.end()
            }
        }
    };
}
pub(crate) use ray_resource;
