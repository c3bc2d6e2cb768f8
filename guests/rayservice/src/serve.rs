//! Ray Serve on one of the RayService's clusters: the deploy request and its answer, the applications' statuses, and whether the cluster is ready to serve.
//!
//! The hash of what was deployed lives in the cluster's status (`serveConfigHash`), and a deploy in
//! flight as `serveConfigRequest`, so a restarted operator neither forgets a config it deployed
//! nor sends one twice while the host is still answering.

use std::collections::BTreeMap;

use serde_json::json;
use wasmray_api::serve::{DASHBOARD_API_VERSION, SERVE_REQUEST_KIND, ServeRequest};
use wasmray_api::{AppStatus, RayClusterSpec, RayClusterStatus, RayServiceStatus, ServeConfigRequest, ServeDeploymentStatus, ports};
use wasmray_guest_sdk::EventType;

use crate::status::{ms, time};
use crate::vocab::{SUBMISSION_ANSWER_TIMEOUT_MS, app_status, events};
use crate::{Ctx, Out};

/// Whether a pass may deploy to a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deploy {
    /// The RayService's config, whenever Serve does not run it.
    Config,
    /// Only a new target capacity, and only while Serve runs the RayService's config already:
    /// the active cluster during a Gateway upgrade, whose config is frozen.
    CapacityOnly,
    Never,
}

/// Which of the RayService's clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Active,
    Pending,
}

/// The status of that cluster in the status being built.
pub fn slot(out: &mut Out, which: Which) -> Option<&mut RayServiceStatus> {
    let next = &mut out.status.next;
    match which {
        Which::Active => next.active_service_status.as_mut(),
        Which::Pending => next.pending_service_status.as_mut(),
    }
}

/// Names a Serve config and target capacity (FNV-1a 64 of both, 16 hex digits).
pub fn config_hash(config: &str, capacity: Option<i32>) -> String {
    let text = format!("{config}\u{0}{}", capacity.map(|c| c.to_string()).unwrap_or_default());
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{hash:016x}")
}

/// The spec of the live cluster `name`, else the RayService's.
pub fn cluster_spec(ctx: &Ctx, name: &str) -> RayClusterSpec {
    ctx.children
        .clusters
        .get(name)
        .and_then(|c| serde_json::from_value(c["spec"].clone()).ok())
        .unwrap_or_else(|| ctx.service.spec.ray_cluster_config.clone())
}

/// Whether the config Serve accepted under `accepted` is `config` (with any target capacity):
/// the status keeps only the hash of config and capacity, and there are 102 capacities.
pub fn runs_config(config: &str, accepted: &str) -> bool {
    std::iter::once(None).chain((0..=100).map(Some)).any(|c| config_hash(config, c) == accepted)
}

/// Copies what the cluster and its Serve report into its status, records the answer to a
/// deploy in flight, and, as `deploy` allows, asks for the RayService's config when Serve does
/// not run it (or lost it: a head restarted without GCS fault tolerance reports no applications).
pub fn reconcile(ctx: &Ctx, out: &mut Out, which: Which, deploy: Deploy) {
    let Some(name) = slot(out, which).and_then(|s| s.ray_cluster_name.clone()) else { return };
    let facts = ctx.facts.of(&name);
    let live_status: Option<RayClusterStatus> =
        ctx.children.clusters.get(&name).and_then(|c| serde_json::from_value(c["status"].clone()).ok());
    let mut told: Vec<(EventType, &str, String)> = Vec::new();
    let Some(st) = slot(out, which) else { return };
    if live_status.is_some() {
        st.ray_cluster_status = live_status;
    }
    if let Some(apps) = facts.applications.as_ref().filter(|a| a.reachable) {
        st.application_statuses = Some(
            apps.applications
                .iter()
                .map(|(app, a)| {
                    let deployments: BTreeMap<String, ServeDeploymentStatus> = a
                        .deployments
                        .iter()
                        .map(|(d, s)| (d.clone(), ServeDeploymentStatus { status: Some(s.status.clone()), message: Some(s.message.clone()).filter(|m| !m.is_empty()) }))
                        .collect();
                    let status = AppStatus {
                        status: Some(a.status.clone()),
                        message: Some(a.message.clone()).filter(|m| !m.is_empty()),
                        serve_deployment_statuses: Some(deployments).filter(|d| !d.is_empty()),
                    };
                    (app.clone(), status)
                })
                .collect(),
        );
    }
    // The answer to the request in flight (an answer observed before it is about an older one).
    if let (Some(request), Some(answer)) = (st.serve_config_request.clone(), facts.submission.as_ref())
        && answer.fact.config_hash == request.config_hash
        && answer.observed_at >= ms(&request.requested_at)
    {
        if answer.fact.submitted {
            st.serve_config_hash = Some(request.config_hash.clone());
            st.serve_config_request = None;
            told.push((EventType::Normal, events::UPDATED_SERVE_APPLICATIONS, format!("Updated serve applications to the RayCluster {}/{name}", ctx.namespace)));
        } else if request.failed != Some(true) {
            let why = answer.fact.message.clone().unwrap_or_else(|| "no reason given".into());
            told.push((EventType::Warning, events::FAILED_SERVE_APPLICATIONS, format!("Failed to update serve applications to the RayCluster {}/{name}: {why}", ctx.namespace)));
            if let Some(r) = st.serve_config_request.as_mut() {
                r.failed = Some(true);
            }
        }
    }
    let config = ctx.service.spec.serve_config_v2.as_deref().unwrap_or_default();
    let allowed = match deploy {
        Deploy::Config => true,
        Deploy::CapacityOnly => st.serve_config_hash.as_deref().is_some_and(|h| runs_config(config, h)),
        Deploy::Never => false,
    };
    let request = if allowed { wanted(ctx, st, &name, facts.applications.as_ref()) } else { None };
    for (type_, reason, message) in told {
        out.event(type_, reason, message);
    }
    if let Some(request) = request {
        let failed_before = slot(out, which)
            .and_then(|s| s.serve_config_request.as_ref())
            .filter(|r| r.config_hash == request.config_hash)
            .and_then(|r| r.failed);
        if let (Some(st), Some(at)) = (slot(out, which), time(ctx.now_ms)) {
            st.serve_config_request = Some(ServeConfigRequest { config_hash: request.config_hash.clone(), requested_at: at, failed: failed_before });
        }
        out.apply(json!({
            "apiVersion": DASHBOARD_API_VERSION,
            "kind": SERVE_REQUEST_KIND,
            "metadata": { "name": name },
            "spec": request,
        }));
    }
}

/// The deploy to ask for now, if any.
fn wanted(ctx: &Ctx, st: &RayServiceStatus, name: &str, apps: Option<&wasmray_api::serve::ServeApplicationsFact>) -> Option<ServeRequest> {
    let config = ctx.service.spec.serve_config_v2.as_deref().filter(|c| !c.trim().is_empty())?;
    if !ctx.children.head_ready(name) {
        return None;
    }
    let hash = config_hash(config, st.target_capacity);
    let lost = apps.is_some_and(|a| a.reachable && a.applications.is_empty());
    if st.serve_config_hash.as_deref() == Some(hash.as_str()) && !lost {
        return None;
    }
    if let Some(r) = st.serve_config_request.as_ref().filter(|r| r.config_hash == hash) {
        let answered = ctx.facts.of(name).submission.is_some_and(|a| a.fact.config_hash == hash && a.observed_at >= ms(&r.requested_at));
        let fresh = ctx.now_ms - ms(&r.requested_at) < SUBMISSION_ANSWER_TIMEOUT_MS;
        if !answered && fresh {
            // Asked already; the host's answer will come as a fact.
            return None;
        }
    }
    let spec = cluster_spec(ctx, name);
    let domain = &ctx.facts.settings.cluster_domain;
    Some(ServeRequest {
        dashboard_url: format!("{}.{}.svc.{domain}:{}", wasmray_api::names::head_service_name(name, None), ctx.namespace, ports::dashboard_port(&spec)),
        ray_cluster_name: name.to_owned(),
        config: config.to_owned(),
        target_capacity: st.target_capacity.and_then(|c| u8::try_from(c.clamp(0, 100)).ok()),
        config_hash: hash,
    })
}

/// Ready to serve: Serve runs the config it was given, with at least one application, all RUNNING.
pub fn ready(st: &RayServiceStatus) -> bool {
    let apps = st.application_statuses.iter().flatten();
    let mut any = false;
    let all_running = apps.map(|(_, a)| a.status.as_deref() == Some(app_status::RUNNING)).inspect(|_| any = true).all(|r| r);
    any && all_running && st.serve_config_hash.is_some()
}

/// Bytes of Serve's message a condition quotes at most: its end, where a traceback names the
/// exception (a condition's message may be 32 KiB, Serve's can be longer).
const MESSAGE_IN_CONDITION_MAX_BYTES: usize = 4096;

/// The first failing application's Serve message: `application <name> is DEPLOY_FAILED: <message>`.
pub fn failing(st: &RayServiceStatus) -> Option<String> {
    let apps = st.application_statuses.iter().flatten();
    let mut failed = apps.filter(|(_, a)| matches!(a.status.as_deref(), Some(app_status::DEPLOY_FAILED | app_status::UNHEALTHY)));
    failed.next().map(|(name, a)| {
        let message = a.message.as_deref().map(str::trim).filter(|m| !m.is_empty()).unwrap_or("no message");
        format!("application {name} is {}: {}", a.status.as_deref().unwrap_or_default(), tail_within(message, MESSAGE_IN_CONDITION_MAX_BYTES))
    })
}

/// The end of `text` in at most `max_bytes`, cut at a char boundary, `…` first when cut.
fn tail_within(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}
