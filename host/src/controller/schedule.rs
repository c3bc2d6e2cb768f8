//! Batch scheduling: the batch-scheduler plugin's companion objects go before the first child it schedules, and each such child carries the plugin's labels, annotations and scheduler name.
//!
//! The children it sees are KubeRay's `AddMetadataToChildResource` targets: every Ray Pod (its
//! group is its `ray.io/group`), and for a RayJob its RayCluster (no group: the cluster's own
//! Pods are decorated again by the RayCluster controller, as the RayJob's gang) and its
//! submitter Job's Pod template (group `submittergroup`). A plan that writes none of them asks
//! the plugin nothing.

use serde_json::Value;

use crate::runtime::{LoadedPlugin, OwnerContext, PodContext, PodDecoration};

use super::Error;
use super::prepare::{Write, drop_orphaned_events};

/// The group name KubeRay gives a RayJob's submitter Pod.
pub const SUBMITTER_GROUP: &str = "submittergroup";

/// A child a batch scheduler decorates, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheduled {
    /// A Ray Pod about to be created.
    Pod,
    /// A RayJob's RayCluster: labels and annotations only.
    Cluster,
    /// A RayJob's submitter Job: its Pod template.
    Submitter,
}

fn scheduled(write: &Write, owner_kind: &str) -> Option<Scheduled> {
    let (Write::Create { object, .. } | Write::Apply { object, .. }) = write else { return None };
    match (write, owner_kind, object["kind"].as_str()) {
        (Write::Create { .. }, _, Some("Pod")) => Some(Scheduled::Pod),
        (Write::Apply { .. }, "RayJob", Some("RayCluster")) => Some(Scheduled::Cluster),
        (Write::Apply { .. }, "RayJob", Some("Job")) if object["apiVersion"] == "batch/v1" => Some(Scheduled::Submitter),
        _ => None,
    }
}

/// Lets the batch-scheduler plugin see the children about to be written: its companion objects
/// for the owner (a PodGroup, say) are applied first, owned by the primary, and each scheduled
/// child gets the plugin's decoration. Nothing scheduled, nothing asked.
///
/// # Errors
///
/// If the plugin fails or answers with a companion of a kind it did not declare: then no
/// scheduled child may be written, since without its PodGroup or labels it would be scheduled
/// wrongly.
pub async fn schedule(writes: &mut Vec<Write>, plugin: &LoadedPlugin, owner: &Value, now_ms: i64) -> Result<(), Error> {
    let owner_kind = owner["kind"].as_str().unwrap_or_default();
    let Some(first) = writes.iter().position(|w| scheduled(w, owner_kind).is_some()) else { return Ok(()) };
    let owner_text = owner.to_string();
    let kinds = plugin.companion_kinds()?;
    let companions =
        plugin.on_submission(OwnerContext { owner: owner_text.clone(), companions: Vec::new(), now: now_ms }).await?;
    let mut companion_writes = Vec::new();
    for companion in companions {
        let mut object: Value = serde_json::from_str(&companion).unwrap_or(Value::Null);
        let declared = kinds.iter().any(|k| object["apiVersion"] == k.api_version.as_str() && object["kind"] == k.kind.as_str());
        if !declared {
            return Err(Error::Apply(super::apply::ApplyError::Refused {
                action: format!("applying {} {}", object["kind"], object["metadata"]["name"]),
                reason: "the plugin did not declare this kind in companion-kinds".into(),
            }));
        }
        object["metadata"]["namespace"] = owner["metadata"]["namespace"].clone();
        object["metadata"]["ownerReferences"] = serde_json::json!([owner_reference(owner)]);
        companion_writes.push(Write::Companion { object });
    }
    for write in writes.iter_mut() {
        let Some(what) = scheduled(write, owner_kind) else { continue };
        let (Write::Create { object, .. } | Write::Apply { object, .. }) = write else { continue };
        let (group_name, target) = match what {
            Scheduled::Pod => (object["metadata"]["labels"]["ray.io/group"].as_str().unwrap_or_default().to_string(), &mut *object),
            Scheduled::Cluster => (String::new(), &mut *object),
            Scheduled::Submitter => (SUBMITTER_GROUP.to_string(), &mut object["spec"]["template"]),
        };
        let decoration =
            plugin.decorate_pod(PodContext { owner: owner_text.clone(), group_name, pod: target.to_string() }).await?;
        match what {
            Scheduled::Pod | Scheduled::Submitter => decorate(target, decoration),
            // A RayCluster has no scheduler name of its own: its Pods get it from the RayCluster controller.
            Scheduled::Cluster => decorate(target, PodDecoration { scheduler_name: None, ..decoration }),
        }
    }
    writes.splice(first..first, companion_writes);
    Ok(())
}

/// Takes every scheduled child out of `writes` (the batch scheduler failed), with the Events tied to them.
pub fn withhold_scheduled(writes: &mut Vec<Write>, owner: &Value) {
    let owner_kind = owner["kind"].as_str().unwrap_or_default();
    writes.retain(|w| scheduled(w, owner_kind).is_none());
    drop_orphaned_events(writes);
}

/// Merges a plugin's decoration into a rendered Pod (or Pod template, or, without a scheduler
/// name, any object's metadata).
pub fn decorate(pod: &mut Value, decoration: PodDecoration) {
    for (key, value) in decoration.labels {
        pod["metadata"]["labels"][key] = value.into();
    }
    for (key, value) in decoration.annotations {
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = serde_json::json!({});
        }
        pod["metadata"]["annotations"][key] = value.into();
    }
    if let Some(scheduler) = decoration.scheduler_name {
        pod["spec"]["schedulerName"] = scheduler.into();
    }
}

/// The controller owner reference to a primary given as JSON.
pub fn owner_reference(owner: &Value) -> Value {
    serde_json::json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::prepare::prepare;
    use crate::controller::prepare::tests::{a_cluster_with_one_cpu_group, event, input, now, reasons, worker};
    use crate::pods::BuildContext;
    use crate::runtime::{Child, Op};
    use serde_json::json;

    #[test]
    fn a_decoration_sets_labels_annotations_and_the_scheduler() {
        let mut pod = json!({ "metadata": { "labels": { "ray.io/group": "cpu" } }, "spec": {} });
        decorate(&mut pod, PodDecoration {
            labels: vec![("volcano.sh/queue-name".into(), "ml".into())],
            annotations: vec![("scheduling.k8s.io/group-name".into(), "ray-demo-pg".into())],
            scheduler_name: Some("volcano".into()),
        });
        assert_eq!(pod["metadata"]["labels"]["volcano.sh/queue-name"], "ml");
        assert_eq!(pod["metadata"]["annotations"]["scheduling.k8s.io/group-name"], "ray-demo-pg");
        assert_eq!(pod["spec"]["schedulerName"], "volcano");
    }

    #[tokio::test]
    async fn the_volcano_plugin_puts_its_pod_group_before_the_first_pod_and_decorates_every_pod() {
        let runtime = crate::runtime::Runtime::new(crate::runtime::RuntimeConfig::default()).unwrap();
        let volcano = runtime.load("volcano", crate::plugin::builtin::bytes("wasmray-plugin-volcano").unwrap()).unwrap();
        let (cluster, primary) = a_cluster_with_one_cpu_group();
        let build = BuildContext::default();
        let time = now();
        let mut prepared = prepare(&cluster, &input(&primary, &[], &time, &build), vec![
            Op::Render(Child::HeadService),
            Op::Render(Child::HeadPod("abcde".into())),
            worker("x1y2z"),
        ]);
        schedule(&mut prepared.writes, &volcano, &primary, 0).await.unwrap();

        let kinds: Vec<&str> = prepared.writes.iter().map(|w| match w {
            Write::Create { object, .. } | Write::Companion { object } => object["kind"].as_str().unwrap_or_default(),
            _ => "",
        }).collect();
        assert_eq!(kinds, ["Service", "PodGroup", "Pod", "Pod"]);
        let Write::Companion { object: pod_group } = &prepared.writes[1] else { panic!() };
        assert_eq!(pod_group["metadata"]["namespace"], "ml");
        assert_eq!(pod_group["metadata"]["ownerReferences"][0]["uid"], "uid-demo");
        assert_eq!(pod_group["spec"]["minMember"], 3, "the head and two workers are one gang");
        for write in &prepared.writes[2..] {
            let Write::Create { object: pod, .. } = write else { panic!() };
            assert_eq!(pod["spec"]["schedulerName"], "volcano");
            assert!(pod["metadata"]["annotations"]["scheduling.k8s.io/group-name"].is_string(), "{}", pod["metadata"]);
        }
    }

    #[test]
    fn withheld_pods_take_their_events_along_and_leave_the_rest() {
        let (cluster, primary) = a_cluster_with_one_cpu_group();
        let build = BuildContext::default();
        let time = now();
        let mut prepared = prepare(&cluster, &input(&primary, &[], &time, &build), vec![
            Op::Render(Child::HeadService),
            event("CreatedService"),
            worker("a"),
            event("CreatedWorkerPod"),
        ]);
        withhold_scheduled(&mut prepared.writes, &primary);
        assert_eq!(reasons(&prepared.writes), ["CreatedService"]);
        assert_eq!(prepared.writes.len(), 2);
    }

    #[tokio::test]
    async fn a_rayjobs_pod_group_goes_before_its_cluster_and_its_submitter_is_the_submitter_group() {
        let runtime = crate::runtime::Runtime::new(crate::runtime::RuntimeConfig::default()).unwrap();
        let volcano = runtime.load("volcano", crate::plugin::builtin::bytes("wasmray-plugin-volcano").unwrap()).unwrap();
        let spec = json!({
            "headGroupSpec": { "rayStartParams": {}, "template": { "spec": { "containers": [
                { "name": "ray-head", "image": "rayproject/ray:2.54.0", "resources": { "requests": { "cpu": "1" } } },
            ] } } },
        });
        let job = json!({
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": { "name": "nightly", "namespace": "ml", "uid": "uid-nightly", "labels": { "volcano.sh/queue-name": "ml" } },
            "spec": { "entrypoint": "python run.py", "rayClusterSpec": spec },
        });
        let apply = |object: Value| Write::Apply { object, group: 0, failure_reason: None };
        let mut writes = vec![
            apply(json!({ "apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": { "name": "nightly-x1" }, "spec": spec })),
            apply(json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "nightly" }, "spec": { "template": { "spec": {} } } })),
        ];
        schedule(&mut writes, &volcano, &job, 0).await.unwrap();

        let [Write::Companion { object: pod_group }, Write::Apply { object: cluster, .. }, Write::Apply { object: submitter, .. }] = writes.as_slice()
        else {
            panic!("{writes:#?}")
        };
        assert_eq!(pod_group["metadata"]["name"], "ray-nightly-pg");
        assert_eq!(pod_group["metadata"]["ownerReferences"][0]["kind"], "RayJob");
        assert_eq!(cluster["metadata"]["annotations"]["scheduling.k8s.io/group-name"], "ray-nightly-pg");
        assert!(cluster["spec"].get("schedulerName").is_none(), "a RayCluster has no scheduler name");
        let template = &submitter["spec"]["template"];
        assert_eq!(template["spec"]["schedulerName"], "volcano");
        assert_eq!(template["metadata"]["annotations"]["volcano.sh/task-spec"], SUBMITTER_GROUP);
        assert_eq!(template["metadata"]["labels"]["volcano.sh/queue-name"], "ml");
    }

    #[test]
    fn a_rayclusters_jobs_are_not_scheduled_but_a_rayjobs_are() {
        let job = Write::Apply { object: json!({ "apiVersion": "batch/v1", "kind": "Job" }), group: 0, failure_reason: None };
        assert_eq!(scheduled(&job, "RayCluster"), None);
        assert_eq!(scheduled(&job, "RayJob"), Some(Scheduled::Submitter));
    }
}
