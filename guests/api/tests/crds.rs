//! The generated CRDs type every field KubeRay v1.5.2's CRDs type, carry KubeRay's printer columns
//! and status subresource, and fit in client-side apply's last-applied annotation.

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use support::kuberay_schema;
use wasmray_api::crd;

/// The `openAPIV3Schema` of one of our CRD's versions.
fn our_schema(crd: &CustomResourceDefinition, version: &str) -> Value {
    let version = crd.spec.versions.iter().find(|v| v.name == version).unwrap();
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

/// The `openAPIV3Schema` of one of KubeRay's CRD's versions.
fn kuberay_version_schema(file: &str, version: &str) -> Value {
    let crd = kuberay_crd(file);
    let versions = crd["spec"]["versions"].as_array().unwrap();
    let found = versions.iter().find(|v| v["name"] == version).unwrap();
    found["schema"]["openAPIV3Schema"].clone()
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

/// Where ours is allowed to differ from KubeRay's at a path KubeRay types, and why. Each entry is
/// a path suffix and the reason; a difference found at a path not listed here fails the test.
///
/// Not differences in this sense, so not listed: ours is stricter than KubeRay's in places —
/// `maxItems` on the lists CEL rules iterate (containers, env, worker groups), `maxLength` on the
/// strings they compare, enums on Ray fields, quantity patterns — and ours types fields that
/// KubeRay's Kubernetes version (1.34) does not have yet (k8s-openapi's is 1.35).
///
/// Not compared: the server-side apply hints of the embedded Kubernetes types
/// (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`), which
/// k8s-openapi's schemas do not carry. Without them the apiserver treats those lists and maps as
/// atomic when merging applies of several field managers; what a field holds is the same.
const ALLOWED: &[(&str, &str)] = &[];

/// Walks KubeRay's `v1` schema next to ours and returns every path KubeRay types that ours does not:
/// missing from ours, of another type, an int-or-string that is not one, or under an object of ours
/// that keeps unknown fields where KubeRay's does not; and every path where ours requires a field
/// KubeRay's does not (but `spec` itself, which ours requires) or lacks a default KubeRay's has.
/// Also returns how many paths it walked.
fn untyped_paths(theirs: &Value, ours: &Value) -> (Vec<String>, usize) {
    let mut missing = Vec::new();
    let mut checked = 0;
    walk_typed("", theirs, ours, false, &mut missing, &mut checked);
    missing.retain(|path| !ALLOWED.iter().any(|(suffix, _)| path.split(':').next().unwrap().ends_with(suffix)));
    (missing, checked)
}

fn keeps_unknown_fields(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn walk_typed(path: &str, theirs: &Value, ours: &Value, open_above: bool, missing: &mut Vec<String>, checked: &mut usize) {
    *checked += 1;
    // An open object of ours stands for its whole subtree, unless KubeRay's is open there too.
    let open = open_above || (keeps_unknown_fields(ours) && !keeps_unknown_fields(theirs));
    if open {
        missing.push(format!("{path}: kept as unknown fields"));
    }
    if let Some(their_type) = theirs.get("type")
        && ours.get("type") != Some(their_type)
    {
        missing.push(format!("{path}: type {their_type} is {} in ours", ours.get("type").unwrap_or(&Value::Null)));
    }
    // Requiring what KubeRay does not would refuse manifests KubeRay takes; a default it has and
    // ours lacks would store them differently.
    let required = |schema: &Value| -> Vec<String> {
        schema.get("required").and_then(Value::as_array).map_or_else(Vec::new, |r| {
            r.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        })
    };
    let their_required = required(theirs);
    for field in required(ours) {
        if !their_required.contains(&field) && !(path.is_empty() && field == "spec") {
            missing.push(format!("{path}: requires {field}, which KubeRay's does not"));
        }
    }
    if let Some(default) = theirs.get("default")
        && ours.get("default") != Some(default)
    {
        missing.push(format!("{path}: default {default} is {} in ours", ours.get("default").unwrap_or(&Value::Null)));
    }
    for key in ["x-kubernetes-int-or-string", "x-kubernetes-embedded-resource"] {
        if theirs.get(key) == Some(&Value::Bool(true)) && ours.get(key) != Some(&Value::Bool(true)) {
            missing.push(format!("{path}: not {key}"));
        }
    }
    if let Some(properties) = theirs.get("properties").and_then(Value::as_object) {
        for (name, their_child) in properties {
            let child = format!("{path}.{name}");
            match ours.get("properties").and_then(|p| p.get(name)) {
                Some(our_child) => walk_typed(&child, their_child, our_child, open, missing, checked),
                None => missing.extend(all_paths(&child, their_child).into_iter().map(|p| format!("{p}: missing"))),
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(their_child) = theirs.get(key).filter(|c| c.is_object()) {
            let child = format!("{path}[{key}]");
            match ours.get(key) {
                Some(our_child) => walk_typed(&child, their_child, our_child, open, missing, checked),
                None => missing.extend(all_paths(&child, their_child).into_iter().map(|p| format!("{p}: missing"))),
            }
        }
    }
}

/// Every path at and under `schema`, named from `path`.
fn all_paths(path: &str, schema: &Value) -> Vec<String> {
    let mut paths = vec![path.to_owned()];
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            paths.extend(all_paths(&format!("{path}.{name}"), child));
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = schema.get(key).filter(|c| c.is_object()) {
            paths.extend(all_paths(&format!("{path}[{key}]"), child));
        }
    }
    paths
}

#[test]
fn every_field_path_kuberay_types_in_v1_is_typed_in_ours() {
    let mut report = Vec::new();
    for (file, ours) in PAIRS {
        let theirs = kuberay_schema(file);
        let ours = our_schema(&ours(), "v1");
        let (missing, checked) = untyped_paths(&theirs, &ours);
        // A path can be reported twice (missing and of another type); count paths, not reports.
        let mut paths: Vec<&str> = missing.iter().map(|m| m.split(':').next().unwrap()).collect();
        paths.dedup();
        report.push(format!("{file}: {} of {checked} field paths typed", checked - paths.len()));
        assert!(
            missing.is_empty(),
            "{file}: {} of KubeRay's {checked} field paths are not typed in ours:\n{}",
            paths.len(),
            missing.join("\n")
        );
        assert!(checked > 2000, "{file}: only {checked} paths were checked");
    }
    println!("{}", report.join("\n"));
}

#[test]
fn the_walk_finds_what_an_open_object_hides() {
    let theirs = serde_json::json!({ "type": "object", "properties": {
        "template": { "type": "object", "properties": {
            "spec": { "type": "object", "properties": { "hostname": { "type": "string" } } } } },
        "port": { "x-kubernetes-int-or-string": true },
        "gone": { "type": "string" },
    } });
    let ours = serde_json::json!({ "type": "object", "properties": {
        "template": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
        "port": { "type": "string" },
    } });
    let (mut missing, checked) = untyped_paths(&theirs, &ours);
    missing.sort();
    assert_eq!(
        missing,
        [
            ".gone: missing",
            ".port: not x-kubernetes-int-or-string",
            ".template.spec.hostname: missing",
            ".template.spec: missing",
            ".template: kept as unknown fields",
        ]
    );
    assert_eq!(checked, 3);
}

#[test]
fn v1_keeps_no_unknown_fields_and_no_refs() {
    for (file, ours) in PAIRS {
        let schema = serde_json::to_string(&our_schema(&ours(), "v1")).unwrap();
        // KubeRay's v1 schemas have no free-form field either.
        assert!(!serde_json::to_string(&kuberay_schema(file)).unwrap().contains("x-kubernetes-preserve-unknown-fields"));
        for forbidden in ["x-kubernetes-preserve-unknown-fields", "$ref", "x-wasmray-", "\"nullable\""] {
            assert!(!schema.contains(forbidden), "{file}: v1 holds {forbidden}");
        }
    }
}

/// `v1alpha1` is open, not typed: it accepts what KubeRay's accepts. Only the spec is compared:
/// the status is the operator's, written as `v1` (KubeRay's `v1alpha1` status still has fields,
/// such as `healthLastUpdateTime`, that its `v1` dropped).
#[test]
fn every_spec_field_path_of_kuberays_v1alpha1_is_accepted_by_ours() {
    for (file, ours) in PAIRS {
        let theirs = kuberay_version_schema(file, "v1alpha1")["properties"]["spec"].clone();
        let ours = our_schema(&ours(), "v1alpha1")["properties"]["spec"].clone();
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
        assert!(!serde_json::to_string(&ours).unwrap().contains("x-wasmray-"), "{file}");
        println!("{file}: all {checked} field paths of v1alpha1 accepted");
    }
}

/// Walks KubeRay's schema; every property must be declared in ours, or fall under an object of ours
/// that keeps unknown fields (`x-kubernetes-preserve-unknown-fields`).
fn walk(path: &str, theirs: &Value, ours: &Value, missing: &mut Vec<String>, checked: &mut usize) {
    *checked += 1;
    if keeps_unknown_fields(ours) {
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
                    *checked += all_paths("", their_child).len();
                }
            }
        } else {
            *checked += all_paths("", theirs).len() - 1;
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

/// The limit on all of an object's annotations together. Client-side `kubectl apply` keeps the whole
/// object, as JSON, in the `kubectl.kubernetes.io/last-applied-configuration` annotation.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

#[test]
fn crds_fit_in_a_last_applied_annotation_and_kuberays_do_not() {
    let key = "kubectl.kubernetes.io/last-applied-configuration";
    for (file, ours) in PAIRS {
        let theirs = serde_json::to_string(&kuberay_crd(file)).unwrap().len();
        let json = serde_json::to_string(&ours()).unwrap().len();
        let v1 = serde_json::to_string(&our_schema(&ours(), "v1")).unwrap().len();
        println!("{file}: ours {json} bytes of JSON ({v1} the v1 schema); KubeRay's {theirs}");
        assert!(key.len() + json < ANNOTATIONS_LIMIT, "{file}: {json} bytes of JSON");
        assert!(theirs > ANNOTATIONS_LIMIT, "{file}: KubeRay's would fit ({theirs} bytes), so this proves little");
    }
}

#[test]
fn every_rule_has_a_message() {
    for (file, ours) in PAIRS {
        let schema = our_schema(&ours(), "v1");
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
