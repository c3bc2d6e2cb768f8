//! Hand-written pieces of the OpenAPI schema: embedded Kubernetes objects, and the CEL rules that
//! reject at apply time what KubeRay only rejects later, in its reconcile loop.
//!
//! Embedded objects (Pod templates, Services, env vars, security contexts, resources) carry their
//! full Kubernetes schema, from k8s-openapi ([`kubernetes`]), without descriptions: `kubectl
//! explain` shows every field, a misspelt one is reported, and `cpu: banana` is refused. The parts
//! that rules read (containers, env names, restartPolicy) get bounds on top.
//!
//! Every rule is bounded so that the apiserver's cost estimate stays within its budget: lists that a
//! rule iterates have `maxItems`, strings it compares have `maxLength`.
//!
//! `ray.io/v1alpha1` is served but not stored, and keeps the embedded objects open (see
//! [`LOOSE`]): typed twice, a CRD would no longer fit in client-side apply's annotation.

mod kubernetes;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

/// Worker groups per cluster. Uniqueness of group names is quadratic in this.
pub const MAX_WORKER_GROUPS: u64 = 64;
/// Containers per Pod that a rule may look at.
const MAX_CONTAINERS: u64 = 32;
/// Environment variables per container that a rule may look at.
const MAX_ENV: u64 = 512;

/// Appends `x-kubernetes-validations` entries, each a `(rule, message)`.
fn add_rules(schema: &mut Schema, rules: &[(&str, &str)]) {
    let object = schema.ensure_object();
    let list = object
        .entry("x-kubernetes-validations")
        .or_insert_with(|| json!([]));
    if let Value::Array(list) = list {
        list.extend(
            rules
                .iter()
                .map(|(rule, message)| json!({ "rule": rule, "message": message })),
        );
    }
}

/// Key under which an embedded object's schema carries its open form, for `v1alpha1`: the CRD
/// builder keeps either the typed schema ([`typed`]) or the open one ([`loose`]), never both.
pub const LOOSE: &str = "x-wasmray-v1alpha1";

/// An object whose fields are not validated and not pruned.
fn open_object() -> Value {
    json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Sets `key` on the subschema at `pointer`, which must exist: a k8s-openapi upgrade that moved it
/// fails the CRD tests instead of dropping a bound that a rule's cost depends on.
fn bound(schema: &mut Value, pointer: &str, key: &str, value: Value) {
    let node = schema
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("the Pod template schema has no {pointer}"));
    node.insert(key.to_owned(), value);
}

/// The open form of a Pod template (`v1alpha1`): unknown fields kept, and declared only what rules
/// read: the containers, their env names and the restart policy.
fn loose_pod_template() -> Value {
    let env_var = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["name"],
        "properties": {
            "name": { "type": "string", "maxLength": 1024 },
            "value": { "type": "string" },
        },
    });
    let container = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["name"],
        "properties": {
            "name": { "type": "string" },
            "env": { "type": "array", "maxItems": MAX_ENV, "items": env_var },
        },
    });
    json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "metadata": open_object(),
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "required": ["containers"],
                "properties": {
                    "containers": { "type": "array", "minItems": 1, "maxItems": MAX_CONTAINERS, "items": container },
                    "restartPolicy": { "type": "string", "maxLength": 64 },
                },
            },
        },
    })
}

/// A Pod template (core/v1 PodTemplateSpec), typed. At least one container is required (the Ray
/// container is the first); the lists and strings that rules read are bounded.
pub fn pod_template(_: &mut SchemaGenerator) -> Schema {
    let mut schema = kubernetes::schema::<PodTemplateSpec>();
    let spec = "/properties/spec";
    let containers = "/properties/spec/properties/containers";
    let env = "/properties/spec/properties/containers/items/properties/env";
    bound(&mut schema, spec, "required", json!(["containers"]));
    bound(&mut schema, containers, "minItems", json!(1));
    bound(&mut schema, containers, "maxItems", json!(MAX_CONTAINERS));
    bound(&mut schema, env, "maxItems", json!(MAX_ENV));
    bound(
        &mut schema,
        &format!("{env}/items/properties/name"),
        "maxLength",
        json!(1024),
    );
    bound(
        &mut schema,
        "/properties/spec/properties/restartPolicy",
        "maxLength",
        json!(64),
    );
    bound(&mut schema, "", LOOSE, loose_pod_template());
    Schema::try_from(schema).expect("an object schema")
}

/// An embedded Kubernetes object or list of them (Service, SecurityContext, ResourceRequirements,
/// EnvVarSource, env vars, env sources, volume mounts), typed.
pub fn embedded<T: JsonSchema>(_: &mut SchemaGenerator) -> Schema {
    let mut schema = kubernetes::schema::<T>();
    let open = match schema["type"].as_str() {
        Some("array") => json!({ "type": "array", "items": open_object() }),
        _ => open_object(),
    };
    bound(&mut schema, "", LOOSE, open);
    Schema::try_from(schema).expect("an object schema")
}

/// The `v1` form of a generated schema: every embedded object typed.
pub fn typed(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            object.remove(LOOSE);
            object.values_mut().for_each(typed);
        }
        Value::Array(items) => items.iter_mut().for_each(typed),
        _ => {}
    }
}

/// The `v1alpha1` form of a generated schema: every embedded object open.
pub fn loose(schema: &mut Value) {
    if let Some(open) = schema.as_object_mut().and_then(|o| o.remove(LOOSE)) {
        *schema = open;
        return;
    }
    match schema {
        Value::Object(object) => object.values_mut().for_each(loose),
        Value::Array(items) => items.iter_mut().for_each(loose),
        _ => {}
    }
}

/// A resource quantity: `1`, `"500m"`, `"2Gi"`.
pub fn quantity(_: &mut SchemaGenerator) -> Schema {
    Schema::try_from(kubernetes::quantity()).expect("an object schema")
}

/// An RFC 3339 timestamp.
pub fn time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}

/// A map of RFC 3339 timestamps.
pub fn time_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "additionalProperties": { "type": "string", "format": "date-time" } })
}

/// `metav1.Condition` list, keyed by `type`.
pub fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": { "type": "string", "format": "date-time" },
                "message": { "type": "string", "maxLength": 32768 },
                "observedGeneration": { "type": "integer", "format": "int64", "minimum": 0 },
                "reason": { "type": "string", "maxLength": 1024 },
                "status": { "type": "string", "enum": ["True", "False", "Unknown"] },
                "type": { "type": "string", "maxLength": 316 },
            },
        },
    })
}

/// `managedBy`: one of two controllers, and never changed.
pub fn managed_by_rules(schema: &mut Schema) {
    add_rules(
        schema,
        &[
            ("self == oldSelf", "the managedBy field is immutable"),
            (
                "self in ['ray.io/kuberay-operator', 'kueue.x-k8s.io/multikueue']",
                "the managedBy field value must be either 'ray.io/kuberay-operator' or 'kueue.x-k8s.io/multikueue'",
            ),
        ],
    );
}

/// `workerGroupSpecs`: bounded, and group names are unique.
pub fn worker_groups_rules(schema: &mut Schema) {
    schema
        .ensure_object()
        .insert("maxItems".into(), json!(MAX_WORKER_GROUPS));
    add_rules(
        schema,
        &[(
            "self.all(g, self.exists_one(h, h.groupName == g.groupName))",
            "workerGroupSpecs: every groupName must be unique within the cluster",
        )],
    );
}

/// Rules shared by the head group and the worker groups.
const GROUP_RULES: &[(&str, &str)] = &[
    (
        "!has(self.resources) || size(self.resources) == 0 || !has(self.rayStartParams) || \
         !['num-cpus', 'num-gpus', 'memory', 'resources'].exists(k, k in self.rayStartParams && self.rayStartParams[k] != '')",
        "resources and rayStartParams num-cpus, num-gpus, memory or resources must not both be set; use only one",
    ),
    (
        "!has(self.rayStartParams) || !('labels' in self.rayStartParams)",
        "rayStartParams['labels'] is not supported; use the group's labels field instead",
    ),
];

/// `headGroupSpec`.
pub fn head_group_rules(schema: &mut Schema) {
    add_rules(schema, GROUP_RULES);
}

/// `workerGroupSpecs[]`.
pub fn worker_group_rules(schema: &mut Schema) {
    // Required as in KubeRay; the apiserver fills in the defaults before it validates.
    if let Some(Value::Array(required)) = schema.ensure_object().get_mut("required") {
        required.extend([json!("minReplicas"), json!("maxReplicas")]);
    }
    add_rules(schema, GROUP_RULES);
    add_rules(
        schema,
        &[
            (
                "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                "minReplicas must be less than or equal to maxReplicas",
            ),
            (
                "self.groupName.matches('^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')",
                "groupName must be a valid label value: alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric",
            ),
        ],
    );
}

/// `groupName` is the `ray.io/group` label value, so at most 63 characters.
pub fn group_name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "minLength": 1, "maxLength": 63 })
}

/// Rules on a cluster spec (RayCluster `spec`, RayJob `rayClusterSpec`, RayService `rayClusterConfig`).
pub fn cluster_spec_rules(schema: &mut Schema) {
    // The Ray container is the first; an empty list is reported by `minItems`, not by these rules.
    const HEAD_ENV: &str = "self.headGroupSpec.template.spec.containers[0]";
    const NO_CONTAINER: &str = "size(self.headGroupSpec.template.spec.containers) == 0";
    let env_set = |name: &str| {
        format!(
            "(!({NO_CONTAINER}) && has({HEAD_ENV}.env) && {HEAD_ENV}.env.exists(e, e.name == '{name}'))"
        )
    };
    let param_set = |name: &str| {
        format!(
            "(has(self.headGroupSpec.rayStartParams) && '{name}' in self.headGroupSpec.rayStartParams \
             && self.headGroupSpec.rayStartParams['{name}'] != '')"
        )
    };
    let autoscaling = "(has(self.enableInTreeAutoscaling) && self.enableInTreeAutoscaling)";
    let rules = [
        (
            format!("!has(self.gcsFaultToleranceOptions) || !{}", param_set("redis-password")),
            "cannot set `redis-password` in rayStartParams when gcsFaultToleranceOptions is set; use gcsFaultToleranceOptions.redisPassword instead",
        ),
        (
            format!("!has(self.gcsFaultToleranceOptions) || !{}", env_set("REDIS_PASSWORD")),
            "cannot set the REDIS_PASSWORD env var in the head Pod when gcsFaultToleranceOptions is set; use gcsFaultToleranceOptions.redisPassword instead",
        ),
        (
            format!("!has(self.gcsFaultToleranceOptions) || !{}", env_set("RAY_REDIS_ADDRESS")),
            "cannot set the RAY_REDIS_ADDRESS env var in the head Pod when gcsFaultToleranceOptions is set; use gcsFaultToleranceOptions.redisAddress instead",
        ),
        (
            format!("!{} && !{}", param_set("redis-username"), env_set("REDIS_USERNAME")),
            "cannot set the redis username in rayStartParams or in the REDIS_USERNAME env var; use gcsFaultToleranceOptions.redisUsername instead",
        ),
        (
            format!("!{autoscaling} || !has(self.workerGroupSpecs) || self.workerGroupSpecs.all(g, !has(g.suspend) || !g.suspend)"),
            "a worker group cannot be suspended while enableInTreeAutoscaling is true",
        ),
        (
            format!(
                "{autoscaling} || {NO_CONTAINER} || !has({HEAD_ENV}.env) || !{HEAD_ENV}.env.exists(e, e.name == 'RAY_enable_autoscaler_v2' \
                 && has(e.value) && (e.value == '1' || e.value == 'true'))"
            ),
            "the RAY_enable_autoscaler_v2 env var cannot be '1' or 'true' when enableInTreeAutoscaling is false; set enableInTreeAutoscaling: true to use autoscaler v2",
        ),
        (
            format!(
                "!{autoscaling} || !has(self.autoscalerOptions) || !has(self.autoscalerOptions.version) || !{}",
                env_set("RAY_enable_autoscaler_v2")
            ),
            "set either autoscalerOptions.version or the head's RAY_enable_autoscaler_v2 env var, not both",
        ),
        (
            format!(
                "!{autoscaling} || !has(self.autoscalerOptions) || !has(self.autoscalerOptions.version) \
                 || self.autoscalerOptions.version != 'v2' || \
                 ((!has(self.headGroupSpec.template.spec.restartPolicy) || self.headGroupSpec.template.spec.restartPolicy in ['', 'Never']) \
                 && (!has(self.workerGroupSpecs) || self.workerGroupSpecs.all(g, !has(g.template.spec.restartPolicy) || g.template.spec.restartPolicy in ['', 'Never'])))"
            ),
            "autoscaler v2 needs restartPolicy Never (or unset) on the head and every worker group",
        ),
        (
            "!has(self.authOptions) || !has(self.authOptions.mode) || self.authOptions.mode != 'token' || \
             (has(self.rayVersion) && isSemver(self.rayVersion, true) && semver(self.rayVersion, true).compareTo(semver('2.52.0')) >= 0)"
                .to_owned(),
            "authOptions.mode 'token' needs rayVersion 2.52.0 or later",
        ),
    ];
    let rules: Vec<(&str, &str)> = rules
        .iter()
        .map(|(rule, message)| (rule.as_str(), *message))
        .collect();
    add_rules(schema, &rules);
}

/// `rayVersion` is compared as a version; bounded for the rule's cost.
pub fn ray_version(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "maxLength": 64 })
}

/// Rules on a RayJob spec.
pub fn job_spec_rules(schema: &mut Schema) {
    let shutdown = "(has(self.shutdownAfterJobFinishes) && self.shutdownAfterJobFinishes)";
    let selector = "(has(self.clusterSelector) && size(self.clusterSelector) > 0)";
    let mode = |m: &str| format!("(has(self.submissionMode) && self.submissionMode == '{m}')");
    let rules = [
        (
            format!("!(has(self.suspend) && self.suspend) || {shutdown}"),
            "a RayJob with shutdownAfterJobFinishes set to false is not allowed to be suspended",
        ),
        (
            format!(
                "!has(self.ttlSecondsAfterFinished) || self.ttlSecondsAfterFinished == 0 || {shutdown}"
            ),
            "a RayJob with shutdownAfterJobFinishes set to false cannot have ttlSecondsAfterFinished",
        ),
        (
            format!("!(has(self.suspend) && self.suspend) || !{selector}"),
            "the clusterSelector mode doesn't support the suspend operation",
        ),
        (
            format!("has(self.rayClusterSpec) || {selector}"),
            "one of rayClusterSpec or clusterSelector must be set",
        ),
        (
            format!(
                "!{selector} || ('ray.io/cluster' in self.clusterSelector && self.clusterSelector['ray.io/cluster'] != '')"
            ),
            "clusterSelector must name the cluster under the key ray.io/cluster",
        ),
        (
            format!("!{selector} || !{}", mode("SidecarMode")),
            "clusterSelector is not supported in SidecarMode",
        ),
        (
            format!(
                "!{} || !has(self.backoffLimit) || self.backoffLimit == 0",
                mode("InteractiveMode")
            ),
            "backoffLimit is incompatible with InteractiveMode",
        ),
        (
            format!(
                "!{} || (!has(self.submitterPodTemplate) && !has(self.submitterConfig))",
                mode("SidecarMode")
            ),
            "SidecarMode doesn't support submitterPodTemplate or submitterConfig",
        ),
        (
            format!(
                "!{} || !has(self.rayClusterSpec) || !has(self.rayClusterSpec.headGroupSpec.template.spec.restartPolicy) \
                 || self.rayClusterSpec.headGroupSpec.template.spec.restartPolicy in ['', 'Never']",
                mode("SidecarMode")
            ),
            "restartPolicy for the head Pod should be Never or unset when using SidecarMode",
        ),
        (
            format!(
                "!has(self.deletionStrategy) || !has(self.deletionStrategy.deletionRules) || !{shutdown}"
            ),
            "shutdownAfterJobFinishes and deletionStrategy.deletionRules are mutually exclusive",
        ),
    ];
    let rules: Vec<(&str, &str)> = rules
        .iter()
        .map(|(rule, message)| (rule.as_str(), *message))
        .collect();
    add_rules(schema, &rules);
}

/// Rules on a RayJob's `deletionStrategy`.
pub fn deletion_strategy_rules(schema: &mut Schema) {
    add_rules(
        schema,
        &[
            (
                "!((has(self.onSuccess) || has(self.onFailure)) && has(self.deletionRules))",
                "legacy policies (onSuccess/onFailure) and deletionRules cannot be used together within the same deletionStrategy",
            ),
            (
                "((has(self.onSuccess) && has(self.onFailure)) || has(self.deletionRules))",
                "deletionStrategy requires either BOTH onSuccess and onFailure, OR the deletionRules field (cannot be empty)",
            ),
        ],
    );
}

/// Rules on a RayService spec.
pub fn service_spec_rules(schema: &mut Schema) {
    let incremental = "(has(self.upgradeStrategy) && has(self.upgradeStrategy.type) && \
                       self.upgradeStrategy.type == 'NewClusterWithIncrementalUpgrade')";
    let rules = [
        (
            format!(
                "!{incremental} || (has(self.rayClusterConfig.enableInTreeAutoscaling) && self.rayClusterConfig.enableInTreeAutoscaling)"
            ),
            "NewClusterWithIncrementalUpgrade needs the Ray autoscaler (rayClusterConfig.enableInTreeAutoscaling: true)",
        ),
        (
            format!("!{incremental} || has(self.upgradeStrategy.clusterUpgradeOptions)"),
            "upgradeStrategy.clusterUpgradeOptions is required for NewClusterWithIncrementalUpgrade",
        ),
    ];
    let rules: Vec<(&str, &str)> = rules
        .iter()
        .map(|(rule, message)| (rule.as_str(), *message))
        .collect();
    add_rules(schema, &rules);
}

/// Name rules of a kind whose cluster (and Pod) names derive from `metadata.name`.
pub fn name_rules(schema: &mut Schema, kind: &str, max_len: usize) {
    let length_rule = format!("size(self.metadata.name) <= {max_len}");
    let length_message = format!("{kind} name should be no more than {max_len} characters");
    let dns_message = format!(
        "{kind} name should be a valid DNS-1035 label: lowercase alphanumerics or '-', starting with a letter and ending with an alphanumeric"
    );
    add_rules(
        schema,
        &[
            (&length_rule, &length_message),
            (
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                &dns_message,
            ),
        ],
    );
}

/// The JSON schema of `T` in the structural form the apiserver requires.
pub fn structural<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::openapi3().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let generator = settings
        .with_transform(kube_core::schema::OptionalEnum)
        .with_transform(kube_core::schema::OptionalIntOrString)
        .with_transform(kube_core::schema::StructuralSchemaRewriter)
        .into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(object) = &mut value {
        object.remove("title");
        object.remove("$schema");
    }
    value
}
