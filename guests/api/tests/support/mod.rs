//! Reading KubeRay v1.5.2's conformance inputs (from its Go module, see `wasmray-samples`): its sample manifests and its CRDs.

use serde_json::Value;
pub use wasmray_samples::crds_dir;

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
    let mut samples = Vec::new();
    for file in wasmray_samples::files() {
        for object in wasmray_samples::load(&file) {
            if object.get("apiVersion").and_then(Value::as_str) != Some("ray.io/v1") {
                continue;
            }
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

#[allow(
    dead_code,
    reason = "used by only some of the test files that include this module"
)]
/// The `openAPIV3Schema` of version v1 of one of KubeRay's CRDs, e.g. `ray.io_rayclusters.yaml`.
pub fn kuberay_schema(file: &str) -> Value {
    let text = std::fs::read_to_string(crds_dir().join(file)).unwrap();
    let crd: Value = serde_yaml::from_str(&text).unwrap();
    let versions = crd["spec"]["versions"].as_array().unwrap();
    let v1 = versions.iter().find(|v| v["name"] == "v1").unwrap();
    v1["schema"]["openAPIV3Schema"].clone()
}
