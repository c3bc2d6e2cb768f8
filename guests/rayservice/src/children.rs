//! The RayService's children as the snapshot holds them: its RayClusters, Services, Gateway and HTTPRoute, head Pods and EndpointSlices.

use std::collections::BTreeMap;

use serde_json::Value;
use wasmray_guest_sdk::PluginError;

use crate::vocab::labels;

/// The children this reconcile looks at, each by name.
#[derive(Debug, Default)]
pub struct Children {
    /// The RayClusters the RayService made (its originated-from labels).
    pub clusters: BTreeMap<String, Value>,
    pub services: BTreeMap<String, Value>,
    pub gateway: Option<Value>,
    pub route: Option<Value>,
    /// A head Pod per cluster, a live one before a terminating one.
    pub heads: BTreeMap<String, Value>,
    /// EndpointSlices by the Service they belong to.
    pub endpoint_slices: BTreeMap<String, Vec<Value>>,
}

impl Children {
    /// Picks the children of RayService `name` out of the snapshot's list.
    pub fn parse(children: &[String], name: &str) -> Result<Self, PluginError> {
        let mut out = Children::default();
        for text in children {
            let child: Value =
                serde_json::from_str(text).map_err(|e| PluginError::InvalidInput(format!("a child does not parse: {e}")))?;
            let child_name = child["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let l = &child["metadata"]["labels"];
            let ours = l[labels::ORIGINATED_FROM_CR_NAME] == name && l[labels::ORIGINATED_FROM_CRD] == crate::vocab::ORIGINATED_FROM_CRD_VALUE;
            match child["kind"].as_str().unwrap_or_default() {
                "RayCluster" if ours => {
                    out.clusters.insert(child_name, child);
                }
                "Service" => {
                    out.services.insert(child_name, child);
                }
                "Gateway" if child_name == gateway_name(name) => out.gateway = Some(child),
                "HTTPRoute" if child_name == route_name(name) => out.route = Some(child),
                "Pod" if l[labels::NODE_TYPE] == "head" => {
                    let Some(cluster) = l[labels::CLUSTER].as_str().map(str::to_owned) else { continue };
                    let keep = out.heads.get(&cluster).is_some_and(|h| !terminating(h) && terminating(&child));
                    if !keep {
                        out.heads.insert(cluster, child);
                    }
                }
                "EndpointSlice" => {
                    let Some(service) = l["kubernetes.io/service-name"].as_str().map(str::to_owned) else { continue };
                    out.endpoint_slices.entry(service).or_default().push(child);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The head Pod of `cluster` is Running and Ready now.
    pub fn head_ready(&self, cluster: &str) -> bool {
        self.heads.get(cluster).is_some_and(|p| {
            !terminating(p)
                && p["status"]["phase"] == "Running"
                && conditions(p).any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    }

    /// Ready endpoints (Pods) behind Service `service`.
    pub fn ready_endpoints(&self, service: &str) -> i32 {
        let slices = self.endpoint_slices.get(service).into_iter().flatten();
        let endpoints = slices.flat_map(|s| s["endpoints"].as_array().into_iter().flatten());
        // An endpoint without `conditions.ready` counts as ready (the API's rule).
        let count = endpoints.filter(|e| e["conditions"]["ready"] != false).count();
        i32::try_from(count).unwrap_or(i32::MAX)
    }
}

impl Children {
    /// Why RayCluster `cluster` cannot start, as its own conditions say, first found in this
    /// order: a failed create, a head Pod that cannot run (unschedulable, an image it cannot
    /// pull…), a worker Pod that cannot run. `None` when they name no cause.
    pub fn waiting_on(&self, cluster: &str) -> Option<String> {
        let live = self.clusters.get(cluster)?;
        let say = |c: &Value| {
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            format!("RayCluster {cluster}: {reason}: {message}").trim_end_matches([' ', ':']).to_owned()
        };
        let failure = conditions(live).find(|c| c["type"] == "RayClusterReplicaFailure" && c["status"] == "True");
        let not_ready = |type_: &'static str| {
            conditions(live).find(move |c| {
                c["type"] == type_ && c["status"] == "False" && !NO_CAUSE.contains(&c["reason"].as_str().unwrap_or_default())
            })
        };
        failure.or_else(|| not_ready("HeadPodReady")).or_else(|| not_ready("WorkerPodsReady")).map(say)
    }
}

/// Reasons of a RayCluster's conditions that say only that Pods are not up yet, which is no cause.
const NO_CAUSE: [&str; 4] = ["", "HeadPodNotFound", "Unknown", "WorkerPodsNotReady"];

/// `<rayservice>-gateway`.
pub fn gateway_name(service: &str) -> String {
    format!("{service}-gateway")
}

/// `<rayservice>-httproute`.
pub fn route_name(service: &str) -> String {
    format!("{service}-httproute")
}

/// Whether the object is being deleted.
pub fn terminating(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

/// The object's status conditions.
pub fn conditions(object: &Value) -> impl Iterator<Item = &Value> {
    object["status"]["conditions"].as_array().into_iter().flatten()
}

/// Whether `object`'s condition `type_` is True in `conditions`.
pub fn is_true<'a>(mut conditions: impl Iterator<Item = &'a Value>, type_: &str) -> bool {
    conditions.any(|c| c["type"] == type_ && c["status"] == "True")
}
