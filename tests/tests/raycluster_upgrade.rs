//! Upgrades of running RayClusters end to end: `upgradeStrategy: Recreate` replaces every Pod,
//! the rolling update replaces a 10-worker group within its budget (sampled while it runs), a
//! changed `ingressOptions.host` reaches the Ingress, and a missing autoscaler ServiceAccount
//! records `AutoscalerServiceAccountNotFound`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use wasmray_api::RayCluster;
use wasmray_tests::fixtures::{WAIT, apply, eventually, pods, ray_cluster, wait_for_state, workers};
use wasmray_tests::{TestNamespace, namespace};

const OLD_IMAGE: &str = "rayproject/ray:2.54.0";
const NEW_IMAGE: &str = "rayproject/ray:2.55.0";

fn with_worker_image(mut cluster: Value, image: &str) -> Value {
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] = json!(image);
    cluster
}

fn image(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.as_deref()).unwrap_or_default()
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Running with condition Ready True.
fn ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status.and_then(|s| s.conditions.as_ref()).into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// A condition's (status, message).
fn condition(rc: &RayCluster, kind: &str) -> Option<(String, String)> {
    rc.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind).map(|c| (c.status.clone(), c.message.clone()))
}

/// The Events about `object` with this reason, as (type, message, reporting controller).
async fn events(ns: &TestNamespace, object: &str, reason: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    wasmray_tests::fixtures::events_about(ns, object, reason).await
}

#[tokio::test]
async fn recreate_replaces_every_pod_when_the_worker_image_changes() -> anyhow::Result<()> {
    let ns = namespace("raycluster-recreate").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("recreated", &[("cpu", 2, 0, 4)]);
    cluster["spec"]["upgradeStrategy"] = json!({ "type": "Recreate" });
    apply(&ns, &cluster).await?;
    wait_for_state(&ns, "recreated", "ready").await?;
    let selector = "ray.io/cluster=recreated";
    let before: BTreeSet<String> = pods(&ns, selector).await?.iter().map(uid).collect();
    assert_eq!(before.len(), 3, "a head and two workers");
    let head = pods(&ns, &format!("{selector},ray.io/node-type=head")).await?.remove(0);
    let hash = head.metadata.annotations.as_ref().and_then(|a| a.get("ray.io/upgrade-strategy-recreate-hash")).cloned();
    assert!(hash.as_ref().is_some_and(|h| h.len() == 16), "the head Pod keeps the spec hash: {hash:?}");

    // A new replica count is no reason to recreate.
    let mut scaled = cluster.clone();
    scaled["spec"]["workerGroupSpecs"][0]["replicas"] = json!(3);
    apply(&ns, &scaled).await?;
    eventually("a third worker", WAIT, || async {
        let n = workers(&ns, "recreated", "cpu").await?.len();
        Ok(if n == 3 { Ok(()) } else { Err(format!("{n} workers")) })
    })
    .await?;
    let after_scale: BTreeSet<String> = pods(&ns, selector).await?.iter().map(uid).collect();
    assert!(before.is_subset(&after_scale), "scaling kept the Pods there were");

    apply(&ns, &with_worker_image(scaled, NEW_IMAGE)).await?;
    eventually("every Pod recreated on the new spec", WAIT, || async {
        let now = pods(&ns, selector).await?;
        let fresh = now.iter().filter(|p| !after_scale.contains(&uid(p))).count();
        let new_workers = now.iter().filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get("ray.io/node-type")).map(String::as_str) == Some("worker") && image(p) == NEW_IMAGE).count();
        Ok(if now.len() == 4 && fresh == 4 && new_workers == 3 && now.iter().all(ready) {
            Ok(())
        } else {
            Err(format!("{} Pods, {fresh} new, {new_workers} workers on {NEW_IMAGE}", now.len()))
        })
    })
    .await?;
    let head = pods(&ns, &format!("{selector},ray.io/node-type=head")).await?.remove(0);
    let new_hash = head.metadata.annotations.as_ref().and_then(|a| a.get("ray.io/upgrade-strategy-recreate-hash")).cloned();
    assert_ne!(new_hash, hash, "the new head keeps the new spec's hash");
    assert!(!events(&ns, "recreated", "DeletedPod").await?.is_empty());
    Ok(())
}

/// What the sampler saw while the rolling update ran.
#[derive(Debug, Default)]
struct Samples {
    count: usize,
    fewest_ready: usize,
    most_live: usize,
    progress: BTreeSet<String>,
}

#[tokio::test]
async fn a_rolling_update_replaces_ten_workers_without_dropping_below_the_budget() -> anyhow::Result<()> {
    let ns = namespace("raycluster-rolling").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("rolled", &[("cpu", 10, 0, 20)]);
    // Floor 10 - 1 = 9 Ready, ceiling 10 + 2 = 12 Pods.
    cluster["metadata"]["annotations"] =
        json!({ "wasmray.dev/upgrade-strategy": "RollingUpdate", "wasmray.dev/max-surge": "2", "wasmray.dev/max-unavailable": "1" });
    apply(&ns, &cluster).await?;
    wait_for_state(&ns, "rolled", "ready").await?;
    eventually("10 Ready workers", WAIT, || async {
        let n = workers(&ns, "rolled", "cpu").await?.iter().filter(|p| ready(p)).count();
        Ok(if n == 10 { Ok(()) } else { Err(format!("{n} Ready")) })
    })
    .await?;
    assert!(workers(&ns, "rolled", "cpu").await?.iter().all(|p| image(p) == OLD_IMAGE));
    let head_before = pods(&ns, "ray.io/cluster=rolled,ray.io/node-type=head").await?.iter().map(uid).collect::<Vec<_>>();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pods_api, clusters): (_, Api<Pod>, Api<RayCluster>) = (stop.clone(), ns.api(), ns.api());
        tokio::spawn(async move {
            let mut seen = Samples { fewest_ready: usize::MAX, ..Samples::default() };
            let selector = ListParams::default().labels("ray.io/cluster=rolled,ray.io/group=cpu,ray.io/node-type=worker");
            while !stop.load(Ordering::SeqCst) {
                let live: Vec<Pod> = pods_api.list(&selector).await?.items.into_iter().filter(wasmray_tests::fixtures::is_live).collect();
                seen.count += 1;
                seen.fewest_ready = seen.fewest_ready.min(live.iter().filter(|p| ready(p)).count());
                seen.most_live = seen.most_live.max(live.len());
                if let Some((status, message)) = condition(&clusters.get("rolled").await?, "RollingUpdateInProgress")
                    && status == "True"
                {
                    seen.progress.insert(message);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok(seen)
        })
    };

    apply(&ns, &with_worker_image(cluster, NEW_IMAGE)).await?;
    let clusters: Api<RayCluster> = ns.api();
    eventually("10 Ready workers on the new image and the update over", WAIT, || async {
        let now = workers(&ns, "rolled", "cpu").await?;
        let on_new = now.iter().filter(|p| image(p) == NEW_IMAGE && ready(p)).count();
        let rc = clusters.get("rolled").await?;
        let over = condition(&rc, "RollingUpdateInProgress").is_some_and(|(status, _)| status == "False");
        Ok(if now.len() == 10 && on_new == 10 && over {
            Ok(())
        } else {
            Err(format!("{} workers, {on_new} Ready on {NEW_IMAGE}, condition {:?}", now.len(), condition(&rc, "RollingUpdateInProgress")))
        })
    })
    .await?;
    stop.store(true, Ordering::SeqCst);
    let seen = sampler.await??;
    eprintln!("rolling update of 10 workers, budget surge 2 / unavailable 1: {seen:?}");
    assert!(seen.count >= 3, "the sampler ran: {seen:?}");
    assert!(seen.fewest_ready >= 9, "never fewer than 10 - max-unavailable Ready workers: {seen:?}");
    assert!(seen.most_live <= 12, "never more than 10 + max-surge live workers: {seen:?}");
    assert!(
        seen.progress.iter().any(|m| m.contains("/10 workers of group cpu on the new template")),
        "the condition told the progress while it ran: {seen:?}"
    );
    let head_after = pods(&ns, "ray.io/cluster=rolled,ray.io/node-type=head").await?.iter().map(uid).collect::<Vec<_>>();
    assert_eq!(head_after, head_before, "the head's own template did not change, so it stays");
    Ok(())
}

#[tokio::test]
async fn a_changed_ingress_options_host_updates_the_ingress() -> anyhow::Result<()> {
    let ns = namespace("raycluster-ingress-options").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("hosted", &[("cpu", 1, 0, 2)]);
    cluster["spec"]["headGroupSpec"]["enableIngress"] = json!(true);
    cluster["spec"]["headGroupSpec"]["ingressOptions"] =
        json!({ "host": "a.example.com", "tls": [{ "hosts": ["a.example.com"], "secretName": "dash-tls" }] });
    apply(&ns, &cluster).await?;
    let api: Api<Ingress> = ns.api();
    let host_is = |host: &'static str| move |i: Option<&Ingress>| {
        i.and_then(|i| i.spec.as_ref()).and_then(|s| s.rules.as_ref()).and_then(|r| r.first()).and_then(|r| r.host.as_deref()) == Some(host)
    };
    let ingress = ns.wait_until(&api, "hosted-head-ingress", host_is("a.example.com"), WAIT).await?;
    let spec = serde_json::to_value(ingress.spec.as_ref().unwrap())?;
    assert_eq!(
        spec["rules"][0]["http"]["paths"],
        json!([{ "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "hosted-head-svc", "port": { "number": 8265 } } } }])
    );
    assert_eq!(spec["tls"], json!([{ "hosts": ["a.example.com"], "secretName": "dash-tls" }]));

    cluster["spec"]["headGroupSpec"]["ingressOptions"]["host"] = json!("b.example.com");
    apply(&ns, &cluster).await?;
    ns.wait_until(&api, "hosted-head-ingress", host_is("b.example.com"), WAIT).await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_autoscaler_service_account_records_autoscaler_service_account_not_found() -> anyhow::Result<()> {
    let ns = namespace("raycluster-missing-sa").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("scaled", &[("cpu", 1, 0, 2)]);
    cluster["spec"]["enableInTreeAutoscaling"] = json!(true);
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["serviceAccountName"] = json!("ray-autoscaler");
    apply(&ns, &cluster).await?;
    eventually("an AutoscalerServiceAccountNotFound Event", WAIT, || async {
        let found = events(&ns, "scaled", "AutoscalerServiceAccountNotFound").await?;
        Ok(if found.is_empty() { Err("none".into()) } else { Ok(()) })
    })
    .await?;
    let (type_, message, reporter) = events(&ns, "scaled", "AutoscalerServiceAccountNotFound").await?.remove(0);
    assert_eq!((type_.as_str(), reporter.as_str()), ("Warning", "raycluster-controller"));
    assert!(message.contains("serviceAccountName ray-autoscaler does not exist"), "{message}");

    // Once the account exists the head Pod is created under it.
    let accounts: Api<ServiceAccount> = ns.api();
    let account: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": "ray-autoscaler" } }))?;
    accounts.create(&PostParams::default(), &account).await?;
    wait_for_state(&ns, "scaled", "ready").await?;
    let head = pods(&ns, "ray.io/cluster=scaled,ray.io/node-type=head").await?.remove(0);
    assert_eq!(head.spec.as_ref().and_then(|s| s.service_account_name.as_deref()), Some("ray-autoscaler"));
    Ok(())
}

#[tokio::test]
async fn the_rolling_update_replaces_the_head_last_when_its_own_template_changed() -> anyhow::Result<()> {
    let ns = namespace("raycluster-rolling-head").await?;
    let _operator = ns.operator().await?;
    let mut cluster = ray_cluster("headlast", &[("cpu", 3, 0, 6)]);
    cluster["metadata"]["annotations"] =
        json!({ "wasmray.dev/upgrade-strategy": "RollingUpdate", "wasmray.dev/max-surge": "1", "wasmray.dev/max-unavailable": "0" });
    apply(&ns, &cluster).await?;
    wait_for_state(&ns, "headlast", "ready").await?;
    let selector = "ray.io/cluster=headlast";
    let old_head = pods(&ns, &format!("{selector},ray.io/node-type=head")).await?.remove(0);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pods_api): (_, Api<Pod>) = (stop.clone(), ns.api());
        tokio::spawn(async move {
            // (samples, samples with a new head while an old worker was still live)
            let (mut samples, mut early) = (0, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let live: Vec<Pod> =
                    pods_api.list(&ListParams::default().labels(selector)).await?.items.into_iter().filter(wasmray_tests::fixtures::is_live).collect();
                let node = |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get("ray.io/node-type")).cloned().unwrap_or_default();
                let new_head = live.iter().any(|p| node(p) == "head" && image(p) == NEW_IMAGE);
                let old_workers = live.iter().filter(|p| node(p) == "worker" && image(p) == OLD_IMAGE).count();
                samples += 1;
                if new_head && old_workers > 0 {
                    early.push(old_workers);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok((samples, early))
        })
    };

    let mut both = with_worker_image(cluster, NEW_IMAGE);
    both["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = json!(NEW_IMAGE);
    apply(&ns, &both).await?;
    let clusters: Api<RayCluster> = ns.api();
    eventually("a new head and 3 new workers, the update over", WAIT, || async {
        let live = pods(&ns, selector).await?;
        let on_new = live.iter().filter(|p| image(p) == NEW_IMAGE && ready(p)).count();
        let head_replaced = live.iter().any(|p| image(p) == NEW_IMAGE && uid(p) != uid(&old_head) && p.metadata.labels.as_ref().and_then(|l| l.get("ray.io/node-type")).map(String::as_str) == Some("head"));
        let rc = clusters.get("headlast").await?;
        let over = condition(&rc, "RollingUpdateInProgress").is_some_and(|(status, _)| status == "False");
        Ok(if live.len() == 4 && on_new == 4 && head_replaced && over {
            Ok(())
        } else {
            Err(format!("{} Pods, {on_new} Ready on {NEW_IMAGE}, head replaced {head_replaced}, condition {:?}", live.len(), condition(&rc, "RollingUpdateInProgress")))
        })
    })
    .await?;
    stop.store(true, Ordering::SeqCst);
    let (samples, early) = sampler.await??;
    assert!(samples >= 3, "the sampler ran {samples} times");
    assert!(early.is_empty(), "the new head came while old workers were live, in samples: {early:?}");
    Ok(())
}
