//! The host's one binding of `wit/`: a module per world, all sharing the `types` and `log` bindings.

/// The `reconciler` world; also defines the shared `types` and `log` bindings.
pub mod reconciler {
    wasmtime::component::bindgen!({
        world: "wasmray:plugin/reconciler",
        path: "../wit",
        additional_derives: [PartialEq],
    });
}

/// The `batch-scheduler` world.
pub mod batch_scheduler {
    wasmtime::component::bindgen!({
        world: "wasmray:plugin/batch-scheduler",
        path: "../wit",
        with: {
            "wasmray:plugin/types": super::reconciler::wasmray::plugin::types,
            "wasmray:plugin/log": super::reconciler::wasmray::plugin::log,
        },
    });
}

/// The `upgrade-strategy` world.
pub mod upgrade_strategy {
    wasmtime::component::bindgen!({
        world: "wasmray:plugin/upgrade-strategy",
        path: "../wit",
        with: {
            "wasmray:plugin/types": super::reconciler::wasmray::plugin::types,
            "wasmray:plugin/log": super::reconciler::wasmray::plugin::log,
        },
    });
}

pub use reconciler::wasmray::plugin::{log, types};
