//! The non-Pod children a running cluster needs: autoscaler RBAC, the auth Secret and its Services.

use wasmray_api::{AuthMode, RayCluster, names};
use wasmray_guest_sdk::{Child, EventType};

use crate::vocab::{annotations, events};
use crate::{Ctx, Out};

/// Renders every missing companion, in KubeRay's order: autoscaler ServiceAccount, Role and
/// RoleBinding; the dashboard Ingress (applied, see [`crate::ingress`]); auth Secret; head
/// Service; headless worker Service; Serve Service.
pub fn reconcile(ctx: &Ctx, out: &mut Out) {
    let cluster = ctx.cluster;
    if ctx.autoscaling {
        autoscaler_rbac(ctx, out);
    }
    crate::ingress::reconcile(ctx, out);
    let token_auth =
        cluster.spec.auth_options.as_ref().and_then(|a| a.mode) == Some(AuthMode::Token);
    if token_auth && !ctx.children.has("Secret", &names::check_name(ctx.name)) {
        out.render(Child::AuthSecret);
    }
    let custom = cluster.spec.head_group_spec.custom_head_service_name();
    let head = names::head_service_name(ctx.name, custom);
    if !ctx.children.has("Service", &head) {
        out.render(Child::HeadService);
        out.event(
            EventType::Normal,
            events::CREATED_SERVICE,
            format!("Created service {}/{head}", ctx.namespace),
        );
    }
    if multi_host(cluster) {
        let headless = names::headless_service_name(ctx.name);
        if !ctx.children.has("Service", &headless) {
            out.render(Child::HeadlessService);
            out.event(
                EventType::Normal,
                events::CREATED_SERVICE,
                format!("Created service {}/{headless}", ctx.namespace),
            );
        }
    }
    if annotation(cluster, annotations::ENABLE_SERVE_SERVICE) == Some("true") {
        let serve = names::serve_service_name(ctx.name);
        if !ctx.children.has("Service", &serve) {
            out.render(Child::ServeService);
            out.event(
                EventType::Normal,
                events::CREATED_SERVICE,
                format!("Created service {}/{serve}", ctx.namespace),
            );
        }
    }
}

/// One render for the three objects; an Event for each that is missing.
///
/// A ServiceAccount the user named in the head template is theirs to create: it is not among the
/// children, so it is not looked for (the host's builder skips it too).
fn autoscaler_rbac(ctx: &Ctx, out: &mut Out) {
    let head_spec = ctx.cluster.spec.head_group_spec.template.spec.as_ref();
    let user_account = head_spec
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|n| !n.is_empty());
    let missing: Vec<(&str, String)> = [
        (
            "ServiceAccount",
            names::check_name(ctx.name),
            events::CREATED_SERVICE_ACCOUNT,
        ),
        ("Role", ctx.name.to_owned(), events::CREATED_ROLE),
        (
            "RoleBinding",
            ctx.name.to_owned(),
            events::CREATED_ROLE_BINDING,
        ),
    ]
    .into_iter()
    .filter(|(kind, name, _)| {
        (*kind != "ServiceAccount" || user_account.is_none()) && !ctx.children.has(kind, name)
    })
    .map(|(kind, name, reason)| {
        (
            reason,
            format!("Created {} {}/{name}", kind_words(kind), ctx.namespace),
        )
    })
    .collect();
    if missing.is_empty() {
        return;
    }
    out.render(Child::AutoscalerRbac);
    for (reason, message) in missing {
        out.event(EventType::Normal, reason, message);
    }
}

/// KubeRay's `AutoscalerServiceAccountNotFound` Warning: autoscaling is on, the head template
/// names a ServiceAccount, and it does not exist. That account is the user's, not a child, so
/// the reconciler learns of it from the head Pod's create, which the API server's ServiceAccount
/// admission refuses (`serviceaccount "<name>" not found`) and the host reports as the
/// replica-failure fact `failure` (reason, message).
pub fn missing_autoscaler_account(ctx: &Ctx, out: &mut Out, failure: Option<&(String, String)>) {
    let Some((reason, message)) = failure else { return };
    let account = ctx
        .cluster
        .spec
        .head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|n| !n.is_empty());
    let Some(account) = account.filter(|_| ctx.autoscaling) else { return };
    if reason == crate::vocab::reasons::FAILED_CREATE_HEAD_POD && message.contains(&format!("serviceaccount \"{account}\" not found")) {
        out.event(
            EventType::Warning,
            events::AUTOSCALER_SERVICE_ACCOUNT_NOT_FOUND,
            format!(
                "the head group's serviceAccountName {account} does not exist in namespace {}: with enableInTreeAutoscaling the \
                 autoscaler runs under it and the operator creates only the account it names itself; create {account} or remove \
                 serviceAccountName",
                ctx.namespace
            ),
        );
        out.fail(format!("the autoscaler's ServiceAccount {account} does not exist"));
    }
}

fn kind_words(kind: &str) -> &'static str {
    match kind {
        "ServiceAccount" => "service account",
        "Role" => "role",
        _ => "role binding",
    }
}

/// Whether some worker group has more than one host per replica.
pub fn multi_host(cluster: &RayCluster) -> bool {
    cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .any(|g| g.num_of_hosts_or_default() > 1)
}

/// A RayCluster annotation.
pub fn annotation<'a>(cluster: &'a RayCluster, key: &str) -> Option<&'a str> {
    cluster
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}
