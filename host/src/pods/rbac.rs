//! The autoscaler's ServiceAccount, Role and RoleBinding (§2.10), and the token-auth Secret (§7.1).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wasmray_api::RayCluster;

use super::{BuildContext, BuildError, ClusterFacts, labels, names, rbac_labels};

/// What the autoscaler sidecar needs to patch Pods and the RayCluster.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalerRbac {
    /// `None` when the head template names its own ServiceAccount: the user creates it, and the
    /// controller reports `AutoscalerServiceAccountNotFound` if it does not exist.
    pub service_account: Option<ServiceAccount>,
    pub role: Role,
    pub role_binding: RoleBinding,
}

/// The autoscaler RBAC, or `None` when in-tree autoscaling is off.
pub fn autoscaler_rbac(
    cluster: &RayCluster,
    ctx: &BuildContext,
) -> Result<Option<AutoscalerRbac>, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    if !facts.autoscaling {
        return Ok(None);
    }
    let user_account = cluster
        .spec
        .head_group_spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty());
    let account = names::check_name(user_account.as_deref().unwrap_or(facts.name));
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(facts.namespace.clone()),
        labels: Some(rbac_labels(facts.name)),
        owner_references: Some(vec![facts.owner.clone()]),
        ..Default::default()
    };
    let rule = |group: &str, resource: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    };
    Ok(Some(AutoscalerRbac {
        service_account: user_account.is_none().then(|| ServiceAccount {
            metadata: meta(account.clone()),
            ..Default::default()
        }),
        role: Role {
            metadata: meta(facts.name.to_owned()),
            rules: Some(vec![
                rule("", "pods", &["get", "list", "watch", "patch"]),
                rule("", "pods/resize", &["patch"]),
                rule("ray.io", "rayclusters", &["get", "patch"]),
            ]),
        },
        role_binding: RoleBinding {
            metadata: meta(facts.name.to_owned()),
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: account,
                namespace: Some(facts.namespace.clone()),
                api_group: None,
            }]),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: names::check_name(facts.name),
            },
        },
    }))
}

/// The Secret `<cluster>` holding the Ray auth token, or `None` unless `authOptions.mode` is `token`.
/// The token comes from the caller (see [`auth_token`]); the controller creates the Secret once and
/// never rotates it.
pub fn auth_token_secret(
    cluster: &RayCluster,
    token: &str,
    ctx: &BuildContext,
) -> Result<Option<Secret>, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    if !facts.auth {
        return Ok(None);
    }
    Ok(Some(Secret {
        metadata: ObjectMeta {
            name: Some(names::check_name(facts.name)),
            namespace: Some(facts.namespace.clone()),
            labels: Some(BTreeMap::from([(
                labels::CLUSTER.to_owned(),
                facts.name.to_owned(),
            )])),
            owner_references: Some(vec![facts.owner.clone()]),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            "auth_token".to_owned(),
            token.to_owned(),
        )])),
        ..Default::default()
    }))
}

/// A token in KubeRay's shape (standard base64 of 32 bytes) from 32 random bytes the caller drew.
pub fn auth_token(random: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(random)
}
