//! WIT versions side by side: a plugin built against the frozen 0.1.0 still loads and gets whole children; a 0.2.0 reconciler's declared fields are what it is sent.

mod fixtures {
    pub mod hundred_pods;
}

use fixtures::hundred_pods::{PODS, cluster, pod};
use serde_json::{Value, json};
use wasmray::{
    cache::project,
    plugin::builtin,
    runtime::{Op, Runtime, RuntimeConfig, Snapshot, WitLine},
};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default()).expect("runtime")
}

fn snapshot(primary: &str, children: Vec<String>) -> Snapshot {
    Snapshot { primary: primary.into(), children, facts: vec![], now: 1_764_000_000_000, seed: 42 }
}

/// The benchmark's 100 Pods as the cache keeps them (projected at cache time).
fn cached_pods() -> Vec<Value> {
    (0..PODS).map(|i| project::created_pod(serde_json::from_str(&pod(i)).expect("pod JSON")).expect("a Pod")).collect()
}

#[test]
fn a_plugin_built_against_wit_0_1_0_loads_reconciles_and_gets_whole_children() {
    let path = builtin::test_program("wasmray-test-wit-v0-1").expect("built by host/build.rs");
    let wasm = std::fs::read(path).expect("reading the test program");
    let plugin = runtime().load("wit-v0-1", &wasm).expect("a 0.1.0 plugin loads on the 0.2.0 host");
    assert_eq!((plugin.info().wit_version.as_str(), plugin.info().line), ("0.1.0", WitLine::V0_1));
    assert!(plugin.info().exports.iter().any(|e| e.starts_with("wasmray:plugin/reconcile@0.1.0")), "{:?}", plugin.info().exports);
    assert!(plugin.child_mask().is_empty(), "a 0.1.0 plugin declares no child fields");

    let service = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "demo-head-svc" }, "spec": { "clusterIP": "None" } });
    let children: Vec<Value> = std::iter::once(service).chain(cached_pods().into_iter().take(3)).collect();
    // What the controller sends: the children through the plugin's mask.
    let sent = plugin.child_mask().serialise(&children);
    let plan = plugin.reconcile_blocking(&snapshot(&cluster(), sent)).expect("the 0.1.0 plugin reconciles");
    let [Op::Status(status)] = plan.ops.as_slice() else { panic!("one status op, got {:?}", plan.ops) };
    let echoed: Value = serde_json::from_str(status.fields.as_deref().expect("fields")).expect("fields are JSON");
    assert_eq!(echoed["children"], Value::Array(children), "the 0.1.0 plugin gets every child whole");
}

#[test]
fn the_raycluster_reconciler_is_a_0_2_0_plugin_sent_only_the_pod_fields_it_declares() {
    let wasm = builtin::bytes("wasmray-raycluster").expect("embedded by host/build.rs");
    let plugin = runtime().load("raycluster", wasm).expect("the RayCluster reconciler loads");
    assert_eq!((plugin.info().wit_version.as_str(), plugin.info().line), (wasmray::runtime::WIT_VERSION, WitLine::V0_2));
    let mask = plugin.child_mask();
    let pods = cached_pods();
    let worker = mask.project(&pods[1]);
    assert_eq!(worker["metadata"]["name"], "demo-cpu-001");
    assert_eq!(worker["metadata"]["labels"], pods[1]["metadata"]["labels"]);
    assert_eq!(worker["status"]["phase"], "Running");
    assert_eq!(worker["spec"], json!({ "containers": [ { "name": "ray-worker" } ], "restartPolicy": "Never" }));
    for dropped in ["resourceVersion", "ownerReferences", "creationTimestamp"] {
        assert!(worker["metadata"].get(dropped).is_none(), "{dropped} is sent: {worker}");
    }
    assert!(worker["status"].get("hostIP").is_none(), "{worker}");
    let service = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "demo-head-svc" }, "spec": { "clusterIP": "None" } });
    assert_eq!(mask.project(&service), service, "kinds it does not declare are sent whole");
}

#[test]
fn the_raycluster_reconcilers_plan_for_100_pods_is_the_same_under_its_mask_in_wasm() {
    let wasm = builtin::bytes("wasmray-raycluster").expect("embedded by host/build.rs");
    let plugin = runtime().load("raycluster", wasm).expect("the RayCluster reconciler loads");
    let pods = cached_pods();
    let whole: Vec<String> = pods.iter().map(ToString::to_string).collect();
    let masked = plugin.child_mask().serialise(&pods);
    assert!(masked.iter().map(String::len).sum::<usize>() < whole.iter().map(String::len).sum::<usize>());
    let plan_whole = plugin.reconcile_blocking(&snapshot(&cluster(), whole)).expect("reconciles whole Pods");
    let plan_masked = plugin.reconcile_blocking(&snapshot(&cluster(), masked)).expect("reconciles masked Pods");
    assert!(!plan_whole.ops.is_empty());
    assert_eq!(plan_masked, plan_whole);
}
