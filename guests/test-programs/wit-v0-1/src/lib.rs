//! Test guest built against the frozen WIT 0.1.0: it logs through `log@0.1.0` and answers with the children it was sent, whole.

// wit-bindgen's export glue is `unsafe` FFI; plugins built with the SDK never see the lint
// because its macros expand it from another crate, while this crate expands it itself.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    world: "wasmray:plugin/reconciler",
    path: "../../../wit/0.1.0",
});

use exports::wasmray::plugin::reconcile::Guest;
use wasmray::plugin::log::{Level, log};
use wasmray::plugin::types::{Op, Plan, PluginError, Snapshot, StatusUpdate};

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct OldReconciler;

impl Guest for OldReconciler {
    /// One status op whose fields are `{"children": [...]}`, the snapshot's children verbatim,
    /// so a test sees exactly what a 0.1.0 plugin is sent.
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PluginError> {
        log(Level::Info, &format!("0.1.0 reconciler got {} children", snapshot.children.len()));
        let fields = format!("{{\"children\":[{}]}}", snapshot.children.join(","));
        let status = StatusUpdate { conditions: Vec::new(), fields: Some(fields) };
        Ok(Plan { ops: vec![Op::Status(status)], requeue_after_ms: None })
    }
}

// Natively (a workspace build) there is no component to export into.
#[cfg(target_arch = "wasm32")]
export!(OldReconciler);
