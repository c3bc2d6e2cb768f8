//! Builds the workspace's guest components for `wasm32-wasip2` and embeds them in the host.
//!
//! Every workspace member under `guests/` or `plugins/` with a `cdylib` target is a component.
//! They are built by a nested `cargo build --release --target wasm32-wasip2` into
//! `<target>/wasm`, a target directory of its own so the nested cargo never waits on the lock
//! the outer one holds. Guests are built with `opt-level = 3` and stripped: `"s"` with LTO makes
//! one huge serde function that compiles several times slower under epoch instrumentation.
//!
//! `$OUT_DIR/guests.rs`, which `plugin::builtin` includes, embeds the built-in components (the
//! reconcilers and the batch-scheduler plugins) with `include_bytes!`, so a copied binary needs
//! no target directory. The test programs (`guests/test-programs/*`) are not shipped: only their
//! paths in this target directory are written, for this checkout's own tests and benches.

use std::{
    env,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("host/ is inside the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for watched in ["wit", "guests", "plugins", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=WASMRAY_GUEST_TARGET_DIR");

    let guests = component_packages(&cargo, &root);
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out (or one level deeper with --target).
    let wasm_target_dir = env::var_os("WASMRAY_GUEST_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        out_dir.ancestors().nth(4).expect("OUT_DIR has a target directory above it").join("wasm")
    });
    build(&cargo, &root, &wasm_target_dir, &guests);

    let release = wasm_target_dir.join("wasm32-wasip2").join("release");
    let wasm = |package: &str| release.join(format!("{}.wasm", package.replace('-', "_"))).display().to_string();
    let mut src = String::from("/// Built-in components: (package, its `.wasm`), built and embedded by `host/build.rs`.\n");
    src.push_str("pub const COMPONENTS: &[(&str, &[u8])] = &[\n");
    for guest in guests.iter().filter(|g| !g.test_program) {
        writeln!(src, "    ({:?}, include_bytes!({:?})),", guest.package, wasm(&guest.package)).expect("writing to a String");
    }
    src.push_str("];\n\n/// Test programs: (package, path of its `.wasm` in this build's target directory).\n");
    src.push_str("pub const TEST_PROGRAMS: &[(&str, &str)] = &[\n");
    for guest in guests.iter().filter(|g| g.test_program) {
        writeln!(src, "    ({:?}, {:?}),", guest.package, wasm(&guest.package)).expect("writing to a String");
    }
    src.push_str("];\n");
    std::fs::write(out_dir.join("guests.rs"), src).expect("writing guests.rs to OUT_DIR");
}

/// A component package, and whether it is one of the test programs.
struct Guest {
    package: String,
    test_program: bool,
}

/// Workspace members under `guests/` or `plugins/` that build a `cdylib`.
fn component_packages(cargo: &str, root: &Path) -> Vec<Guest> {
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let mut names = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let relative = manifest.strip_prefix(root).unwrap_or(manifest);
        let in_guest_dir = relative.starts_with("guests") || relative.starts_with("plugins");
        let is_component = package["targets"].as_array().into_iter().flatten().any(|t| {
            t["crate_types"].as_array().into_iter().flatten().any(|c| c.as_str() == Some("cdylib"))
        });
        if in_guest_dir && is_component {
            let package = package["name"].as_str().unwrap_or_default().to_owned();
            names.push(Guest { package, test_program: relative.starts_with("guests/test-programs") });
        }
    }
    names.sort_by(|a, b| a.package.cmp(&b.package));
    names
}

fn build(cargo: &str, root: &Path, target_dir: &Path, packages: &[Guest]) {
    if packages.is_empty() {
        return;
    }
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(target_dir)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    for guest in packages {
        cmd.args(["-p", &guest.package]);
    }
    // The outer build's flags and target are for the host, not for the guests.
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_PROFILE_RELEASE_LTO", "false");
    let output = cmd.output().expect("running the nested cargo build of the guests");
    if !output.status.success() {
        panic!(
            "building the guest components for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
