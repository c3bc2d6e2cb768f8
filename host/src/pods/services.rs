//! The head Service, the headless Service of multi-host workers, and a RayCluster's serve Service (§2.11).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wasmray_api::RayCluster;

use super::{BuildContext, BuildError, ClusterFacts, NodeType, labels, names};


/// The head Service. Headless (`clusterIP: None`, `publishNotReadyAddresses`) when its type is
/// empty or ClusterIP, since there is one head Pod and workers must reach it before it is Ready.
/// A `headGroupSpec.headService` is the base: its selector is replaced, our annotations and labels
/// win on conflicts, our ports are appended, its name is kept.
pub fn head_service(cluster: &RayCluster, ctx: &BuildContext) -> Result<Service, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    let head = &cluster.spec.head_group_spec;
    let mut selector = BTreeMap::from([
        (labels::CLUSTER.to_owned(), facts.name.to_owned()),
        (
            labels::NODE_TYPE.to_owned(),
            NodeType::Head.as_str().to_owned(),
        ),
        (
            labels::IDENTIFIER.to_owned(),
            names::identifier(facts.name, NodeType::Head.as_str()),
        ),
        (
            labels::APP_NAME.to_owned(),
            labels::APP_NAME_VALUE.to_owned(),
        ),
        (
            labels::CREATED_BY.to_owned(),
            labels::CREATED_BY_VALUE.to_owned(),
        ),
    ]);
    // A template that renames the app keeps its own `app.kubernetes.io/name` in the selector.
    if let Some(app) = head
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(labels::APP_NAME))
    {
        selector.insert(labels::APP_NAME.into(), app.clone());
    }
    let annotations = cluster
        .spec
        .head_service_annotations
        .clone()
        .unwrap_or_default();
    let ports: Vec<ServicePort> = service_ports(cluster)?
        .into_iter()
        .map(|(name, port)| ServicePort {
            name: Some(name),
            port,
            app_protocol: Some("tcp".into()),
            ..Default::default()
        })
        .collect();
    let default_name = names::head_service_name(facts.name, None);
    let service_type = head.service_type.clone().filter(|t| !t.is_empty());

    let mut service = match &head.head_service {
        Some(custom) => {
            let mut service = custom.clone();
            let meta = &mut service.metadata;
            meta.annotations
                .get_or_insert_with(BTreeMap::new)
                .extend(annotations);
            meta.labels
                .get_or_insert_with(BTreeMap::new)
                .extend(selector.clone());
            if meta.name.as_deref().unwrap_or_default().is_empty() {
                meta.name = Some(default_name);
            }
            meta.namespace = Some(facts.namespace.clone());
            let spec = service.spec.get_or_insert_with(ServiceSpec::default);
            spec.selector = Some(selector);
            spec.ports.get_or_insert_with(Vec::new).extend(ports);
            if spec.type_.as_deref().unwrap_or_default().is_empty() {
                spec.type_ = service_type;
            }
            service
        }
        None => {
            let headless = !ctx.enable_ray_head_cluster_ip_service
                && service_type.as_deref().is_none_or(|t| t == "ClusterIP");
            Service {
                metadata: ObjectMeta {
                    name: Some(default_name),
                    namespace: Some(facts.namespace.clone()),
                    labels: Some(selector.clone()),
                    annotations: Some(annotations).filter(|a| !a.is_empty()),
                    ..Default::default()
                },
                spec: Some(ServiceSpec {
                    selector: Some(selector),
                    ports: Some(ports),
                    type_: service_type,
                    cluster_ip: headless.then(|| "None".into()),
                    publish_not_ready_addresses: headless.then_some(true),
                    ..Default::default()
                }),
                status: None,
            }
        }
    };
    service.metadata.owner_references = Some(vec![facts.owner]);
    Ok(service)
}

/// The head container's ports by name, KubeRay's defaults when it declares none
/// ([`wasmray_api::ports::head_service_ports`], shared with the RayService reconciler).
fn service_ports(cluster: &RayCluster) -> Result<BTreeMap<String, i32>, BuildError> {
    wasmray_api::ports::head_service_ports(&cluster.spec).ok_or(BuildError::NoContainers { group: labels::HEAD_GROUP.into() })
}

/// The headless Service multi-host workers (TPU slices) resolve each other through; only needed
/// when some group has `numOfHosts > 1`, so `None` otherwise.
pub fn headless_worker_service(
    cluster: &RayCluster,
    ctx: &BuildContext,
) -> Result<Option<Service>, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    let multi_host = cluster
        .spec
        .worker_group_specs
        .iter()
        .flatten()
        .any(|g| g.num_of_hosts_or_default() > 1);
    if !multi_host {
        return Ok(None);
    }
    Ok(Some(Service {
        metadata: ObjectMeta {
            name: Some(names::headless_service_name(facts.name)),
            namespace: Some(facts.namespace.clone()),
            labels: Some(BTreeMap::from([(
                labels::HEADLESS_WORKER_SVC.to_owned(),
                facts.name.to_owned(),
            )])),
            owner_references: Some(vec![facts.owner.clone()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(BTreeMap::from([
                (labels::CLUSTER.to_owned(), facts.name.to_owned()),
                (
                    labels::NODE_TYPE.to_owned(),
                    NodeType::Worker.as_str().to_owned(),
                ),
            ])),
            type_: Some("ClusterIP".into()),
            // Peers must find each other before Ray's proxies are up.
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        status: None,
    }))
}

/// The serve Service of a standalone RayCluster, made only with annotation
/// `ray.io/enable-serve-service: "true"` (`None` otherwise); an error if the head has no `serve` port.
pub fn serve_service(
    cluster: &RayCluster,
    ctx: &BuildContext,
) -> Result<Option<Service>, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    if super::annotation(cluster, labels::ENABLE_SERVE_SERVICE) != Some("true") {
        return Ok(None);
    }
    let port = *service_ports(cluster)?
        .get("serve")
        .ok_or(BuildError::NoServePort)?;
    Ok(Some(Service {
        metadata: ObjectMeta {
            name: Some(names::serve_service_name(facts.name)),
            namespace: Some(facts.namespace.clone()),
            labels: Some(BTreeMap::from([
                (
                    labels::ORIGINATED_FROM_CR_NAME.to_owned(),
                    facts.name.to_owned(),
                ),
                (
                    labels::ORIGINATED_FROM_CRD.to_owned(),
                    "RayCluster".to_owned(),
                ),
                (labels::SERVE.to_owned(), format!("{}-serve", facts.name)),
            ])),
            owner_references: Some(vec![facts.owner.clone()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(
                labels::CLUSTER.to_owned(),
                facts.name.to_owned(),
            )])),
            ports: Some(vec![ServicePort {
                name: Some("serve".into()),
                port,
                ..Default::default()
            }]),
            type_: cluster
                .spec
                .head_group_spec
                .service_type
                .clone()
                .filter(|t| !t.is_empty()),
            ..Default::default()
        }),
        status: None,
    }))
}
