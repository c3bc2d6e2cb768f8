//! scheduler-plugins on KubeRay's sample manifest and on hand-made owners: the PodGroup and each Pod's decoration.

use serde_json::json;

use super::*;

fn labels(d: &PodDecoration) -> Vec<(&str, &str)> {
    d.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn plain_cluster() -> String {
    json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {"name": "plain", "namespace": "ns"},
        "spec": {"headGroupSpec": {"template": {}}}
    })
    .to_string()
}

#[test]
fn the_sample_gets_a_pod_group_named_like_the_cluster_for_head_and_two_workers() {
    let owner = wasmray_samples::owner_json("ray-cluster.scheduler-plugins.yaml", "RayCluster");
    assert_eq!(
        pod_group(&owner, &[]).unwrap(),
        Some(json!({
            "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": "test-podgroup-0", "namespace": "default"},
            "spec": {"minMember": 3, "minResources": {"cpu": "3", "memory": "4Gi"}},
        }))
    );
}

#[test]
fn the_sample_pods_join_the_pod_group_under_the_scheduler_plugins_scheduler() {
    let owner = wasmray_samples::owner_json("ray-cluster.scheduler-plugins.yaml", "RayCluster");
    let d = decoration(&owner).unwrap();
    assert_eq!(d.scheduler_name.as_deref(), Some("scheduler-plugins-scheduler"));
    assert_eq!(labels(&d), [("scheduling.x-k8s.io/pod-group", "test-podgroup-0")]);
    assert!(d.annotations.is_empty());
}

#[test]
fn an_existing_pod_group_is_left_as_it_is() {
    let owner = wasmray_samples::owner_json("ray-cluster.scheduler-plugins.yaml", "RayCluster");
    let existing = pod_group(&owner, &[]).unwrap().unwrap().to_string();
    assert_eq!(pod_group(&owner, &[existing]).unwrap(), None);
}

#[test]
fn without_the_gang_label_pods_only_get_the_scheduler() {
    assert_eq!(pod_group(&plain_cluster(), &[]).unwrap(), None);
    let d = decoration(&plain_cluster()).unwrap();
    assert_eq!(d.scheduler_name.as_deref(), Some("scheduler-plugins-scheduler"));
    assert!(d.labels.is_empty());
}

#[test]
fn a_ray_job_gets_no_pod_group_of_its_own() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": "j", "namespace": "ns", "labels": {"ray.io/gang-scheduling-enabled": "true"}},
        "spec": {"entrypoint": "x", "rayClusterSpec": {"headGroupSpec": {"template": {}}}}
    });
    assert_eq!(pod_group(&owner.to_string(), &[]).unwrap(), None);
}

#[test]
fn autoscaling_is_not_considered() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {"name": "auto", "namespace": "ns", "labels": {"ray.io/gang-scheduling-enabled": ""}},
        "spec": {
            "enableInTreeAutoscaling": true,
            "headGroupSpec": {"template": {}},
            "workerGroupSpecs": [{"groupName": "w", "replicas": 4, "minReplicas": 1, "maxReplicas": 8, "template": {}}]
        }
    });
    let pg = pod_group(&owner.to_string(), &[]).unwrap().unwrap();
    assert_eq!(pg["spec"]["minMember"], 5);
}

#[test]
fn the_plugin_declares_the_coscheduling_pod_group_kind() {
    let kinds = <SchedulerPlugins as BatchScheduler>::companion_kinds();
    assert_eq!(
        (kinds[0].api_version.as_str(), kinds[0].kind.as_str(), kinds[0].namespaced),
        ("scheduling.x-k8s.io/v1alpha1", "PodGroup", true)
    );
}
