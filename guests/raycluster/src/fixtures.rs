//! Test fixtures that read like sentences: `cluster().with_workers("gpu", 3).suspended()`,
//! `head("rc-head-aaaaa").running_ready()`, and readers that pick a plan apart.

use serde_json::{Value, json};
use wasmray_api::field_mask::{ChildMask, FieldMask};
use wasmray_guest_sdk::{
    Child, Condition, ConditionStatus, Event, EventType, Fact, Op, Plan, Snapshot,
};

/// The snapshot as the host sends it to this reconciler: each child reduced to the fields the
/// reconciler declares (`child_fields`), by the host's own projection.
pub fn masked(snapshot: &Snapshot) -> Snapshot {
    let declared = crate::children::child_fields()
        .into_iter()
        .map(|m| FieldMask { api_version: m.api_version, kind: m.kind, paths: m.paths })
        .collect();
    let mask = ChildMask::new(declared).expect("the declared child fields are a valid mask");
    let children = snapshot
        .children
        .iter()
        .map(|child| match serde_json::from_str::<Value>(child) {
            Ok(value) => mask.project(&value).to_string(),
            // The host only ever holds children that parse; keep a broken fixture as it is.
            Err(_) => child.clone(),
        })
        .collect();
    Snapshot { children, ..snapshot.clone() }
}

/// The snapshot's `now`: 2024-05-01T12:00:00Z.
pub const NOW_MS: i64 = 1_714_564_800_000;

/// A RayCluster `rc` in namespace `ns`: a head of 1 CPU / 2Gi requested, no workers.
pub fn cluster() -> ClusterFx {
    ClusterFx(json!({
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": { "name": "rc", "namespace": "ns", "uid": "uid-rc", "generation": 1 },
        "spec": {
            "rayVersion": "2.52.0",
            "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [
                { "name": "ray-head", "image": "rayproject/ray:2.52.0",
                  "resources": { "requests": { "cpu": "1", "memory": "2Gi" } } }
            ] } } },
            "workerGroupSpecs": []
        }
    }))
}

/// A RayCluster under construction.
#[derive(Clone)]
pub struct ClusterFx(pub Value);

impl ClusterFx {
    fn group(&mut self, name: &str) -> &mut Value {
        let groups = self.0["spec"]["workerGroupSpecs"].as_array_mut().unwrap();
        groups
            .iter_mut()
            .find(|g| g["groupName"] == name)
            .expect("no such group")
    }

    /// Adds a worker group of `replicas` (min 0, max 10), each worker 1 CPU / 1Gi requested.
    pub fn with_workers(mut self, group: &str, replicas: i32) -> Self {
        self.0["spec"]["workerGroupSpecs"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "groupName": group, "replicas": replicas, "minReplicas": 0, "maxReplicas": 10,
                "rayStartParams": {},
                "template": { "spec": { "containers": [
                    { "name": "ray-worker", "image": "rayproject/ray:2.52.0",
                      "resources": { "requests": { "cpu": "1", "memory": "1Gi" } } }
                ] } }
            }));
        self
    }
    pub fn min_max(mut self, group: &str, min: i32, max: i32) -> Self {
        let g = self.group(group);
        g["minReplicas"] = json!(min);
        g["maxReplicas"] = json!(max);
        self
    }
    pub fn hosts(mut self, group: &str, hosts: i32) -> Self {
        self.group(group)["numOfHosts"] = json!(hosts);
        self
    }
    pub fn workers_to_delete(mut self, group: &str, names: &[&str]) -> Self {
        self.group(group)["scaleStrategy"] = json!({ "workersToDelete": names });
        self
    }
    pub fn group_suspended(mut self, group: &str) -> Self {
        self.group(group)["suspend"] = json!(true);
        self
    }
    /// Replaces the group's worker resources with limits only, no requests.
    pub fn limits_only(mut self, group: &str, cpu: &str, memory: &str, gpu: &str) -> Self {
        self.group(group)["template"]["spec"]["containers"][0]["resources"] =
            json!({ "limits": { "cpu": cpu, "memory": memory, "nvidia.com/gpu": gpu } });
        self
    }
    /// The image of the group's Ray container.
    pub fn worker_image(mut self, group: &str, image: &str) -> Self {
        self.group(group)["template"]["spec"]["containers"][0]["image"] = json!(image);
        self
    }
    /// The image of the head's Ray container.
    pub fn head_image(mut self, image: &str) -> Self {
        self.0["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        self
    }
    /// `spec.upgradeStrategy.type: Recreate`.
    pub fn recreate(mut self) -> Self {
        self.0["spec"]["upgradeStrategy"] = json!({ "type": "Recreate" });
        self
    }
    /// The rolling update with this surge and unavailable budget.
    pub fn rolling(self, max_surge: &str, max_unavailable: &str) -> Self {
        self.annotated(crate::upgrade::STRATEGY_ANNOTATION, crate::upgrade::ROLLING_UPDATE)
            .annotated(crate::upgrade::MAX_SURGE_ANNOTATION, max_surge)
            .annotated(crate::upgrade::MAX_UNAVAILABLE_ANNOTATION, max_unavailable)
    }
    pub fn autoscaling(mut self) -> Self {
        self.0["spec"]["enableInTreeAutoscaling"] = json!(true);
        self
    }
    pub fn suspended(mut self) -> Self {
        self.0["spec"]["suspend"] = json!(true);
        self
    }
    pub fn unsuspended(mut self) -> Self {
        self.0["spec"]["suspend"] = json!(false);
        self
    }
    pub fn token_auth(mut self) -> Self {
        self.0["spec"]["authOptions"] = json!({ "mode": "token" });
        self
    }
    pub fn managed_by(mut self, manager: &str) -> Self {
        self.0["spec"]["managedBy"] = json!(manager);
        self
    }
    pub fn annotated(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }
    pub fn labelled(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["labels"][key] = json!(value);
        self
    }
    pub fn gcs_ft(mut self) -> Self {
        self.0["spec"]["gcsFaultToleranceOptions"] = json!({ "redisAddress": "redis:6379" });
        self
    }
    pub fn with_finalizer(mut self) -> Self {
        self.0["metadata"]["finalizers"] = json!(["ray.io/gcs-ft-redis-cleanup-finalizer"]);
        self
    }
    /// `deletionTimestamp` `seconds_ago` before [`NOW_MS`].
    pub fn deleted_ago(mut self, seconds_ago: i64) -> Self {
        self.0["metadata"]["deletionTimestamp"] =
            json!(wasmray_guest_sdk::k8s::rfc3339(NOW_MS - seconds_ago * 1000));
        self
    }
    /// A status condition.
    pub fn condition(mut self, type_: &str, status: &str) -> Self {
        let conditions = self.0["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conditions: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c["type"] != type_)
            .collect();
        conditions.push(
            json!({ "type": type_, "status": status, "reason": type_, "message": "",
                                "lastTransitionTime": "2024-05-01T11:00:00Z" }),
        );
        self.0["status"]["conditions"] = json!(conditions);
        self
    }
    /// Merges fields into the status.
    pub fn status(mut self, fields: Value) -> Self {
        for (k, v) in fields.as_object().unwrap() {
            self.0["status"][k] = v.clone();
        }
        self
    }
    pub fn raw(mut self, edit: impl FnOnce(&mut Value)) -> Self {
        edit(&mut self.0);
        self
    }

    /// A snapshot of this cluster with these children.
    pub fn with(self, children: impl IntoIterator<Item = Value>) -> Snapshot {
        Snapshot {
            primary: self.0.to_string(),
            children: children.into_iter().map(|c| c.to_string()).collect(),
            facts: Vec::new(),
            now: NOW_MS,
            seed: 42,
        }
    }
    /// A snapshot of this cluster with its head Service and these Pods.
    pub fn with_pods(self, pods: impl IntoIterator<Item = PodFx>) -> Snapshot {
        let children = std::iter::once(head_service()).chain(pods.into_iter().map(|p| p.0));
        self.with(children)
    }
}

/// A fact on a snapshot.
pub fn with_fact(mut snapshot: Snapshot, key: &str, value: Value) -> Snapshot {
    snapshot.facts.push(Fact {
        key: key.into(),
        value: value.to_string(),
        observed_at: NOW_MS,
    });
    snapshot
}

/// The head Service `rc-head-svc`, headless, with the default ports.
pub fn head_service() -> Value {
    service(
        "rc-head-svc",
        "None",
        json!([
            { "name": "client", "port": 10001, "targetPort": 10001 },
            { "name": "dashboard", "port": 8265, "targetPort": 8265 },
            { "name": "gcs-server", "port": 6379, "targetPort": 6379 },
        ]),
    )
}

pub fn service(name: &str, cluster_ip: &str, ports: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "namespace": "ns", "labels": { "ray.io/cluster": "rc" } },
            "spec": { "clusterIP": cluster_ip, "ports": ports } })
}

/// Any other child, by kind and name.
pub fn object(api_version: &str, kind: &str, name: &str) -> Value {
    json!({ "apiVersion": api_version, "kind": kind, "metadata": { "name": name, "namespace": "ns" } })
}

/// The Redis cleanup Job with a condition (`Complete`, `Failed`) or none.
pub fn cleanup_job(condition: Option<&str>) -> Value {
    let conditions: Vec<Value> = condition
        .map(|c| json!({ "type": c, "status": "True" }))
        .into_iter()
        .collect();
    json!({ "apiVersion": "batch/v1", "kind": "Job",
            "metadata": { "name": "rc-redis-cleanup", "namespace": "ns", "labels": { "ray.io/node-type": "redis-cleanup" } },
            "status": { "conditions": conditions } })
}

/// A head Pod, Pending until told otherwise.
pub fn head(name: &str) -> PodFx {
    PodFx::new(name, "head", "headgroup")
}

/// A worker Pod of `group`, Pending until told otherwise.
pub fn worker(group: &str, name: &str) -> PodFx {
    PodFx::new(name, "worker", group)
}

/// `n` Running and Ready workers of `group`, named `rc-<group>-worker-w<i>`.
pub fn ready_workers(group: &str, n: usize) -> Vec<PodFx> {
    (0..n)
        .map(|i| worker(group, &format!("rc-{group}-worker-w{i}")).running_ready())
        .collect()
}

/// A Pod under construction.
pub struct PodFx(pub Value);

impl PodFx {
    fn new(name: &str, node_type: &str, group: &str) -> Self {
        PodFx(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                          "labels": { "ray.io/cluster": "rc", "ray.io/node-type": node_type, "ray.io/group": group } },
            "spec": { "containers": [ { "name": "ray" } ] },
            "status": { "phase": "Pending" }
        }))
    }
    pub fn running_ready(mut self) -> Self {
        self.0["status"] = json!({ "phase": "Running", "podIP": "10.0.0.1",
            "conditions": [ { "type": "Ready", "status": "True" } ],
            "containerStatuses": [ { "name": "ray", "ready": true, "state": { "running": {} } } ] });
        self
    }
    pub fn running_not_ready(mut self) -> Self {
        self.0["status"] = json!({ "phase": "Running", "podIP": "10.0.0.1",
            "conditions": [ { "type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [ray]" } ],
            "containerStatuses": [ { "name": "ray", "ready": false, "state": { "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image" } } } ] });
        self
    }
    /// Pending, refused by the scheduler with `message` (no `Ready` condition, as such a Pod has).
    pub fn unschedulable(mut self, message: &str) -> Self {
        self.0["status"] = json!({ "phase": "Pending",
            "conditions": [ { "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message } ] });
        self
    }
    /// Scheduled, the Ray container waiting with `reason` and `message`.
    pub fn waiting(mut self, reason: &str, message: &str) -> Self {
        self.0["status"] = json!({ "phase": "Pending",
            "conditions": [ { "type": "PodScheduled", "status": "True" },
                            { "type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [ray]" } ],
            "containerStatuses": [ { "name": "ray", "ready": false, "state": { "waiting": { "reason": reason, "message": message } } } ] });
        self
    }
    /// Scheduled, the init container `init` waiting with `reason` and `message`, the Ray
    /// container waiting for it.
    pub fn init_waiting(mut self, init: &str, reason: &str, message: &str) -> Self {
        self.0["status"] = json!({ "phase": "Pending",
            "conditions": [ { "type": "PodScheduled", "status": "True" },
                            { "type": "Initialized", "status": "False", "reason": "ContainersNotInitialized" },
                            { "type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [ray]" } ],
            "initContainerStatuses": [ { "name": init, "ready": false, "state": { "waiting": { "reason": reason, "message": message } } } ],
            "containerStatuses": [ { "name": "ray", "ready": false, "state": { "waiting": { "reason": "PodInitializing" } } } ] });
        self
    }
    /// Phase Failed, as an evicted Pod is.
    pub fn failed(mut self) -> Self {
        self.0["status"] = json!({ "phase": "Failed", "reason": "Evicted" });
        self
    }
    /// Running, but the Ray container has terminated; with `restartPolicy` as given.
    pub fn ray_container_exited(mut self, restart_policy: &str) -> Self {
        self.0["spec"]["restartPolicy"] = json!(restart_policy);
        self.0["status"] = json!({ "phase": "Running",
            "containerStatuses": [ { "name": "ray", "ready": false, "state": { "terminated": { "exitCode": 1 } } } ] });
        self
    }
    /// Stamped as the host stamps a Pod it builds from `cluster`'s spec as it is now.
    pub fn built_from(mut self, cluster: &ClusterFx) -> Self {
        use wasmray_api::template_hash;
        let rc: wasmray_api::RayCluster = serde_json::from_value(cluster.0.clone()).unwrap();
        let labels = &self.0["metadata"]["labels"];
        let group = (labels["ray.io/node-type"] == "worker").then(|| labels["ray.io/group"].as_str().unwrap().to_owned());
        let template = template_hash::group_hash(&rc.spec, group.as_deref()).expect("no such group");
        self.0["metadata"]["annotations"] = json!({
            template_hash::RECREATE_HASH_ANNOTATION: template_hash::recreate_hash(&rc.spec),
            template_hash::TEMPLATE_HASH_ANNOTATION: template,
        });
        self
    }
    pub fn terminating(mut self) -> Self {
        self.0["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        self
    }
    pub fn replica(mut self, name: &str, index: u32, host: u32) -> Self {
        let labels = &mut self.0["metadata"]["labels"];
        labels["ray.io/worker-group-replica-name"] = json!(name);
        labels["ray.io/worker-group-replica-index"] = json!(index.to_string());
        labels["ray.io/replica-host-index"] = json!(host.to_string());
        self
    }
}

/// What the plan renders.
pub fn renders(plan: &Plan) -> Vec<Child> {
    plan.ops
        .iter()
        .filter_map(|op| {
            if let Op::Render(c) = op {
                Some(c.clone())
            } else {
                None
            }
        })
        .collect()
}

/// The groups of the worker Pods the plan renders, in order.
pub fn rendered_workers(plan: &Plan) -> Vec<String> {
    renders(plan)
        .into_iter()
        .filter_map(|c| {
            if let Child::WorkerPod(w) = c {
                Some(w.group)
            } else {
                None
            }
        })
        .collect()
}

/// Names of the objects the plan deletes, in order.
pub fn deletes(plan: &Plan) -> Vec<String> {
    plan.ops
        .iter()
        .filter_map(|op| {
            if let Op::Delete(r) = op {
                Some(r.name.clone())
            } else {
                None
            }
        })
        .collect()
}

/// The JSON objects the plan applies.
pub fn applies(plan: &Plan) -> Vec<Value> {
    plan.ops
        .iter()
        .filter_map(|op| {
            if let Op::Apply(j) = op {
                serde_json::from_str(j).ok()
            } else {
                None
            }
        })
        .collect()
}

/// The plan's Events.
pub fn events(plan: &Plan) -> Vec<Event> {
    plan.ops
        .iter()
        .filter_map(|op| {
            if let Op::Event(e) = op {
                Some(e.clone())
            } else {
                None
            }
        })
        .collect()
}

/// Reasons of the plan's Events, in order.
pub fn event_reasons(plan: &Plan) -> Vec<String> {
    events(plan).into_iter().map(|e| e.reason).collect()
}

/// Warning Events' reasons.
pub fn warnings(plan: &Plan) -> Vec<String> {
    events(plan)
        .into_iter()
        .filter(|e| e.type_ == EventType::Warning)
        .map(|e| e.reason)
        .collect()
}

/// The plan's status fields.
pub fn status_fields(plan: &Plan) -> Value {
    plan.ops
        .iter()
        .find_map(|op| {
            if let Op::Status(s) = op {
                s.fields
                    .as_deref()
                    .map(|f| serde_json::from_str(f).unwrap())
            } else {
                None
            }
        })
        .expect("the plan has no status")
}

/// The plan's condition of this type, if it sets one.
pub fn condition(plan: &Plan, type_: &str) -> Option<Condition> {
    plan.ops.iter().find_map(|op| match op {
        Op::Status(s) => s.conditions.iter().find(|c| c.type_ == type_).cloned(),
        _ => None,
    })
}

/// `(status, reason)` of a condition the plan sets.
pub fn condition_is(plan: &Plan, type_: &str) -> (ConditionStatus, String) {
    let c = condition(plan, type_).unwrap_or_else(|| panic!("no {type_} condition in the plan"));
    (c.status, c.reason)
}
