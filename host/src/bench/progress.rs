//! Pods over time in one namespace, from a watch: when each was first seen and when it first ran.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

/// When one Pod was first seen and first seen Running, since the start.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    created: Duration,
    running: Option<Duration>,
}

/// The Pods of a namespace as a watch reports them, until dropped.
pub struct Progress {
    start: Instant,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Counts at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub created: usize,
    pub running: usize,
}

impl Progress {
    /// Starts watching `namespace`; times count from `start`.
    pub fn watch(client: Client, namespace: &str, start: Instant) -> Self {
        let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let record = seen.clone();
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let task = tokio::spawn(async move {
            let mut events = watcher(pods, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event else { continue };
                let now = start.elapsed();
                let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                let mut seen = record.lock().unwrap_or_else(|p| p.into_inner());
                let entry = seen.entry(pod.uid().unwrap_or_default()).or_insert(Seen { created: now, running: None });
                if running && entry.running.is_none() {
                    entry.running = Some(now);
                }
            }
        });
        Self { start, seen, task }
    }

    /// How many Pods exist and run now.
    pub fn counts(&self) -> Counts {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        Counts { created: seen.len(), running: seen.values().filter(|s| s.running.is_some()).count() }
    }

    /// Waits until `done` holds for the counts, sampling them every 250 ms into `samples`.
    ///
    /// # Errors
    ///
    /// After `timeout`, with the counts reached.
    pub async fn wait(&self, samples: &mut Vec<Sample>, timeout: Duration, done: impl Fn(Counts) -> bool) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.counts();
            samples.push(Sample { at_s: self.start.elapsed().as_secs_f64(), created: counts.created, running: counts.running });
            if done(counts) {
                return Ok(self.start.elapsed());
            }
            if Instant::now() > deadline {
                anyhow::bail!("not done after {timeout:?}: {counts:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// When the last of the Pods was first seen, and first seen Running.
    pub fn last(&self) -> (Option<Duration>, Option<Duration>) {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        (seen.values().map(|s| s.created).max(), seen.values().filter_map(|s| s.running).max())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Pods created and running at a moment of a phase, for the plot.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    pub at_s: f64,
    pub created: usize,
    pub running: usize,
}
