//! One test per behaviour of the RayService reconciler: clusters, Serve deploys, promotion, each strategy step, Services, deletion, suspend, validation, restarts.

use serde_json::{Value, json};
use wasmray_guest_sdk::{EventType, Op, Plan, Snapshot};

use crate::fixtures::*;
use crate::reconcile;

fn reconciled(snapshot: Snapshot) -> Plan {
    reconcile(&snapshot).expect("the reconcile fails")
}

/// A cluster with its Ready head Pod.
fn up(name: &str) -> [Value; 2] {
    [cluster(name).into(), head(name).into()]
}

// The first cluster.

#[test]
fn the_first_reconcile_names_a_pending_cluster_in_the_status_and_creates_nothing_yet() {
    let plan = reconciled(rayservice().with([]));
    assert_eq!(applied(&plan), Vec::<String>::new());
    let status = changed(&plan);
    let name = status["pendingServiceStatus"]["rayClusterName"].as_str().unwrap();
    assert!(name.starts_with("svc-") && name.len() == 9, "{name}");
    assert!(status["activeServiceStatus"].is_null());
    assert_eq!(reason(&plan, "Ready"), ("False".into(), "Initializing".into()));
    assert_eq!(reason(&plan, "UpgradeInProgress"), ("False".into(), "Initializing".into()));
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["numServeEndpoints"], 0);
    assert!(matches!(plan.ops.last(), Some(Op::Status(_))), "the status comes last");
    assert_eq!(plan.requeue_after_ms, Some(2_000));
}

#[test]
fn generated_cluster_names_come_from_the_seed() {
    let a = changed(&reconciled(rayservice().with([])));
    assert_eq!(a, changed(&reconciled(rayservice().with([]))));
    let mut other = rayservice().with([]);
    other.seed = 7;
    assert_ne!(a["pendingServiceStatus"], changed(&reconciled(other))["pendingServiceStatus"]);
}

#[test]
fn the_named_cluster_is_created_with_the_rayservices_labels_annotations_hash_and_owner() {
    let plan = reconciled(rayservice().initializing().with([]));
    assert_eq!(applied(&plan), [format!("RayCluster/{ACTIVE}")]);
    let c = &applies(&plan)[0];
    assert_eq!(c["metadata"]["labels"], json!({ "team": "ml", "ray.io/originated-from-cr-name": "svc", "ray.io/originated-from-crd": "RayService" }));
    assert_eq!(c["metadata"]["annotations"]["owner"], "ml-team");
    assert_eq!(c["metadata"]["annotations"]["wasmray.dev/cluster-spec-hash"], spec_hash());
    assert_eq!(c["metadata"]["annotations"]["ray.io/num-worker-groups"], "1");
    assert_eq!(c["metadata"]["ownerReferences"][0]["uid"], "uid-svc");
    assert_eq!(c["metadata"]["ownerReferences"][0]["kind"], "RayService");
    assert_eq!(c["spec"], rayservice().0["spec"]["rayClusterConfig"]);
    assert_eq!(event_reasons(&plan), ["CreatedRayCluster"]);
    assert_eq!(condition(&plan, "Ready").unwrap().2, format!("Creating RayCluster {ACTIVE}"));
}

#[test]
fn the_spec_hash_ignores_replicas_tolerations_and_suspend() {
    let base = rayservice().0["spec"]["rayClusterConfig"].clone();
    let scaled = rayservice().cluster_config(|c| {
        c["workerGroupSpecs"][0]["replicas"] = json!(5);
        c["workerGroupSpecs"][0]["template"]["spec"]["tolerations"] = json!([{ "key": "gpu" }]);
        c["suspend"] = json!(true);
    });
    assert_eq!(crate::cluster::spec_hash(&base), crate::cluster::spec_hash(&scaled.0["spec"]["rayClusterConfig"]));
    assert_ne!(crate::cluster::spec_hash(&base), crate::cluster::spec_hash(&rayservice().new_image().0["spec"]["rayClusterConfig"]));
}

// Serve config.

#[test]
fn the_config_is_not_deployed_before_the_head_pod_is_ready() {
    let plan = reconciled(rayservice().initializing().with([cluster(ACTIVE).into(), head(ACTIVE).not_ready().into()]));
    assert!(applied(&plan).iter().all(|a| !a.starts_with("ServeApplications")), "{:?}", applied(&plan));
    assert_eq!(condition(&plan, "Ready").unwrap().2, format!("Waiting for the head Pod of RayCluster {ACTIVE} to be Ready"));
}

#[test]
fn the_config_is_deployed_once_the_head_pod_is_ready_and_not_again_while_the_host_answers() {
    let svc = || rayservice().initializing();
    let plan = reconciled(svc().with(up(ACTIVE)));
    let request = applied_object(&plan, &format!("ServeApplications/{ACTIVE}"));
    assert_eq!(request["apiVersion"], "dashboard.wasmray.dev/v1");
    assert_eq!(request["spec"]["dashboardURL"], format!("{ACTIVE}-head-svc.ns.svc.cluster.local:8265"));
    assert_eq!(request["spec"]["rayClusterName"], ACTIVE);
    assert_eq!(request["spec"]["config"], SERVE_CONFIG);
    assert_eq!(request["spec"]["configHash"], serve_hash());
    assert!(request["spec"]["targetCapacity"].is_null());
    let in_flight = changed(&plan)["pendingServiceStatus"]["serveConfigRequest"].clone();
    assert_eq!(in_flight["configHash"], serve_hash());

    // The next pass, before the host answered: nothing is sent again.
    let next = after(svc(), &plan);
    let plan = reconciled(next.with(up(ACTIVE)));
    assert!(!applied(&plan).contains(&format!("ServeApplications/{ACTIVE}")), "{:?}", applied(&plan));
}

#[test]
fn an_accepted_deploy_records_the_hash_with_an_event_and_the_same_config_is_not_sent_again() {
    let svc = rayservice().initializing().status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE,
        "serveConfigRequest": { "configHash": serve_hash(), "requestedAt": ago(5) } } }));
    let plan = reconciled(submission(svc.with(up(ACTIVE)), ACTIVE, &serve_hash(), true, None));
    let pending = &changed(&plan)["pendingServiceStatus"];
    assert_eq!(pending["serveConfigHash"], serve_hash());
    assert!(pending["serveConfigRequest"].is_null());
    assert_eq!(event_reasons(&plan), ["UpdatedServeApplications"]);
    assert!(!applied(&plan).contains(&format!("ServeApplications/{ACTIVE}")));

    let deployed = rayservice().initializing().status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE, "serveConfigHash": serve_hash() } }));
    let plan = reconciled(apps(deployed.with(up(ACTIVE)), ACTIVE, &[("app", "DEPLOYING", "")]));
    assert!(!applied(&plan).contains(&format!("ServeApplications/{ACTIVE}")));
    assert_eq!(condition(&plan, "Ready").unwrap().2, format!("Waiting for Serve applications on RayCluster {ACTIVE} to be RUNNING: app DEPLOYING"));
}

#[test]
fn a_head_that_restarted_without_its_applications_gets_the_config_again() {
    let svc = rayservice().serving(ACTIVE);
    let plan = reconciled(apps(svc.with(up(ACTIVE)), ACTIVE, &[]));
    assert!(applied(&plan).contains(&format!("ServeApplications/{ACTIVE}")), "{:?}", applied(&plan));
}

#[test]
fn a_refused_deploy_is_a_warning_with_serves_message_once_per_hash() {
    let svc = || rayservice().initializing().status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE,
        "serveConfigRequest": { "configHash": serve_hash(), "requestedAt": ago(5) } } }));
    let refused = |s: Snapshot| submission(s, ACTIVE, &serve_hash(), false, Some("invalid import path fruit:app"));
    let plan = reconciled(refused(svc().with(up(ACTIVE))));
    assert_eq!(event_reasons(&plan), ["FailedToUpdateServeApplications"]);
    assert!(event_message(&plan, "FailedToUpdateServeApplications").contains("invalid import path fruit:app"));
    assert_eq!(events(&plan)[0].type_, EventType::Warning);
    // It is asked again (KubeRay retries), and told no second time.
    assert!(applied(&plan).contains(&format!("ServeApplications/{ACTIVE}")));
    let next = after(svc(), &plan);
    let plan = reconciled(refused(next.with(up(ACTIVE))));
    assert!(event_reasons(&plan).is_empty(), "{:?}", event_reasons(&plan));
}

#[test]
fn a_deploy_failed_application_shows_its_message_in_the_ready_condition() {
    let svc = rayservice().initializing().status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE, "serveConfigHash": serve_hash() } }));
    let plan = reconciled(apps(svc.with(up(ACTIVE)), ACTIVE, &[("app", "DEPLOY_FAILED", "ModuleNotFoundError: No module named 'fruit'")]));
    let (status, reason, message) = condition(&plan, "Ready").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Initializing"));
    assert!(message.contains("DEPLOY_FAILED") && message.contains("No module named 'fruit'"), "{message}");
    let app = &changed(&plan)["pendingServiceStatus"]["applicationStatuses"]["app"];
    assert_eq!(app["status"], "DEPLOY_FAILED");
    assert_eq!(app["serveDeploymentStatuses"]["Fruit"]["status"], "HEALTHY");
}

#[test]
fn a_long_serve_message_is_quoted_by_its_end() {
    let traceback = format!("Traceback:\n{}ModuleNotFoundError: No module named 'fruit'", "  File x.py, line 1\n".repeat(500));
    let svc = rayservice().initializing().status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE, "serveConfigHash": serve_hash() } }));
    let plan = reconciled(apps(svc.with(up(ACTIVE)), ACTIVE, &[("app", "DEPLOY_FAILED", &traceback)]));
    let message = condition(&plan, "Ready").unwrap().2;
    assert!(message.len() < 4200 && message.ends_with("No module named 'fruit'"), "{}", message.len());
}

// Promotion of the first cluster, Services, Ready.

#[test]
fn the_first_ready_cluster_is_promoted_at_once_and_the_services_point_at_it() {
    let svc = rayservice().initializing().status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE, "serveConfigHash": serve_hash() } }));
    let plan = reconciled(apps_running(svc.with(up(ACTIVE)), ACTIVE));
    let status = changed(&plan);
    assert_eq!(status["activeServiceStatus"]["rayClusterName"], ACTIVE);
    assert!(status["pendingServiceStatus"].is_null());
    assert!(event_reasons(&plan).contains(&"PromotedPendingCluster".to_owned()));
    let head_svc = applied_object(&plan, "Service/svc-head-svc");
    assert_eq!(head_svc["spec"]["selector"]["ray.io/cluster"], ACTIVE);
    assert_eq!(head_svc["metadata"]["labels"]["ray.io/originated-from-crd"], "RayService");
    assert_eq!(head_svc["metadata"]["labels"]["ray.io/identifier"], "svc-head");
    let ports: Vec<&str> = head_svc["spec"]["ports"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(ports, ["dashboard", "gcs-server", "metrics", "serve"]);
    let serve_svc = applied_object(&plan, "Service/svc-serve-svc");
    assert_eq!(serve_svc["spec"]["selector"], json!({ "ray.io/cluster": ACTIVE, "ray.io/serve": "true" }));
    assert_eq!(serve_svc["spec"]["ports"], json!([{ "name": "serve", "port": 8000, "targetPort": 8000 }]));
    assert_eq!(serve_svc["metadata"]["labels"]["ray.io/serve"], "svc-serve");
    assert_eq!(serve_svc["metadata"]["ownerReferences"][0]["uid"], "uid-svc");
    // No endpoints yet: not Ready.
    assert_eq!(reason(&plan, "Ready"), ("False".into(), "Initializing".into()));
}

#[test]
fn serve_endpoints_make_the_rayservice_ready_and_losing_them_says_zero_endpoints() {
    let ready = reconciled(apps_running(rayservice().serving(ACTIVE).with([cluster(ACTIVE).into(), head(ACTIVE).into(), endpoints("svc-serve-svc", 2)]), ACTIVE));
    assert_eq!(reason(&ready, "Ready"), ("True".into(), "NonZeroServeEndpoints".into()));
    assert_eq!(changed(&ready)["numServeEndpoints"], 2);
    assert_eq!(ready.requeue_after_ms, None, "nothing moves");
    let lost = reconciled(apps_running(rayservice().serving(ACTIVE).with([cluster(ACTIVE).into(), head(ACTIVE).into(), endpoints("svc-serve-svc", 0)]), ACTIVE));
    assert_eq!(reason(&lost, "Ready"), ("False".into(), "ZeroServeEndpoints".into()));
    assert_eq!(changed(&lost)["numServeEndpoints"], 0);
    assert_eq!(changed(&lost)["serviceStatus"], Value::Null, "cleared");
    assert_eq!(reason(&lost, "UpgradeInProgress"), ("False".into(), "NoPendingCluster".into()));
}

#[test]
fn a_custom_serve_service_keeps_its_name_and_type() {
    let svc = rayservice().serving(ACTIVE).with_spec("serveService", json!({ "metadata": { "name": "fruit", "labels": { "a": "b" } }, "spec": { "type": "LoadBalancer" } }));
    let plan = reconciled(apps_running(svc.with(up(ACTIVE)), ACTIVE));
    let serve_svc = applied_object(&plan, "Service/fruit");
    assert_eq!(serve_svc["spec"]["type"], "LoadBalancer");
    assert_eq!(serve_svc["metadata"]["labels"]["a"], "b");
}

#[test]
fn head_pods_are_labelled_from_the_serve_proxy_and_never_with_exclude_head_pod() {
    let plan = reconciled(proxy(rayservice().serving(ACTIVE).with(up(ACTIVE)), ACTIVE, true));
    let pod = applied_object(&plan, &format!("Pod/{ACTIVE}-head-x1"));
    assert_eq!(pod["metadata"]["labels"], json!({ "ray.io/serve": "true" }));
    assert!(event_reasons(&plan).contains(&"UpdatedHeadPodServeLabel".to_owned()));
    let labelled = [cluster(ACTIVE).into(), head(ACTIVE).label("ray.io/serve", "true").into()];
    let plan = reconciled(proxy(rayservice().serving(ACTIVE).with(labelled.clone()), ACTIVE, true));
    assert!(!applied(&plan).contains(&format!("Pod/{ACTIVE}-head-x1")), "already holds");
    let excluded = rayservice().serving(ACTIVE).with_spec("excludeHeadPodFromServeSvc", json!(true));
    let plan = reconciled(proxy(excluded.with(labelled), ACTIVE, true));
    assert_eq!(applied_object(&plan, &format!("Pod/{ACTIVE}-head-x1"))["metadata"]["labels"]["ray.io/serve"], "false");
}

// Spec changes.

#[test]
fn a_cluster_config_change_makes_a_pending_cluster_and_a_serve_config_change_does_not() {
    let plan = reconciled(rayservice().new_image().serving(ACTIVE).with(up(ACTIVE)));
    let pending = changed(&plan)["pendingServiceStatus"]["rayClusterName"].as_str().unwrap().to_owned();
    assert!(pending.starts_with("svc-") && pending != ACTIVE);
    assert!(!applied(&plan).contains(&format!("RayCluster/{ACTIVE}")));

    let new_config = "applications:\n- name: app\n  import_path: fruit:app2\n";
    let plan = reconciled(rayservice().with_spec("serveConfigV2", json!(new_config)).serving(ACTIVE).with(up(ACTIVE)));
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
    let request = applied_object(&plan, &format!("ServeApplications/{ACTIVE}"));
    assert_eq!(request["spec"]["config"], new_config, "the active cluster gets the new config");
}

#[test]
fn a_replicas_change_or_an_appended_worker_group_updates_the_active_cluster_in_place() {
    let scaled = rayservice().cluster_config(|c| c["workerGroupSpecs"][0]["replicas"] = json!(2));
    let plan = reconciled(scaled.serving(ACTIVE).with(up(ACTIVE)));
    assert_eq!(applied_object(&plan, &format!("RayCluster/{ACTIVE}"))["spec"]["workerGroupSpecs"][0]["replicas"], 2);
    assert!(event_reasons(&plan).contains(&"UpdatedRayCluster".to_owned()));
    assert!(changed(&plan)["pendingServiceStatus"].is_null());

    let appended = rayservice().cluster_config(|c| {
        let mut cpu = c["workerGroupSpecs"][0].clone();
        cpu["groupName"] = json!("cpu");
        c["workerGroupSpecs"].as_array_mut().unwrap().push(cpu);
    });
    let plan = reconciled(appended.serving(ACTIVE).with(up(ACTIVE)));
    let updated = applied_object(&plan, &format!("RayCluster/{ACTIVE}"));
    assert_eq!(updated["metadata"]["annotations"]["ray.io/num-worker-groups"], "2");
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
}

#[test]
fn suspending_the_cluster_config_updates_the_active_cluster_in_place() {
    let plan = reconciled(rayservice().cluster_config(|c| c["suspend"] = json!(true)).serving(ACTIVE).with(up(ACTIVE)));
    assert_eq!(applied_object(&plan, &format!("RayCluster/{ACTIVE}"))["spec"]["suspend"], true);
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
}

#[test]
fn during_an_upgrade_a_new_spec_replaces_the_pending_cluster_and_a_scaled_one_updates_it_in_place() {
    let mut children = both();
    children[2] = cluster(PENDING).built_from(&rayservice().new_image().0["spec"]["rayClusterConfig"]).into();
    let newer = rayservice().new_image().cluster_config(|c| c["rayVersion"] = json!("2.53.0")).upgrading();
    let plan = reconciled(newer.with(children.clone()));
    let name = changed(&plan)["pendingServiceStatus"]["rayClusterName"].as_str().unwrap().to_owned();
    assert!(name != PENDING && name != ACTIVE, "{name}");
    assert!(!applied(&plan).iter().any(|a| a.starts_with("RayCluster/")), "never the active one: {:?}", applied(&plan));

    let scaled = rayservice().new_image().cluster_config(|c| c["workerGroupSpecs"][0]["replicas"] = json!(3)).upgrading();
    let plan = reconciled(scaled.with(children));
    assert_eq!(applied_object(&plan, &format!("RayCluster/{PENDING}"))["spec"]["workerGroupSpecs"][0]["replicas"], 3);
    assert!(!applied(&plan).contains(&format!("RayCluster/{ACTIVE}")));
    let pending = &changed(&plan)["pendingServiceStatus"]["rayClusterName"];
    assert!(pending.is_null() || pending == PENDING, "the same pending cluster: {pending}");
}

#[test]
fn with_upgrades_disabled_a_changed_spec_is_not_rolled_out() {
    let plan = reconciled(rayservice().new_image().strategy("None").serving(ACTIVE).with(up(ACTIVE)));
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
    assert_eq!(reason(&plan, "UpgradeInProgress").1, "ZeroDowntimeUpgradeDisabled");
    let plan = reconciled(settings(rayservice().new_image().serving(ACTIVE).with(up(ACTIVE)), json!({ "enableZeroDowntime": false })));
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
    // A strategy set explicitly wins over the operator's switch.
    let plan = reconciled(settings(rayservice().new_image().strategy("NewCluster").serving(ACTIVE).with(up(ACTIVE)), json!({ "enableZeroDowntime": false })));
    assert!(!changed(&plan)["pendingServiceStatus"].is_null());
}

#[test]
fn an_unknown_strategy_leaves_the_active_cluster_serving_and_says_so_once() {
    let svc = || rayservice().new_image().strategy("BlueGreen").serving(ACTIVE);
    let plan = reconciled(strategy_loaded(svc().with(up(ACTIVE)), "BlueGreen", false));
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
    let (status, reason, message) = condition(&plan, "UpgradeInProgress").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "UnknownUpgradeStrategy"));
    assert!(message.contains("\"BlueGreen\" is not loaded"), "{message}");
    assert_eq!(warnings(&plan), ["UnknownUpgradeStrategy"]);
    let plan = reconciled(strategy_loaded(after(svc(), &plan).with(up(ACTIVE)), "BlueGreen", false));
    assert!(warnings(&plan).is_empty(), "told once: {:?}", event_reasons(&plan));
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
}

// Upgrade steps.

fn both() -> Vec<Value> {
    let mut c = up(ACTIVE).to_vec();
    c.extend(up(PENDING));
    c.push(service("svc-serve-svc", ACTIVE).into());
    c.push(service("svc-head-svc", ACTIVE).into());
    c.push(endpoints("svc-serve-svc", 1));
    c
}

#[test]
fn the_pending_cluster_is_created_and_gets_the_config_while_the_active_one_keeps_its_own() {
    let svc = rayservice().new_image().upgrading();
    let mut children = up(ACTIVE).to_vec();
    children.push(head(PENDING).into());
    let plan = reconciled(svc.with(children));
    assert!(applied(&plan).contains(&format!("RayCluster/{PENDING}")));
    let svc = rayservice().new_image().with_spec("serveConfigV2", json!("applications: []\n")).upgrading();
    let mut children = both();
    children[2] = cluster(PENDING).built_from(&rayservice().new_image().0["spec"]["rayClusterConfig"]).into();
    let plan = reconciled(svc.with(children));
    assert!(applied(&plan).contains(&format!("ServeApplications/{PENDING}")));
    assert!(!applied(&plan).contains(&format!("ServeApplications/{ACTIVE}")), "frozen during the upgrade");
}

#[test]
fn a_wait_step_says_why_in_the_upgrade_condition() {
    let plan = reconciled(step(rayservice().upgrading().with(both()), json!({ "wait": { "reason": "pending applications are DEPLOYING" } })));
    let (status, reason, message) = condition(&plan, "UpgradeInProgress").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "BothActivePendingClustersExist"));
    assert!(message.contains("pending applications are DEPLOYING") && message.contains("NewCluster version v1-abc123"), "{message}");
    assert!(changed(&plan)["activeServiceStatus"].is_null(), "nothing moves");
    assert!(changed(&plan)["pendingServiceStatus"]["trafficRoutedPercent"].is_null());
    assert_eq!(plan.requeue_after_ms, Some(2_000));
}

#[test]
fn a_pending_cluster_that_cannot_start_is_said_in_the_upgrade_condition() {
    let mut children = both();
    children[2] = cluster(PENDING).condition("HeadPodReady", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.").into();
    let plan = reconciled(step(rayservice().upgrading().with(children), json!({ "wait": { "reason": "pending not ready" } })));
    let message = condition(&plan, "UpgradeInProgress").unwrap().2;
    assert!(message.ends_with(&format!("the pending cluster cannot start: RayCluster {PENDING}: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")), "{message}");
}

#[test]
fn a_step_about_other_clusters_is_ignored() {
    let snapshot = with_fact(rayservice().upgrading().with(both()), "wasmray.dev/upgrade-step",
        json!({ "strategy": "NewCluster", "version": "v1", "active": ACTIVE, "pending": "svc-old99", "step": "promote" }));
    let plan = reconciled(snapshot);
    assert!(!event_reasons(&plan).contains(&"PromotedPendingCluster".to_owned()));
    assert!(condition(&plan, "UpgradeInProgress").unwrap().2.contains("waiting for upgrade strategy NewCluster"));
}

#[test]
fn a_promote_step_points_the_services_at_the_pending_cluster_and_unreferences_the_old_one() {
    let svc = rayservice().upgrading().status(json!({ "pendingServiceStatus": { "rayClusterName": PENDING, "serveConfigHash": serve_hash() } }));
    let plan = reconciled(apps_running(step(svc.with(both()), json!("promote")), PENDING));
    let status = changed(&plan);
    assert_eq!(status["activeServiceStatus"]["rayClusterName"], PENDING);
    assert_eq!(status["activeServiceStatus"]["serveConfigHash"], serve_hash());
    assert!(status["pendingServiceStatus"].is_null());
    assert_eq!(status["unreferencedClusters"], json!({ ACTIVE: ago(0) }));
    let message = event_message(&plan, "PromotedPendingCluster");
    assert!(message.contains("upgrade strategy NewCluster version v1-abc123") && message.contains(PENDING), "{message}");
    assert_eq!(applied_object(&plan, "Service/svc-serve-svc")["spec"]["selector"]["ray.io/cluster"], PENDING);
    assert_eq!(applied_object(&plan, "Service/svc-head-svc")["spec"]["selector"]["ray.io/cluster"], PENDING);
    assert!(event_reasons(&plan).contains(&"UpdatedService".to_owned()));
    assert_eq!(reason(&plan, "UpgradeInProgress"), ("False".into(), "NoPendingCluster".into()));
    assert!(deleted(&plan).is_empty(), "the old cluster goes after the delay");
}

#[test]
fn a_failed_strategy_call_moves_nothing_and_warns() {
    let snapshot = with_fact(rayservice().upgrading().with(both()), "wasmray.dev/upgrade-step",
        json!({ "strategy": "Canary", "version": "v2-def", "active": ACTIVE, "pending": PENDING, "error": "wasm trap: unreachable" }));
    let plan = reconciled(snapshot);
    let (status, reason, message) = condition(&plan, "UpgradeInProgress").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "UpgradeStrategyFailed"));
    assert!(message.contains("wasm trap: unreachable") && message.contains("Canary version v2-def"), "{message}");
    assert_eq!(event_reasons(&plan), ["UpgradeStrategyFailed"]);
    assert!(changed(&plan)["activeServiceStatus"].is_null(), "no promotion");
    assert!(changed(&plan)["pendingServiceStatus"]["trafficRoutedPercent"].is_null(), "no shift");
}

#[test]
fn an_abort_rolls_back_and_the_same_spec_makes_no_new_pending_cluster() {
    let svc = || rayservice().new_image().upgrading();
    let mut children = both();
    children[2] = cluster(PENDING).built_from(&rayservice().new_image().0["spec"]["rayClusterConfig"]).into();
    let plan = reconciled(step(svc().with(children.clone()), json!({ "abort": { "reason": "applications UNHEALTHY for 300s" } })));
    let status = changed(&plan);
    assert!(status["pendingServiceStatus"].is_null());
    let new_hash = crate::cluster::spec_hash(&rayservice().new_image().0["spec"]["rayClusterConfig"]);
    assert_eq!(status["rolledBackClusterHash"], new_hash);
    assert_eq!(status["unreferencedClusters"], json!({ PENDING: ago(0) }));
    let (s, r, message) = condition(&plan, "UpgradeInProgress").unwrap();
    assert_eq!((s.as_str(), r.as_str()), ("False", "UpgradeRolledBack"));
    assert!(message.contains("applications UNHEALTHY for 300s"), "{message}");
    let warning = event_message(&plan, "UpgradeRolledBack");
    assert!(warning.contains("NewCluster version v1-abc123") && warning.contains("UNHEALTHY"), "{warning}");

    // The next pass: the spec is still the rolled-back one, so no pending cluster is named.
    let plan = reconciled(after(svc(), &plan).with(children));
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
    assert!(condition(&plan, "UpgradeInProgress").is_none_or(|c| c.1 == "UpgradeRolledBack"), "the condition stays");
    // A spec that moves on is tried again.
    let rolled_back = rayservice().new_image().serving(ACTIVE).status(json!({ "rolledBackClusterHash": new_hash }));
    let plan = reconciled(rolled_back.cluster_config(|c| c["rayVersion"] = json!("2.53.0")).with(up(ACTIVE)));
    assert!(!changed(&plan)["pendingServiceStatus"]["rayClusterName"].is_null());
    assert!(changed(&plan)["rolledBackClusterHash"].is_null() && changed(&plan).get("rolledBackClusterHash").is_some());
}

// Traffic through a Gateway.

#[test]
fn a_gateway_strategy_creates_the_gateway_route_and_per_cluster_services() {
    let svc = rayservice().through_a_gateway().upgrading();
    let plan = reconciled(step(svc.with(both()), json!({ "wait": { "reason": "warming up" } })));
    let gateway = applied_object(&plan, "Gateway/svc-gateway");
    assert_eq!(gateway["spec"], json!({ "gatewayClassName": "istio", "listeners": [ { "name": "http", "port": 80, "protocol": "HTTP" } ] }));
    let route = applied_object(&plan, "HTTPRoute/svc-httproute");
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "svc-gateway");
    assert_eq!(route["spec"]["rules"][0]["matches"][0]["path"], json!({ "type": "PathPrefix", "value": "/" }));
    assert_eq!(route["spec"]["rules"][0]["backendRefs"], json!([{ "name": format!("{ACTIVE}-serve-svc"), "port": 8000, "weight": 100 }]));
    let per_cluster = applied_object(&plan, &format!("Service/{PENDING}-serve-svc"));
    assert_eq!(per_cluster["metadata"]["ownerReferences"][0]["kind"], "RayCluster");
    assert_eq!(per_cluster["spec"]["selector"], json!({ "ray.io/cluster": PENDING, "ray.io/serve": "true" }));
    assert!(event_reasons(&plan).contains(&"CreatedGateway".to_owned()));
}

#[test]
fn a_shift_waits_for_the_gateway_and_then_moves_traffic_and_capacity() {
    let svc = || rayservice().through_a_gateway().upgrading();
    let shift = json!({ "shift": { "pendingTrafficPercent": 10, "pendingTargetCapacity": 20, "activeTargetCapacity": null } });
    let plan = reconciled(step(svc().with(both()), shift.clone()));
    assert!(condition(&plan, "UpgradeInProgress").unwrap().2.contains("waiting for Gateway and HTTPRoute"));
    assert!(changed(&plan)["pendingServiceStatus"]["trafficRoutedPercent"].is_null());

    let mut children = both();
    children.push(gateway_ready());
    children.push(route_ready(&[(ACTIVE, 100)]));
    let plan = reconciled(step(svc().with(children), shift));
    let status = changed(&plan);
    assert_eq!(status["pendingServiceStatus"]["trafficRoutedPercent"], 10);
    assert_eq!(status["pendingServiceStatus"]["targetCapacity"], 20);
    assert_eq!(status["activeServiceStatus"]["trafficRoutedPercent"], 90);
    assert_eq!(status["pendingServiceStatus"]["lastTrafficMigratedTime"], ago(0));
    let route = applied_object(&plan, "HTTPRoute/svc-httproute");
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][1], json!({ "name": format!("{PENDING}-serve-svc"), "port": 8000, "weight": 10 }));
    assert!(event_message(&plan, "ShiftedTraffic").contains("NewCluster version v1-abc123"));
}

#[test]
fn during_a_gateway_upgrade_the_active_cluster_gets_its_new_capacity_but_never_a_new_config() {
    let svc = |config: &str| rayservice().through_a_gateway().with_spec("serveConfigV2", json!(config)).upgrading()
        .status(json!({ "activeServiceStatus": { "rayClusterName": ACTIVE, "serveConfigHash": serve_hash(), "targetCapacity": 80,
                        "rayClusterStatus": { "state": "ready", "desiredWorkerReplicas": 1 } } }));
    let plan = reconciled(svc(SERVE_CONFIG).with(both()));
    let request = applied_object(&plan, &format!("ServeApplications/{ACTIVE}"));
    assert_eq!((request["spec"]["targetCapacity"].clone(), request["spec"]["config"].clone()), (json!(80), json!(SERVE_CONFIG)));
    let plan = reconciled(svc("applications: []\n").with(both()));
    assert!(!applied(&plan).contains(&format!("ServeApplications/{ACTIVE}")), "frozen");
}

#[test]
fn the_first_cluster_of_an_incremental_upgrade_asks_for_all_the_capacity_and_a_canarys_for_none() {
    let plan = reconciled(rayservice().upgraded_incrementally().with([]));
    assert_eq!(changed(&plan)["pendingServiceStatus"]["targetCapacity"], 100);
    let canary = reconciled(rayservice().through_a_gateway().with([]));
    assert!(changed(&canary)["pendingServiceStatus"].get("targetCapacity").is_none(), "a canary's clusters run at full capacity: {canary:?}");
    // A capacity in the status is what the cluster's Serve is asked for.
    let svc = rayservice().through_a_gateway().status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE, "targetCapacity": 100 } }));
    let plan = reconciled(svc.with(up(ACTIVE)));
    let request = applied_object(&plan, &format!("ServeApplications/{ACTIVE}"));
    assert_eq!(request["spec"]["targetCapacity"], 100);
}

#[test]
fn a_rollback_through_the_gateway_is_in_progress_while_the_route_still_sends_traffic_to_the_pending_cluster() {
    let svc = rayservice().through_a_gateway().serving(ACTIVE).status(json!({ "rolledBackClusterHash": spec_hash(),
        "activeServiceStatus": { "rayClusterName": ACTIVE, "serveConfigHash": serve_hash(), "trafficRoutedPercent": 100 } }));
    let mut children = up(ACTIVE).to_vec();
    children.push(gateway_ready());
    children.push(route_ready(&[(ACTIVE, 70), (PENDING, 30)]));
    let plan = reconciled(svc.with(children));
    assert_eq!(reason(&plan, "RollbackInProgress"), ("True".into(), "RollbackInProgress".into()));
    let route = applied_object(&plan, "HTTPRoute/svc-httproute");
    assert_eq!(route["spec"]["rules"][0]["backendRefs"], json!([{ "name": format!("{ACTIVE}-serve-svc"), "port": 8000, "weight": 100 }]));
}

// Deletion, restarts.

#[test]
fn an_unreferenced_cluster_is_deleted_after_the_delay_and_the_time_survives_a_restart() {
    let svc = || rayservice().serving(ACTIVE);
    let mut children = up(ACTIVE).to_vec();
    children.push(cluster("svc-old11").into());
    children.push(endpoints("svc-serve-svc", 1));
    let plan = reconciled(apps_running(svc().with(children.clone()), ACTIVE));
    assert_eq!(changed(&plan)["unreferencedClusters"], json!({ "svc-old11": ago(0) }));
    assert!(deleted(&plan).is_empty());
    assert_eq!(plan.requeue_after_ms, Some(60_000));

    // A restarted operator reads the time from the status: 50 s in, 10 s to go.
    let plan = reconciled(apps_running(svc().status(json!({ "unreferencedClusters": { "svc-old11": ago(50) } })).with(children.clone()), ACTIVE));
    assert!(deleted(&plan).is_empty());
    assert_eq!(plan.requeue_after_ms, Some(10_000));

    let plan = reconciled(svc().status(json!({ "unreferencedClusters": { "svc-old11": ago(61) } })).with(children));
    assert_eq!(deleted(&plan), ["RayCluster/svc-old11"]);
    assert!(event_reasons(&plan).contains(&"DeletedRayCluster".to_owned()));

    // Once gone, it leaves the status.
    let plan = reconciled(svc().status(json!({ "unreferencedClusters": { "svc-old11": ago(62) } })).with(up(ACTIVE)));
    assert!(changed(&plan)["unreferencedClusters"].is_null() && changed(&plan).get("unreferencedClusters").is_some());
}

#[test]
fn the_deletion_delay_follows_the_spec() {
    let svc = rayservice().with_spec("rayClusterDeletionDelaySeconds", json!(0)).serving(ACTIVE);
    let mut children = up(ACTIVE).to_vec();
    children.push(cluster("svc-old11").into());
    assert_eq!(deleted(&reconciled(svc.with(children))), ["RayCluster/svc-old11"]);
}

#[test]
fn a_restarted_operator_resumes_from_the_status_alone() {
    // Mid-upgrade, a deploy to the pending cluster in flight: the first pass after the restart
    // neither names another cluster nor sends the config again.
    let svc = rayservice().new_image().upgrading().status(json!({ "pendingServiceStatus": { "rayClusterName": PENDING,
        "rayClusterStatus": { "state": "ready", "desiredWorkerReplicas": 1 },
        "serveConfigRequest": { "configHash": serve_hash(), "requestedAt": ago(3) } } }));
    let mut children = both();
    children[2] = cluster(PENDING).built_from(&rayservice().new_image().0["spec"]["rayClusterConfig"]).into();
    let plan = reconciled(svc.with(children));
    assert!(changed(&plan)["pendingServiceStatus"].is_null(), "unchanged: {}", changed(&plan));
    assert!(!applied(&plan).iter().any(|a| a.starts_with("ServeApplications") || a.starts_with("RayCluster")), "{:?}", applied(&plan));
}

#[test]
fn an_unanswered_deploy_is_asked_for_again_after_30_seconds() {
    let svc = rayservice().initializing().status(json!({ "pendingServiceStatus": { "rayClusterName": ACTIVE,
        "serveConfigRequest": { "configHash": serve_hash(), "requestedAt": ago(31) } } }));
    assert!(applied(&reconciled(svc.with(up(ACTIVE)))).contains(&format!("ServeApplications/{ACTIVE}")));
}

// Validation, managedBy, deletion, timeout, suspend.

#[test]
fn an_invalid_spec_fails_validation_with_a_warning_once_and_no_cluster() {
    let svc = || rayservice().with_spec("rayClusterDeletionDelaySeconds", json!(-1));
    let plan = reconciled(svc().with([]));
    assert_eq!(reason(&plan, "Ready"), ("False".into(), "ValidationFailed".into()));
    assert_eq!(event_reasons(&plan), ["InvalidRayServiceSpec"]);
    assert!(changed(&plan)["pendingServiceStatus"].is_null());
    let plan = reconciled(after(svc(), &plan).with([]));
    assert!(event_reasons(&plan).is_empty());
}

#[test]
fn a_bad_upgrade_options_annotation_is_a_validation_failure_that_names_it() {
    let plan = reconciled(rayservice().annotation("wasmray.dev/upgrade-options", r#"{"holdSecond": 5}"#).with([]));
    let (_, reason, message) = condition(&plan, "Ready").unwrap();
    assert_eq!(reason, "ValidationFailed");
    assert!(message.contains("wasmray.dev/upgrade-options") && message.contains("holdSecond"), "{message}");
    assert_eq!(event_reasons(&plan), ["InvalidRayServiceMetadata"]);
}

#[test]
fn names_and_the_initializing_timeout_annotation_are_validated() {
    let plan = reconciled(rayservice().named(&"a".repeat(48)).with([]));
    assert_eq!(reason(&plan, "Ready").1, "ValidationFailed");
    let plan = reconciled(rayservice().annotation("ray.io/initializing-timeout", "soon").with([]));
    assert!(condition(&plan, "Ready").unwrap().2.contains("ray.io/initializing-timeout"));
    assert_eq!(crate::validate::parse_duration_ms("1h30m"), Some(5_400_000));
    assert_eq!(crate::validate::parse_duration_ms("1800"), Some(1_800_000));
}

#[test]
fn a_rayservice_managed_by_another_controller_gets_an_empty_plan() {
    let plan = reconciled(rayservice().with_spec("managedBy", json!("kueue.x-k8s.io/multikueue")).with([]));
    assert!(plan.ops.is_empty() && plan.requeue_after_ms.is_none());
}

#[test]
fn a_deleted_rayservice_plans_nothing() {
    assert!(reconciled(rayservice().serving(ACTIVE).deleted().with(up(ACTIVE))).ops.is_empty());
}

#[test]
fn initializing_past_the_timeout_is_terminal_and_clears_the_clusters() {
    let svc = || rayservice().annotation("ray.io/initializing-timeout", "10m").initializing();
    let plan = reconciled(svc().with(up(ACTIVE)));
    assert_eq!(plan.requeue_after_ms, Some(2_000), "30 s in");
    let late = svc().condition("Ready", "False", "Initializing", "", 601);
    let plan = reconciled(late.with(up(ACTIVE)));
    assert_eq!(reason(&plan, "Ready"), ("False".into(), "InitializingTimeout".into()));
    assert_eq!(event_reasons(&plan), ["RayServiceInitializingTimeout"]);
    assert!(changed(&plan)["pendingServiceStatus"].is_null() && changed(&plan).get("pendingServiceStatus").is_some());
    assert_eq!(changed(&plan)["unreferencedClusters"], json!({ ACTIVE: ago(0) }));
    // Terminal: nothing is created again.
    let timed_out = rayservice().condition("Ready", "False", "InitializingTimeout", "", 1);
    let plan = reconciled(timed_out.with([]));
    assert!(applied(&plan).is_empty() && changed(&plan)["pendingServiceStatus"].is_null());
}

#[test]
fn suspend_deletes_the_clusters_and_services_then_says_suspended_and_resume_starts_again() {
    let svc = || rayservice().with_spec("suspend", json!(true)).serving(ACTIVE);
    let mut children = up(ACTIVE).to_vec();
    children.push(service("svc-serve-svc", ACTIVE).into());
    let plan = reconciled(svc().with(children));
    assert_eq!(deleted(&plan), [format!("RayCluster/{ACTIVE}"), "Service/svc-serve-svc".into()]);
    assert_eq!(reason(&plan, "Suspending"), ("True".into(), "SuspendInProgress".into()));
    assert!(changed(&plan)["activeServiceStatus"].is_null());
    let plan = reconciled(after(svc(), &plan).with([]));
    assert_eq!(reason(&plan, "Suspended"), ("True".into(), "SuspendComplete".into()));
    assert_eq!(reason(&plan, "Ready"), ("False".into(), "SuspendComplete".into()));

    let resumed = rayservice().condition("Suspended", "True", "SuspendComplete", "", 60).condition("Ready", "False", "SuspendComplete", "", 60);
    let plan = reconciled(resumed.with([]));
    assert_eq!(reason(&plan, "Suspended"), ("False".into(), "RayServiceResumed".into()));
    assert!(!changed(&plan)["pendingServiceStatus"]["rayClusterName"].is_null());
}

#[test]
fn the_dashboard_address_uses_the_operators_cluster_domain() {
    let plan = reconciled(settings(rayservice().initializing().with(up(ACTIVE)), json!({ "clusterDomain": "corp.internal" })));
    let request = applied_object(&plan, &format!("ServeApplications/{ACTIVE}"));
    assert_eq!(request["spec"]["dashboardURL"], format!("{ACTIVE}-head-svc.ns.svc.corp.internal:8265"));
}

#[test]
fn every_kuberay_rayservice_sample_passes_validation_and_gets_a_pending_cluster() {
    let mut seen = 0;
    for file in wasmray_samples::files() {
        for object in wasmray_samples::load(&file).into_iter().filter(|o| o["kind"] == "RayService") {
            let mut object = object;
            object["metadata"]["namespace"] = json!("ns");
            object["metadata"]["uid"] = json!("uid");
            let snapshot = Snapshot { primary: object.to_string(), children: Vec::new(), facts: Vec::new(), now: NOW_MS, seed: 1 };
            let plan = reconciled(snapshot);
            let (_, reason, message) = condition(&plan, "Ready").unwrap_or_default();
            assert_eq!(reason, "Initializing", "{file}: {message}");
            assert!(changed(&plan)["pendingServiceStatus"]["rayClusterName"].is_string(), "{file}");
            seen += 1;
        }
    }
    assert!(seen >= 13, "KubeRay v1.5.2 has 14 RayService samples, saw {seen}");
}
