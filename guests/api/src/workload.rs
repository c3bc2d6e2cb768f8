//! A RayCluster or a RayJob, told apart by `kind`: the owner a batch-scheduler plugin is called about.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{RayCluster, RayClusterSpec, RayJob};

/// The workload whose Pods a batch scheduler places.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    // Boxed: the two specs differ a lot in size.
    Cluster(Box<RayCluster>),
    Job(Box<RayJob>),
}

impl Workload {
    /// Parses a RayCluster or RayJob from JSON; any other `kind` is an error naming it.
    pub fn from_json(json: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Kind {
            #[serde(default)]
            kind: String,
        }
        let kind: Kind = serde_json::from_str(json).map_err(|e| format!("cannot parse the owner: {e}"))?;
        match kind.kind.as_str() {
            "RayCluster" => serde_json::from_str(json)
                .map(|c| Workload::Cluster(Box::new(c)))
                .map_err(|e| format!("cannot parse the RayCluster: {e}")),
            "RayJob" => serde_json::from_str(json)
                .map(|j| Workload::Job(Box::new(j)))
                .map_err(|e| format!("cannot parse the RayJob: {e}")),
            other => Err(format!("a batch scheduler handles RayCluster and RayJob, not {other:?}")),
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Workload::Cluster(c) => &c.metadata,
            Workload::Job(j) => &j.metadata,
        }
    }

    /// `metadata.name`, or empty.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`, or empty.
    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or_default()
    }

    /// A label's value; `None` when absent.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata().labels.as_ref()?.get(key).map(String::as_str)
    }

    /// A label's value when present and not empty, the test every scheduler applies before copying one.
    pub fn non_empty_label(&self, key: &str) -> Option<&str> {
        self.label(key).filter(|v| !v.is_empty())
    }

    /// An annotation's value; `None` when absent.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata().annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The cluster the workload runs: the RayCluster's spec, or the RayJob's `rayClusterSpec`
    /// (`None` for a RayJob that selects an existing cluster).
    pub fn cluster_spec(&self) -> Option<&RayClusterSpec> {
        match self {
            Workload::Cluster(c) => Some(&c.spec),
            Workload::Job(j) => j.spec.ray_cluster_spec.as_ref(),
        }
    }
}
