//! `wasmray run`'s settings: KubeRay's flags, its `--config` file and its environment variables,
//! read into one [`Settings`] value; a bad value is an error naming the flag, key or variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde::Deserialize;

use crate::controller;
use crate::plugin::watch::ConfigLocation;
use crate::pods::BuildContext;

/// Arguments of `wasmray run` (KubeRay's operator flags, plus the plugin registry's).
#[derive(Clone, Debug, Default, Args)]
pub struct RunArgs {
    /// The kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces to watch, comma-separated; empty watches all (KubeRay's `--watch-namespace`).
    #[arg(long, alias = "namespace", value_name = "NS[,NS]")]
    pub watch_namespace: Option<String>,
    /// Where `/metrics` is served (`host:port`, `:port` for every interface, `0` for nowhere).
    #[arg(long, default_value = ":8080")]
    pub metrics_addr: String,
    /// Where `/healthz` and `/readyz` are served (`0` for nowhere).
    #[arg(long, default_value = ":8082")]
    pub health_probe_bind_address: String,
    /// Only the holder of a coordination.k8s.io Lease reconciles; the others stand by.
    #[arg(long, default_value = "true", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub enable_leader_election: String,
    /// The Lease's namespace (default: the operator's namespace).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// The Lease's name.
    #[arg(long, default_value = "ray-operator-leader")]
    pub leader_election_id: String,
    /// Reconciles running at once, per controller.
    #[arg(long, alias = "concurrency", default_value_t = 8)]
    pub reconcile_concurrency: u16,
    /// Requests per second to the API server, on average.
    #[arg(long, default_value_t = 100.0)]
    pub qps: f32,
    /// Requests to the API server allowed in a burst.
    #[arg(long, default_value_t = 200)]
    pub burst: u32,
    /// Writes under way at once; writes take turns by primary within this and `--qps`/`--burst`.
    #[arg(long, default_value_t = 16)]
    pub writes_in_flight: usize,
    /// Feature gates, `Name=true|false` comma-separated (KubeRay's gates).
    #[arg(long, default_value = "")]
    pub feature_gates: String,
    /// Log format on standard error: `console` or `json`.
    #[arg(long, default_value = "console")]
    pub log_stdout_encoder: String,
    /// A KubeRay `Configuration` file (`config.ray.io/v1alpha1`); as in KubeRay, its fields
    /// replace the flags of the same meaning.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The batch scheduler every Pod goes through, as KubeRay's flag of the same name:
    /// `volcano`, `yunikorn`, `kai-scheduler` or `scheduler-plugins` (the built-in plugin
    /// `wasmray-plugin-<name>`), or the name of a batch-scheduler plugin in the configuration.
    #[arg(long)]
    pub batch_scheduler: Option<String>,
    /// Deprecated in KubeRay: `true` without `--batch-scheduler` means Volcano.
    #[arg(long, default_value = "false", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub enable_batch_scheduler: String,
    /// A plugin configuration file; its entries override the built-in ones by name, and
    /// changes to it (or to the files and ConfigMap keys it names) are swapped in while running.
    #[arg(long, conflicts_with = "plugins_config_map")]
    pub plugins: Option<PathBuf>,
    /// A ConfigMap in the operator's namespace whose key `plugins.yaml` is the plugin
    /// configuration (as `--plugins`); changes to it, or to the ConfigMap keys it names, are
    /// swapped in while running, and every version loaded or rejected gets an Event.
    #[arg(long)]
    pub plugins_config_map: Option<String>,
    /// The operator's own namespace, where the plugins ConfigMap, ConfigMap sources and the
    /// Lease are (default: $POD_NAMESPACE, else the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// The field manager of every write.
    #[arg(long, default_value = "wasmray")]
    pub field_manager: String,
    /// Where compiled components are cached across restarts (default: `compiled/` in
    /// $WASMRAY_CACHE_DIR or ~/.cache/wasmray); one that cannot be written, such as a read-only
    /// root filesystem, means compiling in memory at every start.
    #[arg(long, env = "WASMRAY_COMPILE_CACHE_DIR")]
    pub compile_cache_dir: Option<PathBuf>,
}

/// A setting that cannot be used; the operator does not start.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("--{flag}: {value:?} is not {expected}")]
    Flag { flag: &'static str, value: String, expected: &'static str },
    #[error("--feature-gates: unknown feature gate {0:?} (known: {known})", known = KNOWN_GATES.join(", "))]
    UnknownGate(String),
    #[error("environment variable {name}: {value:?} is not {expected}")]
    Env { name: &'static str, value: String, expected: &'static str },
    #[error("--config {path}: {reason}")]
    ConfigFile { path: String, reason: String },
}

/// KubeRay's feature gates and their v1.5 defaults.
const GATES: &[(&str, bool)] = &[
    ("RayClusterStatusConditions", true),
    ("RayJobDeletionPolicy", false),
    ("RayMultiHostIndexing", false),
    ("RayServiceIncrementalUpgrade", false),
];
const KNOWN_GATES: &[&str] = &["RayClusterStatusConditions", "RayJobDeletionPolicy", "RayMultiHostIndexing", "RayServiceIncrementalUpgrade"];

/// Feature gates, each on or off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureGates(BTreeMap<&'static str, bool>);

impl Default for FeatureGates {
    fn default() -> Self {
        Self(GATES.iter().copied().collect())
    }
}

impl FeatureGates {
    /// `Name=true,Other=false`; an unknown name or a value that is not a bool is an error.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let mut gates = Self::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item.split_once('=').ok_or_else(|| SettingsError::Flag {
                flag: "feature-gates",
                value: item.into(),
                expected: "Name=true or Name=false",
            })?;
            let slot = gates.0.keys().copied().find(|k| *k == name.trim()).ok_or_else(|| SettingsError::UnknownGate(name.trim().into()))?;
            let on = parse_bool(value.trim()).ok_or_else(|| SettingsError::Flag { flag: "feature-gates", value: item.into(), expected: "Name=true or Name=false" })?;
            gates.0.insert(slot, on);
        }
        Ok(gates)
    }

    pub fn enabled(&self, gate: &str) -> bool {
        self.0.get(gate).copied().unwrap_or(false)
    }
}

/// Where to serve one endpoint.
pub type Bind = Option<SocketAddr>;

/// Leader election, when on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's namespace; `None` is the operator's namespace.
    pub namespace: Option<String>,
    pub name: String,
}

/// Everything `wasmray run` was told.
#[derive(Clone)]
pub struct Settings {
    pub kubeconfig: Option<PathBuf>,
    /// Namespace scopes: `[None]` for all namespaces, else one per watched namespace.
    pub scopes: Vec<Option<String>>,
    pub metrics_addr: Bind,
    pub health_addr: Bind,
    pub leader_election: Option<LeaderElection>,
    pub qps: f32,
    pub burst: u32,
    pub writes_in_flight: usize,
    pub gates: FeatureGates,
    pub log_json: bool,
    pub plugins: ConfigLocation,
    pub operator_namespace: Option<String>,
    pub field_manager: String,
    pub compile_cache_dir: Option<PathBuf>,
    /// The controllers' settings (builders, requeue, concurrency, batch scheduler, gates).
    pub controller: controller::Config,
    /// What the reconcilers are told of the operator's settings (the settings fact).
    pub redis_cleanup: bool,
    /// `ENABLE_ZERO_DOWNTIME`: false keeps RayServices with no `upgradeStrategy.type` from
    /// rolling out cluster spec changes, as KubeRay does.
    pub zero_downtime: bool,
    /// `DELETE_RAYJOB_CR_AFTER_JOB_FINISHES`.
    pub delete_rayjob_after_finish: bool,
    /// `RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS`.
    pub rayjob_grace_period_s: Option<u64>,
    /// v1.7's `RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS`: how long a running RayJob's dashboard may
    /// fail to answer before the RayJob fails (the reconciler's default is 300).
    pub rayjob_status_check_timeout_s: Option<u64>,
    /// `USE_INGRESS_ON_OPENSHIFT`: an Ingress for the dashboard even where Routes exist.
    pub use_ingress_on_openshift: bool,
    /// Whether the apiserver serves OpenShift's API groups (found at start, as KubeRay does): the
    /// dashboard then gets a Route instead of an Ingress, unless `use_ingress_on_openshift`.
    pub openshift: bool,
    /// Whether the apiserver serves the Gateway API (`gateway.networking.k8s.io`), read at start:
    /// RayServices' Gateways and HTTPRoutes are then cached.
    pub gateway_api: bool,
    /// Where Ray dashboards are reached (default: the address a status names). Only code that
    /// embeds the operator sets it — tests point it at a local Ray; no flag does, because the
    /// cluster's auth token is sent wherever it points.
    pub dashboard_resolver: Option<crate::ray::poller::Resolver>,
}

/// KubeRay's `Configuration` (`config.ray.io/v1alpha1`), as its `--config` file holds it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigFile {
    kind: Option<String>,
    metrics_addr: Option<String>,
    probe_addr: Option<String>,
    enable_leader_election: Option<bool>,
    leader_election_namespace: Option<String>,
    reconcile_concurrency: Option<u16>,
    watch_namespace: Option<String>,
    log_stdout_encoder: Option<String>,
    enable_batch_scheduler: Option<bool>,
    batch_scheduler: Option<String>,
    head_sidecar_containers: Option<Vec<Container>>,
    worker_sidecar_containers: Option<Vec<Container>>,
    default_container_envs: Option<Vec<EnvVar>>,
    qps: Option<f32>,
    burst: Option<u32>,
    // Keys KubeRay's files carry that change nothing here (log files, the API proxy, the
    // metrics switch, RayJob deletion), accepted so that its files load unchanged.
    #[allow(dead_code)]
    api_version: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    forced_cluster_upgrade: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    log_file: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    log_file_encoder: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    use_kubernetes_proxy: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    delete_ray_job_after_job_finishes: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    enable_metrics: Option<serde::de::IgnoredAny>,
}

impl Settings {
    /// Reads `args`, its `--config` file if any, and the environment through `env`.
    ///
    /// # Errors
    ///
    /// The first setting that cannot be used, named.
    pub fn read(mut args: RunArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut build = BuildContext::default();
        if let Some(path) = args.config.clone() {
            let fail = |reason: String| SettingsError::ConfigFile { path: path.display().to_string(), reason };
            let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
            let file: ConfigFile = serde_yaml::from_str(&text).map_err(|e| fail(e.to_string()))?;
            if file.kind.as_deref().is_some_and(|k| k != "Configuration") {
                return Err(fail(format!("kind is {:?}, not Configuration", file.kind.unwrap_or_default())));
            }
            // As in KubeRay, the file's fields replace the flags of the same meaning.
            if let Some(v) = file.metrics_addr { args.metrics_addr = v }
            if let Some(v) = file.probe_addr { args.health_probe_bind_address = v }
            if let Some(v) = file.enable_leader_election { args.enable_leader_election = v.to_string() }
            if let Some(v) = file.leader_election_namespace.filter(|n| !n.is_empty()) { args.leader_election_namespace = Some(v) }
            if let Some(v) = file.reconcile_concurrency { args.reconcile_concurrency = v }
            if let Some(v) = file.watch_namespace { args.watch_namespace = Some(v) }
            if let Some(v) = file.log_stdout_encoder { args.log_stdout_encoder = v }
            if let Some(v) = file.enable_batch_scheduler { args.enable_batch_scheduler = v.to_string() }
            if let Some(v) = file.batch_scheduler.filter(|s| !s.is_empty()) { args.batch_scheduler = Some(v) }
            if let Some(v) = file.qps { args.qps = v }
            if let Some(v) = file.burst { args.burst = v }
            build.head_sidecar_containers = file.head_sidecar_containers.unwrap_or_default();
            build.worker_sidecar_containers = file.worker_sidecar_containers.unwrap_or_default();
            build.default_container_envs = file.default_container_envs.unwrap_or_default();
        }

        let gates = FeatureGates::parse(&args.feature_gates)?;
        build.multi_host_indexing = gates.enabled("RayMultiHostIndexing");
        if let Some(domain) = env("CLUSTER_DOMAIN").filter(|d| !d.is_empty()) {
            build.cluster_domain = domain;
        }
        build.enable_init_container_injection = env_bool(env, "ENABLE_INIT_CONTAINER_INJECTION", true)?;
        build.enable_probes_injection = env_bool(env, "ENABLE_PROBES_INJECTION", true)?;
        build.enable_login_shell = env_bool(env, "ENABLE_LOGIN_SHELL", false)?;
        build.deterministic_head_pod_name = env_bool(env, "ENABLE_DETERMINISTIC_HEAD_POD_NAME", false)?;
        build.enable_ray_head_cluster_ip_service = env_bool(env, "ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE", false)?;
        let redis_cleanup = env_bool(env, "ENABLE_GCS_FT_REDIS_CLEANUP", true)?;
        let zero_downtime = env_bool(env, "ENABLE_ZERO_DOWNTIME", true)?;
        let delete_rayjob_after_finish = env_bool(env, "DELETE_RAYJOB_CR_AFTER_JOB_FINISHES", false)?;
        let rayjob_grace_period_s = env_seconds(env, "RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS")?;
        let rayjob_status_check_timeout_s = env_seconds(env, "RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS")?;
        let use_ingress_on_openshift = env_bool(env, "USE_INGRESS_ON_OPENSHIFT", false)?;
        let default_requeue = match env("RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV").filter(|v| !v.is_empty()) {
            Some(value) => match value.trim().parse::<u64>() {
                Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
                _ => return Err(SettingsError::Env { name: "RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV", value, expected: "a positive number of seconds" }),
            },
            None => Duration::from_secs(300),
        };

        let leader = parse_flag_bool("enable-leader-election", &args.enable_leader_election)?;
        let batch_scheduler = match (args.batch_scheduler.filter(|s| !s.is_empty()), parse_flag_bool("enable-batch-scheduler", &args.enable_batch_scheduler)?) {
            (Some(name), _) => Some(name),
            (None, true) => Some("volcano".to_string()),
            (None, false) => None,
        };
        if args.reconcile_concurrency == 0 {
            return Err(SettingsError::Flag { flag: "reconcile-concurrency", value: "0".into(), expected: "a positive number" });
        }
        if !(args.qps.is_finite() && args.qps > 0.0) {
            return Err(SettingsError::Flag { flag: "qps", value: args.qps.to_string(), expected: "a positive number" });
        }
        if args.burst == 0 {
            return Err(SettingsError::Flag { flag: "burst", value: "0".into(), expected: "a positive number" });
        }
        if args.writes_in_flight == 0 {
            return Err(SettingsError::Flag { flag: "writes-in-flight", value: "0".into(), expected: "a positive number" });
        }
        let log_json = match args.log_stdout_encoder.as_str() {
            "json" => true,
            "console" | "" => false,
            other => return Err(SettingsError::Flag { flag: "log-stdout-encoder", value: other.into(), expected: "json or console" }),
        };
        let namespaces: Vec<String> =
            args.watch_namespace.unwrap_or_default().split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
        let scopes = if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
        let plugins = match (args.plugins, args.plugins_config_map) {
            (Some(path), _) => ConfigLocation::File(path),
            (None, Some(name)) => ConfigLocation::ConfigMap(name),
            (None, None) => ConfigLocation::BuiltinsOnly,
        };
        let mut settings = Settings {
            kubeconfig: args.kubeconfig,
            scopes,
            metrics_addr: parse_bind("metrics-addr", &args.metrics_addr)?,
            health_addr: parse_bind("health-probe-bind-address", &args.health_probe_bind_address)?,
            leader_election: leader.then_some(LeaderElection { namespace: args.leader_election_namespace, name: args.leader_election_id }),
            qps: args.qps,
            burst: args.burst,
            writes_in_flight: args.writes_in_flight,
            log_json,
            plugins,
            operator_namespace: args.operator_namespace,
            field_manager: args.field_manager,
            compile_cache_dir: args.compile_cache_dir,
            controller: controller::Config {
                build,
                default_requeue,
                concurrency: args.reconcile_concurrency,
                batch_scheduler,
                status_conditions: gates.enabled("RayClusterStatusConditions"),
                settings_fact: None,
            },
            gates,
            redis_cleanup,
            zero_downtime,
            delete_rayjob_after_finish,
            rayjob_grace_period_s,
            rayjob_status_check_timeout_s,
            use_ingress_on_openshift,
            openshift: false,
            gateway_api: false,
            dashboard_resolver: None,
        };
        settings.controller.settings_fact = settings.settings_fact();
        Ok(settings)
    }

    /// Whether RayClusters' dashboards get OpenShift Routes (and Routes are cached).
    pub fn routes(&self) -> bool {
        self.openshift && !self.use_ingress_on_openshift
    }

    /// The settings fact every reconciler receives: only what differs from KubeRay's defaults.
    pub fn settings_fact(&self) -> Option<String> {
        let mut fact = serde_json::Map::new();
        if !self.redis_cleanup {
            fact.insert("enableGcsFtRedisCleanup".into(), false.into());
        }
        if !self.zero_downtime {
            fact.insert("enableZeroDowntime".into(), false.into());
        }
        if self.gates.enabled("RayJobDeletionPolicy") {
            fact.insert("rayJobDeletionPolicy".into(), true.into());
        }
        if self.delete_rayjob_after_finish {
            fact.insert("deleteRayJobAfterJobFinishes".into(), true.into());
        }
        if let Some(seconds) = self.rayjob_grace_period_s {
            fact.insert("rayJobTransitionGracePeriodSeconds".into(), seconds.into());
        }
        if let Some(seconds) = self.rayjob_status_check_timeout_s {
            fact.insert("rayJobStatusCheckTimeoutSeconds".into(), seconds.into());
        }
        if self.routes() {
            fact.insert("useOpenShiftRoute".into(), true.into());
        }
        if self.controller.build.cluster_domain != BuildContext::default().cluster_domain {
            fact.insert("clusterDomain".into(), self.controller.build.cluster_domain.clone().into());
        }
        (!fact.is_empty()).then(|| serde_json::Value::Object(fact).to_string())
    }
}

/// `host:port`, `:port` (every interface, as Go writes it), or `0` / empty for nowhere.
fn parse_bind(flag: &'static str, text: &str) -> Result<Bind, SettingsError> {
    let text = text.trim();
    if text.is_empty() || text == "0" {
        return Ok(None);
    }
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    full.parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| SettingsError::Flag { flag, value: text.into(), expected: "an address like :8080 or 127.0.0.1:8080, or 0" })
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_flag_bool(flag: &'static str, text: &str) -> Result<bool, SettingsError> {
    parse_bool(text).ok_or_else(|| SettingsError::Flag { flag, value: text.into(), expected: "true or false" })
}

/// A number of seconds, or `None` when the variable is unset or empty.
fn env_seconds(env: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<u64>, SettingsError> {
    match env(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => match value.trim().parse::<u64>() {
            Ok(seconds) => Ok(Some(seconds)),
            Err(_) => Err(SettingsError::Env { name, value, expected: "a number of seconds" }),
        },
    }
}

fn env_bool(env: &dyn Fn(&str) -> Option<String>, name: &'static str, default: bool) -> Result<bool, SettingsError> {
    match env(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => parse_bool(&value).ok_or(SettingsError::Env { name, value, expected: "true or false" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(flags: &[&str]) -> RunArgs {
        Cli::parse_from(std::iter::once("wasmray").chain(flags.iter().copied())).run
    }

    fn read(flags: &[&str], env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::read(args(flags), &|name| env.get(name).cloned())
    }

    #[test]
    fn the_defaults_are_kuberays() {
        let s = read(&[], &[]).unwrap();
        assert_eq!(s.scopes, [None]);
        assert_eq!(s.metrics_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(s.health_addr, Some("0.0.0.0:8082".parse().unwrap()));
        assert_eq!(s.leader_election, Some(LeaderElection { namespace: None, name: "ray-operator-leader".into() }));
        assert_eq!((s.qps, s.burst), (100.0, 200));
        assert!(s.controller.status_conditions && !s.controller.build.multi_host_indexing);
        assert_eq!(s.controller.default_requeue, Duration::from_secs(300));
        assert_eq!(s.settings_fact(), None);
    }

    #[test]
    fn each_flag_changes_what_it_should() {
        let s = read(
            &[
                "--watch-namespace", "a, b", "--metrics-addr", "127.0.0.1:9090", "--health-probe-bind-address", "0",
                "--enable-leader-election=false", "--reconcile-concurrency", "3", "--qps", "5", "--burst", "7",
                "--feature-gates", "RayMultiHostIndexing=true,RayClusterStatusConditions=false", "--log-stdout-encoder", "json",
                "--enable-batch-scheduler=true",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.scopes, [Some("a".to_string()), Some("b".to_string())]);
        assert_eq!(s.metrics_addr, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(s.health_addr, None);
        assert_eq!(s.leader_election, None);
        assert_eq!(s.controller.concurrency, 3);
        assert_eq!((s.qps, s.burst), (5.0, 7));
        assert!(s.controller.build.multi_host_indexing, "RayMultiHostIndexing reaches the pod builder");
        assert!(!s.controller.status_conditions);
        assert!(s.log_json);
        assert_eq!(s.controller.batch_scheduler.as_deref(), Some("volcano"), "KubeRay's deprecated flag means Volcano");
        assert_eq!(read(&["--namespace", "only"], &[]).unwrap().scopes, [Some("only".to_string())], "the old flag still works");
    }

    #[test]
    fn each_environment_variable_changes_what_it_should() {
        let s = read(
            &[],
            &[
                ("CLUSTER_DOMAIN", "corp.example"),
                ("ENABLE_INIT_CONTAINER_INJECTION", "false"),
                ("ENABLE_PROBES_INJECTION", "FALSE"),
                ("ENABLE_GCS_FT_REDIS_CLEANUP", "false"),
                ("ENABLE_ZERO_DOWNTIME", "false"),
                ("RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV", "42"),
                ("DELETE_RAYJOB_CR_AFTER_JOB_FINISHES", "true"),
                ("RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS", "60"),
                ("RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS", "45"),
            ],
        )
        .unwrap();
        let build = &s.controller.build;
        assert_eq!(build.cluster_domain, "corp.example");
        assert!(!build.enable_init_container_injection && !build.enable_probes_injection);
        assert_eq!(s.controller.default_requeue, Duration::from_secs(42));
        // What the reconcilers decide with reaches them in the settings fact; the RayJob
        // reconciler builds dashboard addresses with the cluster domain.
        let fact: serde_json::Value = serde_json::from_str(&s.settings_fact().unwrap()).unwrap();
        assert_eq!(
            fact,
            serde_json::json!({
                "clusterDomain": "corp.example",
                "enableGcsFtRedisCleanup": false,
                "enableZeroDowntime": false,
                "deleteRayJobAfterJobFinishes": true,
                "rayJobTransitionGracePeriodSeconds": 60,
                "rayJobStatusCheckTimeoutSeconds": 45,
            })
        );
        let gated = read(&["--feature-gates", "RayJobDeletionPolicy=true"], &[]).unwrap();
        assert_eq!(gated.settings_fact().as_deref(), Some(r#"{"rayJobDeletionPolicy":true}"#));
    }

    #[test]
    fn on_openshift_dashboards_get_routes_unless_use_ingress_on_openshift() {
        let mut openshift = read(&[], &[]).unwrap();
        openshift.openshift = true;
        assert_eq!(openshift.settings_fact().as_deref(), Some(r#"{"useOpenShiftRoute":true}"#));
        let mut ingress = read(&[], &[("USE_INGRESS_ON_OPENSHIFT", "true")]).unwrap();
        ingress.openshift = true;
        assert!(!ingress.routes());
        assert_eq!(ingress.settings_fact(), None);
    }

    #[test]
    fn bad_values_name_their_flag_or_variable() {
        let error = |flags: &[&str], env: &[(&str, &str)]| read(flags, env).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(error(&["--feature-gates", "RayTurbo=true"], &[]), format!("--feature-gates: unknown feature gate \"RayTurbo\" (known: {})", KNOWN_GATES.join(", ")));
        assert!(error(&["--feature-gates", "RayMultiHostIndexing=yes"], &[]).starts_with("--feature-gates:"));
        assert!(error(&["--metrics-addr", "everywhere"], &[]).starts_with("--metrics-addr:"));
        assert!(error(&["--enable-leader-election", "maybe"], &[]).starts_with("--enable-leader-election:"));
        assert!(error(&["--log-stdout-encoder", "xml"], &[]).starts_with("--log-stdout-encoder:"));
        assert!(error(&["--reconcile-concurrency", "0"], &[]).starts_with("--reconcile-concurrency:"));
        assert!(error(&[], &[("ENABLE_PROBES_INJECTION", "nope")]).starts_with("environment variable ENABLE_PROBES_INJECTION:"));
        assert!(error(&[], &[("RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV", "soon")]).starts_with("environment variable RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV:"));
        assert_eq!(
            error(&[], &[("RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS", "5m")]),
            "environment variable RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS: \"5m\" is not a number of seconds"
        );
        assert!(error(&[], &[("RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS", "-1")]).contains("is not a number of seconds"));
    }

    #[test]
    fn a_kuberay_configuration_file_replaces_the_flags_and_brings_sidecars_and_envs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, r#"
apiVersion: config.ray.io/v1alpha1
kind: Configuration
metricsAddr: ":9000"
enableLeaderElection: false
reconcileConcurrency: 4
watchNamespace: "team-a"
defaultContainerEnvs:
  - name: HTTPS_PROXY
    value: http://proxy:3128
headSidecarContainers:
  - name: fluent-bit
    image: fluent/fluent-bit:3.0
workerSidecarContainers:
  - name: fluent-bit
    image: fluent/fluent-bit:3.0
"#).unwrap();
        let s = read(&["--config", path.to_str().unwrap(), "--reconcile-concurrency", "9"], &[]).unwrap();
        assert_eq!(s.metrics_addr, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(s.leader_election, None);
        assert_eq!(s.controller.concurrency, 4, "the file wins over the flag, as in KubeRay");
        assert_eq!(s.scopes, [Some("team-a".to_string())]);
        assert_eq!(s.controller.build.default_container_envs[0].name, "HTTPS_PROXY");
        assert_eq!(s.controller.build.head_sidecar_containers[0].name, "fluent-bit");
        assert_eq!(s.controller.build.worker_sidecar_containers.len(), 1);

        std::fs::write(&path, "kind: Configuration\nreconcileConcurency: 4\n").unwrap();
        let error = read(&["--config", path.to_str().unwrap()], &[]).err().unwrap().to_string();
        assert!(error.contains("reconcileConcurency"), "a misspelt key is named: {error}");
    }
}
