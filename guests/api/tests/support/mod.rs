//! Reading KubeRay v1.5.2's conformance inputs: its sample manifests and its CRDs.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// `shared/conformance/kuberay-v1.5.2`, next to the repository (found from any crate in it).
pub fn conformance_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .map(|dir| dir.join("shared/conformance/kuberay-v1.5.2"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "KubeRay's conformance inputs are expected in shared/ above {}",
                crate_dir.display()
            )
        })
}

#[allow(
    dead_code,
    reason = "used by only some of the test files that include this module"
)]
/// A `ray.io/v1` object from a sample file.
pub struct Sample {
    pub file: String,
    pub kind: String,
    pub object: Value,
}

#[allow(
    dead_code,
    reason = "used by only some of the test files that include this module"
)]
/// Every `ray.io/v1` object in every YAML file under `samples/`, sub-directories included.
pub fn samples() -> Vec<Sample> {
    let root = conformance_dir().join("samples");
    let mut files = Vec::new();
    collect_yaml(&root, &mut files);
    files.sort();
    let mut samples = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.strip_prefix(&root).unwrap().display().to_string();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let object = Value::deserialize(document).unwrap_or_else(|e| panic!("{file}: {e}"));
            if object.get("apiVersion").and_then(Value::as_str) != Some("ray.io/v1") {
                continue;
            }
            let mut object = object;
            read_octal_modes(&mut object);
            let kind = object["kind"].as_str().unwrap().to_owned();
            samples.push(Sample {
                file: file.clone(),
                kind,
                object,
            });
        }
    }
    samples
}

/// `kubectl` reads YAML 1.1, where `defaultMode: 0777` is the octal number 511; serde_yaml reads YAML
/// 1.2 and sees the string "0777". Reads file modes the way `kubectl` does.
fn read_octal_modes(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                let octal = child.as_str().filter(|s| s.len() > 1 && s.starts_with('0'));
                if let Some(mode) = octal.filter(|_| key == "defaultMode" || key == "mode") {
                    *child = Value::from(u32::from_str_radix(mode, 8).expect("an octal file mode"));
                } else {
                    read_octal_modes(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(read_octal_modes),
        _ => {}
    }
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_yaml(&path, files);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

#[allow(
    dead_code,
    reason = "used by only some of the test files that include this module"
)]
/// The `openAPIV3Schema` of version v1 of one of KubeRay's CRDs, e.g. `ray.io_rayclusters.yaml`.
pub fn kuberay_schema(file: &str) -> Value {
    let text = std::fs::read_to_string(conformance_dir().join("crds").join(file)).unwrap();
    let crd: Value = serde_yaml::from_str(&text).unwrap();
    let versions = crd["spec"]["versions"].as_array().unwrap();
    let v1 = versions.iter().find(|v| v["name"] == "v1").unwrap();
    v1["schema"]["openAPIV3Schema"].clone()
}
