//! Schemas of embedded Kubernetes objects (Pod templates, Services, env vars, …) from k8s-openapi's
//! own `JsonSchema` impls, in the structural form a CRD needs.
//!
//! k8s-openapi's schemas reference each other (`$ref`), which a CRD may not; they are generated
//! here as separate definitions and inlined by name, so the few types Kubernetes serialises
//! specially are recognised where they are used, not guessed from their shape:
//!
//! - `Quantity` becomes an int-or-string whose string form must be a quantity (so `cpu: banana` is
//!   refused at apply time), `IntOrString` an int-or-string;
//! - `ObjectMeta` of an embedded object keeps only what KubeRay's CRDs keep (name, namespace,
//!   labels, annotations, finalizers), so the same manifests are stored the same way;
//! - fields that Kubernetes defaults are optional, with their default ([`DEFAULTS`]), where
//!   k8s-openapi's schemas require them;
//! - descriptions are dropped: they are most of the size, and `kubectl explain` still shows every
//!   field and its type.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// The string form of a `resource.Quantity`: a signed decimal number, then a binary SI suffix
/// (`Ki` … `Ei`), a decimal SI suffix (`n` `u` `m` `k` `M` `G` `T` `P` `E`) or a decimal exponent.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Fields that Kubernetes fills in when they are left out, with the value it fills in, by type.
/// k8s-openapi's Rust types make them non-optional, so its schemas list them as required, which
/// Kubernetes does not: they are optional here, with the default of Kubernetes' own OpenAPI (the
/// `name` of a reference "allowed to be empty for backwards compatibility", ports' protocols, …).
const DEFAULTS: &[(&str, &str, &str)] = &[
    ("LocalObjectReference", "name", r#""""#),
    ("ConfigMapKeySelector", "name", r#""""#),
    ("SecretKeySelector", "name", r#""""#),
    ("ConfigMapEnvSource", "name", r#""""#),
    ("SecretEnvSource", "name", r#""""#),
    ("ConfigMapVolumeSource", "name", r#""""#),
    ("ConfigMapProjection", "name", r#""""#),
    ("SecretProjection", "name", r#""""#),
    ("FileKeySelector", "optional", "false"),
    ("GRPCAction", "service", r#""""#),
    ("ContainerPort", "protocol", r#""TCP""#),
    ("ServicePort", "protocol", r#""TCP""#),
    ("AzureDiskVolumeSource", "fsType", r#""ext4""#),
    ("AzureDiskVolumeSource", "readOnly", "false"),
    ("ISCSIVolumeSource", "iscsiInterface", r#""default""#),
    ("RBDVolumeSource", "keyring", r#""/etc/ceph/keyring""#),
    ("RBDVolumeSource", "pool", r#""rbd""#),
    ("RBDVolumeSource", "user", r#""admin""#),
    ("ScaleIOVolumeSource", "fsType", r#""xfs""#),
    ("ScaleIOVolumeSource", "storageMode", r#""ThinProvisioned""#),
];

/// The package of the core types [`DEFAULTS`] names.
const CORE_V1: &str = "io.k8s.api.core.v1.";

/// Applies [`DEFAULTS`] to the inlined definition `name`, and makes `metadata` optional: an
/// embedded object's metadata never is required (k8s-openapi's `Service` has it non-optional).
fn kubernetes_defaults(name: &str, schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let short = name.strip_prefix(CORE_V1).unwrap_or_default();
    let defaulted: Vec<(&str, Value)> = DEFAULTS
        .iter()
        .filter(|(kind, _, _)| *kind == short)
        .map(|(_, field, value)| (*field, serde_json::from_str(value).expect("a JSON default")))
        .collect();
    if let Some(Value::Array(required)) = object.get_mut("required") {
        required.retain(|r| r != "metadata" && !defaulted.iter().any(|(field, _)| r == field));
        if required.is_empty() {
            object.remove("required");
        }
    }
    for (field, value) in defaulted {
        let property = object
            .get_mut("properties")
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{name} has no field {field}"));
        property.insert("default".into(), value);
    }
}

/// Nesting a schema may reach; Kubernetes' embedded types are not recursive, so hitting this means
/// a type that is, and it must be declared free-form by hand rather than inlined forever.
const MAX_DEPTH: usize = 64;

/// A resource quantity: `1`, `"500m"`, `"2Gi"`.
pub fn quantity() -> Value {
    json!({
        "anyOf": [{ "type": "integer" }, { "type": "string" }],
        "pattern": QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": true,
    })
}

fn int_or_string() -> Value {
    json!({ "anyOf": [{ "type": "integer" }, { "type": "string" }], "x-kubernetes-int-or-string": true })
}

/// The `metadata` of an embedded object (a Pod template's, a Service's).
fn embedded_object_meta() -> Value {
    let strings = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    json!({
        "type": "object",
        "properties": {
            "annotations": strings,
            "finalizers": { "type": "array", "items": { "type": "string" } },
            "labels": strings,
            "name": { "type": "string" },
            "namespace": { "type": "string" },
        },
    })
}

/// The schema of `T` (a k8s-openapi type, or a `Vec`/`Option` of one), inlined, without
/// descriptions, with the special types above.
pub fn schema<T: JsonSchema>() -> Value {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = false;
            s.meta_schema = None;
        })
        .into_generator();
    let root = generator.subschema_for::<T>().to_value();
    let definitions = generator.take_definitions(false);
    inline(&root, &definitions, 0)
}

fn inline(schema: &Value, definitions: &Map<String, Value>, depth: usize) -> Value {
    assert!(
        depth < MAX_DEPTH,
        "an embedded Kubernetes schema nests deeper than {MAX_DEPTH}: is it recursive?"
    );
    match schema {
        Value::Object(object) => {
            let mut out = match object.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let name = reference.rsplit('/').next().unwrap_or(reference);
                    match name {
                        QUANTITY => quantity(),
                        INT_OR_STRING => int_or_string(),
                        OBJECT_META => embedded_object_meta(),
                        _ => {
                            let definition = definitions
                                .get(name)
                                .unwrap_or_else(|| panic!("no definition for {reference}"));
                            let mut inlined = inline(definition, definitions, depth + 1);
                            kubernetes_defaults(name, &mut inlined);
                            inlined
                        }
                    }
                }
                None => Value::Object(Map::new()),
            };
            let out_object = out.as_object_mut().expect("a schema object");
            for (key, value) in object {
                if key == "$ref" || key == "description" {
                    continue;
                }
                let value = match key.as_str() {
                    // Maps of subschemas.
                    "properties" => Value::Object(
                        value
                            .as_object()
                            .expect("properties are an object")
                            .iter()
                            .map(|(name, child)| {
                                (name.clone(), inline(child, definitions, depth + 1))
                            })
                            .collect(),
                    ),
                    // Subschemas and lists of them.
                    "items" | "additionalProperties" | "not" => {
                        inline(value, definitions, depth + 1)
                    }
                    "allOf" | "anyOf" | "oneOf" => Value::Array(
                        value
                            .as_array()
                            .expect("a list of subschemas")
                            .iter()
                            .map(|child| inline(child, definitions, depth + 1))
                            .collect(),
                    ),
                    // Keywords whose values are data, not schemas.
                    _ => value.clone(),
                };
                out_object.insert(key.clone(), value);
            }
            out
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, Service};

    use super::*;

    fn find(schema: &Value, key: &str) -> usize {
        match schema {
            Value::Object(object) => {
                usize::from(object.contains_key(key))
                    + object.values().map(|v| find(v, key)).sum::<usize>()
            }
            Value::Array(items) => items.iter().map(|v| find(v, key)).sum(),
            _ => 0,
        }
    }

    #[test]
    fn a_pod_template_is_inlined_without_refs_or_descriptions() {
        let schema = schema::<PodTemplateSpec>();
        assert_eq!(find(&schema, "$ref"), 0);
        assert_eq!(find(&schema, "description"), 0);
        let container = &schema["properties"]["spec"]["properties"]["containers"]["items"];
        assert_eq!(container["properties"]["imagePullPolicy"]["type"], "string");
        assert_eq!(
            container["properties"]["resources"]["properties"]["limits"]["additionalProperties"],
            quantity()
        );
        assert_eq!(
            container["properties"]["livenessProbe"]["properties"]["httpGet"]["properties"]["port"],
            int_or_string()
        );
        assert_eq!(schema["properties"]["metadata"], embedded_object_meta());
    }

    #[test]
    fn fields_kubernetes_defaults_are_optional_with_their_default() {
        let container = schema::<Container>();
        let env_from = &container["properties"]["envFrom"]["items"]["properties"];
        assert_eq!(env_from["secretRef"]["properties"]["name"]["default"], "");
        assert!(env_from["secretRef"].get("required").is_none());
        let port = &container["properties"]["ports"]["items"];
        assert_eq!(port["properties"]["protocol"]["default"], "TCP");
        assert_eq!(port["required"], json!(["containerPort"]));
        assert!(
            schema::<Service>().get("required").is_none(),
            "a Service's metadata is optional"
        );
        for (kind, _, value) in DEFAULTS {
            serde_json::from_str::<Value>(value).unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }

    #[test]
    fn lists_and_services_are_inlined_too() {
        let list = schema::<Vec<Container>>();
        assert_eq!(list["type"], "array");
        assert_eq!(list["items"]["required"], json!(["name"]));
        let service = schema::<Service>();
        assert_eq!(
            service["properties"]["spec"]["properties"]["ports"]["items"]["properties"]["targetPort"],
            int_or_string()
        );
        assert_eq!(find(&service, "$ref"), 0);
    }
}
