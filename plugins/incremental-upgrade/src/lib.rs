//! `NewClusterWithIncrementalUpgrade`, KubeRay's incremental upgrade: Serve capacity and traffic move to the new cluster in steps.
//!
//! Instead of a second full-size cluster and one switch-over, the new (pending) cluster grows
//! while the old (active) one shrinks, through Ray Serve's `target_capacity` (the autoscaler
//! sizes each cluster from it), and traffic follows through a Gateway API HTTPRoute's weights.
//! Choose it when two full clusters at once are too expensive; it needs the Gateway API and
//! autoscaling, as in KubeRay.
//!
//! Options (`spec.upgradeStrategy.clusterUpgradeOptions`):
//! - `maxSurgePercent` (default 100, 1–100): capacity moved per capacity step.
//! - `stepSizePercent` (required, 1–100): traffic moved per traffic step.
//! - `intervalSeconds` (required, at least 1): time between two traffic steps.
//! - `gatewayClassName` (required): read by the host, which builds the Gateway.
//!
//! Missing or invalid options roll the upgrade back with a reason naming the option. The
//! annotation `wasmray.dev/upgrade-options` adds `timeoutSeconds`: roll back when the upgrade
//! has not finished that long after the new cluster's creation.
//!
//! The steps, as in KubeRay, with Cp and Ca the pending and active capacities (unset: 0 and
//! 100) and Tp the pending cluster's traffic. Nothing moves while the new cluster is not ready
//! with every application RUNNING; when it is, each call takes one step:
//!
//! ```text
//! Ca = 0 and Tp = 100          -> promote
//! Tp < Cp                      -> traffic: Tp := min(Tp + step, Cp, 100), once intervalSeconds
//!                                 have passed since traffic last moved (else wait)
//! Tp = Cp and Ca + Cp <= 100   -> capacity: Cp := min(Cp + maxSurge, 100)
//! Tp = Cp and Ca + Cp > 100    -> capacity: Ca := max(Ca - maxSurge, 0)
//! ```
//!
//! Every shift sets both capacities. With `maxSurgePercent: 50` and `stepSizePercent: 25`:
//! Cp 50 · traffic 25, 50 · Ca 50 · Cp 100 · traffic 75, 100 · Ca 0 · promote.

use wasmray_guest_sdk::upgrade::{self, POLL_MS, Upgrade};
use wasmray_guest_sdk::{Decision, PluginError, TrafficShift, UpgradeInput, UpgradeStrategy};

/// The strategy's name, at the start of every reason it gives for a roll-back.
pub const STRATEGY: &str = "NewClusterWithIncrementalUpgrade";

/// The options of `spec.upgradeStrategy.clusterUpgradeOptions`, checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Capacity moved per capacity step, 1–100.
    pub max_surge_percent: u8,
    /// Traffic moved per traffic step, 1–100.
    pub step_size_percent: u8,
    /// Seconds between traffic steps, at least 1.
    pub interval_seconds: u64,
}

impl Settings {
    /// The upgrade's options; `Err` names the option that is missing or out of range.
    pub fn of(upgrade: &Upgrade) -> Result<Self, String> {
        const FIELD: &str = "spec.upgradeStrategy.clusterUpgradeOptions";
        let options = upgrade.cluster_upgrade_options()?;
        // Zero would never move anything: the upgrade would shift in place forever.
        let percent = |name: &str, value: i32| {
            u8::try_from(value)
                .ok()
                .filter(|v| (1..=100).contains(v))
                .ok_or_else(|| format!("{FIELD}.{name} must be 1 to 100, not {value}"))
        };
        let interval_seconds = u64::try_from(options.interval_seconds)
            .ok()
            .filter(|&s| s >= 1)
            .ok_or_else(|| format!("{FIELD}.intervalSeconds must be at least 1, not {}", options.interval_seconds))?;
        Ok(Settings {
            max_surge_percent: percent("maxSurgePercent", options.max_surge_percent.unwrap_or(100))?,
            step_size_percent: percent("stepSizePercent", options.step_size_percent)?,
            interval_seconds,
        })
    }
}

/// Where traffic and capacity stand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    /// Tp: the pending cluster's share of traffic.
    pub pending_traffic: u8,
    /// Cp: the pending cluster's Serve target capacity (unset: 0, it starts empty).
    pub pending_capacity: u8,
    /// Ca: the active cluster's Serve target capacity (unset: 100, it serves everything).
    pub active_capacity: u8,
}

impl Split {
    /// The split the clusters report.
    pub fn of(upgrade: &Upgrade) -> Self {
        Split {
            pending_traffic: upgrade.pending_traffic(),
            pending_capacity: upgrade.pending.target_capacity.unwrap_or(0).min(100),
            active_capacity: upgrade.active.target_capacity.unwrap_or(100).min(100),
        }
    }
}

/// The next move from a split.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Move {
    /// The active cluster serves nothing and the pending one all traffic.
    Promote,
    /// Traffic may follow the pending capacity: to this share.
    Traffic(u8),
    /// Traffic may follow, but the interval is not over: milliseconds left.
    TrafficNotYet(u64),
    /// Traffic caught up with capacity and there is room: the pending capacity rises to this.
    RaisePending(u8),
    /// Traffic caught up and both capacities add up to more than 100: the active one falls to this.
    LowerActive(u8),
}

fn classify(upgrade: &Upgrade, settings: Settings, split: Split) -> Move {
    let Split { pending_traffic: tp, pending_capacity: cp, active_capacity: ca } = split;
    if ca == 0 && tp == 100 {
        return Move::Promote;
    }
    if tp < cp {
        let left = upgrade.last_traffic_migrated_at.and_then(|at| upgrade.left_of(at, settings.interval_seconds));
        return match left {
            Some(ms) => Move::TrafficNotYet(ms),
            None => Move::Traffic(tp.saturating_add(settings.step_size_percent).min(cp).min(100)),
        };
    }
    if u16::from(ca) + u16::from(cp) <= 100 {
        Move::RaisePending(cp.saturating_add(settings.max_surge_percent).min(100))
    } else {
        Move::LowerActive(ca.saturating_sub(settings.max_surge_percent))
    }
}

/// The next step of an incremental upgrade.
pub fn next_step(upgrade: &Upgrade) -> Decision {
    let settings = match Settings::of(upgrade) {
        Ok(settings) => settings,
        Err(why) => return Decision::abort(&format!("{STRATEGY}: {why}")),
    };
    if let Some(reason) = upgrade.waiting_for() {
        return Decision::wait(&reason, POLL_MS);
    }
    let split = Split::of(upgrade);
    let Split { pending_traffic: tp, pending_capacity: cp, active_capacity: ca } = split;
    let shift = |shift: TrafficShift| Decision::shift(shift).requeue_after_ms(POLL_MS);
    match classify(upgrade, settings, split) {
        Move::Promote => Decision::promote(),
        Move::Traffic(to) => shift(TrafficShift::with_capacities(to, cp, ca)),
        Move::TrafficNotYet(ms) => Decision::wait(
            &format!(
                "{tp}% of traffic on cluster {} (capacity {cp}%); next step in {}s",
                upgrade.pending.name,
                ms.div_ceil(1000)
            ),
            ms,
        ),
        Move::RaisePending(to) => shift(TrafficShift::with_capacities(tp, to, ca)),
        Move::LowerActive(to) => shift(TrafficShift::with_capacities(tp, cp, to)),
    }
}

/// The component's export.
pub struct IncrementalUpgrade;

impl UpgradeStrategy for IncrementalUpgrade {
    fn next_step(input: UpgradeInput) -> Result<Decision, PluginError> {
        upgrade::decide(input, next_step)
    }
}

wasmray_guest_sdk::export_upgrade_strategy!(IncrementalUpgrade);

#[cfg(test)]
mod tests;
