//! How the job gets to Ray: the submitter Job (K8sJobMode), the head sidecar (SidecarMode), and the host's dashboard requests (HTTPMode, stop).

use serde_json::{Map, Value, json};
use wasmray_api::names;
use wasmray_guest_sdk::ObjectRef;

use crate::cluster::token_auth;
use crate::vocab::{
    DASHBOARD_API_VERSION, DEFAULT_SUBMITTER_BACKOFF_LIMIT, ORIGINATED_FROM_CRD_VALUE, SUBMISSION_KIND,
    SUBMITTER_CONTAINER, labels,
};
use crate::Ctx;

/// The submitter Job: named like the RayJob, owned by it, KubeRay's labels, `backoffLimit` from
/// `submitterConfig` (default 2), the user's `submitterPodTemplate` or KubeRay's default Pod.
pub fn job(ctx: &Ctx, cluster: &Value, dashboard_url: &str, job_id: &str) -> Value {
    let cluster_spec = &cluster["spec"];
    let mut template = ctx.raw["spec"]["submitterPodTemplate"].clone();
    if template.is_null() {
        template = default_template(cluster_spec);
    }
    let container = &mut template["spec"]["containers"][0];
    // A user's own command is kept: RAY_DASHBOARD_ADDRESS and RAY_JOB_SUBMISSION_ID tell it where and what.
    if container["command"].as_array().is_none_or(Vec::is_empty) {
        container["command"] = json!(["/bin/bash", "-ce", "--"]);
        container["args"] = json!([k8s_job_script(ctx, dashboard_url, job_id)]);
    }
    let cluster_name = cluster["metadata"]["name"].as_str().unwrap_or_default();
    append_env(container, &submitter_env(dashboard_url, job_id, cluster_name, token_auth(cluster_spec)));
    let backoff = ctx.job.spec.submitter_config.as_ref().and_then(|c| c.backoff_limit).unwrap_or(DEFAULT_SUBMITTER_BACKOFF_LIMIT);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": ctx.name,
            "namespace": ctx.namespace,
            "labels": {
                labels::ORIGINATED_FROM_CR_NAME: ctx.name,
                labels::ORIGINATED_FROM_CRD: ORIGINATED_FROM_CRD_VALUE,
                labels::CREATED_BY: labels::CREATED_BY_VALUE,
            },
            "ownerReferences": [ctx.owner_reference()],
        },
        "spec": { "backoffLimit": backoff, "template": template },
    })
}

/// KubeRay's default submitter Pod: the head's image, small requests, never restarted in place.
fn default_template(cluster_spec: &Value) -> Value {
    let image = cluster_spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"].clone();
    json!({ "spec": {
        "restartPolicy": "Never",
        "containers": [ default_container(image) ],
    } })
}

fn default_container(image: Value) -> Value {
    json!({
        "name": SUBMITTER_CONTAINER,
        "image": image,
        "resources": {
            "requests": { "cpu": "500m", "memory": "200Mi" },
            "limits": { "cpu": "1", "memory": "1Gi" },
        },
    })
}

/// The head Pod's submitter in SidecarMode: waits for the GCS through the local dashboard, then
/// submits and follows the job (no `--no-wait`: the container's exit code is the submission's).
pub fn sidecar_container(ctx: &Ctx, cluster_spec: &Value, cluster_name: &str, job_id: &str, port: i64) -> Value {
    let image = cluster_spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"].clone();
    let mut container = default_container(image);
    let address = format!("127.0.0.1:{port}");
    let script = format!(
        "until wget -q -O- http://localhost:{port}/api/gcs_healthz 2>/dev/null | grep -q success ; do \
         echo 'Waiting for the GCS to be ready.' ; sleep 2 ; done ; {}",
        submit_command(ctx, &address, job_id, false)
    );
    container["command"] = json!(["/bin/bash", "-ce", "--"]);
    container["args"] = json!([script]);
    append_env(&mut container, &submitter_env(&address, job_id, cluster_name, token_auth(cluster_spec)));
    container
}

/// KubeRay's idempotent K8sJobMode script: a retried submitter Pod that finds the job submitted
/// only follows its logs.
pub fn k8s_job_script(ctx: &Ctx, dashboard_url: &str, job_id: &str) -> String {
    let address = format!("http://{dashboard_url}");
    format!(
        "if ! ray job status --address {address} {id} >/dev/null 2>&1 ; then {submit} ; fi ; \
         ray job logs --address {address} --follow {id}",
        id = quote(job_id),
        submit = submit_command(ctx, dashboard_url, job_id, true),
    )
}

/// `ray job submit …  -- <entrypoint>` with the spec's options.
fn submit_command(ctx: &Ctx, dashboard_url: &str, job_id: &str, no_wait: bool) -> String {
    let spec = &ctx.job.spec;
    let mut parts = vec!["ray job submit".to_owned(), format!("--address http://{dashboard_url}")];
    if no_wait {
        parts.push("--no-wait".into());
    }
    if let Some(env) = runtime_env(ctx) {
        parts.push(format!("--runtime-env-json {}", quote(&env.to_string())));
    }
    if let Some(metadata) = spec.metadata.as_ref().filter(|m| !m.is_empty()) {
        parts.push(format!("--metadata-json {}", quote(&json!(metadata).to_string())));
    }
    parts.push(format!("--submission-id {}", quote(job_id)));
    if let Some(cpus) = spec.entrypoint_num_cpus.filter(|c| *c > 0.0) {
        parts.push(format!("--entrypoint-num-cpus {cpus:.6}"));
    }
    if let Some(gpus) = spec.entrypoint_num_gpus.filter(|g| *g > 0.0) {
        parts.push(format!("--entrypoint-num-gpus {gpus:.6}"));
    }
    if let Some(resources) = spec.entrypoint_resources.as_deref().filter(|r| !r.is_empty()) {
        parts.push(format!("--entrypoint-resources {}", quote(resources)));
    }
    // The entrypoint is a shell command line of the user's, passed on as written.
    parts.push(format!("-- {}", spec.entrypoint.as_deref().unwrap_or_default()));
    parts.join(" ")
}

/// HTTPMode: the request the host's dashboard client performs — ensure a Ray job with this
/// submission id exists (`POST /api/jobs/` with `spec.body`, "already exists" counting as done).
pub fn submission_request(ctx: &Ctx, dashboard_url: &str, cluster_name: &str, job_id: &str) -> Value {
    let spec = &ctx.job.spec;
    let mut body = Map::new();
    body.insert("entrypoint".into(), json!(spec.entrypoint.as_deref().unwrap_or_default()));
    body.insert("submission_id".into(), json!(job_id));
    if let Some(env) = runtime_env(ctx) {
        body.insert("runtime_env".into(), env);
    }
    if let Some(metadata) = spec.metadata.as_ref().filter(|m| !m.is_empty()) {
        body.insert("metadata".into(), json!(metadata));
    }
    if let Some(cpus) = spec.entrypoint_num_cpus.filter(|c| *c > 0.0) {
        body.insert("entrypoint_num_cpus".into(), json!(cpus));
    }
    if let Some(gpus) = spec.entrypoint_num_gpus.filter(|g| *g > 0.0) {
        body.insert("entrypoint_num_gpus".into(), json!(gpus));
    }
    if let Some(resources) = spec.entrypoint_resources.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()) {
        body.insert("entrypoint_resources".into(), resources);
    }
    json!({
        "apiVersion": DASHBOARD_API_VERSION,
        "kind": SUBMISSION_KIND,
        "metadata": { "name": job_id, "namespace": ctx.namespace },
        "spec": { "dashboardURL": dashboard_url, "rayClusterName": cluster_name, "body": body },
    })
}

/// The request to stop the Ray job (`POST /api/jobs/<id>/stop`), best effort.
pub fn stop_request(ctx: &Ctx, job_id: &str) -> ObjectRef {
    ObjectRef::namespaced(DASHBOARD_API_VERSION, SUBMISSION_KIND, ctx.namespace, job_id)
}

/// `runtimeEnvYAML` as JSON (validation has checked that it parses).
fn runtime_env(ctx: &Ctx) -> Option<Value> {
    let yaml = ctx.job.spec.runtime_env_yaml.as_deref().filter(|y| !y.trim().is_empty())?;
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).ok()?;
    serde_json::to_value(value).ok().filter(|v| !v.is_null())
}

/// What every submitter gets: unbuffered output, where the dashboard is, which job, and the token.
fn submitter_env(dashboard_url: &str, job_id: &str, cluster_name: &str, token: bool) -> Vec<Value> {
    let mut env = vec![
        json!({ "name": "PYTHONUNBUFFERED", "value": "1" }),
        json!({ "name": "RAY_DASHBOARD_ADDRESS", "value": dashboard_url }),
        json!({ "name": "RAY_JOB_SUBMISSION_ID", "value": job_id }),
    ];
    if token {
        env.push(json!({ "name": "RAY_AUTH_MODE", "value": "token" }));
        env.push(json!({ "name": "RAY_AUTH_TOKEN", "valueFrom": { "secretKeyRef": {
            "name": names::check_name(cluster_name), "key": "auth_token" } } }));
    }
    env
}

fn append_env(container: &mut Value, env: &[Value]) {
    if !container["env"].is_array() {
        container["env"] = json!([]);
    }
    if let Some(list) = container["env"].as_array_mut() {
        list.extend(env.iter().cloned());
    }
}

/// One shell word: single-quoted unless it is plainly safe.
fn quote(word: &str) -> String {
    let safe = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,".contains(c));
    if safe { word.to_owned() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}
