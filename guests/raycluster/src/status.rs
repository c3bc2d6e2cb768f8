//! The RayCluster's status: counts, desired resources, head addresses, state and conditions.
//!
//! Only what changed makes `lastUpdateTime` move, so a reconcile that finds everything as it was
//! returns the very status the object already has, and the host writes nothing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};
use wasmray_api::{ClusterState, RayCluster, names};
use wasmray_guest_sdk::{Condition, ConditionStatus, StatusUpdate};

use crate::children::{Children, NodeType, RayPod};
use crate::vocab::{conditions, reasons};
use crate::{Phase, desired};

/// What the status is computed from, beyond the cluster and its children.
pub struct Inputs<'a> {
    pub phase: Phase,
    /// The pass hit something KubeRay counts as a reconcile error (an unhealthy Pod replaced).
    pub failed: bool,
    /// The host's report of a create that failed: (reason, message).
    pub replica_failure: Option<(String, String)>,
    /// Settings the spec holds that do nothing.
    pub ignored: &'a [crate::ignored::Finding],
    /// The rolling update's condition, when it has one to set or remove.
    pub rollout: Option<Condition>,
    pub now_ms: i64,
    pub children: &'a Children,
}

/// The status update, and whether it differs from the status the object has.
pub fn compute(cluster: &RayCluster, primary: &Value, inputs: &Inputs) -> (StatusUpdate, bool) {
    let old = primary.get("status").cloned().unwrap_or(Value::Null);
    let pods = &inputs.children.pods;
    let totals = desired::totals(cluster);
    let workers = || pods.iter().filter(|p| p.node_type == NodeType::Worker);
    let all_running = !pods.is_empty() && pods.iter().all(|p| p.running_and_ready);
    let complete = usize::try_from(totals.desired)
        .map(|d| pods.len() == d + 1)
        .unwrap_or(false);
    let suspend = cluster.spec.suspend == Some(true);

    let old_state = cluster.status.as_ref().and_then(|s| s.state);
    let mut state = old_state;
    // `ready` is sticky, as in KubeRay: the conditions tell when Pods fail later.
    if !inputs.failed && complete && all_running {
        state = Some(ClusterState::Ready);
    }
    if suspend && pods.is_empty() {
        state = Some(ClusterState::Suspended);
    }

    let resources = desired::resources(cluster);
    let mut fields = Map::new();
    if let Some(state) = state {
        fields.insert("state".into(), json!(state));
    }
    if let Some(generation) = cluster.metadata.generation {
        fields.insert("observedGeneration".into(), json!(generation));
    }
    fields.insert(
        "readyWorkerReplicas".into(),
        json!(workers().filter(|p| p.running_and_ready).count()),
    );
    fields.insert(
        "availableWorkerReplicas".into(),
        json!(workers().filter(|p| p.phase == "Running").count()),
    );
    fields.insert("desiredWorkerReplicas".into(), json!(totals.desired));
    fields.insert("minWorkerReplicas".into(), json!(totals.min));
    fields.insert("maxWorkerReplicas".into(), json!(totals.max));
    fields.insert("desiredCPU".into(), json!(resources.cpu));
    fields.insert("desiredMemory".into(), json!(resources.memory));
    fields.insert("desiredGPU".into(), json!(resources.gpu));
    fields.insert("desiredTPU".into(), json!(resources.tpu));
    let head_pod = head_pod(inputs.children);
    let head_service = head_service(cluster, inputs.children);
    let endpoints = endpoints(cluster, head_service);
    if !endpoints.is_empty() {
        fields.insert("endpoints".into(), json!(endpoints));
    }
    fields.insert("head".into(), head_info(head_pod, head_service));

    let conditions = conditions(
        cluster,
        inputs,
        head_pod,
        all_running && complete && !inputs.failed,
    );
    let changed = fields.iter().any(|(k, v)| old.get(k) != Some(v))
        || conditions.iter().any(|c| !same_condition(&old, c));
    if state != old_state {
        let mut times = old
            .get("stateTransitionTimes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(state) = state {
            times.insert(
                json!(state).as_str().unwrap_or_default().to_owned(),
                json!(wasmray_guest_sdk::k8s::rfc3339(inputs.now_ms)),
            );
        }
        fields.insert("stateTransitionTimes".into(), Value::Object(times));
    }
    if changed {
        fields.insert(
            "lastUpdateTime".into(),
            json!(wasmray_guest_sdk::k8s::rfc3339(inputs.now_ms)),
        );
    }
    (
        StatusUpdate {
            conditions,
            fields: Some(Value::Object(fields).to_string()),
        },
        changed,
    )
}

/// KubeRay's condition rules; see the crate docs for where they differ.
fn conditions(
    cluster: &RayCluster,
    inputs: &Inputs,
    head: Option<&RayPod>,
    provisioned_now: bool,
) -> Vec<Condition> {
    use ConditionStatus::{False, True};
    let mut out: Vec<Condition> = Vec::new();
    let mut set = |c: Condition| match out.iter_mut().find(|o| o.type_ == c.type_) {
        Some(o) => *o = c,
        None => out.push(c),
    };
    match &inputs.replica_failure {
        Some((reason, message)) => set(Condition::new(
            conditions::REPLICA_FAILURE,
            True,
            reason,
            message,
        )),
        // A failure that is over leaves no condition behind, as in KubeRay (also one that an
        // earlier version left False).
        None if has_condition(cluster, conditions::REPLICA_FAILURE) => {
            set(Condition::removal(conditions::REPLICA_FAILURE));
        }
        None => {}
    }
    let ignored = crate::ignored::condition(inputs.ignored);
    if !ignored.is_removal() || has_condition(cluster, conditions::IGNORED_SETTINGS) {
        set(ignored);
    }
    set(head_pod_ready(head));
    if let Some(rollout) = &inputs.rollout {
        set(rollout.clone());
    }
    match worker_pods_ready(cluster, inputs) {
        Some(c) => set(c),
        None if has_condition(cluster, conditions::WORKER_PODS_READY) => {
            set(Condition::removal(conditions::WORKER_PODS_READY));
        }
        None => {}
    }
    let was_suspended = inputs.phase.suspend_status() == Some(conditions::SUSPENDED);
    if !condition_true(cluster, conditions::PROVISIONED) && !was_suspended {
        set(if provisioned_now {
            Condition::new(
                conditions::PROVISIONED,
                True,
                reasons::ALL_POD_RUNNING_AND_READY_FIRST_TIME,
                "All Ray Pods are ready for the first time",
            )
        } else {
            Condition::new(
                conditions::PROVISIONED,
                False,
                reasons::PODS_PROVISIONING,
                "RayCluster Pods are being provisioned for first time",
            )
        });
    }
    let suspend = cluster.spec.suspend == Some(true);
    match inputs.phase.suspend_status() {
        Some(conditions::SUSPENDING) => {
            if inputs.children.pods.is_empty() {
                set(Condition::new(
                    conditions::PROVISIONED,
                    False,
                    reasons::PODS_PROVISIONING,
                    "RayCluster has been suspended",
                ));
                set(Condition::new(
                    conditions::SUSPENDING,
                    False,
                    conditions::SUSPENDING,
                    "",
                ));
                set(Condition::new(
                    conditions::SUSPENDED,
                    True,
                    conditions::SUSPENDED,
                    "",
                ));
            } else if matches!(inputs.phase, Phase::Suspending { invalid: true, .. }) {
                // Both were True: Suspended gives way, Suspending finishes the job.
                set(Condition::new(
                    conditions::SUSPENDED,
                    False,
                    conditions::SUSPENDED,
                    "",
                ));
            }
        }
        Some(_) => {
            if !suspend {
                set(Condition::new(
                    conditions::SUSPENDED,
                    False,
                    conditions::SUSPENDED,
                    "",
                ));
            }
        }
        None => {
            set(Condition::new(
                conditions::SUSPENDED,
                False,
                conditions::SUSPENDED,
                "",
            ));
            let status = if suspend { True } else { False };
            set(Condition::new(
                conditions::SUSPENDING,
                status,
                conditions::SUSPENDING,
                "",
            ));
        }
    }
    out
}

/// `HeadPodReady` mirrors the head Pod's `Ready` condition, or names what keeps the Pod from
/// running (its [`crate::children::Cause`]) while it is not Ready.
fn head_pod_ready(head: Option<&RayPod>) -> Condition {
    use ConditionStatus::{False, True, Unknown};
    let Some(pod) = head else {
        return Condition::new(
            conditions::HEAD_POD_READY,
            False,
            reasons::HEAD_POD_NOT_FOUND,
            "Head Pod not found",
        );
    };
    let ready_message = pod
        .ready_condition
        .as_ref()
        .and_then(|c| c.message.as_deref())
        .unwrap_or_default();
    // A Pod that cannot run says why: an unschedulable one has no `Ready` condition at all, and
    // one with a stuck init container only `ContainersNotReady`.
    if let Some(cause) = &pod.cause
        && pod.ready_condition.as_ref().is_none_or(|c| c.status != "True")
    {
        let message = match ready_message {
            "" => cause.message.clone(),
            ready => format!("{ready}; {}", cause.message),
        };
        return Condition::new(conditions::HEAD_POD_READY, False, &cause.reason, &message);
    }
    let Some(ready) = &pod.ready_condition else {
        return Condition::new(conditions::HEAD_POD_READY, False, reasons::UNKNOWN, "");
    };
    let status = match ready.status.as_str() {
        "True" => True,
        "False" => False,
        _ => Unknown,
    };
    let mut reason = ready.reason.clone().unwrap_or_default();
    let mut message = ready.message.clone().unwrap_or_default();
    if status == True && reason.is_empty() {
        reason = reasons::HEAD_POD_RUNNING_AND_READY.into();
    }
    // "ContainersNotReady" says nothing; the container's own reason (ImagePullBackOff…) does.
    if reason == "ContainersNotReady"
        && let Some((container, why, detail)) = &pod.first_not_ready
        && !why.is_empty()
    {
        reason = why.clone();
        if !detail.is_empty() {
            message = format!("{message}; container {container}: {detail}");
        }
    }
    if reason.is_empty() {
        reason = reasons::UNKNOWN.into();
    }
    Condition::new(conditions::HEAD_POD_READY, status, &reason, &message)
}

/// `WorkerPodsReady` (ours): False naming the first worker Pod (by name) that cannot run and why,
/// True once every live worker Pod is Running and Ready and none is missing; `None` for a cluster
/// with no workers, and while it suspends or is suspended.
fn worker_pods_ready(cluster: &RayCluster, inputs: &Inputs) -> Option<Condition> {
    use ConditionStatus::{False, True};
    if !matches!(
        inputs.phase,
        Phase::Running | Phase::Suspended { resume: true }
    ) {
        return None;
    }
    let live: Vec<&RayPod> = inputs
        .children
        .pods
        .iter()
        .filter(|p| p.node_type == NodeType::Worker && !p.terminating)
        .collect();
    let desired = usize::try_from(desired::totals(cluster).desired).unwrap_or(0);
    let expected = live.len().max(desired);
    if expected == 0 {
        return None;
    }
    let stuck = live
        .iter()
        .filter(|p| !p.running_and_ready)
        .find_map(|p| Some((p, p.cause.as_ref()?)));
    if let Some((pod, cause)) = stuck {
        let message = format!(
            "worker Pod {} (group {}): {}",
            pod.name, pod.group, cause.message
        );
        return Some(Condition::new(
            conditions::WORKER_PODS_READY,
            False,
            &cause.reason,
            &message,
        ));
    }
    let ready = live.iter().filter(|p| p.running_and_ready).count();
    Some(if ready >= expected {
        Condition::new(
            conditions::WORKER_PODS_READY,
            True,
            reasons::ALL_WORKER_PODS_READY,
            "All worker Pods are Ready",
        )
    } else {
        let message = format!("{ready} of {expected} worker Pods are Ready");
        Condition::new(
            conditions::WORKER_PODS_READY,
            False,
            reasons::WORKER_PODS_NOT_READY,
            &message,
        )
    })
}

/// Whether the object's status has this condition with status True.
pub fn condition_true(cluster: &RayCluster, type_: &str) -> bool {
    condition_message(cluster, type_).is_some()
}

/// The message of the object's condition of this type, if it has one that is True.
pub fn condition_message(cluster: &RayCluster, type_: &str) -> Option<String> {
    status_conditions(cluster).find(|c| c.type_ == type_ && c.status == "True").map(|c| c.message.clone())
}

/// Whether the object's status has a condition of this type, whatever its status.
pub fn has_condition(cluster: &RayCluster, type_: &str) -> bool {
    status_conditions(cluster).any(|c| c.type_ == type_)
}

/// The conditions in the object's status, none if it has no status yet.
fn status_conditions(cluster: &RayCluster) -> impl Iterator<Item = &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    cluster.status.as_ref().and_then(|s| s.conditions.as_ref()).into_iter().flatten()
}

fn same_condition(old: &Value, c: &Condition) -> bool {
    let types = || {
        old.get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    if c.is_removal() {
        return !types().any(|o| o.get("type").and_then(Value::as_str) == Some(&c.type_));
    }
    let status = match c.status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    };
    old.get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|o| {
            o.get("type").and_then(Value::as_str) == Some(&c.type_)
                && o.get("status").and_then(Value::as_str) == Some(status)
                && o.get("reason").and_then(Value::as_str).unwrap_or_default() == c.reason
                && o.get("message").and_then(Value::as_str).unwrap_or_default() == c.message
        })
}

fn head_pod(children: &Children) -> Option<&RayPod> {
    let mut heads: Vec<&RayPod> = children.heads().collect();
    heads.sort_by_key(|p| p.terminating);
    heads.first().copied()
}

fn head_service<'a>(
    cluster: &RayCluster,
    children: &'a Children,
) -> Option<&'a k8s_openapi::api::core::v1::Service> {
    let custom = cluster.spec.head_group_spec.custom_head_service_name();
    children.service(&names::head_service_name(
        cluster.metadata.name.as_deref().unwrap_or_default(),
        custom,
    ))
}

/// Port name to NodePort, else target port, added to what the status already lists (KubeRay never
/// removes an endpoint).
fn endpoints(
    cluster: &RayCluster,
    service: Option<&k8s_openapi::api::core::v1::Service>,
) -> BTreeMap<String, String> {
    let mut map = cluster
        .status
        .as_ref()
        .and_then(|s| s.endpoints.clone())
        .unwrap_or_default();
    for port in service
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
    {
        let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        let value = match (port.node_port, &port.target_port) {
            (Some(node_port), _) if node_port != 0 => node_port.to_string(),
            (_, Some(IntOrString::Int(p))) if *p != 0 => p.to_string(),
            (_, Some(IntOrString::String(s))) if !s.is_empty() => s.clone(),
            _ => continue,
        };
        map.insert(name.to_owned(), value);
    }
    map
}

/// `{podIP, serviceIP, podName, serviceName}`; a headless head Service reports the head Pod's IP.
fn head_info(pod: Option<&RayPod>, service: Option<&k8s_openapi::api::core::v1::Service>) -> Value {
    let mut head = Map::new();
    let pod_ip = pod
        .and_then(|p| p.pod_ip.clone())
        .filter(|ip| !ip.is_empty());
    if let Some(ip) = &pod_ip {
        head.insert("podIP".into(), json!(ip));
    }
    if let Some(pod) = pod {
        head.insert("podName".into(), json!(pod.name));
    }
    if let Some(service) = service {
        let cluster_ip = service
            .spec
            .as_ref()
            .and_then(|s| s.cluster_ip.clone())
            .unwrap_or_default();
        let ip = if cluster_ip == "None" {
            pod_ip
        } else {
            Some(cluster_ip).filter(|ip| !ip.is_empty())
        };
        if let Some(ip) = ip {
            head.insert("serviceIP".into(), json!(ip));
        }
        head.insert(
            "serviceName".into(),
            json!(service.metadata.name.clone().unwrap_or_default()),
        );
    }
    Value::Object(head)
}
