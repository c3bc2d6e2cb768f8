//! The `ray start` command: rayStartParams, group `resources`/`labels`, defaults, and what the Ray
//! container's resource limits say about CPUs, memory and accelerators (§2.5).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::quantity::{GoFloat, ParsedQuantity};
use super::{BuildError, NodeType};

/// `ray start` parameters, sorted by key as they are rendered.
pub type StartParams = BTreeMap<String, String>;

/// Container resources that are accelerators Ray counts as `GPU` besides KubeRay's `*gpu` and MIG
/// names. Intel's GPU plugin names its resource `gpu.intel.com/i915` (or `…/xe`); Ray schedules
/// Intel GPUs as `GPU`.
const EXTRA_GPU_RESOURCES: &[&str] = &["gpu.intel.com/i915", "gpu.intel.com/xe"];

/// Container resources that become a custom Ray resource: KubeRay's TPU and Neuron mappings, and
/// Habana Gaudi, which Ray's accelerator manager calls `HPU`.
const CUSTOM_ACCELERATORS: &[(&str, &str)] = &[
    ("aws.amazon.com/neuroncore", "neuron_cores"),
    ("google.com/tpu", "TPU"),
    ("habana.ai/gaudi", "HPU"),
];

/// Flags whose `true`/`false` value is passed on as `--key=value` rather than as a bare switch.
const VALUED_BOOLEAN_FLAGS: &[&str] = &["log-color", "include-dashboard"];

/// KubeRay's GPU key rule: a name ending in `gpu` (`nvidia.com/gpu`, `amd.com/gpu`) or an NVIDIA MIG
/// profile `nvidia.com/mig-<N>g.<M>gb`.
pub fn is_gpu_key(key: &str) -> bool {
    key.ends_with("gpu") || is_mig_profile(key)
}

/// `…nvidia.com/mig-<digits>g.<digits>gb` at the end of the key.
fn is_mig_profile(key: &str) -> bool {
    let Some(start) = key.rfind("nvidia.com/mig-") else {
        return false;
    };
    let profile = &key[start + "nvidia.com/mig-".len()..];
    let Some(rest) = profile.strip_suffix("gb") else {
        return false;
    };
    let Some((slices, memory)) = rest.split_once("g.") else {
        return false;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(slices) && all_digits(memory)
}

/// A container resource that gives `num-gpus`: KubeRay's rule plus Intel GPUs.
pub fn is_gpu_resource(key: &str) -> bool {
    is_gpu_key(key) || EXTRA_GPU_RESOURCES.contains(&key)
}

/// Applies the group's top-level `resources` (v1.5): `cpu` → `num-cpus`, `memory` → `memory`, GPU
/// keys → `num-gpus` (all rounded up), everything else → the `resources` JSON, which is replaced.
pub fn apply_group_resources(
    params: &mut StartParams,
    resources: Option<&BTreeMap<String, String>>,
    group: &str,
) -> Result<(), BuildError> {
    let Some(resources) = resources.filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    let mut custom = BTreeMap::new();
    for (name, value) in resources {
        let quantity = parse(group, name, value)?;
        let lower = name.to_lowercase();
        if lower == "cpu" {
            params.insert("num-cpus".into(), ceil(group, name, value, quantity)?);
        } else if lower == "memory" {
            params.insert("memory".into(), ceil(group, name, value, quantity)?);
        } else if is_gpu_key(&lower) {
            params.insert("num-gpus".into(), ceil(group, name, value, quantity)?);
        } else {
            custom.insert(name.clone(), quantity.as_f64());
        }
    }
    if !custom.is_empty() {
        params.insert("resources".into(), render_resources(&custom));
    }
    Ok(())
}

/// Applies the group's top-level `labels` as `--labels=k1=v1,k2=v2` (sorted).
pub fn apply_group_labels(params: &mut StartParams, labels: Option<&BTreeMap<String, String>>) {
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        return;
    };
    let joined: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    params.insert("labels".into(), joined.join(","));
}

/// Fills the parameters KubeRay always sets unless the user did: the worker's head address, the
/// dashboard host, the metrics and agent ports; `block` is forced on.
pub fn set_missing(params: &mut StartParams, node: NodeType, head_address: &str) {
    match node {
        NodeType::Worker => {
            params
                .entry("address".into())
                .or_insert_with(|| head_address.to_owned());
        }
        NodeType::Head => {
            params
                .entry("dashboard-host".into())
                .or_insert_with(|| "0.0.0.0".into());
        }
    }
    params
        .entry("metrics-export-port".into())
        .or_insert_with(|| "8080".into());
    params.insert("block".into(), "true".into());
    params
        .entry("dashboard-agent-listen-port".into())
        .or_insert_with(|| "52365".into());
}

/// Infers `num-cpus` (limit, else request, rounded up), `memory` (limit only), `num-gpus` (first
/// GPU key in the limits, alphabetically) and the first custom accelerator from the Ray
/// container's resources, each only when not already given.
pub fn infer_from_container(
    params: &mut StartParams,
    resources: Option<&ResourceRequirements>,
    group: &str,
) -> Result<(), BuildError> {
    let empty = BTreeMap::new();
    let limits = resources.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    let requests = resources
        .and_then(|r| r.requests.as_ref())
        .unwrap_or(&empty);
    let non_zero = |list: &BTreeMap<String, _>,
                    key: &str|
     -> Result<Option<(String, ParsedQuantity)>, BuildError> {
        let Some(value) = list.get(key) else {
            return Ok(None);
        };
        let value: &k8s_openapi::apimachinery::pkg::api::resource::Quantity = value;
        let quantity = parse(group, key, &value.0)?;
        Ok((!quantity.is_zero()).then(|| (value.0.clone(), quantity)))
    };

    if !params.contains_key("num-cpus")
        && let Some((text, cpu)) = non_zero(limits, "cpu")?.or(non_zero(requests, "cpu")?)
    {
        params.insert("num-cpus".into(), ceil(group, "cpu", &text, cpu)?);
    }
    if !params.contains_key("memory")
        && let Some((text, memory)) = non_zero(limits, "memory")?
    {
        params.insert("memory".into(), ceil(group, "memory", &text, memory)?);
    }
    if limits.is_empty() {
        return Ok(());
    }

    // The resources JSON the user may already have written, e.g. `'{"TPU": 4}'`.
    let mut custom: BTreeMap<String, f64> = match params.get("resources") {
        None => BTreeMap::new(),
        Some(text) => {
            serde_json::from_str(text.trim_matches(['\'', '"', '`', ' '])).map_err(|e| {
                BuildError::InvalidResourcesParam {
                    group: group.to_owned(),
                    value: text.clone(),
                    reason: e.to_string(),
                }
            })?
        }
    };
    let mut accelerator_done = CUSTOM_ACCELERATORS
        .iter()
        .any(|(_, ray_name)| custom.contains_key(*ray_name));
    for (key, value) in limits {
        if !params.contains_key("num-gpus") && is_gpu_resource(key) {
            let quantity = parse(group, key, &value.0)?;
            if !quantity.is_zero() {
                params.insert("num-gpus".into(), ceil(group, key, &value.0, quantity)?);
            }
        }
        if !accelerator_done
            && let Some((_, ray_name)) = CUSTOM_ACCELERATORS
                .iter()
                .find(|(k8s_name, _)| k8s_name == key)
        {
            let quantity = parse(group, key, &value.0)?;
            if !quantity.is_zero() {
                custom.insert((*ray_name).to_owned(), quantity.as_f64());
                params.insert("resources".into(), render_resources(&custom));
                accelerator_done = true;
            }
        }
    }
    Ok(())
}

/// `'{"A":1,"B":0.5}'`: sorted keys, Go's float spelling, wrapped in single quotes for the shell.
fn render_resources(resources: &BTreeMap<String, f64>) -> String {
    let entries: Vec<String> = resources
        .iter()
        .map(|(k, v)| format!("{}:{}", serde_json::Value::String(k.clone()), GoFloat(*v)))
        .collect();
    format!("'{{{}}}'", entries.join(","))
}

/// `ray start [--head] <flags>` with KubeRay's spacing: every flag is written as ` --flag ` so
/// flags are separated by two spaces.
pub fn render(node: NodeType, params: &StartParams) -> String {
    let mut flags = String::new();
    for (key, value) in params {
        let lower = value.to_lowercase();
        if (lower == "true" || lower == "false") && !VALUED_BOOLEAN_FLAGS.contains(&key.as_str()) {
            if lower == "true" {
                flags.push_str(&format!(" --{key} "));
            }
        } else {
            flags.push_str(&format!(" --{key}={value} "));
        }
    }
    match node {
        NodeType::Head => format!("ray start --head {flags}"),
        NodeType::Worker => format!("ray start {flags}"),
    }
}

fn parse(group: &str, key: &str, value: &str) -> Result<ParsedQuantity, BuildError> {
    ParsedQuantity::parse(value).map_err(|e| BuildError::InvalidQuantity {
        group: group.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn ceil(
    group: &str,
    key: &str,
    value: &str,
    quantity: ParsedQuantity,
) -> Result<String, BuildError> {
    quantity
        .ceil()
        .map(|v| v.to_string())
        .ok_or_else(|| BuildError::InvalidQuantity {
            group: group.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            reason: "too large".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn limits(pairs: &[(&str, &str)]) -> ResourceRequirements {
        ResourceRequirements {
            limits: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn inferred(pairs: &[(&str, &str)]) -> StartParams {
        let mut params = StartParams::new();
        infer_from_container(&mut params, Some(&limits(pairs)), "g").unwrap();
        params
    }

    #[test]
    fn nvidia_and_amd_gpus_become_num_gpus() {
        assert_eq!(inferred(&[("nvidia.com/gpu", "4")])["num-gpus"], "4");
        assert_eq!(inferred(&[("amd.com/gpu", "2")])["num-gpus"], "2");
    }

    #[test]
    fn a_mig_profile_counts_as_a_gpu() {
        assert_eq!(inferred(&[("nvidia.com/mig-1g.5gb", "1")])["num-gpus"], "1");
        assert!(!inferred(&[("nvidia.com/mig-1g.5gbx", "1")]).contains_key("num-gpus"));
    }

    #[test]
    fn the_first_gpu_key_alphabetically_wins() {
        assert_eq!(
            inferred(&[("nvidia.com/gpu", "4"), ("amd.com/gpu", "2")])["num-gpus"],
            "2"
        );
    }

    #[test]
    fn a_zero_gpu_limit_is_ignored() {
        assert_eq!(
            inferred(&[("amd.com/gpu", "0"), ("nvidia.com/gpu", "1")])["num-gpus"],
            "1"
        );
    }

    #[test]
    fn intel_gpus_become_num_gpus_too() {
        assert_eq!(inferred(&[("gpu.intel.com/i915", "1")])["num-gpus"], "1");
        assert_eq!(inferred(&[("gpu.intel.com/xe", "2")])["num-gpus"], "2");
    }

    #[test]
    fn tpus_neuron_cores_and_gaudis_become_custom_resources() {
        assert_eq!(
            inferred(&[("google.com/tpu", "4")])["resources"],
            r#"'{"TPU":4}'"#
        );
        assert_eq!(
            inferred(&[("aws.amazon.com/neuroncore", "2")])["resources"],
            r#"'{"neuron_cores":2}'"#
        );
        assert_eq!(
            inferred(&[("habana.ai/gaudi", "8")])["resources"],
            r#"'{"HPU":8}'"#
        );
    }

    #[test]
    fn only_the_first_custom_accelerator_is_added() {
        let params = inferred(&[("google.com/tpu", "4"), ("aws.amazon.com/neuroncore", "2")]);
        assert_eq!(params["resources"], r#"'{"neuron_cores":2}'"#);
    }

    #[test]
    fn a_user_resources_json_keeps_its_entries_and_gains_the_accelerator() {
        let mut params =
            StartParams::from([("resources".to_owned(), r#"'{"custom": 1.5}'"#.to_owned())]);
        infer_from_container(&mut params, Some(&limits(&[("google.com/tpu", "4")])), "g").unwrap();
        assert_eq!(params["resources"], r#"'{"TPU":4,"custom":1.5}'"#);
    }

    #[test]
    fn a_user_accelerator_entry_wins() {
        let mut params =
            StartParams::from([("resources".to_owned(), r#"'{"TPU": 8}'"#.to_owned())]);
        infer_from_container(&mut params, Some(&limits(&[("google.com/tpu", "4")])), "g").unwrap();
        assert_eq!(params["resources"], r#"'{"TPU": 8}'"#);
    }

    #[test]
    fn an_unparsable_resources_json_is_a_clear_error() {
        let mut params = StartParams::from([("resources".to_owned(), "'{oops'".to_owned())]);
        let err = infer_from_container(
            &mut params,
            Some(&limits(&[("google.com/tpu", "4")])),
            "gpu-group",
        )
        .unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidResourcesParam { ref group, .. } if group == "gpu-group")
        );
    }

    #[test]
    fn cpus_round_up_from_the_limit_else_the_request_and_memory_comes_from_the_limit_only() {
        let both = ResourceRequirements {
            limits: Some(BTreeMap::from([("cpu".into(), Quantity("1500m".into()))])),
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("4".into())),
                ("memory".into(), Quantity("1G".into())),
            ])),
            ..Default::default()
        };
        let mut params = StartParams::new();
        infer_from_container(&mut params, Some(&both), "g").unwrap();
        assert_eq!(params["num-cpus"], "2");
        assert!(!params.contains_key("memory"));

        let requests_only = ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".into(), Quantity("500m".into()))])),
            ..Default::default()
        };
        let mut params = StartParams::new();
        infer_from_container(&mut params, Some(&requests_only), "g").unwrap();
        assert_eq!(params["num-cpus"], "1");
    }

    #[test]
    fn user_params_are_never_overwritten_by_inference() {
        let mut params = StartParams::from([
            ("num-cpus".to_owned(), "0".to_owned()),
            ("num-gpus".to_owned(), "0".to_owned()),
        ]);
        infer_from_container(
            &mut params,
            Some(&limits(&[("cpu", "8"), ("nvidia.com/gpu", "1")])),
            "g",
        )
        .unwrap();
        assert_eq!(
            (params["num-cpus"].as_str(), params["num-gpus"].as_str()),
            ("0", "0")
        );
    }

    #[test]
    fn group_resources_replace_params_and_build_the_resources_json() {
        let mut params = StartParams::from([("resources".to_owned(), r#"'{"old":1}'"#.to_owned())]);
        let resources = BTreeMap::from([
            ("CPU".to_owned(), "500m".to_owned()),
            ("memory".to_owned(), "1Gi".to_owned()),
            ("GPU".to_owned(), "1".to_owned()),
            ("TPU".to_owned(), "4".to_owned()),
            ("special".to_owned(), "0.5".to_owned()),
        ]);
        apply_group_resources(&mut params, Some(&resources), "g").unwrap();
        assert_eq!(params["num-cpus"], "1");
        assert_eq!(params["memory"], "1073741824");
        assert_eq!(params["num-gpus"], "1");
        assert_eq!(params["resources"], r#"'{"TPU":4,"special":0.5}'"#);
    }

    #[test]
    fn a_bad_group_quantity_names_the_group_and_key() {
        let resources = BTreeMap::from([("CPU".to_owned(), "lots".to_owned())]);
        let err =
            apply_group_resources(&mut StartParams::new(), Some(&resources), "small").unwrap_err();
        assert_eq!(
            err.to_string(),
            "group \"small\": resource \"CPU\" = \"lots\" is not a quantity: a quantity starts with a number"
        );
    }

    #[test]
    fn group_labels_become_sorted_labels_param() {
        let mut params = StartParams::new();
        apply_group_labels(
            &mut params,
            Some(&BTreeMap::from([
                ("z".into(), "1".into()),
                ("a".into(), "2".into()),
            ])),
        );
        assert_eq!(params["labels"], "a=2,z=1");
    }

    #[test]
    fn booleans_become_switches_except_the_valued_ones() {
        let params = StartParams::from([
            ("block".into(), "true".into()),
            ("disable-usage-stats".into(), "False".into()),
            ("log-color".into(), "true".into()),
            ("include-dashboard".into(), "false".into()),
            ("num-cpus".into(), "1".into()),
        ]);
        assert_eq!(
            render(NodeType::Head, &params),
            "ray start --head  --block  --include-dashboard=false  --log-color=true  --num-cpus=1 "
        );
    }
}
