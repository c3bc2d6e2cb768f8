//! What every RayService upgrade strategy shares (feature `ray`): reading its input, when the pending cluster serves, the timeout, and the shapes of a step.
//!
//! A strategy is one rule from an [`Upgrade`] to a [`Decision`]; [`decide`] runs it inside the
//! steps every strategy takes alike:
//!
//! 1. read the RayService once: the `wasmray.dev/upgrade-options` annotation
//!    ([`UpgradeOptions`]), the raw `spec.upgradeStrategy.clusterUpgradeOptions` and
//!    `status.pendingServiceStatus.lastTrafficMigratedTime`;
//! 2. abort when the annotation does not parse (the reconciler shows the reason in a Warning);
//! 3. run the rule;
//! 4. past `timeoutSeconds` since the pending cluster was created, turn a `wait` or a `shift`
//!    into an abort that says what the rule was still waiting for (ray#50883: with many
//!    applications "all RUNNING at once" may never hold); before it, come back by the deadline.
//!
//! ```no_run
//! use wasmray_guest_sdk::upgrade::{self, POLL_MS, Upgrade};
//! use wasmray_guest_sdk::{Decision, PluginError, UpgradeInput, UpgradeStrategy};
//!
//! struct BlueGreen;
//!
//! fn rule(upgrade: &Upgrade) -> Decision {
//!     match upgrade.waiting_for() {
//!         Some(reason) => Decision::wait(&reason, POLL_MS),
//!         None => Decision::promote(),
//!     }
//! }
//!
//! impl UpgradeStrategy for BlueGreen {
//!     fn next_step(input: UpgradeInput) -> Result<Decision, PluginError> {
//!         upgrade::decide(input, rule)
//!     }
//! }
//!
//! wasmray_guest_sdk::export_upgrade_strategy!(BlueGreen);
//! ```
//!
//! Caveat: the host writes `lastTrafficMigratedTime` at the second precision of `metav1.Time`,
//! so an interval or hold measured from it may end up to a second early.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmray_api::ClusterUpgradeOptions;
pub use wasmray_api::serve::UpgradeOptions;
use wasmray_api::serve::UPGRADE_OPTIONS_ANNOTATION;

use crate::k8s::parse_millis;
use crate::{ClusterState, Decision, PluginError, ServeStatus, Step, TrafficShift, UnixMillis, UpgradeInput};

/// How soon a strategy that waits on the clusters asks to look again: KubeRay requeues a
/// RayService every 2 s.
pub const POLL_MS: u64 = 2_000;

/// One upgrade as a strategy sees it: both clusters, the clock and the options, read once.
#[derive(Clone, Debug, PartialEq)]
pub struct Upgrade {
    /// The cluster serving traffic now.
    pub active: ClusterState,
    /// The cluster being rolled out; its `created-at` is when the upgrade began.
    pub pending: ClusterState,
    /// The host's clock when it built the input.
    pub now: UnixMillis,
    /// The `wasmray.dev/upgrade-options` annotation (defaults when absent).
    pub options: UpgradeOptions,
    /// When traffic last moved between the clusters; `None` before the first move.
    pub last_traffic_migrated_at: Option<UnixMillis>,
    /// `spec.upgradeStrategy.clusterUpgradeOptions` as written: kept raw so that only the
    /// strategy that reads it ([`Upgrade::cluster_upgrade_options`]) fails on a bad one.
    cluster_upgrade_options: Option<serde_json::Value>,
}

/// Why an input is not an [`Upgrade`].
#[derive(Clone, Debug, PartialEq)]
pub enum ReadError {
    /// The host called without an active and a pending cluster: there is no upgrade to decide.
    NoUpgrade(&'static str),
    /// The RayService JSON, or a status field the host wrote, does not parse.
    Service(String),
    /// The options annotation does not parse: the user's mistake, so the strategy aborts.
    Options(String),
}

/// Just the parts of a RayService a strategy reads. Not [`wasmray_api::RayService`]: that
/// requires `clusterUpgradeOptions` to be complete, so one bad option would fail every
/// strategy's input, and it parses the whole cluster template, which no strategy looks at.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ServiceView {
    metadata: MetadataView,
    spec: SpecView,
    status: StatusView,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct MetadataView {
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SpecView {
    upgrade_strategy: Option<StrategyView>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct StrategyView {
    cluster_upgrade_options: Option<serde_json::Value>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct StatusView {
    pending_service_status: Option<PendingView>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PendingView {
    last_traffic_migrated_time: Option<String>,
}

impl Upgrade {
    /// Reads an upgrade from the host's input.
    pub fn read(input: UpgradeInput) -> Result<Self, ReadError> {
        let active = input.active.ok_or(ReadError::NoUpgrade("no active cluster"))?;
        let pending = input.pending.ok_or(ReadError::NoUpgrade("no pending cluster"))?;
        let service: ServiceView = serde_json::from_str(&input.service)
            .map_err(|e| ReadError::Service(format!("cannot parse the RayService: {e}")))?;
        let last_traffic_migrated_at = match service.status.pending_service_status.and_then(|p| p.last_traffic_migrated_time) {
            None => None,
            Some(text) => Some(parse_millis(&text).ok_or_else(|| {
                ReadError::Service(format!("status.pendingServiceStatus.lastTrafficMigratedTime {text:?} is not an RFC 3339 time"))
            })?),
        };
        let options = UpgradeOptions::of(service.metadata.annotations.as_ref()).map_err(ReadError::Options)?;
        Ok(Upgrade {
            active,
            pending,
            now: input.now,
            options,
            last_traffic_migrated_at,
            cluster_upgrade_options: service.spec.upgrade_strategy.and_then(|s| s.cluster_upgrade_options),
        })
    }

    /// `spec.upgradeStrategy.clusterUpgradeOptions`; `Err` says what is missing or wrong.
    pub fn cluster_upgrade_options(&self) -> Result<ClusterUpgradeOptions, String> {
        const FIELD: &str = "spec.upgradeStrategy.clusterUpgradeOptions";
        match &self.cluster_upgrade_options {
            None | Some(serde_json::Value::Null) => Err(format!("{FIELD} is not set")),
            Some(value) => ClusterUpgradeOptions::deserialize(value).map_err(|e| format!("{FIELD}: {e}")),
        }
    }

    /// What the pending cluster still lacks before it can serve, or `None` when it is ready
    /// with at least one application and every application RUNNING (KubeRay's "ready").
    pub fn waiting_for(&self) -> Option<String> {
        let pending = &self.pending;
        if !pending.ready {
            return Some(format!("cluster {} is not ready (head Pod or Serve proxy)", pending.name));
        }
        let mut not_running = pending.applications.iter().filter(|a| a.status != ServeStatus::Running);
        let first = match not_running.next() {
            Some(app) => app,
            None if pending.applications.is_empty() => return Some("no Serve applications yet".to_owned()),
            None => return None,
        };
        let mut reason = format!("application {} is {}", first.name, first.status.as_str());
        if first.status.is_failure() && !first.message.is_empty() {
            reason = format!("{reason}: {}", first.message);
        }
        match not_running.count() {
            0 => Some(reason),
            more => Some(format!("{reason} (and {more} more not RUNNING)")),
        }
    }

    /// The first pending application that is UNHEALTHY or DEPLOY_FAILED, as
    /// `application <name> is <STATUS>: <message>`.
    pub fn failed_application(&self) -> Option<String> {
        let app = self.pending.applications.iter().find(|a| a.status.is_failure())?;
        Some(format!("application {} is {}: {}", app.name, app.status.as_str(), app.message))
    }

    /// Share of traffic on the pending cluster, 0 to 100.
    pub fn pending_traffic(&self) -> u8 {
        self.pending.traffic_percent.min(100)
    }

    /// Milliseconds from `then` to now; 0 when `then` is in the future.
    pub fn elapsed_since(&self, then: UnixMillis) -> u64 {
        u64::try_from(self.now.saturating_sub(then)).unwrap_or(0)
    }

    /// Milliseconds left of a wait of `seconds` that began at `since`, or `None` when it is over.
    pub fn left_of(&self, since: UnixMillis, seconds: u64) -> Option<u64> {
        let left = seconds.saturating_mul(1000).saturating_sub(self.elapsed_since(since));
        (left > 0).then_some(left)
    }
}

/// Runs a strategy's rule inside what every strategy shares (see the module docs).
///
/// Errors: [`PluginError::Unsupported`] when the input lacks a cluster (the host calls only
/// during an upgrade) and [`PluginError::InvalidInput`] when the RayService does not parse;
/// a bad options annotation is no error but an abort, so the user sees it.
pub fn decide(input: UpgradeInput, rule: impl FnOnce(&Upgrade) -> Decision) -> Result<Decision, PluginError> {
    match Upgrade::read(input) {
        Ok(upgrade) => Ok(within_timeout(&upgrade, rule(&upgrade))),
        Err(ReadError::NoUpgrade(what)) => Err(PluginError::Unsupported(format!("no upgrade in progress: {what}"))),
        Err(ReadError::Service(why)) => Err(PluginError::InvalidInput(why)),
        Err(ReadError::Options(why)) => Ok(Decision::abort(&why)),
    }
}

/// The rule's decision under `timeoutSeconds`: a promote or an abort stands; a wait or a shift
/// past the deadline becomes an abort, and before it comes back no later than the deadline.
fn within_timeout(upgrade: &Upgrade, decision: Decision) -> Decision {
    let Some(timeout_seconds) = upgrade.options.timeout_seconds else {
        return decision;
    };
    let still_doing = match &decision.step {
        Step::Promote | Step::Abort(_) => return decision,
        Step::Wait(reason) => reason.clone(),
        Step::Shift(shift) => format!("traffic still moving ({}% on cluster {})", shift.pending_traffic_percent, upgrade.pending.name),
    };
    let timeout_ms = timeout_seconds.saturating_mul(1000);
    let elapsed = upgrade.elapsed_since(upgrade.pending.created_at);
    if elapsed > timeout_ms {
        return Decision::abort(&format!("upgrade timed out after {timeout_seconds}s: {still_doing}"));
    }
    // The timeout is "more than": one millisecond past the deadline is the first call that aborts.
    let to_deadline = timeout_ms - elapsed + 1;
    let requeue = decision.requeue_after_ms.map_or(to_deadline, |ms| ms.min(to_deadline));
    decision.requeue_after_ms(requeue)
}

impl Decision {
    /// The same decision, asking to come back after `ms` milliseconds.
    pub fn requeue_after_ms(mut self, ms: u64) -> Self {
        self.requeue_after_ms = Some(ms);
        self
    }
}

impl TrafficShift {
    /// `pending_percent` of the traffic to the pending cluster; Serve capacities left alone.
    pub fn traffic(pending_percent: u8) -> Self {
        TrafficShift { pending_traffic_percent: pending_percent, pending_target_capacity: None, active_target_capacity: None }
    }

    /// `pending_percent` of the traffic to the pending cluster, and both Serve target capacities.
    pub fn with_capacities(pending_percent: u8, pending_capacity: u8, active_capacity: u8) -> Self {
        TrafficShift {
            pending_traffic_percent: pending_percent,
            pending_target_capacity: Some(pending_capacity),
            active_target_capacity: Some(active_capacity),
        }
    }
}

impl ServeStatus {
    /// The status as Ray Serve spells it (`RUNNING`, `DEPLOY_FAILED`…).
    pub fn as_str(&self) -> &'static str {
        match self {
            ServeStatus::NotStarted => "NOT_STARTED",
            ServeStatus::Deploying => "DEPLOYING",
            ServeStatus::Running => "RUNNING",
            ServeStatus::DeployFailed => "DEPLOY_FAILED",
            ServeStatus::Unhealthy => "UNHEALTHY",
            ServeStatus::Deleting => "DELETING",
        }
    }

    /// UNHEALTHY or DEPLOY_FAILED: the application broke, rather than is still on its way.
    pub fn is_failure(&self) -> bool {
        matches!(self, ServeStatus::Unhealthy | ServeStatus::DeployFailed)
    }
}

/// Builders for unit tests of strategies, read as sentences:
/// `an_upgrade().with_pending_running().with_traffic(10).at_secs(40).next_step::<Canary>()`.
///
/// The upgrade began at [`UPGRADE_BEGAN`](testing::UPGRADE_BEGAN) (the pending cluster's creation); times are seconds
/// after it. The active cluster `svc-blue` is ready, RUNNING and takes all traffic; the pending
/// cluster `svc-green` is not ready yet, with no applications and no traffic.
pub mod testing {
    use serde_json::{Value, json};

    use super::UPGRADE_OPTIONS_ANNOTATION;
    use crate::k8s::rfc3339;
    use crate::{ClusterState, Decision, PluginError, ServeApplication, ServeStatus, UnixMillis, UpgradeInput, UpgradeStrategy};

    /// When the pending cluster was created: 2024-05-01T12:00:00Z.
    pub const UPGRADE_BEGAN: UnixMillis = 1_714_564_800_000;

    /// An upgrade under way; see the module docs for where it starts.
    pub fn an_upgrade() -> AnUpgrade {
        AnUpgrade {
            active: ClusterState {
                name: "svc-blue".into(),
                ready: true,
                applications: vec![application("text", ServeStatus::Running, "")],
                traffic_percent: 100,
                target_capacity: None,
                created_at: UPGRADE_BEGAN - 3_600_000,
            },
            pending: Some(ClusterState {
                name: "svc-green".into(),
                ready: false,
                applications: Vec::new(),
                traffic_percent: 0,
                target_capacity: None,
                created_at: UPGRADE_BEGAN,
            }),
            now: UPGRADE_BEGAN,
            options_annotation: None,
            cluster_upgrade_options: None,
            traffic_moved_at: None,
        }
    }

    fn application(name: &str, status: ServeStatus, message: &str) -> ServeApplication {
        ServeApplication { name: name.into(), status, message: message.into() }
    }

    /// An upgrade being described; [`AnUpgrade::input`] is what the host would pass.
    #[derive(Clone, Debug)]
    pub struct AnUpgrade {
        active: ClusterState,
        pending: Option<ClusterState>,
        now: UnixMillis,
        options_annotation: Option<String>,
        cluster_upgrade_options: Option<Value>,
        traffic_moved_at: Option<UnixMillis>,
    }

    impl AnUpgrade {
        fn pending(mut self, change: impl FnOnce(&mut ClusterState)) -> Self {
            if let Some(pending) = self.pending.as_mut() {
                change(pending);
            }
            self
        }

        /// The pending cluster's head and Serve proxy are up (no applications yet).
        pub fn with_pending_ready(self) -> Self {
            self.pending(|p| p.ready = true)
        }

        /// The pending cluster's head or Serve proxy is down.
        pub fn with_pending_not_ready(self) -> Self {
            self.pending(|p| p.ready = false)
        }

        /// The pending cluster is ready and its one application `text` is RUNNING.
        pub fn with_pending_running(self) -> Self {
            self.with_pending_ready().with_pending_app("text", ServeStatus::Running, "")
        }

        /// The pending cluster has this application (replacing one of the same name).
        pub fn with_pending_app(self, name: &str, status: ServeStatus, message: &str) -> Self {
            self.pending(|p| {
                p.applications.retain(|a| a.name != name);
                p.applications.push(application(name, status, message));
            })
        }

        /// `percent` of the traffic on the pending cluster, the rest on the active one.
        pub fn with_traffic(mut self, percent: u8) -> Self {
            self.active.traffic_percent = 100u8.saturating_sub(percent);
            self.pending(|p| p.traffic_percent = percent)
        }

        /// Serve target capacities of the pending and the active cluster.
        pub fn with_capacities(mut self, pending: Option<u8>, active: Option<u8>) -> Self {
            self.active.target_capacity = active;
            self.pending(|p| p.target_capacity = pending)
        }

        /// The `wasmray.dev/upgrade-options` annotation, as written.
        pub fn with_options(mut self, annotation: &str) -> Self {
            self.options_annotation = Some(annotation.into());
            self
        }

        /// `spec.upgradeStrategy.clusterUpgradeOptions`.
        pub fn with_cluster_upgrade_options(mut self, options: Value) -> Self {
            self.cluster_upgrade_options = Some(options);
            self
        }

        /// Traffic last moved `secs` seconds after the upgrade began.
        pub fn traffic_moved_at_secs(mut self, secs: i64) -> Self {
            self.traffic_moved_at = Some(UPGRADE_BEGAN + secs * 1000);
            self
        }

        /// The host calls `secs` seconds after the upgrade began.
        pub fn at_secs(mut self, secs: i64) -> Self {
            self.now = UPGRADE_BEGAN + secs * 1000;
            self
        }

        /// The host calls with no pending cluster (it should not).
        pub fn without_pending(mut self) -> Self {
            self.pending = None;
            self
        }

        /// The input the host would pass, with the RayService as JSON.
        pub fn input(self) -> UpgradeInput {
            let mut service = json!({
                "apiVersion": "ray.io/v1", "kind": "RayService",
                "metadata": { "name": "svc", "namespace": "default" },
                "spec": { "rayClusterConfig": { "headGroupSpec": {} } },
                "status": {
                    "activeServiceStatus": { "rayClusterName": self.active.name },
                },
            });
            if let Some(annotation) = &self.options_annotation {
                service["metadata"]["annotations"] = json!({ (UPGRADE_OPTIONS_ANNOTATION): annotation });
            }
            if let Some(options) = &self.cluster_upgrade_options {
                service["spec"]["upgradeStrategy"] = json!({ "clusterUpgradeOptions": options });
            }
            if let Some(pending) = &self.pending {
                service["status"]["pendingServiceStatus"] = json!({
                    "rayClusterName": pending.name,
                    "trafficRoutedPercent": pending.traffic_percent,
                });
                if let Some(at) = self.traffic_moved_at {
                    service["status"]["pendingServiceStatus"]["lastTrafficMigratedTime"] = json!(rfc3339(at));
                }
            }
            UpgradeInput { service: service.to_string(), active: Some(self.active), pending: self.pending, now: self.now }
        }

        /// What strategy `S` decides about this upgrade.
        pub fn next_step<S: UpgradeStrategy>(self) -> Result<Decision, PluginError> {
            S::next_step(self.input())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{AnUpgrade, UPGRADE_BEGAN, an_upgrade};
    use super::*;

    /// The strategy of these tests: promote once the pending cluster serves.
    fn blue_green(upgrade: &Upgrade) -> Decision {
        match upgrade.waiting_for() {
            Some(reason) => Decision::wait(&reason, POLL_MS),
            None => Decision::promote(),
        }
    }

    fn decided(upgrade: AnUpgrade) -> Result<Decision, PluginError> {
        decide(upgrade.input(), blue_green)
    }

    fn read(upgrade: AnUpgrade) -> Upgrade {
        Upgrade::read(upgrade.input()).expect("a readable upgrade")
    }

    #[test]
    fn an_upgrade_reads_its_clusters_clock_and_default_options() {
        let upgrade = read(an_upgrade().at_secs(5));
        assert_eq!(upgrade.active.name, "svc-blue");
        assert_eq!(upgrade.pending.name, "svc-green");
        assert_eq!(upgrade.now, UPGRADE_BEGAN + 5_000);
        assert_eq!(upgrade.options, UpgradeOptions::default());
        assert_eq!(upgrade.last_traffic_migrated_at, None);
    }

    #[test]
    fn the_last_traffic_move_is_read_from_the_pending_status() {
        let upgrade = read(an_upgrade().traffic_moved_at_secs(12));
        assert_eq!(upgrade.last_traffic_migrated_at, Some(UPGRADE_BEGAN + 12_000));
    }

    #[test]
    fn a_pending_cluster_that_is_not_ready_is_waited_for_by_name() {
        assert_eq!(read(an_upgrade()).waiting_for().as_deref(), Some("cluster svc-green is not ready (head Pod or Serve proxy)"));
    }

    #[test]
    fn a_ready_cluster_without_applications_is_waited_for() {
        assert_eq!(read(an_upgrade().with_pending_ready()).waiting_for().as_deref(), Some("no Serve applications yet"));
    }

    #[test]
    fn the_first_application_not_running_is_named_with_how_many_more() {
        let one = an_upgrade().with_pending_running().with_pending_app("text", ServeStatus::Deploying, "Deploying app 'text'.");
        assert_eq!(read(one.clone()).waiting_for().as_deref(), Some("application text is DEPLOYING"));
        let three = one.with_pending_app("fruit", ServeStatus::NotStarted, "").with_pending_app("math", ServeStatus::Deploying, "");
        assert_eq!(read(three).waiting_for().as_deref(), Some("application text is DEPLOYING (and 2 more not RUNNING)"));
    }

    #[test]
    fn a_failed_application_is_waited_for_with_its_message() {
        let failed = an_upgrade().with_pending_ready().with_pending_app("text", ServeStatus::DeployFailed, "ImportError: no module x");
        assert_eq!(read(failed).waiting_for().as_deref(), Some("application text is DEPLOY_FAILED: ImportError: no module x"));
    }

    #[test]
    fn a_cluster_with_every_application_running_waits_for_nothing() {
        let running = an_upgrade().with_pending_running().with_pending_app("math", ServeStatus::Running, "");
        assert_eq!(read(running).waiting_for(), None);
    }

    #[test]
    fn unhealthy_and_deploy_failed_applications_are_failures_and_deploying_is_not() {
        let deploying = an_upgrade().with_pending_running().with_pending_app("math", ServeStatus::Deploying, "");
        assert_eq!(read(deploying.clone()).failed_application(), None);
        let unhealthy = deploying.with_pending_app("text", ServeStatus::Unhealthy, "replica died");
        assert_eq!(read(unhealthy).failed_application().as_deref(), Some("application text is UNHEALTHY: replica died"));
    }

    #[test]
    fn time_left_counts_down_from_since_and_is_none_once_over() {
        let upgrade = read(an_upgrade().at_secs(10));
        assert_eq!(upgrade.left_of(UPGRADE_BEGAN, 30), Some(20_000));
        assert_eq!(upgrade.left_of(UPGRADE_BEGAN, 10), None);
        assert_eq!(upgrade.elapsed_since(UPGRADE_BEGAN + 60_000), 0, "a time in the future has not elapsed");
    }

    #[test]
    fn cluster_upgrade_options_missing_or_incomplete_are_named() {
        assert_eq!(
            read(an_upgrade()).cluster_upgrade_options(),
            Err("spec.upgradeStrategy.clusterUpgradeOptions is not set".to_owned())
        );
        let incomplete = read(an_upgrade().with_cluster_upgrade_options(serde_json::json!({ "stepSizePercent": 10 })));
        let why = incomplete.cluster_upgrade_options().expect_err("intervalSeconds is missing");
        assert!(why.starts_with("spec.upgradeStrategy.clusterUpgradeOptions: ") && why.contains("intervalSeconds"), "{why}");
    }

    #[test]
    fn a_rule_decides_when_nothing_shared_stands_in_its_way() {
        assert_eq!(decided(an_upgrade().with_pending_running()), Ok(Decision::promote()));
        assert_eq!(
            decided(an_upgrade().with_pending_ready()),
            Ok(Decision::wait("no Serve applications yet", POLL_MS))
        );
    }

    #[test]
    fn an_options_annotation_that_does_not_parse_aborts_with_the_parse_error() {
        let decision = decided(an_upgrade().with_pending_running().with_options(r#"{"holdSecond": 5}"#)).expect("a decision");
        let Step::Abort(reason) = decision.step else { panic!("expected an abort, got {decision:?}") };
        assert!(reason.starts_with("annotation wasmray.dev/upgrade-options: ") && reason.contains("holdSecond"), "{reason}");
    }

    #[test]
    fn a_wait_past_the_timeout_aborts_naming_what_it_waited_for() {
        let late = an_upgrade().with_pending_ready().with_options(r#"{"timeoutSeconds": 600}"#).at_secs(601);
        assert_eq!(decided(late), Ok(Decision::abort("upgrade timed out after 600s: no Serve applications yet")));
    }

    #[test]
    fn a_wait_at_the_timeout_exactly_still_waits_and_comes_back_just_after_it() {
        let on_time = an_upgrade().with_pending_ready().with_options(r#"{"timeoutSeconds": 600}"#).at_secs(600);
        assert_eq!(decided(on_time), Ok(Decision::wait("no Serve applications yet", 1)));
    }

    #[test]
    fn a_wait_before_the_timeout_keeps_its_own_requeue_when_sooner() {
        let early = an_upgrade().with_pending_ready().with_options(r#"{"timeoutSeconds": 600}"#).at_secs(10);
        assert_eq!(decided(early), Ok(Decision::wait("no Serve applications yet", POLL_MS)));
    }

    #[test]
    fn a_shift_past_the_timeout_aborts_and_a_promote_stands() {
        let late = an_upgrade().with_pending_running().with_options(r#"{"timeoutSeconds": 60}"#).at_secs(61);
        let shift = decide(late.clone().input(), |_| Decision::shift(TrafficShift::traffic(10)));
        assert_eq!(shift, Ok(Decision::abort("upgrade timed out after 60s: traffic still moving (10% on cluster svc-green)")));
        assert_eq!(decided(late), Ok(Decision::promote()));
    }

    #[test]
    fn a_shift_before_the_timeout_comes_back_by_the_deadline() {
        let early = an_upgrade().with_pending_running().with_options(r#"{"timeoutSeconds": 60}"#).at_secs(50);
        let shift = decide(early.input(), |_| Decision::shift(TrafficShift::traffic(10)));
        assert_eq!(shift, Ok(Decision::shift(TrafficShift::traffic(10)).requeue_after_ms(10_001)));
    }

    #[test]
    fn without_a_pending_cluster_there_is_nothing_to_decide() {
        assert_eq!(
            decided(an_upgrade().without_pending()),
            Err(PluginError::Unsupported("no upgrade in progress: no pending cluster".into()))
        );
    }

    #[test]
    fn a_service_that_does_not_parse_is_invalid_input() {
        let mut input = an_upgrade().input();
        input.service = "{".into();
        assert!(matches!(decide(input, blue_green), Err(PluginError::InvalidInput(_))));
    }

    #[test]
    fn a_traffic_time_that_does_not_parse_is_invalid_input_naming_the_field() {
        let mut input = an_upgrade().input();
        input.service = r#"{"status": {"pendingServiceStatus": {"lastTrafficMigratedTime": "yesterday"}}}"#.into();
        let Err(PluginError::InvalidInput(why)) = decide(input, blue_green) else { panic!("expected invalid input") };
        assert!(why.contains("lastTrafficMigratedTime"), "{why}");
    }

    #[test]
    fn serve_statuses_are_spelled_as_ray_serve_spells_them() {
        assert_eq!(ServeStatus::DeployFailed.as_str(), "DEPLOY_FAILED");
        assert_eq!(ServeStatus::NotStarted.as_str(), "NOT_STARTED");
    }
}
