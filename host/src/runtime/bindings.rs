//! The host's bindings of `wit/`: a module per world of the current version, and the same for each older version still served.

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

/// WIT 0.1.0 as it shipped (`wit/0.1.0/`), for plugins built against it.
///
/// Its `types` are the current ones: released items never change, so the 0.1.0 records are
/// structurally those of today and wasmtime's type check accepts the current Rust types for
/// them. Only `log` gets its own binding, since the linker serves it once per version.
pub mod v0_1 {
    /// The 0.1.0 `log`, and the `reconciler` world.
    pub mod reconciler {
        wasmtime::component::bindgen!({
            world: "wasmray:plugin/reconciler",
            path: "../wit/0.1.0",
            with: {
                "wasmray:plugin/types": crate::runtime::bindings::reconciler::wasmray::plugin::types,
            },
        });
    }

    /// The 0.1.0 `batch-scheduler` world.
    pub mod batch_scheduler {
        wasmtime::component::bindgen!({
            world: "wasmray:plugin/batch-scheduler",
            path: "../wit/0.1.0",
            with: {
                "wasmray:plugin/types": crate::runtime::bindings::reconciler::wasmray::plugin::types,
                "wasmray:plugin/log": super::reconciler::wasmray::plugin::log,
            },
        });
    }

    /// The 0.1.0 `upgrade-strategy` world.
    pub mod upgrade_strategy {
        wasmtime::component::bindgen!({
            world: "wasmray:plugin/upgrade-strategy",
            path: "../wit/0.1.0",
            with: {
                "wasmray:plugin/types": crate::runtime::bindings::reconciler::wasmray::plugin::types,
                "wasmray:plugin/log": super::reconciler::wasmray::plugin::log,
            },
        });
    }

    pub use reconciler::wasmray::plugin::log;
}

pub use reconciler::wasmray::plugin::{log, types};
