//! The control plane's side of a phase: each component's CPU seconds and the apiserver's own counters of Pod watches, lists and status writes.

use std::collections::BTreeMap;

use kube::Client;

use super::report::Usage;
use crate::dev::ControlPlane;

/// The components whose CPU a phase reports, when the benchmark started the control plane.
const COMPONENTS: [&str; 5] = ["kube-apiserver", "kwok", "etcd", "kube-scheduler", "kube-controller-manager"];

/// Reads the control plane's figures at the start and the end of a phase.
pub struct Probe {
    client: Client,
    pids: Vec<(&'static str, u32)>,
}

/// What one phase cost the control plane.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PlaneLoad {
    /// Cores each component used on average over the phase (empty for a control plane given
    /// by `--kubeconfig`, whose processes are not ours to read).
    pub cores: BTreeMap<String, f64>,
    /// The apiserver's Pod counters over the phase.
    #[serde(flatten)]
    pub counters: Counters,
}

/// The apiserver's Pod counters: totals in one `/metrics` read, or a phase's increase.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Counters {
    /// Pod watches the apiserver closed because their reader fell behind
    /// (`apiserver_terminated_watchers_total`); each such reader resumes or relists.
    pub pod_watches_closed_as_slow: f64,
    /// LISTs of Pods, a relist each after the first of every reader.
    pub pod_lists: f64,
    /// Pod events the apiserver sent to all watchers.
    pub pod_watch_events: f64,
    /// Writes of Pod status (KWOK's, standing in for kubelets).
    pub pod_status_writes: f64,
}

impl Counters {
    /// Sums the apiserver's Pod counters in its Prometheus text.
    pub fn parse(text: &str) -> Self {
        let mut counters = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#') && l.contains("resource=\"pods\"")) {
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
            let name = line.split('{').next().unwrap_or_default();
            let label = |key: &str| line.split(&format!("{key}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
            match name {
                "apiserver_terminated_watchers_total" => counters.pod_watches_closed_as_slow += value,
                "apiserver_watch_events_total" => counters.pod_watch_events += value,
                "apiserver_request_total" if label("verb") == "LIST" && label("subresource").is_empty() => counters.pod_lists += value,
                "apiserver_request_total" if label("subresource") == "status" && matches!(label("verb"), "PATCH" | "PUT") => {
                    counters.pod_status_writes += value;
                }
                _ => {}
            }
        }
        counters
    }

    /// The increase from `before` to these.
    fn since(&self, before: &Self) -> Self {
        Self {
            pod_watches_closed_as_slow: self.pod_watches_closed_as_slow - before.pod_watches_closed_as_slow,
            pod_lists: self.pod_lists - before.pod_lists,
            pod_watch_events: self.pod_watch_events - before.pod_watch_events,
            pod_status_writes: self.pod_status_writes - before.pod_status_writes,
        }
    }
}

/// The figures at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    at: std::time::Instant,
    cpu_s: BTreeMap<String, f64>,
    counters: Counters,
}

impl Probe {
    /// For `client`'s apiserver; CPU only for the components of `plane`, if it is ours.
    pub fn new(client: Client, plane: Option<&ControlPlane>) -> Self {
        let pids = plane.map(|p| COMPONENTS.iter().filter_map(|name| Some((*name, p.pid(name)?))).collect()).unwrap_or_default();
        Self { client, pids }
    }

    /// The figures now; counters stay zero if `/metrics` cannot be read.
    pub async fn snapshot(&self) -> Snapshot {
        let request = http::Request::get("/metrics").body(Vec::new());
        let text = match request {
            Ok(request) => self.client.request_text(request).await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let cpu_s = self.pids.iter().map(|(name, pid)| ((*name).to_string(), Usage::of_process(*pid).cpu_s)).collect();
        Snapshot { at: std::time::Instant::now(), cpu_s, counters: Counters::parse(&text) }
    }
}

impl PlaneLoad {
    /// What happened between two snapshots.
    pub fn between(before: &Snapshot, after: &Snapshot) -> Self {
        let seconds = after.at.duration_since(before.at).as_secs_f64();
        let cores = after
            .cpu_s
            .iter()
            .map(|(name, cpu)| (name.clone(), if seconds > 0.0 { (cpu - before.cpu_s.get(name).copied().unwrap_or(0.0)) / seconds } else { 0.0 }))
            .collect();
        Self { cores, counters: after.counters.since(&before.counters) }
    }

    /// One line of the table: cores per component, then the Pod counters per Pod of the phase.
    pub fn line(&self, pods: usize) -> String {
        let mut cores: Vec<(&String, &f64)> = self.cores.iter().collect();
        cores.sort_by(|a, b| b.1.total_cmp(a.1));
        let cores = cores.iter().map(|(name, c)| format!("{name} {c:.2}")).collect::<Vec<_>>().join(", ");
        let per_pod = |v: f64| if pods > 0 { v / pods as f64 } else { 0.0 };
        format!(
            "cores {}; Pod watches closed as too slow {:.0}, Pod LISTs {:.0}, per Pod {:.1} watch events and {:.1} status writes",
            if cores.is_empty() { "-".into() } else { cores },
            self.counters.pod_watches_closed_as_slow,
            self.counters.pod_lists,
            per_pod(self.counters.pod_watch_events),
            per_pod(self.counters.pod_status_writes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
# HELP apiserver_terminated_watchers_total [STABLE] Counter of watchers closed due to unresponsiveness
apiserver_terminated_watchers_total{group=\"\",resource=\"pods\"} 48
apiserver_terminated_watchers_total{group=\"\",resource=\"nodes\"} 3
apiserver_watch_events_total{group=\"\",resource=\"pods\",version=\"v1\"} 944052
apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"cluster\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 44
apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 7
apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1\"} 74494
apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"binding\",verb=\"POST\",version=\"v1\"} 20202
apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"nodes\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1\"} 698
";

    #[test]
    fn the_apiserver_pod_counters_are_summed_over_their_other_labels_and_other_resources_ignored() {
        let counters = Counters::parse(METRICS);
        assert_eq!(
            counters,
            Counters { pod_watches_closed_as_slow: 48.0, pod_lists: 51.0, pod_watch_events: 944_052.0, pod_status_writes: 74_494.0 }
        );
    }

    #[test]
    fn a_phase_is_the_difference_of_its_two_snapshots_and_cores_are_per_second_of_it() {
        let start = std::time::Instant::now();
        let before = Snapshot { at: start, cpu_s: [("kwok".to_string(), 10.0)].into(), counters: Counters { pod_lists: 4.0, ..Counters::default() } };
        let after = Snapshot {
            at: start + std::time::Duration::from_secs(100),
            cpu_s: [("kwok".to_string(), 52.0)].into(),
            counters: Counters { pod_lists: 44.0, pod_watch_events: 2_000.0, ..Counters::default() },
        };
        let load = PlaneLoad::between(&before, &after);
        assert_eq!(load.cores["kwok"], 0.42);
        assert_eq!((load.counters.pod_lists, load.counters.pod_watch_events), (40.0, 2_000.0));
        assert_eq!(load.line(1_000), "cores kwok 0.42; Pod watches closed as too slow 0, Pod LISTs 40, per Pod 2.0 watch events and 0.0 status writes");
    }
}
