//! Head and worker Pods: template, labels, `ray start`, env, ports, `/dev/shm`, init container,
//! autoscaler sidecar, GCS fault tolerance, token auth and probes (§2.4–§2.10, §5, §7.1).
//!
//! The steps run in KubeRay's order, because the order shows: env vars are a list, and users read
//! them top to bottom in `kubectl describe`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HTTPGetAction, ObjectFieldSelector, Pod, PodSpec, Probe, ResourceRequirements,
    SecretKeySelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use wasmray_api::{RayCluster, WorkerGroupSpec, template_hash};

use super::start::{self, StartParams};
use super::{BuildContext, BuildError, ClusterFacts, CreatedBy, NodeType, labels, names};

/// Which worker Pod of a group to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerSlot<'a> {
    /// The 5 characters after the `generateName` prefix (KubeRay lets the API server pick them).
    pub suffix: &'a str,
    /// The replica's index in the group (label with `RayMultiHostIndexing`).
    pub replica_index: i32,
    /// The host's index within a multi-host replica.
    pub host_index: i32,
    /// `<group>-<5 random>`, the multi-host replica's name.
    pub replica_name: &'a str,
}

const AUTOSCALER_CONTAINER: &str = "autoscaler";
const WAIT_GCS_READY: &str = "wait-gcs-ready";
const SHARED_MEMORY_VOLUME: &str = "shared-mem";
const SHARED_MEMORY_PATH: &str = "/dev/shm";
const RAY_LOGS_VOLUME: &str = "ray-logs";
const RAY_LOGS_PATH: &str = "/tmp/ray";
const AUTH_SECRET_KEY: &str = "auth_token";
const METRICS_PORT: i32 = 8080;
const AGENT_PORT: i32 = 52365;
const DASHBOARD_PORT: i32 = 8265;
const SERVE_PORT: i32 = 8000;

/// The head Pod. `suffix` completes the `<cluster>-head-` prefix (unused with deterministic names).
pub fn head_pod(cluster: &RayCluster, suffix: &str, ctx: &BuildContext) -> Result<Pod, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    let group = &cluster.spec.head_group_spec;
    let (mut meta, mut spec) = split_template(&group.template, labels::HEAD_GROUP)?;

    let prefix = names::head_pod_prefix(facts.name, ctx.deterministic_head_pod_name);
    if ctx.deterministic_head_pod_name {
        meta.name = Some(prefix);
        meta.generate_name = None;
    } else {
        // A name in the head template wins over the generated one, as it does for KubeRay.
        meta.name = Some(
            meta.name
                .take()
                .unwrap_or_else(|| format!("{prefix}{suffix}")),
        );
        meta.generate_name = Some(prefix);
    }
    meta.namespace = Some(facts.namespace.clone());

    let mut params = group.ray_start_params.clone().unwrap_or_default();
    start::apply_group_resources(&mut params, group.resources.as_ref(), labels::HEAD_GROUP)?;
    start::apply_group_labels(&mut params, group.labels.as_ref());
    meta.labels = Some(pod_labels(
        NodeType::Head,
        facts.name,
        labels::HEAD_GROUP,
        meta.labels.take(),
        group.labels.as_ref(),
    ));
    start::set_missing(&mut params, NodeType::Head, "");
    copy_overwrite_annotation(&facts, &mut meta);

    if facts.autoscaling {
        params.insert("no-monitor".into(), "true".into());
        let account = spec
            .service_account_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| facts.name.to_owned());
        spec.service_account_name = Some(names::check_name(&account));
        let autoscaler = autoscaler_container(&facts, &spec.containers[0]);
        spec.containers.push(autoscaler);
        if facts.autoscaler_v2 {
            push_env(
                &mut spec.containers[0],
                value_env("RAY_enable_autoscaler_v2", "true"),
            );
            spec.restart_policy = Some("Never".into());
        }
    }

    configure_fault_tolerance(
        &facts,
        NodeType::Head,
        &mut meta,
        &mut spec.containers[0],
        &mut params,
    );
    add_metrics_port(&mut spec.containers[0]);
    if facts.auth {
        configure_token_auth(facts.name, &mut spec);
    }
    spec.containers
        .extend(ctx.head_sidecar_containers.iter().cloned());

    let pod = finish_pod(
        &facts,
        NodeType::Head,
        labels::HEAD_GROUP,
        meta,
        spec,
        params,
        ctx,
    )?;
    Ok(stamp_hashes(pod, &cluster.spec, template_hash::head_hash(&cluster.spec)))
}

/// A worker Pod of group `group_index`.
pub fn worker_pod(
    cluster: &RayCluster,
    group_index: usize,
    slot: &WorkerSlot<'_>,
    ctx: &BuildContext,
) -> Result<Pod, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    let groups = cluster
        .spec
        .worker_group_specs
        .as_deref()
        .unwrap_or_default();
    let group: &WorkerGroupSpec = groups.get(group_index).ok_or(BuildError::NoSuchGroup {
        index: group_index,
        count: groups.len(),
    })?;
    let group_name = group.group_name.as_str();
    let (mut meta, mut spec) = split_template(&group.template, group_name)?;

    let prefix = names::worker_pod_prefix(facts.name, group_name);
    meta.name = Some(format!("{prefix}{}", slot.suffix));
    meta.generate_name = Some(prefix);
    meta.namespace = Some(facts.namespace.clone());

    if ctx.enable_init_container_injection {
        let init = wait_gcs_ready(&facts, &spec.containers[0], ctx);
        spec.init_containers.get_or_insert_with(Vec::new).push(init);
    }

    let mut params = group.ray_start_params.clone().unwrap_or_default();
    start::apply_group_resources(&mut params, group.resources.as_ref(), group_name)?;
    start::apply_group_labels(&mut params, group.labels.as_ref());
    let mut pod_labels = pod_labels(
        NodeType::Worker,
        facts.name,
        group_name,
        meta.labels.take(),
        group.labels.as_ref(),
    );
    if ctx.multi_host_indexing {
        pod_labels.insert(labels::REPLICA_INDEX.into(), slot.replica_index.to_string());
        if group.num_of_hosts_or_default() > 1 {
            pod_labels.insert(labels::REPLICA_NAME.into(), slot.replica_name.to_owned());
            pod_labels.insert(labels::HOST_INDEX.into(), slot.host_index.to_string());
        }
    }
    meta.labels = Some(pod_labels);
    start::set_missing(&mut params, NodeType::Worker, &facts.head_address());

    copy_overwrite_annotation(&facts, &mut meta);
    configure_fault_tolerance(
        &facts,
        NodeType::Worker,
        &mut meta,
        &mut spec.containers[0],
        &mut params,
    );
    add_metrics_port(&mut spec.containers[0]);
    if facts.autoscaling && facts.autoscaler_v2 {
        spec.restart_policy = Some("Never".into());
    }
    if facts.auth {
        configure_token_auth(facts.name, &mut spec);
    }
    spec.containers
        .extend(ctx.worker_sidecar_containers.iter().cloned());

    let pod = finish_pod(
        &facts,
        NodeType::Worker,
        group_name,
        meta,
        spec,
        params,
        ctx,
    )?;
    let hash = template_hash::worker_group_hash(&cluster.spec, group);
    Ok(stamp_hashes(pod, &cluster.spec, hash))
}

/// The upgrade strategies' record of what the Pod was built from (see
/// [`wasmray_api::template_hash`]): the cluster's recreate hash and the group's template hash.
/// Written over any value a template carries under the same keys.
fn stamp_hashes(mut pod: Pod, spec: &wasmray_api::RayClusterSpec, template: String) -> Pod {
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(template_hash::RECREATE_HASH_ANNOTATION.into(), template_hash::recreate_hash(spec));
    annotations.insert(template_hash::TEMPLATE_HASH_ANNOTATION.into(), template);
    pod
}

/// The template's metadata and spec, checked to have a Ray container.
fn split_template(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    group: &str,
) -> Result<(ObjectMeta, PodSpec), BuildError> {
    let spec = template.spec.clone().unwrap_or_default();
    if spec.containers.is_empty() {
        return Err(BuildError::NoContainers {
            group: group.to_owned(),
        });
    }
    Ok((template.metadata.clone().unwrap_or_default(), spec))
}

/// Template labels, then group labels, then ours; users may override ours except node type, group
/// and cluster, which selectors and the controller itself depend on.
pub(super) fn pod_labels(
    node: NodeType,
    cluster: &str,
    group: &str,
    template: Option<BTreeMap<String, String>>,
    group_labels: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut merged = template.unwrap_or_default();
    merged.extend(
        group_labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mut result = BTreeMap::from([
        (labels::IS_RAY_NODE.to_owned(), "yes".to_owned()),
        (labels::CLUSTER.to_owned(), cluster.to_owned()),
        (labels::NODE_TYPE.to_owned(), node.as_str().to_owned()),
        (labels::GROUP.to_owned(), group.to_owned()),
        (
            labels::IDENTIFIER.to_owned(),
            names::identifier(cluster, node.as_str()),
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
    result.extend(
        merged
            .into_iter()
            .filter(|(k, _)| !labels::PROTECTED.contains(&k.as_str())),
    );
    result
}

/// `ray.io/overwrite-container-cmd: "true"` on the RayCluster is copied onto the Pod.
fn copy_overwrite_annotation(facts: &ClusterFacts<'_>, meta: &mut ObjectMeta) {
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    if super::annotation(facts.cluster, labels::OVERWRITE_CONTAINER_CMD)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        annotations.insert(labels::OVERWRITE_CONTAINER_CMD.into(), "true".into());
    }
}

/// GCS fault tolerance (§5): the head's `ray.io/ft-enabled` annotation, the storage namespace,
/// Redis address and credentials; the workers' longer GCS reconnect timeout.
fn configure_fault_tolerance(
    facts: &ClusterFacts<'_>,
    node: NodeType,
    meta: &mut ObjectMeta,
    container: &mut Container,
    params: &mut StartParams,
) {
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    if node == NodeType::Head {
        annotations.insert(labels::FT_ENABLED.into(), facts.ft_enabled.to_string());
    }
    if !facts.ft_enabled {
        return;
    }
    if node == NodeType::Worker {
        // Workers outlive a GCS restart only if they wait longer than Ray's 60 s default.
        push_env_if_absent(
            container,
            value_env("RAY_gcs_rpc_server_reconnect_timeout_s", "600"),
        );
        return;
    }
    let options = facts.cluster.spec.gcs_fault_tolerance_options.as_ref();
    let storage_namespace = options
        .and_then(|o| o.external_storage_namespace.clone())
        .filter(|ns| !ns.is_empty())
        .or_else(|| {
            super::annotation(facts.cluster, labels::EXTERNAL_STORAGE_NAMESPACE).map(str::to_owned)
        })
        .unwrap_or_else(|| facts.owner.uid.clone());
    annotations.insert(
        labels::EXTERNAL_STORAGE_NAMESPACE.into(),
        storage_namespace.clone(),
    );
    push_env_if_absent(
        container,
        value_env("RAY_external_storage_namespace", &storage_namespace),
    );

    match options {
        Some(options) => {
            push_env(
                container,
                value_env("RAY_REDIS_ADDRESS", &options.redis_address),
            );
            // rayStartParams refer to the env vars, so the secrets never show in the command line.
            if let Some(username) = &options.redis_username {
                params.insert("redis-username".into(), "$REDIS_USERNAME".into());
                push_env(container, credential_env("REDIS_USERNAME", username));
            }
            if let Some(password) = &options.redis_password {
                params.insert("redis-password".into(), "$REDIS_PASSWORD".into());
                push_env(container, credential_env("REDIS_PASSWORD", password));
            }
        }
        None => {
            // The legacy annotation with a literal password: export it so the cleanup Job can log in.
            if let Some(password) = params.get("redis-password").cloned() {
                push_env_if_absent(container, value_env("REDIS_PASSWORD", &password));
            }
        }
    }
}

fn credential_env(name: &str, credential: &wasmray_api::RedisCredential) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: credential.value.clone(),
        value_from: credential.value_from.clone(),
    }
}

/// `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` from the cluster's Secret, on the Ray container and
/// on `wait-gcs-ready`.
fn configure_token_auth(cluster: &str, spec: &mut PodSpec) {
    add_token_auth_env(cluster, &mut spec.containers[0]);
    for init in spec
        .init_containers
        .iter_mut()
        .flatten()
        .filter(|c| c.name == WAIT_GCS_READY)
    {
        add_token_auth_env(cluster, init);
    }
}

pub(super) fn add_token_auth_env(cluster: &str, container: &mut Container) {
    push_env(container, value_env("RAY_AUTH_MODE", "token"));
    push_env(
        container,
        EnvVar {
            name: "RAY_AUTH_TOKEN".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: names::check_name(cluster),
                    key: AUTH_SECRET_KEY.into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
}

/// The `ray kuberay-autoscaler` sidecar, with `autoscalerOptions` applied.
fn autoscaler_container(facts: &ClusterFacts<'_>, ray: &Container) -> Container {
    let both = |cpu: &str, memory: &str| {
        Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.into())),
            ("memory".to_owned(), Quantity(memory.into())),
        ]))
    };
    let mut container = Container {
        name: AUTOSCALER_CONTAINER.into(),
        image: ray.image.clone(),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vec![
            field_env("RAY_CLUSTER_NAME", &format!("metadata.labels['{}']", labels::CLUSTER)),
            field_env("RAY_CLUSTER_NAMESPACE", "metadata.namespace"),
            field_env("RAY_HEAD_POD_NAME", "metadata.name"),
            value_env("KUBERAY_CRD_VER", "v1"),
        ]),
        command: Some(bash_command(false)),
        args: Some(vec![
            "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) --cluster-namespace $(RAY_CLUSTER_NAMESPACE)".into(),
        ]),
        resources: Some(ResourceRequirements { limits: both("500m", "512Mi"), requests: both("500m", "512Mi"), ..Default::default() }),
        ..Default::default()
    };
    if let Some(options) = &facts.cluster.spec.autoscaler_options {
        if let Some(resources) = &options.resources {
            container.resources = Some(resources.clone());
        }
        if let Some(image) = &options.image {
            container.image = Some(image.clone());
        }
        if let Some(policy) = &options.image_pull_policy {
            container.image_pull_policy = Some(policy.clone());
        }
        extend_non_empty(&mut container.env, options.env.as_ref());
        extend_non_empty(&mut container.env_from, options.env_from.as_ref());
        extend_non_empty(&mut container.volume_mounts, options.volume_mounts.as_ref());
        if let Some(security) = &options.security_context {
            container.security_context = Some(security.clone());
        }
    }
    if facts.auth {
        add_token_auth_env(facts.name, &mut container);
    }
    container
}

/// Appends a non-empty list, leaving an unset list unset when there is nothing to add.
fn extend_non_empty<T: Clone>(target: &mut Option<Vec<T>>, extra: Option<&Vec<T>>) {
    if let Some(extra) = extra.filter(|e| !e.is_empty()) {
        target
            .get_or_insert_with(Vec::new)
            .extend(extra.iter().cloned());
    }
}

/// The `wait-gcs-ready` init container: polls `ray health-check` every 5 s, quietly for the first
/// two minutes. It copies the Ray container's env and mounts so TLS settings apply to it too.
fn wait_gcs_ready(facts: &ClusterFacts<'_>, ray: &Container, ctx: &BuildContext) -> Container {
    let address = facts.head_address();
    let script = format!(
        "\n\t\t\t\t\tSECONDS=0\n\t\t\t\t\twhile true; do\n\t\t\t\t\t\tif (( SECONDS <= 120 )); then\n\t\t\t\t\t\t\tif ray health-check --address {address} > /dev/null 2>&1; then\n\t\t\t\t\t\t\t\techo \"GCS is ready.\"\n\t\t\t\t\t\t\t\tbreak\n\t\t\t\t\t\t\tfi\n\t\t\t\t\t\t\techo \"$SECONDS seconds elapsed: Waiting for GCS to be ready.\"\n\t\t\t\t\t\telse\n\t\t\t\t\t\t\tif ray health-check --address {address}; then\n\t\t\t\t\t\t\t\techo \"GCS is ready. Any error messages above can be safely ignored.\"\n\t\t\t\t\t\t\t\tbreak\n\t\t\t\t\t\t\tfi\n\t\t\t\t\t\t\techo \"$SECONDS seconds elapsed: Still waiting for GCS to be ready. For troubleshooting, refer to the FAQ at https://docs.ray.io/en/master/cluster/kubernetes/troubleshooting.html.\"\n\t\t\t\t\t\tfi\n\t\t\t\t\t\tsleep 5\n\t\t\t\t\tdone\n\t\t\t\t"
    );
    // Fixed resources: a namespace ResourceQuota needs them, and GKE Autopilot refuses GPU init containers.
    let fixed = || {
        Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("200m".into())),
            ("memory".to_owned(), Quantity("256Mi".into())),
        ]))
    };
    Container {
        name: WAIT_GCS_READY.into(),
        image: ray.image.clone(),
        image_pull_policy: ray.image_pull_policy.clone(),
        command: Some(bash_command(ctx.enable_login_shell)),
        args: Some(vec![script]),
        security_context: ray.security_context.clone(),
        env: ray.env.clone(),
        volume_mounts: ray.volume_mounts.clone(),
        resources: Some(ResourceRequirements {
            limits: fixed(),
            requests: fixed(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Adds `metrics: 8080` unless the Ray container already names a `metrics` port.
fn add_metrics_port(container: &mut Container) {
    let ports = container.ports.get_or_insert_with(Vec::new);
    if !ports.iter().any(|p| p.name.as_deref() == Some("metrics")) {
        ports.push(ContainerPort {
            name: Some("metrics".into()),
            container_port: METRICS_PORT,
            ..Default::default()
        });
    }
}

/// What KubeRay's `BuildPod` does after the template is prepared: serve label, volumes, the
/// command, env, probes, owner reference.
fn finish_pod(
    facts: &ClusterFacts<'_>,
    node: NodeType,
    group: &str,
    mut meta: ObjectMeta,
    mut spec: PodSpec,
    mut params: StartParams,
    ctx: &BuildContext,
) -> Result<Pod, BuildError> {
    if facts.created_by == CreatedBy::RayService {
        // Workers serve once their readiness probe passes; the RayService controller flips the head.
        let serving = if node == NodeType::Head {
            "false"
        } else {
            "true"
        };
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(labels::SERVE.into(), serving.into());
    }

    add_empty_dir(&mut spec, 0, SHARED_MEMORY_VOLUME, SHARED_MEMORY_PATH, true);
    if node == NodeType::Head && facts.autoscaling {
        // The autoscaler writes event logs the head's dashboard reads.
        add_empty_dir(&mut spec, 0, RAY_LOGS_VOLUME, RAY_LOGS_PATH, false);
        if let Some(index) = spec
            .containers
            .iter()
            .position(|c| c.name == AUTOSCALER_CONTAINER)
        {
            add_empty_dir(&mut spec, index, RAY_LOGS_VOLUME, RAY_LOGS_PATH, false);
        }
    }

    start::infer_from_container(&mut params, spec.containers[0].resources.as_ref(), group)?;
    let ray_start = start::render(node, &params);
    let overwrite = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::OVERWRITE_CONTAINER_CMD))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let ray = &mut spec.containers[0];
    let user_command: String = ray
        .command
        .iter()
        .chain(ray.args.iter())
        .flatten()
        .map(|part| format!(" {part} "))
        .collect();
    if !overwrite && !user_command.contains("ray start") {
        let generated = format!("ulimit -n 65536; {ray_start}");
        ray.command = Some(bash_command(ctx.enable_login_shell));
        // `ray start --block` never returns, so the user's command must run first.
        let args = if user_command.is_empty() {
            generated
        } else {
            format!("{user_command} && {generated}")
        };
        ray.args = Some(vec![args]);
    }

    let worker_ip = names::head_service_name(
        facts.name,
        facts.cluster.spec.head_group_spec.custom_head_service_name(),
    );
    for init in spec.init_containers.iter_mut().flatten() {
        push_env(init, value_env("FQ_RAY_IP", &facts.fqdn));
        push_env(init, value_env("RAY_IP", &worker_ip));
    }
    ray_container_env(
        facts,
        node,
        &mut spec.containers[0],
        &ray_start,
        &worker_ip,
        ctx,
    );

    if ctx.enable_probes_injection {
        add_probes(facts, node, &mut spec.containers[0], &params, ctx);
    }

    meta.owner_references = Some(vec![facts.owner.clone()]);
    Ok(Pod {
        metadata: meta,
        spec: Some(spec),
        status: None,
    })
}

/// Mounts an emptyDir at `path` in container `index`, unless something is mounted there already.
/// The `/dev/shm` one lives in memory and is capped at the Ray container's memory.
fn add_empty_dir(spec: &mut PodSpec, index: usize, volume: &str, path: &str, in_memory: bool) {
    let container = &spec.containers[index];
    if container
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == path)
    {
        return;
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == volume) {
        let size_limit = if in_memory {
            memory_limit_or_request(container)
        } else {
            None
        };
        volumes.push(Volume {
            name: volume.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: in_memory.then(|| "Memory".into()),
                size_limit,
            }),
            ..Default::default()
        });
    }
    spec.containers[index]
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: volume.into(),
            mount_path: path.into(),
            ..Default::default()
        });
}

fn memory_limit_or_request(container: &Container) -> Option<Quantity> {
    let resources = container.resources.as_ref()?;
    let pick = |list: &Option<BTreeMap<String, Quantity>>| {
        list.as_ref().and_then(|l| l.get("memory")).cloned()
    };
    pick(&resources.limits).or_else(|| pick(&resources.requests))
}

/// The env KubeRay injects into the Ray container (§2.6), after whatever the template has.
fn ray_container_env(
    facts: &ClusterFacts<'_>,
    node: NodeType,
    container: &mut Container,
    ray_start: &str,
    worker_ip: &str,
    ctx: &BuildContext,
) {
    container.env.get_or_insert_with(Vec::new);
    for default in &ctx.default_container_envs {
        push_env_if_absent(container, default.clone());
    }
    let ip = match node {
        NodeType::Head => "127.0.0.1".to_owned(),
        NodeType::Worker => {
            push_env(container, value_env("FQ_RAY_IP", &facts.fqdn));
            push_env(container, value_env("RAY_IP", worker_ip));
            facts.fqdn.clone()
        }
    };
    push_env(
        container,
        field_env(
            "RAY_CLUSTER_NAME",
            &format!("metadata.labels['{}']", labels::CLUSTER),
        ),
    );
    push_env(
        container,
        field_env("RAY_CLOUD_INSTANCE_ID", "metadata.name"),
    );
    push_env(
        container,
        field_env(
            "RAY_NODE_TYPE_NAME",
            &format!("metadata.labels['{}']", labels::GROUP),
        ),
    );
    push_env(container, value_env("KUBERAY_GEN_RAY_START_CMD", ray_start));
    push_env_if_absent(container, value_env("RAY_PORT", &facts.head_port));
    if facts.created_by == CreatedBy::RayService {
        // Faster failure detection keeps Serve's SLA when a node dies.
        push_env_if_absent(
            container,
            value_env("RAY_timeout_ms_task_wait_for_death_info", "0"),
        );
        push_env_if_absent(
            container,
            value_env("RAY_gcs_server_request_timeout_seconds", "5"),
        );
        push_env_if_absent(container, value_env("RAY_SERVE_KV_TIMEOUT_S", "5"));
    }
    push_env_if_absent(
        container,
        value_env("RAY_ADDRESS", &format!("{ip}:{}", facts.head_port)),
    );
    push_env_if_absent(container, value_env("RAY_USAGE_STATS_KUBERAY_IN_USE", "1"));
    if node == NodeType::Head {
        let tags = format!(
            "kuberay_version={};kuberay_crd={}",
            ctx.kuberay_version,
            facts.created_by.as_str()
        );
        push_env(container, value_env("RAY_USAGE_STATS_EXTRA_TAGS", &tags));
    }
    push_env_if_absent(
        container,
        value_env("RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "1"),
    );
}

/// Liveness and readiness probes, only where the user set none (§2.8).
fn add_probes(
    facts: &ClusterFacts<'_>,
    node: NodeType,
    container: &mut Container,
    params: &StartParams,
    ctx: &BuildContext,
) {
    let port = |key: &str, default: i32| {
        params
            .get(key)
            .and_then(|p| p.parse::<i32>().ok())
            .unwrap_or(default)
    };
    let agent_port = port("dashboard-agent-listen-port", AGENT_PORT);
    let http = ctx.http_probes_for_new_ray
        && super::ray_version(facts.cluster).is_some_and(|v| v >= (2, 53, 0));
    let wget = |timeout: i32, port: i32, path: &str| {
        format!("wget --tries 1 -T {timeout} -q -O- http://localhost:{port}{path} | grep success")
    };
    let mut checks = vec![wget(2, agent_port, "/api/local_raylet_healthz")];
    if node == NodeType::Head {
        checks.push(wget(
            10,
            port("dashboard-port", DASHBOARD_PORT),
            "/api/gcs_healthz",
        ));
    }
    let exec = |checks: &[String]| ExecAction {
        command: Some(vec!["bash".into(), "-c".into(), checks.join(" && ")]),
    };
    let http_get = HTTPGetAction {
        path: Some("/api/healthz".into()),
        port: IntOrString::Int(agent_port),
        ..Default::default()
    };
    let head_timeout = if node == NodeType::Head { 5 } else { 2 };
    let probe = |initial_delay: i32, failure_threshold: i32| Probe {
        initial_delay_seconds: Some(initial_delay),
        timeout_seconds: Some(head_timeout),
        period_seconds: Some(5),
        success_threshold: Some(1),
        failure_threshold: Some(failure_threshold),
        exec: (!http).then(|| exec(&checks)),
        http_get: http.then(|| http_get.clone()),
        ..Default::default()
    };

    if container.liveness_probe.is_none() {
        container.liveness_probe = Some(probe(30, 120));
    }
    if container.readiness_probe.is_none() {
        let mut readiness = probe(10, 10);
        if facts.created_by == CreatedBy::RayService && node == NodeType::Worker {
            // A serving worker is ready only when its Serve proxy answers; the head is checked by the controller.
            let serve_port = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some("serve"))
                .map_or(SERVE_PORT, |p| p.container_port);
            let mut serve_checks = checks.clone();
            serve_checks.push(wget(10, serve_port, "/-/healthz"));
            readiness.failure_threshold = Some(1);
            readiness.http_get = None;
            readiness.exec = Some(exec(&serve_checks));
        }
        container.readiness_probe = Some(readiness);
    }
}

/// `/bin/bash -c --`, or `-cl` for a login shell.
fn bash_command(login: bool) -> Vec<String> {
    vec![
        "/bin/bash".into(),
        if login { "-cl".into() } else { "-c".into() },
        "--".into(),
    ]
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..Default::default()
        }),
    }
}

fn push_env(container: &mut Container, env: EnvVar) {
    container.env.get_or_insert_with(Vec::new).push(env);
}

fn push_env_if_absent(container: &mut Container, env: EnvVar) {
    let list = container.env.get_or_insert_with(Vec::new);
    if !list.iter().any(|e| e.name == env.name) {
        list.push(env);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::{
        auth_token, auth_token_secret, autoscaler_rbac, head_service, headless_worker_service,
        serve_service,
    };

    /// A small cluster: a head with 1 CPU / 2Gi and one GPU worker group.
    const CLUSTER: &str = "
metadata: {name: demo, namespace: ml, uid: uid-1}
spec:
  rayVersion: '2.46.0'
  headGroupSpec:
    rayStartParams: {}
    template:
      metadata:
        labels: {team: vision, ray.io/cluster: not-demo, ray.io/is-ray-node: maybe}
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.46.0
          resources: {limits: {cpu: '1', memory: 2Gi}}
  workerGroupSpecs:
  - groupName: gpu
    replicas: 1
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.46.0-gpu
          resources: {limits: {cpu: '4', memory: 16Gi, nvidia.com/gpu: '1'}}
";

    fn cluster() -> RayCluster {
        serde_yaml::from_str(CLUSTER).unwrap()
    }

    fn with(edit: impl FnOnce(&mut RayCluster)) -> RayCluster {
        let mut c = cluster();
        edit(&mut c);
        c
    }

    const SLOT: WorkerSlot<'static> = WorkerSlot {
        suffix: "abcde",
        replica_index: 2,
        host_index: 1,
        replica_name: "gpu-qwert",
    };

    /// The head group's Pod spec, for fixtures that edit it.
    fn head_spec(c: &mut RayCluster) -> &mut PodSpec {
        c.spec
            .head_group_spec
            .template
            .spec
            .as_mut()
            .expect("the fixture has a head Pod spec")
    }

    fn head(c: &RayCluster) -> Pod {
        head_pod(c, "abcde", &BuildContext::default()).unwrap()
    }

    fn worker(c: &RayCluster) -> Pod {
        worker_pod(c, 0, &SLOT, &BuildContext::default()).unwrap()
    }

    fn ray(pod: &Pod) -> &Container {
        &pod.spec.as_ref().unwrap().containers[0]
    }

    fn env<'a>(container: &'a Container, name: &str) -> Option<&'a EnvVar> {
        container.env.iter().flatten().find(|e| e.name == name)
    }

    fn env_value(container: &Container, name: &str) -> Option<String> {
        env(container, name).and_then(|e| e.value.clone())
    }

    fn label(pod: &Pod, key: &str) -> Option<String> {
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
    }

    fn annotation(pod: &Pod, key: &str) -> Option<String> {
        pod.metadata
            .annotations
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
    }

    fn start_command(pod: &Pod) -> String {
        env_value(ray(pod), "KUBERAY_GEN_RAY_START_CMD").unwrap()
    }

    #[test]
    fn the_head_is_named_from_the_cluster_and_the_suffix() {
        let pod = head(&cluster());
        assert_eq!(pod.metadata.name.as_deref(), Some("demo-head-abcde"));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("demo-head-"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ml"));
        let ctx = BuildContext {
            deterministic_head_pod_name: true,
            ..Default::default()
        };
        let pod = head_pod(&cluster(), "abcde", &ctx).unwrap();
        assert_eq!(
            (
                pod.metadata.name.as_deref(),
                pod.metadata.generate_name.as_deref()
            ),
            (Some("demo-head"), None)
        );
    }

    #[test]
    fn a_worker_is_named_from_cluster_group_and_suffix() {
        let pod = worker(&cluster());
        assert_eq!(pod.metadata.name.as_deref(), Some("demo-gpu-worker-abcde"));
    }

    #[test]
    fn every_pod_is_owned_by_its_cluster() {
        for pod in [head(&cluster()), worker(&cluster())] {
            let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
                ("RayCluster", "demo", "uid-1")
            );
            assert_eq!(
                (owner.controller, owner.block_owner_deletion),
                (Some(true), Some(true))
            );
        }
    }

    #[test]
    fn users_may_override_our_labels_except_cluster_group_and_node_type() {
        let pod = head(&with(|c| {
            c.spec.head_group_spec.labels = Some(
                [
                    ("ray.io/group".to_owned(), "mine".to_owned()),
                    ("zone".to_owned(), "a".to_owned()),
                ]
                .into(),
            );
        }));
        assert_eq!(label(&pod, "ray.io/cluster").as_deref(), Some("demo"));
        assert_eq!(label(&pod, "ray.io/group").as_deref(), Some("headgroup"));
        assert_eq!(label(&pod, "ray.io/node-type").as_deref(), Some("head"));
        assert_eq!(label(&pod, "ray.io/is-ray-node").as_deref(), Some("maybe"));
        assert_eq!(label(&pod, "team").as_deref(), Some("vision"));
        // Group labels become Pod labels and Ray node labels.
        assert_eq!(label(&pod, "zone").as_deref(), Some("a"));
        assert!(start_command(&pod).contains(" --labels=ray.io/group=mine,zone=a "));
    }

    #[test]
    fn group_labels_win_over_template_labels() {
        let pod = head(&with(|c| {
            c.spec.head_group_spec.labels = Some([("team".to_owned(), "nlp".to_owned())].into())
        }));
        assert_eq!(label(&pod, "team").as_deref(), Some("nlp"));
    }

    #[test]
    fn the_ray_start_command_comes_from_params_and_resources() {
        let pod = head(&cluster());
        assert_eq!(
            start_command(&pod),
            "ray start --head  --block  --dashboard-agent-listen-port=52365  --dashboard-host=0.0.0.0  --memory=2147483648  --metrics-export-port=8080  --num-cpus=1 "
        );
        assert_eq!(
            ray(&pod).command.as_deref(),
            Some(&["/bin/bash".to_owned(), "-c".to_owned(), "--".to_owned()][..])
        );
        assert_eq!(
            ray(&pod).args.as_ref().unwrap()[0],
            format!("ulimit -n 65536; {}", start_command(&pod))
        );
        let worker = worker(&cluster());
        assert_eq!(
            start_command(&worker),
            "ray start  --address=demo-head-svc.ml.svc.cluster.local:6379  --block  --dashboard-agent-listen-port=52365  --memory=17179869184  --metrics-export-port=8080  --num-cpus=4  --num-gpus=1 "
        );
    }

    #[test]
    fn a_user_command_runs_before_ray_start_and_one_with_ray_start_is_left_alone() {
        let pod = head(&with(|c| {
            let ray = &mut c
                .spec
                .head_group_spec
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0];
            ray.command = Some(vec!["echo".into()]);
            ray.args = Some(vec!["hi".into()]);
        }));
        assert!(
            ray(&pod).args.as_ref().unwrap()[0]
                .starts_with(" echo  hi  && ulimit -n 65536; ray start --head")
        );

        let own = vec!["ray start --head --block".to_owned()];
        let pod = head(&with(|c| {
            head_spec(c).containers[0].args = Some(own.clone())
        }));
        assert_eq!(ray(&pod).args.as_ref(), Some(&own));
        assert!(ray(&pod).command.is_none());
    }

    #[test]
    fn the_overwrite_annotation_keeps_the_user_command() {
        let pod = head(&with(|c| {
            c.metadata.annotations = Some(
                [(
                    "ray.io/overwrite-container-cmd".to_owned(),
                    "TRUE".to_owned(),
                )]
                .into(),
            );
            head_spec(c).containers[0].command = Some(vec!["my-entrypoint".into()]);
        }));
        assert_eq!(
            ray(&pod).command.as_deref(),
            Some(&["my-entrypoint".to_owned()][..])
        );
        assert_eq!(
            annotation(&pod, "ray.io/overwrite-container-cmd").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn a_login_shell_is_a_context_switch() {
        let ctx = BuildContext {
            enable_login_shell: true,
            ..Default::default()
        };
        let pod = worker_pod(&cluster(), 0, &SLOT, &ctx).unwrap();
        assert_eq!(ray(&pod).command.as_ref().unwrap()[1], "-cl");
        assert_eq!(
            pod.spec.unwrap().init_containers.unwrap()[0]
                .command
                .as_ref()
                .unwrap()[1],
            "-cl"
        );
    }

    #[test]
    fn injected_env_follows_kuberay_and_user_values_win_where_kuberay_lets_them() {
        let pod = worker(&with(|c| {
            let ray = &mut c.spec.worker_group_specs.as_mut().unwrap()[0]
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0];
            ray.env = Some(vec![value_env("RAY_ADDRESS", "elsewhere:1")]);
        }));
        let names: Vec<&str> = ray(&pod)
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "RAY_ADDRESS",
                "FQ_RAY_IP",
                "RAY_IP",
                "RAY_CLUSTER_NAME",
                "RAY_CLOUD_INSTANCE_ID",
                "RAY_NODE_TYPE_NAME",
                "KUBERAY_GEN_RAY_START_CMD",
                "RAY_PORT",
                "RAY_USAGE_STATS_KUBERAY_IN_USE",
                "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE",
            ]
        );
        assert_eq!(
            env_value(ray(&pod), "RAY_ADDRESS").as_deref(),
            Some("elsewhere:1")
        );
        assert_eq!(
            env_value(ray(&pod), "RAY_IP").as_deref(),
            Some("demo-head-svc")
        );
        assert_eq!(
            env_value(ray(&head(&cluster())), "RAY_ADDRESS").as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(
            env_value(ray(&head(&cluster())), "RAY_USAGE_STATS_EXTRA_TAGS").as_deref(),
            Some("kuberay_version=v1.5.2;kuberay_crd=RayCluster")
        );
    }

    #[test]
    fn a_custom_head_port_reaches_the_workers() {
        let pod = worker(&with(|c| {
            c.spec.head_group_spec.ray_start_params =
                Some([("port".to_owned(), "6380".to_owned())].into())
        }));
        assert_eq!(env_value(ray(&pod), "RAY_PORT").as_deref(), Some("6380"));
        assert!(start_command(&pod).contains("--address=demo-head-svc.ml.svc.cluster.local:6380 "));
    }

    #[test]
    fn shared_memory_is_sized_by_the_memory_limit_unless_the_user_mounted_dev_shm() {
        let pod = head(&cluster());
        let volume = &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        let empty_dir = volume.empty_dir.as_ref().unwrap();
        assert_eq!(
            (volume.name.as_str(), empty_dir.medium.as_deref()),
            ("shared-mem", Some("Memory"))
        );
        assert_eq!(empty_dir.size_limit, Some(Quantity("2Gi".into())));
        assert_eq!(
            ray(&pod).volume_mounts.as_ref().unwrap()[0].mount_path,
            "/dev/shm"
        );

        let pod = head(&with(|c| {
            let ray = &mut c
                .spec
                .head_group_spec
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0];
            ray.volume_mounts = Some(vec![VolumeMount {
                name: "mine".into(),
                mount_path: "/dev/shm".into(),
                ..Default::default()
            }]);
        }));
        assert!(pod.spec.as_ref().unwrap().volumes.is_none());
        assert_eq!(ray(&pod).volume_mounts.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn a_metrics_port_is_added_unless_one_is_named_metrics() {
        let ports = ray(&head(&cluster())).ports.clone().unwrap();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].container_port),
            (Some("metrics"), 8080)
        );
        let pod = head(&with(|c| {
            head_spec(c).containers[0].ports = Some(vec![ContainerPort {
                name: Some("metrics".into()),
                container_port: 9090,
                ..Default::default()
            }]);
        }));
        assert_eq!(ray(&pod).ports.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn workers_wait_for_the_gcs_in_an_init_container_with_fixed_resources() {
        let pod = worker(&cluster());
        let spec = pod.spec.as_ref().unwrap();
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "wait-gcs-ready");
        assert_eq!(init.image.as_deref(), Some("rayproject/ray:2.46.0-gpu"));
        assert!(init.args.as_ref().unwrap()[0].contains(
            "ray health-check --address demo-head-svc.ml.svc.cluster.local:6379 > /dev/null 2>&1"
        ));
        let limits = init.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(
            (limits["cpu"].0.as_str(), limits["memory"].0.as_str()),
            ("200m", "256Mi")
        );
        assert_eq!(
            env_value(init, "FQ_RAY_IP").as_deref(),
            Some("demo-head-svc.ml.svc.cluster.local")
        );

        let ctx = BuildContext {
            enable_init_container_injection: false,
            ..Default::default()
        };
        assert!(
            worker_pod(&cluster(), 0, &SLOT, &ctx)
                .unwrap()
                .spec
                .unwrap()
                .init_containers
                .is_none()
        );
    }

    #[test]
    fn probes_are_exec_wget_checks_before_ray_2_53() {
        let head = head(&cluster());
        let liveness = ray(&head).liveness_probe.clone().unwrap();
        assert_eq!(
            liveness.exec.unwrap().command.unwrap()[2],
            "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success && wget --tries 1 -T 10 -q -O- http://localhost:8265/api/gcs_healthz | grep success"
        );
        assert_eq!(
            (
                liveness.initial_delay_seconds,
                liveness.timeout_seconds,
                liveness.failure_threshold
            ),
            (Some(30), Some(5), Some(120))
        );
        let readiness = ray(&worker(&cluster())).readiness_probe.clone().unwrap();
        assert_eq!(
            (
                readiness.initial_delay_seconds,
                readiness.timeout_seconds,
                readiness.failure_threshold
            ),
            (Some(10), Some(2), Some(10))
        );
        assert_eq!(
            readiness.exec.unwrap().command.unwrap()[2],
            "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success"
        );
    }

    #[test]
    fn probes_are_http_gets_from_ray_2_53() {
        let pod = head(&with(|c| {
            c.spec.ray_version = Some("2.53.0".into());
            c.spec.head_group_spec.ray_start_params =
                Some([("dashboard-agent-listen-port".to_owned(), "52400".to_owned())].into());
        }));
        for probe in [
            ray(&pod).liveness_probe.clone().unwrap(),
            ray(&pod).readiness_probe.clone().unwrap(),
        ] {
            assert!(probe.exec.is_none());
            let get = probe.http_get.unwrap();
            assert_eq!(
                (get.path.as_deref(), get.port),
                (Some("/api/healthz"), IntOrString::Int(52400))
            );
        }
        // No rayVersion: the image tag tells.
        let pod = worker(&with(|c| {
            c.spec.ray_version = None;
            head_spec(c).containers[0].image = Some("rayproject/ray:2.54.0-py311".into());
        }));
        assert!(
            ray(&pod)
                .liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .is_some()
        );
        // A nightly image says nothing, so the exec probes stay.
        let pod = head(&with(|c| {
            c.spec.ray_version = None;
            head_spec(c).containers[0].image = Some("rayproject/ray:nightly".into());
        }));
        assert!(ray(&pod).liveness_probe.as_ref().unwrap().exec.is_some());
    }

    #[test]
    fn exec_probes_follow_custom_ports() {
        let pod = head(&with(|c| {
            c.spec.head_group_spec.ray_start_params = Some(
                [
                    ("dashboard-port".to_owned(), "8300".to_owned()),
                    ("dashboard-agent-listen-port".to_owned(), "52400".to_owned()),
                ]
                .into(),
            );
        }));
        let command = ray(&pod)
            .liveness_probe
            .clone()
            .unwrap()
            .exec
            .unwrap()
            .command
            .unwrap()[2]
            .clone();
        assert!(
            command.contains("localhost:52400/api/local_raylet_healthz")
                && command.contains("localhost:8300/api/gcs_healthz")
        );
    }

    #[test]
    fn user_probes_are_kept_and_injection_can_be_switched_off() {
        let mine = Probe {
            period_seconds: Some(60),
            ..Default::default()
        };
        let pod = head(&with(|c| {
            head_spec(c).containers[0].liveness_probe = Some(mine.clone())
        }));
        assert_eq!(ray(&pod).liveness_probe.as_ref(), Some(&mine));
        assert!(ray(&pod).readiness_probe.is_some());
        let ctx = BuildContext {
            enable_probes_injection: false,
            ..Default::default()
        };
        let pod = head_pod(&cluster(), "x", &ctx).unwrap();
        assert!(ray(&pod).liveness_probe.is_none() && ray(&pod).readiness_probe.is_none());
    }

    fn ray_service_cluster() -> RayCluster {
        with(|c| {
            c.metadata.labels = Some(
                [(
                    "ray.io/originated-from-crd".to_owned(),
                    "RayService".to_owned(),
                )]
                .into(),
            )
        })
    }

    #[test]
    fn ray_service_workers_are_ready_only_when_serve_answers() {
        let pod = worker(&ray_service_cluster());
        let readiness = ray(&pod).readiness_probe.clone().unwrap();
        assert_eq!(readiness.failure_threshold, Some(1));
        assert!(readiness.exec.unwrap().command.unwrap()[2].ends_with(
            "&& wget --tries 1 -T 10 -q -O- http://localhost:8000/-/healthz | grep success"
        ));
        assert_eq!(label(&pod, "ray.io/serve").as_deref(), Some("true"));
        assert_eq!(
            label(&head(&ray_service_cluster()), "ray.io/serve").as_deref(),
            Some("false")
        );
        assert_eq!(
            env_value(ray(&pod), "RAY_timeout_ms_task_wait_for_death_info").as_deref(),
            Some("0")
        );
        assert_eq!(
            env_value(ray(&pod), "RAY_SERVE_KV_TIMEOUT_S").as_deref(),
            Some("5")
        );
    }

    #[test]
    fn multi_host_labels_come_with_the_feature_gate() {
        let multi = with(|c| c.spec.worker_group_specs.as_mut().unwrap()[0].num_of_hosts = Some(4));
        let ctx = BuildContext {
            multi_host_indexing: true,
            ..Default::default()
        };
        let pod = worker_pod(&multi, 0, &SLOT, &ctx).unwrap();
        assert_eq!(
            label(&pod, "ray.io/worker-group-replica-index").as_deref(),
            Some("2")
        );
        assert_eq!(
            label(&pod, "ray.io/worker-group-replica-name").as_deref(),
            Some("gpu-qwert")
        );
        assert_eq!(
            label(&pod, "ray.io/replica-host-index").as_deref(),
            Some("1")
        );
        assert!(label(&worker(&multi), "ray.io/worker-group-replica-index").is_none());
        assert!(
            headless_worker_service(&multi, &BuildContext::default())
                .unwrap()
                .is_some()
        );
        assert!(
            headless_worker_service(&cluster(), &BuildContext::default())
                .unwrap()
                .is_none()
        );
    }

    fn autoscaling(version: Option<&str>) -> RayCluster {
        with(|c| {
            c.spec.enable_in_tree_autoscaling = Some(true);
            c.spec.autoscaler_options = Some(
                serde_yaml::from_str(&format!(
                    "{{version: {}, env: [{{name: EXTRA, value: '1'}}], image: my/autoscaler:1}}",
                    version.unwrap_or("null")
                ))
                .unwrap(),
            );
        })
    }

    #[test]
    fn autoscaling_adds_the_sidecar_its_account_and_a_shared_log_volume() {
        let pod = head(&autoscaling(None));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some("demo"));
        let sidecar = &spec.containers[1];
        assert_eq!(
            (sidecar.name.as_str(), sidecar.image.as_deref()),
            ("autoscaler", Some("my/autoscaler:1"))
        );
        let names: Vec<&str> = sidecar
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "RAY_CLUSTER_NAME",
                "RAY_CLUSTER_NAMESPACE",
                "RAY_HEAD_POD_NAME",
                "KUBERAY_CRD_VER",
                "EXTRA"
            ]
        );
        assert!(
            sidecar
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/tmp/ray")
        );
        assert!(
            ray(&pod)
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/tmp/ray")
        );
        assert!(start_command(&pod).contains(" --no-monitor "));
        assert!(spec.restart_policy.is_none());

        let rbac = autoscaler_rbac(&autoscaling(None), &BuildContext::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            rbac.service_account.unwrap().metadata.name.as_deref(),
            Some("demo")
        );
        assert_eq!(rbac.role.rules.as_ref().unwrap().len(), 3);
        assert_eq!(rbac.role_binding.subjects.as_ref().unwrap()[0].name, "demo");
        assert!(
            autoscaler_rbac(&cluster(), &BuildContext::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_user_named_service_account_is_not_created_but_is_bound() {
        let c = with(|c| {
            *c = autoscaling(None);
            head_spec(c).service_account_name = Some("team-sa".into());
        });
        assert_eq!(
            head(&c).spec.unwrap().service_account_name.as_deref(),
            Some("team-sa")
        );
        let rbac = autoscaler_rbac(&c, &BuildContext::default())
            .unwrap()
            .unwrap();
        assert!(rbac.service_account.is_none());
        assert_eq!(rbac.role_binding.subjects.unwrap()[0].name, "team-sa");
    }

    #[test]
    fn autoscaler_v2_sets_its_env_and_never_restarts_pods() {
        let c = autoscaling(Some("v2"));
        let head = head(&c);
        assert_eq!(
            env_value(ray(&head), "RAY_enable_autoscaler_v2").as_deref(),
            Some("true")
        );
        assert_eq!(head.spec.unwrap().restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            worker(&c).spec.unwrap().restart_policy.as_deref(),
            Some("Never")
        );
    }

    fn with_auth() -> RayCluster {
        with(|c| {
            c.spec.ray_version = Some("2.52.0".into());
            c.spec.auth_options = Some(serde_yaml::from_str("{mode: token}").unwrap());
        })
    }

    #[test]
    fn token_auth_puts_the_secret_in_every_ray_process_env() {
        let c = with(|c| {
            *c = with_auth();
            c.spec.enable_in_tree_autoscaling = Some(true);
        });
        let head = head(&c);
        let worker = worker(&c);
        let init = &worker
            .spec
            .as_ref()
            .unwrap()
            .init_containers
            .as_ref()
            .unwrap()[0];
        for container in [
            ray(&head),
            &head.spec.as_ref().unwrap().containers[1],
            ray(&worker),
            init,
        ] {
            assert_eq!(
                env_value(container, "RAY_AUTH_MODE").as_deref(),
                Some("token"),
                "{}",
                container.name
            );
            let secret = env(container, "RAY_AUTH_TOKEN")
                .unwrap()
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .clone()
                .unwrap();
            assert_eq!(
                (secret.name.as_str(), secret.key.as_str()),
                ("demo", "auth_token")
            );
        }
        assert!(
            env(
                ray(&head_pod(&cluster(), "x", &BuildContext::default()).unwrap()),
                "RAY_AUTH_MODE"
            )
            .is_none()
        );
    }

    #[test]
    fn the_auth_secret_holds_the_callers_token() {
        let token = auth_token(&[7; 32]);
        assert_eq!(token.len(), 44);
        let secret = auth_token_secret(&with_auth(), &token, &BuildContext::default())
            .unwrap()
            .unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("demo"));
        assert_eq!(secret.metadata.labels.unwrap()["ray.io/cluster"], "demo");
        assert_eq!(secret.string_data.unwrap()["auth_token"], token);
        assert!(
            auth_token_secret(&cluster(), &token, &BuildContext::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn gcs_fault_tolerance_options_configure_redis_on_the_head_and_patience_on_workers() {
        let c = with(|c| {
            c.spec.gcs_fault_tolerance_options = Some(
                serde_yaml::from_str(
                    "{redisAddress: 'redis:6379', externalStorageNamespace: ns-1, redisUsername: {value: ray},
                      redisPassword: {valueFrom: {secretKeyRef: {name: redis, key: password}}}}",
                )
                .unwrap(),
            )
        });
        let head = head(&c);
        assert_eq!(
            annotation(&head, "ray.io/ft-enabled").as_deref(),
            Some("true")
        );
        assert_eq!(
            annotation(&head, "ray.io/external-storage-namespace").as_deref(),
            Some("ns-1")
        );
        let names: Vec<&str> = ray(&head)
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .take(4)
            .collect();
        assert_eq!(
            names,
            [
                "RAY_external_storage_namespace",
                "RAY_REDIS_ADDRESS",
                "REDIS_USERNAME",
                "REDIS_PASSWORD"
            ]
        );
        assert_eq!(
            env_value(ray(&head), "REDIS_USERNAME").as_deref(),
            Some("ray")
        );
        assert!(
            env(ray(&head), "REDIS_PASSWORD")
                .unwrap()
                .value_from
                .is_some()
        );
        assert!(
            start_command(&head)
                .contains(" --redis-password=$REDIS_PASSWORD  --redis-username=$REDIS_USERNAME ")
        );
        let worker = worker(&c);
        assert_eq!(
            env_value(ray(&worker), "RAY_gcs_rpc_server_reconnect_timeout_s").as_deref(),
            Some("600")
        );
        assert!(annotation(&worker, "ray.io/ft-enabled").is_none());
    }

    #[test]
    fn the_legacy_annotation_uses_the_uid_as_storage_namespace_and_exports_a_literal_password() {
        let c = with(|c| {
            c.metadata.annotations =
                Some([("ray.io/ft-enabled".to_owned(), "true".to_owned())].into());
            c.spec.head_group_spec.ray_start_params =
                Some([("redis-password".to_owned(), "5241590000000000".to_owned())].into());
        });
        let head = head(&c);
        assert_eq!(
            annotation(&head, "ray.io/external-storage-namespace").as_deref(),
            Some("uid-1")
        );
        assert_eq!(
            env_value(ray(&head), "REDIS_PASSWORD").as_deref(),
            Some("5241590000000000")
        );
        assert!(env(ray(&head), "RAY_REDIS_ADDRESS").is_none());
        assert_eq!(
            annotation(&self::head(&cluster()), "ray.io/ft-enabled").as_deref(),
            Some("false")
        );
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let no_containers = with(|c| {
            c.spec.worker_group_specs.as_mut().unwrap()[0]
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers
                .clear()
        });
        assert_eq!(
            worker_pod(&no_containers, 0, &SLOT, &BuildContext::default()),
            Err(BuildError::NoContainers {
                group: "gpu".into()
            })
        );
        assert_eq!(
            worker_pod(&cluster(), 3, &SLOT, &BuildContext::default()),
            Err(BuildError::NoSuchGroup { index: 3, count: 1 })
        );
        let no_uid = with(|c| c.metadata.uid = None);
        assert_eq!(
            head_pod(&no_uid, "x", &BuildContext::default()),
            Err(BuildError::MissingMetadata("uid"))
        );
        let bad_limit = with(|c| {
            head_spec(c).containers[0].resources = Some(ResourceRequirements {
                limits: Some([("cpu".to_owned(), Quantity("one".into()))].into()),
                ..Default::default()
            });
        });
        assert!(
            matches!(head_pod(&bad_limit, "x", &BuildContext::default()), Err(BuildError::InvalidQuantity { ref key, .. }) if key == "cpu")
        );
    }

    #[test]
    fn the_head_service_is_headless_with_the_default_ports_and_the_serve_service_needs_an_annotation()
     {
        let service = head_service(&cluster(), &BuildContext::default()).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("demo-head-svc"));
        let spec = service.spec.unwrap();
        assert_eq!(
            (spec.cluster_ip.as_deref(), spec.publish_not_ready_addresses),
            (Some("None"), Some(true))
        );
        let ports: Vec<(String, i32)> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port))
            .collect();
        let expected = [
            ("client", 10001),
            ("dashboard", 8265),
            ("gcs-server", 6379),
            ("metrics", 8080),
            ("serve", 8000),
        ];
        assert_eq!(ports, expected.map(|(n, p)| (n.to_owned(), p)));

        let ctx = BuildContext {
            enable_ray_head_cluster_ip_service: true,
            ..Default::default()
        };
        assert!(
            head_service(&cluster(), &ctx)
                .unwrap()
                .spec
                .unwrap()
                .cluster_ip
                .is_none()
        );

        assert!(
            serve_service(&cluster(), &BuildContext::default())
                .unwrap()
                .is_none()
        );
        let annotated = with(|c| {
            c.metadata.annotations =
                Some([("ray.io/enable-serve-service".to_owned(), "true".to_owned())].into())
        });
        let serve = serve_service(&annotated, &BuildContext::default())
            .unwrap()
            .unwrap();
        assert_eq!(serve.metadata.name.as_deref(), Some("demo-serve-svc"));
        assert_eq!(serve.spec.unwrap().ports.unwrap()[0].port, 8000);
        let without_serve_port = with(|c| {
            c.metadata.annotations =
                Some([("ray.io/enable-serve-service".to_owned(), "true".to_owned())].into());
            head_spec(c).containers[0].ports = Some(vec![ContainerPort {
                name: Some("dashboard".into()),
                container_port: 8265,
                ..Default::default()
            }]);
        });
        assert_eq!(
            serve_service(&without_serve_port, &BuildContext::default()),
            Err(BuildError::NoServePort)
        );
    }

    #[test]
    fn a_custom_head_service_keeps_its_name_and_gets_our_selector() {
        let c = with(|c| {
            c.spec.head_group_spec.head_service =
                Some(serde_yaml::from_str("{metadata: {name: my-head, labels: {ray.io/cluster: wrong}}, spec: {type: NodePort, selector: {a: b}}}").unwrap());
        });
        let service = head_service(&c, &BuildContext::default()).unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("my-head"));
        assert_eq!(service.metadata.labels.unwrap()["ray.io/cluster"], "demo");
        let spec = service.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.selector.unwrap()["ray.io/node-type"], "head");
        // Workers find the head through the custom name.
        assert_eq!(
            env_value(ray(&worker(&c)), "FQ_RAY_IP").as_deref(),
            Some("my-head.ml.svc.cluster.local")
        );
    }
}
