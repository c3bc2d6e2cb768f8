//! Test fixtures that read like sentences: `rayservice().serving(ACTIVE)`, `cluster(PENDING).ready()`,
//! `head(ACTIVE).ready()`, `apps_running(snapshot, ACTIVE)`, and readers that pick a plan apart.

use serde_json::{Value, json};
use wasmray_guest_sdk::{ConditionStatus, Event, Fact, Op, Plan, Snapshot};

/// The snapshot's `now`: 2024-05-01T12:00:00Z.
pub const NOW_MS: i64 = 1_714_564_800_000;
/// The active cluster of the fixtures' RayService.
pub const ACTIVE: &str = "svc-aaaaa";
/// Its pending cluster.
pub const PENDING: &str = "svc-bbbbb";
/// The Serve config of the fixtures' RayService.
pub const SERVE_CONFIG: &str = "applications:\n- name: app\n  import_path: fruit:app\n";

/// `seconds` before [`NOW_MS`], as a status timestamp.
pub fn ago(seconds: i64) -> String {
    wasmray_guest_sdk::k8s::rfc3339(NOW_MS - seconds * 1000)
}

/// The hash the RayService's Serve config (no target capacity) deploys under.
pub fn serve_hash() -> String {
    crate::serve::config_hash(SERVE_CONFIG, None)
}

/// The spec hash of the fixtures' `rayClusterConfig`.
pub fn spec_hash() -> String {
    crate::cluster::spec_hash(&rayservice().0["spec"]["rayClusterConfig"])
}

/// A RayService `svc` in namespace `ns`: one application, a head and a worker group `gpu`.
pub fn rayservice() -> ServiceFx {
    ServiceFx(json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": { "name": "svc", "namespace": "ns", "uid": "uid-svc", "generation": 1,
                      "labels": { "team": "ml" }, "annotations": { "owner": "ml-team" } },
        "spec": {
            "serveConfigV2": SERVE_CONFIG,
            "rayClusterConfig": {
                "rayVersion": "2.52.0",
                "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [
                    { "name": "ray-head", "image": "rayproject/ray:2.52.0",
                      "ports": [ { "name": "dashboard", "containerPort": 8265 }, { "name": "serve", "containerPort": 8000 },
                                 { "name": "gcs-server", "containerPort": 6379 } ] }
                ] } } },
                "workerGroupSpecs": [ { "groupName": "gpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 3, "rayStartParams": {},
                    "template": { "spec": { "containers": [ { "name": "ray-worker", "image": "rayproject/ray:2.52.0" } ] } } } ]
            }
        }
    }))
}

/// A RayService under construction.
pub struct ServiceFx(pub Value);

impl ServiceFx {
    pub fn with_spec(mut self, key: &str, value: Value) -> Self {
        self.0["spec"][key] = value;
        self
    }
    pub fn strategy(self, type_: &str) -> Self {
        let options = self.0["spec"]["upgradeStrategy"]["clusterUpgradeOptions"].clone();
        let mut strategy = json!({ "type": type_ });
        if !options.is_null() {
            strategy["clusterUpgradeOptions"] = options;
        }
        self.with_spec("upgradeStrategy", strategy)
    }
    /// wasmray's Canary through a Gateway of class `istio`.
    pub fn through_a_gateway(self) -> Self {
        self.with_spec("upgradeStrategy", json!({ "type": "Canary", "clusterUpgradeOptions": {
            "stepSizePercent": 10, "intervalSeconds": 30, "gatewayClassName": "istio" } }))
    }
    pub fn upgraded_incrementally(mut self) -> Self {
        self.0["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = json!(true);
        self.with_spec("upgradeStrategy", json!({ "type": "NewClusterWithIncrementalUpgrade", "clusterUpgradeOptions": {
            "maxSurgePercent": 50, "stepSizePercent": 10, "intervalSeconds": 30, "gatewayClassName": "istio" } }))
    }
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }
    pub fn named(mut self, name: &str) -> Self {
        self.0["metadata"]["name"] = json!(name);
        self
    }
    pub fn deleted(mut self) -> Self {
        self.0["metadata"]["deletionTimestamp"] = json!(ago(1));
        self
    }
    /// Edits `spec.rayClusterConfig`.
    pub fn cluster_config(mut self, edit: impl FnOnce(&mut Value)) -> Self {
        edit(&mut self.0["spec"]["rayClusterConfig"]);
        self
    }
    /// A new image for the workers: a change that needs a new cluster.
    pub fn new_image(self) -> Self {
        self.cluster_config(|c| c["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] = json!("rayproject/ray:2.53.0"))
    }
    /// Merges fields into the status.
    pub fn status(mut self, fields: Value) -> Self {
        for (k, v) in fields.as_object().unwrap() {
            self.0["status"][k] = v.clone();
        }
        self
    }
    /// A status condition, set `since` seconds ago.
    pub fn condition(mut self, type_: &str, status: &str, reason: &str, message: &str, since: i64) -> Self {
        let mut conditions: Vec<Value> = self.0["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conditions.retain(|c| c["type"] != type_);
        conditions.push(json!({ "type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": ago(since) }));
        self.0["status"]["conditions"] = json!(conditions);
        self
    }
    /// Initializing, with [`ACTIVE`]'s name as the pending cluster.
    pub fn initializing(self) -> Self {
        self.status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE }, "observedGeneration": 1 }))
            .condition("Ready", "False", "Initializing", "", 30)
            .condition("UpgradeInProgress", "False", "Initializing", "", 30)
    }
    /// Serving from `cluster`, whose Serve runs the config; Ready True.
    pub fn serving(self, cluster: &str) -> Self {
        self.status(json!({
            "activeServiceStatus": { "rayClusterName": cluster, "serveConfigHash": serve_hash(),
                                     "applicationStatuses": { "app": { "status": "RUNNING" } },
                                     "rayClusterStatus": { "state": "ready", "desiredWorkerReplicas": 1 } },
            "numServeEndpoints": 1, "serviceStatus": "Running", "observedGeneration": 1,
        }))
        .condition("Ready", "True", "NonZeroServeEndpoints", "Number of serve endpoints is greater than 0", 600)
        .condition("UpgradeInProgress", "False", "NoPendingCluster", "Active Ray cluster exists and no pending Ray cluster", 600)
    }
    /// Upgrading: [`ACTIVE`] serves, [`PENDING`] is being prepared.
    pub fn upgrading(self) -> Self {
        self.serving(ACTIVE).status(json!({ "pendingServiceStatus": { "rayClusterName": PENDING,
            "rayClusterStatus": { "state": "ready", "desiredWorkerReplicas": 1 } } }))
    }

    /// A snapshot of this RayService with these children.
    pub fn with(self, children: impl IntoIterator<Item = Value>) -> Snapshot {
        Snapshot {
            primary: self.0.to_string(),
            children: children.into_iter().map(|c| c.to_string()).collect(),
            facts: Vec::new(),
            now: NOW_MS,
            seed: 42,
        }
    }
}

/// A fact on a snapshot, observed at `now`.
pub fn with_fact(mut snapshot: Snapshot, key: &str, value: Value) -> Snapshot {
    snapshot.facts.push(Fact { key: key.into(), value: value.to_string(), observed_at: NOW_MS });
    snapshot
}

/// Serve on `cluster` reports these applications (name, status, message).
pub fn apps(snapshot: Snapshot, cluster: &str, applications: &[(&str, &str, &str)]) -> Snapshot {
    let applications: serde_json::Map<String, Value> = applications
        .iter()
        .map(|(n, s, m)| ((*n).to_owned(), json!({ "status": s, "message": m, "deployments": { "Fruit": { "status": "HEALTHY" } } })))
        .collect();
    with_fact(snapshot, &format!("ray.io/serve-applications/{cluster}"), json!({ "cluster": cluster, "reachable": true, "applications": applications }))
}

/// Serve on `cluster` runs the one application.
pub fn apps_running(snapshot: Snapshot, cluster: &str) -> Snapshot {
    apps(snapshot, cluster, &[("app", "RUNNING", "")])
}

/// The head Pod's Serve proxy of `cluster` answers (or not).
pub fn proxy(snapshot: Snapshot, cluster: &str, healthy: bool) -> Snapshot {
    with_fact(snapshot, &format!("ray.io/serve-proxy/{cluster}"), json!({ "cluster": cluster, "pod": format!("{cluster}-head-x1"), "healthy": healthy }))
}

/// The host's answer to a deploy of `hash` on `cluster`.
pub fn submission(snapshot: Snapshot, cluster: &str, hash: &str, submitted: bool, message: Option<&str>) -> Snapshot {
    with_fact(snapshot, &format!("wasmray.dev/serve-submission/{cluster}"),
              json!({ "cluster": cluster, "configHash": hash, "submitted": submitted, "message": message }))
}

/// The upgrade strategy fact.
pub fn strategy_loaded(snapshot: Snapshot, name: &str, loaded: bool) -> Snapshot {
    with_fact(snapshot, "wasmray.dev/upgrade-strategy", json!({ "strategy": name, "loaded": loaded, "version": "v1-abc123" }))
}

/// The strategy's step for [`ACTIVE`] → [`PENDING`], by `NewCluster` version `v1-abc123`.
pub fn step(snapshot: Snapshot, step: Value) -> Snapshot {
    with_fact(snapshot, "wasmray.dev/upgrade-step",
              json!({ "strategy": "NewCluster", "version": "v1-abc123", "active": ACTIVE, "pending": PENDING, "step": step }))
}

/// The operator settings fact.
pub fn settings(snapshot: Snapshot, value: Value) -> Snapshot {
    with_fact(snapshot, "wasmray.dev/operator-settings", value)
}

/// The RayService's RayCluster `name`, built from the fixtures' spec.
pub fn cluster(name: &str) -> ChildFx {
    let spec = rayservice().0["spec"]["rayClusterConfig"].clone();
    ChildFx(json!({ "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": { "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                      "labels": { "ray.io/originated-from-crd": "RayService", "ray.io/originated-from-cr-name": "svc" },
                      "annotations": { "wasmray.dev/cluster-spec-hash": spec_hash(), "ray.io/num-worker-groups": "1" } },
        "spec": spec, "status": { "state": "ready", "desiredWorkerReplicas": 1 } }))
}

/// The head Pod of `cluster`, Running and Ready, labelled out of the serve Service (no proxy
/// answered yet).
pub fn head(cluster: &str) -> ChildFx {
    ChildFx(json!({ "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": format!("{cluster}-head-x1"), "namespace": "ns", "uid": "uid-head",
                      "labels": { "ray.io/cluster": cluster, "ray.io/node-type": "head", "ray.io/serve": "false" } },
        "status": { "phase": "Running", "podIP": "10.0.0.7", "conditions": [ { "type": "Ready", "status": "True" } ] } }))
}

/// A Service `name` of the RayService selecting `cluster`.
pub fn service(name: &str, cluster: &str) -> ChildFx {
    ChildFx(json!({ "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                      "labels": { "ray.io/originated-from-crd": "RayService", "ray.io/originated-from-cr-name": "svc" } },
        "spec": { "selector": { "ray.io/cluster": cluster } } }))
}

/// An EndpointSlice of Service `service` with `ready` ready endpoints and one that is not.
pub fn endpoints(service: &str, ready: usize) -> Value {
    let mut list: Vec<Value> = (0..ready).map(|i| json!({ "addresses": [format!("10.0.1.{i}")], "conditions": { "ready": true } })).collect();
    list.push(json!({ "addresses": ["10.0.2.1"], "conditions": { "ready": false } }));
    json!({ "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": { "name": format!("{service}-abc"), "namespace": "ns", "labels": { "kubernetes.io/service-name": service } },
            "endpoints": list })
}

/// A child under construction.
pub struct ChildFx(pub Value);

impl ChildFx {
    pub fn not_ready(mut self) -> Self {
        self.0["status"] = json!({ "phase": "Running", "conditions": [ { "type": "Ready", "status": "False" } ] });
        self
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["labels"][key] = json!(value);
        self
    }
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }
    /// Built from another `rayClusterConfig` (its hash annotation).
    pub fn built_from(mut self, config: &Value) -> Self {
        self.0["metadata"]["annotations"]["wasmray.dev/cluster-spec-hash"] = json!(crate::cluster::spec_hash(config));
        self.0["spec"] = config.clone();
        self
    }
    /// A status condition of a RayCluster (replacing one of that type).
    pub fn condition(mut self, type_: &str, status: &str, reason: &str, message: &str) -> Self {
        let mut list: Vec<Value> = self.0["status"]["conditions"].as_array().cloned().unwrap_or_default();
        list.retain(|c| c["type"] != type_);
        list.push(json!({ "type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": ago(60) }));
        self.0["status"]["conditions"] = json!(list);
        self
    }
    pub fn terminating(mut self) -> Self {
        self.0["metadata"]["deletionTimestamp"] = json!(ago(1));
        self
    }
    /// Status conditions (type, status) of a Gateway.
    pub fn conditions(mut self, conditions: &[(&str, &str)]) -> Self {
        self.0["status"]["conditions"] = conditions.iter().map(|(t, s)| json!({ "type": t, "status": s })).collect();
        self
    }
}

impl From<ChildFx> for Value {
    fn from(c: ChildFx) -> Value {
        c.0
    }
}

/// A Gateway `svc-gateway` that is Accepted and Programmed.
pub fn gateway_ready() -> Value {
    ChildFx(json!({ "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": { "name": "svc-gateway", "namespace": "ns", "labels": { "ray.io/originated-from-cr-name": "svc" } } }))
    .conditions(&[("Accepted", "True"), ("Programmed", "True")])
    .into()
}

/// The HTTPRoute `svc-httproute` with these weights, accepted by the Gateway.
pub fn route_ready(weights: &[(&str, i32)]) -> Value {
    let refs: Vec<Value> = weights.iter().map(|(c, w)| json!({ "name": format!("{c}-serve-svc"), "port": 8000, "weight": w })).collect();
    json!({ "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": { "name": "svc-httproute", "namespace": "ns", "labels": { "ray.io/originated-from-cr-name": "svc" } },
        "spec": { "rules": [ { "backendRefs": refs } ] },
        "status": { "parents": [ { "parentRef": { "name": "svc-gateway" },
            "conditions": [ { "type": "Accepted", "status": "True" }, { "type": "ResolvedRefs", "status": "True" } ] } ] } })
}

/// The JSON objects the plan applies.
pub fn applies(plan: &Plan) -> Vec<Value> {
    plan.ops.iter().filter_map(|op| if let Op::Apply(j) = op { serde_json::from_str(j).ok() } else { None }).collect()
}

/// `kind/name` of what the plan applies, in order.
pub fn applied(plan: &Plan) -> Vec<String> {
    applies(plan).iter().map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap())).collect()
}

/// The applied object `kind/name`.
pub fn applied_object(plan: &Plan, kind_name: &str) -> Value {
    applies(plan).into_iter().find(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap()) == kind_name)
        .unwrap_or_else(|| panic!("{kind_name} is not applied: {:?}", applied(plan)))
}

/// `kind/name` of what the plan deletes, in order.
pub fn deleted(plan: &Plan) -> Vec<String> {
    plan.ops.iter().filter_map(|op| if let Op::Delete(r) = op { Some(format!("{}/{}", r.kind, r.name)) } else { None }).collect()
}

/// The plan's Events.
pub fn events(plan: &Plan) -> Vec<Event> {
    plan.ops.iter().filter_map(|op| if let Op::Event(e) = op { Some(e.clone()) } else { None }).collect()
}

/// Reasons of the plan's Warning Events, in order.
pub fn warnings(plan: &Plan) -> Vec<String> {
    events(plan).into_iter().filter(|e| e.type_ == wasmray_guest_sdk::EventType::Warning).map(|e| e.reason).collect()
}

/// Reasons of the plan's Events, in order.
pub fn event_reasons(plan: &Plan) -> Vec<String> {
    events(plan).into_iter().map(|e| e.reason).collect()
}

/// The message of the plan's Event `reason`.
pub fn event_message(plan: &Plan, reason: &str) -> String {
    events(plan).into_iter().find(|e| e.reason == reason).map(|e| e.message).unwrap_or_else(|| panic!("no Event {reason}: {:?}", event_reasons(plan)))
}

/// The status fields the plan changes (`{}` when it writes no status).
pub fn changed(plan: &Plan) -> Value {
    plan.ops
        .iter()
        .find_map(|op| if let Op::Status(s) = op { s.fields.as_deref().map(|f| serde_json::from_str(f).unwrap()) } else { None })
        .unwrap_or_else(|| json!({}))
}

/// The condition `type_` the plan sets: (status, reason, message).
pub fn condition(plan: &Plan, type_: &str) -> Option<(String, String, String)> {
    plan.ops.iter().find_map(|op| {
        let Op::Status(s) = op else { return None };
        let c = s.conditions.iter().find(|c| c.type_ == type_)?;
        let status = match c.status {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        };
        Some((status.to_owned(), c.reason.clone(), c.message.clone()))
    })
}

/// (status, reason) of the condition `type_` the plan sets.
pub fn reason(plan: &Plan, type_: &str) -> (String, String) {
    let (s, r, _) = condition(plan, type_).unwrap_or_else(|| panic!("no condition {type_}"));
    (s, r)
}

/// The RayService as the next pass sees it once the host wrote this plan's status (conditions
/// keep their time unless their status changed).
pub fn after(service: ServiceFx, plan: &Plan) -> ServiceFx {
    let mut service = service;
    for (k, v) in changed(plan).as_object().unwrap() {
        if v.is_null() {
            if let Some(status) = service.0["status"].as_object_mut() {
                status.remove(k);
            }
        } else {
            service.0["status"][k] = v.clone();
        }
    }
    for type_ in ["Ready", "UpgradeInProgress", "RollbackInProgress", "Suspending", "Suspended"] {
        if let Some((status, reason, message)) = condition(plan, type_) {
            if reason == wasmray_guest_sdk::REMOVE_CONDITION_REASON {
                let mut list: Vec<Value> = service.0["status"]["conditions"].as_array().cloned().unwrap_or_default();
                list.retain(|c| c["type"] != type_);
                service.0["status"]["conditions"] = json!(list);
                continue;
            }
            let old = service.0["status"]["conditions"].as_array().and_then(|l| l.iter().find(|c| c["type"] == type_).cloned());
            let since = match old {
                Some(o) if o["status"] == status.as_str() => o["lastTransitionTime"].as_str().unwrap_or_default().to_owned(),
                _ => ago(0),
            };
            let mut list: Vec<Value> = service.0["status"]["conditions"].as_array().cloned().unwrap_or_default();
            list.retain(|c| c["type"] != type_);
            list.push(json!({ "type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": since }));
            service.0["status"]["conditions"] = json!(list);
        }
    }
    service
}
