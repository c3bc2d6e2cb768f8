//! Logging to the host, and a panic hook that sends a panic's message there before the trap.

use crate::bindings::reconciler::wasmray::plugin::log as raw;

pub use raw::Level;

/// Writes one line to the operator's log; the host tags it with the plugin's name and version.
///
/// Outside WebAssembly (native unit tests of a plugin's logic) there is no host and this does
/// nothing.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    raw::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Routes panic messages to [`log`], so the host can show why a plugin trapped. The export
/// macros call this on every entry; it installs the hook once per instance.
#[doc(hidden)]
pub fn install_panic_hook() {
    // Natively the test harness owns the panic hook; leave it alone.
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| log(Level::Error, &format!("panic: {info}"))));
        });
    }
}
