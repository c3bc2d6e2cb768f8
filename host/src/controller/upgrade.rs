//! Consulting a primary's upgrade strategy before its reconcile: the plugin the primary names is looked up in the registry (so a version swapped in a moment ago decides the very next step), called with what it decides from, and its answer handed to the reconciler as facts.
//!
//! The reconciler is the only one that turns a step into writes; this module never writes.
//! Facts (shapes in [`wasmray_api::serve`]): [`UPGRADE_STRATEGY_FACT`] on every reconcile —
//! whether the named plugin is loaded, and which version — and, while an upgrade runs,
//! [`UPGRADE_STEP_FACT`] with the decision or the reason there is none (the call trapped, timed
//! out, or the plugin is of another kind).

use std::time::Instant;

use wasmray_api::serve::{StepFact, UPGRADE_STEP_FACT, UPGRADE_STRATEGY_FACT, UpgradeStepFact, UpgradeStrategyFact};

use crate::controller::metrics::Metrics;
use crate::plugin::registry::Registry;
use crate::runtime::{Decision, Fact, PluginKind, RuntimeError, Step, UpgradeInput};

/// Characters of a version digest shown in facts and Events.
const SHORT_DIGEST: usize = 12;

/// The facts for one reconcile: whether `strategy` is loaded and, given `input` (an upgrade
/// runs), what it decides.
pub async fn consult(registry: &Registry, metrics: &Metrics, strategy: &str, input: Option<UpgradeInput>, now: i64) -> Vec<Fact> {
    let plugin = registry.get(strategy).filter(|p| p.info().kind == PluginKind::UpgradeStrategy);
    let version = plugin.as_ref().map(|p| short(&p.id().digest));
    let loaded = UpgradeStrategyFact { strategy: strategy.to_string(), loaded: plugin.is_some(), version: version.clone() };
    let mut facts = vec![fact(UPGRADE_STRATEGY_FACT, &loaded, now)];
    let (Some(plugin), Some(input)) = (plugin, input) else { return facts };
    let names = |state: &Option<crate::runtime::ClusterState>| state.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    let (active, pending) = (names(&input.active), names(&input.pending));
    let started = Instant::now();
    let result = plugin.next_step(input).await;
    metrics.plugin_call(strategy, "next_step", result.as_ref().err().map_or("ok", RuntimeError::label), started);
    let step = step_fact(strategy.to_string(), version.unwrap_or_default(), active, pending, result);
    facts.push(fact(UPGRADE_STEP_FACT, &step, now));
    facts
}

/// The decision (or the failure) as the reconciler reads it.
pub fn step_fact(strategy: String, version: String, active: String, pending: String, result: Result<Decision, RuntimeError>) -> UpgradeStepFact {
    let mut fact = UpgradeStepFact { strategy, version, active, pending, step: None, requeue_after_ms: None, error: None };
    match result {
        Ok(decision) => {
            fact.requeue_after_ms = decision.requeue_after_ms;
            fact.step = Some(match decision.step {
                Step::Wait(reason) => StepFact::Wait { reason },
                Step::Shift(shift) => StepFact::Shift {
                    pending_traffic_percent: shift.pending_traffic_percent,
                    pending_target_capacity: shift.pending_target_capacity,
                    active_target_capacity: shift.active_target_capacity,
                },
                Step::Promote => StepFact::Promote,
                Step::Abort(reason) => StepFact::Abort { reason },
            });
        }
        Err(error) => fact.error = Some(error.to_string()),
    }
    fact
}

fn short(digest: &str) -> String {
    digest.chars().take(SHORT_DIGEST).collect()
}

fn fact<T: serde::Serialize>(key: &str, value: &T, now: i64) -> Fact {
    Fact { key: key.into(), value: serde_json::to_string(value).unwrap_or_default(), observed_at: now }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::TrafficShift;

    fn decided(step: Step) -> UpgradeStepFact {
        step_fact("Canary".into(), "0123456789ab".into(), "svc-a".into(), "svc-b".into(), Ok(Decision { step, requeue_after_ms: Some(3_000) }))
    }

    #[test]
    fn each_step_reaches_the_reconciler_with_the_version_that_decided_it() {
        let shift = decided(Step::Shift(TrafficShift { pending_traffic_percent: 20, pending_target_capacity: None, active_target_capacity: None }));
        assert_eq!(shift.step, Some(StepFact::Shift { pending_traffic_percent: 20, pending_target_capacity: None, active_target_capacity: None }));
        assert_eq!((shift.version.as_str(), shift.requeue_after_ms), ("0123456789ab", Some(3_000)));
        assert_eq!(decided(Step::Abort("application text is UNHEALTHY".into())).step, Some(StepFact::Abort { reason: "application text is UNHEALTHY".into() }));
        assert_eq!(decided(Step::Promote).step, Some(StepFact::Promote));
    }

    #[test]
    fn a_failed_call_is_a_fact_with_the_error_and_no_step() {
        let error = RuntimeError::MalformedOutput { plugin: crate::runtime::PluginId { name: "Canary".into(), digest: "ab".into() }, reason: "traffic above 100".into() };
        let fact = step_fact("Canary".into(), "ab".into(), "a".into(), "b".into(), Err(error));
        assert!(fact.step.is_none());
        assert!(fact.error.as_deref().is_some_and(|e| e.contains("traffic above 100")), "{fact:?}");
    }
}
