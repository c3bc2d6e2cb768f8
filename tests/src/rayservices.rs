//! RayService end-to-end helpers: RayServices that serve the apps of `tests/fixtures/serve`, an operator whose every cluster is one of the test's own Ray heads, waits on a RayService's status, its Events, and the Gateway API CRDs with the test playing the Gateway controller.
//!
//! ```text
//! let heads = Heads::start(2).await?;                 // head A for the first cluster, B for the next
//! let operator = operator(&ns, &heads, &[]).await?;
//! apply(&ns, &a_rayservice("svc")).await?;
//! let ready = wait_for(&ns, "svc", "Ready", is_ready).await?;
//! ```
//!
//! Guarantees:
//! - The operator dials, for each RayCluster, the head that [`Heads`] gave it: the first cluster
//!   name asked about gets the first head, the next name the second, and a cluster beyond the
//!   heads an address where nothing listens (so a surplus cluster is seen stuck, never served
//!   by a head another cluster uses). Dashboard addresses (`<cluster>-head-svc.…:8265`) go to
//!   the head's dashboard, the head Pod's Serve proxy (`<pod IP>:<serve port>`) to its Serve port.
//! - At most [`HEADS_AT_ONCE`] heads run in this process at a time: a test asking for more
//!   waits for earlier tests to drop theirs (two cores, and about 1.3 GiB a head with Serve).
//! - A timed-out wait says what it waited for, the RayService's last status and its Events.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use wasmray_api::{RayCluster, RayService};

use crate::ray::RayHead;
use crate::{Operator, TestNamespace, within};

/// Long enough for a RayService's cluster on KWOK nodes and its Serve apps on a real head to be
/// ready, on a busy two-core machine.
pub const WAIT: Duration = Duration::from_secs(240);
/// Long enough for a whole upgrade: a second cluster, its apps, and every traffic step.
pub const UPGRADE_WAIT: Duration = Duration::from_secs(420);
/// Ray heads alive at once in one test process.
pub const HEADS_AT_ONCE: usize = 2;
/// The environment variable naming the Gateway API module's directory (tests/run sets it).
pub const GATEWAY_API_DIR_ENV: &str = "WASMRAY_GATEWAY_API_DIR";
/// The Ray image of the fixtures' clusters, and the one an upgrade moves them to.
pub const IMAGE: &str = "rayproject/ray:2.54.0";
pub const NEW_IMAGE: &str = "rayproject/ray:2.55.0";

// ---------------------------------------------------------------------------------------------
// RayService fixtures

/// A RayService shaped like KubeRay's `ray-service.sample.yaml` — a head and one small worker
/// group — serving the fixture app `hello` (greeting "hello v1", healthy).
pub fn a_rayservice(name: &str) -> Value {
    let container = |name: &str| {
        json!({
            "name": name, "image": IMAGE,
            "resources": { "requests": { "cpu": "100m", "memory": "256Mi" }, "limits": { "cpu": "1", "memory": "1Gi" } },
        })
    };
    let mut head = container("ray-head");
    head["ports"] = json!([
        { "containerPort": 6379, "name": "gcs-server" },
        { "containerPort": 8265, "name": "dashboard" },
        { "containerPort": 10001, "name": "client" },
        { "containerPort": 8000, "name": "serve" },
    ]);
    json!({
        "apiVersion": "ray.io/v1", "kind": "RayService",
        "metadata": { "name": name },
        "spec": {
            "serveConfigV2": serve_config(&[hello("hello v1")]),
            "rayClusterConfig": {
                "rayVersion": "2.54.0",
                "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [head] } } },
                "workerGroupSpecs": [{
                    "groupName": "small-group", "replicas": 1, "minReplicas": 1, "maxReplicas": 5, "rayStartParams": {},
                    "template": { "spec": { "containers": [container("ray-worker")] } },
                }],
            },
        },
    })
}

/// The fixture app `hello` (`hello:app` at `/hello`), answering `greeting`, healthy.
pub fn hello(greeting: &str) -> Value {
    json!({
        "name": "hello", "route_prefix": "/hello", "import_path": "hello:app",
        "deployments": [{
            "name": "Hello", "num_replicas": 1, "ray_actor_options": { "num_cpus": 0 },
            "user_config": { "greeting": greeting, "healthy": true },
        }],
    })
}

/// The app with its health check failing (`user_config.healthy: false`): a running replica
/// reconfigured so turns UNHEALTHY within seconds; a new one never starts (DEPLOY_FAILED).
pub fn sick(mut app: Value) -> Value {
    for deployment in app["deployments"].as_array_mut().into_iter().flatten() {
        deployment["user_config"]["healthy"] = json!(false);
    }
    app
}

/// The fixture app `broken` (`broken:app` at `/broken`), whose import raises: Serve reports it
/// DEPLOY_FAILED with the error in its message.
pub fn broken() -> Value {
    json!({ "name": "broken", "route_prefix": "/broken", "import_path": "broken:app" })
}

/// What [`broken`]'s import raises, as Serve's message quotes it.
pub const BROKEN_MESSAGE: &str = "the broken app fails on import, on purpose";

/// A `serveConfigV2` (YAML, as users write it) with these applications.
pub fn serve_config(apps: &[Value]) -> String {
    serde_yaml::to_string(&json!({ "applications": apps })).expect("JSON values are YAML")
}

/// The RayService with `serveConfigV2` serving `apps`.
pub fn serving(mut service: Value, apps: &[Value]) -> Value {
    service["spec"]["serveConfigV2"] = json!(serve_config(apps));
    service
}

/// The RayService with every container of its cluster on `image`: a `rayClusterConfig` change,
/// which a zero-downtime upgrade rolls out on a new cluster.
pub fn on_image(mut service: Value, image: &str) -> Value {
    let config = &mut service["spec"]["rayClusterConfig"];
    let groups = config["workerGroupSpecs"].as_array().map_or(0, Vec::len);
    let templates = std::iter::once("/headGroupSpec/template".to_string()).chain((0..groups).map(|i| format!("/workerGroupSpecs/{i}/template")));
    for template in templates {
        let containers = config.pointer_mut(&format!("{template}/spec/containers")).and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten() {
            container["image"] = json!(image);
        }
    }
    service
}

/// The RayService deleting a cluster it no longer uses `seconds` after that.
pub fn deleting_old_clusters_after(mut service: Value, seconds: i32) -> Value {
    service["spec"]["rayClusterDeletionDelaySeconds"] = json!(seconds);
    service
}

/// The RayService upgraded by `NewClusterWithIncrementalUpgrade` through a Gateway of class
/// [`GATEWAY_CLASS`], with the autoscaling it requires.
pub fn upgraded_incrementally(mut service: Value, step_size_percent: i32, interval_seconds: i32, max_surge_percent: i32) -> Value {
    service["spec"]["upgradeStrategy"] = json!({
        "type": "NewClusterWithIncrementalUpgrade",
        "clusterUpgradeOptions": {
            "gatewayClassName": GATEWAY_CLASS, "stepSizePercent": step_size_percent,
            "intervalSeconds": interval_seconds, "maxSurgePercent": max_surge_percent,
        },
    });
    autoscaled(service)
}

/// The RayService upgraded by the `Canary` strategy through a Gateway of class
/// [`GATEWAY_CLASS`], with `options` (JSON of `wasmray.dev/upgrade-options`).
pub fn upgraded_by_canary(mut service: Value, options: Value) -> Value {
    service["metadata"]["annotations"][wasmray_api::serve::UPGRADE_OPTIONS_ANNOTATION] = json!(options.to_string());
    service["spec"]["upgradeStrategy"] = json!({
        "type": "Canary",
        // The Gateway's class; the step options are the annotation's.
        "clusterUpgradeOptions": { "gatewayClassName": GATEWAY_CLASS, "stepSizePercent": 10, "intervalSeconds": 1, "maxSurgePercent": 100 },
    });
    autoscaled(service)
}

/// In-tree autoscaling on, worker replicas left to it.
fn autoscaled(mut service: Value) -> Value {
    service["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = json!(true);
    service
}

// ---------------------------------------------------------------------------------------------
// Ray heads and the operator

/// The Ray heads of one test, each standing in for one RayCluster of it, and the clusters that
/// were given one.
pub struct Heads {
    heads: Vec<RayHead>,
    /// Cluster names in the order they were first asked about; the i-th has head i.
    clusters: Mutex<Vec<String>>,
    _permits: tokio::sync::OwnedSemaphorePermit,
}

/// What the resolver answers for a cluster beyond the heads: nothing listens there.
const NOWHERE: &str = "127.0.0.1:1";

impl Heads {
    /// `count` heads with Serve running (started side by side), once this process has room.
    pub async fn start(count: usize) -> anyhow::Result<Arc<Heads>> {
        static ROOM: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
        let room = ROOM.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(HEADS_AT_ONCE))).clone();
        anyhow::ensure!(count <= HEADS_AT_ONCE, "a test may have at most {HEADS_AT_ONCE} Ray heads");
        let permits = room.acquire_many_owned(u32::try_from(count)?).await?;
        // Started side by side: each takes a few seconds, mostly waiting.
        let starts: Vec<_> = (0..count).map(|_| tokio::spawn(RayHead::start_serving())).collect();
        let mut heads = Vec::new();
        for start in starts {
            heads.push(start.await??);
        }
        Ok(Arc::new(Heads { heads, clusters: Mutex::new(Vec::new()), _permits: permits }))
    }

    /// No heads: every cluster is dialled where nothing answers (for tests that need no Ray).
    pub async fn none() -> anyhow::Result<Arc<Heads>> {
        let permits = Arc::new(tokio::sync::Semaphore::new(1)).acquire_many_owned(0).await?;
        Ok(Arc::new(Heads { heads: Vec::new(), clusters: Mutex::new(Vec::new()), _permits: permits }))
    }

    /// The i-th head (A is 0, B is 1).
    pub fn head(&self, i: usize) -> &RayHead {
        &self.heads[i]
    }

    /// The head `cluster` was given, if it has one.
    pub fn head_of(&self, cluster: &str) -> Option<&RayHead> {
        let clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        clusters.iter().position(|c| c == cluster).and_then(|i| self.heads.get(i))
    }

    /// Every cluster the operator asked about, in order.
    pub fn clusters(&self) -> Vec<String> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Where the operator dials `address` of `cluster` (the operator's dashboard resolver).
    pub fn resolve(&self, cluster: &str, address: &str) -> String {
        let index = {
            let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
            match clusters.iter().position(|c| c == cluster) {
                Some(i) => i,
                None => {
                    clusters.push(cluster.to_string());
                    clusters.len() - 1
                }
            }
        };
        match self.heads.get(index) {
            Some(head) if address.contains("-head-svc.") => head.dashboard_address(),
            Some(head) => head.serve_address(),
            None => NOWHERE.to_string(),
        }
    }
}

/// An operator for this namespace only (`--watch-namespace`, and it is the operator's, where a
/// plugins ConfigMap would be) with `flags` added, dialling `heads` for every Ray cluster.
pub async fn operator(ns: &TestNamespace, heads: &Arc<Heads>, flags: &[&str]) -> anyhow::Result<Operator> {
    crate::install_crds(&ns.client).await?;
    let mut all = vec!["--operator-namespace".to_string(), ns.name.clone(), "--watch-namespace".into(), ns.name.clone()];
    all.extend(flags.iter().map(ToString::to_string));
    let mut settings = crate::operator_settings(ns.kubeconfig().to_path_buf(), all)?;
    let heads = heads.clone();
    settings.dashboard_resolver = Some(Arc::new(move |cluster: &str, address: &str| heads.resolve(cluster, address)));
    crate::start_operator_with_settings(settings)
}

/// The feature gate `NewClusterWithIncrementalUpgrade` needs in KubeRay v1.5.2.
pub const INCREMENTAL_UPGRADE_GATE: [&str; 2] = ["--feature-gates", "RayServiceIncrementalUpgrade=true"];

/// Stops the operator on a thread of its own (its drop joins a thread).
pub async fn stop(operator: Operator) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || drop(operator)).await?;
    Ok(())
}

/// Deletes the namespace's RayServices while the operator still runs, so it releases any
/// finalizer and the namespace can go; then stops the operator.
pub async fn finish(ns: &TestNamespace, operator: Operator) -> anyhow::Result<()> {
    let api: Api<RayService> = ns.api();
    api.delete_collection(&DeleteParams::background(), &ListParams::default()).await?;
    within(WAIT, async {
        while !api.list(&ListParams::default()).await.is_ok_and(|l| l.items.is_empty()) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .context("the operator did not release its RayServices")?;
    stop(operator).await
}

// ---------------------------------------------------------------------------------------------
// Status, waits and Events

/// Server-side applies the RayService, as `kubectl apply --server-side` would.
pub async fn apply(ns: &TestNamespace, service: &Value) -> anyhow::Result<()> {
    let api: Api<RayService> = ns.api();
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(name, &PatchParams::apply("wasmray-tests").force(), &Patch::Apply(service))
        .await
        .with_context(|| format!("applying RayService {name}"))?;
    Ok(())
}

/// The RayService's status as JSON (null without one).
pub fn status(service: Option<&RayService>) -> Value {
    service.and_then(|s| serde_json::to_value(&s.status).ok()).unwrap_or(Value::Null)
}

/// The RayService's status now.
pub async fn status_now(ns: &TestNamespace, name: &str) -> anyhow::Result<Value> {
    let api: Api<RayService> = ns.api();
    Ok(status(api.get_opt(name).await?.as_ref()))
}

/// Waits (up to [`WAIT`]) until the RayService's status satisfies `done`; `what` names it in
/// the error, which also shows the last status and the RayService's Events.
pub async fn wait_for(ns: &TestNamespace, name: &str, what: &str, done: impl Fn(&Value) -> bool + Send + 'static) -> anyhow::Result<Value> {
    wait_for_within(ns, name, what, WAIT, done).await
}

/// As [`wait_for`], up to `timeout`.
pub async fn wait_for_within(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool + Send + 'static,
) -> anyhow::Result<Value> {
    let api: Api<RayService> = ns.api();
    match ns.wait_until(&api, name, move |s: Option<&RayService>| done(&status(s)), timeout).await {
        Ok(service) => Ok(status(Some(&service))),
        Err(error) => {
            let last = status_now(ns, name).await.unwrap_or(Value::Null);
            let events = describe_events(ns, name).await.unwrap_or_default();
            anyhow::bail!("RayService {name}: {what}: {error:#}\nits status now: {last:#}\nits Events:\n{events}")
        }
    }
}

/// The condition `kind` of a status (null when absent).
pub fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == kind)).unwrap_or(&Value::Null)
}

/// Every condition's message, joined (to look for what Serve or a strategy said).
pub fn condition_messages(status: &Value) -> String {
    let messages = status["conditions"].as_array().into_iter().flatten();
    messages.map(|c| format!("{}: {}", c["type"].as_str().unwrap_or_default(), c["message"].as_str().unwrap_or_default())).collect::<Vec<_>>().join("\n")
}

/// Condition `Ready` is True.
pub fn is_ready(status: &Value) -> bool {
    condition(status, "Ready")["status"] == "True"
}

/// The active cluster's name.
pub fn active(status: &Value) -> Option<&str> {
    status["activeServiceStatus"]["rayClusterName"].as_str().filter(|n| !n.is_empty())
}

/// The pending cluster's name.
pub fn pending(status: &Value) -> Option<&str> {
    status["pendingServiceStatus"]["rayClusterName"].as_str().filter(|n| !n.is_empty())
}

/// The Serve status of `app` on the active (`"activeServiceStatus"`) or pending
/// (`"pendingServiceStatus"`) cluster.
pub fn app_status<'a>(status: &'a Value, which: &str, app: &str) -> Option<&'a str> {
    status[which]["applicationStatuses"][app]["status"].as_str()
}

/// Ready, on an active cluster whose applications are all RUNNING, with no pending cluster.
pub fn serving_steadily(status: &Value) -> bool {
    let apps = status["activeServiceStatus"]["applicationStatuses"].as_object();
    is_ready(status)
        && active(status).is_some()
        && pending(status).is_none()
        && apps.is_some_and(|a| !a.is_empty() && a.values().all(|s| s["status"] == "RUNNING"))
}

/// The Events about the RayService `name` with this reason, as (type, message), once one of
/// them has a message that contains `naming` (waiting up to 15 s for it: an Event follows its write).
pub async fn events_naming(ns: &TestNamespace, name: &str, reason: &str, naming: &str) -> anyhow::Result<Vec<(String, String)>> {
    let about = crate::fixtures::wait_for_events_about(ns, name, reason, Duration::from_secs(15), |(_, message, _)| message.contains(naming)).await?;
    Ok(about.into_iter().map(|(kind, message, _)| (kind, message)).collect())
}

/// The Events about the RayService `name` with this reason, as (type, message), once there is one.
pub async fn events(ns: &TestNamespace, name: &str, reason: &str) -> anyhow::Result<Vec<(String, String)>> {
    events_naming(ns, name, reason, "").await
}

/// Every Event about `name`, one `Type Reason: message` a line, oldest first.
pub async fn describe_events(ns: &TestNamespace, name: &str) -> anyhow::Result<String> {
    let api: Api<Event> = ns.api();
    let mut about: Vec<Event> =
        api.list(&ListParams::default()).await?.items.into_iter().filter(|e| e.involved_object.name.as_deref() == Some(name)).collect();
    about.sort_by_key(|e| e.last_timestamp.clone().or(e.first_timestamp.clone()).map(|t| t.0));
    Ok(about
        .iter()
        .map(|e| {
            let (kind, reason) = (e.type_.as_deref().unwrap_or_default(), e.reason.as_deref().unwrap_or_default());
            format!("{kind} {reason}: {} (x{})", e.message.as_deref().unwrap_or_default(), e.count.unwrap_or(1))
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The `ray.io/cluster` a Service selects, if the Service exists.
pub async fn selected_cluster(ns: &TestNamespace, service: &str) -> anyhow::Result<Option<String>> {
    let api: Api<Service> = ns.api();
    let found = api.get_opt(service).await?;
    Ok(found.and_then(|s| s.spec?.selector?.get("ray.io/cluster").cloned()))
}

/// The names of the namespace's RayClusters not being deleted.
pub async fn live_clusters(ns: &TestNamespace) -> anyhow::Result<Vec<String>> {
    let api: Api<RayCluster> = ns.api();
    let clusters = api.list(&ListParams::default()).await?.items;
    Ok(clusters.into_iter().filter(|c| c.metadata.deletion_timestamp.is_none()).filter_map(|c| c.metadata.name).collect())
}

/// Waits until Serve on `head` satisfies `done` (its applications' JSON, as
/// [`RayHead::serve_applications`] returns it); fails with the last answer after `timeout`.
pub async fn wait_for_serve(head: &RayHead, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + timeout;
    // What Serve said over the wait, each change once: on a timeout, how it got where it is.
    let mut seen: Vec<String> = Vec::new();
    loop {
        let answer = head.serve_applications().await;
        if let Ok(apps) = &answer {
            if done(apps) {
                return Ok(apps.clone());
            }
            let line = serve_summary(apps);
            if seen.last() != Some(&line) {
                seen.push(line);
            }
        }
        if std::time::Instant::now() > deadline {
            let last = answer.map(|a| format!("{:#}", a["applications"])).unwrap_or_else(|e| format!("{e:#}"));
            anyhow::bail!(
                "Serve on {}: {what} not seen in {timeout:?}; what it said, each change once:\n{}\nits applications now: {last}",
                head.dashboard_address(),
                seen.join("\n")
            );
        }
        // Serve moves in seconds; its API is asked twice a second at most.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One line of what Serve reports: its target capacity, and each application's status and
/// each deployment's status and replica count.
fn serve_summary(apps: &Value) -> String {
    let mut line = format!("target_capacity {}", apps["target_capacity"]);
    for (name, app) in apps["applications"].as_object().into_iter().flatten() {
        line.push_str(&format!("; {name} {}", app["status"].as_str().unwrap_or("?")));
        for (deployment, d) in app["deployments"].as_object().into_iter().flatten() {
            let replicas = d["replicas"].as_array().map_or(0, Vec::len);
            line.push_str(&format!(
                " [{deployment} {} target {} replicas {replicas}: {}]",
                d["status"].as_str().unwrap_or("?"),
                d["target_num_replicas"],
                d["message"].as_str().unwrap_or_default().chars().take(160).collect::<String>()
            ));
        }
    }
    line
}

/// The `user_config` Serve last deployed for deployment `deployment` of `app`.
pub fn deployed_user_config<'a>(apps: &'a Value, app: &str, deployment: &str) -> &'a Value {
    let deployments = apps["applications"][app]["deployed_app_config"]["deployments"].as_array();
    deployments.and_then(|d| d.iter().find(|d| d["name"] == deployment)).map_or(&Value::Null, |d| &d["user_config"])
}

// ---------------------------------------------------------------------------------------------
// Gateway API

/// The GatewayClass the fixtures' Gateways name; nothing but the test controls it.
pub const GATEWAY_CLASS: &str = "wasmray-test";
/// The controller the test plays, as it signs the HTTPRoutes' parent statuses.
pub const GATEWAY_CONTROLLER: &str = "wasmray.dev/test-gateway-controller";

/// The Gateway API module's directory: `$WASMRAY_GATEWAY_API_DIR`, else what
/// `tests/gateway-api-dir` prints (it downloads the pinned module into Go's cache).
pub fn gateway_api_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(GATEWAY_API_DIR_ENV) {
        return Ok(dir.into());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway-api-dir");
    let output = std::process::Command::new(script).output().with_context(|| format!("running {script}"))?;
    anyhow::ensure!(output.status.success(), "{script} failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

/// Installs the standard channel's GatewayClass, Gateway and HTTPRoute CRDs of the pinned
/// Gateway API release, and waits until they are served.
pub async fn install_gateway_crds(client: &kube::Client) -> anyhow::Result<()> {
    let crds = gateway_api_dir()?.join("config/crd/standard");
    for kind in ["gatewayclasses", "gateways", "httproutes"] {
        let file = crds.join(format!("gateway.networking.k8s.io_{kind}.yaml"));
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        crate::install_crd_fixture(client, &text).await.with_context(|| format!("installing {}", file.display()))?;
    }
    Ok(())
}

fn gateway_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The traffic split of one HTTPRoute version: backend Service name to weight.
pub type Weights = BTreeMap<String, i64>;

/// The test in the Gateway controller's part for one namespace: every Gateway gets Accepted and
/// Programmed, every HTTPRoute's parents Accepted and ResolvedRefs, and every version of every
/// HTTPRoute's backend weights is recorded (from a watch, so no step is missed). Stops on drop.
pub struct GatewayController {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    seen: Arc<Mutex<Vec<(String, Weights)>>>,
}

impl GatewayController {
    /// Starts playing the controller in `ns`.
    pub fn start(ns: &TestNamespace) -> GatewayController {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gateways: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &gateway_resource("Gateway", "gateways"));
        let routes: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &gateway_resource("HTTPRoute", "httproutes"));
        // A failed status write is retried on the next change or relist; the test's waits say
        // what was never reached.
        let gateway_task = tokio::spawn(async move {
            let mut changes = Box::pin(watcher(gateways.clone(), watcher::Config::default()));
            while let Some(change) = next(&mut changes).await {
                if let Ok(watcher::Event::Apply(gateway) | watcher::Event::InitApply(gateway)) = change {
                    let _ = accept_gateway(&gateways, &gateway).await;
                }
            }
        });
        let record = seen.clone();
        let route_task = tokio::spawn(async move {
            let mut changes = Box::pin(watcher(routes.clone(), watcher::Config::default()));
            while let Some(change) = next(&mut changes).await {
                if let Ok(watcher::Event::Apply(route) | watcher::Event::InitApply(route)) = change {
                    record_weights(&record, &route);
                    let _ = accept_route(&routes, &route).await;
                }
            }
        });
        GatewayController { tasks: vec![gateway_task, route_task], seen }
    }

    /// Every distinct traffic split seen, in order, with the HTTPRoute's name.
    pub fn weights_seen(&self) -> Vec<(String, Weights)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for GatewayController {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The next item of a stream (this crate has no `futures` dependency; every stream is a
/// `WatchStreamExt`, whose supertrait is `Stream`).
async fn next<S: WatchStreamExt + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

/// The weight an HTTPRoute split gives `cluster`'s serve Service (`<cluster>-serve-svc`).
pub fn weight_of(weights: &Weights, cluster: &str) -> Option<i64> {
    weights.get(&format!("{cluster}-serve-svc")).copied()
}

fn record_weights(seen: &Mutex<Vec<(String, Weights)>>, route: &DynamicObject) {
    let mut weights = Weights::new();
    for rule in route.data["spec"]["rules"].as_array().into_iter().flatten() {
        for backend in rule["backendRefs"].as_array().into_iter().flatten() {
            let name = backend["name"].as_str().unwrap_or_default().to_string();
            // Gateway API's default weight is 1.
            *weights.entry(name).or_default() += backend["weight"].as_i64().unwrap_or(1);
        }
    }
    let name = route.metadata.name.clone().unwrap_or_default();
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.iter().rev().find(|(route, _)| *route == name).is_none_or(|(_, last)| *last != weights) {
        seen.push((name, weights));
    }
}

/// Conditions of `types`, all True, for `generation`.
fn true_conditions(types: &[&str], generation: Option<i64>) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let conditions: Vec<Value> = types
        .iter()
        .map(|kind| {
            json!({
                "type": kind, "status": "True", "reason": kind, "message": "set by the wasmray tests' stand-in controller",
                "observedGeneration": generation.unwrap_or(0), "lastTransitionTime": now,
            })
        })
        .collect();
    json!(conditions)
}

/// Whether `conditions` has each of `types` True for `generation`.
fn all_true(conditions: &Value, types: &[&str], generation: Option<i64>) -> bool {
    types.iter().all(|kind| {
        conditions.as_array().into_iter().flatten().any(|c| {
            c["type"] == *kind && c["status"] == "True" && c["observedGeneration"].as_i64() == Some(generation.unwrap_or(0))
        })
    })
}

async fn accept_gateway(api: &Api<DynamicObject>, gateway: &DynamicObject) -> anyhow::Result<()> {
    const TYPES: [&str; 2] = ["Accepted", "Programmed"];
    let generation = gateway.metadata.generation;
    if all_true(&gateway.data["status"]["conditions"], &TYPES, generation) {
        return Ok(());
    }
    let status = json!({ "status": { "conditions": true_conditions(&TYPES, generation) } });
    let name = gateway.metadata.name.clone().unwrap_or_default();
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

async fn accept_route(api: &Api<DynamicObject>, route: &DynamicObject) -> anyhow::Result<()> {
    const TYPES: [&str; 2] = ["Accepted", "ResolvedRefs"];
    let generation = route.metadata.generation;
    let refs = route.data["spec"]["parentRefs"].as_array().cloned().unwrap_or_default();
    let parents = route.data["status"]["parents"].as_array().cloned().unwrap_or_default();
    let done = refs.iter().all(|r| parents.iter().any(|p| p["parentRef"]["name"] == r["name"] && all_true(&p["conditions"], &TYPES, generation)));
    if done {
        return Ok(());
    }
    let parents: Vec<Value> = refs
        .iter()
        .map(|r| json!({ "parentRef": r, "controllerName": GATEWAY_CONTROLLER, "conditions": true_conditions(&TYPES, generation) }))
        .collect();
    let name = route.metadata.name.clone().unwrap_or_default();
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({ "status": { "parents": parents } }))).await?;
    Ok(())
}
