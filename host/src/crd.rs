//! `wasmray crd`: the RayCluster, RayJob and RayService CRDs, generated from the `wasmray-api` types.
//!
//! The chart's `charts/wasmray-operator/crds/` holds the same files (`wasmray crd --out-dir charts/wasmray-operator/crds`);
//! a test fails when they drift.

use std::path::PathBuf;

use anyhow::Context;

/// Prints the CRDs as one multi-document YAML stream, or writes one file per CRD.
#[derive(Debug, clap::Args)]
pub struct CrdCommand {
    /// Write `ray.io_<plural>.yaml` files into this directory instead of printing.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

impl CrdCommand {
    /// Prints or writes the CRDs.
    pub fn run(self) -> anyhow::Result<()> {
        let files = files()?;
        match self.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for (name, yaml) in files {
                    let path = dir.join(name);
                    std::fs::write(&path, yaml)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            None => {
                let documents: Vec<String> = files.into_iter().map(|(_, yaml)| yaml).collect();
                print!("{}", documents.join("---\n"));
            }
        }
        Ok(())
    }
}

/// Server-side applies the `ray.io/v1` CRDs and waits until each is Established (the scale
/// benchmark and the end-to-end tests install them this way).
///
/// # Errors
///
/// If an apply fails or a CRD is not Established within 30 s.
pub async fn install(client: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    use kube::runtime::wait::{await_condition, conditions::is_crd_established};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in wasmray_api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &PatchParams::apply("wasmray").force(), &Patch::Apply(&crd)).await.with_context(|| format!("applying CRD {name}"))?;
    }
    for crd in wasmray_api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        tokio::time::timeout(std::time::Duration::from_secs(30), await_condition(crds.clone(), &name, is_crd_established()))
            .await
            .with_context(|| format!("CRD {name} was not Established"))??;
    }
    Ok(())
}

/// `(file name, YAML)` for each CRD, named like KubeRay's: `ray.io_rayclusters.yaml`.
pub fn files() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    wasmray_api::crd::all()
        .into_iter()
        .map(|crd| {
            let name = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
            Ok((name, serde_yaml::to_string(&crd)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::files;

    #[test]
    fn the_charts_crds_are_the_generated_ones() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wasmray-operator/crds");
        for (name, generated) in files().unwrap() {
            let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            assert!(
                committed == generated,
                "charts/wasmray-operator/crds/{name} is out of date; regenerate with \
                 `cargo run -p wasmray -- crd --out-dir charts/wasmray-operator/crds`"
            );
        }
        let mut on_disk: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        on_disk.sort();
        assert_eq!(
            on_disk.len(),
            3,
            "charts/wasmray-operator/crds holds exactly the three generated CRDs: {on_disk:?}"
        );
    }

    /// `kubectl apply`'s client-side validation refuses an `enum` that lists `null` (what
    /// schemars writes for an optional enum whose variants carry no docs).
    #[test]
    fn no_enum_lists_null() {
        fn nulls(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    if map.get("enum").and_then(|e| e.as_array()).is_some_and(|e| e.iter().any(serde_json::Value::is_null)) {
                        out.push(path.to_owned());
                    }
                    map.iter().for_each(|(k, v)| nulls(v, &format!("{path}.{k}"), out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| nulls(v, path, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        for (name, yaml) in files().unwrap() {
            nulls(&serde_yaml::from_str(&yaml).unwrap(), &name, &mut found);
        }
        assert!(found.is_empty(), "enums listing null: {found:?}");
    }

    #[test]
    fn printed_yaml_holds_the_three_kinds() {
        let kinds: Vec<String> = files()
            .unwrap()
            .iter()
            .map(|(_, yaml)| {
                serde_yaml::from_str::<serde_json::Value>(yaml).unwrap()["spec"]["names"]["kind"]
                    .to_string()
            })
            .collect();
        assert_eq!(kinds, ["\"RayCluster\"", "\"RayJob\"", "\"RayService\""]);
    }
}
