//! What a guest sees: a sealed WASI context, our `log`, and a memory limiter that records hits.
//!
//! Rust's standard library makes every `wasm32-wasip2` component import about a dozen WASI
//! interfaces even when the code does no I/O, so the linker provides them, but sealed: no
//! preopened directories, no environment or arguments, no sockets or name lookup, stdin closed,
//! stdout and stderr captured into a small buffer that is forwarded to our log, the wall clock
//! frozen at the input's `now`, the monotonic clock frozen at zero, and every random source
//! seeded from the input's seed. A guest therefore stays a pure function of its input even if it
//! reaches for `SystemTime::now()` or a `HashMap`'s random state. `plugin check` rejects any
//! import outside that set.

use std::{sync::Arc, time::Duration};

use wasmtime::ResourceLimiter;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, ResourceTable, WasiCtx, WasiCtxView, WasiView,
    p2::pipe::MemoryOutputPipe,
};

use super::{
    PluginId,
    bindings::{log, types},
};

/// Bytes of stdout and of stderr kept per call; writes past this fail in the guest.
const CAPTURE_BYTES: usize = 16 * 1024;
/// Longest log line taken from a guest; the rest is cut so a guest cannot flood the log.
const MAX_LOG_LINE: usize = 4 * 1024;

/// The per-call store data.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) plugin: Arc<PluginId>,
    /// The last panic message the guest logged (the SDK's panic hook logs before trapping).
    pub(crate) panic: Option<String>,
}

impl GuestState {
    /// Fresh state for one call; `now_ms` and `seed` come from the call's input.
    pub(crate) fn new(plugin: Arc<PluginId>, memory_limit: usize, now_ms: i64, seed: u64) -> Self {
        let stdout = MemoryOutputPipe::new(CAPTURE_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURE_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenWallClock(Duration::from_millis(now_ms.max(0) as u64)))
            .monotonic_clock(FrozenMonotonicClock)
            .secure_random(wasmtime_wasi::Deterministic::new(seed_bytes(seed)))
            .insecure_random(wasmtime_wasi::Deterministic::new(seed_bytes(seed.rotate_left(32))))
            .insecure_random_seed(u128::from(seed))
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        GuestState {
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
            limiter: MemoryLimiter { limit: memory_limit, total: 0, hit: false },
            plugin,
            panic: None,
        }
    }

    /// Forwards whatever the guest wrote to stdout or stderr to our log.
    pub(crate) fn flush_stdio(&self) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            if !bytes.is_empty() {
                let text = String::from_utf8_lossy(&bytes);
                tracing::debug!(plugin = %self.plugin, stream, "{}", text.trim_end());
            }
        }
    }
}

/// 64 bytes of a splitmix64 stream from `seed`, cycled by [`wasmtime_wasi::Deterministic`].
fn seed_bytes(seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..8)
        .flat_map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)).to_le_bytes()
        })
        .collect()
}

struct FrozenWallClock(Duration);

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

struct FrozenMonotonicClock;

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for GuestState {}

impl log::Host for GuestState {
    fn log(&mut self, level: log::Level, mut message: String) {
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …");
        }
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(%plugin, "{message}"),
            log::Level::Debug => tracing::debug!(%plugin, "{message}"),
            log::Level::Info => tracing::info!(%plugin, "{message}"),
            log::Level::Warn => tracing::warn!(%plugin, "{message}"),
            log::Level::Error => tracing::error!(%plugin, "{message}"),
        }
        if level == log::Level::Error && message.starts_with("panic") {
            self.panic = Some(message);
        }
    }
}

/// A plugin built against WIT 0.1.0 logs through the same lines as today's.
impl super::bindings::v0_1::log::Host for GuestState {
    fn log(&mut self, level: super::bindings::v0_1::log::Level, message: String) {
        use super::bindings::v0_1::log::Level as Old;
        let level = match level {
            Old::Trace => log::Level::Trace,
            Old::Debug => log::Level::Debug,
            Old::Info => log::Level::Info,
            Old::Warn => log::Level::Warn,
            Old::Error => log::Level::Error,
        };
        log::Host::log(self, level, message);
    }
}

/// Caps the total linear memory of one instance and remembers whether the cap was hit, so a
/// trap that follows (Rust aborts when an allocation fails) is reported as a memory limit.
pub(crate) struct MemoryLimiter {
    limit: usize,
    total: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A component has several memories; the limit is on their sum.
        let total = self.total - current.min(self.total) + desired;
        if total > self.limit {
            self.hit = true;
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far past any real guest.
        Ok(desired <= 1 << 20)
    }
}
