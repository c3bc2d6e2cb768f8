//! Test support for end-to-end tests: one local control plane per test run, a fresh namespace per test.
//!
//! ```text
//! let ns = wasmray_tests::namespace("gpu-pods-bind-to-gpu-nodes").await?;
//! // … create objects in ns.name with ns.client …
//! ```
//!
//! - If `WASMRAY_TEST_KUBECONFIG` names a kubeconfig (as `tests/run` does after `wasmray dev
//!   up`), every test binary shares that control plane.
//! - Otherwise the first test to ask starts one for this test binary, in a temporary directory,
//!   with its components tied to this process: however the process ends (pass, panic, abort,
//!   Ctrl-C) the kernel kills them. Directories left by earlier runs are removed on the next start.
//! - Each test gets its own namespace (labelled with the test's name), deleted when the
//!   [`TestNamespace`] is dropped, also on panic.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use wasmray::dev::{ControlPlane, Lifetime, NodeSet, Options};

pub mod fixtures;
pub mod helm;
pub mod ray;
pub mod rayjobs;
pub mod rayservices;

pub use wasmray::dev::kwok;

/// The environment variable naming a running control plane's kubeconfig to reuse.
pub const KUBECONFIG_ENV: &str = "WASMRAY_TEST_KUBECONFIG";

/// The control plane tests run against.
#[derive(Debug)]
pub struct TestCluster {
    kubeconfig: PathBuf,
    // Kept alive for the life of the process; its components die with it.
    _owned: Option<ControlPlane>,
}

impl TestCluster {
    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A new admin client. Clients are per test: each `#[tokio::test]` has its own runtime, and a
    /// client's connections live on the runtime that opened them.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(wasmray::dev::client_for(&self.kubeconfig).await?)
    }
}

/// The control plane for this test run, started on first use.
pub async fn cluster() -> anyhow::Result<&'static TestCluster> {
    static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
    // Started on a thread of its own: `OnceLock` blocks other tests until it is ready, and the
    // control plane must not depend on any one test's runtime.
    let result = tokio::task::spawn_blocking(|| {
        CLUSTER.get_or_init(|| std::thread::spawn(start_or_reuse).join().unwrap_or_else(|_| Err("panicked".into())))
    })
    .await?;
    result.as_ref().map_err(|e| anyhow::anyhow!("the test control plane could not start: {e}"))
}

fn start_or_reuse() -> Result<TestCluster, String> {
    if let Some(kubeconfig) = std::env::var_os(KUBECONFIG_ENV) {
        return Ok(TestCluster { kubeconfig: kubeconfig.into(), _owned: None });
    }
    remove_stale_dirs();
    let dir = std::env::temp_dir().join(format!("wasmray-test-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options { nodes: test_nodes(), lifetime: Lifetime::TiedToThisProcess, ..Options::new(&dir) };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let plane = runtime.block_on(ControlPlane::start(options)).map_err(|e| e.to_string())?;
    Ok(TestCluster { kubeconfig: plane.kubeconfig().to_path_buf(), _owned: Some(plane) })
}

/// The node set of end-to-end tests (`tests/nodes.yaml`, which `tests/run` passes to `wasmray dev
/// up` too): the default CPU and A100 nodes, GKE CPU and TPU node pools, and AMD GPU nodes.
pub fn test_nodes() -> NodeSet {
    NodeSet::from_yaml(include_str!("../nodes.yaml")).expect("tests/nodes.yaml is a valid node set")
}

fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("wasmray-test-cluster-")) else { continue };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A namespace of one test, deleted on drop.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    /// An admin client (on the calling test's runtime).
    pub client: Client,
    kubeconfig: PathBuf,
}

/// Creates a fresh namespace for `test` on the test control plane.
pub async fn namespace(test: &str) -> anyhow::Result<TestNamespace> {
    let cluster = cluster().await?;
    let client = cluster.client().await?;
    let name = namespace_name(test, &random_suffix()?);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("wasmray.dev/test".to_string(), label_value(test))].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &ns).await.with_context(|| format!("creating namespace {name}"))?;
    let ns = TestNamespace { name, client, kubeconfig: cluster.kubeconfig().to_path_buf() };
    // Pods are refused until the ServiceAccount controller has made `default`.
    let accounts: Api<ServiceAccount> = ns.api();
    ns.wait_until(&accounts, "default", |sa: Option<&ServiceAccount>| sa.is_some(), Duration::from_secs(30)).await?;
    Ok(ns)
}

impl TestNamespace {
    /// The control plane's admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// An `Api` for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Waits until `condition` holds for the object `name`, or fails after `timeout` with the
    /// object's last state in the message.
    pub async fn wait_until<K>(
        &self,
        api: &Api<K>,
        name: &str,
        condition: impl Condition<K>,
        timeout: Duration,
    ) -> anyhow::Result<K>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        within(timeout, await_condition(api.clone(), name, condition))
            .await
            .with_context(|| format!("waiting for {name} in {}", self.name))
            .and_then(|r| r.map_err(Into::into))?
            .with_context(|| format!("{name} in {} was deleted while waited for", self.name))
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime (possibly single-threaded), so the delete runs
        // on a thread with a runtime and client of its own.
        let (name, kubeconfig) = (self.name.clone(), self.kubeconfig.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().ok()?;
            runtime.block_on(async {
                let client = wasmray::dev::client_for(&kubeconfig).await.ok()?;
                let api: Api<Namespace> = Api::all(client);
                api.delete(&name, &DeleteParams::background()).await.ok()
            })
        })
        .join();
    }
}

/// Installs (or re-applies) wasmray's CRDs with server-side apply and waits until they are served.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    wasmray::crd::install(client).await
}

/// Installs the stand-in CRDs of `tests/fixtures/batch-scheduler-crds.yaml` (Volcano and KAI
/// Queues, and the PodGroups of the batch-scheduler plugins), so that samples' Queues apply
/// unchanged and plugins' PodGroups can be created. No scheduler runs behind them.
pub async fn install_batch_scheduler_crds(client: &Client) -> anyhow::Result<()> {
    install_crd_fixture(client, include_str!("../fixtures/batch-scheduler-crds.yaml")).await
}

/// Installs the CRDs of a fixture file (YAML documents) and waits until each is Established.
pub async fn install_crd_fixture(client: &Client, text: &str) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    use serde::Deserialize as _;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Parsed before the first await: the YAML reader is not Send.
    let parsed: Vec<CustomResourceDefinition> =
        serde_yaml::Deserializer::from_str(text).map(CustomResourceDefinition::deserialize).collect::<Result<_, _>>()?;
    for crd in parsed {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &PatchParams::apply("wasmray-tests").force(), &Patch::Apply(&crd)).await?;
        within(Duration::from_secs(30), await_condition(crds.clone(), &name, kube::runtime::wait::conditions::is_crd_established()))
            .await
            .with_context(|| format!("CRD {name} was not Established"))??;
    }
    Ok(())
}

/// A control plane of one test alone (the test nodes, wasmray's CRDs, and the namespace
/// `namespace`), for tests whose faults or cluster-wide fixtures must touch no other test.
/// Its components stop when it is dropped, or with the test process.
pub async fn control_plane_of_its_own(test: &str, namespace: &str) -> anyhow::Result<(ControlPlane, Client)> {
    let dir = std::env::temp_dir().join(format!("wasmray-own-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options { nodes: test_nodes(), lifetime: Lifetime::TiedToThisProcess, ..Options::new(&dir) };
    let plane = ControlPlane::start(options).await?;
    let client = plane.client().await?;
    install_crds(&client).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let body: Namespace = serde_json::from_value(serde_json::json!({ "metadata": { "name": namespace } }))?;
    namespaces.create(&PostParams::default(), &body).await?;
    Ok((plane, client))
}

/// The operator, running in this process for one namespace: the real controller and the
/// built-in reconciler component, as `wasmray run --namespace NS` would. Stopped on drop.
pub struct Operator {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    started: StartedOperator,
}

impl TestNamespace {
    /// Installs the CRDs and starts an operator watching this namespace only, so tests run side
    /// by side without seeing each other's objects.
    pub async fn operator(&self) -> anyhow::Result<Operator> {
        install_crds(&self.client).await?;
        start_operator(self.kubeconfig.clone(), Some(self.name.clone()), None)
    }

    /// As [`TestNamespace::operator`], with every Pod going through the built-in batch-scheduler
    /// plugin `name` (`wasmray run --batch-scheduler NAME`).
    pub async fn operator_with_batch_scheduler(&self, name: &str) -> anyhow::Result<Operator> {
        install_crds(&self.client).await?;
        start_operator(self.kubeconfig.clone(), Some(self.name.clone()), Some(name.to_string()))
    }

    /// As [`TestNamespace::operator`], with this namespace as the operator's and its plugin
    /// configuration in the ConfigMap `config_map` (`wasmray run --operator-namespace NS
    /// --plugins-config-map NAME --batch-scheduler SCHEDULER`), swapped in while it runs.
    pub async fn operator_with_plugins_config_map(
        &self,
        config_map: &str,
        batch_scheduler: Option<&str>,
    ) -> anyhow::Result<Operator> {
        install_crds(&self.client).await?;
        let plugins = wasmray::plugin::ConfigLocation::ConfigMap(config_map.into());
        start_operator_with_plugins(self.kubeconfig.clone(), self.name.clone(), batch_scheduler.map(Into::into), plugins)
    }
}

impl TestNamespace {
    /// As [`TestNamespace::operator`], with every Ray dashboard reached at `dashboard` (a local
    /// Ray head's `127.0.0.1:<port>`) instead of the head Service a RayJob's status names.
    pub async fn operator_with_dashboard(&self, dashboard: &str) -> anyhow::Result<Operator> {
        self.operator_with_dashboard_and_flags(dashboard, &[]).await
    }

    /// As [`TestNamespace::operator_with_dashboard`], with more of `wasmray run`'s flags.
    pub async fn operator_with_dashboard_and_flags(&self, dashboard: &str, extra: &[&str]) -> anyhow::Result<Operator> {
        install_crds(&self.client).await?;
        let mut flags = vec!["--operator-namespace".to_string(), self.name.clone(), "--watch-namespace".into(), self.name.clone()];
        flags.extend(extra.iter().map(ToString::to_string));
        let mut settings = operator_settings(self.kubeconfig.clone(), flags)?;
        let dashboard = dashboard.to_string();
        settings.dashboard_resolver = Some(std::sync::Arc::new(move |_: &str, _: &str| dashboard.clone()));
        start_operator_with_settings(settings)
    }
}

/// Starts an operator on a thread of its own (its runtime must outlive any one test's), with
/// the built-in plugins only.
pub fn start_operator(
    kubeconfig: PathBuf,
    namespace: Option<String>,
    batch_scheduler: Option<String>,
) -> anyhow::Result<Operator> {
    let operator_namespace = namespace.clone().unwrap_or_else(|| "default".into());
    let mut flags = vec!["--operator-namespace".to_string(), operator_namespace];
    flags.extend(namespace.map(|ns| ["--watch-namespace".to_string(), ns]).into_iter().flatten());
    flags.extend(batch_scheduler.map(|s| ["--batch-scheduler".to_string(), s]).into_iter().flatten());
    run_operator(kubeconfig, flags)
}

/// As [`start_operator`] for one namespace, which is also the operator's (where its plugins
/// ConfigMap and ConfigMap sources are), with plugins configured at `plugins` as well.
pub fn start_operator_with_plugins(
    kubeconfig: PathBuf,
    namespace: String,
    batch_scheduler: Option<String>,
    plugins: wasmray::plugin::ConfigLocation,
) -> anyhow::Result<Operator> {
    let mut flags = vec!["--watch-namespace".to_string(), namespace.clone(), "--operator-namespace".into(), namespace];
    flags.extend(batch_scheduler.map(|s| ["--batch-scheduler".to_string(), s]).into_iter().flatten());
    match plugins {
        wasmray::plugin::ConfigLocation::File(path) => flags.extend(["--plugins".to_string(), path.display().to_string()]),
        wasmray::plugin::ConfigLocation::ConfigMap(name) => flags.extend(["--plugins-config-map".to_string(), name]),
        wasmray::plugin::ConfigLocation::BuiltinsOnly => {}
    }
    run_operator(kubeconfig, flags)
}

/// Starts an operator in this process as `wasmray run --kubeconfig K FLAGS…` would, with no
/// endpoints and no leader election unless the flags ask for them (tests run side by side).
pub fn run_operator(kubeconfig: PathBuf, flags: Vec<String>) -> anyhow::Result<Operator> {
    start_operator_with_settings(operator_settings(kubeconfig, flags)?)
}

/// The settings [`run_operator`] starts with, to change what no flag reaches first.
pub fn operator_settings(kubeconfig: PathBuf, flags: Vec<String>) -> anyhow::Result<wasmray::operator::Settings> {
    let mut argv = vec![
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
        "--metrics-addr=0".into(),
        "--health-probe-bind-address=0".into(),
        "--enable-leader-election=false".into(),
    ];
    argv.extend(flags);
    let args = wasmray::operator::RunArgs::from_flags(&argv)?;
    Ok(wasmray::operator::Settings::read(args, &|_| None)?)
}

/// Starts an operator with these settings on a thread of its own; returns once it has loaded
/// its plugins (or failed to).
pub fn start_operator_with_settings(settings: wasmray::operator::Settings) -> anyhow::Result<Operator> {
    // `WASMRAY_TEST_LOG=wasmray=debug` shows the operator's logs in a test's output.
    if let Ok(filter) = std::env::var("WASMRAY_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_test_writer().try_init();
    }
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<StartedOperator, String>>();
    let thread = std::thread::Builder::new().name("wasmray-operator".into()).spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        runtime.block_on(async move {
            let operator = match wasmray::operator::Operator::start(settings).await {
                Ok(operator) => operator,
                Err(error) => {
                    let _ = ready_tx.send(Err(format!("{error:#}")));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(StartedOperator { metrics: operator.metrics_addr, health: operator.health_addr }));
            if let Err(error) = operator
                .run(async {
                    let _ = shutdown_rx.await;
                })
                .await
            {
                eprintln!("the operator stopped: {error:#}");
            }
        });
    })?;
    match ready_rx.recv() {
        Ok(Ok(started)) => Ok(Operator { shutdown: Some(shutdown_tx), thread: Some(thread), started }),
        Ok(Err(error)) => anyhow::bail!("the operator could not start: {error}"),
        Err(_) => anyhow::bail!("the operator thread died while starting"),
    }
}

struct StartedOperator {
    metrics: Option<std::net::SocketAddr>,
    health: Option<std::net::SocketAddr>,
}

impl Operator {
    /// Where its `/metrics` is served, if it serves it.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.started.metrics
    }

    /// Where its `/healthz` and `/readyz` are served, if it serves them.
    pub fn health_addr(&self) -> Option<std::net::SocketAddr> {
        self.started.health
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `wasmray` binary: `$WASMRAY_BIN` (tests/run sets it), else the one cargo built next to
/// this test binary (`target/debug/deps/..`).
pub fn wasmray_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMRAY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent().and_then(|deps| deps.parent()).expect("target/debug/deps").join("wasmray")
}

/// The body of `GET path` on a local endpoint, with its status code.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("an HTTP status line")?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The value of one sample in Prometheus text (`name{labels}` exactly as `line_prefix`), if present.
pub fn metric(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(line_prefix) && l[line_prefix.len()..].starts_with(' ')).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Runs `future`, failing after `timeout`.
pub async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(timeout, future).await.with_context(|| format!("timed out after {timeout:?}"))
}

fn namespace_name(test: &str, suffix: &str) -> String {
    let mut base: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    base.truncate(63 - suffix.len() - 1);
    let base = base.trim_matches('-');
    format!("{base}-{suffix}")
}

fn label_value(test: &str) -> String {
    let mut value: String =
        test.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '-' }).collect();
    value.truncate(63);
    value.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

fn random_suffix() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 3];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Applies the sample file as a user would: `kubectl apply --server-side`, into the test namespace.
/// (kubectl reads YAML 1.1, as KubeRay's users do: `defaultMode: 0777` is the number 511, where
/// a YAML 1.2 reader would send the string "0777".)
pub async fn kubectl_apply(ns: &TestNamespace, file: &Path) -> anyhow::Result<()> {
    let file = file.display().to_string();
    kubectl(ns, &["apply", "--server-side", "--force-conflicts", "--field-manager=wasmray-tests", "-f", &file]).await
}

/// Runs `kubectl ARGS… --namespace NS` against the test control plane; fails with its stderr.
pub async fn kubectl(ns: &TestNamespace, args: &[&str]) -> anyhow::Result<()> {
    let kubeconfig = cluster().await?.kubeconfig().to_path_buf();
    let output = tokio::process::Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .args(["--namespace", &ns.name])
        .output()
        .await
        .context("running kubectl (tests/run installs it)")?;
    anyhow::ensure!(output.status.success(), "kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// `$WASMRAY_KUBECTL` (set by tests/run), else the one tests/run installs in the cache, else `kubectl`.
pub fn kubectl_path() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMRAY_KUBECTL") {
        return path.into();
    }
    let cached = wasmray::dev::cache_root().join("venv/bin/kubectl");
    if cached.exists() {
        cached
    } else {
        "kubectl".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_nodes_are_the_default_ones_plus_tpu_slices_and_amd_gpus() {
        let names: Vec<String> = test_nodes().to_nodes().into_iter().filter_map(|n| n.metadata.name).collect();
        for default in NodeSet::default().to_nodes().into_iter().filter_map(|n| n.metadata.name) {
            assert!(names.contains(&default), "{default} is missing from {names:?}");
        }
        for extra in ["tpu-v4-2x2x1-0", "tpu-v4-2x2x2-1", "tpu-v6e-2x2-0", "tpu-v6e-4x4-3", "amd-gpu-1", "n4-0"] {
            assert!(names.contains(&extra.to_string()), "{extra} is missing from {names:?}");
        }
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        let name = namespace_name("GPU pods bind to GPU nodes!", "a1b2c3");
        assert_eq!(name, "gpu-pods-bind-to-gpu-nodes-a1b2c3");
        let long = namespace_name(&"x".repeat(100), "a1b2c3");
        assert_eq!(long.len(), 63);
    }
}
