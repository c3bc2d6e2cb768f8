//! Test guest: a batch scheduler whose `companion-kinds` names an apiVersion but no kind.

use wasmray_guest_sdk::{BatchScheduler, CompanionKind};

struct Nameless;

impl BatchScheduler for Nameless {
    fn companion_kinds() -> Vec<CompanionKind> {
        vec![CompanionKind { api_version: "scheduling.volcano.sh/v1beta1".into(), kind: String::new(), namespaced: true }]
    }
}

wasmray_guest_sdk::export_batch_scheduler!(Nameless);
