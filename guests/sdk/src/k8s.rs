//! Typed helpers into k8s-openapi types (feature `k8s`).

pub use k8s_openapi;
use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;

use crate::{ObjectRef, OwnerContext, PluginError, PodContext, Snapshot, parse};

impl Snapshot {
    /// The Pods among the children.
    pub fn pods(&self) -> Result<Vec<Pod>, PluginError> {
        self.children_of_kind("Pod")
    }
}

impl PodContext {
    /// The Pod the host is about to create.
    pub fn pod(&self) -> Result<Pod, PluginError> {
        parse(&self.pod)
    }

    /// The RayCluster or RayJob that owns the Pod.
    pub fn owner<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        parse(&self.owner)
    }
}

impl OwnerContext {
    /// The RayCluster or RayJob this call is about.
    pub fn owner<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        parse(&self.owner)
    }
}

impl ObjectRef {
    /// A reference to a k8s-openapi object, with its UID as a delete precondition.
    pub fn to_object<K>(object: &K) -> Self
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    {
        let meta = object.metadata();
        ObjectRef {
            api_version: K::API_VERSION.to_owned(),
            kind: K::KIND.to_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
        }
    }
}
