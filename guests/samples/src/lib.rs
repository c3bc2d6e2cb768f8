//! KubeRay v1.5.2's conformance inputs (its samples and CRDs, from its pinned Go module), and its sample manifests read the way `kubectl` reads them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The variable naming KubeRay's `ray-operator` v1.5.2 module directory.
pub const KUBERAY_DIR_VAR: &str = "WASMRAY_KUBERAY_DIR";

/// KubeRay's `ray-operator` module at v1.5.2, as the Go module cache holds it: the directory named
/// by `$WASMRAY_KUBERAY_DIR`, which `tests/run` sets from `tests/kuberay-dir`.
///
/// The inputs come from the module `tests/kuberay-oracle/go.mod` pins (its `go.sum` pins the
/// content), not from a copy in the repository; a missing directory panics with the command that
/// fetches it, so a test can never pass by finding no samples.
pub fn kuberay_dir() -> PathBuf {
    let fetch = format!("export {KUBERAY_DIR_VAR}=\"$(tests/kuberay-dir)\"   # from the repository root; needs Go");
    let dir = std::env::var_os(KUBERAY_DIR_VAR).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{KUBERAY_DIR_VAR} is not set: it names KubeRay's ray-operator v1.5.2 module, which holds its samples and CRDs. Fetch it with:\n    {fetch}")
    });
    for needed in [samples_dir_in(&dir), crds_dir_in(&dir)] {
        assert!(
            needed.is_dir(),
            "{KUBERAY_DIR_VAR}={} has no {}: it must name KubeRay's ray-operator v1.5.2 module. Fetch it with:\n    {fetch}",
            dir.display(),
            needed.display()
        );
    }
    dir
}

fn samples_dir_in(dir: &Path) -> PathBuf {
    dir.join("config/samples")
}

fn crds_dir_in(dir: &Path) -> PathBuf {
    dir.join("config/crd/bases")
}

/// KubeRay's sample manifests: `config/samples/` of [`kuberay_dir`].
pub fn samples_dir() -> PathBuf {
    samples_dir_in(&kuberay_dir())
}

/// KubeRay's generated `ray.io` CRDs (`ray.io_rayclusters.yaml`, …): `config/crd/bases/` of [`kuberay_dir`].
pub fn crds_dir() -> PathBuf {
    crds_dir_in(&kuberay_dir())
}

/// Every YAML file under [`samples_dir`], sub-directories included, relative to it and sorted.
pub fn files() -> Vec<String> {
    let root = samples_dir();
    let mut files = Vec::new();
    collect_yaml(&root, &mut files);
    let mut files: Vec<String> = files
        .iter()
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_yaml(&path, files);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

/// The documents of a sample file (relative to [`samples_dir`]), in order, empty ones left out,
/// file modes read as `kubectl` reads them. Panics naming the file if it cannot be read.
pub fn load(file: impl AsRef<Path>) -> Vec<Value> {
    let path = samples_dir().join(file.as_ref());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let mut object =
            Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if object.is_null() {
            continue;
        }
        read_octal_modes(&mut object);
        documents.push(object);
    }
    documents
}

/// The first object of `kind` in a sample file; panics if there is none.
pub fn first(file: impl AsRef<Path>, kind: &str) -> Value {
    let file = file.as_ref();
    load(file)
        .into_iter()
        .find(|object| object["kind"] == kind)
        .unwrap_or_else(|| panic!("{} has no {kind}", file.display()))
}

/// The first object of `kind` in a sample file, in namespace `default` as `kubectl apply` would
/// put it, as the JSON a plugin receives for its owner.
pub fn owner_json(file: impl AsRef<Path>, kind: &str) -> String {
    let mut object = first(file, kind);
    object["metadata"]["namespace"] = Value::from("default");
    object.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_mode_written_0777_reads_as_octal_511_as_kubectl_reads_it() {
        let mut object = serde_json::json!({"volumes": [{"configMap": {"defaultMode": "0777", "items": [{"mode": "0644", "path": "0777"}]}}]});
        read_octal_modes(&mut object);
        assert_eq!(object["volumes"][0]["configMap"]["defaultMode"], 511);
        assert_eq!(object["volumes"][0]["configMap"]["items"][0]["mode"], 420);
        assert_eq!(object["volumes"][0]["configMap"]["items"][0]["path"], "0777", "only modes are numbers");
    }

    #[test]
    fn every_sample_file_loads() {
        let files = files();
        assert!(files.iter().any(|f| f == "ray-cluster.sample.yaml"), "{files:?}");
        for file in files {
            load(&file);
        }
    }

    #[test]
    fn kuberays_three_v1_crds_are_in_the_module() {
        for kind in ["rayclusters", "rayjobs", "rayservices"] {
            let path = crds_dir().join(format!("ray.io_{kind}.yaml"));
            let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(crd["kind"], "CustomResourceDefinition", "{}", path.display());
            assert_eq!(crd["spec"]["group"], "ray.io", "{}", path.display());
        }
    }
}
