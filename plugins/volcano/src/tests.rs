//! Volcano on KubeRay's sample manifests and on hand-made owners: the PodGroup and each Pod's decoration.

use serde_json::{Value, json};

use super::*;

/// A RayCluster in `default` with the given labels, a 1-CPU head and `groups` worker groups.
fn cluster(labels: Value, groups: Value, autoscaling: bool) -> String {
    json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {"name": "demo", "namespace": "default", "labels": labels},
        "spec": {
            "enableInTreeAutoscaling": autoscaling,
            "headGroupSpec": {"template": {"spec": {"containers": [
                {"name": "ray-head", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}
            ]}}},
            "workerGroupSpecs": groups,
        }
    })
    .to_string()
}

fn worker_group(name: &str, replicas: i32, min: i32, hosts: i32) -> Value {
    json!({
        "groupName": name, "replicas": replicas, "minReplicas": min, "maxReplicas": 10,
        "numOfHosts": hosts,
        "template": {"spec": {"containers": [
            {"name": "w", "resources": {"limits": {"cpu": "2", "nvidia.com/gpu": "1"}}}
        ]}}
    })
}

fn pod_group_of(owner: &str) -> Value {
    pod_group(owner).unwrap().expect("a PodGroup")
}

fn labels(d: &PodDecoration) -> Vec<(&str, &str)> {
    d.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn annotations(d: &PodDecoration) -> Vec<(&str, &str)> {
    d.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn the_volcano_sample_gets_a_pod_group_for_its_lone_head() {
    let owner = wasmray_samples::owner_json("ray-cluster.volcano-scheduler.yaml", "RayCluster");
    assert_eq!(
        pod_group_of(&owner),
        json!({
            "apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
            "metadata": {"name": "ray-test-cluster-0-pg", "namespace": "default"},
            "spec": {"minMember": 1, "minResources": {"cpu": "1", "memory": "2Gi"}},
        })
    );
}

#[test]
fn the_volcano_sample_head_is_scheduled_by_volcano_in_its_pod_group() {
    let owner = wasmray_samples::owner_json("ray-cluster.volcano-scheduler.yaml", "RayCluster");
    let d = decoration(&owner, "headgroup").unwrap();
    assert_eq!(d.scheduler_name.as_deref(), Some("volcano"));
    assert!(d.labels.is_empty(), "the sample's ray.io/scheduler-name label is not copied");
    assert_eq!(
        annotations(&d),
        [
            ("scheduling.k8s.io/group-name", "ray-test-cluster-0-pg"),
            ("volcano.sh/task-spec", "headgroup")
        ]
    );
}

#[test]
fn the_queue_sample_gangs_head_and_two_workers_in_its_queue() {
    let owner = wasmray_samples::owner_json("ray-cluster.volcano-scheduler-queue.yaml", "RayCluster");
    let pg = pod_group_of(&owner);
    assert_eq!(pg["spec"]["minMember"], 3);
    assert_eq!(pg["spec"]["minResources"], json!({"cpu": "3", "memory": "4Gi"}));
    assert_eq!(pg["spec"]["queue"], "kuberay-test-queue");
    let d = decoration(&owner, "small-group").unwrap();
    assert_eq!(labels(&d), [("volcano.sh/queue-name", "kuberay-test-queue")]);
    assert_eq!(annotations(&d)[1], ("volcano.sh/task-spec", "small-group"));
}

#[test]
fn the_queue_sample_ray_job_reserves_the_submitter_but_does_not_wait_for_it() {
    let owner = wasmray_samples::owner_json("ray-job.volcano-scheduler-queue.yaml", "RayJob");
    let pg = pod_group_of(&owner);
    assert_eq!(pg["metadata"]["name"], "ray-rayjob-sample-0-pg");
    assert_eq!(pg["spec"]["minMember"], 3, "head and two workers, not the submitter");
    assert_eq!(
        pg["spec"]["minResources"],
        json!({"cpu": "3500m", "memory": "4296Mi"}),
        "plus the default submitter's 500m and 200Mi"
    );
    assert_eq!(pg["spec"]["queue"], "kuberay-test-queue");
}

#[test]
fn a_cluster_made_by_a_ray_job_has_no_pod_group_and_joins_the_jobs() {
    let labels = json!({"ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": "nightly"});
    let owner = cluster(labels, json!([]), false);
    assert_eq!(pod_group(&owner).unwrap(), None);
    let d = decoration(&owner, "headgroup").unwrap();
    assert_eq!(annotations(&d)[0], ("scheduling.k8s.io/group-name", "ray-nightly-pg"));
}

#[test]
fn a_ray_job_on_an_existing_cluster_cannot_be_gang_scheduled() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": "j", "namespace": "default"},
        "spec": {"entrypoint": "x", "clusterSelector": {"ray.io/cluster": "c"}}
    });
    assert!(matches!(pod_group(&owner.to_string()), Err(PluginError::InvalidSpec(_))));
}

#[test]
fn multi_host_groups_count_every_host_in_min_member_and_resources() {
    let owner = cluster(json!({}), json!([worker_group("tpu", 2, 1, 4)]), false);
    let pg = pod_group_of(&owner);
    assert_eq!(pg["spec"]["minMember"], 1 + 2 * 4);
    assert_eq!(
        pg["spec"]["minResources"],
        json!({"cpu": "17", "memory": "2Gi", "nvidia.com/gpu": "8"}),
        "limits count when there are no requests"
    );
}

#[test]
fn with_autoscaling_the_gang_is_the_minimum_the_autoscaler_keeps() {
    let owner = cluster(json!({}), json!([worker_group("gpu", 5, 1, 1)]), true);
    let pg = pod_group_of(&owner);
    assert_eq!(pg["spec"]["minMember"], 2);
    assert_eq!(pg["spec"]["minResources"]["cpu"], "3");
}

#[test]
fn suspended_groups_count_for_nothing() {
    let mut group = worker_group("paused", 3, 3, 1);
    group["suspend"] = json!(true);
    let pg = pod_group_of(&cluster(json!({}), json!([group]), false));
    assert_eq!(pg["spec"]["minMember"], 1);
    assert_eq!(pg["spec"]["minResources"], json!({"cpu": "1", "memory": "2Gi"}));
}

#[test]
fn priority_and_network_topology_labels_shape_the_pod_group() {
    let owner_labels = json!({
        "ray.io/priority-class-name": "high",
        "volcano.sh/network-topology-mode": "hard",
        "volcano.sh/network-topology-highest-tier-allowed": "2",
    });
    let owner = cluster(owner_labels, json!([]), false);
    let pg = pod_group_of(&owner);
    assert_eq!(pg["spec"]["priorityClassName"], "high");
    assert_eq!(pg["spec"]["networkTopology"], json!({"mode": "hard", "highestTierAllowed": 2}));
    let d = decoration(&owner, "headgroup").unwrap();
    assert_eq!(labels(&d), [("ray.io/priority-class-name", "high")]);
}

#[test]
fn a_highest_tier_that_is_not_a_number_is_an_invalid_spec() {
    let labels = json!({
        "volcano.sh/network-topology-mode": "soft",
        "volcano.sh/network-topology-highest-tier-allowed": "top",
    });
    let owner = cluster(labels, json!([]), false);
    assert!(matches!(pod_group(&owner), Err(PluginError::InvalidSpec(_))));
}

#[test]
fn a_highest_tier_without_a_mode_is_ignored() {
    let labels = json!({"volcano.sh/network-topology-highest-tier-allowed": "2"});
    let pg = pod_group_of(&cluster(labels, json!([]), false));
    assert!(pg["spec"].get("networkTopology").is_none());
}

#[test]
fn the_plugin_declares_the_volcano_pod_group_kind() {
    let kinds = <Volcano as BatchScheduler>::companion_kinds();
    assert_eq!(kinds.len(), 1);
    assert_eq!(
        (kinds[0].api_version.as_str(), kinds[0].kind.as_str(), kinds[0].namespaced),
        ("scheduling.volcano.sh/v1beta1", "PodGroup", true)
    );
}

#[test]
fn an_owner_of_another_kind_is_invalid_input() {
    let owner = json!({"kind": "RayService", "metadata": {"name": "s"}}).to_string();
    assert!(matches!(decoration(&owner, "headgroup"), Err(PluginError::InvalidInput(_))));
}
