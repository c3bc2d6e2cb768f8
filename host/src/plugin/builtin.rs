//! The components built with the host: workspace guests and plugins compiled by `host/build.rs`.

use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The `.wasm` of a built-in component by package name, e.g. `wasmray-test-echo-v1`.
pub fn path(package: &str) -> Option<&'static Path> {
    COMPONENTS.iter().find(|(name, _)| *name == package).map(|(_, path)| Path::new(*path))
}
