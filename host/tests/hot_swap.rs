//! Hot swap under load: v1 is replaced by v2 on disk while four tasks call the plugin; no call
//! fails, calls that start after the swap get v2, and a bad v3 is rejected while v2 serves.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use wasmray::{
    plugin::{Registry, RegistryConfig, builtin},
    runtime::{Op, Runtime, RuntimeConfig, Snapshot},
};

const POLL: Duration = Duration::from_millis(25);

fn wasm(package: &str) -> Vec<u8> {
    std::fs::read(builtin::test_program(package).expect("a test program")).expect("component file")
}

/// Replaces `path` atomically, as a ConfigMap volume update or `mv` does.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// What the echo plugin answered: its version, from the Event it returns.
fn version_of(ops: &[Op]) -> String {
    match ops.first() {
        Some(Op::Event(e)) => e.message.clone(),
        other => panic!("unexpected plan {other:?}"),
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Instant {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_v1_for_v2_under_load_fails_no_call_and_a_bad_v3_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_path = dir.path().join("echo.wasm");
    let config_path = dir.path().join("plugins.yaml");
    replace(&plugin_path, &wasm("wasmray-test-echo-v1"));
    std::fs::write(&config_path, "plugins:\n  - name: echo\n    kind: reconciler\n    source: { file: echo.wasm }\n").unwrap();

    // The deadline is wall-clock time. This test is about the swap, on a 2-core machine that also
    // compiles v2 meanwhile, so it gives each call more room than the 100 ms default.
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        deadline: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let registry = Arc::new(Registry::new(runtime));
    let config = RegistryConfig::load(&config_path).unwrap();
    registry.reload(&config, &Default::default()).await;
    let v1_digest = registry.get("echo").expect("v1 loaded").id().digest.clone();
    let watcher = tokio::spawn(registry.clone().watch_files(config_path.clone(), POLL));

    // Four callers; each records (start, finish, answer) of every call.
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for task in 0..4u64 {
        let registry = registry.clone();
        let stop = stop.clone();
        callers.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let plugin = registry.get("echo").expect("echo always serves");
                let snapshot = Snapshot { primary: "{}".into(), children: vec![], facts: vec![], now: 0, seed: task };
                let answer = plugin.reconcile(snapshot).await.map(|plan| version_of(&plan.ops));
                calls.push((started, answer));
            }
            calls
        }));
    }

    tokio::time::sleep(Duration::from_millis(200)).await;
    replace(&plugin_path, &wasm("wasmray-test-echo-v2"));
    let swapped = wait_until("v2 serves", || registry.get("echo").unwrap().id().digest != v1_digest).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // v3 is a batch scheduler where a reconciler is configured: rejected, v2 keeps serving.
    replace(&plugin_path, &wasm("wasmray-test-scheduler"));
    let rejected = wait_until("v3 is rejected", || registry.rejection("echo").is_some()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);

    let mut calls = Vec::new();
    for caller in callers {
        calls.extend(caller.await.unwrap());
    }
    watcher.abort();

    let failed: Vec<_> = calls.iter().filter(|(_, a)| a.is_err()).collect();
    assert!(failed.is_empty(), "{} of {} calls failed: {:?}", failed.len(), calls.len(), failed.first());
    let answers = |from: Instant, to: Option<Instant>| {
        calls
            .iter()
            .filter(move |(start, _)| *start > from && to.is_none_or(|to| *start < to))
            .map(|(_, a)| a.as_deref().unwrap())
    };
    let before = calls.iter().filter(|(s, _)| *s < swapped).count();
    assert!(before > 0 && calls.iter().any(|(_, a)| matches!(a.as_deref(), Ok("v1"))), "no call ran on v1");
    let after: Vec<&str> = answers(swapped, None).collect();
    assert!(!after.is_empty(), "no call started after the swap");
    assert!(after.iter().all(|v| *v == "v2"), "a call after the swap answered {:?}", after.iter().find(|v| **v != "v2"));
    assert!(answers(rejected, None).count() > 0, "no call ran after the rejection");

    let why = registry.rejection("echo").unwrap();
    assert!(why.contains("batch-scheduler") && why.contains("reconciler"), "{why}");
    assert_eq!(registry.get("echo").unwrap().id().name, "echo");
    eprintln!("{} calls, {} before the swap, {} after; rejection: {why}", calls.len(), before, after.len());
}
