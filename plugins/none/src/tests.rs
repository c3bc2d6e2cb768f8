//! None on upgrades in each state: every pending cluster is rolled back, ready or not, timed out or not.

use wasmray_guest_sdk::upgrade::testing::an_upgrade;
use wasmray_guest_sdk::{Decision, PluginError, Step};

use super::{Disabled, REASON};

#[test]
fn a_pending_cluster_still_starting_is_rolled_back() {
    assert_eq!(an_upgrade().next_step::<Disabled>(), Ok(Decision::abort(REASON)));
}

#[test]
fn a_pending_cluster_ready_to_serve_is_rolled_back_too() {
    assert_eq!(an_upgrade().with_pending_running().at_secs(60).next_step::<Disabled>(), Ok(Decision::abort(REASON)));
}

#[test]
fn the_reason_is_the_same_past_a_timeout() {
    let late = an_upgrade().with_options(r#"{"timeoutSeconds": 10}"#).at_secs(11);
    assert_eq!(late.next_step::<Disabled>(), Ok(Decision::abort(REASON)));
}

#[test]
fn an_options_annotation_that_does_not_parse_is_reported_in_the_roll_back() {
    let typo = an_upgrade().with_options("not json");
    let Ok(Decision { step: Step::Abort(reason), .. }) = typo.next_step::<Disabled>() else { panic!("expected an abort") };
    assert!(reason.starts_with("annotation wasmray.dev/upgrade-options: "), "{reason}");
}

#[test]
fn without_a_pending_cluster_there_is_nothing_to_roll_back() {
    assert!(matches!(an_upgrade().without_pending().next_step::<Disabled>(), Err(PluginError::Unsupported(_))));
}
