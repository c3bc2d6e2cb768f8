//! Plugin call costs: a reconcile-sized call (one RayCluster, 100 Pods as JSON) through WASM
//! versus the same guest code compiled natively, plus instantiation and precompiled load times.
//!
//! Run: `cargo bench -p wasmray --bench plugin_call`. Prints a Markdown table; every figure is
//! measured in the same run, on the same inputs.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use serde_json::json;
use wasmray::{
    plugin::builtin,
    runtime::{Allocator, LoadedPlugin, Origin, Runtime, RuntimeConfig, Snapshot},
};

const PODS: usize = 100;
const CALLS: u32 = 2_000;
const SEED: u64 = 42;
const NOW: i64 = 1_764_000_000_000;

fn cluster() -> String {
    json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": { "name": "demo", "namespace": "ml", "uid": "6b1c2d3e-0000-4000-8000-000000000001",
                      "generation": 3, "labels": { "team": "ml" } },
        "spec": {
            "rayVersion": "2.54.0",
            "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [
                { "name": "ray-head", "image": "rayproject/ray:2.54.0",
                  "resources": { "limits": { "cpu": "2", "memory": "8Gi" } } } ] } } },
            "workerGroupSpecs": [
                { "groupName": "cpu", "replicas": 60, "minReplicas": 1, "maxReplicas": 100, "rayStartParams": {},
                  "template": { "spec": { "containers": [ { "name": "ray-worker", "image": "rayproject/ray:2.54.0",
                      "resources": { "limits": { "cpu": "4", "memory": "16Gi" } } } ] } } },
                { "groupName": "gpu", "replicas": 38, "minReplicas": 0, "maxReplicas": 64, "rayStartParams": {},
                  "template": { "spec": { "containers": [ { "name": "ray-worker", "image": "rayproject/ray:2.54.0",
                      "resources": { "limits": { "cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1" } } } ] } } }
            ]
        }
    })
    .to_string()
}

/// A Pod as the apiserver returns it (managedFields stripped), about 2 KB of JSON.
fn pod(i: usize) -> String {
    let (group, kind) = match i {
        0 => ("headgroup", "head"),
        1..60 => ("cpu", "worker"),
        _ => ("gpu", "worker"),
    };
    let phase = if i % 10 == 9 { "Pending" } else { "Running" };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("demo-{group}-{i:03}"), "namespace": "ml",
            "uid": format!("0f0e0d0c-0000-4000-8000-{i:012}"), "resourceVersion": format!("{}", 1000 + i),
            "creationTimestamp": "2026-11-25T10:00:00Z",
            "labels": { "ray.io/cluster": "demo", "ray.io/group": group, "ray.io/node-type": kind,
                        "ray.io/is-ray-node": "yes", "app.kubernetes.io/created-by": "wasmray",
                        "app.kubernetes.io/name": "kuberay" },
            "annotations": { "ray.io/ft-enabled": "false", "wasmray.io/spec-hash": "3f9a1c0b7d2e" },
            "ownerReferences": [ { "apiVersion": "ray.io/v1", "kind": "RayCluster", "name": "demo",
                                   "uid": "6b1c2d3e-0000-4000-8000-000000000001", "controller": true,
                                   "blockOwnerDeletion": true } ]
        },
        "spec": {
            "containers": [ {
                "name": format!("ray-{kind}"), "image": "rayproject/ray:2.54.0",
                "command": ["/bin/bash", "-lc", "--"],
                "args": ["ulimit -n 65536; ray start --address=demo-head-svc.ml.svc.cluster.local:6379 --block"],
                "env": [ { "name": "RAY_CLUSTER_NAME", "value": "demo" },
                         { "name": "RAY_CLOUD_INSTANCE_ID", "value": format!("demo-{group}-{i:03}") },
                         { "name": "RAY_NODE_TYPE_NAME", "value": group },
                         { "name": "RAY_USAGE_STATS_ENABLED", "value": "0" } ],
                "ports": [ { "containerPort": 8080, "name": "metrics", "protocol": "TCP" } ],
                "resources": { "limits": { "cpu": "4", "memory": "16Gi" }, "requests": { "cpu": "4", "memory": "16Gi" } },
                "volumeMounts": [ { "mountPath": "/dev/shm", "name": "shared-mem" } ]
            } ],
            "volumes": [ { "name": "shared-mem", "emptyDir": { "medium": "Memory", "sizeLimit": "4Gi" } } ],
            "restartPolicy": "Never", "nodeName": format!("kwok-node-{}", i % 16), "schedulerName": "default-scheduler"
        },
        "status": {
            "phase": phase, "podIP": format!("10.0.{}.{}", i / 250, i % 250), "hostIP": "192.168.0.10",
            "startTime": "2026-11-25T10:00:05Z",
            "conditions": [ { "type": "Initialized", "status": "True" }, { "type": "Ready", "status": "True" },
                            { "type": "ContainersReady", "status": "True" }, { "type": "PodScheduled", "status": "True" } ],
            "containerStatuses": [ { "name": format!("ray-{kind}"), "ready": true, "restartCount": 0,
                                     "image": "rayproject/ray:2.54.0", "started": true,
                                     "state": { "running": { "startedAt": "2026-11-25T10:00:09Z" } } } ]
        }
    })
    .to_string()
}

fn per_call(total: Duration, calls: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(calls)
}

/// Runs `f` `calls` times after a warm-up; µs per call.
fn measure(calls: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..calls / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..calls {
        f();
    }
    per_call(started.elapsed(), calls)
}

fn load(config: &RuntimeConfig, wasm: &[u8]) -> (LoadedPlugin, Origin, Duration) {
    let runtime = Runtime::new(config.clone()).expect("runtime");
    let plugin = runtime.load("bench", wasm).expect("bench component loads");
    let (origin, took) = plugin.origin();
    (plugin, origin, took)
}

fn main() -> anyhow::Result<()> {
    let wasm_path = builtin::path("wasmray-bench-reconciler").expect("built by host/build.rs");
    let wasm = std::fs::read(wasm_path)?;
    let echo = std::fs::read(builtin::path("wasmray-test-echo-v1").expect("built by host/build.rs"))?;
    let primary = cluster();
    let children: Vec<String> = (0..PODS).map(pod).collect();
    let json_bytes = primary.len() + children.iter().map(String::len).sum::<usize>();

    // The same code, native: the guest crate as an rlib, called directly with the SDK's types.
    let native_snapshot = wasmray_guest_sdk::Snapshot {
        primary: primary.clone(),
        children: children.clone(),
        facts: vec![],
        now: NOW,
        seed: SEED,
    };
    let native_plan = wasmray_bench_reconciler::plan(&native_snapshot).expect("native plan");
    let native = measure(CALLS, || drop(black_box(wasmray_bench_reconciler::plan(black_box(&native_snapshot)))));

    let snapshot = Snapshot { primary, children, facts: vec![], now: NOW, seed: SEED };
    let cache = tempfile::tempdir()?;
    let mut rows = Vec::new();
    let mut loads = Vec::new();
    for allocator in [Allocator::Pooling, Allocator::OnDemand] {
        let config = RuntimeConfig { allocator, cache_dir: Some(cache.path().join(format!("{allocator:?}"))), ..Default::default() };
        let (_, first, compile) = load(&config, &wasm);
        let (plugin, second, cached) = load(&config, &wasm);
        assert_eq!((first, second), (Origin::Compiled, Origin::Cached));
        loads.push((allocator, compile, cached));

        let plan = plugin.reconcile_blocking(&snapshot)?;
        assert_eq!(plan.ops.len(), native_plan.ops.len(), "WASM and native plans differ");
        assert_eq!(plan.requeue_after_ms, native_plan.requeue_after_ms);

        let reused = per_call(plugin.bench_reused_reconcile(&snapshot, CALLS)?, CALLS);
        let fresh = measure(CALLS, || drop(black_box(plugin.reconcile_blocking(&snapshot).expect("call"))));
        let instantiate = per_call(plugin.bench_instantiate(CALLS)?, CALLS);
        let echo_plugin = Runtime::new(config.clone())?.load("echo", &echo)?;
        let tiny = Snapshot { primary: "{}".into(), children: vec![], facts: vec![], now: NOW, seed: SEED };
        let echo_fresh = measure(CALLS, || drop(black_box(echo_plugin.reconcile_blocking(&tiny).expect("call"))));

        // The operator's path: permit, blocking thread, fresh instance, call, validation.
        let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let operator_path = tokio.block_on(async {
            for _ in 0..CALLS / 10 {
                plugin.reconcile(snapshot.clone()).await.expect("call");
            }
            let started = Instant::now();
            for _ in 0..CALLS {
                black_box(plugin.reconcile(snapshot.clone()).await.expect("call"));
            }
            per_call(started.elapsed(), CALLS)
        });
        rows.push((allocator, reused, fresh, instantiate, echo_fresh, operator_path));
    }

    println!("## Reconcile-sized call: 1 RayCluster + {PODS} Pods, {json_bytes} bytes of JSON, {} ops in the plan\n", native_plan.ops.len());
    println!("| path | µs per call | × native |");
    println!("|---|---:|---:|");
    println!("| native (same crate as rlib, called directly) | {native:.1} | 1.00 |");
    for (allocator, reused, fresh, _, _, operator_path) in &rows {
        println!("| WASM, {allocator:?}: call on a reused instance | {reused:.1} | {:.2} |", reused / native);
        println!("| WASM, {allocator:?}: fresh store + instance + call + plan validation | {fresh:.1} | {:.2} |", fresh / native);
        println!("| WASM, {allocator:?}: async `reconcile` (permit + blocking thread + the above) | {operator_path:.1} | {:.2} |", operator_path / native);
    }
    println!("\n## Instantiation\n");
    println!("| allocator | fresh store + instance, bench guest ({} KB) | fresh instance + tiny call, echo guest ({} KB) |", wasm.len() / 1024, echo.len() / 1024);
    println!("|---|---:|---:|");
    for (allocator, _, _, instantiate, echo_fresh, _) in &rows {
        println!("| {allocator:?} | {instantiate:.1} µs | {echo_fresh:.1} µs |");
    }
    println!("\n## Loading the bench guest ({} KB)\n", wasm.len() / 1024);
    println!("| allocator | compile + check + InstancePre (cache miss) | precompiled load + check + InstancePre (cache hit) |");
    println!("|---|---:|---:|");
    for (allocator, compile, cached) in &loads {
        println!("| {allocator:?} | {:.1} ms | {:.2} ms |", compile.as_secs_f64() * 1e3, cached.as_secs_f64() * 1e3);
    }
    Ok(())
}
