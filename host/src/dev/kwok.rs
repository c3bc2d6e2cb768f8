//! The annotations our KWOK stages read, so tests can script a Pod's life.

/// Set to `Succeeded` or `Failed`: the Running Pod terminates with that phase (exit code 0 or 1).
pub const EXIT_ANNOTATION: &str = "wasmray.dev/kwok-exit";

/// How long after it runs the Pod exits, as a Go duration (`500ms`, `3s`); default `1s`.
pub const EXIT_AFTER_ANNOTATION: &str = "wasmray.dev/kwok-exit-after";
