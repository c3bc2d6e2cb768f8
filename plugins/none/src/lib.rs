//! `None`, KubeRay's strategy for upgrades turned off: a changed cluster spec is never rolled out.
//!
//! With `upgradeStrategy.type: None` the RayService keeps serving from the cluster it has; a
//! change to `rayClusterConfig` is not applied (KubeRay's behaviour). Should a pending cluster
//! exist anyway (the type was switched to `None` mid-upgrade), this strategy rolls it back at
//! once: the pending cluster is dropped and the active one keeps all traffic, with a Warning
//! Event saying why. Choose it to pin a RayService's cluster, for instance while debugging.
//!
//! Options: none of its own. The `wasmray.dev/upgrade-options` annotation is still checked,
//! so a typo there is reported, but a roll-back is the answer either way.

use wasmray_guest_sdk::upgrade::{self, Upgrade};
use wasmray_guest_sdk::{Decision, PluginError, UpgradeInput, UpgradeStrategy};

/// The reason every pending cluster is rolled back.
pub const REASON: &str = "upgradeStrategy None: cluster spec changes are not rolled out";

/// Roll back, whatever state the pending cluster is in.
pub fn next_step(_upgrade: &Upgrade) -> Decision {
    Decision::abort(REASON)
}

/// The component's export.
pub struct Disabled;

impl UpgradeStrategy for Disabled {
    fn next_step(input: UpgradeInput) -> Result<Decision, PluginError> {
        upgrade::decide(input, next_step)
    }
}

wasmray_guest_sdk::export_upgrade_strategy!(Disabled);

#[cfg(test)]
mod tests;
