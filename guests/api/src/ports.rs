//! The ports of a Ray head as KubeRay reads them from the head container: its Services' ports, the dashboard's and Serve's.

use std::collections::BTreeMap;

use crate::RayClusterSpec;

/// The ports a Ray head listens on when its container declares none.
pub const DEFAULT_PORTS: [(&str, i32); 5] = [
    ("client", 10001),
    ("gcs-server", 6379),
    ("dashboard", 8265),
    ("metrics", 8080),
    ("serve", 8000),
];
/// The metrics port, in every head Service even when the container names others.
pub const METRICS_PORT: i32 = 8080;
/// The dashboard's port unless the head container names one `dashboard`.
pub const DEFAULT_DASHBOARD_PORT: i32 = 8265;
/// Serve's HTTP port unless the head container names one `serve`.
pub const DEFAULT_SERVE_PORT: i32 = 8000;

/// The head container's ports by name (unnamed ones as `<port>-port`), or [`DEFAULT_PORTS`]
/// when it declares none, with `metrics: 8080` always present; sorted by name. `None` when the
/// head template has no container.
pub fn head_service_ports(spec: &RayClusterSpec) -> Option<BTreeMap<String, i32>> {
    let head = spec.head_group_spec.template.spec.as_ref()?.containers.first()?;
    let mut ports: BTreeMap<String, i32> = head
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let name = p.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| format!("{}-port", p.container_port));
            (name, p.container_port)
        })
        .collect();
    if ports.is_empty() {
        ports = DEFAULT_PORTS.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect();
    }
    ports.entry("metrics".into()).or_insert(METRICS_PORT);
    Some(ports)
}

/// The head container's port named `name`, if it declares one.
pub fn named_port(spec: &RayClusterSpec, name: &str) -> Option<i32> {
    let head = spec.head_group_spec.template.spec.as_ref()?.containers.first()?;
    head.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name)).map(|p| p.container_port)
}

/// The dashboard's port: the head container's `dashboard` port, else 8265.
pub fn dashboard_port(spec: &RayClusterSpec) -> i32 {
    named_port(spec, "dashboard").unwrap_or(DEFAULT_DASHBOARD_PORT)
}

/// Serve's port: the head container's `serve` port, else 8000.
pub fn serve_port(spec: &RayClusterSpec) -> i32 {
    named_port(spec, "serve").unwrap_or(DEFAULT_SERVE_PORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ports: serde_json::Value) -> RayClusterSpec {
        serde_json::from_value(serde_json::json!({
            "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [
                { "name": "ray-head", "image": "ray", "ports": ports } ] } } }
        }))
        .unwrap()
    }

    #[test]
    fn a_head_without_ports_gets_kuberays_defaults() {
        let ports = head_service_ports(&spec(serde_json::json!([]))).unwrap();
        assert_eq!(ports.len(), 5);
        assert_eq!(ports["serve"], 8000);
        assert_eq!(serve_port(&spec(serde_json::json!([]))), 8000);
        assert_eq!(dashboard_port(&spec(serde_json::json!([]))), 8265);
    }

    #[test]
    fn named_ports_replace_the_defaults_and_metrics_is_always_there() {
        let s = spec(serde_json::json!([ { "name": "serve", "containerPort": 9000 }, { "containerPort": 7000 } ]));
        let ports = head_service_ports(&s).unwrap();
        assert_eq!(ports, BTreeMap::from([("serve".into(), 9000), ("7000-port".into(), 7000), ("metrics".into(), 8080)]));
        assert_eq!(serve_port(&s), 9000);
        assert_eq!(dashboard_port(&s), 8265);
    }
}
