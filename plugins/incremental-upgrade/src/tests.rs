//! NewClusterWithIncrementalUpgrade step by step: the wait for a serving cluster, capacity and traffic steps, the interval, promotion, bad options and the timeout.

use serde_json::json;
use wasmray_guest_sdk::upgrade::POLL_MS;
use wasmray_guest_sdk::upgrade::testing::{AnUpgrade, an_upgrade};
use wasmray_guest_sdk::{Decision, PluginError, ServeStatus, Step, TrafficShift};

use super::IncrementalUpgrade;

/// An incremental upgrade whose new cluster serves, moving 50% capacity and 25% traffic a step,
/// a traffic step every 30 s; nothing has moved yet.
fn an_incremental_upgrade() -> AnUpgrade {
    an_upgrade().with_pending_running().with_cluster_upgrade_options(json!({
        "maxSurgePercent": 50, "stepSizePercent": 25, "intervalSeconds": 30, "gatewayClassName": "istio",
    }))
}

fn shift(traffic: u8, pending_capacity: u8, active_capacity: u8) -> Result<Decision, PluginError> {
    Ok(Decision::shift(TrafficShift::with_capacities(traffic, pending_capacity, active_capacity)).requeue_after_ms(POLL_MS))
}

fn abort_reason(upgrade: AnUpgrade) -> String {
    match upgrade.next_step::<IncrementalUpgrade>() {
        Ok(Decision { step: Step::Abort(reason), .. }) => reason,
        other => panic!("expected an abort, got {other:?}"),
    }
}

#[test]
fn nothing_moves_until_the_new_cluster_is_ready() {
    let starting = an_incremental_upgrade().with_pending_not_ready();
    assert_eq!(
        starting.next_step::<IncrementalUpgrade>(),
        Ok(Decision::wait("cluster svc-green is not ready (head Pod or Serve proxy)", POLL_MS))
    );
}

#[test]
fn nothing_moves_while_an_application_is_not_running() {
    let deploying = an_incremental_upgrade().with_pending_app("text", ServeStatus::Deploying, "");
    assert_eq!(deploying.next_step::<IncrementalUpgrade>(), Ok(Decision::wait("application text is DEPLOYING", POLL_MS)));
}

#[test]
fn the_first_step_raises_the_unset_pending_capacity_by_the_surge() {
    // Unset capacities read as pending 0 and active 100: they add up to 100, so there is room.
    assert_eq!(an_incremental_upgrade().next_step::<IncrementalUpgrade>(), shift(0, 50, 100));
}

#[test]
fn traffic_follows_capacity_by_one_step_when_it_never_moved() {
    let grown = an_incremental_upgrade().with_capacities(Some(50), Some(100));
    assert_eq!(grown.next_step::<IncrementalUpgrade>(), shift(25, 50, 100));
}

#[test]
fn traffic_waits_for_the_interval_and_says_how_long() {
    let moved = an_incremental_upgrade().with_capacities(Some(50), Some(100)).with_traffic(25).traffic_moved_at_secs(100);
    assert_eq!(
        moved.at_secs(112).next_step::<IncrementalUpgrade>(),
        Ok(Decision::wait("25% of traffic on cluster svc-green (capacity 50%); next step in 18s", 18_000))
    );
}

#[test]
fn traffic_moves_again_once_the_interval_is_over() {
    let moved = an_incremental_upgrade().with_capacities(Some(50), Some(100)).with_traffic(25).traffic_moved_at_secs(100);
    assert_eq!(moved.at_secs(130).next_step::<IncrementalUpgrade>(), shift(50, 50, 100));
}

#[test]
fn a_traffic_step_never_passes_the_pending_capacity() {
    let near = an_incremental_upgrade().with_capacities(Some(50), Some(100)).with_traffic(40);
    assert_eq!(near.next_step::<IncrementalUpgrade>(), shift(50, 50, 100));
}

#[test]
fn traffic_at_capacity_with_both_adding_up_past_100_lowers_the_active_capacity() {
    let caught_up = an_incremental_upgrade().with_capacities(Some(50), Some(100)).with_traffic(50);
    assert_eq!(caught_up.next_step::<IncrementalUpgrade>(), shift(50, 50, 50));
}

#[test]
fn traffic_at_capacity_with_room_raises_the_pending_capacity_capped_at_100() {
    let halfway = an_incremental_upgrade().with_capacities(Some(70), Some(30)).with_traffic(70);
    assert_eq!(halfway.next_step::<IncrementalUpgrade>(), shift(70, 100, 30));
}

#[test]
fn the_active_capacity_never_falls_below_zero() {
    let last = an_incremental_upgrade().with_capacities(Some(100), Some(30)).with_traffic(100);
    assert_eq!(last.next_step::<IncrementalUpgrade>(), shift(100, 100, 0));
}

#[test]
fn all_traffic_on_the_new_cluster_and_no_capacity_on_the_old_one_is_promoted() {
    let done = an_incremental_upgrade().with_capacities(Some(100), Some(0)).with_traffic(100).traffic_moved_at_secs(1);
    assert_eq!(done.at_secs(2).next_step::<IncrementalUpgrade>(), Ok(Decision::promote()));
}

#[test]
fn the_whole_upgrade_walks_the_documented_steps_to_a_promote() {
    // The host's part: apply each shift, and stamp the time when traffic moved.
    let mut upgrade = an_incremental_upgrade();
    let (mut now, mut traffic) = (0, 0);
    let mut walk = Vec::new();
    for _ in 0..20 {
        let decision = upgrade.clone().at_secs(now).next_step::<IncrementalUpgrade>().expect("a decision");
        match decision.step {
            Step::Promote => {
                walk.push("promote".to_owned());
                break;
            }
            Step::Shift(s) => {
                if s.pending_traffic_percent != traffic {
                    traffic = s.pending_traffic_percent;
                    upgrade = upgrade.traffic_moved_at_secs(now);
                    walk.push(format!("traffic {traffic}"));
                } else {
                    walk.push(format!("capacity {:?}/{:?}", s.pending_target_capacity, s.active_target_capacity));
                }
                upgrade = upgrade.with_traffic(traffic).with_capacities(s.pending_target_capacity, s.active_target_capacity);
            }
            Step::Wait(_) => {}
            Step::Abort(reason) => panic!("aborted: {reason}"),
        }
        now += 10;
    }
    assert_eq!(
        walk,
        [
            "capacity Some(50)/Some(100)",
            "traffic 25",
            "traffic 50",
            "capacity Some(50)/Some(50)",
            "capacity Some(100)/Some(50)",
            "traffic 75",
            "traffic 100",
            "capacity Some(100)/Some(0)",
            "promote",
        ]
    );
}

#[test]
fn missing_cluster_upgrade_options_roll_back_naming_them() {
    let bare = an_upgrade().with_pending_running();
    assert_eq!(
        abort_reason(bare),
        "NewClusterWithIncrementalUpgrade: spec.upgradeStrategy.clusterUpgradeOptions is not set"
    );
}

#[test]
fn a_missing_required_option_rolls_back_naming_it() {
    let no_interval = an_upgrade().with_pending_running().with_cluster_upgrade_options(json!({
        "stepSizePercent": 25, "gatewayClassName": "istio",
    }));
    let reason = abort_reason(no_interval);
    assert!(reason.starts_with("NewClusterWithIncrementalUpgrade: spec.upgradeStrategy.clusterUpgradeOptions: "), "{reason}");
    assert!(reason.contains("intervalSeconds"), "{reason}");
}

#[test]
fn options_out_of_range_roll_back_naming_the_option_and_value() {
    let with = |options| an_upgrade().with_pending_running().with_cluster_upgrade_options(options);
    let base = json!({ "stepSizePercent": 25, "intervalSeconds": 30, "gatewayClassName": "istio" });
    let mut zero_step = base.clone();
    zero_step["stepSizePercent"] = json!(0);
    assert!(abort_reason(with(zero_step)).ends_with("clusterUpgradeOptions.stepSizePercent must be 1 to 100, not 0"));
    let mut big_surge = base.clone();
    big_surge["maxSurgePercent"] = json!(150);
    assert!(abort_reason(with(big_surge)).ends_with("clusterUpgradeOptions.maxSurgePercent must be 1 to 100, not 150"));
    let mut no_wait = base;
    no_wait["intervalSeconds"] = json!(0);
    assert!(abort_reason(with(no_wait)).ends_with("clusterUpgradeOptions.intervalSeconds must be at least 1, not 0"));
}

#[test]
fn bad_options_roll_back_even_before_the_new_cluster_is_ready() {
    let starting = an_upgrade().with_cluster_upgrade_options(json!({ "stepSizePercent": 25 }));
    assert!(abort_reason(starting).starts_with("NewClusterWithIncrementalUpgrade: "));
}

#[test]
fn an_upgrade_that_outlives_its_timeout_rolls_back_mid_way() {
    let late = an_incremental_upgrade()
        .with_options(r#"{"timeoutSeconds": 120}"#)
        .with_capacities(Some(50), Some(100))
        .with_traffic(25)
        .traffic_moved_at_secs(115);
    assert_eq!(
        late.at_secs(121).next_step::<IncrementalUpgrade>(),
        Ok(Decision::abort(
            "upgrade timed out after 120s: 25% of traffic on cluster svc-green (capacity 50%); next step in 24s"
        ))
    );
}

#[test]
fn before_its_timeout_a_wait_comes_back_by_the_deadline() {
    let soon = an_incremental_upgrade()
        .with_options(r#"{"timeoutSeconds": 120}"#)
        .with_capacities(Some(50), Some(100))
        .with_traffic(25)
        .traffic_moved_at_secs(100);
    let decision = soon.at_secs(115).next_step::<IncrementalUpgrade>().expect("a decision");
    assert_eq!(decision.requeue_after_ms, Some(5_001), "the deadline, before the interval's 15 s");
}

#[test]
fn an_options_annotation_that_does_not_parse_rolls_back() {
    let typo = an_incremental_upgrade().with_options("{");
    assert!(abort_reason(typo).starts_with("annotation wasmray.dev/upgrade-options: "));
}
