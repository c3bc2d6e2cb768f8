//! Head and worker Pods: template, labels, `ray start`, env, ports, `/dev/shm`, init container,
//! autoscaler sidecar, GCS fault tolerance, token auth and probes (§2.4–§2.10, §5, §7.1).
//!
//! The steps run in KubeRay's order, because the order shows: env vars are a list, and users read
//! them top to bottom in `kubectl describe`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, HTTPGetAction,
    ObjectFieldSelector, Pod, PodSpec, Probe, ResourceRequirements, SecretKeySelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use wasmray_api::{RayCluster, WorkerGroupSpec};

use super::start::{self, StartParams};
use super::{labels, names, BuildContext, BuildError, ClusterFacts, CreatedBy, NodeType};

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
        meta.name = Some(meta.name.take().unwrap_or_else(|| format!("{prefix}{suffix}")));
        meta.generate_name = Some(prefix);
    }
    meta.namespace = Some(facts.namespace.clone());

    let mut params = group.ray_start_params.clone().unwrap_or_default();
    start::apply_group_resources(&mut params, group.resources.as_ref(), labels::HEAD_GROUP)?;
    start::apply_group_labels(&mut params, group.labels.as_ref());
    meta.labels = Some(pod_labels(NodeType::Head, facts.name, labels::HEAD_GROUP, meta.labels.take(), group.labels.as_ref()));
    start::set_missing(&mut params, NodeType::Head, "");
    copy_overwrite_annotation(&facts, &mut meta);

    if facts.autoscaling {
        params.insert("no-monitor".into(), "true".into());
        let account = spec.service_account_name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| facts.name.to_owned());
        spec.service_account_name = Some(names::check_name(&account));
        let autoscaler = autoscaler_container(&facts, &spec.containers[0]);
        spec.containers.push(autoscaler);
        if facts.autoscaler_v2 {
            push_env(&mut spec.containers[0], value_env("RAY_enable_autoscaler_v2", "true"));
            spec.restart_policy = Some("Never".into());
        }
    }

    configure_fault_tolerance(&facts, NodeType::Head, &mut meta, &mut spec.containers[0], &mut params);
    add_metrics_port(&mut spec.containers[0]);
    if facts.auth {
        configure_token_auth(facts.name, &mut spec);
    }
    spec.containers.extend(ctx.head_sidecar_containers.iter().cloned());

    finish_pod(&facts, NodeType::Head, labels::HEAD_GROUP, meta, spec, params, ctx)
}

/// A worker Pod of group `group_index`.
pub fn worker_pod(
    cluster: &RayCluster,
    group_index: usize,
    slot: &WorkerSlot<'_>,
    ctx: &BuildContext,
) -> Result<Pod, BuildError> {
    let facts = ClusterFacts::of(cluster, ctx)?;
    let groups = cluster.spec.worker_group_specs.as_deref().unwrap_or_default();
    let group: &WorkerGroupSpec =
        groups.get(group_index).ok_or(BuildError::NoSuchGroup { index: group_index, count: groups.len() })?;
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
    let mut pod_labels = pod_labels(NodeType::Worker, facts.name, group_name, meta.labels.take(), group.labels.as_ref());
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
    configure_fault_tolerance(&facts, NodeType::Worker, &mut meta, &mut spec.containers[0], &mut params);
    add_metrics_port(&mut spec.containers[0]);
    if facts.autoscaling && facts.autoscaler_v2 {
        spec.restart_policy = Some("Never".into());
    }
    if facts.auth {
        configure_token_auth(facts.name, &mut spec);
    }
    spec.containers.extend(ctx.worker_sidecar_containers.iter().cloned());

    finish_pod(&facts, NodeType::Worker, group_name, meta, spec, params, ctx)
}

/// The template's metadata and spec, checked to have a Ray container.
fn split_template(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    group: &str,
) -> Result<(ObjectMeta, PodSpec), BuildError> {
    let spec = template.spec.clone().unwrap_or_default();
    if spec.containers.is_empty() {
        return Err(BuildError::NoContainers { group: group.to_owned() });
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
    merged.extend(group_labels.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
    let mut result = BTreeMap::from([
        (labels::IS_RAY_NODE.to_owned(), "yes".to_owned()),
        (labels::CLUSTER.to_owned(), cluster.to_owned()),
        (labels::NODE_TYPE.to_owned(), node.as_str().to_owned()),
        (labels::GROUP.to_owned(), group.to_owned()),
        (labels::IDENTIFIER.to_owned(), names::identifier(cluster, node.as_str())),
        (labels::APP_NAME.to_owned(), labels::APP_NAME_VALUE.to_owned()),
        (labels::CREATED_BY.to_owned(), labels::CREATED_BY_VALUE.to_owned()),
    ]);
    result.extend(merged.into_iter().filter(|(k, _)| !labels::PROTECTED.contains(&k.as_str())));
    result
}

/// `ray.io/overwrite-container-cmd: "true"` on the RayCluster is copied onto the Pod.
fn copy_overwrite_annotation(facts: &ClusterFacts<'_>, meta: &mut ObjectMeta) {
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    if super::annotation(facts.cluster, labels::OVERWRITE_CONTAINER_CMD).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
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
        push_env_if_absent(container, value_env("RAY_gcs_rpc_server_reconnect_timeout_s", "600"));
        return;
    }
    let options = facts.cluster.spec.gcs_fault_tolerance_options.as_ref();
    let storage_namespace = options
        .and_then(|o| o.external_storage_namespace.clone())
        .filter(|ns| !ns.is_empty())
        .or_else(|| super::annotation(facts.cluster, labels::EXTERNAL_STORAGE_NAMESPACE).map(str::to_owned))
        .unwrap_or_else(|| facts.owner.uid.clone());
    annotations.insert(labels::EXTERNAL_STORAGE_NAMESPACE.into(), storage_namespace.clone());
    push_env_if_absent(container, value_env("RAY_external_storage_namespace", &storage_namespace));

    match options {
        Some(options) => {
            push_env(container, value_env("RAY_REDIS_ADDRESS", &options.redis_address));
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
    EnvVar { name: name.into(), value: credential.value.clone(), value_from: credential.value_from.clone() }
}

/// `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` from the cluster's Secret, on the Ray container and
/// on `wait-gcs-ready`.
fn configure_token_auth(cluster: &str, spec: &mut PodSpec) {
    add_token_auth_env(cluster, &mut spec.containers[0]);
    for init in spec.init_containers.iter_mut().flatten().filter(|c| c.name == WAIT_GCS_READY) {
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
        Some(BTreeMap::from([("cpu".to_owned(), Quantity(cpu.into())), ("memory".to_owned(), Quantity(memory.into()))]))
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
        target.get_or_insert_with(Vec::new).extend(extra.iter().cloned());
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
    let fixed = || Some(BTreeMap::from([("cpu".to_owned(), Quantity("200m".into())), ("memory".to_owned(), Quantity("256Mi".into()))]));
    Container {
        name: WAIT_GCS_READY.into(),
        image: ray.image.clone(),
        image_pull_policy: ray.image_pull_policy.clone(),
        command: Some(bash_command(ctx.enable_login_shell)),
        args: Some(vec![script]),
        security_context: ray.security_context.clone(),
        env: ray.env.clone(),
        volume_mounts: ray.volume_mounts.clone(),
        resources: Some(ResourceRequirements { limits: fixed(), requests: fixed(), ..Default::default() }),
        ..Default::default()
    }
}

/// Adds `metrics: 8080` unless the Ray container already names a `metrics` port.
fn add_metrics_port(container: &mut Container) {
    let ports = container.ports.get_or_insert_with(Vec::new);
    if !ports.iter().any(|p| p.name.as_deref() == Some("metrics")) {
        ports.push(ContainerPort { name: Some("metrics".into()), container_port: METRICS_PORT, ..Default::default() });
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
        let serving = if node == NodeType::Head { "false" } else { "true" };
        meta.labels.get_or_insert_with(BTreeMap::new).insert(labels::SERVE.into(), serving.into());
    }

    add_empty_dir(&mut spec, 0, SHARED_MEMORY_VOLUME, SHARED_MEMORY_PATH, true);
    if node == NodeType::Head && facts.autoscaling {
        // The autoscaler writes event logs the head's dashboard reads.
        add_empty_dir(&mut spec, 0, RAY_LOGS_VOLUME, RAY_LOGS_PATH, false);
        if let Some(index) = spec.containers.iter().position(|c| c.name == AUTOSCALER_CONTAINER) {
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
    let user_command: String = ray.command.iter().chain(ray.args.iter()).flatten().map(|part| format!(" {part} ")).collect();
    if !overwrite && !user_command.contains("ray start") {
        let generated = format!("ulimit -n 65536; {ray_start}");
        ray.command = Some(bash_command(ctx.enable_login_shell));
        // `ray start --block` never returns, so the user's command must run first.
        let args = if user_command.is_empty() { generated } else { format!("{user_command} && {generated}") };
        ray.args = Some(vec![args]);
    }

    let worker_ip = names::head_service_name(facts.name, facts.cluster.spec.head_group_spec.head_service.as_ref().and_then(|s| s.metadata.name.as_deref()));
    for init in spec.init_containers.iter_mut().flatten() {
        push_env(init, value_env("FQ_RAY_IP", &facts.fqdn));
        push_env(init, value_env("RAY_IP", &worker_ip));
    }
    ray_container_env(facts, node, &mut spec.containers[0], &ray_start, &worker_ip, ctx);

    if ctx.enable_probes_injection {
        add_probes(facts, node, &mut spec.containers[0], &params, ctx);
    }

    meta.owner_references = Some(vec![facts.owner.clone()]);
    Ok(Pod { metadata: meta, spec: Some(spec), status: None })
}

/// Mounts an emptyDir at `path` in container `index`, unless something is mounted there already.
/// The `/dev/shm` one lives in memory and is capped at the Ray container's memory.
fn add_empty_dir(spec: &mut PodSpec, index: usize, volume: &str, path: &str, in_memory: bool) {
    let container = &spec.containers[index];
    if container.volume_mounts.iter().flatten().any(|m| m.mount_path == path) {
        return;
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == volume) {
        let size_limit = if in_memory { memory_limit_or_request(container) } else { None };
        volumes.push(Volume {
            name: volume.into(),
            empty_dir: Some(EmptyDirVolumeSource { medium: in_memory.then(|| "Memory".into()), size_limit }),
            ..Default::default()
        });
    }
    spec.containers[index].volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        ..Default::default()
    });
}

fn memory_limit_or_request(container: &Container) -> Option<Quantity> {
    let resources = container.resources.as_ref()?;
    let pick = |list: &Option<BTreeMap<String, Quantity>>| list.as_ref().and_then(|l| l.get("memory")).cloned();
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
    push_env(container, field_env("RAY_CLUSTER_NAME", &format!("metadata.labels['{}']", labels::CLUSTER)));
    push_env(container, field_env("RAY_CLOUD_INSTANCE_ID", "metadata.name"));
    push_env(container, field_env("RAY_NODE_TYPE_NAME", &format!("metadata.labels['{}']", labels::GROUP)));
    push_env(container, value_env("KUBERAY_GEN_RAY_START_CMD", ray_start));
    push_env_if_absent(container, value_env("RAY_PORT", &facts.head_port));
    if facts.created_by == CreatedBy::RayService {
        // Faster failure detection keeps Serve's SLA when a node dies.
        push_env_if_absent(container, value_env("RAY_timeout_ms_task_wait_for_death_info", "0"));
        push_env_if_absent(container, value_env("RAY_gcs_server_request_timeout_seconds", "5"));
        push_env_if_absent(container, value_env("RAY_SERVE_KV_TIMEOUT_S", "5"));
    }
    push_env_if_absent(container, value_env("RAY_ADDRESS", &format!("{ip}:{}", facts.head_port)));
    push_env_if_absent(container, value_env("RAY_USAGE_STATS_KUBERAY_IN_USE", "1"));
    if node == NodeType::Head {
        let tags = format!("kuberay_version={};kuberay_crd={}", ctx.kuberay_version, facts.created_by.as_str());
        push_env(container, value_env("RAY_USAGE_STATS_EXTRA_TAGS", &tags));
    }
    push_env_if_absent(container, value_env("RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "1"));
}

/// Liveness and readiness probes, only where the user set none (§2.8).
fn add_probes(facts: &ClusterFacts<'_>, node: NodeType, container: &mut Container, params: &StartParams, ctx: &BuildContext) {
    let port = |key: &str, default: i32| params.get(key).and_then(|p| p.parse::<i32>().ok()).unwrap_or(default);
    let agent_port = port("dashboard-agent-listen-port", AGENT_PORT);
    let http = ctx.http_probes_for_new_ray && super::ray_version(facts.cluster).is_some_and(|v| v >= (2, 53, 0));
    let wget = |timeout: i32, port: i32, path: &str| {
        format!("wget --tries 1 -T {timeout} -q -O- http://localhost:{port}{path} | grep success")
    };
    let mut checks = vec![wget(2, agent_port, "/api/local_raylet_healthz")];
    if node == NodeType::Head {
        checks.push(wget(10, port("dashboard-port", DASHBOARD_PORT), "/api/gcs_healthz"));
    }
    let exec = |checks: &[String]| ExecAction { command: Some(vec!["bash".into(), "-c".into(), checks.join(" && ")]) };
    let http_get = HTTPGetAction { path: Some("/api/healthz".into()), port: IntOrString::Int(agent_port), ..Default::default() };
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
    vec!["/bin/bash".into(), if login { "-cl".into() } else { "-c".into() }, "--".into()]
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), api_version: None }),
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
