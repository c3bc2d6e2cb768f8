//! Our `examples/`: every manifest applies to our CRDs with no field pruned, the demo's GPU RayCluster gets its CPU head and A100 workers, and the plugin configuration loads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt as _;
use kube::api::Api;
use serde::Deserialize as _;
use serde_json::Value;
use wasmray::plugin::{Outcome, Registry, RegistryConfig, builtin};
use wasmray::runtime::{Runtime, RuntimeConfig};
use wasmray_tests::fixtures::{apply, pods, wait_for_state, wait_for_workers};
use wasmray_tests::{TestNamespace, install_crds, namespace};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The Kubernetes manifests in `examples/` (every YAML file but the plugin configuration).
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ is in the repository")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml") && !path.ends_with("plugins.yaml"))
        .collect();
    files.sort();
    files
}

fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
        .filter(|object| !object.is_null())
        .collect()
}

/// `kubectl apply --server-side --dry-run=server -o json` of a file: the objects as the API
/// server would store them, after defaulting and pruning.
async fn dry_run_apply(ns: &TestNamespace, file: &Path) -> anyhow::Result<Vec<Value>> {
    let kubeconfig = wasmray_tests::cluster().await?.kubeconfig().to_path_buf();
    let output = tokio::process::Command::new(wasmray_tests::kubectl_path())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "--server-side", "--dry-run=server", "--field-manager=wasmray-tests", "-o", "json"])
        .args(["--namespace", &ns.name, "-f"])
        .arg(file)
        .output()
        .await
        .context("running kubectl (tests/run installs it)")?;
    anyhow::ensure!(
        output.status.success(),
        "kubectl apply of {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let stored: Value = serde_json::from_slice(&output.stdout)?;
    Ok(match stored["kind"].as_str() {
        Some("List") => stored["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![stored],
    })
}

/// The paths of `written` that `stored` lacks or holds with another value.
fn lost(path: &str, written: &Value, stored: &Value, out: &mut Vec<String>) {
    match (written, stored) {
        (Value::Object(w), Value::Object(s)) => {
            for (key, value) in w {
                match s.get(key) {
                    Some(kept) => lost(&format!("{path}.{key}"), value, kept, out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(w), Value::Array(s)) if w.len() == s.len() => {
            for (i, (value, kept)) in w.iter().zip(s).enumerate() {
                lost(&format!("{path}[{i}]"), value, kept, out);
            }
        }
        _ if written == stored => {}
        _ => out.push(format!("{path}: wrote {written}, stored {stored}")),
    }
}

#[tokio::test]
async fn every_example_applies_to_our_crds_with_no_field_pruned() -> anyhow::Result<()> {
    let ns = namespace("examples-apply").await?;
    install_crds(&ns.client).await?;
    let mut kinds = BTreeSet::new();
    for file in manifests() {
        let stored = dry_run_apply(&ns, &file).await?;
        for written in documents(&file) {
            let (kind, name) = (written["kind"].as_str().unwrap(), written["metadata"]["name"].as_str().unwrap());
            let kept = stored
                .iter()
                .find(|s| s["kind"] == kind && s["metadata"]["name"] == name)
                .with_context(|| format!("{}: the server returned no {kind} {name}", file.display()))?;
            let mut missing = Vec::new();
            lost("", &written["spec"], &kept["spec"], &mut missing);
            lost("", &written["data"], &kept["data"], &mut missing);
            assert!(missing.is_empty(), "{}: {kind} {name} lost {missing:#?}", file.display());
            kinds.insert(kind.to_string());
        }
    }
    for kind in ["RayCluster", "RayJob", "RayService"] {
        assert!(kinds.contains(kind), "examples/ has no {kind}: {kinds:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_demos_gpu_cluster_gets_a_cpu_head_and_two_a100_workers_with_two_gpus_each() -> anyhow::Result<()> {
    let ns = namespace("examples-gpu-cluster").await?;
    let _operator = ns.operator().await?;
    let cluster = documents(&examples_dir().join("raycluster-gpu.yaml")).remove(0);
    let name = cluster["metadata"]["name"].as_str().unwrap().to_string();
    apply(&ns, &cluster).await?;
    wait_for_state(&ns, &name, "ready").await?;

    let nodes: Api<Node> = Api::all(ns.client.clone());
    let gpu_product = |node: &str| {
        let nodes = nodes.clone();
        let node = node.to_string();
        async move { anyhow::Ok(nodes.get(&node).await?.labels().get("nvidia.com/gpu.product").cloned()) }
    };
    let start_args = |pod: &Pod| pod.spec.as_ref().unwrap().containers[0].args.clone().unwrap_or_default().join(" ");

    let workers = wait_for_workers(&ns, &name, "a100", 2).await?;
    for worker in &workers {
        let node = worker.spec.as_ref().and_then(|s| s.node_name.clone()).context("a bound worker")?;
        assert_eq!(gpu_product(&node).await?.as_deref(), Some("A100"), "{} on {node}", worker.name_any());
        assert!(start_args(worker).contains("--num-gpus=2"), "{}", start_args(worker));
    }
    let head = pods(&ns, &format!("ray.io/cluster={name},ray.io/node-type=head")).await?.remove(0);
    let node = head.spec.as_ref().and_then(|s| s.node_name.clone()).context("a bound head")?;
    assert_eq!(gpu_product(&node).await?, None, "the head needs no GPU node, and got {node}");
    assert!(start_args(&head).contains("--num-gpus=0"), "{}", start_args(&head));
    Ok(())
}

#[tokio::test]
async fn the_example_plugin_configuration_parses_and_every_plugin_in_it_loads() {
    let path = examples_dir().join("plugins.yaml");
    let config = RegistryConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.plugins.is_empty());
    let registry = Registry::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let outcomes = registry.reload(&config, &Default::default()).await;
    assert_eq!(outcomes.len(), config.plugins.len(), "{outcomes:?}");
    for (name, outcome) in &outcomes {
        assert!(matches!(outcome, Outcome::Loaded(_)), "{name}: {outcome:?}");
    }
    // The built-ins it names are embedded in the binary.
    for plugin in &config.plugins {
        if let wasmray::plugin::PluginSource::Builtin(package) = &plugin.source {
            assert!(builtin::bytes(package).is_some(), "{package} is not built in");
        }
    }
}
