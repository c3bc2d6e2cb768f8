//! RayCluster as a [`Kind`]: its children, how its `render` ops become objects with the host's
//! KubeRay-compatible builders, KubeRay's failure reasons, and its KubeRay metrics.

use serde::Serialize;
use serde_json::Value;
use wasmray_api::RayCluster;

use crate::controller::Kind;
use crate::controller::apply::Report;
use crate::controller::prepare::{Role, Unbuildable, Verb};
use crate::pods::{self, BuildContext, BuildError, WorkerSlot};
use crate::runtime::Child;

/// The fact through which the host tells the reconciler that a Pod write failed last time
/// (JSON [`ReplicaFailure`]); it drives the `RayClusterReplicaFailure` condition.
pub const REPLICA_FAILURE_FACT: &str = "wasmray.dev/replica-failure";

/// A Pod write that failed: KubeRay's condition reason (`FailedCreateHeadPod`,
/// `FailedCreateWorkerPod`, `FailedDeleteHeadPod`, `FailedDeleteWorkerPod`) and the message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReplicaFailure {
    pub reason: &'static str,
    pub message: String,
}

impl Kind for RayCluster {
    const CHILD_LABEL: &'static str = crate::cache::CLUSTER_LABEL;
    const RECORDER: &'static str = "raycluster-controller";
    const RECONCILER: &'static str = "raycluster";
    const WRITABLE: &'static [(&'static str, &'static str)] = &[
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "Secret"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("batch/v1", "Job"),
        // The dashboard Ingress of `enableIngress`, which the reconciler builds and applies.
        ("networking.k8s.io/v1", "Ingress"),
        // Its OpenShift Route instead, when the settings fact says `useOpenShiftRoute`.
        ("route.openshift.io/v1", "Route"),
    ];
    const INVALID_SPEC_REASON: &'static str = "InvalidRayClusterSpec";

    fn render(&self, child: &Child, ctx: &BuildContext, _children: &[Value]) -> Result<Vec<Value>, BuildError> {
        render(self, child, ctx)
    }

    fn failure_reason(verb: Verb, kind: &str, role: Role) -> &'static str {
        match (verb, kind, role) {
            (Verb::Create, "Pod", Role::Head) => "FailedToCreateHeadPod",
            (Verb::Create, "Pod", Role::Worker) => "FailedToCreateWorkerPod",
            (Verb::Create, "Service", _) => "FailedToCreateService",
            (Verb::Create, "ServiceAccount", _) => "FailedToCreateServiceAccount",
            (Verb::Create, "Role", _) => "FailedToCreateRole",
            (Verb::Create, "RoleBinding", _) => "FailedToCreateRoleBinding",
            (Verb::Create, "Job", _) => "FailedToCreateRedisCleanupJob",
            (Verb::Create, "Secret", _) => "FailedToCreateSecret",
            (Verb::Create, "Ingress", _) => "FailedToCreateIngress",
            (Verb::Create, "Route", _) => "FailedToCreateRoute",
            (Verb::Create, _, _) => "FailedToCreatePod",
            // KubeRay never updates or deletes its Ingress: these two reasons are ours, named
            // like its Service ones.
            (Verb::Update, "Ingress", _) => "FailedToUpdateIngress",
            (Verb::Update, "Service", _) => "FailedToUpdateService",
            (Verb::Update, _, _) => "FailedToApply",
            (Verb::Delete, "Ingress", _) => "FailedToDeleteIngress",
            (Verb::Delete, "Pod", Role::Head) => "FailedToDeleteHeadPod",
            (Verb::Delete, "Pod", Role::Worker) => "FailedToDeleteWorkerPod",
            (Verb::Delete, _, _) => "FailedToDeletePod",
        }
    }

    /// The first failed (or unbuildable) Pod write becomes the replica-failure fact; a
    /// reconcile without one clears it, so the condition goes once the failure is over.
    fn facts_after(report: &Report, unbuildable: &[Unbuildable]) -> Vec<(&'static str, Option<String>)> {
        let failure = unbuildable
            .iter()
            .filter(|u| u.role != Role::Other)
            .map(|u| replica_failure(Verb::Create, u.role, u.error.to_string()))
            .chain(report.failures.iter().filter(|f| f.kind == "Pod").map(|f| replica_failure(f.verb, f.role, f.message.clone())))
            .next();
        vec![(REPLICA_FAILURE_FACT, failure.and_then(|f| serde_json::to_string(&f).ok()))]
    }
}

fn replica_failure(verb: Verb, role: Role, message: String) -> ReplicaFailure {
    let reason = match (verb, role) {
        (Verb::Delete, Role::Head) => "FailedDeleteHeadPod",
        (Verb::Delete, _) => "FailedDeleteWorkerPod",
        (_, Role::Head) => "FailedCreateHeadPod",
        (_, _) => "FailedCreateWorkerPod",
    };
    ReplicaFailure { reason, message }
}

/// The objects one child stands for (the autoscaler's RBAC is three; a Service the spec does not
/// call for is none).
///
/// An auth Secret's token is drawn here from the kernel's randomness: a secret comes from the
/// host, never from a guest-visible seed, and only the Secret pays for the read.
fn render(cluster: &RayCluster, child: &Child, ctx: &BuildContext) -> Result<Vec<Value>, BuildError> {
    let objects = match child {
        Child::HeadPod(suffix) => vec![typed(pods::head_pod(cluster, suffix, ctx)?)],
        Child::WorkerPod(wanted) => {
            let groups = cluster.spec.worker_group_specs.as_deref().unwrap_or_default();
            let index = groups.iter().position(|g| g.group_name == wanted.group).ok_or(BuildError::NoSuchGroup {
                index: groups.len(),
                count: groups.len(),
            })?;
            let replica_name = wanted.replica.as_ref().map(|r| r.name.clone()).unwrap_or_default();
            let slot = WorkerSlot {
                suffix: &wanted.suffix,
                replica_index: wanted.replica.as_ref().map_or(0, |r| i32::try_from(r.index).unwrap_or(i32::MAX)),
                host_index: wanted.replica.as_ref().map_or(0, |r| i32::try_from(r.host_index).unwrap_or(i32::MAX)),
                replica_name: &replica_name,
            };
            vec![typed(pods::worker_pod(cluster, index, &slot, ctx)?)]
        }
        Child::HeadService => vec![typed(pods::head_service(cluster, ctx)?)],
        Child::ServeService => pods::serve_service(cluster, ctx)?.into_iter().map(typed).collect(),
        Child::HeadlessService => pods::headless_worker_service(cluster, ctx)?.into_iter().map(typed).collect(),
        Child::AutoscalerRbac => match pods::autoscaler_rbac(cluster, ctx)? {
            Some(rbac) => {
                rbac.service_account.into_iter().map(typed).chain([typed(rbac.role), typed(rbac.role_binding)]).collect()
            }
            None => Vec::new(),
        },
        Child::AuthSecret => {
            let mut random = [0u8; 32];
            crate::controller::random_bytes(&mut random);
            let token = pods::auth_token(&random);
            pods::auth_token_secret(cluster, &token, ctx)?.into_iter().map(typed).collect()
        }
        Child::RedisCleanupJob => vec![typed(pods::redis_cleanup_job(cluster, ctx)?)],
    };
    Ok(objects)
}

/// A typed object as JSON with its apiVersion and kind, which typed serialisation leaves out.
fn typed<K: k8s_openapi::Resource + Serialize>(object: K) -> Value {
    let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), K::API_VERSION.into());
        map.insert("kind".into(), K::KIND.into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_get_kuberays_reasons() {
        let reason = <RayCluster as Kind>::failure_reason;
        assert_eq!(reason(Verb::Create, "Pod", Role::Worker), "FailedToCreateWorkerPod");
        assert_eq!(reason(Verb::Create, "Pod", Role::Head), "FailedToCreateHeadPod");
        assert_eq!(reason(Verb::Create, "Ingress", Role::Other), "FailedToCreateIngress");
        assert_eq!(reason(Verb::Create, "Route", Role::Other), "FailedToCreateRoute");
        assert_eq!(reason(Verb::Create, "Service", Role::Other), "FailedToCreateService");
        assert_eq!(reason(Verb::Delete, "Pod", Role::Worker), "FailedToDeleteWorkerPod");
        assert_eq!(reason(Verb::Update, "Ingress", Role::Other), "FailedToUpdateIngress");
    }

    #[test]
    fn the_reconciler_may_write_its_dashboard_ingress() {
        assert!(<RayCluster as Kind>::WRITABLE.contains(&("networking.k8s.io/v1", "Ingress")));
        assert!(<RayCluster as Kind>::WRITABLE.contains(&("route.openshift.io/v1", "Route")));
    }
}
