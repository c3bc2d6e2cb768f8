//! The KWOK node set: which fake nodes the local control plane registers, from a small YAML file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::DevError;

/// The annotation KWOK is started to manage nodes by.
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// A node set, as read from `--nodes FILE`.
///
/// ```yaml
/// nodes:
///   - name: gpu            # nodes gpu-0 and gpu-1
///     count: 2
///     cpu: "16"
///     memory: 64Gi
///     extendedResources: { nvidia.com/gpu: "8" }
///     labels: { nvidia.com/gpu.product: A100 }
///     taints: [{ key: nvidia.com/gpu, value: present, effect: NoSchedule }]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSet {
    /// Node groups, each registering `count` identical nodes.
    pub nodes: Vec<NodeGroup>,
}

/// A group of identical nodes named `<name>-0`, `<name>-1`, ….
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeGroup {
    /// Name prefix of the group's nodes.
    pub name: String,
    /// How many nodes the group has.
    #[serde(default = "one")]
    pub count: u32,
    /// CPU capacity, a Kubernetes quantity.
    pub cpu: String,
    /// Memory capacity, a Kubernetes quantity.
    pub memory: String,
    /// Pod capacity.
    #[serde(default = "default_pods")]
    pub pods: u32,
    /// Extended resources such as `nvidia.com/gpu`, `amd.com/gpu` or `google.com/tpu`.
    #[serde(default)]
    pub extended_resources: BTreeMap<String, String>,
    /// Node labels (the usual `kubernetes.io/hostname` and `type: kwok` are added).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    #[serde(default)]
    pub taints: Vec<TaintSpec>,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaintSpec {
    /// Taint key.
    pub key: String,
    /// Taint value.
    #[serde(default)]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

fn one() -> u32 {
    1
}

fn default_pods() -> u32 {
    110
}

impl Default for NodeSet {
    /// Two CPU nodes (16 CPU, 64Gi) and two GPU nodes (128 CPU, 1Ti, 8 × A100, tainted `nvidia.com/gpu`).
    fn default() -> Self {
        Self::from_yaml(include_str!("default-nodes.yaml")).expect("the built-in node set is valid")
    }
}

impl NodeSet {
    /// Parses and checks a node set.
    pub fn from_yaml(text: &str) -> Result<Self, DevError> {
        let set: NodeSet = serde_yaml::from_str(text).map_err(|e| DevError::NodeSet(e.to_string()))?;
        set.validate()?;
        Ok(set)
    }

    fn validate(&self) -> Result<(), DevError> {
        let mut seen = std::collections::BTreeSet::new();
        for group in &self.nodes {
            if !seen.insert(&group.name) {
                return Err(DevError::NodeSet(format!("node group {:?} appears twice", group.name)));
            }
            for taint in &group.taints {
                if !matches!(taint.effect.as_str(), "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                    return Err(DevError::NodeSet(format!(
                        "node group {:?}: taint effect {:?} is not NoSchedule, PreferNoSchedule or NoExecute",
                        group.name, taint.effect
                    )));
                }
            }
        }
        Ok(())
    }

    /// The Node objects to create.
    pub fn to_nodes(&self) -> Vec<Node> {
        self.nodes.iter().flat_map(|group| (0..group.count).map(move |i| group.node(i))).collect()
    }
}

impl NodeGroup {
    fn node(&self, index: u32) -> Node {
        let name = format!("{}-{index}", self.name);
        let mut labels = self.labels.clone();
        labels.insert("kubernetes.io/hostname".into(), name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        labels.insert("type".into(), "kwok".into());
        let mut capacity: BTreeMap<String, Quantity> = self
            .extended_resources
            .iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect();
        capacity.insert("cpu".into(), Quantity(self.cpu.clone()));
        capacity.insert("memory".into(), Quantity(self.memory.clone()));
        capacity.insert("pods".into(), Quantity(self.pods.to_string()));
        Node {
            metadata: ObjectMeta {
                name: Some(name),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(
                    KWOK_NODE_ANNOTATION.0.to_string(),
                    KWOK_NODE_ANNOTATION.1.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: (!self.taints.is_empty()).then(|| {
                    self.taints
                        .iter()
                        .map(|t| Taint {
                            key: t.key.clone(),
                            value: t.value.clone(),
                            effect: t.effect.clone(),
                            ..Default::default()
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                allocatable: Some(capacity.clone()),
                capacity: Some(capacity),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_has_two_cpu_and_two_tainted_a100_nodes() {
        let nodes = NodeSet::default().to_nodes();
        let names: Vec<_> = nodes.iter().map(|n| n.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["cpu-0", "cpu-1", "gpu-0", "gpu-1"]);
        let gpu = &nodes[2];
        let capacity = gpu.status.as_ref().unwrap().capacity.as_ref().unwrap();
        assert_eq!(capacity["nvidia.com/gpu"], Quantity("8".into()));
        assert_eq!(gpu.metadata.labels.as_ref().unwrap()["nvidia.com/gpu.product"], "A100");
        let taint = &gpu.spec.as_ref().unwrap().taints.as_ref().unwrap()[0];
        assert_eq!((taint.key.as_str(), taint.effect.as_str()), ("nvidia.com/gpu", "NoSchedule"));
        assert!(nodes[0].spec.as_ref().unwrap().taints.is_none());
    }

    #[test]
    fn a_bad_taint_effect_is_named_in_the_error() {
        let err = NodeSet::from_yaml(
            "nodes: [{name: x, cpu: '1', memory: 1Gi, taints: [{key: k, effect: Sometimes}]}]",
        )
        .unwrap_err();
        assert!(err.to_string().contains("Sometimes"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_rejected() {
        let err = NodeSet::from_yaml("nodes: [{name: x, cpu: '1', memory: 1Gi, gpus: 3}]").unwrap_err();
        assert!(err.to_string().contains("gpus"), "{err}");
    }
}
