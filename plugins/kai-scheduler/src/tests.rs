//! KAI scheduler on KubeRay's sample manifests and on an owner without a queue.

use serde_json::json;

use super::*;

fn labels(d: &PodDecoration) -> Vec<(&str, &str)> {
    d.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn the_kai_sample_pods_are_scheduled_by_kai_in_queue_team_a() {
    let (d, warning) = decoration(&wasmray_samples::owner_json("ray-cluster.kai-scheduler.yaml", "RayCluster")).unwrap();
    assert_eq!(d.scheduler_name.as_deref(), Some("kai-scheduler"));
    assert_eq!(labels(&d), [("kai.scheduler/queue", "team-a")]);
    assert!(d.annotations.is_empty());
    assert_eq!(warning, None);
}

#[test]
fn the_gpu_sharing_sample_pods_are_scheduled_by_kai_in_queue_team_a() {
    let (d, _) = decoration(&wasmray_samples::owner_json("ray-cluster.kai-gpu-sharing.yaml", "RayCluster")).unwrap();
    assert_eq!(d.scheduler_name.as_deref(), Some("kai-scheduler"));
    assert_eq!(labels(&d), [("kai.scheduler/queue", "team-a")]);
}

#[test]
fn an_owner_without_a_queue_still_gets_kai_and_a_warning() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {"name": "demo", "namespace": "ns", "labels": {"kai.scheduler/queue": ""}},
        "spec": {"headGroupSpec": {"template": {}}}
    });
    let (d, warning) = decoration(&owner.to_string()).unwrap();
    assert_eq!(d.scheduler_name.as_deref(), Some("kai-scheduler"));
    assert!(d.labels.is_empty(), "an empty queue is not copied");
    assert!(warning.unwrap().contains("ns/demo"));
}

#[test]
fn a_ray_job_owner_is_decorated_the_same_way() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": "j", "namespace": "ns", "labels": {"kai.scheduler/queue": "q"}},
        "spec": {"entrypoint": "x"}
    });
    let (d, _) = decoration(&owner.to_string()).unwrap();
    assert_eq!(labels(&d), [("kai.scheduler/queue", "q")]);
}

#[test]
fn the_plugin_creates_no_companions() {
    assert!(<KaiScheduler as BatchScheduler>::companion_kinds().is_empty());
}
