//! Head and worker Pods: create what is missing, replace what is broken, scale groups to their clamped size.

use std::collections::BTreeMap;

use wasmray_api::{WorkerGroupSpec, names, template_hash};
use wasmray_guest_sdk::{Child, EventType, MultiHostReplica, WorkerPod};

use crate::children::{NodeType, RayPod};
use crate::desired;
use crate::suffixes::stable_hash;
use crate::upgrade::{self, Progress, Strategy};
use crate::vocab::{conditions, events, labels};
use crate::{Ctx, Out};

/// Deletes every live Pod of the cluster (suspend, and deletion with GCS FT cleanup).
pub fn delete_all(ctx: &Ctx, out: &mut Out, why: &str) {
    let live: Vec<&RayPod> = ctx
        .children
        .pods
        .iter()
        .filter(|p| !p.terminating)
        .collect();
    for pod in &live {
        out.delete(pod.object_ref());
    }
    if !live.is_empty() {
        let message = format!(
            "Deleted Pods for RayCluster {}/{} due to {why}",
            ctx.namespace, ctx.name
        );
        out.event(EventType::Normal, events::DELETED_POD, message);
    }
}

/// The head Pod, then each worker group. A head Pod replaced in this pass stops the pass, as in
/// KubeRay: the workers are looked at again once the new head exists. Under `Recreate`, a pass
/// that finds Pods built from an older spec deletes them and does nothing else.
pub fn reconcile(ctx: &mut Ctx, out: &mut Out) {
    if ctx.strategy == Strategy::Recreate && recreate(ctx, out) {
        return;
    }
    if !head(ctx, out) {
        return;
    }
    for group in ctx.cluster.spec.worker_group_specs.iter().flatten() {
        workers(ctx, out, group);
    }
}

/// `upgradeStrategy: Recreate`: once the head Pod's recreate hash differs from the spec's, every
/// live Pod goes; a worker whose own hash differs goes too (its delete failed last time).
/// Returns whether anything was deleted.
fn recreate(ctx: &Ctx, out: &mut Out) -> bool {
    let current = template_hash::recreate_hash(&ctx.cluster.spec);
    let stale = |p: &RayPod| p.recreate_hash.as_deref().is_some_and(|h| h != current);
    let live: Vec<&RayPod> = ctx.children.pods.iter().filter(|p| !p.terminating).collect();
    let head_stale = live.iter().any(|p| p.node_type == NodeType::Head && stale(p));
    let doomed: Vec<&RayPod> = live.into_iter().filter(|p| head_stale || stale(p)).collect();
    if doomed.is_empty() {
        return false;
    }
    for pod in &doomed {
        out.delete(pod.object_ref());
    }
    let message = format!(
        "Deleted {} Pods of RayCluster {}/{} for upgradeStrategy Recreate: they were built from an earlier spec",
        doomed.len(),
        ctx.namespace,
        ctx.name
    );
    out.event(EventType::Normal, events::DELETED_POD, message);
    true
}

/// Whether a single-host worker group has a live Pod on an old template (rolling update only).
fn workers_outdated(ctx: &Ctx) -> bool {
    ctx.cluster.spec.worker_group_specs.iter().flatten().filter(|g| !desired::group_suspended(g) && desired::hosts(g) == 1).any(|g| {
        let current = template_hash::worker_group_hash(&ctx.cluster.spec, g);
        ctx.children.workers(&g.group_name).any(|p| !p.terminating && upgrade::outdated(p, &current))
    })
}

/// Returns false when the head Pod was deleted (unhealthy, or replaced by the rolling update).
fn head(ctx: &mut Ctx, out: &mut Out) -> bool {
    let live: Vec<&RayPod> = ctx.children.heads().filter(|p| !p.terminating).collect();
    match live.as_slice() {
        [] if job_cluster_lost_its_head(ctx) => true,
        [] => {
            let suffix = ctx.suffixes.next();
            let name = format!("{}{suffix}", names::head_pod_prefix(ctx.name, false));
            out.render(Child::HeadPod(suffix));
            out.event(
                EventType::Normal,
                events::CREATED_HEAD_POD,
                format!("Created head Pod {}/{name}", ctx.namespace),
            );
            true
        }
        [pod] => match &pod.unhealthy {
            Some(reason) => {
                out.delete(pod.object_ref());
                out.event(
                    EventType::Normal,
                    events::DELETED_HEAD_POD,
                    format!("Deleted head Pod {}/{}: {reason}", ctx.namespace, pod.name),
                );
                out.fail(format!("deleted the unhealthy head Pod: {reason}"));
                false
            }
            None => rolled_head(ctx, out, pod),
        },
        many => {
            // Keep the heads that may still come up; the spares are KubeRay's to delete too.
            for pod in many
                .iter()
                .filter(|p| p.phase != "Running" && p.phase != "Pending")
            {
                out.delete(pod.object_ref());
                out.event(
                    EventType::Normal,
                    events::DELETED_HEAD_POD,
                    format!("Deleted extra head Pod {}/{}", ctx.namespace, pod.name),
                );
            }
            true
        }
    }
}

/// The rolling update's last step: a head Pod on an old template of its own is deleted once no
/// worker group has an outdated Pod (the next pass creates the new one). Returns false when
/// it was deleted.
fn rolled_head(ctx: &Ctx, out: &mut Out, pod: &RayPod) -> bool {
    if !matches!(ctx.strategy, Strategy::Rolling(_)) || !upgrade::outdated(pod, &template_hash::head_hash(&ctx.cluster.spec)) {
        return true;
    }
    out.rollout.head_outdated = true;
    if workers_outdated(ctx) {
        return true;
    }
    out.delete(pod.object_ref());
    out.event(
        EventType::Normal,
        events::DELETED_HEAD_POD,
        format!("Deleted head Pod {}/{}: its template changed (rolling update)", ctx.namespace, pod.name),
    );
    false
}

/// A RayJob's cluster that was provisioned once does not get a new head: its job is lost, and the
/// RayJob fails instead of silently running on a fresh cluster.
fn job_cluster_lost_its_head(ctx: &Ctx) -> bool {
    let from_job = ctx
        .cluster
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::ORIGINATED_FROM_CRD))
        .map(String::as_str)
        == Some("RayJob");
    from_job && crate::status::condition_true(ctx.cluster, conditions::PROVISIONED)
}

/// One worker group: suspended, multi-host, or one Pod per replica.
fn workers(ctx: &mut Ctx, out: &mut Out, group: &WorkerGroupSpec) {
    let name = group.group_name.as_str();
    let live: Vec<RayPod> = ctx
        .children
        .workers(name)
        .filter(|p| !p.terminating)
        .cloned()
        .collect();
    if desired::group_suspended(group) {
        for pod in &live {
            out.delete(pod.object_ref());
        }
        if !live.is_empty() {
            let message = format!(
                "Deleted all pods for suspended worker group {name} in RayCluster {}/{}",
                ctx.namespace, ctx.name
            );
            out.event(EventType::Normal, events::DELETED_WORKER_POD, message);
        }
        return;
    }
    let to_delete: Vec<&str> = group
        .scale_strategy
        .as_ref()
        .and_then(|s| s.workers_to_delete.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let hosts = desired::hosts(group);
    // Without replica labels (the host's multi-host indexing off) the Pods are handled one by one.
    if hosts > 1 && live.iter().all(|p| p.replica_name.is_some()) {
        multi_host(ctx, out, group, live, &to_delete);
    } else {
        single_host(ctx, out, group, live, &to_delete);
    }
}

fn single_host(
    ctx: &mut Ctx,
    out: &mut Out,
    group: &WorkerGroupSpec,
    live: Vec<RayPod>,
    to_delete: &[&str],
) {
    let unhealthy: Vec<&RayPod> = live.iter().filter(|p| p.unhealthy.is_some()).collect();
    if !unhealthy.is_empty() {
        for pod in &unhealthy {
            delete_worker(ctx, out, pod, pod.unhealthy.as_deref());
        }
        // Replacements come in the next pass, once the deletions are visible, as in KubeRay.
        out.fail(format!(
            "deleted {} unhealthy worker Pods of group {}",
            unhealthy.len(),
            group.group_name
        ));
        return;
    }
    let (asked, mut remaining): (Vec<RayPod>, Vec<RayPod>) = live
        .into_iter()
        .partition(|p| to_delete.contains(&p.name.as_str()));
    for pod in &asked {
        delete_worker(ctx, out, pod, None);
    }
    let want = usize::try_from(desired::pods(group)).unwrap_or(usize::MAX);
    // Multi-host groups, even handled Pod by Pod, are not rolled: a replica is all or nothing.
    if let Strategy::Rolling(budget) = ctx.strategy
        && desired::hosts(group) == 1
    {
        let current = template_hash::worker_group_hash(&ctx.cluster.spec, group);
        let (old, fresh): (Vec<&RayPod>, Vec<&RayPod>) = remaining.iter().partition(|p| upgrade::outdated(p, &current));
        if !old.is_empty() {
            let step = upgrade::roll(want, &fresh, &old, &budget);
            for _ in 0..step.create {
                create_worker(ctx, out, group, None);
            }
            for pod in &step.delete {
                delete_worker(ctx, out, pod, Some("its group's template changed (rolling update)"));
            }
            out.rollout.groups.push(Progress { group: group.group_name.clone(), updated: fresh.len(), outdated: old.len(), want });
            return;
        }
    }
    if remaining.len() < want {
        for _ in remaining.len()..want {
            create_worker(ctx, out, group, None);
        }
    } else if remaining.len() > want && !ctx.autoscaling {
        remaining.sort_by_key(|p| (p.running_and_ready, stable_hash(&p.name)));
        for pod in &remaining[..remaining.len() - want] {
            delete_worker(ctx, out, pod, None);
        }
    }
}

/// Multi-host groups live and die as whole replicas of `numOfHosts` Pods.
fn multi_host(
    ctx: &mut Ctx,
    out: &mut Out,
    group: &WorkerGroupSpec,
    live: Vec<RayPod>,
    to_delete: &[&str],
) {
    let hosts = usize::try_from(desired::hosts(group)).unwrap_or(1);
    let mut replicas: BTreeMap<String, Vec<RayPod>> = BTreeMap::new();
    for pod in live {
        replicas
            .entry(pod.replica_name.clone().unwrap_or_default())
            .or_default()
            .push(pod);
    }
    let mut kept: Vec<(String, Vec<RayPod>)> = Vec::new();
    let mut unhealthy = 0;
    for (replica, pods) in replicas {
        let verdict = if pods.len() != hosts {
            Some(format!(
                "replica {replica} has {} of {hosts} hosts",
                pods.len()
            ))
        } else if let Some(reason) = pods.iter().find_map(|p| p.unhealthy.clone()) {
            unhealthy += 1;
            Some(format!("replica {replica} has an unhealthy host: {reason}"))
        } else if pods.iter().any(|p| to_delete.contains(&p.name.as_str())) {
            Some(format!("a host of replica {replica} is in workersToDelete"))
        } else {
            None
        };
        match verdict {
            Some(reason) => pods
                .iter()
                .for_each(|p| delete_worker(ctx, out, p, Some(&reason))),
            None => kept.push((replica, pods)),
        }
    }
    if unhealthy > 0 {
        out.fail(format!(
            "deleted {unhealthy} unhealthy replicas of group {}",
            group.group_name
        ));
        return;
    }
    let want = usize::try_from(desired::replicas(group)).unwrap_or(0);
    if kept.len() < want {
        let mut used: Vec<u32> = kept
            .iter()
            .filter_map(|(_, pods)| pods[0].replica_index)
            .collect();
        for _ in kept.len()..want {
            let index = (0..).find(|i| !used.contains(i)).unwrap_or(0);
            used.push(index);
            let replica = format!("{}-{}", group.group_name, ctx.suffixes.next());
            for host in 0..hosts {
                let slot = MultiHostReplica {
                    name: replica.clone(),
                    index,
                    host_index: u32::try_from(host).unwrap_or(0),
                };
                create_worker(ctx, out, group, Some(slot));
            }
        }
    } else if kept.len() > want && !ctx.autoscaling {
        kept.sort_by_key(|(name, pods)| {
            (pods.iter().all(|p| p.running_and_ready), stable_hash(name))
        });
        for (replica, pods) in &kept[..kept.len() - want] {
            let reason = format!("replica {replica} is beyond the group's {want} replicas");
            pods.iter()
                .for_each(|p| delete_worker(ctx, out, p, Some(&reason)));
        }
    }
}

fn create_worker(
    ctx: &mut Ctx,
    out: &mut Out,
    group: &WorkerGroupSpec,
    replica: Option<MultiHostReplica>,
) {
    let suffix = ctx.suffixes.next();
    let name = format!(
        "{}{suffix}",
        names::worker_pod_prefix(ctx.name, &group.group_name)
    );
    out.render(Child::WorkerPod(WorkerPod {
        group: group.group_name.clone(),
        suffix,
        replica,
    }));
    out.event(
        EventType::Normal,
        events::CREATED_WORKER_POD,
        format!("Created worker Pod {}/{name}", ctx.namespace),
    );
}

fn delete_worker(ctx: &Ctx, out: &mut Out, pod: &RayPod, reason: Option<&str>) {
    out.delete(pod.object_ref());
    let message = match reason {
        Some(reason) => format!(
            "Deleted worker Pod {}/{}: {reason}",
            ctx.namespace, pod.name
        ),
        None => format!("Deleted worker Pod {}/{}", ctx.namespace, pod.name),
    };
    out.event(EventType::Normal, events::DELETED_WORKER_POD, message);
}
