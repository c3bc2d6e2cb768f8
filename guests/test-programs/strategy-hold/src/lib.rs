//! Test guest: an upgrade strategy that holds every upgrade, whatever the clusters' state.

use wasmray_guest_sdk::{Decision, PluginError, UpgradeInput, UpgradeStrategy};

/// The wait reason the end-to-end test looks for after swapping this strategy in.
const REASON: &str = "held by the test strategy";

struct Hold;

impl UpgradeStrategy for Hold {
    fn next_step(_input: UpgradeInput) -> Result<Decision, PluginError> {
        // 2 s, KubeRay's RayService requeue: the test sees the held step soon after the swap.
        Ok(Decision::wait(REASON, 2_000))
    }
}

wasmray_guest_sdk::export_upgrade_strategy!(Hold);
