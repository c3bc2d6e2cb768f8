//! Leader election on a coordination.k8s.io Lease: only the holder reconciles and writes.

use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

use crate::controller::apply::Leadership;

/// How long a Lease holds without renewal (controller-runtime's default, KubeRay's too).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long before expiry the holder renews.
const RENEW_GRACE: Duration = Duration::from_secs(5);

/// A campaign for the Lease; drop it to give the Lease up.
pub struct Campaign {
    state: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Campaign {
    /// Starts campaigning for `namespace/name` as `identity` (created if missing).
    ///
    /// # Errors
    ///
    /// If the Lease cannot be read or created (RBAC on coordination.k8s.io leases, say).
    pub async fn start(client: Client, namespace: &str, name: &str, identity: &str) -> anyhow::Result<Self> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_DURATION.as_secs())
            .with_grace(RENEW_GRACE.as_secs())
            .build()
            .await
            .with_context(|| format!("leader election on Lease {namespace}/{name}"))?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Resolves once this replica holds the Lease (or never, if the campaign ends).
    pub async fn won(&mut self) {
        while !*self.state.borrow_and_update() {
            if self.state.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves when this replica, having led, no longer does; `leadership` is set false at
    /// that moment, before anything else runs, so the very next write is refused.
    pub async fn lost(&mut self, leadership: &Leadership) {
        loop {
            if self.state.changed().await.is_err() || !*self.state.borrow_and_update() {
                leadership.set(false);
                return;
            }
        }
    }

    /// Gives the Lease up, so a standby takes over at once instead of after the Lease expires.
    pub async fn release(self) {
        drop(self.state);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// This replica's identity in the Lease: `$POD_NAME`, else the host name, plus the process id
/// and a random part, so two replicas on one machine never share one.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "wasmray".into());
    let mut random = [0u8; 4];
    crate::controller::random_bytes(&mut random);
    format!("{base}_{}_{}", std::process::id(), hex::encode(random))
}
