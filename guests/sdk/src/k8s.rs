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

/// `2024-05-01T12:00:00Z` for the snapshot's Unix milliseconds, at the seconds precision of
/// `metav1.Time`: how a guest writes `now` into a status without reading a clock.
pub fn rfc3339(unix_ms: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix_ms.div_euclid(1000))
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// A `metav1.Time` in Unix milliseconds.
pub fn millis(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    time.0.as_millisecond()
}

/// An RFC 3339 timestamp (as a child's condition times arrive, as text) in Unix milliseconds.
pub fn parse_millis(text: &str) -> Option<i64> {
    text.parse::<k8s_openapi::jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn milliseconds_and_rfc3339_round_trip_at_second_precision() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_800_123), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(parse_millis("2024-05-01T12:00:00Z"), Some(1_714_564_800_000));
        assert_eq!(parse_millis("yesterday"), None);
    }
}
