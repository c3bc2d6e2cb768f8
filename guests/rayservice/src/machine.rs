//! The RayService's pass: the RayService is classified into one [`State`], and the serving state runs KubeRay's steps in order (clusters, head labels, Serve, promotion or the strategy's step, Services, deletions, conditions).

use serde_json::Value;
use wasmray_api::RayServiceStatus;
use wasmray_api::serve::{NEW_CLUSTER, NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE, NONE, StepFact, UpgradeStepFact};
use wasmray_guest_sdk::{ConditionStatus as C, EventType};

use crate::children::terminating;
use crate::cluster::{self, Drift};
use crate::serve::{self, Deploy, Which};
use crate::services;
use crate::status::{ms, time};
use crate::validate::{Invalid, parse_duration_ms};
use crate::vocab::{DEFAULT_DELETION_DELAY_S, annotations, conditions as cond, events, labels, reasons};
use crate::{Ctx, Out};

/// Where the RayService is, as far as this pass is concerned.
#[derive(Debug, PartialEq)]
pub enum State {
    /// `deletionTimestamp` is set: the clusters and Services go with it (owner references).
    Deleting,
    /// The RayService breaks a validation rule: v1.6's `ValidationFailed`, no clusters.
    Invalid(Invalid),
    /// Ready went `InitializingTimeout`: terminal, only unreferenced clusters are cleaned up.
    TimedOut,
    /// v1.7 `spec.suspend`: delete the clusters and Services, then stay Suspended.
    Suspending,
    /// Everything else.
    Serving,
}

impl State {
    pub fn of(ctx: &Ctx, out: &Out) -> Self {
        if ctx.service.metadata.deletion_timestamp.is_some() {
            return State::Deleting;
        }
        if let Err(invalid) = crate::validate::check(ctx) {
            return State::Invalid(invalid);
        }
        if out.status.had(cond::READY, reasons::INITIALIZING_TIMEOUT, None) {
            return State::TimedOut;
        }
        if ctx.service.spec.suspend == Some(true) {
            return State::Suspending;
        }
        State::Serving
    }
}

/// Plans the pass for the RayService's state.
pub fn run(ctx: &Ctx, out: &mut Out) {
    match State::of(ctx, out) {
        State::Deleting => {}
        State::Invalid((reason, message)) => invalid(ctx, out, reason, message),
        State::TimedOut => delete_unreferenced(ctx, out),
        State::Suspending => suspending(ctx, out),
        State::Serving => serving(ctx, out),
    }
}

fn invalid(ctx: &Ctx, out: &mut Out, reason: &str, message: String) {
    if !out.status.had(cond::READY, reasons::VALIDATION_FAILED, Some(&message)) {
        out.event(EventType::Warning, reason, format!("{}/{}: {message}", ctx.namespace, ctx.name));
    }
    out.status.set(cond::READY, C::False, reasons::VALIDATION_FAILED, message);
    out.status.next.service_status = None;
}

fn serving(ctx: &Ctx, out: &mut Out) {
    if out.status.seen(cond::SUSPENDED).is_some_and(|s| s.status == "True") {
        out.status.set(cond::SUSPENDED, C::False, reasons::RESUMED, "spec.suspend is false again");
    }
    if initializing_timed_out(ctx, out) {
        delete_unreferenced(ctx, out);
        return;
    }
    clusters(ctx, out);
    label_heads(ctx, out);
    let upgrading = out.status.active_name().is_some() && out.status.pending_name().is_some();
    serve::reconcile(ctx, out, Which::Pending, Deploy::Config);
    // The active cluster's config is frozen during an upgrade; only a Gateway upgrade moves its capacity.
    let active = match (upgrading, gateway_class(ctx)) {
        (false, _) => Deploy::Config,
        (true, Some(_)) => Deploy::CapacityOnly,
        (true, None) => Deploy::Never,
    };
    serve::reconcile(ctx, out, Which::Active, active);
    promote_or_step(ctx, out);
    routes(ctx, out);
    delete_unreferenced(ctx, out);
    conditions(ctx, out);
    let steady = out.status.pending_name().is_none()
        && out.status.setting(cond::READY).is_some_and(|c| c.status == C::True)
        && out.status.next.active_service_status.as_ref().is_none_or(|s| s.serve_config_request.is_none());
    if !steady {
        out.poll();
    }
}

// Clusters.

/// The strategy the RayService names, `NewCluster` when unset.
fn strategy<'a>(ctx: &Ctx<'a>) -> &'a str {
    let t = ctx.service.spec.upgrade_strategy.as_ref().and_then(|s| s.type_.as_deref()).filter(|t| !t.is_empty());
    t.unwrap_or(NEW_CLUSTER)
}

/// `clusterUpgradeOptions.gatewayClassName`, when the strategy moves traffic through a Gateway.
fn gateway_class<'a>(ctx: &Ctx<'a>) -> Option<&'a str> {
    let options = ctx.service.spec.upgrade_strategy.as_ref()?.cluster_upgrade_options.as_ref()?;
    Some(options.gateway_class_name.as_str()).filter(|c| !c.is_empty())
}

/// Why a changed cluster spec is not rolled out, if it is not.
enum Gate {
    Go,
    Disabled(String),
    Unknown(String),
    RolledBack,
}

fn gate(ctx: &Ctx, hash: &str, out: &Out) -> Gate {
    if out.status.next.rolled_back_cluster_hash.as_deref() == Some(hash) {
        return Gate::RolledBack;
    }
    let set = ctx.service.spec.upgrade_strategy.as_ref().and_then(|s| s.type_.as_deref()).filter(|t| !t.is_empty());
    match set {
        Some(NONE) => return Gate::Disabled("spec.upgradeStrategy.type is None".into()),
        None if !ctx.facts.settings.enable_zero_downtime => {
            return Gate::Disabled("the operator runs with ENABLE_ZERO_DOWNTIME=false and spec.upgradeStrategy.type is unset".into());
        }
        _ => {}
    }
    match ctx.facts.strategy.as_ref() {
        Some(f) if !f.loaded => Gate::Unknown(format!(
            "The cluster spec changed, but upgrade strategy {:?} is not loaded in this operator; the active cluster keeps serving the old spec until it is",
            strategy(ctx)
        )),
        _ => Gate::Go,
    }
}

fn clusters(ctx: &Ctx, out: &mut Out) {
    let config = &ctx.raw["spec"]["rayClusterConfig"];
    let hash = cluster::spec_hash(config);
    if out.status.next.rolled_back_cluster_hash.as_deref().is_some_and(|h| h != hash) {
        // The spec moved on from the one rolled back.
        out.status.next.rolled_back_cluster_hash = None;
    }
    let active = out.status.active_name().map(str::to_owned);
    let pending = out.status.pending_name().map(str::to_owned);
    match (active, pending) {
        (None, None) => name_pending(ctx, out),
        (active, Some(p)) => match ctx.children.clusters.get(&p) {
            None => create(ctx, out, &p),
            Some(live) => match cluster::drift(live, config) {
                Drift::Same => {}
                Drift::InPlace => update(ctx, out, &p),
                Drift::New if active.is_none() => name_pending(ctx, out),
                Drift::New => match gate(ctx, &hash, out) {
                    Gate::Go => name_pending(ctx, out),
                    // The pending cluster was of an earlier spec: it keeps going, under the strategy.
                    Gate::Disabled(_) | Gate::Unknown(_) | Gate::RolledBack => {}
                },
            },
        },
        (Some(a), None) => match ctx.children.clusters.get(&a) {
            // The active cluster is gone (deleted by hand): a new one takes over.
            None => name_pending(ctx, out),
            Some(live) => match cluster::drift(live, config) {
                Drift::Same => {}
                Drift::InPlace => update(ctx, out, &a),
                Drift::New => match gate(ctx, &hash, out) {
                    Gate::Go => name_pending(ctx, out),
                    Gate::Disabled(why) => {
                        let message = format!("The cluster spec changed, but zero-downtime upgrades are disabled ({why}): the change is not applied");
                        out.status.set(cond::UPGRADE_IN_PROGRESS, C::False, reasons::UPGRADES_DISABLED, message);
                    }
                    Gate::Unknown(message) => {
                        if !out.status.had(cond::UPGRADE_IN_PROGRESS, reasons::UNKNOWN_UPGRADE_STRATEGY, Some(&message)) {
                            out.event(EventType::Warning, events::UNKNOWN_STRATEGY, message.clone());
                        }
                        out.status.set(cond::UPGRADE_IN_PROGRESS, C::False, reasons::UNKNOWN_UPGRADE_STRATEGY, message);
                    }
                    Gate::RolledBack => {
                        let message = match out.status.seen(cond::UPGRADE_IN_PROGRESS) {
                            Some(s) if s.reason == reasons::UPGRADE_ROLLED_BACK => s.message,
                            _ => "The cluster spec is the one last rolled back; change rayClusterConfig to try again".into(),
                        };
                        out.status.set(cond::UPGRADE_IN_PROGRESS, C::False, reasons::UPGRADE_ROLLED_BACK, message);
                    }
                },
            },
        },
    }
}

/// Writes a new pending cluster's name (created on the next pass, once the status holds it, so
/// the host polls its Serve and a restart never makes a second one).
fn name_pending(ctx: &Ctx, out: &mut Out) {
    let taken = |n: &str| ctx.children.clusters.contains_key(n) || out.status.active_name() == Some(n) || out.status.pending_name() == Some(n);
    let name = (0..16)
        .map(|draw| format!("{}-{}", ctx.name, wasmray_api::names::random_suffix(ctx.seed, draw)))
        .find(|n| !taken(n))
        .unwrap_or_else(|| format!("{}-{}", ctx.name, wasmray_api::names::random_suffix(ctx.seed, 16)));
    let first = out.status.active_name().is_none();
    let mut pending = RayServiceStatus { ray_cluster_name: Some(name), ..Default::default() };
    let incremental = strategy(ctx) == NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE;
    if gateway_class(ctx).is_some() || incremental {
        pending.traffic_routed_percent = Some(if first { 100 } else { 0 });
    }
    if incremental {
        // KubeRay: the first cluster takes all the capacity, an upgrade's starts with none. Only
        // the incremental strategy moves capacity: any other starts a new cluster at full
        // capacity (a canary's new cluster must serve the traffic it is given).
        pending.target_capacity = Some(if first { 100 } else { 0 });
    }
    out.status.next.pending_service_status = Some(pending);
}

fn create(ctx: &Ctx, out: &mut Out, name: &str) {
    out.apply(cluster::desired(ctx, name));
    out.event(EventType::Normal, events::CREATED_CLUSTER, format!("Created RayCluster {}/{name}", ctx.namespace));
}

fn update(ctx: &Ctx, out: &mut Out, name: &str) {
    out.apply(cluster::desired(ctx, name));
    out.event(EventType::Normal, events::UPDATED_CLUSTER, format!("Updated RayCluster {}/{name} in place", ctx.namespace));
}

// Head Pods.

/// `ray.io/serve` on the head Pods of the active and pending clusters: `true` while the head's
/// Serve proxy answers (never with `excludeHeadPodFromServeSvc`).
fn label_heads(ctx: &Ctx, out: &mut Out) {
    let exclude = ctx.service.spec.exclude_head_pod_from_serve_svc == Some(true);
    let names: Vec<String> = [out.status.active_name(), out.status.pending_name()].into_iter().flatten().map(str::to_owned).collect();
    for cluster in names {
        let Some(pod) = ctx.children.heads.get(&cluster).filter(|p| !terminating(p)) else { continue };
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let proxy = ctx.facts.of(&cluster).proxy;
        let healthy = proxy.is_some_and(|p| p.healthy && (p.pod.is_empty() || p.pod == pod_name));
        let want = if !exclude && healthy { "true" } else { "false" };
        if pod["metadata"]["labels"][labels::SERVE].as_str() != Some(want) {
            out.apply(services::serve_label(ctx, pod_name, want == "true"));
            let message = format!("Updated the {} label of head Pod {}/{pod_name} to {want:?}", labels::SERVE, ctx.namespace);
            out.event(EventType::Normal, events::UPDATED_SERVE_LABEL, message);
        }
    }
}

// Promotion and the strategy's steps.

fn promote_or_step(ctx: &Ctx, out: &mut Out) {
    let active = out.status.active_name().map(str::to_owned);
    let pending = out.status.pending_name().map(str::to_owned);
    match (active, pending) {
        // No cluster serves yet, so there is no traffic to move: the first ready one takes it.
        (None, Some(_)) if out.status.next.pending_service_status.as_ref().is_some_and(serve::ready) => promote(ctx, out, None),
        (Some(a), Some(p)) => step(ctx, out, &a, &p),
        _ => {}
    }
}

/// `strategy <name> version <v>`, the words every Event about a step carries.
fn by(f: &UpgradeStepFact) -> String {
    format!("upgrade strategy {} version {}", f.strategy, f.version)
}

fn step(ctx: &Ctx, out: &mut Out, active: &str, pending: &str) {
    let fact = ctx.facts.step.as_ref().filter(|f| f.active == active && f.pending == pending);
    // kuberay#4239: a pending cluster that cannot start (no room for its GPUs) is said, not waited on in silence.
    let blocked = ctx.children.waiting_on(pending).map(|why| format!("; the pending cluster cannot start: {why}")).unwrap_or_default();
    let Some(f) = fact else {
        let message = format!("Both clusters exist ({active} active, {pending} pending); waiting for upgrade strategy {} to decide{blocked}", strategy(ctx));
        out.status.set(cond::UPGRADE_IN_PROGRESS, C::True, reasons::BOTH_CLUSTERS_EXIST, message);
        return;
    };
    if let Some(ms) = f.requeue_after_ms {
        out.wake_at(ctx.now_ms, ctx.now_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)));
    }
    let failure = match (&f.error, &f.step) {
        (Some(e), _) => Some(e.clone()),
        (None, None) => Some("it returned no step".into()),
        _ => None,
    };
    if let Some(why) = failure {
        let message = format!("The {} failed: {why}; nothing moves until it decides", by(f));
        if !out.status.had(cond::UPGRADE_IN_PROGRESS, reasons::UPGRADE_STRATEGY_FAILED, Some(&message)) {
            out.event(EventType::Warning, events::STRATEGY_FAILED, message.clone());
        }
        out.status.set(cond::UPGRADE_IN_PROGRESS, C::True, reasons::UPGRADE_STRATEGY_FAILED, message);
        return;
    }
    match f.step.as_ref() {
        Some(StepFact::Wait { reason }) => {
            let message = format!("Both clusters exist ({active} active, {pending} pending); the {} waits: {reason}{blocked}", by(f));
            out.status.set(cond::UPGRADE_IN_PROGRESS, C::True, reasons::BOTH_CLUSTERS_EXIST, message);
        }
        Some(StepFact::Promote) if ctx.children.clusters.contains_key(pending) => promote(ctx, out, Some(f)),
        Some(StepFact::Promote) => {
            let message = format!("The {} promotes, but RayCluster {pending} is not there yet", by(f));
            out.status.set(cond::UPGRADE_IN_PROGRESS, C::True, reasons::BOTH_CLUSTERS_EXIST, message);
        }
        Some(StepFact::Shift { pending_traffic_percent, pending_target_capacity, active_target_capacity }) => {
            shift(ctx, out, f, *pending_traffic_percent, *pending_target_capacity, *active_target_capacity);
        }
        Some(StepFact::Abort { reason }) => roll_back(ctx, out, f, reason),
        None => {}
    }
}

/// The pending cluster becomes the active one; the old active one is left unreferenced (and
/// deleted after the delay).
fn promote(ctx: &Ctx, out: &mut Out, decided: Option<&UpgradeStepFact>) {
    let Some(mut pending) = out.status.next.pending_service_status.take() else { return };
    let new = pending.ray_cluster_name.clone().unwrap_or_default();
    if gateway_class(ctx).is_some() {
        pending.traffic_routed_percent = Some(100);
    }
    let old = out.status.next.active_service_status.replace(pending).and_then(|s| s.ray_cluster_name);
    let message = match (decided, old) {
        (Some(f), Some(old)) => format!("Promoted RayCluster {}/{new} to active, replacing {old}, by the {}", ctx.namespace, by(f)),
        (_, _) => format!("Promoted RayCluster {}/{new} to active: its Serve applications are RUNNING", ctx.namespace),
    };
    out.event(EventType::Normal, events::PROMOTED, message);
}

fn shift(ctx: &Ctx, out: &mut Out, f: &UpgradeStepFact, percent: u8, pending_capacity: Option<u8>, active_capacity: Option<u8>) {
    if gateway_class(ctx).is_none() {
        let message = format!("The {} shifts traffic, but spec.upgradeStrategy.clusterUpgradeOptions.gatewayClassName is not set: traffic moves only through a Gateway", by(f));
        out.status.set(cond::UPGRADE_IN_PROGRESS, C::True, reasons::BOTH_CLUSTERS_EXIST, message);
        return;
    }
    if !services::gateway_ready(ctx.children.gateway.as_ref()) || !services::route_ready(ctx, ctx.children.route.as_ref()) {
        let message = format!("The {} shifts traffic; waiting for Gateway and HTTPRoute to be ready", by(f));
        out.status.set(cond::UPGRADE_IN_PROGRESS, C::True, reasons::BOTH_CLUSTERS_EXIST, message);
        return;
    }
    let pending_percent = i32::from(percent.min(100));
    let now = time(ctx.now_ms);
    let next = &mut out.status.next;
    let (Some(active), Some(pending)) = (next.active_service_status.as_mut(), next.pending_service_status.as_mut()) else { return };
    let before = (active.traffic_routed_percent, pending.traffic_routed_percent, active.target_capacity, pending.target_capacity);
    let moved = pending.traffic_routed_percent.unwrap_or(0) != pending_percent;
    pending.traffic_routed_percent = Some(pending_percent);
    active.traffic_routed_percent = Some(100 - pending_percent);
    if let Some(c) = pending_capacity {
        pending.target_capacity = Some(i32::from(c.min(100)));
    }
    if let Some(c) = active_capacity {
        active.target_capacity = Some(i32::from(c.min(100)));
    }
    if moved {
        active.last_traffic_migrated_time = now.clone();
        pending.last_traffic_migrated_time = now;
    }
    let after = (active.traffic_routed_percent, pending.traffic_routed_percent, active.target_capacity, pending.target_capacity);
    let (a, p) = (active.ray_cluster_name.clone().unwrap_or_default(), pending.ray_cluster_name.clone().unwrap_or_default());
    let message = format!(
        "{pending_percent}% of traffic to pending cluster {p} (target capacity {}), {}% to active cluster {a} (target capacity {}), by the {}",
        after.3.map_or("unset".into(), |c| c.to_string()),
        100 - pending_percent,
        after.2.map_or("unset".into(), |c| c.to_string()),
        by(f)
    );
    if before != after {
        out.event(EventType::Normal, events::SHIFTED, message.clone());
    }
    out.status.set(cond::UPGRADE_IN_PROGRESS, C::True, reasons::BOTH_CLUSTERS_EXIST, message);
}

/// Gives up on the pending cluster: its name is cleared (its cluster is deleted after the
/// delay), traffic goes back to the active one, and its spec is remembered so it is not tried
/// again until `rayClusterConfig` changes.
fn roll_back(ctx: &Ctx, out: &mut Out, f: &UpgradeStepFact, reason: &str) {
    let Some(pending) = out.status.next.pending_service_status.take() else { return };
    let name = pending.ray_cluster_name.unwrap_or_default();
    let hash = ctx.children.clusters.get(&name).and_then(cluster::hash_of).map(str::to_owned);
    out.status.next.rolled_back_cluster_hash = Some(hash.unwrap_or_else(|| cluster::spec_hash(&ctx.raw["spec"]["rayClusterConfig"])));
    if gateway_class(ctx).is_some()
        && let Some(active) = out.status.next.active_service_status.as_mut()
    {
        if active.traffic_routed_percent != Some(100) {
            active.last_traffic_migrated_time = time(ctx.now_ms);
        }
        active.traffic_routed_percent = Some(100);
        active.target_capacity = active.target_capacity.map(|_| 100);
    }
    let message = format!("Rolled back the upgrade to RayCluster {}/{name}: {reason} (by the {})", ctx.namespace, by(f));
    out.event(EventType::Warning, events::ROLLED_BACK, message.clone());
    out.status.set(cond::UPGRADE_IN_PROGRESS, C::False, reasons::UPGRADE_ROLLED_BACK, message);
}

// Services, Gateway, HTTPRoute.

fn routes(ctx: &Ctx, out: &mut Out) {
    let Some(active) = out.status.active_name().map(str::to_owned) else { return };
    let spec = serve::cluster_spec(ctx, &active);
    let head = services::head_service(ctx, &active, &spec);
    let serve_svc = services::serve_service(ctx, &active, &spec);
    for service in [head, serve_svc] {
        let name = service["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let told = match ctx.children.services.get(&name) {
            None => Some((events::CREATED_SERVICE, format!("Created Service {}/{name}", ctx.namespace))),
            Some(live) if live["spec"]["selector"][labels::CLUSTER] != active.as_str() => {
                Some((events::UPDATED_SERVICE, format!("Service {}/{name} now selects RayCluster {active}", ctx.namespace)))
            }
            Some(_) => None,
        };
        out.apply(service);
        if let Some((reason, message)) = told {
            out.event(EventType::Normal, reason, message);
        }
    }
    let Some(class) = gateway_class(ctx) else { return };
    out.apply(services::gateway(ctx, class));
    if ctx.children.gateway.is_none() {
        out.event(EventType::Normal, events::CREATED_GATEWAY, format!("Created Gateway {}/{}", ctx.namespace, crate::children::gateway_name(ctx.name)));
    }
    let pending = out.status.pending_name().map(str::to_owned);
    for cluster in [Some(active.clone()), pending.clone()].into_iter().flatten() {
        let uid = ctx.children.clusters.get(&cluster).and_then(|c| c["metadata"]["uid"].as_str());
        if let Some(uid) = uid {
            out.apply(services::cluster_serve_service(ctx, &cluster, uid, &serve::cluster_spec(ctx, &cluster)));
        }
    }
    let weight = |s: Option<&RayServiceStatus>, default: i32| s.and_then(|s| s.traffic_routed_percent).unwrap_or(default);
    let active_weight = weight(out.status.next.active_service_status.as_ref(), 100);
    let pending_weight = weight(out.status.next.pending_service_status.as_ref(), 0);
    let mut backends = vec![(active.as_str(), active_weight)];
    if let Some(p) = pending.as_deref() {
        backends.push((p, pending_weight));
    }
    let route = services::route(ctx, &backends, wasmray_api::ports::serve_port(&spec));
    let live = ctx.children.route.as_ref();
    let changed = live.is_none_or(|l| l["spec"]["rules"] != route["spec"]["rules"]);
    out.apply(route);
    let route_name = crate::children::route_name(ctx.name);
    match (live, changed) {
        (None, _) => out.event(EventType::Normal, events::CREATED_HTTP_ROUTE, format!("Created HTTPRoute {}/{route_name}", ctx.namespace)),
        (Some(_), true) => out.event(EventType::Normal, events::UPDATED_HTTP_ROUTE, format!("Updated HTTPRoute {}/{route_name}: {active} {active_weight}%{}", ctx.namespace, pending.as_deref().map(|p| format!(", {p} {pending_weight}%")).unwrap_or_default())),
        _ => {}
    }
    // v1.7: a rollback is in progress while the live route still sends traffic elsewhere.
    let elsewhere = live.is_some_and(|l| {
        let rules = l["spec"]["rules"].as_array().into_iter().flatten();
        let refs: Vec<&Value> = rules.flat_map(|r| r["backendRefs"].as_array().into_iter().flatten()).collect();
        let keep: Vec<String> = [Some(active.as_str()), pending.as_deref()].into_iter().flatten().map(wasmray_api::names::serve_service_name).collect();
        refs.iter().any(|b| !keep.iter().any(|k| b["name"] == k.as_str()) && b["weight"].as_i64().unwrap_or(1) > 0)
    });
    let rolled_back = out.status.next.rolled_back_cluster_hash.is_some();
    if elsewhere && rolled_back {
        out.status.set(cond::ROLLBACK_IN_PROGRESS, C::True, reasons::ROLLBACK_IN_PROGRESS, format!("The HTTPRoute still sends traffic to the rolled-back cluster; moving it all to {active}"));
    } else if out.status.seen(cond::ROLLBACK_IN_PROGRESS).is_some() {
        out.status.remove(cond::ROLLBACK_IN_PROGRESS);
    }
}

// Deletion of unreferenced clusters.

/// Each cluster that is neither active nor pending is deleted `rayClusterDeletionDelaySeconds`
/// after it became so; the time is kept in the status, so a restart does not reset it.
fn delete_unreferenced(ctx: &Ctx, out: &mut Out) {
    let referenced: Vec<String> = [out.status.active_name(), out.status.pending_name()].into_iter().flatten().map(str::to_owned).collect();
    let delay_ms = i64::from(ctx.service.spec.ray_cluster_deletion_delay_seconds.map_or(DEFAULT_DELETION_DELAY_S as i32, |d| d.max(0))) * 1000;
    let mut since = out.status.next.unreferenced_clusters.take().unwrap_or_default();
    since.retain(|name, _| ctx.children.clusters.contains_key(name) && !referenced.contains(name));
    for (name, live) in &ctx.children.clusters {
        if referenced.contains(name) {
            continue;
        }
        let Some(now) = time(ctx.now_ms) else { continue };
        let due = ms(since.entry(name.clone()).or_insert(now)) + delay_ms;
        if terminating(live) {
            continue;
        }
        if ctx.now_ms >= due {
            out.delete(ctx.child_ref(live));
            out.event(EventType::Normal, events::DELETED_CLUSTER, format!("Deleted RayCluster {}/{name}, unused for {}s", ctx.namespace, delay_ms / 1000));
        } else {
            out.wake_at(ctx.now_ms, due);
        }
    }
    out.status.next.unreferenced_clusters = Some(since).filter(|s| !s.is_empty());
}

// Timeout, suspend, conditions.

/// `ray.io/initializing-timeout`: Ready still `Initializing` this long after it became so ends
/// the RayService (terminal, as in KubeRay: delete and recreate it).
fn initializing_timed_out(ctx: &Ctx, out: &mut Out) -> bool {
    let Some(text) = ctx.annotation(annotations::INITIALIZING_TIMEOUT) else { return false };
    let Some(timeout) = parse_duration_ms(text) else { return false };
    let Some(ready) = out.status.seen(cond::READY).filter(|r| r.status == "False" && r.reason == reasons::INITIALIZING) else { return false };
    let Some(since) = ready.since_ms else { return false };
    let due = since.saturating_add(timeout);
    if ctx.now_ms < due {
        out.wake_at(ctx.now_ms, due);
        return false;
    }
    out.status.next.active_service_status = None;
    out.status.next.pending_service_status = None;
    let message = format!("The RayService did not become ready within the initializing timeout ({text}); delete and recreate it");
    out.event(EventType::Warning, events::INITIALIZING_TIMEOUT, message.clone());
    out.status.set(cond::READY, C::False, reasons::INITIALIZING_TIMEOUT, message);
    out.status.next.service_status = None;
    true
}

fn suspending(ctx: &Ctx, out: &mut Out) {
    out.status.next.active_service_status = None;
    out.status.next.pending_service_status = None;
    out.status.next.unreferenced_clusters = None;
    out.status.next.num_serve_endpoints = Some(0);
    out.status.next.service_status = None;
    let mut remaining = false;
    for (name, live) in &ctx.children.clusters {
        remaining = true;
        if !terminating(live) {
            out.delete(ctx.child_ref(live));
            out.event(EventType::Normal, events::DELETED_CLUSTER, format!("Deleted RayCluster {}/{name}: the RayService is suspended", ctx.namespace));
        }
    }
    let ours = |o: &Value| o["metadata"]["labels"][labels::ORIGINATED_FROM_CR_NAME] == ctx.name;
    let objects = ctx.children.services.values().chain(ctx.children.gateway.iter()).chain(ctx.children.route.iter());
    for object in objects.filter(|o| ours(o)) {
        remaining = true;
        if !terminating(object) {
            out.delete(ctx.child_ref(object));
        }
    }
    if remaining {
        out.status.set(cond::SUSPENDING, C::True, reasons::SUSPEND_IN_PROGRESS, "Deleting the RayService's clusters and Services");
        out.status.set(cond::READY, C::False, reasons::SUSPEND_IN_PROGRESS, "The RayService is being suspended");
        out.poll();
    } else {
        out.status.remove(cond::SUSPENDING);
        out.status.set(cond::SUSPENDED, C::True, reasons::SUSPEND_COMPLETE, "The RayService's clusters and Services are deleted");
        out.status.set(cond::READY, C::False, reasons::SUSPEND_COMPLETE, "The RayService is suspended");
    }
    out.status.set(cond::UPGRADE_IN_PROGRESS, C::False, reasons::SUSPEND_REQUESTED, "spec.suspend is true");
}

/// The serve endpoints, Ready, `serviceStatus` and UpgradeInProgress from the state the pass ends in.
fn conditions(ctx: &Ctx, out: &mut Out) {
    let active = out.status.active_name().map(str::to_owned);
    let pending = out.status.pending_name().map(str::to_owned);
    let endpoints = match (&active, &pending, gateway_class(ctx)) {
        (Some(a), Some(p), Some(_)) => {
            let of = |c: &str| ctx.children.ready_endpoints(&wasmray_api::names::serve_service_name(c));
            of(a) + of(p)
        }
        (Some(_), _, _) => ctx.children.ready_endpoints(&services::serve_service_name(ctx)),
        _ => 0,
    };
    out.status.next.num_serve_endpoints = Some(endpoints);
    let was_ready = out.status.seen(cond::READY).is_some_and(|r| r.status == "True" || r.reason == reasons::ZERO_SERVE_ENDPOINTS);
    let failing = [out.status.next.active_service_status.as_ref(), out.status.next.pending_service_status.as_ref()]
        .into_iter()
        .flatten()
        .find_map(serve::failing);
    if endpoints > 0 {
        out.status.set(cond::READY, C::True, reasons::NON_ZERO_SERVE_ENDPOINTS, "Number of serve endpoints is greater than 0");
    } else if was_ready {
        let message = match failing {
            Some(f) => format!("No ready serve endpoints: {f}"),
            None => "No ready serve endpoints".into(),
        };
        out.status.set(cond::READY, C::False, reasons::ZERO_SERVE_ENDPOINTS, message);
    } else {
        let message = why_not_ready(ctx, out, failing);
        out.status.set(cond::READY, C::False, reasons::INITIALIZING, message);
    }
    let ready = endpoints > 0;
    out.status.next.service_status = ready.then(|| "Running".to_owned());
    if out.status.setting(cond::UPGRADE_IN_PROGRESS).is_none() {
        match (&active, &pending) {
            (Some(a), Some(p)) => out.status.set(cond::UPGRADE_IN_PROGRESS, C::True, reasons::BOTH_CLUSTERS_EXIST, format!("Both clusters exist ({a} active, {p} pending)")),
            (Some(_), None) => out.status.set(cond::UPGRADE_IN_PROGRESS, C::False, reasons::NO_PENDING_CLUSTER, "Active Ray cluster exists and no pending Ray cluster"),
            (None, _) => out.status.set(cond::UPGRADE_IN_PROGRESS, C::False, reasons::INITIALIZING, "No active cluster yet"),
        }
    }
}

/// What the first cluster still waits for, in words (kuberay#3467, #5088: readiness is opaque).
fn why_not_ready(ctx: &Ctx, out: &Out, failing: Option<String>) -> String {
    if let Some(f) = failing {
        return format!("Serve is not ready: {f}");
    }
    let Some(cluster) = out.status.pending_name().or(out.status.active_name()) else { return "Initializing".into() };
    if !ctx.children.clusters.contains_key(cluster) {
        return format!("Creating RayCluster {cluster}");
    }
    if !ctx.children.head_ready(cluster) {
        return match ctx.children.waiting_on(cluster) {
            Some(why) => format!("Waiting for the head Pod of RayCluster {cluster} to be Ready: {why}"),
            None => format!("Waiting for the head Pod of RayCluster {cluster} to be Ready"),
        };
    }
    let st = [out.status.next.pending_service_status.as_ref(), out.status.next.active_service_status.as_ref()]
        .into_iter()
        .flatten()
        .find(|s| s.ray_cluster_name.as_deref() == Some(cluster));
    let apps: Vec<String> = st
        .and_then(|s| s.application_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|(_, a)| a.status.as_deref() != Some(crate::vocab::app_status::RUNNING))
        .map(|(n, a)| format!("{n} {}", a.status.as_deref().unwrap_or("unknown")))
        .collect();
    if st.is_some_and(|s| s.serve_config_hash.is_none()) {
        return format!("Deploying the Serve config to RayCluster {cluster}");
    }
    if !apps.is_empty() {
        return format!("Waiting for Serve applications on RayCluster {cluster} to be RUNNING: {}", apps.join(", "));
    }
    format!("Waiting for ready serve endpoints of RayCluster {cluster}")
}
