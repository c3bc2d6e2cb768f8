//! The wasmray guest SDK: implement one trait, call one export macro, build for `wasm32-wasip2`.
//!
//! A plugin is a pure function of its input. It gets no clock, filesystem, network or
//! environment: the host passes `now` and a random seed in the input, and a plugin that needs
//! randomness derives it from the seed so the same input always gives the same answer.
//!
//! ```no_run
//! use wasmray_guest_sdk::{BatchScheduler, PodContext, PodDecoration, PluginError};
//!
//! struct Gang;
//!
//! impl BatchScheduler for Gang {
//!     fn decorate_pod(ctx: PodContext) -> Result<PodDecoration, PluginError> {
//!         Ok(PodDecoration::scheduler("gang-scheduler").label("gang", &ctx.group_name))
//!     }
//! }
//!
//! wasmray_guest_sdk::export_batch_scheduler!(Gang);
//! ```
//!
//! The crate also builds natively, so a plugin's logic can be unit-tested with `cargo test`;
//! only [`log`] calls need the host and do nothing outside WebAssembly.

mod helpers;
#[cfg(feature = "k8s")]
pub mod k8s;
pub mod log;
#[cfg(feature = "ray")]
pub mod ray;
#[cfg(feature = "ray")]
pub mod upgrade;

pub use helpers::{REMOVE_CONDITION_REASON, controller_reference, parse, parse_view, to_json};

/// The WIT package version this SDK was built against.
pub const WIT_VERSION: &str = "0.2.0";

/// Raw bindings generated from `wit/`; plugins use the traits and macros instead.
///
/// Each world gets its own module, sharing the `types` and `log` interfaces of the first. With
/// `pub_export_macro` wit-bindgen keeps a world's exports out of this crate's custom section
/// and emits them only where its export macro runs, so a plugin exports exactly one world.
#[doc(hidden)]
pub mod bindings {
    /// The `reconciler` world; also the home of the shared `types` and `log` bindings.
    pub mod reconciler {
        wit_bindgen::generate!({
            world: "wasmray:plugin/reconciler",
            path: "../../wit",
            pub_export_macro: true,
            export_macro_name: "__export_reconciler_raw",
            default_bindings_module: "::wasmray_guest_sdk::bindings::reconciler",
            additional_derives: [PartialEq],
        });
    }

    /// The `batch-scheduler` world.
    pub mod batch_scheduler {
        wit_bindgen::generate!({
            world: "wasmray:plugin/batch-scheduler",
            path: "../../wit",
            with: {
                "wasmray:plugin/types@0.2.0": crate::bindings::reconciler::wasmray::plugin::types,
                "wasmray:plugin/log@0.2.0": crate::bindings::reconciler::wasmray::plugin::log,
            },
            pub_export_macro: true,
            export_macro_name: "__export_batch_scheduler_raw",
            default_bindings_module: "::wasmray_guest_sdk::bindings::batch_scheduler",
        });
    }

    /// The `upgrade-strategy` world.
    pub mod upgrade_strategy {
        wit_bindgen::generate!({
            world: "wasmray:plugin/upgrade-strategy",
            path: "../../wit",
            with: {
                "wasmray:plugin/types@0.2.0": crate::bindings::reconciler::wasmray::plugin::types,
                "wasmray:plugin/log@0.2.0": crate::bindings::reconciler::wasmray::plugin::log,
            },
            pub_export_macro: true,
            export_macro_name: "__export_upgrade_strategy_raw",
            default_bindings_module: "::wasmray_guest_sdk::bindings::upgrade_strategy",
        });
    }
}

pub use bindings::reconciler::wasmray::plugin::types::{
    Child, ClusterState, CompanionKind, Condition, ConditionStatus, Decision, Event, EventType, Fact,
    FieldMask, Json, MultiHostReplica, ObjectRef, Op, OwnerContext, Plan, PluginError, PodContext, PodDecoration,
    ServeApplication, ServeStatus, Snapshot, Step, StatusUpdate, TrafficShift, UnixMillis,
    UpgradeInput, WorkerPod,
};

/// A reconciler: decides what to do about one RayCluster, RayJob or RayService.
pub trait Reconciler {
    /// Turns a snapshot of the primary object and its children into a plan.
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError>;

    /// The fields read of each kind of child, asked once when the plugin is loaded; the host
    /// sends children of a listed kind with those fields only (path syntax: [`FieldMask`] and
    /// `field-mask` in `wit/plugin.wit`). The default, nothing, sends every child whole. A
    /// reconciler that declares a mask should test that its plans do not change under it.
    fn child_fields() -> Vec<FieldMask> {
        Vec::new()
    }
}

/// A batch-scheduler integration. Every method has a do-nothing default, so a plugin
/// implements only what its scheduler needs.
pub trait BatchScheduler {
    /// Kinds the plugin creates next to Ray workloads; the host watches them.
    fn companion_kinds() -> Vec<CompanionKind> {
        Vec::new()
    }

    /// Companion objects (JSON) to apply when a RayCluster or RayJob is submitted.
    fn on_submission(ctx: OwnerContext) -> Result<Vec<Json>, PluginError> {
        let _ = ctx;
        Ok(Vec::new())
    }

    /// Labels, annotations and scheduler name for one Pod.
    fn decorate_pod(ctx: PodContext) -> Result<PodDecoration, PluginError> {
        let _ = ctx;
        Ok(PodDecoration::none())
    }

    /// Objects to delete once the owner has completed.
    fn on_completion(ctx: OwnerContext) -> Result<Vec<ObjectRef>, PluginError> {
        let _ = ctx;
        Ok(Vec::new())
    }
}

/// A RayService upgrade strategy.
pub trait UpgradeStrategy {
    /// The next step, given the active and pending clusters and `now`.
    fn next_step(input: UpgradeInput) -> Result<Decision, PluginError>;
}

/// Exports a [`Reconciler`] as the component's `wasmray:plugin/reconcile` interface.
#[macro_export]
macro_rules! export_reconciler {
    ($ty:ty) => {
        const _: () = {
            // Natively (unit tests of a plugin's logic) there is no component to export into,
            // and the wasm export names are not valid native symbol names.
            #[allow(dead_code)]
            struct __WasmrayExport;
            impl $crate::bindings::reconciler::exports::wasmray::plugin::reconcile::Guest
                for __WasmrayExport
            {
                fn reconcile(snapshot: $crate::Snapshot) -> Result<$crate::Plan, $crate::PluginError> {
                    $crate::log::install_panic_hook();
                    <$ty as $crate::Reconciler>::reconcile(snapshot)
                }
            }
            impl $crate::bindings::reconciler::exports::wasmray::plugin::fields::Guest
                for __WasmrayExport
            {
                fn child_fields() -> Vec<$crate::FieldMask> {
                    $crate::log::install_panic_hook();
                    <$ty as $crate::Reconciler>::child_fields()
                }
            }
            // Natively, name the plugin's methods so its types count as used.
            #[cfg(not(target_arch = "wasm32"))]
            const _: (fn($crate::Snapshot) -> Result<$crate::Plan, $crate::PluginError>, fn() -> Vec<$crate::FieldMask>) =
                (<$ty as $crate::Reconciler>::reconcile, <$ty as $crate::Reconciler>::child_fields);
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::reconciler::__export_reconciler_raw!(
                __WasmrayExport with_types_in $crate::bindings::reconciler
            );
        };
    };
}

/// Exports a [`BatchScheduler`] as the component's `wasmray:plugin/scheduling` interface.
#[macro_export]
macro_rules! export_batch_scheduler {
    ($ty:ty) => {
        const _: () = {
            // Natively (unit tests of a plugin's logic) there is no component to export into,
            // and the wasm export names are not valid native symbol names.
            #[allow(dead_code)]
            struct __WasmrayExport;
            impl $crate::bindings::batch_scheduler::exports::wasmray::plugin::scheduling::Guest
                for __WasmrayExport
            {
                fn companion_kinds() -> Vec<$crate::CompanionKind> {
                    $crate::log::install_panic_hook();
                    <$ty as $crate::BatchScheduler>::companion_kinds()
                }
                fn on_submission(
                    ctx: $crate::OwnerContext,
                ) -> Result<Vec<$crate::Json>, $crate::PluginError> {
                    $crate::log::install_panic_hook();
                    <$ty as $crate::BatchScheduler>::on_submission(ctx)
                }
                fn decorate_pod(
                    ctx: $crate::PodContext,
                ) -> Result<$crate::PodDecoration, $crate::PluginError> {
                    $crate::log::install_panic_hook();
                    <$ty as $crate::BatchScheduler>::decorate_pod(ctx)
                }
                fn on_completion(
                    ctx: $crate::OwnerContext,
                ) -> Result<Vec<$crate::ObjectRef>, $crate::PluginError> {
                    $crate::log::install_panic_hook();
                    <$ty as $crate::BatchScheduler>::on_completion(ctx)
                }
            }
            // Natively, name the plugin's methods so its types count as used.
            #[cfg(not(target_arch = "wasm32"))]
            const _: [fn(); 4] = [
                || drop(<$ty as $crate::BatchScheduler>::companion_kinds),
                || drop(<$ty as $crate::BatchScheduler>::on_submission),
                || drop(<$ty as $crate::BatchScheduler>::decorate_pod),
                || drop(<$ty as $crate::BatchScheduler>::on_completion),
            ];
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::batch_scheduler::__export_batch_scheduler_raw!(
                __WasmrayExport with_types_in $crate::bindings::batch_scheduler
            );
        };
    };
}

/// Exports an [`UpgradeStrategy`] as the component's `wasmray:plugin/upgrade` interface.
#[macro_export]
macro_rules! export_upgrade_strategy {
    ($ty:ty) => {
        const _: () = {
            // Natively (unit tests of a plugin's logic) there is no component to export into,
            // and the wasm export names are not valid native symbol names.
            #[allow(dead_code)]
            struct __WasmrayExport;
            impl $crate::bindings::upgrade_strategy::exports::wasmray::plugin::upgrade::Guest
                for __WasmrayExport
            {
                fn next_step(
                    input: $crate::UpgradeInput,
                ) -> Result<$crate::Decision, $crate::PluginError> {
                    $crate::log::install_panic_hook();
                    <$ty as $crate::UpgradeStrategy>::next_step(input)
                }
            }
            // Natively, name the plugin's methods so its types count as used.
            #[cfg(not(target_arch = "wasm32"))]
            const _: fn($crate::UpgradeInput) -> Result<$crate::Decision, $crate::PluginError> =
                <$ty as $crate::UpgradeStrategy>::next_step;
            #[cfg(target_arch = "wasm32")]
            $crate::bindings::upgrade_strategy::__export_upgrade_strategy_raw!(
                __WasmrayExport with_types_in $crate::bindings::upgrade_strategy
            );
        };
    };
}
