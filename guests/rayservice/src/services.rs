//! The objects that route traffic to the serving cluster, as JSON for a server-side apply: the RayService's head and serve Services, the per-cluster serve Services, the Gateway and HTTPRoute, and the head Pods' `ray.io/serve` label.

use serde_json::{Map, Value, json};
use wasmray_api::{RayClusterSpec, names, ports};

use crate::Ctx;
use crate::children::{gateway_name, route_name};
use crate::vocab::{GATEWAY_API_VERSION, GATEWAY_LISTENER, ORIGINATED_FROM_CRD_VALUE, labels};

/// `<rayservice>-head-svc`.
pub fn head_service_name(service: &str) -> String {
    names::head_service_name(service, None)
}

/// `spec.serveService.metadata.name`, else `<rayservice>-serve-svc`.
pub fn serve_service_name(ctx: &Ctx) -> String {
    match ctx.raw["spec"]["serveService"]["metadata"]["name"].as_str() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => names::serve_service_name(ctx.name),
    }
}

fn origin_labels(ctx: &Ctx) -> Map<String, Value> {
    let mut l = Map::new();
    l.insert(labels::ORIGINATED_FROM_CR_NAME.into(), json!(ctx.name));
    l.insert(labels::ORIGINATED_FROM_CRD.into(), json!(ORIGINATED_FROM_CRD_VALUE));
    l
}

/// The RayService's head Service, KubeRay's head Service of `cluster` renamed: the head
/// container's ports, the cluster's head selector, labelled as the RayService's; headless
/// unless the head group asks for another type.
pub fn head_service(ctx: &Ctx, cluster: &str, spec: &RayClusterSpec) -> Value {
    let selector = json!({
        labels::CLUSTER: cluster,
        labels::NODE_TYPE: "head",
        labels::IDENTIFIER: names::identifier(cluster, "head"),
        labels::APP_NAME: labels::APP_NAME_VALUE,
        labels::CREATED_BY: labels::CREATED_BY_VALUE,
    });
    let mut service_labels = origin_labels(ctx);
    service_labels.insert(labels::NODE_TYPE.into(), json!("head"));
    service_labels.insert(labels::IDENTIFIER.into(), json!(names::identifier(ctx.name, "head")));
    let service_ports: Vec<Value> = ports::head_service_ports(spec)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, port)| json!({ "name": name, "port": port, "appProtocol": "tcp" }))
        .collect();
    let service_type = spec.head_group_spec.service_type.as_deref().filter(|t| !t.is_empty());
    let mut body = json!({ "selector": selector, "ports": service_ports });
    match service_type {
        Some(t) if t != "ClusterIP" => body["type"] = json!(t),
        // One head Pod, and workers must reach it before it is Ready.
        _ => {
            body["clusterIP"] = json!("None");
            body["publishNotReadyAddresses"] = json!(true);
        }
    }
    let mut metadata = json!({ "name": head_service_name(ctx.name), "namespace": ctx.namespace, "labels": service_labels,
                               "ownerReferences": [ctx.owner_reference()] });
    if let Some(a) = spec.head_service_annotations.as_ref().filter(|a| !a.is_empty()) {
        metadata["annotations"] = json!(a);
    }
    json!({ "apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body })
}

/// The serve Service, selecting the Serve-ready Pods of `cluster`: `spec.serveService` as the
/// base (its name, labels, annotations, type and ports kept), else only the head's `serve` port.
pub fn serve_service(ctx: &Ctx, cluster: &str, spec: &RayClusterSpec) -> Value {
    let template = &ctx.raw["spec"]["serveService"];
    let mut service_labels: Map<String, Value> = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    service_labels.extend(origin_labels(ctx));
    service_labels.insert(labels::SERVE.into(), json!(format!("{}-serve", ctx.name)));
    let mut metadata = json!({ "name": serve_service_name(ctx), "namespace": ctx.namespace, "labels": service_labels,
                               "ownerReferences": [ctx.owner_reference()] });
    if let Some(a) = template["metadata"]["annotations"].as_object().filter(|a| !a.is_empty()) {
        metadata["annotations"] = json!(a);
    }
    let mut body = template["spec"].as_object().cloned().unwrap_or_default();
    body.insert("selector".into(), json!({ labels::CLUSTER: cluster, labels::SERVE: "true" }));
    if body.get("ports").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        body.insert("ports".into(), json!([serve_port(spec)]));
    }
    let custom_type = body.get("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
    if let (false, Some(t)) = (custom_type, spec.head_group_spec.service_type.as_deref().filter(|t| !t.is_empty())) {
        body.insert("type".into(), json!(t));
    }
    json!({ "apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body })
}

fn serve_port(spec: &RayClusterSpec) -> Value {
    json!({ "name": "serve", "port": ports::serve_port(spec), "targetPort": ports::serve_port(spec) })
}

/// `<cluster>-serve-svc`, the HTTPRoute's backend for one cluster, owned by that cluster so it
/// goes with it.
pub fn cluster_serve_service(ctx: &Ctx, cluster: &str, uid: &str, spec: &RayClusterSpec) -> Value {
    let mut service_labels = origin_labels(ctx);
    service_labels.insert(labels::SERVE.into(), json!(format!("{cluster}-serve")));
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": names::serve_service_name(cluster), "namespace": ctx.namespace, "labels": service_labels,
            "ownerReferences": [{ "apiVersion": wasmray_api::API_VERSION, "kind": "RayCluster", "name": cluster, "uid": uid,
                                  "controller": true, "blockOwnerDeletion": true }],
        },
        "spec": { "selector": { labels::CLUSTER: cluster, labels::SERVE: "true" }, "ports": [serve_port(spec)] },
    })
}

/// The Gateway `<rayservice>-gateway`: one HTTP listener on port 80.
pub fn gateway(ctx: &Ctx, class: &str) -> Value {
    json!({
        "apiVersion": GATEWAY_API_VERSION, "kind": "Gateway",
        "metadata": { "name": gateway_name(ctx.name), "namespace": ctx.namespace, "labels": origin_labels(ctx),
                      "ownerReferences": [ctx.owner_reference()] },
        "spec": { "gatewayClassName": class, "listeners": [ { "name": GATEWAY_LISTENER, "port": 80, "protocol": "HTTP" } ] },
    })
}

/// The HTTPRoute `<rayservice>-httproute`: everything under `/` to the clusters' serve
/// Services, weighted (a backend of weight 0 is left out).
pub fn route(ctx: &Ctx, backends: &[(&str, i32)], port: i32) -> Value {
    let refs: Vec<Value> = backends
        .iter()
        .filter(|(_, w)| *w > 0)
        .map(|(cluster, weight)| json!({ "name": names::serve_service_name(cluster), "port": port, "weight": weight }))
        .collect();
    json!({
        "apiVersion": GATEWAY_API_VERSION, "kind": "HTTPRoute",
        "metadata": { "name": route_name(ctx.name), "namespace": ctx.namespace, "labels": origin_labels(ctx),
                      "ownerReferences": [ctx.owner_reference()] },
        "spec": {
            "parentRefs": [ { "name": gateway_name(ctx.name), "namespace": ctx.namespace } ],
            "rules": [ { "matches": [ { "path": { "type": "PathPrefix", "value": "/" } } ], "backendRefs": refs } ],
        },
    })
}

/// The Gateway is Accepted and Programmed.
pub fn gateway_ready(gateway: Option<&Value>) -> bool {
    gateway.is_some_and(|g| {
        let c = || crate::children::conditions(g);
        crate::children::is_true(c(), "Accepted") && crate::children::is_true(c(), "Programmed")
    })
}

/// The HTTPRoute's parent status for the RayService's Gateway says Accepted and ResolvedRefs.
pub fn route_ready(ctx: &Ctx, route: Option<&Value>) -> bool {
    let Some(route) = route else { return false };
    let parents = route["status"]["parents"].as_array().into_iter().flatten();
    parents.filter(|p| p["parentRef"]["name"] == gateway_name(ctx.name).as_str()).any(|p| {
        let c = || p["conditions"].as_array().into_iter().flatten();
        crate::children::is_true(c(), "Accepted") && crate::children::is_true(c(), "ResolvedRefs")
    })
}

/// A partial head Pod that sets only its `ray.io/serve` label.
pub fn serve_label(ctx: &Ctx, pod: &str, serving: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": pod, "namespace": ctx.namespace, "labels": { labels::SERVE: if serving { "true" } else { "false" } } },
    })
}
