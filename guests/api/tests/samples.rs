//! Every RayCluster, RayJob and RayService among KubeRay's samples parses into our types and
//! serialises back without losing a field.

mod support;

use serde_json::Value;
use support::samples;
use wasmray_api::{RayCluster, RayJob, RayService};

#[test]
fn every_kuberay_sample_survives_a_round_trip_through_our_types() {
    let samples = samples();
    assert!(
        samples.len() >= 60,
        "expected KubeRay's ~70 sample objects, found {}",
        samples.len()
    );
    let mut failures = Vec::new();
    for sample in &samples {
        let round_trip = match sample.kind.as_str() {
            "RayCluster" => round_trip::<RayCluster>(&sample.object),
            "RayJob" => round_trip::<RayJob>(&sample.object),
            "RayService" => round_trip::<RayService>(&sample.object),
            other => panic!("{}: unexpected kind {other}", sample.file),
        };
        match round_trip {
            Ok(back) => {
                let mut differences = Vec::new();
                compare("", &sample.object, &back, &mut differences);
                if !differences.is_empty() {
                    failures.push(format!(
                        "{} ({}): {}",
                        sample.file,
                        sample.kind,
                        differences.join("; ")
                    ));
                }
            }
            Err(e) => failures.push(format!(
                "{} ({}): does not parse: {e}",
                sample.file, sample.kind
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} samples changed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn samples_of_all_three_kinds_are_covered() {
    let samples = samples();
    for kind in ["RayCluster", "RayJob", "RayService"] {
        let count = samples.iter().filter(|s| s.kind == kind).count();
        assert!(count >= 10, "only {count} {kind} samples");
    }
}

fn round_trip<K: serde::de::DeserializeOwned + serde::Serialize>(
    object: &Value,
) -> Result<Value, serde_json::Error> {
    let typed: K = serde_json::from_value(object.clone())?;
    serde_json::to_value(&typed)
}

/// Records where `back` differs from `original`. Tolerated, because they mean the same to Kubernetes:
/// - a resource quantity written as a number (`cpu: 1`) comes back as a string (`"1"`), the way
///   Kubernetes itself serialises quantities;
/// - a number comes back in another notation (`2` as `2.0`);
/// - an embedded Service (`headService`, `serveService`) gains `apiVersion: v1` and `kind: Service`.
fn compare(path: &str, original: &Value, back: &Value, differences: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => compare(&child, value, other, differences),
                    None if value.is_null() => {}
                    None => differences.push(format!("{child} was dropped")),
                }
            }
            let service = path.ends_with(".headService") || path.ends_with(".serveService");
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                match (key.as_str(), &b[key]) {
                    ("apiVersion", Value::String(v)) if service && v == "v1" => {}
                    ("kind", Value::String(k)) if service && k == "Service" => {}
                    _ => differences.push(format!("{path}.{key} was added")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(&format!("{path}[{i}]"), x, y, differences);
            }
        }
        (Value::Number(n), Value::String(s)) if n.to_string() == *s && is_quantity(path) => {}
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => differences.push(format!("{path}: {a} became {b}")),
    }
}

fn is_quantity(path: &str) -> bool {
    [".limits.", ".requests.", ".sizeLimit", ".storage"]
        .iter()
        .any(|p| path.contains(p))
}
