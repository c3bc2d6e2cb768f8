//! Links the component with 4 MiB of initial memory, so a reconcile rarely needs a `memory.grow`.
//!
//! A RayJob snapshot holds one RayCluster, one Job and a few Pods: far less than a RayCluster's,
//! but its JSON (the embedded cluster spec, twice) still outgrows the linker's default at once.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 4 << 20);
    }
    println!("cargo:rerun-if-changed=build.rs");
}
