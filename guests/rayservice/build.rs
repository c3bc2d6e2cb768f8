//! Links the component with 4 MiB of initial memory, so a reconcile rarely needs a `memory.grow`.
//!
//! A RayService snapshot holds up to two RayClusters (each embedding the cluster spec), their
//! head Pods, a few Services and EndpointSlices and the Serve facts: more than the linker's
//! default at once.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 4 << 20);
    }
    println!("cargo:rerun-if-changed=build.rs");
}
