//! Builds the control plane's Go binaries from our pinned Go modules, cached by the modules' digest.
//!
//! No package registry ships kube-apiserver, etcd or KWOK binaries, but the Go module proxy
//! serves their sources. `tests/cluster/{kube,etcd,kwok}` hold our own `go.mod`/`go.sum`; they
//! are compiled into this binary so that `wasmray dev up` works from any directory. A build
//! directory is keyed by the sha256 of those files, so a new pin rebuilds and nothing else does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::DevError;

/// The Kubernetes release our control plane runs (k8s-openapi's `v1_35` feature matches it).
pub const KUBERNETES_VERSION: &str = "v1.35.4";

/// One Go module of ours and the binaries it produces.
struct GoModule {
    name: &'static str,
    go_mod: &'static str,
    go_sum: &'static str,
    packages: &'static [(&'static str, &'static str)],
    ldflags: &'static str,
}

const MODULES: &[GoModule] = &[
    GoModule {
        name: "kube",
        go_mod: include_str!("../../../tests/cluster/kube/go.mod"),
        go_sum: include_str!("../../../tests/cluster/kube/go.sum"),
        packages: &[
            ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
            ("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
            ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
        ],
        // Without these the servers report v0.0.0-master and clients warn about version skew.
        ldflags: "-X k8s.io/component-base/version.gitVersion=v1.35.4 \
                  -X k8s.io/component-base/version.gitMajor=1 \
                  -X k8s.io/component-base/version.gitMinor=35 \
                  -X k8s.io/component-base/version.gitTreeState=clean",
    },
    GoModule {
        name: "etcd",
        go_mod: include_str!("../../../tests/cluster/etcd/go.mod"),
        go_sum: include_str!("../../../tests/cluster/etcd/go.sum"),
        packages: &[("etcd", "go.etcd.io/etcd/server/v3")],
        ldflags: "",
    },
    GoModule {
        name: "kwok",
        go_mod: include_str!("../../../tests/cluster/kwok/go.mod"),
        go_sum: include_str!("../../../tests/cluster/kwok/go.sum"),
        packages: &[("kwok", "sigs.k8s.io/kwok/cmd/kwok")],
        ldflags: "",
    },
];

/// Paths of the built control-plane binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// The path of one binary (`kube-apiserver`, `etcd`, `kwok`, …).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The cache root: `$WASMRAY_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmray`, else `~/.cache/wasmray`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMRAY_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("wasmray");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("wasmray")
}

/// The directory holding the binaries for the current pins (it may not be built yet).
pub fn binaries_dir(cache_root: &Path) -> PathBuf {
    let mut digest = Sha256::new();
    for module in MODULES {
        digest.update(module.name);
        digest.update(module.go_mod);
        digest.update(module.go_sum);
        digest.update(module.ldflags);
    }
    let key = hex::encode(digest.finalize());
    cache_root.join("cluster").join(&key[..16])
}

/// Returns the binaries, building the ones that are missing. Progress goes to stderr.
pub fn ensure_binaries(cache_root: &Path) -> Result<Binaries, DevError> {
    let dir = binaries_dir(cache_root);
    let missing: Vec<&GoModule> = MODULES
        .iter()
        .filter(|m| m.packages.iter().any(|(bin, _)| !dir.join(bin).is_file()))
        .collect();
    if missing.is_empty() {
        return Ok(Binaries { dir });
    }
    let go = which_go()?;
    std::fs::create_dir_all(&dir).map_err(|e| DevError::io(&dir, e))?;
    // One build at a time per cache: two `dev up`s started together (parallel test runs) would
    // otherwise share one staging directory and undo each other's work. The second waits,
    // then finds what the first built.
    let lock_path = dir.join(".build.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| DevError::io(&lock_path, e))?;
    if lock.try_lock().is_err() {
        eprintln!("wasmray dev: another process is building the control plane into {}; waiting for it", dir.display());
        lock.lock().map_err(|e| DevError::io(&lock_path, e))?;
    }
    let missing: Vec<&GoModule> =
        missing.into_iter().filter(|m| m.packages.iter().any(|(bin, _)| !dir.join(bin).is_file())).collect();
    let total = Instant::now();
    for (i, module) in missing.iter().enumerate() {
        let started = Instant::now();
        eprintln!(
            "wasmray dev: building {} ({}/{}): {} — the first build takes several minutes",
            module.name,
            i + 1,
            missing.len(),
            module.packages.iter().map(|(bin, _)| *bin).collect::<Vec<_>>().join(", ")
        );
        build_module(&go, module, &dir)?;
        eprintln!("wasmray dev: built {} in {:.0?}", module.name, started.elapsed());
    }
    eprintln!("wasmray dev: control plane built in {:.0?} into {}", total.elapsed(), dir.display());
    Ok(Binaries { dir })
}

fn which_go() -> Result<PathBuf, DevError> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("go")).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/local/go/bin/go")])
        .find(|p| p.is_file())
        .ok_or(DevError::GoMissing)
}

fn build_module(go: &Path, module: &GoModule, out: &Path) -> Result<(), DevError> {
    let src = out.join("src").join(module.name);
    std::fs::create_dir_all(&src).map_err(|e| DevError::io(&src, e))?;
    for (file, body) in [("go.mod", module.go_mod), ("go.sum", module.go_sum)] {
        std::fs::write(src.join(file), body).map_err(|e| DevError::io(&src.join(file), e))?;
    }
    let log_path = out.join(format!("build-{}.log", module.name));
    let log = std::fs::File::create(&log_path).map_err(|e| DevError::io(&log_path, e))?;
    let log_err = log.try_clone().map_err(|e| DevError::io(&log_path, e))?;
    // Build into a staging directory and rename, so a half-written binary never looks built.
    let staging = out.join(format!(".staging-{}", module.name));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| DevError::io(&staging, e))?;
    let mut cmd = Command::new(go);
    cmd.current_dir(&src)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .arg("build")
        .arg("-trimpath")
        .arg("-o")
        .arg(format!("{}/", staging.display()));
    if !module.ldflags.is_empty() {
        cmd.arg("-ldflags").arg(module.ldflags.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    cmd.args(module.packages.iter().map(|(_, pkg)| *pkg));
    let status = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| DevError::io(go, e))?;
    if !status.success() {
        return Err(DevError::Build { module: module.name, log: log_path });
    }
    for (bin, pkg) in module.packages {
        let built = staging.join(go_binary_name(pkg));
        std::fs::rename(&built, out.join(bin)).map_err(|e| DevError::io(&built, e))?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}

/// The file name `go build -o DIR/` gives a package: its last import-path element that is not a
/// major-version suffix (`go.etcd.io/etcd/server/v3` becomes `server`).
fn go_binary_name(package: &str) -> &str {
    let mut elements = package.rsplit('/');
    let last = elements.next().unwrap_or(package);
    let is_major_suffix = last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    if is_major_suffix { elements.next().unwrap_or(last) } else { last }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_binaries_after_the_last_non_version_element() {
        assert_eq!(go_binary_name("go.etcd.io/etcd/server/v3"), "server");
        assert_eq!(go_binary_name("k8s.io/kubernetes/cmd/kube-apiserver"), "kube-apiserver");
        assert_eq!(go_binary_name("sigs.k8s.io/kwok/cmd/kwok"), "kwok");
    }

    #[test]
    fn binaries_dir_is_stable_for_the_same_pins() {
        let root = Path::new("/cache");
        assert_eq!(binaries_dir(root), binaries_dir(root));
        assert!(binaries_dir(root).starts_with("/cache/cluster"));
    }
}
