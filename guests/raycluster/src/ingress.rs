//! The dashboard Ingress of `headGroupSpec.enableIngress`, built here and server-side applied.
//!
//! WIT 0.1's `child` variant has no Ingress and is frozen, so the reconciler builds the object
//! itself and sends it as an `apply`. Server-side apply also gives what KubeRay lacks (it
//! creates the Ingress once and never touches it again): a changed annotation or head Service
//! updates the Ingress, and the host drops the apply when the cached Ingress already holds it.
//!
//! The object is KubeRay's: `<cluster>-head-ingress`, the head Service's labels, every
//! RayCluster annotation but `kubernetes.io/ingress.class` (whose value becomes
//! `ingressClassName`), one rule with path `/<cluster>/(.*)` of type `Exact` to the head
//! Service's dashboard port. With v1.7's `headGroupSpec.ingressOptions` the rule takes its
//! `host`, its `path` (default `/`) and `pathType` (default `Prefix`), and `spec.tls` its `tls`.
//! One deliberate difference: `kubectl`'s
//! `last-applied-configuration` annotation describes the RayCluster, not the Ingress, and is not
//! copied (a `kubectl apply` of the Ingress would otherwise diff against the RayCluster).
//!
//! The host skips an apply whose fields the cached Ingress already has, so an annotation removed
//! from the RayCluster leaves the Ingress at the next apply that changes something (server-side
//! apply then drops the fields the operator no longer sets), not at once.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use wasmray_api::{IngressPathType, RayCluster, names};
use wasmray_guest_sdk::{EventType, ObjectRef};

use crate::vocab::{events, labels};
use crate::{Ctx, Out};

/// The annotation whose value becomes `spec.ingressClassName` instead of being copied.
pub const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Not copied: it is the RayCluster's own `kubectl apply` record.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The path under `ingressOptions` when it names none (KubeRay v1.7's default).
const DEFAULT_OPTIONS_PATH: &str = "/";
/// The dashboard port when the head container names none.
const DEFAULT_DASHBOARD_PORT: i32 = 8265;
pub const API_VERSION: &str = "networking.k8s.io/v1";

/// `<cluster>-head-ingress`.
pub fn name(cluster: &str) -> String {
    format!("{cluster}-head-ingress")
}

/// Applies the Ingress while `enableIngress` is true (`CreatedIngress` the first time,
/// `UpdatedIngress` when the cached one differs; the host drops both when nothing changes);
/// deletes the one this cluster owns once it is turned off. On OpenShift (the operator's
/// settings say so) the dashboard gets KubeRay's Route instead.
pub fn reconcile(ctx: &Ctx, out: &mut Out) {
    if ctx.openshift_route {
        if ctx.cluster.spec.head_group_spec.enable_ingress == Some(true)
            && let Some(route) = route(ctx.cluster, ctx.namespace)
        {
            out.apply(route.to_string());
            let name = route_name(ctx.name);
            out.event(EventType::Normal, events::CREATED_ROUTE, format!("Created route {}/{name}", ctx.namespace));
        }
        return;
    }
    let name = name(ctx.name);
    let existing = ctx.children.ingress(&name);
    if ctx.cluster.spec.head_group_spec.enable_ingress == Some(true) {
        let Some(ingress) = build(ctx.cluster, ctx.namespace) else {
            return;
        };
        out.apply(ingress.to_string());
        let (reason, verb) = match existing {
            None => (events::CREATED_INGRESS, "Created"),
            Some(_) => (events::UPDATED_INGRESS, "Updated"),
        };
        out.event(
            EventType::Normal,
            reason,
            format!("{verb} ingress {}/{name}", ctx.namespace),
        );
        return;
    }
    let uid = ctx.cluster.metadata.uid.as_deref();
    if let Some(ingress) = existing.filter(|i| owned_by(i, uid)) {
        out.delete(ObjectRef {
            api_version: API_VERSION.into(),
            kind: "Ingress".into(),
            namespace: Some(ctx.namespace.to_owned()),
            name: name.clone(),
            uid: ingress["metadata"]["uid"].as_str().map(str::to_owned),
        });
        out.event(
            EventType::Normal,
            events::DELETED_INGRESS,
            format!("Deleted ingress {}/{name}: enableIngress is off", ctx.namespace),
        );
    }
}

/// Whether this cluster (by UID) is the Ingress's controller: an Ingress the user made under the
/// same name is theirs and stays.
fn owned_by(ingress: &Value, uid: Option<&str>) -> bool {
    uid.is_some_and(|uid| {
        ingress["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["uid"] == uid && o["controller"] == true)
    })
}

/// KubeRay's dashboard Ingress for `cluster`, owned by it; `None` without a name or UID (the
/// owner reference needs both; the head Service's render reports that).
pub fn build(cluster: &RayCluster, namespace: &str) -> Option<Value> {
    let name = cluster.metadata.name.as_deref().filter(|n| !n.is_empty())?;
    let uid = cluster.metadata.uid.as_deref().filter(|u| !u.is_empty())?;
    let head = &cluster.spec.head_group_spec;
    let mut annotations: BTreeMap<String, String> =
        cluster.metadata.annotations.clone().unwrap_or_default();
    let class = annotations.remove(INGRESS_CLASS_ANNOTATION);
    annotations.remove(LAST_APPLIED);
    let service = names::head_service_name(name, head.custom_head_service_name());
    let backend = json!({ "service": { "name": service, "port": { "number": dashboard_port(cluster) } } });
    let mut spec = match &head.ingress_options {
        // KubeRay v1.7: a host of its own, and the dashboard at `/` unless a path is given.
        Some(options) => {
            let path_type = options.path_type.unwrap_or(IngressPathType::Prefix);
            let mut rule = json!({ "http": { "paths": [{
                "path": options.path.as_deref().filter(|p| !p.is_empty()).unwrap_or(DEFAULT_OPTIONS_PATH),
                "pathType": path_type.as_str(),
                "backend": backend,
            }] } });
            if let Some(host) = options.host.as_deref().filter(|h| !h.is_empty()) {
                rule["host"] = json!(host);
            }
            let mut spec = json!({ "rules": [rule] });
            if let Some(tls) = options.tls.as_ref().filter(|t| !t.is_empty()) {
                spec["tls"] = serde_json::to_value(tls).unwrap_or(Value::Null);
            }
            spec
        }
        None => json!({
            "rules": [{ "http": { "paths": [{
                "path": format!("/{name}/(.*)"),
                "pathType": "Exact",
                "backend": backend,
            }] } }],
        }),
    };
    if let Some(class) = class.filter(|c| !c.is_empty()) {
        spec["ingressClassName"] = json!(class);
    }
    let mut metadata = json!({
        "name": self::name(name),
        "namespace": namespace,
        "labels": {
            labels::CLUSTER: name,
            labels::IDENTIFIER: names::identifier(name, labels::NodeType::Head.as_str()),
            labels::APP_NAME: labels::APP_NAME_VALUE,
            labels::CREATED_BY: labels::CREATED_BY_VALUE,
        },
        "ownerReferences": [{
            "apiVersion": wasmray_api::API_VERSION,
            "kind": "RayCluster",
            "name": name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    Some(json!({ "apiVersion": API_VERSION, "kind": "Ingress", "metadata": metadata, "spec": spec }))
}

/// `<cluster>-head-route`, KubeRay's name for the dashboard Route.
pub fn route_name(cluster: &str) -> String {
    format!("{cluster}-head-route")
}

/// KubeRay's OpenShift Route to the head Service's `dashboard` port (weight 100, no wildcard),
/// with the RayCluster's annotations and the head Service's labels, owned by the cluster.
pub fn route(cluster: &RayCluster, namespace: &str) -> Option<Value> {
    let mut ingress = build(cluster, namespace)?;
    let name = cluster.metadata.name.as_deref()?;
    let service = names::head_service_name(name, cluster.spec.head_group_spec.custom_head_service_name());
    let mut metadata = ingress["metadata"].take();
    metadata["name"] = json!(route_name(name));
    // A Route has no class to move the ingress-class annotation to: every annotation is copied.
    let mut annotations = cluster.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_APPLIED);
    match metadata.as_object_mut() {
        Some(m) if annotations.is_empty() => {
            m.remove("annotations");
        }
        Some(m) => {
            m.insert("annotations".into(), json!(annotations));
        }
        None => {}
    }
    Some(json!({
        "apiVersion": ROUTE_API_VERSION,
        "kind": "Route",
        "metadata": metadata,
        "spec": {
            "to": { "kind": "Service", "name": service, "weight": 100 },
            "port": { "targetPort": "dashboard" },
            "wildcardPolicy": "None",
        },
    }))
}

/// The OpenShift Route's API.
pub const ROUTE_API_VERSION: &str = "route.openshift.io/v1";

/// The head container's port named `dashboard`, else 8265, as the head Service exposes it.
fn dashboard_port(cluster: &RayCluster) -> i32 {
    cluster
        .spec
        .head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.ports.as_ref())
        .into_iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("dashboard"))
        .map_or(DEFAULT_DASHBOARD_PORT, |p| p.container_port)
}
