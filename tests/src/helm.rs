//! The chart under test and the real helm and kubectl that drive it: rendering, server-side dry runs, ServiceAccount tokens.
//!
//! helm is the pinned one `tests/helm/build` builds (`tests/run` exports it as `WASMRAY_HELM`);
//! kubectl is `WASMRAY_KUBECTL`, as in the other end-to-end tests.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::Value;

/// The variable naming the helm binary; `tests/run` sets it to what `tests/helm/build` printed.
pub const HELM_ENV: &str = "WASMRAY_HELM";

/// The chart's directory in this repository.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wasmray-operator")
}

/// A values file of `tests/fixtures/helm/`.
pub fn values_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/helm").join(name)
}

/// The pinned helm; an unset `WASMRAY_HELM` is an error that says how to build it.
pub fn helm_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(HELM_ENV).map(PathBuf::from).with_context(|| {
        format!("{HELM_ENV} is not set: it names the pinned helm (tests/run sets it). By hand:\n    export {HELM_ENV}=\"$(tests/helm/build)\"")
    })?;
    anyhow::ensure!(path.is_file(), "{HELM_ENV}={} is not a file; build it with tests/helm/build", path.display());
    Ok(path)
}

/// kubectl: `WASMRAY_KUBECTL` (set by tests/run), else `kubectl` on the PATH.
pub fn kubectl_binary() -> PathBuf {
    std::env::var_os("WASMRAY_KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from)
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args…` with `stdin`, capturing its output; failing to start it is the only error.
pub fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    if let Some(text) = stdin {
        child.stdin.take().context("stdin")?.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// As [`run`], failing with the command line and its stderr unless it succeeds; returns stdout.
pub fn run_ok(program: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let out = run(program, args, stdin)?;
    anyhow::ensure!(
        out.success,
        "{} {} failed:\n{}{}",
        program.display(),
        args.join(" "),
        out.stderr,
        out.stdout
    );
    Ok(out.stdout)
}

/// helm with `args`; returns stdout.
pub fn helm(args: &[&str]) -> anyhow::Result<String> {
    run_ok(&helm_binary()?, args, None)
}

/// kubectl against `kubeconfig` with `args` and `stdin`; returns stdout.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let config = kubeconfig.display().to_string();
    let mut all = vec!["--kubeconfig", config.as_str()];
    all.extend_from_slice(args);
    run_ok(&kubectl_binary(), &all, stdin)
}

/// `helm template RELEASE CHART --namespace NS --include-crds EXTRA…`: the manifest text.
pub fn template(release: &str, namespace: &str, extra: &[&str]) -> anyhow::Result<String> {
    let chart = chart_dir().display().to_string();
    let mut args = vec!["template", release, chart.as_str(), "--namespace", namespace, "--include-crds"];
    args.extend_from_slice(extra);
    helm(&args)
}

/// The objects of a multi-document YAML manifest (empty documents left out).
pub fn objects(manifest: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(manifest) {
        let value = Value::deserialize(document).context("a rendered document is not YAML")?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// `kind/name` (and `namespace/` first if it has one) of a rendered object, for messages.
pub fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Server-side dry run of `manifest` with strict field validation: the API server checks every
/// object against its OpenAPI schema (unknown or misplaced fields are errors) and its
/// admission, writing nothing. Conflicts with other field managers (the CRDs other tests
/// apply) are forced: nothing is written, and ownership is not what is checked.
pub fn dry_run(kubeconfig: &Path, manifest: &str) -> anyhow::Result<String> {
    kubectl(
        kubeconfig,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "--validate=strict",
            "--field-manager=wasmray-tests",
            "-f",
            "-",
        ],
        Some(manifest),
    )
}

/// A token for a ServiceAccount from the TokenRequest API (`kubectl create token`).
pub fn service_account_token(kubeconfig: &Path, namespace: &str, account: &str) -> anyhow::Result<String> {
    let token = kubectl(kubeconfig, &["create", "token", account, "--namespace", namespace, "--duration=1h"], None)?;
    Ok(token.trim().to_string())
}

/// A kubeconfig at `path` for the admin kubeconfig's cluster that authenticates with `token`
/// only: requests made with it have that identity's rights and no others.
pub fn token_kubeconfig(admin: &Path, token: &str, namespace: &str, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(admin).with_context(|| format!("reading {}", admin.display()))?;
    let config: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let cluster = config["clusters"][0]["cluster"].clone();
    anyhow::ensure!(!cluster.is_null(), "{} names no cluster", admin.display());
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "test", "cluster": serde_json::to_value(&cluster)? }],
        "users": [{ "name": "token", "user": { "token": token } }],
        "contexts": [{ "name": "token", "context": { "cluster": "test", "user": "token", "namespace": namespace } }],
        "current-context": "token",
    });
    std::fs::write(path, serde_yaml::to_string(&kubeconfig)?).with_context(|| format!("writing {}", path.display()))
}
