//! Hostile guests: each misbehaviour becomes its typed error within the deadline, and other
//! calls keep succeeding meanwhile.

use std::time::{Duration, Instant};

use wasmray::{
    plugin::builtin,
    runtime::{
        LoadedPlugin, Op, Origin, OwnerContext, PluginError, PluginKind, PodContext, Runtime,
        RuntimeConfig, RuntimeError, Snapshot,
    },
};

fn wasm(package: &str) -> Vec<u8> {
    let path = builtin::test_program(package).unwrap_or_else(|| panic!("{package} is not a test program"));
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default()).expect("runtime")
}

fn hostile(rt: &Runtime) -> LoadedPlugin {
    rt.load("hostile", &wasm("wasmray-test-hostile")).expect("hostile guest loads")
}

/// A snapshot whose primary "object" is the hostile guest's instruction.
fn asking(mode: &str) -> Snapshot {
    Snapshot { primary: mode.into(), children: vec![], facts: vec![], now: 1_700_000_000_000, seed: 7 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_times_out_within_the_deadline_while_other_calls_succeed() {
    let rt = runtime();
    let plugin = hostile(&rt);
    let deadline = rt.config().deadline;
    let looping = {
        let plugin = plugin.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (plugin.reconcile(asking("loop")).await, started.elapsed())
        })
    };
    // Meanwhile, well-behaved calls on the same plugin go through.
    let mut fine = 0;
    while !looping.is_finished() {
        let plan = plugin.reconcile(asking("ok")).await.expect("a well-behaved call succeeds");
        assert_eq!(plan.ops.len(), 1);
        fine += 1;
    }
    let (result, elapsed) = looping.await.unwrap();
    match result {
        Err(RuntimeError::Timeout { plugin: id, deadline: d }) => {
            assert_eq!(id.name, "hostile");
            assert_eq!(d, deadline);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed >= deadline, "interrupted early: {elapsed:?}");
    assert!(elapsed < deadline * 2, "interrupted late: {elapsed:?}");
    assert!(fine > 0, "no call completed while the loop ran");
}

#[tokio::test]
async fn allocating_past_the_limit_is_a_memory_limit_error() {
    let rt = Runtime::new(RuntimeConfig { memory_limit: 16 << 20, ..RuntimeConfig::default() }).unwrap();
    let plugin = hostile(&rt);
    let started = Instant::now();
    let err = plugin.reconcile(asking("oom")).await.unwrap_err();
    assert!(matches!(err, RuntimeError::MemoryLimit { limit, .. } if limit == 16 << 20), "{err:?}");
    assert!(started.elapsed() < rt.config().deadline, "took {:?}", started.elapsed());
    assert!(err.to_string().contains("hostile@sha256:"), "error names the plugin version: {err}");
    // The instance is gone with its memory; the next call starts clean.
    plugin.reconcile(asking("ok")).await.expect("next call succeeds");
}

#[tokio::test]
async fn a_panic_is_a_trap_carrying_the_panic_message() {
    let rt = runtime();
    let plugin = hostile(&rt);
    let err = plugin.reconcile(asking("panic")).await.unwrap_err();
    match &err {
        RuntimeError::Trap { panic: Some(message), .. } => {
            assert!(message.contains("hostile guest panics on purpose"), "{message}")
        }
        other => panic!("expected a trap with the panic message, got {other:?}"),
    }
    plugin.reconcile(asking("ok")).await.expect("next call succeeds");
}

#[tokio::test]
async fn malformed_plans_are_refused() {
    let rt = runtime();
    let plugin = hostile(&rt);
    for mode in ["malformed-json", "malformed-object", "malformed-delete", "malformed-status"] {
        let err = plugin.reconcile(asking(mode)).await.unwrap_err();
        assert!(matches!(err, RuntimeError::MalformedOutput { .. }), "{mode}: {err:?}");
        assert_eq!(err.plugin().map(|p| p.name.as_str()), Some("hostile"));
    }
}

#[tokio::test]
async fn a_returned_plugin_error_is_passed_on_typed() {
    let rt = runtime();
    let err = hostile(&rt).reconcile(asking("error")).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::Plugin { error: PluginError::InvalidSpec(ref m), .. } if m.contains("rejects")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_misbehaviour_at_once_leaves_good_calls_unharmed() {
    // A small limit, so the memory bombs hit it well before the deadline even on a loaded machine,
    // and a longer deadline, so a good call descheduled behind two spinning loops on a 2-core
    // machine is not interrupted (the deadline is wall-clock time).
    let config = RuntimeConfig { memory_limit: 16 << 20, deadline: Duration::from_millis(500), ..RuntimeConfig::default() };
    let rt = Runtime::new(config).unwrap();
    let plugin = hostile(&rt);
    let mut bad = Vec::new();
    for mode in ["loop", "oom", "panic", "malformed-json", "loop", "oom"] {
        let plugin = plugin.clone();
        bad.push(tokio::spawn(async move { (mode, plugin.reconcile(asking(mode)).await) }));
    }
    let mut good = Vec::new();
    for _ in 0..50 {
        let plugin = plugin.clone();
        good.push(tokio::spawn(async move { plugin.reconcile(asking("ok")).await }));
    }
    for call in good {
        call.await.unwrap().expect("good call");
    }
    for call in bad {
        let (mode, result) = call.await.unwrap();
        let label = result.unwrap_err().label();
        let expected = match mode {
            "loop" => "timeout",
            "oom" => "memory_limit",
            "panic" => "trap",
            _ => "malformed_output",
        };
        assert_eq!(label, expected, "{mode}");
    }
}

#[tokio::test]
async fn calling_a_plugin_as_another_kind_is_a_typed_error() {
    let rt = runtime();
    let scheduler = rt.load("gang", &wasm("wasmray-test-scheduler")).unwrap();
    assert_eq!(scheduler.info().kind, PluginKind::BatchScheduler);
    let err = scheduler.reconcile(asking("ok")).await.unwrap_err();
    assert!(matches!(err, RuntimeError::WrongKind { expected: "reconciler", actual: "batch-scheduler", .. }), "{err:?}");
}

#[tokio::test]
async fn a_batch_scheduler_declares_kinds_creates_companions_and_decorates_pods() {
    let rt = runtime();
    let plugin = rt.load("gang", &wasm("wasmray-test-scheduler")).unwrap();
    let kinds = plugin.companion_kinds().unwrap();
    assert_eq!(kinds[0].kind, "PodGroup");
    let owner = r#"{"apiVersion":"ray.io/v1","kind":"RayCluster","metadata":{"name":"demo","namespace":"ml"}}"#;
    let ctx = OwnerContext { owner: owner.into(), companions: vec![], now: 0 };
    let objects = plugin.on_submission(ctx.clone()).await.unwrap();
    assert!(objects[0].contains(r#""name":"ray-demo-pg""#), "{objects:?}");
    let pod = PodContext { owner: owner.into(), group_name: "gpu".into(), pod: "{}".into() };
    let decoration = plugin.decorate_pod(pod).await.unwrap();
    assert_eq!(decoration.scheduler_name.as_deref(), Some("volcano"));
    assert!(decoration.labels.contains(&("ray.io/group".into(), "gpu".into())));
    let cleanup = plugin.on_completion(ctx).await.unwrap();
    assert_eq!(cleanup[0].name, "ray-demo-pg");
}

#[test]
fn a_batch_scheduler_declaring_a_nameless_companion_kind_is_refused_at_load() {
    let err = runtime().load("nameless", &wasm("wasmray-test-bad-scheduler")).unwrap_err();
    assert!(matches!(err, RuntimeError::MalformedOutput { ref reason, .. } if reason.contains("empty apiVersion or kind")), "{err:?}");
    assert!(err.to_string().contains("nameless"), "the error names the plugin: {err}");
}

#[test]
fn a_precompiled_component_is_loaded_from_the_cache_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { cache_dir: Some(dir.path().into()), ..RuntimeConfig::default() };
    let bytes = wasm("wasmray-test-echo-v1");
    let first = Runtime::new(config.clone()).unwrap().load("echo", &bytes).unwrap();
    assert_eq!(first.origin().0, Origin::Compiled);
    // A new runtime (a restarted operator) finds the artifact.
    let second = Runtime::new(config).unwrap().load("echo", &bytes).unwrap();
    assert_eq!(second.origin().0, Origin::Cached);
    assert_eq!(first.id(), second.id());
}

#[test]
fn a_cache_directory_that_cannot_be_created_compiles_in_memory_every_time() {
    // A directory below a regular file can be created by no one, root included: what a
    // read-only root filesystem without a mounted cache volume looks like to the operator.
    let file = tempfile::NamedTempFile::new().unwrap();
    let config = RuntimeConfig { cache_dir: Some(file.path().join("compiled")), ..RuntimeConfig::default() };
    let bytes = wasm("wasmray-test-echo-v1");
    for _ in 0..2 {
        let plugin = Runtime::new(config.clone()).unwrap().load("echo", &bytes).unwrap();
        assert_eq!(plugin.origin().0, Origin::Compiled);
        let plan = plugin.reconcile_blocking(&asking("x")).unwrap();
        assert!(matches!(&plan.ops[0], Op::Event(e) if e.message == "v1"));
    }
}

#[test]
fn the_sealed_guest_sees_the_snapshot_not_the_host() {
    let rt = runtime();
    let echo = rt.load("echo", &wasm("wasmray-test-echo-v1")).unwrap();
    let plan = echo.reconcile_blocking(&asking("x")).unwrap();
    // The echo guest answers with its version and requeues after `seed` ms.
    assert_eq!(plan.requeue_after_ms, Some(7));
    assert!(matches!(&plan.ops[0], Op::Event(e) if e.message == "v1"));
}

#[test]
fn components_that_are_not_plugins_are_rejected_with_the_reason() {
    let rt = runtime();
    let empty = wat::parse_str("(component)").unwrap();
    let err = rt.load("empty", &empty).unwrap_err();
    assert!(matches!(err, RuntimeError::Incompatible { .. }), "{err:?}");
    assert!(err.to_string().contains("exports none"), "{err}");

    // Asks for the network: refused even before looking at its exports.
    let sockets = wat::parse_str(r#"(component (import "wasi:sockets/tcp@0.2.6" (instance)))"#).unwrap();
    let err = rt.load("sockets", &sockets).unwrap_err().to_string();
    assert!(err.contains("wasi:sockets/tcp@0.2.6"), "{err}");

    let garbage = rt.load("garbage", b"not wasm").unwrap_err();
    assert!(matches!(garbage, RuntimeError::Compile { .. }), "{garbage:?}");
}

#[test]
fn the_guest_sees_no_files_environment_or_clock_and_seeded_randomness() {
    let rt = runtime();
    let plugin = hostile(&rt);
    let probe = |seed: u64| {
        let snapshot = Snapshot { seed, ..asking("probe") };
        match plugin.reconcile_blocking(&snapshot).unwrap().ops.remove(0) {
            Op::Event(e) => e.message,
            other => panic!("unexpected op {other:?}"),
        }
    };
    let seen = probe(7);
    assert!(seen.starts_with("root=Err("), "the guest can list /: {seen}");
    assert!(seen.contains("file=false env=0 args=0"), "{seen}");
    // The wall clock is frozen at the snapshot's `now`.
    assert!(seen.contains(&format!("now={}", asking("probe").now)), "{seen}");
    // Randomness is a function of the seed: same seed, same answer; another seed, another.
    assert_eq!(seen, probe(7));
    assert_ne!(seen, probe(8));
}
