//! Canary step by step: the wait for a serving cluster, the first step, holds, the next steps, promotion, roll-backs on broken applications, bad options and the timeout.

use wasmray_guest_sdk::upgrade::POLL_MS;
use wasmray_guest_sdk::upgrade::testing::{AnUpgrade, an_upgrade};
use wasmray_guest_sdk::{Decision, PluginError, ServeStatus, Step, TrafficShift};

use super::Canary;

/// A canary whose new cluster serves, with the default plan: 10%, then 50%, each held 30 s.
fn a_canary() -> AnUpgrade {
    an_upgrade().with_pending_running()
}

/// The canary at `percent`, traffic moved there `secs` seconds into the upgrade.
fn at_step(percent: u8, secs: i64) -> AnUpgrade {
    a_canary().with_traffic(percent).traffic_moved_at_secs(secs)
}

fn shift_to(percent: u8, hold_ms: u64) -> Result<Decision, PluginError> {
    Ok(Decision::shift(TrafficShift::traffic(percent)).requeue_after_ms(hold_ms))
}

fn abort_reason(upgrade: AnUpgrade) -> String {
    match upgrade.next_step::<Canary>() {
        Ok(Decision { step: Step::Abort(reason), .. }) => reason,
        other => panic!("expected an abort, got {other:?}"),
    }
}

#[test]
fn no_traffic_moves_until_the_new_cluster_is_ready() {
    assert_eq!(
        an_upgrade().next_step::<Canary>(),
        Ok(Decision::wait("cluster svc-green is not ready (head Pod or Serve proxy)", POLL_MS))
    );
    assert_eq!(an_upgrade().with_pending_ready().next_step::<Canary>(), Ok(Decision::wait("no Serve applications yet", POLL_MS)));
}

#[test]
fn no_traffic_moves_while_an_application_deploys() {
    let deploying = a_canary().with_pending_app("math", ServeStatus::Deploying, "");
    assert_eq!(deploying.next_step::<Canary>(), Ok(Decision::wait("application math is DEPLOYING", POLL_MS)));
}

#[test]
fn a_serving_cluster_gets_the_first_step_without_capacities() {
    assert_eq!(a_canary().next_step::<Canary>(), shift_to(10, 30_000));
}

#[test]
fn a_step_is_held_and_the_wait_says_for_how_long_and_what_comes_next() {
    assert_eq!(
        at_step(10, 20).at_secs(32).next_step::<Canary>(),
        Ok(Decision::wait("holding 10% of traffic on cluster svc-green for 18s more, then 50%", 18_000))
    );
}

#[test]
fn after_the_hold_the_next_step_follows() {
    assert_eq!(at_step(10, 20).at_secs(50).next_step::<Canary>(), shift_to(50, 30_000));
}

#[test]
fn the_last_step_is_held_and_then_promoted() {
    assert_eq!(
        at_step(50, 60).at_secs(70).next_step::<Canary>(),
        Ok(Decision::wait("holding 50% of traffic on cluster svc-green for 20s more, then promote", 20_000))
    );
    assert_eq!(at_step(50, 60).at_secs(90).next_step::<Canary>(), Ok(Decision::promote()));
}

#[test]
fn configured_steps_and_hold_are_followed() {
    let custom = |u: AnUpgrade| u.with_options(r#"{"steps": [5, 25, 75], "holdSeconds": 120}"#);
    assert_eq!(custom(a_canary()).next_step::<Canary>(), shift_to(5, 120_000));
    let at_25 = custom(at_step(25, 100));
    assert_eq!(at_25.clone().at_secs(219).next_step::<Canary>().map(|d| d.requeue_after_ms), Ok(Some(1_000)));
    assert_eq!(at_25.at_secs(220).next_step::<Canary>(), shift_to(75, 120_000));
}

#[test]
fn a_plan_edited_mid_upgrade_goes_on_from_the_traffic_there_is() {
    let edited = at_step(10, 0).with_options(r#"{"steps": [20, 40]}"#).at_secs(30);
    assert_eq!(edited.next_step::<Canary>(), shift_to(20, 30_000));
}

#[test]
fn without_a_traffic_time_a_step_is_held_from_the_start_of_the_upgrade() {
    let unstamped = a_canary().with_traffic(10).at_secs(10);
    assert_eq!(
        unstamped.clone().next_step::<Canary>(),
        Ok(Decision::wait("holding 10% of traffic on cluster svc-green for 20s more, then 50%", 20_000))
    );
    assert_eq!(unstamped.at_secs(30).next_step::<Canary>(), shift_to(50, 30_000));
}

#[test]
fn a_step_is_not_left_while_the_new_cluster_is_not_serving() {
    let head_down = at_step(10, 0).with_pending_not_ready().at_secs(60);
    assert_eq!(
        head_down.next_step::<Canary>(),
        Ok(Decision::wait("cluster svc-green is not ready (head Pod or Serve proxy)", POLL_MS))
    );
}

#[test]
fn an_unhealthy_application_at_a_step_rolls_back_naming_it_and_serves_message() {
    let broken = at_step(10, 0).with_pending_app("text", ServeStatus::Unhealthy, "replica crashed").at_secs(5);
    assert_eq!(broken.next_step::<Canary>(), Ok(Decision::abort("application text is UNHEALTHY: replica crashed")));
}

#[test]
fn a_failed_deploy_never_gets_traffic() {
    let failed = an_upgrade().with_pending_ready().with_pending_app("math", ServeStatus::DeployFailed, "ImportError");
    assert_eq!(failed.next_step::<Canary>(), Ok(Decision::abort("application math is DEPLOY_FAILED: ImportError")));
}

#[test]
fn a_broken_application_rolls_back_even_when_the_hold_is_over() {
    let broken = at_step(50, 0).with_pending_app("text", ServeStatus::DeployFailed, "boom").at_secs(600);
    assert_eq!(broken.next_step::<Canary>(), Ok(Decision::abort("application text is DEPLOY_FAILED: boom")));
}

#[test]
fn steps_out_of_range_roll_back_naming_the_step() {
    assert_eq!(
        abort_reason(a_canary().with_options(r#"{"steps": [10, 100]}"#)),
        "Canary: step 100 is out of range: each step is 1 to 99 percent"
    );
    assert_eq!(
        abort_reason(a_canary().with_options(r#"{"steps": [0, 50]}"#)),
        "Canary: step 0 is out of range: each step is 1 to 99 percent"
    );
}

#[test]
fn steps_not_strictly_ascending_roll_back_naming_the_pair() {
    assert_eq!(
        abort_reason(a_canary().with_options(r#"{"steps": [10, 50, 50]}"#)),
        "Canary: steps must be strictly ascending: 50 is followed by 50"
    );
}

#[test]
fn no_steps_at_all_roll_back() {
    assert!(abort_reason(a_canary().with_options(r#"{"steps": []}"#)).starts_with("Canary: steps is empty"));
}

#[test]
fn a_step_that_is_not_a_percentage_rolls_back_with_the_parse_error() {
    let reason = abort_reason(a_canary().with_options(r#"{"steps": [10, 500]}"#));
    assert!(reason.starts_with("annotation wasmray.dev/upgrade-options: "), "{reason}");
}

#[test]
fn a_canary_that_outlives_its_timeout_rolls_back_saying_where_it_was() {
    let late = at_step(10, 100).with_options(r#"{"timeoutSeconds": 110}"#).at_secs(111);
    assert_eq!(
        late.next_step::<Canary>(),
        Ok(Decision::abort("upgrade timed out after 110s: holding 10% of traffic on cluster svc-green for 19s more, then 50%"))
    );
}

#[test]
fn a_canary_stuck_deploying_rolls_back_at_its_timeout() {
    let stuck = a_canary().with_pending_app("text", ServeStatus::Deploying, "").with_options(r#"{"timeoutSeconds": 60}"#);
    assert_eq!(stuck.clone().at_secs(30).next_step::<Canary>(), Ok(Decision::wait("application text is DEPLOYING", POLL_MS)));
    assert_eq!(
        stuck.at_secs(61).next_step::<Canary>(),
        Ok(Decision::abort("upgrade timed out after 60s: application text is DEPLOYING"))
    );
}
