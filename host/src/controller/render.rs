//! Turns a plan's `render` ops into objects, with the host's KubeRay-compatible builders.

use serde::Serialize;
use serde_json::Value;
use wasmray_api::RayCluster;

use crate::pods::{self, BuildContext, BuildError, WorkerSlot};
use crate::runtime::Child;

/// The objects one child stands for (the autoscaler's RBAC is three; a Service the spec does not
/// call for is none).
///
/// An auth Secret's token is drawn here from the kernel's randomness: a secret comes from the
/// host, never from a guest-visible seed, and only the Secret pays for the read.
pub fn render(cluster: &RayCluster, child: &Child, ctx: &BuildContext) -> Result<Vec<Value>, BuildError> {
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
            super::random_bytes(&mut random);
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
