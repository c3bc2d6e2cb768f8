//! `wasmray plugin new` scaffolds a crate that builds for wasm32-wasip2 and passes `plugin check`.

use std::{path::Path, process::Command};

fn wasmray(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmray")).args(args).output().expect("running wasmray");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wasmray {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn scaffolded_plugins_of_both_kinds_build_and_pass_check() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // Share compiled dependencies with the guests `host/build.rs` builds.
    let wasm_target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("wasm");
    for (name, kind) in [("gang-demo", "batch-scheduler"), ("blue-green-demo", "upgrade-strategy")] {
        wasmray(&["plugin", "new", name, "--kind", kind, "--dir", dir.path().to_str().unwrap()]);
        let root = dir.path().join(name);
        // Built the way the built-in guests are: the same inlining for the component target.
        let cargo_config = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap();
        assert!(cargo_config.contains("[target.wasm32-wasip2]") && cargo_config.contains("inline-threshold"), "{cargo_config}");
        // Pin the dependency versions the workspace was tested with.
        std::fs::copy(workspace.join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
        let build = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(&wasm_target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
        assert!(build.status.success(), "building {name} failed:\n{}", String::from_utf8_lossy(&build.stderr));
        let component = wasm_target.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
        let report = wasmray(&["plugin", "check", component.to_str().unwrap()]);
        assert!(report.contains(&format!("world:       wasmray:plugin/{kind}@{}", wasmray::runtime::WIT_VERSION)), "{report}");
    }
}

#[test]
fn check_refuses_a_component_that_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.wasm");
    std::fs::write(&file, wat::parse_str("(component)").unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmray")).args(["plugin", "check"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exports none"), "{}", String::from_utf8_lossy(&out.stderr));
}
