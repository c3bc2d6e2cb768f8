//! YuniKorn on KubeRay's sample manifests and on hand-made owners: labels, scheduler and task groups.

use serde_json::{Value, json};

use super::*;

fn labels(d: &PodDecoration) -> Vec<(&str, &str)> {
    d.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn annotation<'a>(d: &'a PodDecoration, key: &str) -> Option<&'a str> {
    d.annotations.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn task_groups_of(d: &PodDecoration) -> Value {
    serde_json::from_str(annotation(d, TASK_GROUPS).expect("task groups")).unwrap()
}

#[test]
fn the_yunikorn_sample_pods_carry_app_id_queue_and_scheduler() {
    let owner = wasmray_samples::owner_json("ray-cluster.yunikorn-scheduler.yaml", "RayCluster");
    let d = decoration(&owner, "headgroup").unwrap();
    assert_eq!(d.scheduler_name.as_deref(), Some("yunikorn"));
    assert_eq!(labels(&d), [("applicationId", "test-yunikorn-0"), ("queue", "root.test")]);
}

#[test]
fn the_yunikorn_sample_is_gang_scheduled_as_a_head_and_two_workers() {
    let owner = wasmray_samples::owner_json("ray-cluster.yunikorn-scheduler.yaml", "RayCluster");
    let d = decoration(&owner, "worker").unwrap();
    assert_eq!(annotation(&d, TASK_GROUP_NAME), Some("worker"));
    let groups = task_groups_of(&d);
    assert_eq!(
        groups,
        json!([
            {"name": "headgroup", "minMember": 1, "minResource": {"cpu": "1", "memory": "2Gi"}},
            {"name": "worker", "minMember": 2, "minResource": {"cpu": "1", "memory": "1Gi"}},
        ])
    );
}

#[test]
fn the_yunikorn_ray_job_sample_adds_the_submitter_group() {
    let owner = wasmray_samples::owner_json("ray-job.yunikorn-scheduler.yaml", "RayJob");
    let d = decoration(&owner, "submittergroup").unwrap();
    assert_eq!(labels(&d), [("applicationId", "rayjob-yunikorn-0"), ("queue", "root.test")]);
    let groups = task_groups_of(&d);
    let names: Vec<&str> = groups.as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["headgroup", "small-group", "submittergroup"]);
    assert_eq!(groups[1]["minMember"], 1, "minReplicas, not replicas");
    assert_eq!(groups[2], json!({"name": "submittergroup", "minMember": 1, "minResource": {"cpu": "500m", "memory": "200Mi"}}));
}

#[test]
fn the_owners_own_task_groups_annotation_wins() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {
            "name": "c", "namespace": "ns",
            "labels": {"ray.io/gang-scheduling-enabled": "false"},
            "annotations": {"yunikorn.apache.org/task-groups": "[{\"name\":\"mine\"}]"},
        },
        "spec": {"headGroupSpec": {"template": {}}}
    });
    let d = decoration(&owner.to_string(), "headgroup").unwrap();
    assert_eq!(annotation(&d, TASK_GROUPS), Some("[{\"name\":\"mine\"}]"), "any value of the label turns gangs on");
}

#[test]
fn without_the_gang_label_there_are_no_task_groups() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {"name": "c", "namespace": "ns", "labels": {"yunikorn.apache.org/queue": "root.a"}},
        "spec": {"headGroupSpec": {"template": {}}}
    });
    let d = decoration(&owner.to_string(), "headgroup").unwrap();
    assert_eq!(labels(&d), [("queue", "root.a")]);
    assert!(d.annotations.is_empty());
}

#[test]
fn the_rayjobs_cluster_gets_task_groups_but_no_task_group_name() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": "j", "namespace": "ns", "labels": {"ray.io/gang-scheduling-enabled": ""}},
        "spec": {"entrypoint": "x", "rayClusterSpec": {"headGroupSpec": {"template": {}}}}
    });
    let d = decoration(&owner.to_string(), "").unwrap();
    assert!(annotation(&d, TASK_GROUPS).is_some());
    assert_eq!(annotation(&d, TASK_GROUP_NAME), None);
}

#[test]
fn task_groups_carry_placement_and_count_every_host() {
    let owner = json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {"name": "c", "namespace": "ns", "labels": {"ray.io/gang-scheduling-enabled": "true"}},
        "spec": {
            "headGroupSpec": {"template": {"spec": {"containers": [], "nodeSelector": {"pool": "cpu"}}}},
            "workerGroupSpecs": [{
                "groupName": "tpu", "replicas": 2, "minReplicas": 2, "maxReplicas": 2, "numOfHosts": 4,
                "template": {"spec": {
                    "containers": [{"name": "w", "resources": {"limits": {"google.com/tpu": "4"}}}],
                    "tolerations": [{"key": "tpu", "operator": "Exists"}],
                }}
            }]
        }
    });
    let d = decoration(&owner.to_string(), "tpu").unwrap();
    assert_eq!(
        task_groups_of(&d),
        json!([
            {"name": "headgroup", "minMember": 1, "minResource": {}, "nodeSelector": {"pool": "cpu"}},
            {"name": "tpu", "minMember": 8, "minResource": {"google.com/tpu": "4"},
             "tolerations": [{"key": "tpu", "operator": "Exists"}]},
        ])
    );
}

#[test]
fn the_plugin_creates_no_companions() {
    assert!(<YuniKorn as BatchScheduler>::companion_kinds().is_empty());
}
