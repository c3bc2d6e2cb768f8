//! Upgrades of running clusters: KubeRay v1.6's `upgradeStrategy: Recreate`, and wasmray's rolling worker-group update.
//!
//! Both compare the hashes the host stamps on every Pod ([`wasmray_api::template_hash`]) with
//! the hashes of the current spec; a Pod without a stamp was made before them and is never
//! recreated for want of one.
//!
//! - **Recreate** (`spec.upgradeStrategy.type: Recreate`): once the head Pod's
//!   `ray.io/upgrade-strategy-recreate-hash` differs from the spec's, every Pod is deleted in one
//!   pass and the next pass creates them anew, as KubeRay does. Workers carry the hash too, so
//!   a worker whose delete failed is replaced once the new head is up.
//! - **RollingUpdate** (annotation `wasmray.dev/upgrade-strategy: RollingUpdate` on the
//!   RayCluster, since KubeRay's CRD has no field for it): a worker group whose template hash
//!   changed is replaced a few Pods at a time, as a Deployment does. `wasmray.dev/max-surge`
//!   Pods may exist beyond the group's desired size, and at most `wasmray.dev/max-unavailable`
//!   below it may be not Ready (each a count or a percentage of the desired size; default 25%,
//!   surge rounded up and unavailable down, and 1 unavailable when both come to 0). The desired
//!   size is the group's `replicas` as the autoscaler or the user left it; it is never written.
//!   Outdated Pods that are not Ready go first. The head is replaced last: only when its own
//!   template changed, and only once no worker group has an outdated Pod. Progress is the
//!   condition `RollingUpdateInProgress` ([`condition`]). Multi-host groups are not rolled.

use wasmray_api::{RayCluster, RayClusterUpgradeType};
use wasmray_guest_sdk::{Condition, ConditionStatus};

use crate::children::RayPod;
use crate::suffixes::stable_hash;
use crate::vocab::conditions;

/// The RayCluster annotation that turns the rolling update on.
pub const STRATEGY_ANNOTATION: &str = "wasmray.dev/upgrade-strategy";
/// Its one value.
pub const ROLLING_UPDATE: &str = "RollingUpdate";
/// Pods a group may run beyond its desired size while it rolls (count or `N%`; default 25%).
pub const MAX_SURGE_ANNOTATION: &str = "wasmray.dev/max-surge";
/// Pods below the desired size that may be not Ready while it rolls (count or `N%`; default 25%).
pub const MAX_UNAVAILABLE_ANNOTATION: &str = "wasmray.dev/max-unavailable";

/// Condition reasons of [`conditions::ROLLING_UPDATE_IN_PROGRESS`].
pub mod reasons {
    /// True: some Pods are on an old template.
    pub const PODS_ON_OLD_TEMPLATE: &str = "PodsOnOldTemplate";
    /// False: every Pod is on its group's current template.
    pub const ALL_PODS_ON_CURRENT_TEMPLATE: &str = "AllPodsOnCurrentTemplate";
}

/// What a template change does to running Pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Nothing: running Pods keep the template they were built from (KubeRay's default).
    None,
    /// KubeRay v1.6's `upgradeStrategy: Recreate`.
    Recreate,
    /// wasmray's rolling update, within this budget.
    Rolling(Budget),
}

/// A count, or a percentage of the group's desired size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

impl Amount {
    fn parse(key: &str, text: &str) -> Result<Self, String> {
        let text = text.trim();
        let parsed = match text.strip_suffix('%') {
            Some(percent) => percent.parse().ok().filter(|p| *p <= 100).map(Amount::Percent),
            None => text.parse().ok().map(Amount::Count),
        };
        parsed.ok_or_else(|| {
            format!("annotation {key}: {text:?} is neither a count of Pods nor a percentage from 0% to 100%")
        })
    }

    fn of(self, want: usize, round_up: bool) -> usize {
        match self {
            Amount::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Amount::Percent(p) => {
                let scaled = want.saturating_mul(usize::try_from(p).unwrap_or(100));
                if round_up { scaled.div_ceil(100) } else { scaled / 100 }
            }
        }
    }
}

/// The rolling update's budget, as given by the annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub max_surge: Amount,
    pub max_unavailable: Amount,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_surge: Amount::Percent(25), max_unavailable: Amount::Percent(25) }
    }
}

impl Budget {
    /// (surge, unavailable) in Pods for a group of `want`: surge rounds up, unavailable down,
    /// and a budget of none at all still lets one Pod be replaced at a time.
    pub fn resolve(&self, want: usize) -> (usize, usize) {
        let surge = self.max_surge.of(want, true);
        let unavailable = self.max_unavailable.of(want, false);
        if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
    }
}

impl Strategy {
    /// The cluster's strategy; a budget or strategy annotation that does not parse, or two
    /// strategies at once, is an invalid spec (named), not a silent default.
    pub fn of(cluster: &RayCluster) -> Result<Self, String> {
        let annotation = |key: &str| cluster.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str);
        let recreate = cluster.spec.upgrade_strategy.as_ref().and_then(|s| s.type_) == Some(RayClusterUpgradeType::Recreate);
        let rolling = match annotation(STRATEGY_ANNOTATION) {
            None => false,
            Some(ROLLING_UPDATE) => true,
            Some(other) => {
                return Err(format!("annotation {STRATEGY_ANNOTATION}: {other:?} is not a strategy; the one value is {ROLLING_UPDATE:?}"));
            }
        };
        match (recreate, rolling) {
            (true, true) => Err(format!(
                "spec.upgradeStrategy.type Recreate and annotation {STRATEGY_ANNOTATION}: {ROLLING_UPDATE} ask for two strategies; keep one"
            )),
            (true, false) => Ok(Strategy::Recreate),
            (false, false) => Ok(Strategy::None),
            (false, true) => {
                let mut budget = Budget::default();
                if let Some(text) = annotation(MAX_SURGE_ANNOTATION) {
                    budget.max_surge = Amount::parse(MAX_SURGE_ANNOTATION, text)?;
                }
                if let Some(text) = annotation(MAX_UNAVAILABLE_ANNOTATION) {
                    budget.max_unavailable = Amount::parse(MAX_UNAVAILABLE_ANNOTATION, text)?;
                }
                Ok(Strategy::Rolling(budget))
            }
        }
    }
}

/// Whether a Pod was built from a spec other than the one of `current` hash. Under the rolling
/// update a Pod without a stamp counts as outdated: replacing it is bounded like any other.
pub fn outdated(pod: &RayPod, current: &str) -> bool {
    pod.template_hash.as_deref() != Some(current)
}

/// One pass of a group's rolling update.
#[derive(Debug)]
pub struct Step<'p> {
    /// New Pods to create, on the current template.
    pub create: usize,
    /// Outdated Pods to delete.
    pub delete: Vec<&'p RayPod>,
}

/// Deployment's arithmetic for one group of `want` Pods: create new Pods while the group has
/// fewer than `want` new ones and fewer than `want + surge` in all; delete outdated Pods while at
/// least `want - unavailable` stay Ready and the Pods that remain cover that floor plus the new
/// ones still coming up. Outdated Pods that are not Ready go first (they cost no readiness),
/// then the rest in an order fixed by name, so two passes that see the same Pods pick the same.
pub fn roll<'p>(want: usize, fresh: &[&'p RayPod], old: &[&'p RayPod], budget: &Budget) -> Step<'p> {
    let (surge, unavailable) = budget.resolve(want);
    let live = fresh.len() + old.len();
    let create = want.saturating_sub(fresh.len()).min((want + surge).saturating_sub(live));
    let floor = want.saturating_sub(unavailable);
    let ready = fresh.iter().chain(old).filter(|p| p.running_and_ready).count();
    let fresh_coming = fresh.iter().filter(|p| !p.running_and_ready).count();
    let mut deletable = live.saturating_sub(floor + fresh_coming);
    let mut ready_room = ready.saturating_sub(floor);
    let mut order: Vec<&'p RayPod> = old.to_vec();
    order.sort_by_key(|p| (p.running_and_ready, stable_hash(&p.name)));
    let mut delete = Vec::new();
    for pod in order {
        if deletable == 0 {
            break;
        }
        if pod.running_and_ready {
            if ready_room == 0 {
                break;
            }
            ready_room -= 1;
        }
        deletable -= 1;
        delete.push(pod);
    }
    Step { create, delete }
}

/// How far one worker group is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub group: String,
    /// Live Pods on the current template.
    pub updated: usize,
    /// Live Pods on an old one.
    pub outdated: usize,
    /// The group's desired size.
    pub want: usize,
}

/// What the rolling update left to do after this pass's decisions, for the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Groups that still have outdated Pods.
    pub groups: Vec<Progress>,
    /// The head Pod is on an old template (it goes once `groups` is empty).
    pub head_outdated: bool,
}

/// `RollingUpdateInProgress` (ours): True with the progress of each group while Pods are on an
/// old template, False once none are; absent without the rolling update (removed if an earlier
/// pass set it).
pub fn condition(strategy: Strategy, rollout: &Rollout, had_condition: bool) -> Option<Condition> {
    if !matches!(strategy, Strategy::Rolling(_)) {
        return had_condition.then(|| Condition::removal(conditions::ROLLING_UPDATE_IN_PROGRESS));
    }
    let mut parts: Vec<String> = rollout
        .groups
        .iter()
        .map(|p| format!("{}/{} workers of group {} on the new template, {} on an old one", p.updated, p.want, p.group, p.outdated))
        .collect();
    if rollout.head_outdated {
        parts.push(if rollout.groups.is_empty() {
            "the head Pod is being replaced with its new template".to_owned()
        } else {
            "the head Pod is replaced once every worker group is on its new template".to_owned()
        });
    }
    Some(if parts.is_empty() {
        Condition::new(
            conditions::ROLLING_UPDATE_IN_PROGRESS,
            ConditionStatus::False,
            reasons::ALL_PODS_ON_CURRENT_TEMPLATE,
            "every Pod is on its group's current template",
        )
    } else {
        Condition::new(conditions::ROLLING_UPDATE_IN_PROGRESS, ConditionStatus::True, reasons::PODS_ON_OLD_TEMPLATE, &parts.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::NodeType;

    fn pod(name: &str, ready: bool) -> RayPod {
        RayPod {
            name: name.into(),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            node_type: NodeType::Worker,
            group: "cpu".into(),
            replica_name: None,
            replica_index: None,
            phase: if ready { "Running" } else { "Pending" }.into(),
            terminating: false,
            running_and_ready: ready,
            ready_condition: None,
            unhealthy: None,
            pod_ip: None,
            first_not_ready: None,
            cause: None,
            template_hash: None,
            recreate_hash: None,
        }
    }

    fn pods(prefix: &str, ready: usize, coming: usize) -> Vec<RayPod> {
        (0..ready).map(|i| pod(&format!("{prefix}-r{i}"), true)).chain((0..coming).map(|i| pod(&format!("{prefix}-c{i}"), false))).collect()
    }

    fn budget(surge: u32, unavailable: u32) -> Budget {
        Budget { max_surge: Amount::Count(surge), max_unavailable: Amount::Count(unavailable) }
    }

    /// Simulates the update of a group of `want` Pods, new Pods turning Ready one pass after
    /// they are created, and returns the fewest Ready Pods seen and the passes it took.
    fn simulate(want: usize, budget: &Budget) -> (usize, usize) {
        let mut old = pods("old", want, 0);
        let mut fresh: Vec<RayPod> = Vec::new();
        let mut fewest = want;
        for pass in 1..=100 {
            if old.is_empty() && fresh.len() == want {
                return (fewest, pass);
            }
            let step = {
                let f: Vec<&RayPod> = fresh.iter().collect();
                let o: Vec<&RayPod> = old.iter().collect();
                let step = roll(want, &f, &o, budget);
                (step.create, step.delete.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
            };
            old.retain(|p| !step.1.contains(&p.name));
            fresh.iter_mut().for_each(|p| p.running_and_ready = true);
            fresh.extend((0..step.0).map(|i| pod(&format!("new-{pass}-{i}"), false)));
            let ready = old.iter().chain(&fresh).filter(|p| p.running_and_ready).count();
            fewest = fewest.min(ready);
        }
        panic!("the update of {want} Pods did not finish in 100 passes");
    }

    #[test]
    fn a_ten_pod_group_never_drops_below_its_floor_and_finishes() {
        for (b, floor) in [(budget(1, 1), 9), (budget(0, 1), 9), (budget(3, 0), 10), (budget(2, 2), 8), (Budget::default(), 8)] {
            let (fewest, passes) = simulate(10, &b);
            assert!(fewest >= floor, "{b:?}: {fewest} Ready at the worst, floor {floor}");
            assert!(passes <= 31, "{b:?}: {passes} passes (one Pod at a time takes 3 passes each)");
        }
    }

    #[test]
    fn the_default_budget_is_a_deployments() {
        assert_eq!(Budget::default().resolve(10), (3, 2));
        assert_eq!(Budget::default().resolve(1), (1, 0));
        assert_eq!(budget(0, 0).resolve(4), (0, 1), "a budget of none still moves one at a time");
    }

    #[test]
    fn surge_comes_first_then_deletes_while_the_floor_holds() {
        let old = pods("old", 10, 0);
        let old: Vec<&RayPod> = old.iter().collect();
        let step = roll(10, &[], &old, &budget(2, 1));
        assert_eq!(step.create, 2);
        assert_eq!(step.delete.len(), 1, "10 Ready, floor 9");
    }

    #[test]
    fn new_pods_on_their_way_up_hold_back_further_deletes() {
        let old = pods("old", 8, 0);
        let fresh = pods("new", 0, 2);
        let (old, fresh): (Vec<&RayPod>, Vec<&RayPod>) = (old.iter().collect(), fresh.iter().collect());
        let step = roll(10, &fresh, &old, &budget(2, 2));
        assert_eq!((step.create, step.delete.len()), (2, 0), "8 Ready is the floor already");
    }

    #[test]
    fn outdated_pods_that_are_not_ready_go_first_and_cost_no_readiness() {
        let old = pods("old", 9, 1);
        let old: Vec<&RayPod> = old.iter().collect();
        let step = roll(10, &[], &old, &budget(0, 1));
        let names: Vec<&str> = step.delete.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["old-c0"], "9 Ready is the floor: only the Pending one goes");
    }

    #[test]
    fn budgets_parse_as_counts_or_percentages_and_bad_ones_are_named() {
        assert_eq!(Amount::parse("k", "3"), Ok(Amount::Count(3)));
        assert_eq!(Amount::parse("k", " 50% "), Ok(Amount::Percent(50)));
        let error = Amount::parse(MAX_SURGE_ANNOTATION, "lots").unwrap_err();
        assert!(error.contains("wasmray.dev/max-surge") && error.contains("\"lots\""), "{error}");
        assert!(Amount::parse("k", "150%").is_err());
    }

    #[test]
    fn the_condition_tells_each_groups_progress_and_the_head_last() {
        let rollout = Rollout { groups: vec![Progress { group: "x".into(), updated: 3, outdated: 8, want: 10 }], head_outdated: true };
        let c = condition(Strategy::Rolling(Budget::default()), &rollout, false).unwrap();
        assert_eq!((c.status, c.reason.as_str()), (ConditionStatus::True, reasons::PODS_ON_OLD_TEMPLATE));
        assert!(c.message.starts_with("3/10 workers of group x on the new template, 8 on an old one; the head Pod is replaced once"), "{}", c.message);
        let done = condition(Strategy::Rolling(Budget::default()), &Rollout::default(), true).unwrap();
        assert_eq!(done.status, ConditionStatus::False);
        assert!(condition(Strategy::None, &Rollout::default(), false).is_none());
        assert!(condition(Strategy::None, &Rollout::default(), true).unwrap().is_removal());
    }
}
