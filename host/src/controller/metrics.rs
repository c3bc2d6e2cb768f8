//! The operator's own metrics: built once, registered in the caller's registry, passed in — no globals.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::apply::ApplyError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    verb: String,
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    function: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DashboardLabels {
    call: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

/// Counters, gauges and histograms of the controllers and their plugin calls; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
    writes: Family<WriteLabels, Counter>,
    events_skipped: Family<ControllerLabels, Counter>,
    plugin_calls: Family<PluginLabels, Counter>,
    plugin_seconds: Family<PluginLabels, Histogram, fn() -> Histogram>,
    queue_depth: Family<ControllerLabels, Gauge>,
    dashboard_calls: Family<DashboardLabels, Counter>,
    dashboard_seconds: Family<DashboardLabels, Histogram, fn() -> Histogram>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            // 0.5 ms to about 16 s.
            reconcile_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))),
            writes: Family::default(),
            events_skipped: Family::default(),
            plugin_calls: Family::default(),
            // 20 µs to about 0.65 s: a call's deadline is 100 ms by default.
            plugin_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.00002, 2.0, 16))),
            queue_depth: Family::default(),
            dashboard_calls: Family::default(),
            // 1 ms to about 4 s: a request's timeout is 3 s.
            dashboard_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 13))),
        }
    }
}

impl Metrics {
    /// Builds the metrics and registers them under `wasmray_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let inner = &metrics.inner;
        let registry = registry.sub_registry_with_prefix("wasmray");
        registry.register("reconciles", "Reconciles by controller and outcome (an error's typed label)", inner.reconciles.clone());
        registry.register("reconcile_duration_seconds", "Reconcile wall time by controller and outcome", inner.reconcile_seconds.clone());
        registry.register("writes", "API writes by verb, kind and outcome", inner.writes.clone());
        registry.register(
            "events_skipped",
            "Events not sent, by reporting controller: past their object's budget (25 at once, then one every 5 minutes, as client-go's recorder)",
            inner.events_skipped.clone(),
        );
        registry.register("plugin_calls", "Plugin calls by plugin, function and outcome (ok, trap, timeout, out_of_memory, …)", inner.plugin_calls.clone());
        registry.register("plugin_call_duration_seconds", "Plugin call wall time by plugin, function and outcome", inner.plugin_seconds.clone());
        registry.register("workqueue_depth", "Primaries waiting for a reconcile or being reconciled, by controller", inner.queue_depth.clone());
        registry.register("dashboard_calls", "Ray dashboard requests by call (job, submit, stop) and outcome", inner.dashboard_calls.clone());
        registry.register("dashboard_call_duration_seconds", "Ray dashboard request wall time by call and outcome", inner.dashboard_seconds.clone());
        metrics
    }

    /// Counts one reconcile that started at `started`.
    pub fn reconciled(&self, controller: &str, outcome: &str, started: Instant) {
        let labels = ReconcileLabels { controller: controller.into(), outcome: outcome.into() };
        self.inner.reconciles.get_or_create(&labels).inc();
        self.inner.reconcile_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }

    /// Counts one API write.
    pub fn write(&self, verb: &str, kind: &str, error: Option<&ApplyError>) {
        let outcome = error.map_or("ok", ApplyError::label);
        let labels = WriteLabels { verb: verb.into(), kind: kind.into(), outcome: outcome.into() };
        self.inner.writes.get_or_create(&labels).inc();
    }

    /// Counts one Event held back by its object's budget.
    pub fn event_skipped(&self, controller: &str) {
        self.inner.events_skipped.get_or_create(&ControllerLabels { controller: controller.into() }).inc();
    }

    /// Counts one plugin call that started at `started`.
    pub fn plugin_call(&self, plugin: &str, function: &str, outcome: &str, started: Instant) {
        let labels = PluginLabels { plugin: plugin.into(), function: function.into(), outcome: outcome.into() };
        self.inner.plugin_calls.get_or_create(&labels).inc();
        self.inner.plugin_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }

    /// Counts one Ray dashboard request that started at `started`.
    pub fn dashboard_call(&self, call: &str, outcome: &str, started: Instant) {
        let labels = DashboardLabels { call: call.into(), outcome: outcome.into() };
        self.inner.dashboard_calls.get_or_create(&labels).inc();
        self.inner.dashboard_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }

    /// The work-queue depth gauge of one controller.
    pub fn queue_depth(&self, controller: &str) -> Gauge {
        self.inner.queue_depth.get_or_create(&ControllerLabels { controller: controller.into() }).clone()
    }
}
