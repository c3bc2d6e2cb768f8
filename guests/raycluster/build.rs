//! Links the component with 8 MiB of initial memory instead of the 1 MiB default.
//!
//! A reconcile of a hundred Pods grows the guest's heap by several MiB, and in wasmtime's
//! pooling allocator every `memory.grow` is an `mprotect` (undone when the instance is
//! recycled). Starting with the memory a large reconcile needs skips those system calls; the
//! pages stay untouched, and so free, until used.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 8 << 20);
    }
    println!("cargo:rerun-if-changed=build.rs");
}
