//! Plugin call costs: a reconcile-sized call (one RayCluster, 100 Pods as JSON) through WASM
//! versus the same guest code compiled natively, plus instantiation and precompiled load times.
//!
//! Run: `cargo bench -p wasmray --bench plugin_call`. Prints a Markdown table; every figure is
//! measured in the same run, on the same inputs.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

#[path = "../tests/fixtures/hundred_pods.rs"]
mod hundred_pods;

use hundred_pods::{PODS, cluster, pod};
use wasmray::{
    cache::project,
    plugin::builtin,
    runtime::{Allocator, LoadedPlugin, Origin, Runtime, RuntimeConfig, Snapshot},
};

const SEED: u64 = 42;
const NOW: i64 = 1_764_000_000_000;

fn per_call(total: Duration, calls: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(calls)
}

/// The same Pod as the operator's cache keeps it and its snapshots send it.
fn projected(pod: &str) -> String {
    project::created_pod(serde_json::from_str(pod).expect("pod JSON")).expect("a Pod").to_string()
}

/// Several named measurements taken in interleaved rounds, so a burst of load on a shared
/// machine hits every path alike; each figure is the median round, in µs per call.
struct Rounds {
    names: Vec<String>,
    samples: Vec<Vec<f64>>,
}

impl Rounds {
    fn run(rounds: usize, calls: u32, paths: &mut [(&str, &mut dyn FnMut(u32) -> Duration)]) -> Self {
        let mut samples = vec![Vec::new(); paths.len()];
        for (_, f) in paths.iter_mut() {
            f(calls / 10); // warm-up
        }
        for _ in 0..rounds {
            for (i, (_, f)) in paths.iter_mut().enumerate() {
                samples[i].push(per_call(f(calls), calls));
            }
        }
        Rounds { names: paths.iter().map(|(n, _)| n.to_string()).collect(), samples }
    }

    fn median(&self, name: &str) -> f64 {
        let i = self.names.iter().position(|n| n == name).expect("measured path");
        let mut v = self.samples[i].clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

/// Times `calls` runs of `f`.
fn timed(calls: u32, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..calls {
        f();
    }
    started.elapsed()
}

fn load(config: &RuntimeConfig, name: &str, wasm: &[u8]) -> (LoadedPlugin, Origin, Duration) {
    let runtime = Runtime::new(config.clone()).expect("runtime");
    let plugin = runtime.load(name, wasm).expect("component loads");
    let (origin, took) = plugin.origin();
    (plugin, origin, took)
}

/// A guest three ways: its crate called natively, and its component on both allocators.
type Guest<'a> = (
    &'a dyn Fn(&wasmray_guest_sdk::Snapshot) -> Result<wasmray_guest_sdk::Plan, wasmray_guest_sdk::PluginError>,
    &'a LoadedPlugin,
    &'a LoadedPlugin,
);

/// Prints one table: the same snapshot through the native crate and through WASM.
fn compare(
    title: &str,
    (native_plan, plugin, plugin_od): Guest,
    primary: &str,
    children: &[String],
    rounds: usize,
    tokio: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let bytes = primary.len() + children.iter().map(String::len).sum::<usize>();
    let native_snapshot = wasmray_guest_sdk::Snapshot {
        primary: primary.to_owned(),
        children: children.to_vec(),
        facts: vec![],
        now: NOW,
        seed: SEED,
    };
    let native = native_plan(&native_snapshot).map_err(|e| anyhow::anyhow!("native plan: {e:?}"))?;
    let snapshot = Snapshot { primary: primary.to_owned(), children: children.to_vec(), facts: vec![], now: NOW, seed: SEED };
    let plan = plugin.reconcile_blocking(&snapshot)?;
    assert_eq!(plan.ops.len(), native.ops.len(), "WASM and native plans differ");
    assert_eq!(plan.requeue_after_ms, native.requeue_after_ms);

    let calls = if bytes > 100_000 { 300 } else { 2_000 };
    let r = Rounds::run(rounds, calls, &mut [
        ("native", &mut |n| timed(n, || drop(black_box(native_plan(black_box(&native_snapshot)))))),
        ("reused", &mut |n| plugin.bench_reused_reconcile(&snapshot, n).expect("calls")),
        ("fresh", &mut |n| timed(n, || drop(black_box(plugin.reconcile_blocking(&snapshot).expect("call"))))),
        ("fresh-od", &mut |n| timed(n, || drop(black_box(plugin_od.reconcile_blocking(&snapshot).expect("call"))))),
        ("async", &mut |n| tokio.block_on(async {
            let started = Instant::now();
            for _ in 0..n {
                black_box(plugin.reconcile(snapshot.clone()).await.expect("call"));
            }
            started.elapsed()
        })),
    ]);
    let native = r.median("native");
    println!("## {title}: 1 RayCluster + {PODS} Pods, {bytes} bytes of JSON, {} ops in the plan\n", plan.ops.len());
    println!("| path | µs per call | × native |");
    println!("|---|---:|---:|");
    for (name, label) in [
        ("native", "native: the same guest crate as an rlib, called directly"),
        ("reused", "WASM: the call, on a reused instance (pooling)"),
        ("fresh", "WASM: fresh store + instance + call + plan validation (pooling)"),
        ("fresh-od", "WASM: fresh store + instance + call + plan validation (on-demand)"),
        ("async", "WASM: async `reconcile`: permit + blocking thread + fresh instance (pooling)"),
    ] {
        let v = r.median(name);
        println!("| {label} | {v:.1} | {:.2} |", v / native);
    }
    println!();
    Ok(())
}

/// The RayCluster reconciler before and after its declared field mask (issue #12 item 4): the
/// same Pods sent as today (projected at cache time) and further masked, natively and through
/// WASM, with the host's cost of serialising the children either way; all in the same rounds.
fn field_mask(reconciler: &LoadedPlugin, primary: &str, pods: &[serde_json::Value], rounds: usize) -> anyhow::Result<()> {
    let mask = reconciler.child_mask();
    anyhow::ensure!(!mask.is_empty(), "the RayCluster reconciler declares no child fields");
    let before: Vec<String> = pods.iter().map(ToString::to_string).collect();
    let after = mask.serialise(pods);
    let native = |children: &[String]| wasmray_guest_sdk::Snapshot {
        primary: primary.to_owned(), children: children.to_vec(), facts: vec![], now: NOW, seed: SEED,
    };
    let wasm = |children: &[String]| Snapshot { primary: primary.to_owned(), children: children.to_vec(), facts: vec![], now: NOW, seed: SEED };
    let (native_before, native_after) = (native(&before), native(&after));
    let (wasm_before, wasm_after) = (wasm(&before), wasm(&after));
    // The figures compare like with like only if the mask changes nothing the reconciler decides.
    let plan = |s: &wasmray_guest_sdk::Snapshot| wasmray_raycluster::reconcile(s).map_err(|e| anyhow::anyhow!("native plan: {e:?}"));
    anyhow::ensure!(plan(&native_before)? == plan(&native_after)?, "the mask changes the native plan");
    let wasm_plan = reconciler.reconcile_blocking(&wasm_before)?;
    anyhow::ensure!(wasm_plan == reconciler.reconcile_blocking(&wasm_after)?, "the mask changes the WASM plan");
    anyhow::ensure!(wasm_plan.ops.len() == plan(&native_before)?.ops.len(), "WASM and native plans differ");

    let calls = 300;
    let r = Rounds::run(rounds, calls, &mut [
        ("native-before", &mut |n| timed(n, || drop(black_box(wasmray_raycluster::reconcile(black_box(&native_before)))))),
        ("native-after", &mut |n| timed(n, || drop(black_box(wasmray_raycluster::reconcile(black_box(&native_after)))))),
        ("reused-before", &mut |n| reconciler.bench_reused_reconcile(&wasm_before, n).expect("calls")),
        ("reused-after", &mut |n| reconciler.bench_reused_reconcile(&wasm_after, n).expect("calls")),
        ("fresh-before", &mut |n| timed(n, || drop(black_box(reconciler.reconcile_blocking(&wasm_before).expect("call"))))),
        ("fresh-after", &mut |n| timed(n, || drop(black_box(reconciler.reconcile_blocking(&wasm_after).expect("call"))))),
        ("host-before", &mut |n| timed(n, || drop(black_box(pods.iter().map(ToString::to_string).collect::<Vec<_>>())))),
        ("host-after", &mut |n| timed(n, || drop(black_box(mask.serialise(black_box(pods)))))),
    ]);
    let bytes = |children: &[String]| primary.len() + children.iter().map(String::len).sum::<usize>();
    println!("## The RayCluster reconciler's field mask: 1 RayCluster + {PODS} Pods, {} ops in the plan\n", wasm_plan.ops.len());
    println!("Before: Pods as the cache projects them (every reconciler gets them so). After: further reduced to the");
    println!("fields the reconciler declares (`child-fields`). The plans are checked equal before timing.\n");
    println!("| path | before (no mask) | after (its mask) | after / before |");
    println!("|---|---:|---:|---:|");
    println!("| bytes of JSON in the snapshot | {} | {} | {:.2} |", bytes(&before), bytes(&after), bytes(&after) as f64 / bytes(&before) as f64);
    for (name, label) in [
        ("native", "native: the reconciler crate as an rlib, µs per call"),
        ("reused", "WASM: the call, on a reused instance (pooling), µs"),
        ("fresh", "WASM: fresh store + instance + call + plan validation (pooling), µs"),
        ("host", "host: the children serialised for the snapshot (after: projected by the mask first), µs"),
    ] {
        let (b, a) = (r.median(&format!("{name}-before")), r.median(&format!("{name}-after")));
        println!("| {label} | {b:.1} | {a:.1} | {:.2} |", a / b);
    }
    println!();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // BENCH_GUEST=path compares a differently built copy of the same guest (build flags).
    let wasm = match std::env::var_os("BENCH_GUEST") {
        Some(path) => std::fs::read(path)?,
        None => std::fs::read(builtin::test_program("wasmray-bench-reconciler").expect("built by host/build.rs"))?,
    };
    let echo = std::fs::read(builtin::test_program("wasmray-test-echo-v1").expect("built by host/build.rs"))?;
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let keep = std::env::var("KEEP_RESIDENT_KIB").ok().and_then(|v| v.parse::<usize>().ok()).map(|kib| kib << 10);
    let cache = tempfile::tempdir()?;
    let config = |allocator| RuntimeConfig {
        allocator,
        keep_resident: keep,
        cache_dir: Some(cache.path().join(format!("{allocator:?}"))),
        ..Default::default()
    };
    let pooling = config(Allocator::Pooling);
    let on_demand = config(Allocator::OnDemand);

    // Loading: compile on a cache miss, then a restarted runtime loads the precompiled artifact.
    let mut loads = Vec::new();
    for config in [&pooling, &on_demand] {
        let (_, first, compile) = load(config, "bench", &wasm);
        let (_, second, cached) = load(config, "bench", &wasm);
        assert_eq!((first, second), (Origin::Compiled, Origin::Cached));
        loads.push((config.allocator, compile, cached));
    }
    let (plugin, _, _) = load(&pooling, "bench", &wasm);
    let (plugin_od, _, _) = load(&on_demand, "bench", &wasm);
    let (echo_plugin, _, _) = load(&pooling, "echo", &echo);
    let (echo_od, _, _) = load(&on_demand, "echo", &echo);
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    let primary = cluster();
    let full: Vec<String> = (0..PODS).map(pod).collect();
    let lean: Vec<String> = full.iter().map(|p| projected(p)).collect();
    let reconciler_wasm = builtin::bytes("wasmray-raycluster").expect("embedded by host/build.rs");
    let (reconciler, _, _) = load(&pooling, "raycluster", reconciler_wasm);
    let (reconciler_od, _, _) = load(&on_demand, "raycluster", reconciler_wasm);
    println!("# Plugin call benchmark\n");
    println!("Median of {rounds} interleaved rounds; µs per call.\n");
    let bench_guest: Guest = (&wasmray_bench_reconciler::plan, &plugin, &plugin_od);
    let real_guest: Guest = (&wasmray_raycluster::reconcile, &reconciler, &reconciler_od);
    for (title, guest, children) in [
        ("the bench guest, whole Pods (managedFields stripped)", bench_guest, &full),
        ("the bench guest, Pods as the operator sends them (projected)", bench_guest, &lean),
        ("the RayCluster reconciler, Pods as the operator sends them (projected)", real_guest, &lean),
    ] {
        compare(title, guest, &primary, children, rounds, &tokio)?;
    }
    let lean_values: Vec<serde_json::Value> = lean.iter().map(|p| serde_json::from_str(p)).collect::<Result<_, _>>()?;
    field_mask(&reconciler, &primary, &lean_values, rounds)?;

    let tiny = Snapshot { primary: "{}".into(), children: vec![], facts: vec![], now: NOW, seed: SEED };
    let r = Rounds::run(rounds, 2_000, &mut [
        ("inst", &mut |n| plugin.bench_instantiate(n).expect("instantiate")),
        ("inst-od", &mut |n| plugin_od.bench_instantiate(n).expect("instantiate")),
        ("echo", &mut |n| timed(n, || drop(black_box(echo_plugin.reconcile_blocking(&tiny).expect("call"))))),
        ("echo-od", &mut |n| timed(n, || drop(black_box(echo_od.reconcile_blocking(&tiny).expect("call"))))),
    ]);
    println!("## Instantiation\n");
    println!("| allocator | fresh store + instance, bench guest ({} KB) | fresh instance + tiny call, echo guest ({} KB) |", wasm.len() / 1024, echo.len() / 1024);
    println!("|---|---:|---:|");
    println!("| pooling | {:.1} µs | {:.1} µs |", r.median("inst"), r.median("echo"));
    println!("| on-demand | {:.1} µs | {:.1} µs |", r.median("inst-od"), r.median("echo-od"));
    println!("\n## Loading the bench guest ({} KB)\n", wasm.len() / 1024);
    println!("| allocator | compile + check + InstancePre (cache miss) | precompiled load + check + InstancePre (cache hit) |");
    println!("|---|---:|---:|");
    for (allocator, compile, cached) in &loads {
        println!("| {allocator:?} | {:.1} ms | {:.2} ms |", compile.as_secs_f64() * 1e3, cached.as_secs_f64() * 1e3);
    }
    Ok(())
}
