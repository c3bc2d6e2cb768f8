//! Test guest: a batch scheduler that puts each RayCluster's Pods in one PodGroup.

use wasmray_guest_sdk::{
    BatchScheduler, CompanionKind, Json, ObjectRef, OwnerContext, PluginError, PodContext,
    PodDecoration, parse,
};

#[derive(serde::Deserialize)]
struct Owner {
    metadata: Meta,
}

#[derive(serde::Deserialize)]
struct Meta {
    name: String,
    namespace: String,
}

struct Gang;

impl BatchScheduler for Gang {
    fn companion_kinds() -> Vec<CompanionKind> {
        vec![CompanionKind {
            api_version: "scheduling.volcano.sh/v1beta1".into(),
            kind: "PodGroup".into(),
            namespaced: true,
        }]
    }

    fn on_submission(ctx: OwnerContext) -> Result<Vec<Json>, PluginError> {
        let owner: Owner = parse(&ctx.owner)?;
        Ok(vec![format!(
            r#"{{"apiVersion":"scheduling.volcano.sh/v1beta1","kind":"PodGroup","metadata":{{"name":"ray-{}-pg","namespace":"{}"}},"spec":{{"minMember":1}}}}"#,
            owner.metadata.name, owner.metadata.namespace
        )])
    }

    fn decorate_pod(ctx: PodContext) -> Result<PodDecoration, PluginError> {
        let owner: Owner = parse(&ctx.owner)?;
        Ok(PodDecoration::scheduler("volcano")
            .annotation("scheduling.k8s.io/group-name", &format!("ray-{}-pg", owner.metadata.name))
            .label("ray.io/group", &ctx.group_name))
    }

    fn on_completion(ctx: OwnerContext) -> Result<Vec<ObjectRef>, PluginError> {
        let owner: Owner = parse(&ctx.owner)?;
        Ok(vec![ObjectRef::namespaced(
            "scheduling.volcano.sh/v1beta1",
            "PodGroup",
            &owner.metadata.namespace,
            &format!("ray-{}-pg", owner.metadata.name),
        )])
    }
}

wasmray_guest_sdk::export_batch_scheduler!(Gang);
