//! Typed helpers into the `ray.io/v1` types (feature `ray`).

pub use wasmray_api;
use wasmray_api::{RayCluster, RayJob, RayService};

use crate::{OwnerContext, PluginError, Snapshot, UpgradeInput, parse};

impl Snapshot {
    /// The primary object as a RayCluster.
    pub fn ray_cluster(&self) -> Result<RayCluster, PluginError> {
        parse(&self.primary)
    }

    /// The primary object as a RayJob.
    pub fn ray_job(&self) -> Result<RayJob, PluginError> {
        parse(&self.primary)
    }

    /// The primary object as a RayService.
    pub fn ray_service(&self) -> Result<RayService, PluginError> {
        parse(&self.primary)
    }
}

impl OwnerContext {
    /// The owner, if it is a RayCluster.
    pub fn ray_cluster(&self) -> Result<RayCluster, PluginError> {
        parse(&self.owner)
    }

    /// The owner, if it is a RayJob.
    pub fn ray_job(&self) -> Result<RayJob, PluginError> {
        parse(&self.owner)
    }
}

impl UpgradeInput {
    /// The RayService being upgraded.
    pub fn ray_service(&self) -> Result<RayService, PluginError> {
        parse(&self.service)
    }
}
