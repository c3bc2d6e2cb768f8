//! The figures of a scale run: each phase's Pods over time, the operator's CPU and memory, its reconcile latency, the fairness figure; as a table and as JSON.

use std::time::Duration;

use super::plane::PlaneLoad;
use super::progress::Sample;
use super::scale::ScaleArgs;

/// One phase: when the last Pod was created and ran (and, for the operator, every cluster was ready).
#[derive(Debug, serde::Serialize)]
pub struct Phase {
    pub pods: usize,
    pub all_created_s: f64,
    pub all_running_s: f64,
    pub all_ready_s: Option<f64>,
    /// Pods created per second, over the time to the last create.
    pub created_per_s: f64,
    pub samples: Vec<Sample>,
}

impl Phase {
    pub fn new(pods: usize, created: Option<Duration>, running: Option<Duration>, ready: Option<Duration>, samples: Vec<Sample>) -> Self {
        let all_created_s = created.unwrap_or_default().as_secs_f64();
        Self {
            pods,
            all_created_s,
            all_running_s: running.unwrap_or_default().as_secs_f64(),
            all_ready_s: ready.map(|d| d.as_secs_f64()),
            created_per_s: if all_created_s > 0.0 { pods as f64 / all_created_s } else { 0.0 },
            samples,
        }
    }
}

/// A process's CPU time and peak memory, from `/proc`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Usage {
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
}

impl Usage {
    /// Zero where `/proc` cannot be read (the process has gone).
    pub fn of_process(pid: u32) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command name in parentheses: state is field 3, utime and stime fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
        Self { cpu_s: ticks / 100.0, peak_rss_mib: peak_kib / 1024.0 }
    }
}

/// A 1-worker cluster's time to ready, alone and while a big cluster scales up.
#[derive(Debug, serde::Serialize)]
pub struct Fairness {
    pub big_workers: usize,
    pub alone_s: f64,
    pub while_big_scales_s: f64,
    /// Until both its Pods exist, alone and while the big one scales up.
    pub alone_created_s: f64,
    pub while_big_scales_created_s: f64,
    pub big_ready_after_s: f64,
}

/// Reconcile wall time quantiles of one controller, as the upper bounds of histogram buckets.
#[derive(Debug, Default, serde::Serialize)]
pub struct Latency {
    pub reconciles: u64,
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
}

impl Latency {
    /// From the operator's `wasmray_reconcile_duration_seconds` histogram, over every outcome.
    pub fn from_metrics(text: &str, controller: &str) -> Self {
        let wanted = format!("controller=\"{controller}\"");
        let mut buckets: std::collections::BTreeMap<u64, (f64, u64)> = std::collections::BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with("wasmray_reconcile_duration_seconds_bucket{") && l.contains(&wanted)) {
            let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
            let Some(count) = line.rsplit(' ').next().and_then(|c| c.parse::<u64>().ok()) else { continue };
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            buckets.entry(bound.to_bits()).or_insert((bound, 0)).1 += count;
        }
        let mut sorted: Vec<(f64, u64)> = buckets.into_values().collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = sorted.last().map_or(0, |b| b.1);
        let quantile = |q: f64| sorted.iter().find(|b| b.1 as f64 >= q * total as f64).map(|b| b.0).filter(|b| b.is_finite());
        Self { reconciles: total, p50_s: (total > 0).then(|| quantile(0.5)).flatten(), p99_s: (total > 0).then(|| quantile(0.99)).flatten() }
    }
}

/// The whole run.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub clusters: usize,
    pub workers: usize,
    pub raw_concurrency: usize,
    pub raw: Phase,
    pub operator: Phase,
    /// What each phase, up to its last Pod Running, cost the control plane.
    pub raw_plane: PlaneLoad,
    pub operator_plane: PlaneLoad,
    pub operator_usage: Usage,
    /// Cores the operator used in the 10 s after every cluster was ready.
    pub idle_cores: f64,
    pub reconcile: Latency,
    pub fairness: Option<Fairness>,
    /// Operator Pods/s created over the raw client's.
    pub created_ratio: f64,
    /// The raw client's time to every Pod Running over the operator's (1.0: as fast as the apiserver allows).
    pub running_ratio: f64,
    pub cpu_ms_per_pod: f64,
    /// `uptime`'s load averages when the report was made.
    pub load: String,
}

impl Report {
    pub fn new(
        args: &ScaleArgs,
        (raw, raw_plane): (Phase, PlaneLoad),
        (operator, operator_plane): (Phase, PlaneLoad),
        usage: Usage,
        idle_cores: f64,
        metrics: &str,
        fairness: Option<Fairness>,
    ) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Self {
            clusters: args.clusters,
            workers: args.workers,
            raw_concurrency: args.raw_concurrency,
            created_ratio: ratio(operator.created_per_s, raw.created_per_s),
            running_ratio: ratio(raw.all_running_s, operator.all_running_s),
            cpu_ms_per_pod: ratio(usage.cpu_s * 1000.0, operator.pods as f64),
            raw_plane,
            operator_plane,
            raw,
            operator,
            operator_usage: usage,
            idle_cores,
            reconcile: Latency::from_metrics(metrics, "RayCluster"),
            fairness,
            load: std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        }
    }

    /// The figures as a Markdown table.
    pub fn table(&self) -> String {
        let ms = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.1} ms", s * 1000.0));
        let mut text = format!(
            "wasmray bench scale: {} RayClusters × {} workers ({} Pods), raw client with {} in flight, load {}\n\n\
             | | raw client | operator | ratio |\n|---|---:|---:|---:|\n\
             | Pods created per second | {:.0} | {:.0} | {:.2} |\n\
             | last Pod created | {:.1} s | {:.1} s | |\n\
             | every Pod Running | {:.1} s | {:.1} s | {:.2} |\n\
             | every cluster ready | | {} | |\n\n\
             Operator: {:.1} CPU-seconds ({:.1} ms per Pod), peak RSS {:.1} MiB, {:.3} cores idle after ready; \
             {} RayCluster reconciles, p50 ≤ {}, p99 ≤ {}.\n",
            self.clusters, self.workers, self.operator.pods, self.raw_concurrency, self.load,
            self.raw.created_per_s, self.operator.created_per_s, self.created_ratio,
            self.raw.all_created_s, self.operator.all_created_s,
            self.raw.all_running_s, self.operator.all_running_s, self.running_ratio,
            self.operator.all_ready_s.map_or("-".into(), |s| format!("{s:.1} s")),
            self.operator_usage.cpu_s, self.cpu_ms_per_pod, self.operator_usage.peak_rss_mib, self.idle_cores,
            self.reconcile.reconciles, ms(self.reconcile.p50_s), ms(self.reconcile.p99_s),
        );
        text.push_str(&format!("Control plane, raw phase: {}.\n", self.raw_plane.line(self.raw.pods)));
        text.push_str(&format!("Control plane, operator phase: {}.\n", self.operator_plane.line(self.operator.pods)));
        if let Some(f) = &self.fairness {
            text.push_str(&format!(
                "Fairness: a 1-worker cluster is ready in {:.1} s alone and {:.1} s while a {}-worker cluster scales up (ratio {:.2}; the big one ready after {:.1} s); its Pods exist after {:.2} s alone and {:.2} s beside the big one.\n",
                f.alone_s, f.while_big_scales_s, f.big_workers, if f.alone_s > 0.0 { f.while_big_scales_s / f.alone_s } else { 0.0 }, f.big_ready_after_s,
                f.alone_created_s, f.while_big_scales_created_s
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_quantiles_are_bucket_bounds_over_every_outcome_of_the_controller() {
        let text = "\
wasmray_reconcile_duration_seconds_bucket{controller=\"RayCluster\",outcome=\"ok\",le=\"0.001\"} 50
wasmray_reconcile_duration_seconds_bucket{controller=\"RayCluster\",outcome=\"ok\",le=\"0.002\"} 98
wasmray_reconcile_duration_seconds_bucket{controller=\"RayCluster\",outcome=\"ok\",le=\"+Inf\"} 98
wasmray_reconcile_duration_seconds_bucket{controller=\"RayCluster\",outcome=\"conflict\",le=\"0.001\"} 0
wasmray_reconcile_duration_seconds_bucket{controller=\"RayCluster\",outcome=\"conflict\",le=\"0.002\"} 0
wasmray_reconcile_duration_seconds_bucket{controller=\"RayCluster\",outcome=\"conflict\",le=\"+Inf\"} 2
wasmray_reconcile_duration_seconds_bucket{controller=\"RayJob\",outcome=\"ok\",le=\"0.001\"} 7
";
        let latency = Latency::from_metrics(text, "RayCluster");
        assert_eq!(latency.reconciles, 100);
        assert_eq!(latency.p50_s, Some(0.001));
        assert_eq!(latency.p99_s, None, "the 99th reconcile is past the last finite bucket");
    }

    #[test]
    fn no_reconciles_have_no_quantiles() {
        let latency = Latency::from_metrics("", "RayCluster");
        assert_eq!((latency.reconciles, latency.p50_s, latency.p99_s), (0, None, None));
    }
}
