//! NewCluster on upgrades in each state: waits name what they wait for, a serving cluster is promoted, the timeout rolls back.

use wasmray_guest_sdk::upgrade::POLL_MS;
use wasmray_guest_sdk::upgrade::testing::an_upgrade;
use wasmray_guest_sdk::{Decision, PluginError, ServeStatus, Step};

use super::NewCluster;

fn wait(reason: &str) -> Result<Decision, PluginError> {
    Ok(Decision::wait(reason, POLL_MS))
}

#[test]
fn a_pending_cluster_that_is_not_ready_is_waited_for() {
    assert_eq!(an_upgrade().next_step::<NewCluster>(), wait("cluster svc-green is not ready (head Pod or Serve proxy)"));
}

#[test]
fn a_ready_cluster_without_applications_is_waited_for() {
    assert_eq!(an_upgrade().with_pending_ready().next_step::<NewCluster>(), wait("no Serve applications yet"));
}

#[test]
fn a_deploying_application_is_waited_for_by_name() {
    let deploying = an_upgrade().with_pending_ready().with_pending_app("text", ServeStatus::Deploying, "");
    assert_eq!(deploying.next_step::<NewCluster>(), wait("application text is DEPLOYING"));
}

#[test]
fn one_application_still_deploying_among_running_ones_holds_the_switch() {
    let mixed = an_upgrade()
        .with_pending_running()
        .with_pending_app("math", ServeStatus::Running, "")
        .with_pending_app("fruit", ServeStatus::Deploying, "");
    assert_eq!(mixed.next_step::<NewCluster>(), wait("application fruit is DEPLOYING"));
}

#[test]
fn a_failed_application_is_waited_on_as_in_kuberay_not_rolled_back() {
    let failed = an_upgrade().with_pending_ready().with_pending_app("text", ServeStatus::DeployFailed, "bad import");
    assert_eq!(failed.next_step::<NewCluster>(), wait("application text is DEPLOY_FAILED: bad import"));
}

#[test]
fn a_ready_cluster_with_every_application_running_is_promoted() {
    let running = an_upgrade().with_pending_running().with_pending_app("math", ServeStatus::Running, "");
    assert_eq!(running.at_secs(90).next_step::<NewCluster>(), Ok(Decision::promote()));
}

#[test]
fn an_upgrade_that_outlives_its_timeout_rolls_back_saying_what_it_waited_for() {
    let late = an_upgrade()
        .with_pending_ready()
        .with_pending_app("text", ServeStatus::Deploying, "")
        .with_options(r#"{"timeoutSeconds": 300}"#)
        .at_secs(301);
    assert_eq!(late.next_step::<NewCluster>(), Ok(Decision::abort("upgrade timed out after 300s: application text is DEPLOYING")));
}

#[test]
fn before_its_timeout_an_upgrade_waits_and_a_serving_one_is_promoted_even_late() {
    let waiting = an_upgrade().with_pending_ready().with_options(r#"{"timeoutSeconds": 300}"#);
    assert_eq!(waiting.clone().at_secs(250).next_step::<NewCluster>(), wait("no Serve applications yet"));
    assert_eq!(waiting.with_pending_running().at_secs(400).next_step::<NewCluster>(), Ok(Decision::promote()));
}

#[test]
fn an_options_annotation_that_does_not_parse_rolls_back_with_the_parse_error() {
    let typo = an_upgrade().with_pending_running().with_options(r#"{"timeout": 300}"#);
    let Ok(Decision { step: Step::Abort(reason), .. }) = typo.next_step::<NewCluster>() else { panic!("expected an abort") };
    assert!(reason.contains("wasmray.dev/upgrade-options") && reason.contains("timeout"), "{reason}");
}
