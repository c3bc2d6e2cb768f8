//! Our objects against the goldens KubeRay v1.5.2's own builders made for the same samples, field by field.
//!
//! The goldens come from `tests/kuberay-oracle/` (a Go program of ours calling KubeRay's exported
//! builders) and live in `tests/fixtures/kuberay-pods/<sample>.json`; the samples are read by
//! `wasmray-samples` from KubeRay's pinned v1.5.2 Go module (`$WASMRAY_KUBERAY_DIR/config/samples`,
//! see `tests/kuberay-dir`). Both sides are normalised, and only this way:
//!
//! 1. Pod names: KubeRay sets only `generateName`; we also set `name` = `generateName` + suffix.
//!    The test checks that and then drops our `name`.
//! 2. Quantities are compared by value: Go prints them canonically (`cpu: 48` → `"48"`), we keep the
//!    user's spelling (`"2G"` and `"2000000000"` are the same amount).
//! 3. Empty values are dropped: Go writes `"resources": {}`, `"creationTimestamp": null`,
//!    `"status": {}` where we leave fields out.
//! 4. `apiVersion`/`kind` of Services, ServiceAccounts and RBAC objects: KubeRay's builders leave
//!    them empty (the client fills them in); k8s-openapi always writes them. Dropped when the golden has none.
//! 5. `targetPort: 0` in a Service port is Go's zero `IntOrString`, which means unset (the API
//!    server defaults it to `port`); dropped.
//! 6. The upgrade strategies' hashes on our Pods (`ray.io/upgrade-strategy-recreate-hash`, which
//!    KubeRay v1.6 adds and v1.5.2 does not, and `wasmray.dev/template-hash`): checked to be
//!    there, then dropped.
//!
//! Everything else — command, args, env (in order), probes, resources, labels, annotations,
//! volumes, mounts, ports, init containers, owner references — must be identical.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use wasmray_api::RayCluster;

use super::quantity::ParsedQuantity;
use super::*;

/// The namespace, UID and suffix the oracle used.
const NAMESPACE: &str = "default";
const UID: &str = "00000000-0000-0000-0000-0000000000aa";
const SUFFIX: &str = "xxxxx";

/// The four samples issue 4 names, then the extra ones the oracle also ran.
const SAMPLES: &[&str] = &[
    "ray-cluster.complete",
    "ray-cluster.autoscaler",
    "ray-cluster-label-selector",
    "ray-cluster.verl",
    "ray-cluster.auth",
    "ray-cluster.external-redis",
    "ray-cluster.deprecate-gcs-ft",
    "ray-cluster.tpu-v6e-16-multihost",
    "ray-cluster.autoscaler-v2",
    "ray-cluster.overwrite-command",
    "ray-cluster.head-command",
    "ray-cluster.sample",
    "ray-cluster.tls",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The first RayCluster of a sample file, as the oracle read it.
fn sample(name: &str) -> RayCluster {
    let object = wasmray_samples::first(format!("{name}.yaml"), "RayCluster");
    let mut cluster: RayCluster = serde_json::from_value(object).unwrap();
    cluster.metadata.namespace = Some(NAMESPACE.into());
    cluster.metadata.uid = Some(UID.into());
    cluster
}

fn golden(name: &str) -> Value {
    let path = repo_root().join(format!("tests/fixtures/kuberay-pods/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Normalisations 2 and 3: quantities by value, empty values dropped.
fn normalise(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                match (key.as_str(), &mut *child) {
                    ("limits" | "requests", Value::Object(list)) => {
                        list.values_mut().for_each(canonical_quantity)
                    }
                    ("sizeLimit", quantity) => canonical_quantity(quantity),
                    _ => normalise(child),
                }
            }
            object.retain(|key, child| {
                let go_zero_port = key == "targetPort" && child.as_i64() == Some(0);
                !(is_empty(child) || go_zero_port)
            });
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn canonical_quantity(value: &mut Value) {
    let text = value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    let nanos = ParsedQuantity::parse(&text)
        .ok()
        .and_then(|q| q.nanos())
        .unwrap_or_else(|| panic!("quantity {text}"));
    *value = Value::String(format!("{nanos}n"));
}

/// Every path where the two documents differ, with both values.
fn differences(ours: &Value, theirs: &Value, path: &str, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(x, y, &child, out),
                    (x, y) => out.push(format!("{child}: ours {x:?}, KubeRay {y:?}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: ours {a}, KubeRay {b}")),
        _ => {}
    }
}

/// Compares one object; `what` names it in the failure message.
fn assert_same(what: &str, ours: impl serde::Serialize, theirs: &Value) -> Vec<String> {
    let mut ours = serde_json::to_value(ours).unwrap();
    let mut theirs = theirs.clone();
    // Normalisation 4.
    if let (Value::Object(o), Value::Object(t)) = (&mut ours, &theirs) {
        for key in ["apiVersion", "kind"] {
            if !t.contains_key(key) {
                o.remove(key);
            }
        }
    }
    normalise(&mut ours);
    normalise(&mut theirs);
    let mut out = Vec::new();
    differences(&ours, &theirs, what, &mut out);
    out
}

/// Normalisation 1 for a Pod: our name is the golden's generateName plus the suffix.
fn pod_value(pod: k8s_openapi::api::core::v1::Pod, theirs: &Value) -> Value {
    let mut value = serde_json::to_value(pod).unwrap();
    let meta: &mut Map<String, Value> = value["metadata"].as_object_mut().unwrap();
    let prefix = theirs["metadata"]["generateName"].as_str().unwrap();
    assert_eq!(
        meta.remove("name"),
        Some(Value::String(format!("{prefix}{SUFFIX}")))
    );
    // Normalisation 6.
    let annotations = meta["annotations"].as_object_mut().unwrap();
    for key in [
        wasmray_api::template_hash::RECREATE_HASH_ANNOTATION,
        wasmray_api::template_hash::TEMPLATE_HASH_ANNOTATION,
    ] {
        assert!(annotations.remove(key).is_some(), "{key} on every Pod");
    }
    value
}

fn compare_sample(name: &str) -> Vec<String> {
    let cluster = sample(name);
    let expected = golden(name);
    let ctx = BuildContext::default();
    let mut out = Vec::new();

    let head = head_pod(&cluster, SUFFIX, &ctx).unwrap();
    out.extend(assert_same(
        "head",
        pod_value(head, &expected["head"]),
        &expected["head"],
    ));

    let groups = cluster.spec.worker_group_specs.clone().unwrap_or_default();
    let golden_workers = expected["workers"].as_object().unwrap();
    assert_eq!(groups.len(), golden_workers.len(), "{name}: worker groups");
    for (index, group) in groups.iter().enumerate() {
        let slot = WorkerSlot {
            suffix: SUFFIX,
            replica_index: 0,
            host_index: 0,
            replica_name: "replica-xxxxx",
        };
        let theirs = &golden_workers[&group.group_name];
        let pod = worker_pod(&cluster, index, &slot, &ctx).unwrap();
        out.extend(assert_same(
            &format!("worker {}", group.group_name),
            pod_value(pod, theirs),
            theirs,
        ));
    }

    out.extend(assert_same(
        "headService",
        head_service(&cluster, &ctx).unwrap(),
        &expected["headService"],
    ));
    let optional = |value: &Value| {
        if value.is_null() {
            Value::Null
        } else {
            value.clone()
        }
    };
    out.extend(assert_same(
        "headlessService",
        headless_worker_service(&cluster, &ctx).unwrap(),
        &optional(&expected["headlessService"]),
    ));
    out.extend(assert_same(
        "serveService",
        serve_service(&cluster, &ctx).unwrap(),
        &optional(&expected["serveService"]),
    ));
    let rbac = autoscaler_rbac(&cluster, &ctx).unwrap();
    out.extend(assert_same(
        "serviceAccount",
        rbac.as_ref().and_then(|r| r.service_account.clone()),
        &optional(&expected["serviceAccount"]),
    ));
    out.extend(assert_same(
        "role",
        rbac.as_ref().map(|r| r.role.clone()),
        &optional(&expected["role"]),
    ));
    out.extend(assert_same(
        "roleBinding",
        rbac.as_ref().map(|r| r.role_binding.clone()),
        &optional(&expected["roleBinding"]),
    ));
    out.into_iter().map(|d| format!("{name}: {d}")).collect()
}

/// One test per sample of the issue, so a failure names its sample.
macro_rules! golden_test {
    ($($test:ident => $sample:literal,)*) => {$(
        #[test]
        fn $test() {
            let diffs = compare_sample($sample);
            assert!(diffs.is_empty(), "{} differences from KubeRay:\n{}", diffs.len(), diffs.join("\n"));
        }
    )*};
}

golden_test! {
    complete_sample_matches_kuberay => "ray-cluster.complete",
    autoscaler_sample_matches_kuberay => "ray-cluster.autoscaler",
    label_selector_sample_matches_kuberay => "ray-cluster-label-selector",
    verl_gpu_sample_matches_kuberay => "ray-cluster.verl",
}

#[test]
fn every_other_oracle_sample_matches_kuberay() {
    let diffs: Vec<String> = SAMPLES[4..]
        .iter()
        .flat_map(|s| compare_sample(s))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} differences from KubeRay:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn every_golden_file_is_tested() {
    let dir = repo_root().join("tests/fixtures/kuberay-pods");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = SAMPLES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn the_comparison_notices_a_single_changed_env_value() {
    let cluster = sample("ray-cluster.complete");
    let expected = golden("ray-cluster.complete");
    let ctx = BuildContext {
        kuberay_version: "v0.0.0".into(),
        ..BuildContext::default()
    };
    let head = head_pod(&cluster, SUFFIX, &ctx).unwrap();
    let diffs = assert_same(
        "head",
        pod_value(head, &expected["head"]),
        &expected["head"],
    );
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(
        diffs[0].starts_with("head.spec.containers[0].env[7].value"),
        "{diffs:?}"
    );
}
