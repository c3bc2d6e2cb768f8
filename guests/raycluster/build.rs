//! Links the component with 8 MiB of initial memory instead of the linker's default (its data plus a 1 MiB stack).
//!
//! A reconcile of a hundred Pods grows the guest's heap well past that, and in wasmtime's
//! pooling allocator every `memory.grow` is an `mprotect` (undone when the pool slot is next
//! instantiated). Starting with the memory a large reconcile needs skips those system calls; the
//! pages stay untouched, and so free, until used.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 8 << 20);
    }
    println!("cargo:rerun-if-changed=build.rs");
}
