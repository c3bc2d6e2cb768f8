//! The `wasmray` binary on its own: copied into an empty directory, with an empty HOME and no cargo environment, `wasmray run` reconciles a RayCluster with the components embedded in it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use wasmray_tests::fixtures::{WAIT, apply, pods, ray_cluster};
use wasmray_tests::{TestNamespace, install_crds, namespace};

/// The variable naming the binary under test; `tests/run` sets it.
const BIN_VAR: &str = "WASMRAY_BIN";

fn built_binary() -> PathBuf {
    let path = std::env::var_os(BIN_VAR).map(PathBuf::from).unwrap_or_else(|| {
        // Not guessed from the target directory: a binary cargo did not rebuild for this test
        // run would test yesterday's code.
        let guess = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join("wasmray")));
        panic!(
            "{BIN_VAR} is not set: it names the wasmray binary to copy (tests/run sets it). By hand:\n    cargo build -p wasmray && export {BIN_VAR}={}",
            guess.map_or_else(|| "<target>/debug/wasmray".into(), |p| p.display().to_string())
        )
    });
    assert!(path.is_file(), "{BIN_VAR}={} is not a file; build it with `cargo build -p wasmray`", path.display());
    path
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("wasmray-{test}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `wasmray run` process, killed on drop.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the binary alone into `scratch/bin/` and starts `wasmray run` for `ns` from there,
/// with an empty environment but for HOME (an empty directory) and `extra`.
fn run_copy(scratch: &Scratch, ns: &TestNamespace, kubeconfig: &Path, args: &[&str], extra: &[(&str, &Path)]) -> Operator {
    let bin = scratch.0.join("bin");
    let home = scratch.0.join("home");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let wasmray = bin.join("wasmray");
    std::fs::copy(built_binary(), &wasmray).unwrap();
    let log = scratch.0.join("operator.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(&wasmray);
    command
        .current_dir(&bin)
        .env_clear()
        .env("HOME", &home)
        .env("RUST_LOG", "info")
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--watch-namespace", &ns.name, "--operator-namespace", &ns.name])
        // Tests run side by side: no fixed ports.
        .args(["--metrics-addr", "0", "--health-probe-bind-address", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(out.try_clone().unwrap())
        .stdout(out);
    for (key, value) in extra {
        command.env(key, value);
    }
    Operator { child: command.spawn().expect("starting the copied wasmray"), log }
}

/// Applies a small RayCluster and waits for its head Pod, failing with the operator's log.
async fn a_head_pod_appears(ns: &TestNamespace, operator: &mut Operator) -> anyhow::Result<()> {
    apply(ns, &ray_cluster("copied", &[("cpu", 1, 0, 2)])).await?;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = operator.child.try_wait()? {
            anyhow::bail!("the copied wasmray exited ({status}); its log:\n{}", operator.log());
        }
        let heads = pods(ns, "ray.io/cluster=copied,ray.io/node-type=head").await?;
        if heads.len() == 1 {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{} head Pods after {WAIT:?}; the operator's log:\n{}", heads.len(), operator.log());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn cwasm_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))).count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_copied_binary_in_an_empty_directory_reconciles_a_raycluster_and_caches_where_told() -> anyhow::Result<()> {
    let ns = namespace("binary-copied").await?;
    install_crds(&ns.client).await?;
    let kubeconfig = wasmray_tests::cluster().await?.kubeconfig().to_path_buf();
    let scratch = Scratch::new("binary-copied");
    let cache = scratch.0.join("compiled");
    let mut operator = run_copy(&scratch, &ns, &kubeconfig, &["--compile-cache-dir", cache.to_str().unwrap()], &[]);
    a_head_pod_appears(&ns, &mut operator).await?;
    // The RayCluster, RayJob and RayService reconcilers and the four upgrade strategies.
    let builtins = 3 + wasmray::operator::UPGRADE_STRATEGIES.len();
    assert_eq!(cwasm_files(&cache), builtins, "every built-in component's precompiled artifact is in --compile-cache-dir");
    assert_eq!(cwasm_files(&scratch.0.join("home/.cache/wasmray/compiled")), 0, "and not in the default place");
    Ok(())
}

#[tokio::test]
async fn a_copied_binary_whose_compile_cache_cannot_be_written_compiles_in_memory_and_says_so_once() -> anyhow::Result<()> {
    let ns = namespace("binary-readonly-cache").await?;
    install_crds(&ns.client).await?;
    let kubeconfig = wasmray_tests::cluster().await?.kubeconfig().to_path_buf();
    let scratch = Scratch::new("binary-readonly-cache");
    // Below a regular file no one can create a directory, root included: what a read-only root
    // filesystem without a cache volume is to the operator.
    let blocker = scratch.0.join("not-a-directory");
    std::fs::write(&blocker, "").unwrap();
    let cache = blocker.join("compiled");
    let mut operator = run_copy(&scratch, &ns, &kubeconfig, &[], &[("WASMRAY_COMPILE_CACHE_DIR", &cache)]);
    a_head_pod_appears(&ns, &mut operator).await?;
    let log = operator.log();
    assert_eq!(log.matches("not writable").count(), 1, "one warning names the directory:\n{log}");
    assert!(log.contains(cache.to_str().unwrap()), "{log}");
    Ok(())
}
