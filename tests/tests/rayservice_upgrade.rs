//! RayService upgrades end to end, each cluster's Serve on a real local Ray head and the test in the Gateway controller's part: the incremental upgrade's traffic and capacity steps, a canary rolled back when its apps turn UNHEALTHY, a strategy plugin swapped while an upgrade waits on it, and an operator restarted in the middle of an upgrade.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::watcher;
use wasmray::plugin::builtin;
use wasmray::plugin::watch::reasons;
use wasmray::runtime::PluginId;
use wasmray_api::RayService;
use wasmray_tests::fixtures::eventually;
use wasmray_tests::rayservices::{
    GatewayController, Heads, INCREMENTAL_UPGRADE_GATE, NEW_IMAGE, UPGRADE_WAIT, WAIT, Weights, a_rayservice, active, app_status,
    apply, condition_messages, events, events_naming, finish, hello, install_gateway_crds, live_clusters, on_image, operator, pending,
    selected_cluster, serving, serving_steadily, sick, status, status_now, stop, upgraded_by_canary, upgraded_incrementally,
    wait_for, wait_for_serve, wait_for_within, weight_of,
};
use wasmray_tests::{TestNamespace, namespace};

/// The incremental upgrade's options: traffic in steps of 25 %, capacity in steps of 50 %.
const STEP_SIZE_PERCENT: i32 = 25;
const MAX_SURGE_PERCENT: i32 = 50;
const INTERVAL_SECONDS: i32 = 3;

#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_upgrade_moves_traffic_by_step_size_and_capacity_by_max_surge_until_promotion() -> anyhow::Result<()> {
    let heads = Heads::start(2).await?;
    let ns = namespace("rayservice-incremental").await?;
    install_gateway_crds(&ns.client).await?;
    let gateway = GatewayController::start(&ns);
    let operator = operator(&ns, &heads, &INCREMENTAL_UPGRADE_GATE).await?;
    let service = upgraded_incrementally(a_rayservice("steps"), STEP_SIZE_PERCENT, INTERVAL_SECONDS, MAX_SURGE_PERCENT);
    apply(&ns, &service).await?;
    let ready = wait_for(&ns, "steps", "Ready with every application RUNNING", serving_steadily).await?;
    let first = active(&ready).context("an active cluster")?.to_string();

    let capacities = CapacityRecorder::start(&ns, "steps");
    apply(&ns, &on_image(service, NEW_IMAGE)).await?;
    let promoted = wait_for_within(&ns, "steps", "a new cluster promoted", UPGRADE_WAIT, {
        let first = first.clone();
        move |s| active(s).is_some_and(|a| a != first) && pending(s).is_none()
    })
    .await?;
    let second = active(&promoted).context("the new active cluster")?.to_string();

    let splits = gateway.weights_seen();
    println!("HTTPRoute splits seen: {splits:?}");
    let both: Vec<&Weights> = splits.iter().map(|(_, w)| w).filter(|w| weight_of(w, &second).is_some() && weight_of(w, &first).is_some()).collect();
    for split in &both {
        let (old, new) = (weight_of(split, &first).unwrap_or_default(), weight_of(split, &second).unwrap_or_default());
        assert_eq!(old + new, 100, "the two clusters' weights add up to 100: {split:?}");
    }
    let new_weights = distinct(splits.iter().filter_map(|(_, w)| weight_of(w, &second)).skip_while(|w| *w == 0));
    let expected: Vec<i64> = (1..=100 / STEP_SIZE_PERCENT).map(|i| i64::from(i * STEP_SIZE_PERCENT)).collect();
    assert_eq!(new_weights, expected, "the new cluster's weight moves by stepSizePercent up to 100; splits: {splits:?}");

    let seen = capacities.seen();
    println!("target capacities seen: {seen:?}");
    let steps = |cluster: &str| distinct(seen.get(cluster).into_iter().flatten().copied());
    let surge = i64::from(MAX_SURGE_PERCENT);
    assert_eq!(steps(&first), vec![100, 100 - surge, 0], "the old cluster's capacity falls by maxSurgePercent: {seen:?}");
    let new_steps: Vec<i64> = steps(&second).into_iter().skip_while(|c| *c == 0).collect();
    assert_eq!(new_steps, vec![surge, 100], "the new cluster's capacity rises by maxSurgePercent: {seen:?}");
    let old_serve = heads.head_of(&first).context("the old cluster's head")?.serve_applications().await?;
    assert_eq!(old_serve["target_capacity"].as_f64(), Some(0.0), "Serve on the old cluster was told 0: {old_serve:#}");
    let bytes = builtin::bytes("wasmray-strategy-incremental-upgrade").context("the strategy is built in")?;
    let version = PluginId::for_bytes("NewClusterWithIncrementalUpgrade", bytes).version().to_string();
    let shifts = events(&ns, "steps", "ShiftedTraffic").await?;
    assert!(!shifts.is_empty(), "each step has an Event");
    assert!(shifts.iter().all(|(_, m)| m.contains(&version)), "each names the strategy's version {version}: {shifts:?}");
    finish(&ns, operator).await
}

/// The canary's steps and hold: long enough that the test, which acts on seeing the first
/// step, makes the canary sick before the second.
const CANARY_OPTIONS: &str = r#"{"steps":[20,50],"holdSeconds":30}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_whose_new_apps_turn_unhealthy_rolls_back_and_the_active_cluster_keeps_its_traffic() -> anyhow::Result<()> {
    let heads = Heads::start(2).await?;
    let ns = namespace("rayservice-canary").await?;
    install_gateway_crds(&ns.client).await?;
    let gateway = GatewayController::start(&ns);
    let operator = operator(&ns, &heads, &INCREMENTAL_UPGRADE_GATE).await?;
    let service = upgraded_by_canary(a_rayservice("canary"), serde_json::from_str(CANARY_OPTIONS)?);
    apply(&ns, &service).await?;
    let ready = wait_for(&ns, "canary", "Ready with every application RUNNING", serving_steadily).await?;
    let first = active(&ready).context("an active cluster")?.to_string();

    let upgraded = on_image(service, NEW_IMAGE);
    apply(&ns, &upgraded).await?;
    let upgrading = wait_for_within(&ns, "canary", "a pending cluster with its apps RUNNING", UPGRADE_WAIT, |s| {
        app_status(s, "pendingServiceStatus", "hello") == Some("RUNNING")
    })
    .await?;
    let second = pending(&upgrading).context("the pending cluster")?.to_string();
    eventually("the canary's first step: 20 % to the new cluster", UPGRADE_WAIT, || async {
        let last = gateway.weights_seen().last().map(|(_, w)| w.clone()).unwrap_or_default();
        Ok(if weight_of(&last, &second) == Some(20) { Ok(()) } else { Err(format!("{last:?}")) })
    })
    .await?;

    // The new cluster's app turns UNHEALTHY: the spec's Serve config goes to the pending cluster.
    apply(&ns, &serving(upgraded, &[sick(hello("hello v1"))])).await?;
    let head_b = heads.head_of(&second).context("the new cluster's head")?;
    wait_for_serve(head_b, "hello UNHEALTHY", WAIT, |apps| apps["applications"]["hello"]["status"] == "UNHEALTHY").await?;
    let wanted = first.clone();
    let rolled_back = wait_for_within(&ns, "canary", "the pending cluster given up", UPGRADE_WAIT, move |s| {
        pending(s).is_none() && active(s) == Some(wanted.as_str())
    })
    .await?;
    let rollbacks = events_naming(&ns, "canary", "UpgradeRolledBack", "UNHEALTHY").await?;
    assert!(!rollbacks.is_empty(), "an UpgradeRolledBack Event; status {rolled_back:#}");
    println!("rolled back: {rollbacks:?}");
    assert!(rollbacks.iter().any(|(_, m)| m.contains("UNHEALTHY")), "the Event says why: {rollbacks:?}");
    eventually("all traffic back on the active cluster", WAIT, || async {
        let last = gateway.weights_seen().last().map(|(_, w)| w.clone()).unwrap_or_default();
        let back = weight_of(&last, &first) == Some(100) && weight_of(&last, &second).is_none_or(|w| w == 0);
        Ok(if back { Ok(()) } else { Err(format!("{last:?}")) })
    })
    .await?;

    let splits = gateway.weights_seen();
    println!("HTTPRoute splits seen: {splits:?}");
    // (A backend of weight 0 is left out of the HTTPRoute: the active one is in every version.)
    for (route, split) in &splits {
        assert!(weight_of(split, &first).is_some_and(|w| w > 0), "{route} never takes all traffic from the active cluster: {splits:?}");
    }
    let most = splits.iter().filter_map(|(_, w)| weight_of(w, &second)).max();
    assert_eq!(most, Some(20), "the canary never went past its first step: {splits:?}");
    assert_eq!(status_now(&ns, "canary").await?["activeServiceStatus"]["rayClusterName"], first.as_str());
    finish(&ns, operator).await
}

/// The ConfigMap whose `plugins.yaml` is the plugin configuration, and the one with the test
/// strategy's component (gzip-compressed under [`KEY`]).
const CONFIG: &str = "wasmray-plugins";
const BYTES: &str = "hold-strategy";
const KEY: &str = "plugin.wasm.gz";
/// The test program that answers every upgrade step with `wait`.
const HOLD: &str = "wasmray-test-strategy-hold";
const HELD: &str = "held by the test strategy";

#[tokio::test(flavor = "multi_thread")]
async fn swapping_the_new_cluster_strategy_at_runtime_holds_an_upgrade_and_swapping_back_promotes_it() -> anyhow::Result<()> {
    let heads = Heads::start(2).await?;
    let ns = namespace("rayservice-strategy-swap").await?;
    let hold = std::fs::read(builtin::test_program(HOLD).context("the hold test program is built")?)?;
    let hold_version = PluginId::for_bytes("NewCluster", &hold).version().to_string();
    let builtin_bytes = builtin::bytes("wasmray-strategy-new-cluster").context("NewCluster is built in")?;
    let builtin_version = PluginId::for_bytes("NewCluster", builtin_bytes).version().to_string();
    put_plugin(&ns, &hold).await?;
    put_configuration(&ns, false).await?;
    let operator = operator(&ns, &heads, &["--plugins-config-map", CONFIG]).await?;
    let service = a_rayservice("swap");
    apply(&ns, &service).await?;
    let ready = wait_for(&ns, "swap", "Ready with every application RUNNING", serving_steadily).await?;
    let first = active(&ready).context("an active cluster")?.to_string();

    // NewCluster is now the test program, in the running operator.
    put_configuration(&ns, true).await?;
    wait_for_loaded(&ns, &PluginId::for_bytes("NewCluster", &hold).digest).await?;
    apply(&ns, &on_image(service, NEW_IMAGE)).await?;
    let held = wait_for_within(&ns, "swap", "the ready pending cluster held", UPGRADE_WAIT, |s| {
        app_status(s, "pendingServiceStatus", "hello") == Some("RUNNING") && condition_messages(s).contains(HELD)
    })
    .await?;
    let second = pending(&held).context("the pending cluster")?.to_string();
    println!("held (strategy {hold_version}): {}", condition_messages(&held));
    assert_eq!(selected_cluster(&ns, "swap-serve-svc").await?.as_deref(), Some(first.as_str()), "the held upgrade moves no traffic");

    // Back to the built-in: the next step promotes.
    put_configuration(&ns, false).await?;
    let wanted = second.clone();
    wait_for_within(&ns, "swap", "the pending cluster promoted", UPGRADE_WAIT, move |s| active(s) == Some(wanted.as_str()) && pending(s).is_none())
        .await?;
    assert_eq!(selected_cluster(&ns, "swap-serve-svc").await?.as_deref(), Some(second.as_str()));
    let all = wasmray_tests::rayservices::describe_events(&ns, "swap").await?;
    let promotions = events_naming(&ns, "swap", "PromotedPendingCluster", &builtin_version).await?;
    assert!(
        promotions.iter().any(|(_, m)| m.contains(&builtin_version)),
        "the promotion's Event names the built-in NewCluster's version {builtin_version}: {promotions:?}\nall Events:\n{all}"
    );
    assert!(promotions.iter().all(|(_, m)| !m.contains(&hold_version)), "the test program never promoted: {promotions:?}");
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_restarted_in_the_middle_of_an_incremental_upgrade_resumes_it_with_the_same_pending_cluster() -> anyhow::Result<()> {
    let heads = Heads::start(2).await?;
    let ns = namespace("rayservice-upgrade-restart").await?;
    install_gateway_crds(&ns.client).await?;
    let gateway = GatewayController::start(&ns);
    let operator = operator(&ns, &heads, &INCREMENTAL_UPGRADE_GATE).await?;
    // Long intervals: the operator is stopped between two traffic steps.
    let service = upgraded_incrementally(a_rayservice("resume"), STEP_SIZE_PERCENT, 10, MAX_SURGE_PERCENT);
    apply(&ns, &service).await?;
    let ready = wait_for(&ns, "resume", "Ready with every application RUNNING", serving_steadily).await?;
    let first = active(&ready).context("an active cluster")?.to_string();
    apply(&ns, &on_image(service, NEW_IMAGE)).await?;
    let upgrading = wait_for_within(&ns, "resume", "a pending cluster", UPGRADE_WAIT, |s| pending(s).is_some()).await?;
    let second = pending(&upgrading).context("the pending cluster")?.to_string();
    eventually("the first traffic step", UPGRADE_WAIT, || async {
        let last = gateway.weights_seen().last().map(|(_, w)| w.clone()).unwrap_or_default();
        Ok(if weight_of(&last, &second).is_some_and(|w| w >= 25) { Ok(()) } else { Err(format!("{last:?}")) })
    })
    .await?;

    stop(operator).await?;
    let before = status_now(&ns, "resume").await?;
    let at_stop = gateway.weights_seen().len();
    let weight_at_stop = gateway.weights_seen().last().and_then(|(_, w)| weight_of(w, &second)).unwrap_or_default();
    println!("stopped at {weight_at_stop} % to {second}; status {before:#}");
    let operator = wasmray_tests::rayservices::operator(&ns, &heads, &INCREMENTAL_UPGRADE_GATE).await?;
    let wanted = second.clone();
    wait_for_within(&ns, "resume", "the same pending cluster promoted", UPGRADE_WAIT, move |s| active(s) == Some(wanted.as_str()) && pending(s).is_none())
        .await?;

    assert_eq!(heads.clusters(), vec![first.clone(), second.clone()], "no second pending cluster was made");
    let created = events(&ns, "resume", "CreatedRayCluster").await?;
    assert_eq!(created.len(), 2, "two clusters in all: {created:?}");
    let splits = gateway.weights_seen();
    println!("HTTPRoute splits seen: {splits:?}");
    let after: Vec<i64> = splits[at_stop..].iter().filter_map(|(_, w)| weight_of(w, &second)).collect();
    assert!(after.iter().all(|w| *w >= weight_at_stop), "the restarted operator went on from {weight_at_stop} %: {after:?}");
    let new_weights = distinct(splits.iter().filter_map(|(_, w)| weight_of(w, &second)).skip_while(|w| *w == 0));
    assert_eq!(new_weights, vec![25, 50, 75, 100], "no step lost or repeated across the restart: {splits:?}");
    assert!(live_clusters(&ns).await?.contains(&second));
    finish(&ns, operator).await
}

/// Consecutive duplicates dropped.
fn distinct(values: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for value in values {
        if out.last() != Some(&value) {
            out.push(value);
        }
    }
    out
}

/// Every `targetCapacity` the RayService's status gave each of its clusters, in order (from a
/// watch, so no status version is missed). Stops on drop.
struct CapacityRecorder {
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<BTreeMap<String, Vec<i64>>>>,
}

impl CapacityRecorder {
    fn start(ns: &TestNamespace, name: &str) -> CapacityRecorder {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let api: Api<RayService> = ns.api();
        let (record, config) = (seen.clone(), watcher::Config::default().fields(&format!("metadata.name={name}")));
        let task = tokio::spawn(async move {
            let mut changes = Box::pin(watcher(api, config));
            while let Some(change) = changes.next().await {
                let Ok(watcher::Event::Apply(service) | watcher::Event::InitApply(service)) = change else { continue };
                let status = status(Some(&service));
                let mut seen = record.lock().unwrap_or_else(|p| p.into_inner());
                for which in ["activeServiceStatus", "pendingServiceStatus"] {
                    let cluster = status[which]["rayClusterName"].as_str().filter(|c| !c.is_empty());
                    if let (Some(cluster), Some(capacity)) = (cluster, status[which]["targetCapacity"].as_i64()) {
                        let capacities: &mut Vec<i64> = seen.entry(cluster.to_string()).or_default();
                        capacities.push(capacity);
                    }
                }
            }
        });
        CapacityRecorder { task, seen }
    }

    fn seen(&self) -> BTreeMap<String, Vec<i64>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for CapacityRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes the plugin configuration: with `hold`, `NewCluster` is the test program from the
/// [`BYTES`] ConfigMap; without, no entry (the built-in serves).
async fn put_configuration(ns: &TestNamespace, hold: bool) -> anyhow::Result<()> {
    let yaml = if hold {
        format!("plugins:\n  - name: NewCluster\n    kind: upgrade-strategy\n    source: {{ configMap: {{ name: {BYTES}, key: {KEY} }} }}\n")
    } else {
        "plugins: []\n".to_string()
    };
    let config = ConfigMap { data: Some([("plugins.yaml".to_string(), yaml)].into()), ..config_map(CONFIG) };
    server_side_apply(ns, &config).await
}

/// Puts a component into the [`BYTES`] ConfigMap, gzip-compressed (a ConfigMap holds 1 MiB).
async fn put_plugin(ns: &TestNamespace, component: &[u8]) -> anyhow::Result<()> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(component)?;
    let bytes = ConfigMap { binary_data: Some([(KEY.to_string(), ByteString(gzip.finish()?))].into()), ..config_map(BYTES) };
    server_side_apply(ns, &bytes).await
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..ConfigMap::default() }
}

async fn server_side_apply(ns: &TestNamespace, config_map: &ConfigMap) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = ns.api();
    let name = config_map.metadata.name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply("wasmray-tests").force(), &Patch::Apply(config_map)).await?;
    Ok(())
}

/// Waits for the registry's Loaded Event about the [`BYTES`] ConfigMap naming `digest`.
async fn wait_for_loaded(ns: &TestNamespace, digest: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = ns.api();
    eventually(&format!("a {} Event naming sha256:{digest}", reasons::LOADED), WAIT, || async {
        let found = api.list(&Default::default()).await?.items.into_iter().any(|e| {
            e.reason.as_deref() == Some(reasons::LOADED)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(BYTES)
                && e.note.as_deref().is_some_and(|n| n.contains(digest))
        });
        Ok(if found { Ok(()) } else { Err("missing".to_string()) })
    })
    .await
}
