//! The generated CRDs accept every field KubeRay v1.5.2's CRDs accept, carry KubeRay's printer
//! columns and status subresource, and stay small.

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use support::kuberay_schema;
use wasmray_api::crd;

fn our_schema(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn kuberay_crd(file: &str) -> Value {
    let text = std::fs::read_to_string(support::crds_dir().join(file)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Builds one of our CRDs.
type Generator = fn() -> CustomResourceDefinition;

/// KubeRay's CRD file and the generator of ours for the same kind.
const PAIRS: [(&str, Generator); 3] = [
    ("ray.io_rayclusters.yaml", crd::ray_cluster),
    ("ray.io_rayjobs.yaml", crd::ray_job),
    ("ray.io_rayservices.yaml", crd::ray_service),
];

#[test]
fn every_field_path_of_kuberays_schemas_is_accepted_by_ours() {
    for (file, ours) in PAIRS {
        let theirs = kuberay_schema(file);
        let ours = our_schema(&ours());
        let mut missing = Vec::new();
        let mut checked = 0;
        walk("", &theirs, &ours, &mut missing, &mut checked);
        assert!(
            missing.is_empty(),
            "{file}: {} paths are not accepted:\n{}",
            missing.len(),
            missing.join("\n")
        );
        assert!(checked > 1000, "{file}: only {checked} paths were checked");
        println!("{file}: all {checked} field paths accepted");
    }
}

/// Walks KubeRay's schema; every property must be declared in ours, or fall under an object of ours
/// that keeps unknown fields (`x-kubernetes-preserve-unknown-fields`).
fn walk(path: &str, theirs: &Value, ours: &Value, missing: &mut Vec<String>, checked: &mut usize) {
    *checked += 1;
    if ours.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        // Declared properties are still validated, so they must agree with KubeRay's.
        if let (Some(theirs), Some(ours)) = (theirs.get("properties"), ours.get("properties")) {
            for (name, their_child) in theirs.as_object().unwrap() {
                if let Some(our_child) = ours.get(name) {
                    walk(
                        &format!("{path}.{name}"),
                        their_child,
                        our_child,
                        missing,
                        checked,
                    );
                } else {
                    *checked += count(their_child);
                }
            }
        } else {
            *checked += count(theirs);
        }
        return;
    }
    if let Some(their_type) = theirs.get("type")
        && ours.get("type").is_some_and(|t| t != their_type)
    {
        missing.push(format!("{path}: type {their_type} became {}", ours["type"]));
    }
    if let Some(properties) = theirs.get("properties").and_then(Value::as_object) {
        for (name, their_child) in properties {
            let child = format!("{path}.{name}");
            match ours.get("properties").and_then(|p| p.get(name)) {
                Some(our_child) => walk(&child, their_child, our_child, missing, checked),
                None => missing.push(child),
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(their_child) = theirs.get(key).filter(|c| c.is_object()) {
            match ours.get(key) {
                Some(our_child) => walk(
                    &format!("{path}[{key}]"),
                    their_child,
                    our_child,
                    missing,
                    checked,
                ),
                None => missing.push(format!("{path}[{key}]")),
            }
        }
    }
}

/// Number of schema nodes under `schema`, for the report.
fn count(schema: &Value) -> usize {
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .map_or(0, |p| p.values().map(count).sum());
    let nested: usize = ["items", "additionalProperties"]
        .iter()
        .filter_map(|k| schema.get(*k))
        .map(count)
        .sum();
    1 + properties + nested
}

#[test]
fn names_printer_columns_and_status_subresource_match_kuberay() {
    for (file, ours) in PAIRS {
        let theirs = kuberay_crd(file);
        let ours = serde_json::to_value(ours()).unwrap();
        assert_eq!(
            ours["metadata"]["name"], theirs["metadata"]["name"],
            "{file}"
        );
        assert_eq!(ours["spec"]["names"], theirs["spec"]["names"], "{file}");
        assert_eq!(ours["spec"]["scope"], theirs["spec"]["scope"], "{file}");
        let their_v1 = theirs["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "v1")
            .unwrap();
        let our_v1 = &ours["spec"]["versions"][0];
        assert_eq!(our_v1["name"], "v1");
        assert_eq!(our_v1["storage"], true);
        assert_eq!(
            our_v1["additionalPrinterColumns"], their_v1["additionalPrinterColumns"],
            "{file}"
        );
        assert_eq!(our_v1["subresources"], their_v1["subresources"], "{file}");
    }
}

#[test]
fn crds_are_a_fraction_of_kuberays_and_fit_in_a_last_applied_annotation() {
    for (file, ours) in PAIRS {
        let theirs = std::fs::metadata(support::crds_dir().join(file))
            .unwrap()
            .len();
        let yaml = serde_yaml::to_string(&ours()).unwrap().len();
        let json = serde_json::to_string(&ours()).unwrap().len();
        println!(
            "{file}: ours {yaml} bytes of YAML, {json} of JSON; KubeRay's {theirs} bytes of YAML"
        );
        // 256 KiB is the limit on all annotations together, which client-side `kubectl apply` needs.
        assert!(json < 128 * 1024, "{file}: {json} bytes of JSON");
        assert!(
            (yaml as u64) * 10 < theirs,
            "{file}: not a tenth of KubeRay's"
        );
    }
}

#[test]
fn every_rule_has_a_message() {
    for (file, ours) in PAIRS {
        let schema = our_schema(&ours());
        let mut rules = Vec::new();
        collect_rules(&schema, &mut rules);
        assert!(rules.len() >= 5, "{file}: only {} rules", rules.len());
        for rule in rules {
            let message = rule["message"].as_str().unwrap_or_default();
            assert!(
                message.len() > 10,
                "{file}: rule {} has no clear message",
                rule["rule"]
            );
        }
    }
}

fn collect_rules(schema: &Value, rules: &mut Vec<Value>) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::Array(list)) = object.get("x-kubernetes-validations") {
                rules.extend(list.iter().cloned());
            }
            object.values().for_each(|v| collect_rules(v, rules));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_rules(v, rules)),
        _ => {}
    }
}
