//! KubeRay's label, annotation and finalizer keys, shared by the host's builders and the reconciler guest.
//!
//! One list, so the labels the host writes on a child and the ones the guest reads back cannot drift.

/// `yes` on every Ray Pod.
pub const IS_RAY_NODE: &str = "ray.io/is-ray-node";
/// The cluster a Pod or Service belongs to.
pub const CLUSTER: &str = "ray.io/cluster";
/// `head` or `worker`.
pub const NODE_TYPE: &str = "ray.io/node-type";
/// The worker group, [`HEAD_GROUP`] for the head.
pub const GROUP: &str = "ray.io/group";
/// `<cluster>-head` / `<cluster>-worker`.
pub const IDENTIFIER: &str = "ray.io/identifier";
pub const APP_NAME: &str = "app.kubernetes.io/name";
pub const CREATED_BY: &str = "app.kubernetes.io/created-by";
pub const APP_NAME_VALUE: &str = "kuberay";
pub const CREATED_BY_VALUE: &str = "kuberay-operator";
pub const SERVE: &str = "ray.io/serve";
pub const ORIGINATED_FROM_CR_NAME: &str = "ray.io/originated-from-cr-name";
/// Which CRD made the RayCluster (`RayJob`, `RayService`), on the RayCluster itself.
pub const ORIGINATED_FROM_CRD: &str = "ray.io/originated-from-crd";
pub const HEADLESS_WORKER_SVC: &str = "ray.io/headless-worker-svc";
/// The replica's index in its group.
pub const REPLICA_INDEX: &str = "ray.io/worker-group-replica-index";
/// The multi-host replica a worker Pod belongs to (`<group>-<5 random>`).
pub const REPLICA_NAME: &str = "ray.io/worker-group-replica-name";
pub const HOST_INDEX: &str = "ray.io/replica-host-index";
/// Head group name in `ray.io/group`.
pub const HEAD_GROUP: &str = "headgroup";
/// Labels a user's template or group labels may not override.
pub const PROTECTED: [&str; 3] = [NODE_TYPE, GROUP, CLUSTER];

/// Annotation: legacy switch for GCS fault tolerance.
pub const FT_ENABLED: &str = "ray.io/ft-enabled";
/// Annotation: the Redis namespace of a fault-tolerant cluster.
pub const EXTERNAL_STORAGE_NAMESPACE: &str = "ray.io/external-storage-namespace";
/// Annotation: `"true"` means the user's container command is used as is, without KubeRay's `ray start`.
pub const OVERWRITE_CONTAINER_CMD: &str = "ray.io/overwrite-container-cmd";
/// Annotation: `"true"` asks for a Serve Service on a plain RayCluster.
pub const ENABLE_SERVE_SERVICE: &str = "ray.io/enable-serve-service";
/// Annotation: how long the Redis cleanup finalizer may hold a deleted cluster (KubeRay v1.7's name).
pub const GCS_FT_DELETION_TIMEOUT: &str = "ray.io/gcs-ft-deletion-timeout";

/// The finalizer that keeps a GCS fault-tolerant RayCluster until its Redis namespace is cleaned.
pub const REDIS_CLEANUP_FINALIZER: &str = "ray.io/gcs-ft-redis-cleanup-finalizer";

/// Head or worker: the values of [`NODE_TYPE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeType {
    Head,
    Worker,
}

impl NodeType {
    /// The `ray.io/node-type` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Head => "head",
            NodeType::Worker => "worker",
        }
    }

    /// Reads a `ray.io/node-type` label value; `None` for anything else.
    pub fn from_label(value: &str) -> Option<Self> {
        match value {
            "head" => Some(NodeType::Head),
            "worker" => Some(NodeType::Worker),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NodeType;

    #[test]
    fn node_types_read_back_what_they_write() {
        for node in [NodeType::Head, NodeType::Worker] {
            assert_eq!(NodeType::from_label(node.as_str()), Some(node));
        }
        assert_eq!(NodeType::from_label("redis-cleanup"), None);
    }
}
