//! One test per behaviour: KubeRay's §8 items and the reconciler's own rules, asserting exact plan ops.

use serde_json::json;
use wasmray_guest_sdk::{Child, ConditionStatus::*, MultiHostReplica, Op, PluginError, WorkerPod};

use crate::fixtures::*;
use crate::{DEFAULT_REQUEUE_MS, SHORT_REQUEUE_MS, reconcile};

/// The plan for a snapshot, checked to be the same when the children are masked as the host
/// masks them, so every test here also proves the declared child fields miss nothing it reads.
fn reconciled(snapshot: wasmray_guest_sdk::Snapshot) -> wasmray_guest_sdk::Plan {
    let plan = reconcile(&snapshot).expect("the reconcile fails");
    let under_mask = reconcile(&masked(&snapshot)).expect("the reconcile of the masked snapshot fails");
    assert_eq!(under_mask, plan, "the plan changes when children carry only the declared fields");
    plan
}

#[test]
fn a_masked_snapshot_plans_as_the_whole_one() {
    let cluster = cluster().with_workers("cpu", 4).with_workers("tpu", 2).hosts("tpu", 2);
    let pods = vec![
        head("rc-head-aaaaa").running_ready().built_from(&cluster),
        worker("cpu", "rc-cpu-worker-a").running_ready(),
        worker("cpu", "rc-cpu-worker-b").running_not_ready(),
        worker("cpu", "rc-cpu-worker-c").unschedulable("0/3 nodes are available"),
        worker("cpu", "rc-cpu-worker-d").waiting("ImagePullBackOff", "no such image"),
        worker("cpu", "rc-cpu-worker-e").init_waiting("init", "CrashLoopBackOff", "exit 1"),
        worker("cpu", "rc-cpu-worker-f").failed(),
        worker("cpu", "rc-cpu-worker-g").ray_container_exited("Never"),
        worker("cpu", "rc-cpu-worker-h").running_ready().terminating(),
        worker("tpu", "rc-tpu-worker-a").running_ready().replica("rc-tpu-a", 0, 0),
    ];
    let snapshot = cluster.with_pods(pods);
    reconciled(snapshot.clone());
    // And the mask does reduce: what the reconciler never reads is not sent.
    let sent: Vec<serde_json::Value> = masked(&snapshot).children.iter().map(|c| serde_json::from_str(c).unwrap()).collect();
    let whole: Vec<serde_json::Value> = snapshot.children.iter().map(|c| serde_json::from_str(c).unwrap()).collect();
    let pod = sent.iter().zip(&whole).find(|(_, w)| w["kind"] == "Pod").expect("a Pod");
    assert!(pod.0.to_string().len() < pod.1.to_string().len(), "{} is not smaller than {}", pod.0, pod.1);
    let service = sent.iter().zip(&whole).find(|(_, w)| w["kind"] == "Service");
    assert!(service.is_none_or(|(s, w)| s == w), "a Service is sent whole");
}

// §8.1 and the companions.

#[test]
fn a_new_cluster_gets_its_head_service_head_pod_and_workers_in_kuberays_order() {
    let plan = reconciled(cluster().with_workers("gpu", 2).with([]));
    let renders = renders(&plan);
    assert_eq!(renders.len(), 4);
    assert_eq!(renders[0], Child::HeadService);
    assert!(matches!(&renders[1], Child::HeadPod(s) if s.len() == 5));
    assert!(
        matches!(&renders[2], Child::WorkerPod(WorkerPod { group, replica: None, .. }) if group == "gpu")
    );
    assert_eq!(
        event_reasons(&plan),
        [
            "CreatedService",
            "CreatedHeadPod",
            "CreatedWorkerPod",
            "CreatedWorkerPod"
        ]
    );
    assert!(
        matches!(plan.ops.last(), Some(Op::Status(_))),
        "the status comes last"
    );
    assert_eq!(
        plan.requeue_after_ms,
        Some(SHORT_REQUEUE_MS),
        "a changed status looks again soon"
    );
}

#[test]
fn event_messages_name_the_objects_the_host_will_create() {
    let plan = reconciled(cluster().with([]));
    let Child::HeadPod(suffix) = &renders(&plan)[1] else {
        panic!("no head Pod")
    };
    let messages: Vec<String> = events(&plan).into_iter().map(|e| e.message).collect();
    assert_eq!(
        messages,
        [
            "Created service ns/rc-head-svc".to_owned(),
            format!("Created head Pod ns/rc-head-{suffix}")
        ]
    );
}

#[test]
fn suffixes_never_repeat_within_a_plan() {
    let plan = reconciled(cluster().with_workers("a", 10).with([]));
    let mut suffixes: Vec<String> = renders(&plan)
        .into_iter()
        .filter_map(|c| match c {
            Child::HeadPod(s) => Some(s),
            Child::WorkerPod(w) => Some(w.suffix),
            _ => None,
        })
        .collect();
    let n = suffixes.len();
    suffixes.sort();
    suffixes.dedup();
    assert_eq!(suffixes.len(), n);
}

#[test]
fn autoscaling_renders_the_rbac_once_with_an_event_per_missing_object() {
    let plan = reconciled(
        cluster()
            .autoscaling()
            .with_pods([head("rc-head-x").running_ready()]),
    );
    assert_eq!(renders(&plan), [Child::AutoscalerRbac]);
    assert_eq!(
        event_reasons(&plan),
        ["CreatedServiceAccount", "CreatedRole", "CreatedRoleBinding"]
    );

    let all_there = cluster().autoscaling().with([
        head_service(),
        object("v1", "ServiceAccount", "rc"),
        object("rbac.authorization.k8s.io/v1", "Role", "rc"),
        object("rbac.authorization.k8s.io/v1", "RoleBinding", "rc"),
        head("rc-head-x").running_ready().0,
    ]);
    assert_eq!(renders(&reconciled(all_there)), []);
}

#[test]
fn token_auth_renders_the_secret_until_it_exists() {
    let missing = reconciled(
        cluster()
            .token_auth()
            .with_pods([head("rc-head-x").running_ready()]),
    );
    assert_eq!(renders(&missing), [Child::AuthSecret]);
    let present = cluster().token_auth().with([
        head_service(),
        object("v1", "Secret", "rc"),
        head("rc-head-x").running_ready().0,
    ]);
    assert_eq!(renders(&reconciled(present)), []);
}

#[test]
fn multi_host_groups_get_the_headless_service() {
    let plan = reconciled(
        cluster()
            .with_workers("tpu", 0)
            .hosts("tpu", 2)
            .with_pods([head("rc-head-x").running_ready()]),
    );
    assert_eq!(renders(&plan), [Child::HeadlessService]);
}

#[test]
fn the_serve_service_comes_only_with_the_annotation() {
    let on = cluster().annotated("ray.io/enable-serve-service", "true");
    assert_eq!(
        renders(&reconciled(
            on.with_pods([head("rc-head-x").running_ready()])
        )),
        [Child::ServeService]
    );
    assert_eq!(
        renders(&reconciled(
            cluster().with_pods([head("rc-head-x").running_ready()])
        )),
        []
    );
}

// §8.2–4: replicas, clamped.

#[test]
fn item_2_worker_pods_match_replicas_clamped_by_min_and_max() {
    let below_min = cluster().with_workers("cpu", 1).min_max("cpu", 3, 5);
    assert_eq!(
        rendered_workers(&reconciled(
            below_min.with_pods([head("rc-head-x").running_ready()])
        )),
        ["cpu"; 3]
    );
    let min_above_max = cluster().with_workers("cpu", 4).min_max("cpu", 3, 2);
    assert_eq!(
        rendered_workers(&reconciled(
            min_above_max.with_pods([head("rc-head-x").running_ready()])
        )),
        ["cpu"; 2]
    );
    let unset = cluster()
        .with_workers("cpu", 0)
        .min_max("cpu", 2, 5)
        .raw(|c| {
            c["spec"]["workerGroupSpecs"][0]
                .as_object_mut()
                .unwrap()
                .remove("replicas");
        });
    assert_eq!(
        rendered_workers(&reconciled(
            unset.with_pods([head("rc-head-x").running_ready()])
        )),
        ["cpu"; 2]
    );
}

#[test]
fn item_3_a_deleted_worker_is_replaced() {
    let mut pods = ready_workers("cpu", 2);
    pods.push(head("rc-head-x").running_ready());
    let plan = reconciled(cluster().with_workers("cpu", 3).with_pods(pods));
    assert_eq!(rendered_workers(&plan), ["cpu"]);
    assert_eq!(deletes(&plan), Vec::<String>::new());
}

#[test]
fn a_terminating_worker_counts_as_gone() {
    let mut pods = ready_workers("cpu", 1);
    pods.push(
        worker("cpu", "rc-cpu-worker-old")
            .running_ready()
            .terminating(),
    );
    pods.push(head("rc-head-x").running_ready());
    let plan = reconciled(cluster().with_workers("cpu", 2).with_pods(pods));
    assert_eq!(rendered_workers(&plan), ["cpu"]);
    assert!(
        deletes(&plan).is_empty(),
        "a Pod already being deleted is not deleted again"
    );
}

#[test]
fn item_4_replicas_above_max_create_only_max() {
    let plan = reconciled(
        cluster()
            .with_workers("cpu", 20)
            .min_max("cpu", 0, 4)
            .with_pods([head("rc-head-x").running_ready()]),
    );
    assert_eq!(rendered_workers(&plan), ["cpu"; 4]);
    assert_eq!(status_fields(&plan)["desiredWorkerReplicas"], 4);
}

// §8.5: state.

#[test]
fn item_5_state_is_ready_once_every_pod_runs_and_is_ready() {
    let mut pods = ready_workers("cpu", 2);
    pods.push(head("rc-head-x").running_ready());
    let plan = reconciled(cluster().with_workers("cpu", 2).with_pods(pods));
    let status = status_fields(&plan);
    assert_eq!(status["state"], "ready");
    assert_eq!(status["readyWorkerReplicas"], 2);
    assert_eq!(status["availableWorkerReplicas"], 2);
    assert_eq!(
        status["stateTransitionTimes"]["ready"],
        "2024-05-01T12:00:00Z"
    );
    assert_eq!(
        condition_is(&plan, "RayClusterProvisioned"),
        (True, "AllPodRunningAndReadyFirstTime".into())
    );
    assert_eq!(
        condition_is(&plan, "HeadPodReady"),
        (True, "HeadPodRunningAndReady".into())
    );
}

#[test]
fn state_is_not_ready_while_a_worker_is_missing_or_pending() {
    let pods = [
        head("rc-head-x").running_ready(),
        worker("cpu", "rc-cpu-worker-p"),
    ];
    let plan = reconciled(cluster().with_workers("cpu", 2).with_pods(pods));
    assert_eq!(status_fields(&plan).get("state"), None);
    assert_eq!(
        condition_is(&plan, "RayClusterProvisioned"),
        (False, "RayClusterPodsProvisioning".into())
    );
}

// §8.8–9: scale-down.

#[test]
fn item_8_workers_to_delete_deletes_exactly_those_and_nothing_at_random_with_the_autoscaler() {
    let mut pods = ready_workers("cpu", 4);
    pods.push(head("rc-head-x").running_ready());
    let c = cluster()
        .autoscaling()
        .with_workers("cpu", 1)
        .workers_to_delete("cpu", &["rc-cpu-worker-w1", "rc-cpu-worker-gone"]);
    let plan = reconciled(c.with(rbac_and(pods)));
    assert_eq!(deletes(&plan), ["rc-cpu-worker-w1"]);
    assert!(renders(&plan).is_empty());
    assert_eq!(event_reasons(&plan), ["DeletedWorkerPod"]);
}

fn rbac_and(pods: Vec<PodFx>) -> Vec<serde_json::Value> {
    let mut children = vec![
        head_service(),
        object("v1", "ServiceAccount", "rc"),
        object("rbac.authorization.k8s.io/v1", "Role", "rc"),
        object("rbac.authorization.k8s.io/v1", "RoleBinding", "rc"),
    ];
    children.extend(pods.into_iter().map(|p| p.0));
    children
}

#[test]
fn workers_to_delete_below_replicas_is_refilled_and_ignores_other_groups() {
    let mut pods = ready_workers("cpu", 2);
    pods.extend(ready_workers("gpu", 1));
    pods.push(head("rc-head-x").running_ready());
    let c = cluster()
        .with_workers("cpu", 2)
        .with_workers("gpu", 1)
        .workers_to_delete("cpu", &["rc-cpu-worker-w0", "rc-gpu-worker-w0"]);
    let plan = reconciled(c.with_pods(pods));
    assert_eq!(
        deletes(&plan),
        ["rc-cpu-worker-w0"],
        "a Pod of another group is not this group's to delete"
    );
    assert_eq!(rendered_workers(&plan), ["cpu"], "replicas still says 2");
}

#[test]
fn item_9_without_the_autoscaler_excess_workers_are_deleted_not_ready_first() {
    let mut pods = ready_workers("cpu", 3);
    pods.push(worker("cpu", "rc-cpu-worker-pending"));
    pods.push(head("rc-head-x").running_ready());
    let plan = reconciled(cluster().with_workers("cpu", 2).with_pods(pods));
    let deleted = deletes(&plan);
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[0], "rc-cpu-worker-pending");
    assert!(renders(&plan).is_empty());
}

#[test]
fn with_the_autoscaler_excess_workers_stay_until_it_names_them() {
    let mut pods = ready_workers("cpu", 3);
    pods.push(head("rc-head-x").running_ready());
    let plan = reconciled(
        cluster()
            .autoscaling()
            .with_workers("cpu", 1)
            .with(rbac_and(pods)),
    );
    assert!(deletes(&plan).is_empty());
}

#[test]
fn the_same_snapshot_gives_the_same_plan_and_scale_down_picks_the_same_pods_under_any_seed() {
    let snapshot = || {
        let mut pods = ready_workers("cpu", 5);
        pods.push(head("rc-head-x").running_ready());
        cluster()
            .with_workers("cpu", 2)
            .with_workers("gpu", 3)
            .with_pods(pods)
    };
    assert_eq!(reconciled(snapshot()), reconciled(snapshot()));
    let mut other_seed = snapshot();
    other_seed.seed = 7;
    assert_eq!(
        deletes(&reconciled(snapshot())),
        deletes(&reconciled(other_seed))
    );
}

// §8.10: unhealthy Pods.

#[test]
fn item_10_a_failed_worker_is_deleted_and_replaced_in_the_next_pass() {
    let mut pods = ready_workers("cpu", 1);
    pods.push(worker("cpu", "rc-cpu-worker-evicted").failed());
    pods.push(head("rc-head-x").running_ready());
    let plan = reconciled(cluster().with_workers("cpu", 2).with_pods(pods));
    assert_eq!(deletes(&plan), ["rc-cpu-worker-evicted"]);
    assert!(
        renders(&plan).is_empty(),
        "no creations in the pass that deletes unhealthy Pods"
    );
    assert_eq!(plan.requeue_after_ms, Some(SHORT_REQUEUE_MS));

    let next = vec![
        ready_workers("cpu", 1).remove(0),
        head("rc-head-x").running_ready(),
    ];
    assert_eq!(
        rendered_workers(&reconciled(
            cluster().with_workers("cpu", 2).with_pods(next)
        )),
        ["cpu"]
    );
}

#[test]
fn a_worker_whose_ray_container_exited_is_deleted_only_with_restart_policy_never() {
    let never = [
        head("rc-head-x").running_ready(),
        worker("cpu", "rc-cpu-worker-n").ray_container_exited("Never"),
    ];
    assert_eq!(
        deletes(&reconciled(
            cluster().with_workers("cpu", 1).with_pods(never)
        )),
        ["rc-cpu-worker-n"]
    );
    let always = [
        head("rc-head-x").running_ready(),
        worker("cpu", "rc-cpu-worker-a").ray_container_exited("Always"),
    ];
    assert!(
        deletes(&reconciled(
            cluster().with_workers("cpu", 1).with_pods(always)
        ))
        .is_empty(),
        "kubelet restarts it"
    );
}

#[test]
fn a_failed_head_is_deleted_first_and_recreated_in_the_next_pass() {
    let pods = [
        head("rc-head-x").failed(),
        worker("cpu", "rc-cpu-worker-w0"),
    ];
    let plan = reconciled(cluster().with_workers("cpu", 3).with_pods(pods));
    assert_eq!(deletes(&plan), ["rc-head-x"]);
    assert!(
        renders(&plan).is_empty(),
        "the workers wait for the new head"
    );
    assert_eq!(event_reasons(&plan), ["DeletedHeadPod"]);

    let next = reconciled(cluster().with_pods([head("rc-head-x").failed().terminating()]));
    assert!(matches!(renders(&next)[..], [Child::HeadPod(_)]));
}

#[test]
fn a_rayjob_cluster_that_was_provisioned_gets_no_new_head() {
    let c = cluster()
        .labelled("ray.io/originated-from-crd", "RayJob")
        .condition("RayClusterProvisioned", "True");
    assert!(renders(&reconciled(c.with_pods([]))).is_empty());
}

// §8.11: atomic suspend.

#[test]
fn item_11_suspend_deletes_every_pod_and_marks_the_cluster_suspending() {
    let mut pods = ready_workers("cpu", 2);
    pods.push(head("rc-head-x").running_ready());
    let plan = reconciled(cluster().with_workers("cpu", 2).suspended().with_pods(pods));
    assert_eq!(
        deletes(&plan),
        ["rc-cpu-worker-w0", "rc-cpu-worker-w1", "rc-head-x"]
    );
    assert_eq!(event_reasons(&plan), ["DeletedPod"]);
    assert_eq!(
        condition_is(&plan, "RayClusterSuspending"),
        (True, "RayClusterSuspending".into())
    );
    assert_eq!(
        condition_is(&plan, "RayClusterSuspended"),
        (False, "RayClusterSuspended".into())
    );
}

#[test]
fn a_suspend_in_progress_finishes_even_when_suspend_flips_back() {
    let pods = [head("rc-head-x").running_ready()];
    let c = cluster()
        .unsuspended()
        .condition("RayClusterSuspending", "True");
    let plan = reconciled(c.with_pods(pods));
    assert_eq!(deletes(&plan), ["rc-head-x"]);
    assert!(renders(&plan).is_empty());
    assert_eq!(
        condition(&plan, "RayClusterSuspending"),
        None,
        "still Suspending: nothing to change"
    );
}

#[test]
fn once_no_pods_remain_the_cluster_is_suspended_and_no_longer_provisioned() {
    let c = cluster()
        .with_workers("cpu", 2)
        .suspended()
        .condition("RayClusterSuspending", "True")
        .condition("RayClusterProvisioned", "True");
    let plan = reconciled(c.with_pods([]));
    assert!(
        renders(&plan)
            .iter()
            .all(|c| !matches!(c, Child::HeadPod(_) | Child::WorkerPod(_)))
    );
    assert_eq!(
        condition_is(&plan, "RayClusterSuspending"),
        (False, "RayClusterSuspending".into())
    );
    assert_eq!(
        condition_is(&plan, "RayClusterSuspended"),
        (True, "RayClusterSuspended".into())
    );
    assert_eq!(
        condition_is(&plan, "RayClusterProvisioned"),
        (False, "RayClusterPodsProvisioning".into())
    );
    assert_eq!(status_fields(&plan)["state"], "suspended");
}

#[test]
fn a_flip_back_after_the_suspend_finished_recreates_the_pods() {
    let c = cluster()
        .with_workers("cpu", 2)
        .unsuspended()
        .condition("RayClusterSuspended", "True");
    let plan = reconciled(c.with_pods([]));
    assert!(matches!(renders(&plan)[0], Child::HeadPod(_)));
    assert_eq!(rendered_workers(&plan), ["cpu", "cpu"]);
    assert_eq!(
        condition_is(&plan, "RayClusterSuspended"),
        (False, "RayClusterSuspended".into())
    );
}

#[test]
fn a_suspended_cluster_stays_empty() {
    let c = cluster()
        .with_workers("cpu", 2)
        .suspended()
        .condition("RayClusterSuspended", "True");
    let plan = reconciled(c.with_pods([]));
    assert!(renders(&plan).is_empty() && deletes(&plan).is_empty());
}

#[test]
fn suspending_and_suspended_both_true_is_repaired_with_a_warning() {
    let c = cluster()
        .condition("RayClusterSuspending", "True")
        .condition("RayClusterSuspended", "True");
    let plan = reconciled(c.with_pods([head("rc-head-x").running_ready()]));
    assert_eq!(warnings(&plan), ["InvalidRayClusterStatus"]);
    assert_eq!(deletes(&plan), ["rc-head-x"]);
    assert_eq!(
        condition_is(&plan, "RayClusterSuspended"),
        (False, "RayClusterSuspended".into())
    );
}

// §8.12: per-group suspend.

#[test]
fn item_12_suspending_a_group_deletes_only_its_pods() {
    let mut pods = ready_workers("cpu", 2);
    pods.extend(ready_workers("gpu", 1));
    pods.push(head("rc-head-x").running_ready());
    let plan = reconciled(
        cluster()
            .with_workers("cpu", 2)
            .with_workers("gpu", 1)
            .group_suspended("cpu")
            .with_pods(pods),
    );
    assert_eq!(deletes(&plan), ["rc-cpu-worker-w0", "rc-cpu-worker-w1"]);
    assert_eq!(event_reasons(&plan), ["DeletedWorkerPod"]);
    assert_eq!(status_fields(&plan)["desiredWorkerReplicas"], 1);
}

#[test]
fn item_12_suspending_a_group_is_invalid_with_the_autoscaler() {
    let c = cluster()
        .autoscaling()
        .with_workers("cpu", 2)
        .group_suspended("cpu");
    match reconcile(&c.with_pods([])) {
        Err(PluginError::InvalidSpec(m)) => {
            assert!(m.contains("workerGroupSpecs[cpu].suspend"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

// §8.13 and §8.16: multi-host groups.

#[test]
fn item_13_multi_host_groups_create_whole_replicas_with_replica_and_host_labels() {
    let plan = reconciled(
        cluster()
            .with_workers("tpu", 2)
            .hosts("tpu", 2)
            .with([head_service(), object("v1", "Service", "rc-headless")]),
    );
    let replicas: Vec<MultiHostReplica> = renders(&plan)
        .into_iter()
        .filter_map(|c| {
            if let Child::WorkerPod(w) = c {
                w.replica
            } else {
                None
            }
        })
        .collect();
    assert_eq!(replicas.len(), 4);
    assert_eq!(
        replicas
            .iter()
            .map(|r| (r.index, r.host_index))
            .collect::<Vec<_>>(),
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    );
    assert_eq!(replicas[0].name, replicas[1].name);
    assert_ne!(replicas[0].name, replicas[2].name);
    assert!(replicas[0].name.starts_with("tpu-"));
    assert_eq!(status_fields(&plan)["desiredWorkerReplicas"], 4);
}

fn host_pod(replica: &str, index: u32, host: u32) -> PodFx {
    worker("tpu", &format!("rc-tpu-worker-{replica}{host}"))
        .running_ready()
        .replica(&format!("tpu-{replica}"), index, host)
}

#[test]
fn item_13_an_unhealthy_host_takes_its_whole_replica_down() {
    let pods = [
        head("rc-head-x").running_ready(),
        host_pod("a", 0, 0),
        host_pod("a", 0, 1).failed(),
        host_pod("b", 1, 0),
        host_pod("b", 1, 1),
    ];
    let plan = reconciled(
        cluster()
            .with_workers("tpu", 2)
            .hosts("tpu", 2)
            .with_pods(pods),
    );
    assert_eq!(deletes(&plan), ["rc-tpu-worker-a0", "rc-tpu-worker-a1"]);
    assert!(
        renders(&plan)
            .iter()
            .all(|c| !matches!(c, Child::WorkerPod(_)))
    );
}

#[test]
fn item_13_an_incomplete_replica_is_deleted_and_a_whole_one_created_at_the_free_index() {
    let pods = [
        head("rc-head-x").running_ready(),
        host_pod("a", 0, 0),
        host_pod("b", 1, 0),
        host_pod("b", 1, 1),
    ];
    let plan = reconciled(
        cluster()
            .with_workers("tpu", 2)
            .hosts("tpu", 2)
            .with_pods(pods),
    );
    assert_eq!(deletes(&plan), ["rc-tpu-worker-a0"]);
    let indices: Vec<(u32, u32)> = renders(&plan)
        .into_iter()
        .filter_map(|c| {
            if let Child::WorkerPod(w) = c {
                w.replica.map(|r| (r.index, r.host_index))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(indices, [(0, 0), (0, 1)]);
}

#[test]
fn item_13_scale_down_and_workers_to_delete_remove_whole_replicas() {
    let pods = || {
        [
            head("rc-head-x").running_ready(),
            host_pod("a", 0, 0),
            host_pod("a", 0, 1),
            host_pod("b", 1, 0),
            host_pod("b", 1, 1),
        ]
    };
    let down = reconciled(
        cluster()
            .with_workers("tpu", 1)
            .hosts("tpu", 2)
            .with_pods(pods()),
    );
    assert_eq!(deletes(&down).len(), 2);
    assert_eq!(
        deletes(&down)[0][..deletes(&down)[0].len() - 1],
        deletes(&down)[1][..deletes(&down)[1].len() - 1]
    );

    let named = cluster()
        .with_workers("tpu", 2)
        .hosts("tpu", 2)
        .workers_to_delete("tpu", &["rc-tpu-worker-b1"]);
    let plan = reconciled(named.with_pods(pods()));
    assert_eq!(deletes(&plan), ["rc-tpu-worker-b0", "rc-tpu-worker-b1"]);
}

#[test]
fn item_16_zero_hosts_create_no_pods() {
    let plan = reconciled(
        cluster()
            .with_workers("tpu", 3)
            .hosts("tpu", 0)
            .with_pods([head("rc-head-x").running_ready()]),
    );
    assert!(rendered_workers(&plan).is_empty());
    assert_eq!(status_fields(&plan)["desiredWorkerReplicas"], 0);
}

// §8.15: desired resources.

#[test]
fn item_15_desired_resources_count_limits_when_there_are_no_requests() {
    let c = cluster()
        .with_workers("gpu", 2)
        .limits_only("gpu", "500m", "4Gi", "1");
    let status = status_fields(&reconciled(c.with_pods([])));
    assert_eq!(status["desiredCPU"], "2", "1 for the head + 2 × 500m");
    assert_eq!(status["desiredMemory"], "10Gi", "2Gi + 2 × 4Gi");
    assert_eq!(status["desiredGPU"], "2");
    assert_eq!(status["desiredTPU"], "0");
    assert_eq!(status["minWorkerReplicas"], 0);
    assert_eq!(status["maxWorkerReplicas"], 10);
}

#[test]
fn suspended_groups_count_for_no_resources() {
    let c = cluster().with_workers("cpu", 2).group_suspended("cpu");
    let status = status_fields(&reconciled(c.with_pods([])));
    assert_eq!(status["desiredCPU"], "1");
    assert_eq!(status["maxWorkerReplicas"], 0);
}

// §8.17: conditions.

#[test]
fn item_17_head_pod_ready_tells_why_the_head_is_not_ready() {
    let missing = reconciled(cluster().with_pods([]));
    assert_eq!(
        condition_is(&missing, "HeadPodReady"),
        (False, "HeadPodNotFound".into())
    );
    let pulling = reconciled(cluster().with_pods([head("rc-head-x").running_not_ready()]));
    let c = condition(&pulling, "HeadPodReady").unwrap();
    assert_eq!((c.status, c.reason.as_str()), (False, "ImagePullBackOff"));
    assert!(
        c.message.ends_with("container ray: Back-off pulling image"),
        "{}",
        c.message
    );
}

const NO_GPU: &str = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.";

#[test]
fn a_head_pod_the_scheduler_cannot_place_makes_head_pod_ready_false_with_the_schedulers_words() {
    let plan = reconciled(cluster().with_pods([head("rc-head-x").unschedulable(NO_GPU)]));
    let c = condition(&plan, "HeadPodReady").unwrap();
    assert_eq!(
        (c.status, c.reason.as_str(), c.message.as_str()),
        (False, "Unschedulable", NO_GPU)
    );
}

#[test]
fn a_head_pod_whose_init_container_cannot_pull_its_image_names_the_init_container() {
    let pod = head("rc-head-x").init_waiting(
        "wait-gcs",
        "ImagePullBackOff",
        "Back-off pulling image \"busybox:nope\"",
    );
    let c = condition(&reconciled(cluster().with_pods([pod])), "HeadPodReady").unwrap();
    assert_eq!((c.status, c.reason.as_str()), (False, "ImagePullBackOff"));
    assert_eq!(
        c.message,
        "containers with unready status: [ray]; init container wait-gcs: Back-off pulling image \"busybox:nope\""
    );
}

#[test]
fn a_head_pod_being_created_names_no_cause_beyond_its_containers_state() {
    let pod = head("rc-head-x").waiting("ContainerCreating", "");
    let c = condition(&reconciled(cluster().with_pods([pod])), "HeadPodReady").unwrap();
    assert_eq!((c.status, c.reason.as_str()), (False, "ContainerCreating"));
    assert_eq!(c.message, "containers with unready status: [ray]");
}

#[test]
fn a_worker_in_image_pull_back_off_makes_worker_pods_ready_false_naming_the_pod_and_group() {
    let pods = [
        head("rc-head-x").running_ready(),
        worker("gpu", "rc-gpu-worker-a").running_ready(),
        worker("gpu", "rc-gpu-worker-b")
            .waiting("ImagePullBackOff", "Back-off pulling image \"ray:nope\""),
    ];
    let plan = reconciled(cluster().with_workers("gpu", 2).with_pods(pods));
    let c = condition(&plan, "WorkerPodsReady").unwrap();
    assert_eq!((c.status, c.reason.as_str()), (False, "ImagePullBackOff"));
    assert_eq!(
        c.message,
        "worker Pod rc-gpu-worker-b (group gpu): container ray: Back-off pulling image \"ray:nope\""
    );
    assert_eq!(
        condition_is(&plan, "HeadPodReady"),
        (True, "HeadPodRunningAndReady".into())
    );
}

#[test]
fn worker_pods_ready_names_the_first_stuck_worker_by_name_whatever_the_list_order() {
    let pods = || {
        [
            worker("cpu", "rc-cpu-worker-z").waiting(
                "CrashLoopBackOff",
                "back-off 10s restarting failed container",
            ),
            worker("gpu", "rc-gpu-worker-a").unschedulable(NO_GPU),
            head("rc-head-x").running_ready(),
        ]
    };
    let c = cluster().with_workers("cpu", 1).with_workers("gpu", 1);
    let plan = reconciled(c.with_pods(pods()));
    let w = condition(&plan, "WorkerPodsReady").unwrap();
    assert_eq!((w.status, w.reason.as_str()), (False, "CrashLoopBackOff"));
    assert_eq!(
        w.message,
        "worker Pod rc-cpu-worker-z (group cpu): container ray: back-off 10s restarting failed container"
    );
    let mut reversed: Vec<PodFx> = pods().into_iter().collect();
    reversed.reverse();
    let again = reconciled(
        cluster()
            .with_workers("cpu", 1)
            .with_workers("gpu", 1)
            .with_pods(reversed),
    );
    assert_eq!(condition(&again, "WorkerPodsReady"), Some(w));
}

#[test]
fn worker_pods_ready_is_true_once_every_worker_is_ready_and_none_is_missing() {
    let mut pods = ready_workers("gpu", 1);
    pods.push(head("rc-head-x").running_ready());
    let missing = reconciled(cluster().with_workers("gpu", 2).with_pods(pods));
    let c = condition(&missing, "WorkerPodsReady").unwrap();
    assert_eq!(
        (c.status, c.reason.as_str(), c.message.as_str()),
        (False, "WorkerPodsNotReady", "1 of 2 worker Pods are Ready")
    );

    let mut pods = ready_workers("gpu", 2);
    pods.push(head("rc-head-x").running_ready());
    let all = reconciled(cluster().with_workers("gpu", 2).with_pods(pods));
    assert_eq!(
        condition_is(&all, "WorkerPodsReady"),
        (True, "AllWorkerPodsReady".into())
    );
}

#[test]
fn a_cluster_without_workers_has_no_worker_pods_ready_and_a_suspended_one_loses_it() {
    let plan = reconciled(cluster().with_pods([head("rc-head-x").running_ready()]));
    assert_eq!(condition(&plan, "WorkerPodsReady"), None);
    let suspended = cluster()
        .with_workers("gpu", 1)
        .suspended()
        .condition("RayClusterSuspended", "True")
        .condition("WorkerPodsReady", "True")
        .with_pods([]);
    let c = condition(&reconciled(suspended), "WorkerPodsReady").unwrap();
    assert!(c.is_removal(), "{c:?}");
}

#[test]
fn item_17_provisioned_never_flips_back_once_true() {
    let c = cluster().condition("RayClusterProvisioned", "True");
    let plan = reconciled(c.with_pods([head("rc-head-x").failed()]));
    assert_eq!(condition(&plan, "RayClusterProvisioned"), None);
}

#[test]
fn item_17_a_failed_create_reported_by_the_host_is_a_replica_failure_until_it_is_over() {
    let failing = with_fact(
        cluster().with_pods([]),
        "wasmray.dev/replica-failure",
        json!({ "message": "quota exceeded" }),
    );
    let c = condition(&reconciled(failing), "RayClusterReplicaFailure").unwrap();
    assert_eq!(
        (c.status, c.reason.as_str(), c.message.as_str()),
        (True, "FailedCreateWorkerPod", "quota exceeded")
    );

    let head_failing = with_fact(
        cluster().with_pods([]),
        "wasmray.dev/replica-failure",
        json!({ "reason": "FailedCreateHeadPod", "message": "denied" }),
    );
    assert_eq!(
        condition_is(&reconciled(head_failing), "RayClusterReplicaFailure"),
        (True, "FailedCreateHeadPod".into())
    );

    let over = cluster()
        .condition("RayClusterReplicaFailure", "True")
        .with_pods([]);
    let removal = condition(&reconciled(over), "RayClusterReplicaFailure").unwrap();
    assert!(
        removal.is_removal(),
        "a failure that is over removes the condition: {removal:?}"
    );
    let left_false_before = cluster()
        .condition("RayClusterReplicaFailure", "False")
        .with_pods([]);
    assert!(
        condition(&reconciled(left_false_before), "RayClusterReplicaFailure")
            .is_some_and(|c| c.is_removal()),
        "the False condition an earlier version left goes too"
    );
    assert_eq!(
        condition(
            &reconciled(cluster().with_pods([])),
            "RayClusterReplicaFailure"
        ),
        None,
        "never failed: no condition"
    );
}

// §8.19 and §5: GCS fault tolerance.

#[test]
fn item_19_gcs_ft_adds_the_cleanup_finalizer_first() {
    let plan = reconciled(
        cluster()
            .gcs_ft()
            .with_pods([head("rc-head-x").running_ready()]),
    );
    assert_eq!(
        applies(&plan),
        [json!({ "apiVersion": "ray.io/v1", "kind": "RayCluster",
                 "metadata": { "name": "rc", "namespace": "ns", "finalizers": ["ray.io/gcs-ft-redis-cleanup-finalizer"] } })]
    );
    assert!(matches!(plan.ops[0], Op::Apply(_)));
    assert!(
        applies(&reconciled(
            cluster().gcs_ft().with_finalizer().with_pods([])
        ))
        .is_empty()
    );
}

#[test]
fn without_redis_cleanup_in_the_operator_settings_no_finalizer_is_added() {
    let snapshot = with_fact(
        cluster().gcs_ft().with_pods([head("rc-head-x").running_ready()]),
        "wasmray.dev/operator-settings",
        json!({ "enableGcsFtRedisCleanup": false }),
    );
    assert!(applies(&reconciled(snapshot)).is_empty());
}

#[test]
fn item_19_a_deleted_ft_cluster_deletes_its_pods_and_waits_for_the_head_to_go() {
    let c = cluster()
        .with_workers("cpu", 1)
        .gcs_ft()
        .with_finalizer()
        .deleted_ago(5);
    let plan = reconciled(c.with_pods([
        head("rc-head-x").running_ready(),
        worker("cpu", "rc-cpu-worker-w0"),
    ]));
    assert_eq!(deletes(&plan), ["rc-cpu-worker-w0", "rc-head-x"]);
    assert!(renders(&plan).is_empty());
    assert_eq!(plan.requeue_after_ms, Some(10_000));
}

#[test]
fn item_19_once_the_head_is_gone_the_cleanup_job_runs_and_its_end_releases_the_finalizer() {
    let c = || cluster().gcs_ft().with_finalizer().deleted_ago(30);
    let start = reconciled(c().with([]));
    assert_eq!(renders(&start), [Child::RedisCleanupJob]);
    assert_eq!(event_reasons(&start), ["CreatedRedisCleanupJob"]);

    let running = reconciled(c().with([cleanup_job(None)]));
    assert!(running.ops.is_empty());
    assert_eq!(running.requeue_after_ms, Some(10_000));

    for end in ["Complete", "Failed"] {
        let done = reconciled(c().with([cleanup_job(Some(end))]));
        assert_eq!(applies(&done)[0]["metadata"]["finalizers"], json!([]));
        assert_eq!(done.requeue_after_ms, None);
    }
}

#[test]
fn a_cleanup_that_outlives_its_timeout_releases_the_finalizer_with_a_warning() {
    let stuck = reconciled(
        cluster()
            .gcs_ft()
            .with_finalizer()
            .deleted_ago(300)
            .with([cleanup_job(None)]),
    );
    assert_eq!(applies(&stuck)[0]["metadata"]["finalizers"], json!([]));
    assert_eq!(warnings(&stuck), ["ForceDeletedStuckCluster"]);

    let custom = cluster()
        .gcs_ft()
        .with_finalizer()
        .annotated("ray.io/gcs-ft-deletion-timeout", "1m")
        .deleted_ago(55);
    let waiting = reconciled(custom.with([cleanup_job(None)]));
    assert_eq!(
        waiting.requeue_after_ms,
        Some(5_000),
        "comes back exactly at the deadline"
    );
}

#[test]
fn a_deleted_cluster_without_the_finalizer_is_left_to_garbage_collection() {
    let plan = reconciled(
        cluster()
            .deleted_ago(1)
            .with_pods([head("rc-head-x").running_ready()]),
    );
    assert_eq!(plan, wasmray_guest_sdk::Plan::new());
}

// The rest of the rules.

#[test]
fn a_cluster_managed_by_multikueue_is_left_alone() {
    let plan = reconciled(cluster().managed_by("kueue.x-k8s.io/multikueue").with([]));
    assert_eq!(plan, wasmray_guest_sdk::Plan::new());
}

#[test]
fn status_is_stable_when_nothing_changed() {
    let pods = || {
        let mut pods = ready_workers("cpu", 1);
        pods.push(head("rc-head-x").running_ready());
        pods
    };
    let first = reconciled(cluster().with_workers("cpu", 1).with_pods(pods()));
    let fields = status_fields(&first);
    assert_eq!(fields["lastUpdateTime"], "2024-05-01T12:00:00Z");

    // Write the first plan's status back, then reconcile again an hour later.
    let mut written = fields.clone();
    let Some(Op::Status(update)) = first.ops.last() else {
        panic!()
    };
    written["conditions"] = json!(update.conditions.iter().map(|c| json!({
        "type": c.type_, "status": match c.status { True => "True", False => "False", Unknown => "Unknown" }, "reason": c.reason, "message": c.message,
        "lastTransitionTime": "2024-05-01T12:00:00Z"
    })).collect::<Vec<_>>());
    let mut again = cluster()
        .with_workers("cpu", 1)
        .status(written)
        .with_pods(pods());
    again.now += 3_600_000;
    let second = reconciled(again);
    assert_eq!(
        status_fields(&second).get("lastUpdateTime"),
        None,
        "nothing changed, so no new timestamp"
    );
    assert_eq!(status_fields(&second).get("stateTransitionTimes"), None);
    assert_eq!(second.requeue_after_ms, Some(DEFAULT_REQUEUE_MS));
}

#[test]
fn head_info_and_endpoints_come_from_the_head_pod_and_service() {
    let c = cluster();
    let with_ip = c.with([
        service("rc-head-svc", "10.96.0.7", json!([{ "name": "dashboard", "port": 8265, "targetPort": 8265 },
                                                   { "name": "client", "port": 10001, "nodePort": 30001, "targetPort": 10001 }])),
        head("rc-head-x").running_ready().0,
    ]);
    let status = status_fields(&reconciled(with_ip));
    assert_eq!(
        status["head"],
        json!({ "podIP": "10.0.0.1", "podName": "rc-head-x", "serviceIP": "10.96.0.7", "serviceName": "rc-head-svc" })
    );
    assert_eq!(
        status["endpoints"],
        json!({ "client": "30001", "dashboard": "8265" })
    );

    let headless = status_fields(&reconciled(
        cluster().with_pods([head("rc-head-x").running_ready()]),
    ));
    assert_eq!(
        headless["head"]["serviceIP"], "10.0.0.1",
        "a headless Service reports the head Pod's IP"
    );
    assert_eq!(headless["observedGeneration"], 1);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let garbage = wasmray_guest_sdk::Snapshot {
        primary: "{".into(),
        children: vec![],
        facts: vec![],
        now: 0,
        seed: 0,
    };
    assert!(matches!(
        reconcile(&garbage),
        Err(PluginError::InvalidInput(_))
    ));
    let no_spec = wasmray_guest_sdk::Snapshot {
        primary: json!({ "metadata": { "name": "rc" } }).to_string(),
        ..garbage.clone()
    };
    assert!(matches!(
        reconcile(&no_spec),
        Err(PluginError::InvalidInput(_))
    ));
    let bad_child = wasmray_guest_sdk::Snapshot {
        children: vec!["[]".into()],
        ..cluster().with([])
    };
    assert!(matches!(
        reconcile(&bad_child),
        Err(PluginError::InvalidInput(_))
    ));
}

#[test]
fn specs_the_schema_cannot_reject_are_invalid_specs_with_a_precise_message() {
    let no_containers =
        cluster().raw(|c| c["spec"]["headGroupSpec"]["template"]["spec"]["containers"] = json!([]));
    assert!(
        matches!(reconcile(&no_containers.with([])), Err(PluginError::InvalidSpec(m)) if m.contains("headGroupSpec"))
    );
    let twice = cluster().with_workers("cpu", 1).with_workers("cpu", 2);
    assert!(
        matches!(reconcile(&twice.with([])), Err(PluginError::InvalidSpec(m)) if m.contains("\"cpu\" is used more than once"))
    );
}

// §2.11: the dashboard Ingress.

fn with_ingress(c: crate::fixtures::ClusterFx) -> crate::fixtures::ClusterFx {
    c.raw(|c| c["spec"]["headGroupSpec"]["enableIngress"] = json!(true))
}

/// An Ingress child as the host's cache holds it.
fn cached_ingress(owner_uid: &str) -> serde_json::Value {
    json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": { "name": "rc-head-ingress", "namespace": "ns", "uid": "uid-ingress",
                          "labels": { "ray.io/cluster": "rc" },
                          "ownerReferences": [{ "apiVersion": "ray.io/v1", "kind": "RayCluster", "name": "rc",
                                                "uid": owner_uid, "controller": true, "blockOwnerDeletion": true }] },
            "spec": {} })
}

#[test]
fn enable_ingress_applies_kuberays_dashboard_ingress_owned_by_the_cluster() {
    let plan = reconciled(
        with_ingress(cluster())
            .annotated("kubernetes.io/ingress.class", "nginx")
            .annotated("nginx.ingress.kubernetes.io/rewrite-target", "/$1")
            .annotated("kubectl.kubernetes.io/last-applied-configuration", "{}")
            .with([]),
    );
    assert_eq!(
        applies(&plan),
        [json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {
                "name": "rc-head-ingress", "namespace": "ns",
                "labels": { "ray.io/cluster": "rc", "ray.io/identifier": "rc-head",
                            "app.kubernetes.io/name": "kuberay", "app.kubernetes.io/created-by": "kuberay-operator" },
                "annotations": { "nginx.ingress.kubernetes.io/rewrite-target": "/$1" },
                "ownerReferences": [{ "apiVersion": "ray.io/v1", "kind": "RayCluster", "name": "rc", "uid": "uid-rc",
                                      "controller": true, "blockOwnerDeletion": true }]
            },
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{ "http": { "paths": [{
                    "path": "/rc/(.*)", "pathType": "Exact",
                    "backend": { "service": { "name": "rc-head-svc", "port": { "number": 8265 } } }
                }] } }]
            }
        })]
    );
    assert_eq!(event_reasons(&plan)[..2], ["CreatedIngress", "CreatedService"], "KubeRay's order: the Ingress before the head Service");
    assert_eq!(events(&plan)[0].message, "Created ingress ns/rc-head-ingress");
}

#[test]
fn the_ingress_follows_a_custom_head_service_and_dashboard_port() {
    let plan = reconciled(
        with_ingress(cluster())
            .raw(|c| {
                c["spec"]["headGroupSpec"]["headService"] = json!({ "metadata": { "name": "dash" } });
                c["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"] =
                    json!([{ "name": "gcs-server", "containerPort": 6379 }, { "name": "dashboard", "containerPort": 9000 }]);
            })
            .with([]),
    );
    let ingress = &applies(&plan)[0];
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"],
        json!({ "service": { "name": "dash", "port": { "number": 9000 } } })
    );
    assert!(ingress["spec"].get("ingressClassName").is_none(), "no class annotation, no class");
    assert!(ingress["metadata"].get("annotations").is_none());
}

#[test]
fn an_existing_ingress_is_applied_again_as_an_update_and_turning_it_off_deletes_only_ours() {
    let existing = reconciled(with_ingress(cluster()).with([head_service(), cached_ingress("uid-rc")]));
    assert_eq!(applies(&existing).len(), 1, "the host drops it if the cached one already holds");
    assert_eq!(event_reasons(&existing)[0], "UpdatedIngress");

    let off = reconciled(cluster().with([head_service(), cached_ingress("uid-rc")]));
    assert!(applies(&off).is_empty());
    let deleted: Vec<_> = off
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Delete(r) if r.kind == "Ingress" => Some((r.name.clone(), r.uid.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [("rc-head-ingress".to_owned(), Some("uid-ingress".to_owned()))]);
    assert_eq!(event_reasons(&off)[0], "DeletedIngress");

    let theirs = reconciled(cluster().with([head_service(), cached_ingress("uid-someone-else")]));
    assert!(
        !theirs.ops.iter().any(|op| matches!(op, Op::Delete(_))),
        "an Ingress this cluster does not control is left alone"
    );
}

// Settings KubeRay would silently ignore.

#[test]
fn the_ft_annotation_on_a_pod_template_gets_a_warning_and_a_condition_naming_where_it_belongs() {
    let misplaced = cluster().with_workers("cpu", 1).raw(|c| {
        c["spec"]["headGroupSpec"]["template"]["metadata"] = json!({ "annotations": { "ray.io/ft-enabled": "true" } });
    });
    let plan = reconciled(misplaced.with([]));
    assert_eq!(warnings(&plan), ["IgnoredSetting"]);
    let warning = &events(&plan)[0];
    assert!(matches!(plan.ops[0], Op::Event(_)), "the Warning hangs on no write");
    assert!(
        warning.message.contains("headGroupSpec.template.metadata.annotations[\"ray.io/ft-enabled\"]")
            && warning.message.contains("RayCluster's own metadata.annotations"),
        "{}",
        warning.message
    );
    let c = condition(&plan, "RayClusterIgnoredSettings").unwrap();
    assert_eq!((c.status, c.reason.as_str()), (True, "FaultToleranceAnnotationOnPodTemplate"));
    assert_eq!(c.message, warning.message);
    assert!(applies(&plan).is_empty(), "KubeRay's behaviour is kept: no fault tolerance, no finalizer");

    let worker = cluster().with_workers("cpu", 1).raw(|c| {
        c["spec"]["workerGroupSpecs"][0]["template"]["metadata"] = json!({ "annotations": { "ray.io/ft-enabled": "TRUE" } });
    });
    let plan = reconciled(worker.with([]));
    assert!(events(&plan)[0].message.starts_with("workerGroupSpecs[cpu].template.metadata.annotations"));

    let also_on_the_cluster = cluster().annotated("ray.io/ft-enabled", "true").raw(|c| {
        c["spec"]["headGroupSpec"]["template"]["metadata"] = json!({ "annotations": { "ray.io/ft-enabled": "true" } });
    });
    assert!(warnings(&reconciled(also_on_the_cluster.with([]))).is_empty(), "with FT on the cluster it is harmless");
}

#[test]
fn an_ignored_setting_warns_once_and_its_condition_goes_when_it_is_fixed() {
    let misplaced = || {
        cluster().raw(|c| {
            c["spec"]["headGroupSpec"]["template"]["metadata"] = json!({ "annotations": { "ray.io/ft-enabled": "true" } });
        })
    };
    let first = reconciled(misplaced().with([]));
    let recorded = condition(&first, "RayClusterIgnoredSettings").unwrap();
    let again = misplaced().raw(|c| {
        c["status"]["conditions"] = json!([{ "type": "RayClusterIgnoredSettings", "status": "True", "reason": recorded.reason,
            "message": recorded.message, "lastTransitionTime": "2024-05-01T11:00:00Z" }]);
    });
    let plan = reconciled(again.with([]));
    assert!(warnings(&plan).is_empty(), "the condition already says it");
    assert_eq!(condition_is(&plan, "RayClusterIgnoredSettings"), (True, recorded.reason.clone()));

    let fixed = cluster().condition("RayClusterIgnoredSettings", "True");
    let c = condition(&reconciled(fixed.with([])), "RayClusterIgnoredSettings").unwrap();
    assert!(c.is_removal(), "{c:?}");
    assert_eq!(condition(&reconciled(cluster().with([])), "RayClusterIgnoredSettings"), None);
}

#[test]
fn num_gpus_that_disagrees_with_the_gpu_limit_is_named_and_still_passed_on() {
    let disagreeing = cluster()
        .with_workers("gpu", 1)
        .limits_only("gpu", "4", "16Gi", "1")
        .raw(|c| c["spec"]["workerGroupSpecs"][0]["rayStartParams"] = json!({ "num-gpus": "2" }));
    let plan = reconciled(disagreeing.with([]));
    let c = condition(&plan, "RayClusterIgnoredSettings").unwrap();
    assert_eq!(c.reason, "NumGpusDisagreesWithGpuLimit");
    assert!(
        c.message.contains("workerGroupSpecs[gpu].rayStartParams[\"num-gpus\"] = \"2\"")
            && c.message.contains("a GPU limit of 1 (nvidia.com/gpu)")
            && c.message.contains("resources.limits"),
        "{}",
        c.message
    );
    assert_eq!(rendered_workers(&plan).len(), 1, "the group is still created, as KubeRay does");

    let head_without_gpus = cluster().raw(|c| c["spec"]["headGroupSpec"]["rayStartParams"] = json!({ "num-gpus": "1" }));
    let c = condition(&reconciled(head_without_gpus.with([])), "RayClusterIgnoredSettings").unwrap();
    assert!(c.message.contains("headGroupSpec.rayStartParams") && c.message.contains("no GPU limit"), "{}", c.message);

    let agreeing = cluster()
        .with_workers("gpu", 1)
        .limits_only("gpu", "4", "16Gi", "2")
        .raw(|c| c["spec"]["workerGroupSpecs"][0]["rayStartParams"] = json!({ "num-gpus": "2" }));
    assert_eq!(condition(&reconciled(agreeing.with([])), "RayClusterIgnoredSettings"), None);
    let zero = cluster().raw(|c| c["spec"]["headGroupSpec"]["rayStartParams"] = json!({ "num-gpus": "0" }));
    assert_eq!(condition(&reconciled(zero.with([])), "RayClusterIgnoredSettings"), None);
}

#[test]
fn ray_redis_address_without_fault_tolerance_is_rejected_as_kuberay_does_naming_the_field_to_use() {
    let env = |c: &mut serde_json::Value| {
        c["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] = json!([{ "name": "RAY_REDIS_ADDRESS", "value": "redis:6379" }]);
    };
    let without_ft = cluster().raw(env);
    assert!(matches!(
        reconcile(&without_ft.with([])),
        Err(PluginError::InvalidSpec(m)) if m.contains("RAY_REDIS_ADDRESS") && m.contains("spec.gcsFaultToleranceOptions.redisAddress")
    ));
    let legacy_ft = cluster().annotated("ray.io/ft-enabled", "true").raw(env);
    assert!(reconcile(&legacy_ft.with([])).is_ok(), "with the legacy annotation it is how FT is configured");
}

// Upgrades of running clusters: `upgradeStrategy: Recreate` and the rolling update.

/// `n` Running and Ready workers of `group`, stamped as built from `from`.
fn workers_built_from(from: &crate::fixtures::ClusterFx, group: &str, n: usize) -> Vec<PodFx> {
    ready_workers(group, n).into_iter().map(|w| w.built_from(from)).collect()
}

fn ready_head_built_from(from: &crate::fixtures::ClusterFx) -> PodFx {
    head("rc-head-x").running_ready().built_from(from)
}

#[test]
fn recreate_deletes_every_pod_once_the_spec_on_the_head_is_old() {
    let before = cluster().with_workers("cpu", 2).recreate();
    let after = before.clone().worker_image("cpu", "rayproject/ray:2.53.0");
    let pods = || std::iter::once(ready_head_built_from(&before)).chain(workers_built_from(&before, "cpu", 2));
    let plan = reconciled(after.clone().with_pods(pods()));
    assert_eq!(deletes(&plan), ["rc-cpu-worker-w0", "rc-cpu-worker-w1", "rc-head-x"]);
    assert_eq!(renders(&plan), [], "the new Pods come in the next pass");
    let event = events(&plan).into_iter().find(|e| e.reason == "DeletedPod").unwrap();
    assert_eq!(event.message, "Deleted 3 Pods of RayCluster ns/rc for upgradeStrategy Recreate: they were built from an earlier spec");

    assert_eq!(deletes(&reconciled(before.clone().with_pods(pods()))), Vec::<String>::new(), "an unchanged spec keeps its Pods");
    let none = after.clone().raw(|c| c["spec"]["upgradeStrategy"] = json!({ "type": "None" }));
    assert_eq!(deletes(&reconciled(none.with_pods(pods()))), Vec::<String>::new(), "None keeps running Pods, as unset does");
}

#[test]
fn recreate_leaves_pods_from_before_the_hashes_and_ignores_the_scale_fields() {
    let before = cluster().with_workers("cpu", 2).recreate();
    let unstamped = reconciled(before.clone().worker_image("cpu", "x").with_pods([head("rc-head-x").running_ready()]));
    assert_eq!(deletes(&unstamped), Vec::<String>::new());
    let scaled = before.clone().raw(|c| c["spec"]["workerGroupSpecs"][0]["replicas"] = json!(3));
    let plan = reconciled(scaled.with_pods(std::iter::once(ready_head_built_from(&before)).chain(workers_built_from(&before, "cpu", 2))));
    assert_eq!((deletes(&plan).len(), rendered_workers(&plan).len()), (0, 1), "a new replica count scales, it does not recreate");
}

#[test]
fn the_rolling_update_surges_then_deletes_within_the_budget_and_says_how_far_it_is() {
    let before = cluster().with_workers("cpu", 10).rolling("1", "1");
    let after = before.clone().worker_image("cpu", "rayproject/ray:2.53.0");
    let plan = reconciled(after.clone().with_pods(std::iter::once(ready_head_built_from(&after)).chain(workers_built_from(&before, "cpu", 10))));
    assert_eq!(rendered_workers(&plan), ["cpu"], "one Pod beyond the 10");
    assert_eq!(deletes(&plan).len(), 1, "one of 10 Ready may go");
    let c = condition(&plan, "RollingUpdateInProgress").unwrap();
    assert_eq!((c.status, c.reason.as_str()), (True, "PodsOnOldTemplate"));
    assert_eq!(c.message, "0/10 workers of group cpu on the new template, 10 on an old one");
    let deleted = events(&plan).into_iter().find(|e| e.reason == "DeletedWorkerPod").unwrap();
    assert!(deleted.message.ends_with("its group's template changed (rolling update)"), "{}", deleted.message);
}

#[test]
fn the_rolling_update_waits_for_new_pods_to_be_ready_before_deleting_more() {
    let before = cluster().with_workers("cpu", 4).rolling("1", "1");
    let after = before.clone().worker_image("cpu", "rayproject/ray:2.53.0");
    let old = workers_built_from(&before, "cpu", 3);
    let coming = worker("cpu", "rc-cpu-worker-new").built_from(&after);
    let plan = reconciled(after.clone().with_pods(std::iter::once(ready_head_built_from(&after)).chain(old).chain([coming])));
    assert_eq!((rendered_workers(&plan).len(), deletes(&plan).len()), (1, 0), "3 Ready is the floor of 4 - 1");
    assert_eq!(condition(&plan, "RollingUpdateInProgress").unwrap().message, "1/4 workers of group cpu on the new template, 3 on an old one");
}

#[test]
fn the_rolling_update_keeps_the_autoscalers_replicas_and_ends_false() {
    let before = cluster().autoscaling().with_workers("cpu", 3).min_max("cpu", 1, 10).rolling("0", "1");
    let after = before.clone().worker_image("cpu", "rayproject/ray:2.53.0");
    let rbac = [object("v1", "ServiceAccount", "rc"), object("rbac.authorization.k8s.io/v1", "Role", "rc"), object("rbac.authorization.k8s.io/v1", "RoleBinding", "rc")];
    let pods = std::iter::once(ready_head_built_from(&after)).chain(workers_built_from(&before, "cpu", 3)).map(|p| p.0);
    let plan = reconciled(after.clone().with(std::iter::once(head_service()).chain(rbac.clone()).chain(pods)));
    assert_eq!((rendered_workers(&plan).len(), deletes(&plan).len()), (0, 1), "no surge: one of 3 goes, then it is replaced");
    assert!(applies(&plan).iter().all(|a| a["kind"] != "RayCluster"), "replicas are never written");

    let done = std::iter::once(ready_head_built_from(&after)).chain(workers_built_from(&after, "cpu", 3)).map(|p| p.0);
    let plan = reconciled(after.condition("RollingUpdateInProgress", "True").with(std::iter::once(head_service()).chain(rbac).chain(done)));
    assert_eq!(condition_is(&plan, "RollingUpdateInProgress"), (False, "AllPodsOnCurrentTemplate".into()));
    assert_eq!(deletes(&plan), Vec::<String>::new());
}

#[test]
fn the_head_is_replaced_last_and_only_when_its_own_template_changed() {
    let before = cluster().with_workers("cpu", 2).rolling("1", "1");
    let both = before.clone().worker_image("cpu", "rayproject/ray:2.53.0").head_image("rayproject/ray:2.53.0");
    let plan = reconciled(both.clone().with_pods(std::iter::once(ready_head_built_from(&before)).chain(workers_built_from(&before, "cpu", 2))));
    assert!(!deletes(&plan).contains(&"rc-head-x".to_owned()), "workers first");
    assert!(condition(&plan, "RollingUpdateInProgress").unwrap().message.ends_with("the head Pod is replaced once every worker group is on its new template"));

    let plan = reconciled(both.clone().with_pods(std::iter::once(ready_head_built_from(&before)).chain(workers_built_from(&both, "cpu", 2))));
    assert_eq!(deletes(&plan), ["rc-head-x"]);
    assert_eq!(event_reasons(&plan), ["DeletedHeadPod"]);

    let workers_only = before.clone().worker_image("cpu", "rayproject/ray:2.53.0");
    let plan = reconciled(workers_only.clone().with_pods(std::iter::once(ready_head_built_from(&before)).chain(workers_built_from(&workers_only, "cpu", 2))));
    assert_eq!(deletes(&plan), Vec::<String>::new(), "a worker-only change leaves the head alone");
}

#[test]
fn a_bad_upgrade_annotation_or_two_strategies_are_an_invalid_spec_naming_the_annotation() {
    let bad = cluster().annotated("wasmray.dev/upgrade-strategy", "RollingUpdate").annotated("wasmray.dev/max-surge", "many");
    assert!(matches!(reconcile(&bad.with([])), Err(PluginError::InvalidSpec(m)) if m.contains("wasmray.dev/max-surge")));
    let unknown = cluster().annotated("wasmray.dev/upgrade-strategy", "Rolling");
    assert!(matches!(reconcile(&unknown.with([])), Err(PluginError::InvalidSpec(m)) if m.contains("\"Rolling\"")));
    let both = cluster().rolling("1", "1").recreate();
    assert!(matches!(reconcile(&both.with([])), Err(PluginError::InvalidSpec(m)) if m.contains("two strategies")));
}

// v1.7's ingressOptions.

#[test]
fn ingress_options_give_the_rule_a_host_a_prefix_path_and_tls() {
    let c = with_ingress(cluster()).raw(|c| {
        c["spec"]["headGroupSpec"]["ingressOptions"] = json!({ "host": "ray.example.com", "tls": [{ "hosts": ["ray.example.com"], "secretName": "ray-tls" }] });
    });
    let ingress = applies(&reconciled(c.with_pods([]))).into_iter().find(|a| a["kind"] == "Ingress").unwrap();
    assert_eq!(
        ingress["spec"]["rules"],
        json!([{ "host": "ray.example.com", "http": { "paths": [{ "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": "rc-head-svc", "port": { "number": 8265 } } } }] } }])
    );
    assert_eq!(ingress["spec"]["tls"], json!([{ "hosts": ["ray.example.com"], "secretName": "ray-tls" }]));
    let exact = with_ingress(cluster()).raw(|c| c["spec"]["headGroupSpec"]["ingressOptions"] = json!({ "path": "/ray", "pathType": "Exact" }));
    let ingress = applies(&reconciled(exact.with_pods([]))).into_iter().find(|a| a["kind"] == "Ingress").unwrap();
    let path = &ingress["spec"]["rules"][0];
    assert_eq!((path.get("host"), &path["http"]["paths"][0]["path"], &path["http"]["paths"][0]["pathType"]), (None, &json!("/ray"), &json!("Exact")));
}

// AutoscalerServiceAccountNotFound.

#[test]
fn a_missing_autoscaler_service_account_named_by_the_head_gets_kuberays_warning() {
    let named = cluster().autoscaling().raw(|c| c["spec"]["headGroupSpec"]["template"]["spec"]["serviceAccountName"] = json!("ray-sa"));
    let refused = json!({ "reason": "FailedCreateHeadPod",
        "message": "pods \"rc-head-x\" is forbidden: error looking up service account ns/ray-sa: serviceaccount \"ray-sa\" not found" });
    let plan = reconciled(with_fact(named.clone().with_pods([]), "wasmray.dev/replica-failure", refused));
    assert_eq!(warnings(&plan), ["AutoscalerServiceAccountNotFound"]);
    let warning = events(&plan).into_iter().find(|e| e.reason == "AutoscalerServiceAccountNotFound").unwrap();
    assert!(warning.message.contains("serviceAccountName ray-sa does not exist in namespace ns"), "{}", warning.message);

    let other = json!({ "reason": "FailedCreateHeadPod", "message": "exceeded quota" });
    assert!(warnings(&reconciled(with_fact(named.with_pods([]), "wasmray.dev/replica-failure", other))).is_empty());
}

// The OpenShift Route.

#[test]
fn on_openshift_enable_ingress_applies_kuberays_route_instead_of_the_ingress() {
    let c = with_ingress(cluster()).annotated("kubernetes.io/ingress.class", "nginx").annotated("example.com/team", "a");
    let openshift = with_fact(c.clone().with_pods([]), "wasmray.dev/operator-settings", json!({ "useOpenShiftRoute": true }));
    let plan = reconciled(openshift);
    let applied = applies(&plan);
    assert!(applied.iter().all(|a| a["kind"] != "Ingress"), "a Route instead of the Ingress");
    let route = applied.into_iter().find(|a| a["kind"] == "Route").expect("a Route");
    assert_eq!(route["apiVersion"], "route.openshift.io/v1");
    assert_eq!(route["metadata"]["name"], "rc-head-route");
    assert_eq!(route["metadata"]["annotations"], json!({ "example.com/team": "a", "kubernetes.io/ingress.class": "nginx" }));
    assert_eq!(route["metadata"]["ownerReferences"][0]["uid"], "uid-rc");
    assert_eq!(
        route["spec"],
        json!({ "to": { "kind": "Service", "name": "rc-head-svc", "weight": 100 }, "port": { "targetPort": "dashboard" }, "wildcardPolicy": "None" })
    );
    assert!(event_reasons(&plan).contains(&"CreatedRoute".to_owned()));
    assert!(applies(&reconciled(c.with_pods([]))).iter().all(|a| a["kind"] != "Route"), "elsewhere the Ingress");
}

#[test]
fn multi_host_groups_are_not_rolled_even_without_replica_labels() {
    let before = cluster().with_workers("tpu", 1).hosts("tpu", 2).rolling("1", "1");
    let after = before.clone().worker_image("tpu", "rayproject/ray:2.53.0");
    let plan = reconciled(after.clone().with(
        [head_service(), object("v1", "Service", "rc-headless")]
            .into_iter()
            .chain(std::iter::once(ready_head_built_from(&after)).chain(workers_built_from(&before, "tpu", 2)).map(|p| p.0)),
    ));
    assert_eq!((deletes(&plan).len(), rendered_workers(&plan).len()), (0, 0), "a replica is all or nothing");
    assert_eq!(condition_is(&plan, "RollingUpdateInProgress"), (False, "AllPodsOnCurrentTemplate".into()));
}
