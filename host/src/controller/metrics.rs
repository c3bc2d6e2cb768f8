//! Controller metrics: built once, registered in the caller's registry, passed in — no globals.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    verb: String,
    kind: String,
    outcome: String,
}

/// Counters and histograms of the controllers; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    reconciles: Family<ReconcileLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    reconcile_seconds: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            writes: Family::default(),
            // 0.5 ms to about 16 s.
            reconcile_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))),
        }
    }
}

impl Metrics {
    /// Builds the metrics and registers them under `wasmray_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("wasmray");
        registry.register("reconciles", "Reconciles by kind and outcome", metrics.inner.reconciles.clone());
        registry.register("writes", "API writes by verb, kind and outcome", metrics.inner.writes.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile wall time by kind and outcome",
            metrics.inner.reconcile_seconds.clone(),
        );
        metrics
    }

    /// Counts one reconcile that started at `started`.
    pub fn reconciled(&self, kind: &str, outcome: &str, started: Instant) {
        let labels = ReconcileLabels { kind: kind.into(), outcome: outcome.into() };
        self.inner.reconciles.get_or_create(&labels).inc();
        self.inner.reconcile_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }

    /// Counts one API write.
    pub fn write(&self, verb: &str, kind: &str, ok: bool) {
        let labels = WriteLabels { verb: verb.into(), kind: kind.into(), outcome: if ok { "ok" } else { "error" }.into() };
        self.inner.writes.get_or_create(&labels).inc();
    }
}
