//! The baseline: a raw parallel client creating Pods of one shape as fast as the apiserver takes them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};

/// Creates `count` copies of `pod` (named from its `generateName`) in `namespace` with
/// `concurrency` requests in flight, retrying a refused create, and returns how many failed
/// for good.
///
/// # Errors
///
/// If a worker task panics.
pub async fn create(client: Client, namespace: &str, pod: &Pod, count: usize, concurrency: usize) -> anyhow::Result<usize> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (api, next, failed, mut pod) = (api.clone(), next.clone(), failed.clone(), pod.clone());
        pod.metadata.name = None;
        pod.metadata.namespace = None;
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let mut tries = 0;
                while let Err(error) = api.create(&PostParams::default(), &pod).await {
                    tries += 1;
                    if tries == 5 {
                        tracing::warn!(%error, "raw create failed five times");
                        failed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done?;
    }
    Ok(failed.load(Ordering::Relaxed))
}
