//! RayService end to end: the operator on the local control plane, its RayClusters on KWOK nodes, and each cluster's Serve on a real local Ray head of its own — Ready with RUNNING apps, a serveConfigV2 change in place, a rayClusterConfig change on a new cluster, DEPLOY_FAILED in the conditions, and every KubeRay RayService sample.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::api::{Api, ListParams};
use serde_json::Value;
use wasmray_api::{RayCluster, RayService};
use wasmray_tests::namespace;
use wasmray_tests::rayservices::{
    BROKEN_MESSAGE, Heads, INCREMENTAL_UPGRADE_GATE, NEW_IMAGE, UPGRADE_WAIT, WAIT, a_rayservice, active, app_status, apply, broken,
    condition, condition_messages, deleting_old_clusters_after, deployed_user_config, events_naming, finish, hello, install_gateway_crds,
    is_ready, live_clusters, on_image, operator, pending, selected_cluster, serving, serving_steadily, wait_for, wait_for_serve,
    wait_for_within,
};

/// `rayClusterDeletionDelaySeconds` of the lifecycle test: short, but long enough to see the
/// old cluster still there right after the promotion.
const DELETION_DELAY_S: i32 = 15;

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_shape_serves_then_takes_a_serve_config_change_in_place_and_a_cluster_change_on_a_new_cluster() -> anyhow::Result<()> {
    let heads = Heads::start(2).await?;
    let ns = namespace("rayservice-lifecycle").await?;
    let operator = operator(&ns, &heads, &[]).await?;
    let service = deleting_old_clusters_after(a_rayservice("fruit"), DELETION_DELAY_S);
    apply(&ns, &service).await?;

    // Ready, with the application RUNNING through the real Serve API.
    let ready = wait_for(&ns, "fruit", "Ready with every application RUNNING", serving_steadily).await?;
    let first = active(&ready).context("an active cluster")?.to_string();
    assert_eq!(app_status(&ready, "activeServiceStatus", "hello"), Some("RUNNING"), "{ready:#}");
    assert_eq!(ready["serviceStatus"], "Running", "{ready:#}");
    let head_a = heads.head_of(&first).context("the operator dialled the cluster's dashboard")?;
    let apps = head_a.serve_applications().await?;
    assert_eq!(apps["applications"]["hello"]["status"], "RUNNING", "Serve itself: {apps:#}");
    assert_eq!(deployed_user_config(&apps, "hello", "Hello")["greeting"], "hello v1", "{apps:#}");
    assert_eq!(head_a.ask_serve("/hello").await?, (200, "hello v1".to_string()));
    for svc in ["fruit-head-svc", "fruit-serve-svc"] {
        assert_eq!(selected_cluster(&ns, svc).await?.as_deref(), Some(first.as_str()), "{svc} selects the active cluster");
    }
    let endpoints = ready["numServeEndpoints"].as_i64().unwrap_or_default();
    assert!(endpoints >= 1, "Ready counts serve endpoints: {ready:#}");

    // A serveConfigV2 change is applied in place: the same cluster's Serve takes the new user_config.
    let reconfigured = serving(service.clone(), &[hello("hello v2")]);
    apply(&ns, &reconfigured).await?;
    wait_for_serve(head_a, "greeting hello v2 deployed and RUNNING", WAIT, |apps| {
        deployed_user_config(apps, "hello", "Hello")["greeting"] == "hello v2" && apps["applications"]["hello"]["status"] == "RUNNING"
    })
    .await?;
    assert_eq!(head_a.ask_serve("/hello").await?.1, "hello v2");
    let after = wait_for(&ns, "fruit", "serving on the same cluster", serving_steadily).await?;
    assert_eq!(active(&after), Some(first.as_str()), "{after:#}");
    assert_eq!(live_clusters(&ns).await?, vec![first.clone()], "no new cluster for a serveConfigV2 change");
    assert_eq!(heads.clusters(), vec![first.clone()], "the operator asked about one cluster only");

    // A rayClusterConfig change: a pending cluster, promoted, the old one deleted after the delay.
    apply(&ns, &on_image(reconfigured, NEW_IMAGE)).await?;
    let upgrading = wait_for(&ns, "fruit", "a pending cluster", |s| pending(s).is_some()).await?;
    let second = pending(&upgrading).context("a pending cluster")?.to_string();
    assert_ne!(second, first, "{upgrading:#}");
    assert_eq!(active(&upgrading), Some(first.as_str()), "the active cluster serves meanwhile: {upgrading:#}");
    assert_eq!(condition(&upgrading, "UpgradeInProgress")["status"], "True", "{upgrading:#}");
    let wanted = second.clone();
    let promoted =
        wait_for_within(&ns, "fruit", "the pending cluster promoted", UPGRADE_WAIT, move |s| active(s) == Some(wanted.as_str()) && pending(s).is_none())
            .await?;
    let promoted_at = Instant::now();
    assert!(is_ready(&promoted), "Ready after the promotion: {promoted:#}");
    let clusters: Api<RayCluster> = ns.api();
    let old = clusters.get_opt(&first).await?;
    assert!(old.is_some_and(|c| c.metadata.deletion_timestamp.is_none()), "the old cluster stays for rayClusterDeletionDelaySeconds");
    for svc in ["fruit-head-svc", "fruit-serve-svc"] {
        assert_eq!(selected_cluster(&ns, svc).await?.as_deref(), Some(second.as_str()), "{svc} moved to the new cluster");
    }
    let head_b = heads.head_of(&second).context("the new cluster has the second head")?;
    let apps = head_b.serve_applications().await?;
    assert_eq!(apps["applications"]["hello"]["status"], "RUNNING", "the new cluster's Serve: {apps:#}");
    assert_eq!(deployed_user_config(&apps, "hello", "Hello")["greeting"], "hello v2", "{apps:#}");

    wasmray_tests::within(WAIT, async {
        while clusters.get_opt(&first).await.ok().flatten().is_some_and(|c| c.metadata.deletion_timestamp.is_none()) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .with_context(|| format!("the old cluster {first} was never deleted"))?;
    let waited = promoted_at.elapsed();
    println!("the old cluster was deleted {waited:?} after the promotion was seen (delay {DELETION_DELAY_S} s)");
    // The promotion was seen up to a second after it was written.
    assert!(waited.as_secs_f64() >= f64::from(DELETION_DELAY_S) - 2.0, "not before the delay: {waited:?}");
    let deleted = events_naming(&ns, "fruit", "DeletedRayCluster", &first).await?;
    assert!(deleted.iter().any(|(_, message)| message.contains(&first)), "a DeletedRayCluster Event names {first}: {deleted:?}");
    assert_eq!(live_clusters(&ns).await?, vec![second.clone()]);
    finish(&ns, operator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_serve_reports_deploy_failed_shows_in_the_conditions_with_serves_message() -> anyhow::Result<()> {
    let heads = Heads::start(1).await?;
    let ns = namespace("rayservice-deploy-failed").await?;
    let operator = operator(&ns, &heads, &[]).await?;
    apply(&ns, &serving(a_rayservice("broken"), &[hello("hello"), broken()])).await?;

    let failed = wait_for(&ns, "broken", "Serve's message in a condition", |s| condition_messages(s).contains(BROKEN_MESSAGE)).await?;
    assert!(!is_ready(&failed), "not Ready while an application failed: {failed:#}");
    // The cluster is still the pending one: it never had every application RUNNING.
    let which = if pending(&failed).is_some() { "pendingServiceStatus" } else { "activeServiceStatus" };
    assert_eq!(app_status(&failed, which, "broken"), Some("DEPLOY_FAILED"), "{failed:#}");
    let message = failed[which]["applicationStatuses"]["broken"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(BROKEN_MESSAGE), "the application's status carries Serve's message: {message}");
    println!("the RayService's conditions:\n{}", condition_messages(&failed));

    let cluster = pending(&failed).or(active(&failed)).context("a cluster")?;
    let apps = heads.head_of(cluster).context("the cluster has the head")?.serve_applications().await?;
    assert_eq!(apps["applications"]["broken"]["status"], "DEPLOY_FAILED", "Serve itself: {apps:#}");
    finish(&ns, operator).await
}

/// Sample files applied at once (each in a namespace of its own, with its own operator).
const SAMPLES_AT_ONCE: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn every_rayservice_sample_applies_unchanged_and_gets_its_cluster() -> anyhow::Result<()> {
    let files: Vec<String> =
        wasmray_samples::files().into_iter().filter(|f| wasmray_samples::load(f).iter().any(is_rayservice)).collect();
    assert!(files.len() >= 13, "KubeRay v1.5.2 has 14 RayService samples: {files:?}");
    // The incremental-upgrade sample's Gateway and HTTPRoute need their CRDs.
    let cluster = wasmray_tests::cluster().await?;
    install_gateway_crds(&cluster.client().await?).await?;
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(SAMPLES_AT_ONCE));
    let mut running = tokio::task::JoinSet::new();
    for file in files {
        let permits = permits.clone();
        running.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let outcome = run_sample(&file).await;
            (file, outcome)
        });
    }
    let mut results: Vec<(String, anyhow::Result<String>)> = running.join_all().await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (file, outcome) in &results {
        if let Ok(what) = outcome {
            println!("{file}: {what}");
        }
    }
    let failures: Vec<String> = results.iter().filter_map(|(f, r)| r.as_ref().err().map(|e| format!("{f}: {e:#}"))).collect();
    assert!(failures.is_empty(), "{} of {} samples failed:\n{}", failures.len(), results.len(), failures.join("\n"));
    Ok(())
}

fn is_rayservice(object: &Value) -> bool {
    object["apiVersion"] == "ray.io/v1" && object["kind"] == "RayService"
}

/// One sample, as its comments say to use it (`kubectl apply --server-side`), with no Ray behind
/// it: each RayService gets a (pending) cluster of its own, owned by it.
async fn run_sample(file: &str) -> anyhow::Result<String> {
    let short = file.rsplit('/').next().unwrap_or(file).trim_end_matches(".yaml").trim_start_matches("ray-service.");
    let ns = namespace(&format!("rss-{short}")).await?;
    let heads = Heads::none().await?;
    let operator = operator(&ns, &heads, &INCREMENTAL_UPGRADE_GATE).await?;
    wasmray_tests::kubectl_apply(&ns, &wasmray_samples::samples_dir().join(file)).await?;
    let names: Vec<String> =
        wasmray_samples::load(file).iter().filter(|o| is_rayservice(o)).filter_map(|o| o["metadata"]["name"].as_str().map(String::from)).collect();
    let api: Api<RayService> = ns.api();
    anyhow::ensure!(api.list(&ListParams::default()).await?.items.len() == names.len(), "every RayService of the file was created");
    let clusters: Api<RayCluster> = ns.api();
    let mut seen = Vec::new();
    for name in &names {
        let named = wait_for(&ns, name, "a cluster named in the status", |s| pending(s).or(active(s)).is_some()).await?;
        let cluster = pending(&named).or(active(&named)).unwrap_or_default().to_string();
        let created = ns.wait_until(&clusters, &cluster, |c: Option<&RayCluster>| c.is_some(), WAIT).await;
        let created = created.with_context(|| format!("{name}'s cluster {cluster} never appeared; status: {named:#}"))?;
        let owner = created.metadata.owner_references.unwrap_or_default();
        anyhow::ensure!(owner.first().is_some_and(|o| o.kind == "RayService" && &o.name == name), "{cluster} is not owned by {name}");
        seen.push(format!("{name} on {cluster}"));
    }
    finish(&ns, operator).await?;
    Ok(seen.join(", "))
}
