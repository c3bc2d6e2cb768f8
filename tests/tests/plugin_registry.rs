//! The plugin registry's ConfigMap path end to end: the operator (`wasmray run
//! --plugins-config-map`) serves a batch-scheduler plugin from a ConfigMap, swaps in a new
//! version when the ConfigMap changes, and rejects a bad version with a Warning Event while the
//! previous one keeps decorating Pods.

use std::time::Instant;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt as _;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use wasmray::plugin::builtin;
use wasmray::plugin::watch::reasons;
use wasmray::runtime::PluginId;
use wasmray_tests::fixtures::{WAIT, apply, eventually, is_live, ray_cluster};
use wasmray_tests::{TestNamespace, namespace};

/// The ConfigMap whose `plugins.yaml` is the plugin configuration.
const CONFIG: &str = "wasmray-plugins";
/// The ConfigMap holding the plugin's component, gzip-compressed under [`KEY`].
const BYTES: &str = "gang-plugin";
const KEY: &str = "plugin.wasm.gz";
/// The plugin's name in the registry, and the operator's `--batch-scheduler`.
const PLUGIN: &str = "gang";

#[tokio::test]
async fn a_scheduler_plugin_from_a_config_map_is_swapped_while_running_and_a_bad_version_is_rejected_with_an_event()
-> anyhow::Result<()> {
    let started = Instant::now();
    let ns = namespace("plugin-registry-config-map-swap").await?;
    wasmray_tests::install_batch_scheduler_crds(&ns.client).await?;
    let (volcano, yunikorn) = (component("wasmray-plugin-volcano")?, component("wasmray-plugin-yunikorn")?);
    // A reconciler where a batch scheduler is configured: a component of the wrong world.
    let wrong_world = component("wasmray-test-echo-v1")?;
    put_configuration(&ns, None).await?;
    put_plugin(&ns, &volcano).await?;
    let _operator = ns.operator_with_plugins_config_map(CONFIG, Some(PLUGIN)).await?;

    // The operator starts with the plugin loaded, not one poll later.
    let loaded = find_event(&ns, reasons::LOADED, &digest(&volcano))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no {} Event once the operator started", reasons::LOADED))?;
    assert_eq!(loaded.type_.as_deref(), Some("Normal"));
    let regarding = loaded.regarding.clone().unwrap_or_default();
    assert_eq!((regarding.kind.as_deref(), regarding.name.as_deref()), (Some("ConfigMap"), Some(BYTES)));
    assert!(regarding.uid.is_some(), "the Event regards the ConfigMap itself: {regarding:?}");
    apply(&ns, &ray_cluster("first", &[("cpu", 1, 0, 2)])).await?;
    wait_for_scheduler(&ns, "first", "volcano").await?;

    put_plugin(&ns, &yunikorn).await?;
    wait_for_event(&ns, reasons::LOADED, &digest(&yunikorn)).await?;
    apply(&ns, &ray_cluster("second", &[("cpu", 1, 0, 2)])).await?;
    wait_for_scheduler(&ns, "second", "yunikorn").await?;

    put_plugin(&ns, &wrong_world).await?;
    let rejected = wait_for_event(&ns, reasons::REJECTED, &digest(&wrong_world)).await?;
    let note = rejected.note.clone().unwrap_or_default();
    assert_eq!(rejected.type_.as_deref(), Some("Warning"), "{note}");
    assert!(note.contains(&format!("plugin {PLUGIN}")), "the note names the plugin: {note}");
    assert!(note.contains(&format!("sha256:{} keeps serving", digest(&yunikorn))), "{note}");
    assert!(
        note.contains("configured as a batch-scheduler plugin, but the component is a reconciler plugin"),
        "the note says why: {note}"
    );
    eprintln!("{}: {note}", reasons::REJECTED);
    apply(&ns, &ray_cluster("third", &[("cpu", 1, 0, 2)])).await?;
    wait_for_scheduler(&ns, "third", "yunikorn").await?;
    assert!(scheduler_names(&ns, "first").await?.iter().all(|s| s == "volcano"), "earlier Pods are left as they were");
    eprintln!("served, swapped and rejected in {:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn a_version_that_does_not_match_its_pinned_sha256_is_rejected_with_an_event_until_the_pin_changes()
-> anyhow::Result<()> {
    let started = Instant::now();
    let ns = namespace("plugin-registry-pinned-sha256").await?;
    wasmray_tests::install_batch_scheduler_crds(&ns.client).await?;
    let (volcano, yunikorn) = (component("wasmray-plugin-volcano")?, component("wasmray-plugin-yunikorn")?);
    put_configuration(&ns, Some(&digest(&volcano))).await?;
    put_plugin(&ns, &volcano).await?;
    let _operator = ns.operator_with_plugins_config_map(CONFIG, Some(PLUGIN)).await?;
    wait_for_event(&ns, reasons::LOADED, &digest(&volcano)).await?;

    put_plugin(&ns, &yunikorn).await?;
    let rejected = wait_for_event(&ns, reasons::REJECTED, &digest(&yunikorn)).await?;
    let note = rejected.note.clone().unwrap_or_default();
    assert_eq!(rejected.type_.as_deref(), Some("Warning"), "{note}");
    assert!(
        note.contains(&format!("sha256 {} does not match the pinned {}", digest(&yunikorn), digest(&volcano))),
        "{note}"
    );
    eprintln!("{}: {note}", reasons::REJECTED);
    apply(&ns, &ray_cluster("pinned", &[("cpu", 1, 0, 2)])).await?;
    wait_for_scheduler(&ns, "pinned", "volcano").await?;

    // A change to the configuration ConfigMap is picked up too: pinning the new version admits it.
    put_configuration(&ns, Some(&digest(&yunikorn))).await?;
    wait_for_event(&ns, reasons::LOADED, &digest(&yunikorn)).await?;
    apply(&ns, &ray_cluster("repinned", &[("cpu", 1, 0, 2)])).await?;
    wait_for_scheduler(&ns, "repinned", "yunikorn").await?;
    eprintln!("rejected and re-pinned in {:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn an_operator_whose_plugin_is_rejected_at_start_does_not_start_and_says_why() -> anyhow::Result<()> {
    let ns = namespace("plugin-registry-rejected-at-start").await?;
    let volcano = component("wasmray-plugin-volcano")?;
    put_configuration(&ns, Some(&"0".repeat(64))).await?;
    put_plugin(&ns, &volcano).await?;

    let error = match ns.operator_with_plugins_config_map(CONFIG, Some(PLUGIN)).await {
        Ok(_) => anyhow::bail!("the operator started without its batch scheduler"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains(&format!("plugin {PLUGIN} cannot be loaded")) && error.contains("pinned"), "{error}");
    let rejected = find_event(&ns, reasons::REJECTED, &digest(&volcano)).await?;
    let note = rejected.and_then(|e| e.note).unwrap_or_default();
    assert!(note.contains("no version serves"), "a Warning Event says so too: {note:?}");
    Ok(())
}

/// A component's bytes: one embedded in the binary, or a test program this build made.
fn component(package: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(bytes) = builtin::bytes(package) {
        return Ok(bytes.to_vec());
    }
    let path = builtin::test_program(package).ok_or_else(|| anyhow::anyhow!("no component {package}"))?;
    Ok(std::fs::read(path)?)
}

/// The sha256 a pin names: that of the component, however it is shipped.
fn digest(component: &[u8]) -> String {
    PluginId::for_bytes(PLUGIN, component).digest
}

/// Writes the plugin configuration: [`PLUGIN`] from the [`BYTES`] ConfigMap, optionally pinned.
async fn put_configuration(ns: &TestNamespace, sha256: Option<&str>) -> anyhow::Result<()> {
    let pin = sha256.map(|s| format!("\n    sha256: {s}")).unwrap_or_default();
    let yaml = format!(
        "plugins:\n  - name: {PLUGIN}\n    kind: batch-scheduler\n    source: {{ configMap: {{ name: {BYTES}, key: {KEY} }} }}{pin}\n"
    );
    let config = ConfigMap { data: Some([("plugins.yaml".to_string(), yaml)].into()), ..config_map(CONFIG) };
    server_side_apply(ns, &config).await
}

/// Puts a component into the [`BYTES`] ConfigMap, gzip-compressed: uncompressed, the built-in
/// plugins are over the 1 MiB a ConfigMap holds.
async fn put_plugin(ns: &TestNamespace, component: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(component)?;
    let bytes =
        ConfigMap { binary_data: Some([(KEY.to_string(), ByteString(gzip.finish()?))].into()), ..config_map(BYTES) };
    server_side_apply(ns, &bytes).await
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..ConfigMap::default() }
}

async fn server_side_apply(ns: &TestNamespace, config_map: &ConfigMap) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = ns.api();
    api.patch(&config_map.name_any(), &PatchParams::apply("wasmray-tests").force(), &Patch::Apply(config_map)).await?;
    Ok(())
}

/// The Event of `reason` about the [`BYTES`] ConfigMap whose note names `digest`, if there is one.
async fn find_event(ns: &TestNamespace, reason: &str, digest: &str) -> anyhow::Result<Option<Event>> {
    let events: Api<Event> = ns.api();
    Ok(events.list(&ListParams::default()).await?.items.into_iter().find(|e| {
        e.reason.as_deref() == Some(reason)
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(BYTES)
            && e.note.as_deref().is_some_and(|n| n.contains(digest))
    }))
}

/// Waits for an Event of `reason` about the [`BYTES`] ConfigMap whose note names `digest`.
async fn wait_for_event(ns: &TestNamespace, reason: &str, digest: &str) -> anyhow::Result<Event> {
    eventually(&format!("a {reason} Event naming sha256:{digest}"), WAIT, || async {
        Ok(find_event(ns, reason, digest).await?.map(|_| ()).ok_or_else(|| "missing".to_string()))
    })
    .await?;
    find_event(ns, reason, digest).await?.ok_or_else(|| anyhow::anyhow!("the {reason} Event went away"))
}

/// The `schedulerName`s of a cluster's live Pods.
async fn scheduler_names(ns: &TestNamespace, cluster: &str) -> anyhow::Result<Vec<String>> {
    let pods: Api<Pod> = ns.api();
    let listed = pods.list(&ListParams::default().labels(&format!("ray.io/cluster={cluster}"))).await?;
    Ok(listed
        .items
        .iter()
        .filter(|p| is_live(p))
        .map(|p| p.spec.as_ref().and_then(|s| s.scheduler_name.clone()).unwrap_or_default())
        .collect())
}

/// Waits until the cluster's head and its one worker exist with `schedulerName: scheduler`:
/// the plugin serving when they were created decorated them.
async fn wait_for_scheduler(ns: &TestNamespace, cluster: &str, scheduler: &str) -> anyhow::Result<()> {
    eventually(&format!("the Pods of {cluster} go to {scheduler}"), WAIT, || async {
        let names = scheduler_names(ns, cluster).await?;
        Ok(if names.len() == 2 && names.iter().all(|n| n == scheduler) { Ok(()) } else { Err(format!("{names:?}")) })
    })
    .await
}
