//! The components built with the host: the workspace's reconcilers and plugins, embedded in the
//! binary by `host/build.rs`, so a copy of it runs with no target directory or source tree.

use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The `.wasm` of a built-in component by package name, e.g. `wasmray-raycluster`.
pub fn bytes(package: &str) -> Option<&'static [u8]> {
    COMPONENTS.iter().find(|(name, _)| *name == package).map(|(_, bytes)| *bytes)
}

/// Drops the resident pages of every built-in's bytes, read while loading them
/// ([`crate::memory::release_read_pages`]); they are read again, from the binary, if needed.
pub(crate) fn release_read_pages() {
    for (_, bytes) in COMPONENTS {
        crate::memory::release_read_pages(bytes);
    }
}

/// The package names of the built-in components, sorted.
pub fn packages() -> impl Iterator<Item = &'static str> {
    COMPONENTS.iter().map(|(name, _)| *name)
}

/// Where this build put a test program's `.wasm` (`guests/test-programs/*`, e.g.
/// `wasmray-test-echo-v1`): a path in the cargo target directory, for this checkout's tests and
/// benches only. Test programs are not embedded, so the binary does not ship them.
pub fn test_program(package: &str) -> Option<&'static Path> {
    TEST_PROGRAMS.iter().find(|(name, _)| *name == package).map(|(_, path)| Path::new(*path))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The preamble of a WebAssembly component (magic, then version 0xd, layer 1), not a core module.
    const COMPONENT_PREAMBLE: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn the_reconciler_and_every_batch_scheduler_plugin_are_embedded_and_no_test_program_is() {
        let packages: Vec<_> = super::packages().collect();
        for package in [
            "wasmray-raycluster",
            "wasmray-plugin-volcano",
            "wasmray-plugin-yunikorn",
            "wasmray-plugin-kai-scheduler",
            "wasmray-plugin-scheduler-plugins",
        ] {
            let wasm = super::bytes(package).unwrap_or_else(|| panic!("{package} not in {packages:?}"));
            assert!(wasm.starts_with(COMPONENT_PREAMBLE), "{package} is a component");
        }
        assert!(!super::TEST_PROGRAMS.is_empty());
        assert!(super::TEST_PROGRAMS.iter().all(|(p, _)| super::bytes(p).is_none()), "{packages:?}");
        assert!(super::test_program("wasmray-test-echo-v1").is_some_and(Path::exists));
    }
}
