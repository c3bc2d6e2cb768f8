//! `Canary`, wasmray's strategy beyond KubeRay (kuberay#2999): traffic to the new cluster in held steps, rolled back on its own when a new application breaks.
//!
//! Once the new (pending) cluster is ready with every Serve application RUNNING, it gets a
//! small share of the traffic; each share is held for a while, and the next one comes only if
//! the new applications stayed healthy. After the last step the new cluster is promoted and
//! takes all traffic. If any new application turns UNHEALTHY or DEPLOY_FAILED, at any point
//! (even before it got traffic), the upgrade is rolled back: the new cluster is dropped, the
//! old one gets all traffic back, and a Warning Event names the application and Serve's message.
//! Choose it when a bad release should reach few users, and undo itself.
//!
//! Options (annotation `wasmray.dev/upgrade-options`, JSON), for example
//! `{"steps": [5, 25, 50], "holdSeconds": 120, "timeoutSeconds": 1800}`:
//! - `steps` (default `[10, 50]`): percent of traffic on the new cluster at each step, each
//!   1–99, strictly ascending. Anything else rolls back with a reason naming the problem.
//! - `holdSeconds` (default 30): how long each step is held before the next one (or the
//!   promotion). Measured from `lastTrafficMigratedTime`.
//! - `timeoutSeconds`: roll back when the upgrade has not finished that long after the new
//!   cluster's creation.
//!
//! Traffic moves through the HTTPRoute as for the incremental upgrade; Serve's target capacity
//! is left alone (both clusters run at full size during a canary).

use wasmray_guest_sdk::upgrade::{self, POLL_MS, Upgrade, UpgradeOptions};
use wasmray_guest_sdk::{Decision, PluginError, TrafficShift, UpgradeInput, UpgradeStrategy};

/// The strategy's name, at the start of every reason it gives for a bad option.
pub const STRATEGY: &str = "Canary";
/// Traffic steps when the annotation names none.
pub const DEFAULT_STEPS: [u8; 2] = [10, 50];
/// Seconds each step is held when the annotation does not say.
pub const DEFAULT_HOLD_SECONDS: u64 = 30;

/// The canary's options, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Percent of traffic on the new cluster at each step: non-empty, each 1–99, ascending.
    pub steps: Vec<u8>,
    /// Seconds each step is held.
    pub hold_seconds: u64,
}

impl Schedule {
    /// The schedule the annotation's options describe; `Err` names the problem.
    pub fn of(options: &UpgradeOptions) -> Result<Self, String> {
        let steps = options.steps.clone().unwrap_or_else(|| DEFAULT_STEPS.to_vec());
        if steps.is_empty() {
            return Err("steps is empty: give at least one share of traffic, 1 to 99".to_owned());
        }
        if let Some(bad) = steps.iter().find(|s| !(1..=99).contains(*s)) {
            return Err(format!("step {bad} is out of range: each step is 1 to 99 percent"));
        }
        if let Some(pair) = steps.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!("steps must be strictly ascending: {} is followed by {}", pair[0], pair[1]));
        }
        Ok(Schedule { steps, hold_seconds: options.hold_seconds.unwrap_or(DEFAULT_HOLD_SECONDS) })
    }

    /// The step after `traffic`, or `None` when the last one is done. By value rather than by
    /// index, so steps edited mid-upgrade go on from where the traffic is.
    pub fn after(&self, traffic: u8) -> Option<u8> {
        self.steps.iter().copied().find(|&s| s > traffic)
    }
}

/// The next step of a canary.
pub fn next_step(upgrade: &Upgrade) -> Decision {
    let schedule = match Schedule::of(&upgrade.options) {
        Ok(schedule) => schedule,
        Err(why) => return Decision::abort(&format!("{STRATEGY}: {why}")),
    };
    if let Some(failure) = upgrade.failed_application() {
        return Decision::abort(&failure);
    }
    if let Some(reason) = upgrade.waiting_for() {
        return Decision::wait(&reason, POLL_MS);
    }
    let hold_ms = schedule.hold_seconds.saturating_mul(1000).max(POLL_MS);
    let traffic = upgrade.pending_traffic();
    if traffic == 0 {
        let first = schedule.after(0).unwrap_or(DEFAULT_STEPS[0]);
        return Decision::shift(TrafficShift::traffic(first)).requeue_after_ms(hold_ms);
    }
    // Traffic moved, so the host stamped the time; without it, hold from the upgrade's start.
    let since = upgrade.last_traffic_migrated_at.unwrap_or(upgrade.pending.created_at);
    let next = schedule.after(traffic);
    if let Some(left) = upgrade.left_of(since, schedule.hold_seconds) {
        let then = next.map_or_else(|| "promote".to_owned(), |n| format!("{n}%"));
        let reason = format!(
            "holding {traffic}% of traffic on cluster {} for {}s more, then {then}",
            upgrade.pending.name,
            left.div_ceil(1000)
        );
        return Decision::wait(&reason, left);
    }
    match next {
        Some(step) => Decision::shift(TrafficShift::traffic(step)).requeue_after_ms(hold_ms),
        None => Decision::promote(),
    }
}

/// The component's export.
pub struct Canary;

impl UpgradeStrategy for Canary {
    fn next_step(input: UpgradeInput) -> Result<Decision, PluginError> {
        upgrade::decide(input, next_step)
    }
}

wasmray_guest_sdk::export_upgrade_strategy!(Canary);

#[cfg(test)]
mod tests;
