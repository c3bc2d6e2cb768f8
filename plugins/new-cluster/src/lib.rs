//! `NewCluster`, KubeRay's default upgrade strategy: blue-green, all traffic to the new cluster at once when it serves.
//!
//! When the RayService's cluster spec changes, wasmray starts a second (pending) RayCluster
//! next to the one serving (active) and deploys the Serve config on it. This strategy waits
//! until the pending cluster's head Pod and Serve proxy are ready and every one of its Serve
//! applications is RUNNING, then promotes it: it takes all traffic in one step and the old
//! cluster is deleted after `rayClusterDeletionDelaySeconds`. Choose it when twice the cluster
//! for a while is affordable and a single switch-over is fine.
//!
//! Options (annotation `wasmray.dev/upgrade-options`, JSON):
//! - `timeoutSeconds`: roll back (drop the pending cluster, keep serving from the active one)
//!   when the new cluster does not serve within this many seconds of its creation. Unset: wait
//!   as long as it takes, as KubeRay does (ray#50883: with many applications "all RUNNING at
//!   once" may never hold).
//!
//! A failed application (DEPLOY_FAILED) is waited on, not rolled back, as in KubeRay: a fixed
//! Serve config deploys onto the same pending cluster. Set `timeoutSeconds` to roll back instead.

use wasmray_guest_sdk::upgrade::{self, POLL_MS, Upgrade};
use wasmray_guest_sdk::{Decision, PluginError, UpgradeInput, UpgradeStrategy};

/// Wait until the pending cluster serves, then promote it.
pub fn next_step(upgrade: &Upgrade) -> Decision {
    match upgrade.waiting_for() {
        Some(reason) => Decision::wait(&reason, POLL_MS),
        None => Decision::promote(),
    }
}

/// The component's export.
pub struct NewCluster;

impl UpgradeStrategy for NewCluster {
    fn next_step(input: UpgradeInput) -> Result<Decision, PluginError> {
        upgrade::decide(input, next_step)
    }
}

wasmray_guest_sdk::export_upgrade_strategy!(NewCluster);

#[cfg(test)]
mod tests;
