//! The sandboxed WebAssembly runtime: one engine, compiled components cached by digest, and
//! bounded, isolated calls into plugins.
//!
//! # Guarantees
//!
//! - One [`wasmtime::Engine`] per [`Runtime`], with epoch interruption driven by a ticker thread.
//! - A component is compiled once per sha256 (and engine configuration) and cached on disk as a
//!   precompiled artifact; loading it again takes about a millisecond.
//! - An `InstancePre` is built once per loaded plugin version, after the component's world,
//!   exports, imports and WIT version were checked ([`inspect`]).
//! - Every call gets a fresh `Store` (no state leaks between calls), a concurrency permit, an
//!   epoch deadline and a memory limit. A trap, timeout, memory hit or malformed answer becomes a
//!   [`RuntimeError`] naming the plugin and its version; it never panics the host, and since the
//!   guest runs on a blocking thread it never stalls other calls beyond its permit.
//!
//! # Caveats
//!
//! - The deadline is measured in epoch ticks, so a timeout fires between `deadline` and
//!   `deadline + tick` after the call started.
//! - Calls queue for permits without a bound; callers that need one wrap the call in a timeout.

mod bindings;
mod cache;
mod error;
mod inspect;
mod sandbox;
mod validate;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    component::{HasSelf, Linker},
};

pub use bindings::types::{
    Child, ClusterState, CompanionKind, Condition, ConditionStatus, Decision, Event, EventType, Fact,
    ObjectRef, Op, OwnerContext, Plan, PluginError, PodContext, PodDecoration, ServeApplication,
    ServeStatus, Snapshot, StatusUpdate, Step, TrafficShift, UpgradeInput, WorkerPod,
};
pub use cache::Origin;
pub use error::{PluginId, Result, RuntimeError};
pub use inspect::{ComponentInfo, PluginKind, WIT_PACKAGE, WIT_VERSION, WitLine, inspect};

use bindings::{
    batch_scheduler::{BatchScheduler, BatchSchedulerPre},
    reconciler::{Reconciler, ReconcilerPre},
    upgrade_strategy::{UpgradeStrategy, UpgradeStrategyPre},
    v0_1,
};
use sandbox::GuestState;

use crate::cache::mask::{ChildMask, FieldMask};

/// Bytes of each pooled memory kept resident when only dirtied pages need resetting. A page
/// kept resident costs a `memset` when dirtied, against a page fault when it is not.
const DIRTY_RESET_RESIDENT: usize = 4 << 20;

/// How instances get their memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// Slots reserved up front; instantiation is about twice as fast. Sized from
    /// [`RuntimeConfig::max_concurrent_calls`].
    Pooling,
    /// `mmap` per instance.
    OnDemand,
}

/// Limits and knobs of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Wall-clock budget of one call, instantiation included.
    pub deadline: Duration,
    /// Total linear memory one instance may use.
    pub memory_limit: usize,
    /// Calls running at once; more wait for a permit.
    pub max_concurrent_calls: usize,
    /// Period of the epoch ticker; the deadline's resolution.
    pub epoch_tick: Duration,
    /// Directory for precompiled components; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    pub allocator: Allocator,
    /// Pooling only: bytes of each linear memory kept mapped between instances, so a fresh
    /// instance does not page-fault its heap in again on every call. `None` chooses: 4 MiB
    /// where Linux's `PAGEMAP_SCAN` lets wasmtime reset only the pages a call dirtied, none
    /// elsewhere (there the whole kept range would be `memset` on every call, tiny ones too).
    pub keep_resident: Option<usize>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            deadline: Duration::from_millis(100),
            memory_limit: 64 << 20,
            max_concurrent_calls: 16,
            epoch_tick: Duration::from_millis(10),
            cache_dir: None,
            allocator: Allocator::Pooling,
            keep_resident: None,
        }
    }
}

/// The process's WebAssembly runtime; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<GuestState>,
    cache: cache::CompileCache,
    permits: Semaphore,
    config: RuntimeConfig,
    deadline_ticks: u64,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Builds the engine, the linker and the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let engine_err = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
        let mut wasm_config = Config::new();
        wasm_config.epoch_interruption(true);
        // One function compiled at a time: each compiling thread holds Cranelift's working
        // memory for its function and its share of the results, and a cold start (an empty
        // compile cache: every fresh Pod of the chart) set the operator's peak memory that way.
        wasm_config.parallel_compilation(false);
        if config.allocator == Allocator::Pooling {
            let slots = u32::try_from(config.max_concurrent_calls.max(1)).unwrap_or(u32::MAX);
            let mut pool = PoolingAllocationConfig::new();
            // A Rust component instantiates a handful of core modules; leave room for that.
            pool.total_component_instances(slots)
                .total_core_instances(slots.saturating_mul(16))
                .total_memories(slots.saturating_mul(4))
                .total_tables(slots.saturating_mul(16))
                .max_memory_size(config.memory_limit);
            let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
            let keep_resident = config.keep_resident.unwrap_or(if pagemap { DIRTY_RESET_RESIDENT } else { 0 });
            if pagemap {
                pool.pagemap_scan(Enabled::Yes);
            }
            pool.linear_memory_keep_resident(keep_resident);
            wasm_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm_config).map_err(engine_err)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_err)?;
        // Every world imports the same `log` and `types`, so one world's imports cover all.
        bindings::reconciler::Reconciler::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        // wasmtime matches import versions within one 0.x minor only, so 0.1.x plugins need the
        // imports again under 0.1.0: `log` through its 0.1.0 binding, `types` (which has no
        // functions) as an empty instance, as the current binding registers it.
        v0_1::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
        linker.instance("wasmray:plugin/types@0.1.0").map_err(engine_err)?;

        let cache = cache::CompileCache::new(&engine, config.cache_dir.clone())?;
        let tick = config.epoch_tick.max(Duration::from_millis(1));
        // Rounded up, plus one: the current epoch may be about to end.
        let deadline_ticks = config.deadline.as_nanos().div_ceil(tick.as_nanos()) as u64 + 1;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), tick, ticker_stop.clone());
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                permits: Semaphore::new(config.max_concurrent_calls.max(1)),
                config,
                deadline_ticks,
                ticker_stop,
            }),
        })
    }

    /// The engine, for tools that inspect components.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The configuration the runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Compiles (or loads from the cache) and checks a component, and prepares its instances.
    /// Blocking: compiling a large component takes up to a second, so async callers run this
    /// on a blocking thread, off the reconcile path.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<LoadedPlugin> {
        let started = Instant::now();
        let id = PluginId::for_bytes(name, wasm);
        let (component, origin) = self.inner.cache.load(&self.inner.engine, &id, wasm)?;
        let info = inspect(&self.inner.engine, &component)
            .map_err(|reason| RuntimeError::Incompatible { plugin: id.clone(), reason })?;
        let incompatible = |e: wasmtime::Error| RuntimeError::Incompatible {
            plugin: id.clone(),
            reason: format!("{e:#}"),
        };
        let pre = self.inner.linker.instantiate_pre(&component).map_err(incompatible)?;
        // Exports are looked up under the component's own version, through its line's bindings.
        let pre = match (info.kind, info.line) {
            (PluginKind::Reconciler, WitLine::V0_2) => Pre::Reconciler(ReconcilerPre::new(pre).map_err(incompatible)?),
            (PluginKind::Reconciler, WitLine::V0_1) => {
                Pre::ReconcilerV0_1(v0_1::reconciler::ReconcilerPre::new(pre).map_err(incompatible)?)
            }
            (PluginKind::BatchScheduler, WitLine::V0_2) => {
                Pre::BatchScheduler(BatchSchedulerPre::new(pre).map_err(incompatible)?)
            }
            (PluginKind::BatchScheduler, WitLine::V0_1) => {
                Pre::BatchSchedulerV0_1(v0_1::batch_scheduler::BatchSchedulerPre::new(pre).map_err(incompatible)?)
            }
            (PluginKind::UpgradeStrategy, WitLine::V0_2) => {
                Pre::UpgradeStrategy(UpgradeStrategyPre::new(pre).map_err(incompatible)?)
            }
            (PluginKind::UpgradeStrategy, WitLine::V0_1) => {
                Pre::UpgradeStrategyV0_1(v0_1::upgrade_strategy::UpgradeStrategyPre::new(pre).map_err(incompatible)?)
            }
        };
        let mut plugin = LoadedPlugin {
            inner: Arc::new(PluginInner {
                id: Arc::new(id),
                info,
                pre,
                origin,
                load_time: Duration::ZERO,
                companions: Vec::new(),
                child_mask: ChildMask::default(),
                rt: self.inner.clone(),
            }),
        };
        // A batch scheduler's companion kinds and a reconciler's child fields are part of what
        // is checked before a version serves, and asked once: every reconcile needs them.
        let companions = match &plugin.inner.pre {
            Pre::BatchScheduler(_) | Pre::BatchSchedulerV0_1(_) => plugin.ask_companion_kinds()?,
            _ => Vec::new(),
        };
        let child_mask = match &plugin.inner.pre {
            Pre::Reconciler(pre) => plugin.ask_child_fields(pre)?,
            _ => ChildMask::default(),
        };
        let load_time = started.elapsed();
        let inner = Arc::get_mut(&mut plugin.inner).expect("not shared yet");
        inner.companions = companions;
        inner.child_mask = child_mask;
        inner.load_time = load_time;
        tracing::debug!(plugin = %inner.id, kind = %inner.info.kind, ?origin, ?load_time, "Loaded plugin");
        Ok(plugin)
    }
}

/// Advances the engine's epoch every `tick` until `stop` is set. A plain thread that sleeps
/// between increments cannot fire a burst of ticks after a stall (the failure mode of interval
/// timers that catch up), so a busy host never times out calls early.
fn spawn_ticker(engine: Engine, tick: Duration, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })
        .expect("spawning a thread at start-up");
}

/// A prepared component of each kind, through the bindings of its WIT line.
enum Pre {
    Reconciler(ReconcilerPre<GuestState>),
    ReconcilerV0_1(v0_1::reconciler::ReconcilerPre<GuestState>),
    BatchScheduler(BatchSchedulerPre<GuestState>),
    BatchSchedulerV0_1(v0_1::batch_scheduler::BatchSchedulerPre<GuestState>),
    UpgradeStrategy(UpgradeStrategyPre<GuestState>),
    UpgradeStrategyV0_1(v0_1::upgrade_strategy::UpgradeStrategyPre<GuestState>),
}

/// A reconciler instance of either line; both take and return the same types.
enum ReconcilerInstance {
    V0_2(Reconciler),
    V0_1(v0_1::reconciler::Reconciler),
}

impl ReconcilerInstance {
    fn reconcile(&self, store: &mut Store<GuestState>, snapshot: &Snapshot) -> wasmtime::Result<std::result::Result<Plan, PluginError>> {
        match self {
            ReconcilerInstance::V0_2(i) => i.wasmray_plugin_reconcile().call_reconcile(store, snapshot),
            ReconcilerInstance::V0_1(i) => i.wasmray_plugin_reconcile().call_reconcile(store, snapshot),
        }
    }
}

/// A batch-scheduler instance of either line.
enum SchedulerInstance {
    V0_2(BatchScheduler),
    V0_1(v0_1::batch_scheduler::BatchScheduler),
}

impl SchedulerInstance {
    fn companion_kinds(&self, store: &mut Store<GuestState>) -> wasmtime::Result<Vec<CompanionKind>> {
        match self {
            SchedulerInstance::V0_2(i) => i.wasmray_plugin_scheduling().call_companion_kinds(store),
            SchedulerInstance::V0_1(i) => i.wasmray_plugin_scheduling().call_companion_kinds(store),
        }
    }

    fn on_submission(&self, store: &mut Store<GuestState>, ctx: &OwnerContext) -> wasmtime::Result<std::result::Result<Vec<String>, PluginError>> {
        match self {
            SchedulerInstance::V0_2(i) => i.wasmray_plugin_scheduling().call_on_submission(store, ctx),
            SchedulerInstance::V0_1(i) => i.wasmray_plugin_scheduling().call_on_submission(store, ctx),
        }
    }

    fn decorate_pod(&self, store: &mut Store<GuestState>, ctx: &PodContext) -> wasmtime::Result<std::result::Result<PodDecoration, PluginError>> {
        match self {
            SchedulerInstance::V0_2(i) => i.wasmray_plugin_scheduling().call_decorate_pod(store, ctx),
            SchedulerInstance::V0_1(i) => i.wasmray_plugin_scheduling().call_decorate_pod(store, ctx),
        }
    }

    fn on_completion(&self, store: &mut Store<GuestState>, ctx: &OwnerContext) -> wasmtime::Result<std::result::Result<Vec<ObjectRef>, PluginError>> {
        match self {
            SchedulerInstance::V0_2(i) => i.wasmray_plugin_scheduling().call_on_completion(store, ctx),
            SchedulerInstance::V0_1(i) => i.wasmray_plugin_scheduling().call_on_completion(store, ctx),
        }
    }
}

impl Pre {
    fn reconciler(&self, store: &mut Store<GuestState>) -> Option<wasmtime::Result<ReconcilerInstance>> {
        match self {
            Pre::Reconciler(pre) => Some(pre.instantiate(store).map(ReconcilerInstance::V0_2)),
            Pre::ReconcilerV0_1(pre) => Some(pre.instantiate(store).map(ReconcilerInstance::V0_1)),
            _ => None,
        }
    }

    fn scheduler(&self, store: &mut Store<GuestState>) -> Option<wasmtime::Result<SchedulerInstance>> {
        match self {
            Pre::BatchScheduler(pre) => Some(pre.instantiate(store).map(SchedulerInstance::V0_2)),
            Pre::BatchSchedulerV0_1(pre) => Some(pre.instantiate(store).map(SchedulerInstance::V0_1)),
            _ => None,
        }
    }

    fn next_step(&self, store: &mut Store<GuestState>, input: &UpgradeInput) -> Option<wasmtime::Result<std::result::Result<Decision, PluginError>>> {
        match self {
            Pre::UpgradeStrategy(pre) => Some(
                pre.instantiate(&mut *store).and_then(|i: UpgradeStrategy| i.wasmray_plugin_upgrade().call_next_step(&mut *store, input)),
            ),
            Pre::UpgradeStrategyV0_1(pre) => Some(
                pre.instantiate(&mut *store).and_then(|i| i.wasmray_plugin_upgrade().call_next_step(&mut *store, input)),
            ),
            _ => None,
        }
    }

    fn kind(&self) -> PluginKind {
        match self {
            Pre::Reconciler(_) | Pre::ReconcilerV0_1(_) => PluginKind::Reconciler,
            Pre::BatchScheduler(_) | Pre::BatchSchedulerV0_1(_) => PluginKind::BatchScheduler,
            Pre::UpgradeStrategy(_) | Pre::UpgradeStrategyV0_1(_) => PluginKind::UpgradeStrategy,
        }
    }
}

/// One checked version of a plugin, ready to call; cheap to clone. Calls in flight keep the
/// version they started on, whatever the registry does meanwhile.
#[derive(Clone)]
pub struct LoadedPlugin {
    inner: Arc<PluginInner>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("id", &self.inner.id.to_string()).field("kind", &self.inner.info.kind).finish()
    }
}

struct PluginInner {
    id: Arc<PluginId>,
    info: ComponentInfo,
    pre: Pre,
    origin: Origin,
    load_time: Duration,
    /// A batch scheduler's answer to `companion-kinds`, asked at load.
    companions: Vec<CompanionKind>,
    /// A 0.2 reconciler's answer to `child-fields`, asked at load; empty (children whole) for
    /// every other plugin.
    child_mask: ChildMask,
    rt: Arc<Inner>,
}

/// The clock and seed a call's sandbox is sealed with.
#[derive(Clone, Copy)]
struct Seal {
    now_ms: i64,
    seed: u64,
}

impl LoadedPlugin {
    /// Name and version.
    pub fn id(&self) -> &PluginId {
        &self.inner.id
    }

    /// Kind, WIT version, exports and imports.
    pub fn info(&self) -> &ComponentInfo {
        &self.inner.info
    }

    /// Whether the component was compiled or loaded precompiled, and how long loading took.
    pub fn origin(&self) -> (Origin, Duration) {
        (self.inner.origin, self.inner.load_time)
    }

    /// `reconcile` of a reconciler.
    pub async fn reconcile(&self, snapshot: Snapshot) -> Result<Plan> {
        let this = self.clone();
        self.run(move || this.reconcile_blocking(&snapshot)).await
    }

    /// `reconcile` on the calling thread, without a permit; for benchmarks and tools.
    pub fn reconcile_blocking(&self, snapshot: &Snapshot) -> Result<Plan> {
        self.reconciler()?;
        let seal = Seal { now_ms: snapshot.now, seed: snapshot.seed };
        let plan = self.call(seal, |store| {
            self.instantiate_reconciler(store)?.reconcile(&mut *store, snapshot)
        })?;
        let plan = self.returned(plan)?;
        validate::plan(&plan).map_err(|reason| self.malformed(reason))?;
        Ok(plan)
    }

    /// Benchmark support: `iterations` calls of `reconcile` on one instance, returning the time
    /// spent in the calls alone. The operator never reuses an instance; this separates the cost
    /// of a call from the cost of instantiation.
    #[doc(hidden)]
    pub fn bench_reused_reconcile(&self, snapshot: &Snapshot, iterations: u32) -> Result<Duration> {
        self.reconciler()?;
        self.call(Seal { now_ms: snapshot.now, seed: snapshot.seed }, |store| {
            let instance = self.instantiate_reconciler(store)?;
            // One deadline for the whole loop.
            store.set_epoch_deadline(u64::from(iterations).saturating_mul(self.inner.rt.deadline_ticks));
            let started = Instant::now();
            for _ in 0..iterations {
                let plan = instance.reconcile(&mut *store, snapshot)?;
                std::hint::black_box(plan).map_err(|e| wasmtime::format_err!("{e:?}"))?;
            }
            Ok(started.elapsed())
        })
    }

    /// Benchmark support: `iterations` fresh stores and instances, no call.
    #[doc(hidden)]
    pub fn bench_instantiate(&self, iterations: u32) -> Result<Duration> {
        let started = Instant::now();
        for _ in 0..iterations {
            self.call(Seal { now_ms: 0, seed: 0 }, |store| {
                match &self.inner.pre {
                    Pre::Reconciler(pre) => _ = pre.instantiate(&mut *store)?,
                    Pre::ReconcilerV0_1(pre) => _ = pre.instantiate(&mut *store)?,
                    Pre::BatchScheduler(pre) => _ = pre.instantiate(&mut *store)?,
                    Pre::BatchSchedulerV0_1(pre) => _ = pre.instantiate(&mut *store)?,
                    Pre::UpgradeStrategy(pre) => _ = pre.instantiate(&mut *store)?,
                    Pre::UpgradeStrategyV0_1(pre) => _ = pre.instantiate(&mut *store)?,
                }
                Ok(())
            })?;
        }
        Ok(started.elapsed())
    }

    /// `companion-kinds` of a batch scheduler, as it answered when loaded.
    pub fn companion_kinds(&self) -> Result<&[CompanionKind]> {
        self.scheduler()?;
        Ok(&self.inner.companions)
    }

    /// The fields of each kind of child this reconciler reads, as it declared them when loaded;
    /// empty (children whole) for a 0.1 reconciler, one that declares nothing, and other kinds.
    pub fn child_mask(&self) -> &ChildMask {
        &self.inner.child_mask
    }

    /// Calls `child-fields` of a 0.2 reconciler and checks the answer.
    fn ask_child_fields(&self, pre: &ReconcilerPre<GuestState>) -> Result<ChildMask> {
        let declared = self.call(Seal { now_ms: 0, seed: 0 }, |store| {
            pre.instantiate(&mut *store)?.wasmray_plugin_fields().call_child_fields(&mut *store)
        })?;
        let masks = declared
            .into_iter()
            .map(|m| FieldMask { api_version: m.api_version, kind: m.kind, paths: m.paths })
            .collect();
        ChildMask::new(masks).map_err(|e| self.malformed(format!("child-fields: {e}")))
    }

    /// Calls `companion-kinds` and checks the answer.
    fn ask_companion_kinds(&self) -> Result<Vec<CompanionKind>> {
        self.scheduler()?;
        let kinds = self.call(Seal { now_ms: 0, seed: 0 }, |store| {
            self.instantiate_scheduler(store)?.companion_kinds(&mut *store)
        })?;
        if kinds.iter().any(|k| k.api_version.is_empty() || k.kind.is_empty()) {
            return Err(self.malformed("companion kind with an empty apiVersion or kind".into()));
        }
        Ok(kinds)
    }

    /// `on-submission` of a batch scheduler: companion objects as JSON.
    pub async fn on_submission(&self, ctx: OwnerContext) -> Result<Vec<String>> {
        let this = self.clone();
        self.run(move || {
            this.scheduler()?;
            let objects = this.call(Seal { now_ms: ctx.now, seed: 0 }, |store| {
                this.instantiate_scheduler(store)?.on_submission(&mut *store, &ctx)
            })?;
            let objects = this.returned(objects)?;
            for o in &objects {
                validate::object(o).map_err(|reason| this.malformed(reason))?;
            }
            Ok(objects)
        })
        .await
    }

    /// `decorate-pod` of a batch scheduler.
    pub async fn decorate_pod(&self, ctx: PodContext) -> Result<PodDecoration> {
        let this = self.clone();
        self.run(move || {
            this.scheduler()?;
            let decoration = this.call(Seal { now_ms: 0, seed: 0 }, |store| {
                this.instantiate_scheduler(store)?.decorate_pod(&mut *store, &ctx)
            })?;
            let decoration = this.returned(decoration)?;
            validate::decoration(&decoration).map_err(|reason| this.malformed(reason))?;
            Ok(decoration)
        })
        .await
    }

    /// `on-completion` of a batch scheduler: objects to delete.
    pub async fn on_completion(&self, ctx: OwnerContext) -> Result<Vec<ObjectRef>> {
        let this = self.clone();
        self.run(move || {
            this.scheduler()?;
            let refs = this.call(Seal { now_ms: ctx.now, seed: 0 }, |store| {
                this.instantiate_scheduler(store)?.on_completion(&mut *store, &ctx)
            })?;
            let refs = this.returned(refs)?;
            for r in &refs {
                validate::object_ref(r).map_err(|reason| this.malformed(reason))?;
            }
            Ok(refs)
        })
        .await
    }

    /// `next-step` of an upgrade strategy.
    pub async fn next_step(&self, input: UpgradeInput) -> Result<Decision> {
        let this = self.clone();
        self.run(move || {
            if this.inner.pre.kind() != PluginKind::UpgradeStrategy {
                return Err(this.wrong_kind(PluginKind::UpgradeStrategy));
            }
            let decision = this.call(Seal { now_ms: input.now, seed: 0 }, |store| {
                this.inner.pre.next_step(store, &input).unwrap_or_else(|| Err(wasmtime::format_err!("not an upgrade strategy")))
            })?;
            let decision = this.returned(decision)?;
            validate::decision(&decision).map_err(|reason| this.malformed(reason))?;
            Ok(decision)
        })
        .await
    }

    /// Fails unless this is a batch scheduler.
    fn scheduler(&self) -> Result<()> {
        match self.inner.pre.kind() {
            PluginKind::BatchScheduler => Ok(()),
            _ => Err(self.wrong_kind(PluginKind::BatchScheduler)),
        }
    }

    /// Fails unless this is a reconciler.
    fn reconciler(&self) -> Result<()> {
        match self.inner.pre.kind() {
            PluginKind::Reconciler => Ok(()),
            _ => Err(self.wrong_kind(PluginKind::Reconciler)),
        }
    }

    /// A fresh reconciler instance; the kind was checked before the call.
    fn instantiate_reconciler(&self, store: &mut Store<GuestState>) -> wasmtime::Result<ReconcilerInstance> {
        self.inner.pre.reconciler(store).unwrap_or_else(|| Err(wasmtime::format_err!("not a reconciler")))
    }

    /// A fresh batch-scheduler instance; the kind was checked before the call.
    fn instantiate_scheduler(&self, store: &mut Store<GuestState>) -> wasmtime::Result<SchedulerInstance> {
        self.inner.pre.scheduler(store).unwrap_or_else(|| Err(wasmtime::format_err!("not a batch scheduler")))
    }

    /// Waits for a permit, then runs `f` on a blocking thread: guest code is synchronous and may
    /// run for the whole deadline, which must not hold up the async executor.
    async fn run<R: Send + 'static>(&self, f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
        let _permit = self.inner.rt.permits.acquire().await.map_err(|_| RuntimeError::Closed)?;
        match tokio::task::spawn_blocking(f).await {
            Ok(result) => result,
            // Only a bug in the host's own glue panics here; report it against the plugin
            // rather than taking the caller down.
            Err(e) => Err(RuntimeError::Trap {
                plugin: (*self.inner.id).clone(),
                message: format!("host task failed: {e}"),
                panic: None,
            }),
        }
    }

    /// One sandboxed call: fresh store, memory limit, epoch deadline; failures classified.
    fn call<R>(
        &self,
        seal: Seal,
        f: impl FnOnce(&mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        let rt = &self.inner.rt;
        let state = GuestState::new(self.inner.id.clone(), rt.config.memory_limit, seal.now_ms, seal.seed);
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(rt.deadline_ticks);
        store.epoch_deadline_trap();
        let result = f(&mut store);
        store.data().flush_stdio();
        result.map_err(|e| self.classify(e, store.data()))
    }

    fn classify(&self, e: wasmtime::Error, state: &GuestState) -> RuntimeError {
        let plugin = (*self.inner.id).clone();
        let rt = &self.inner.rt;
        if state.limiter.hit {
            RuntimeError::MemoryLimit { plugin, limit: rt.config.memory_limit }
        } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            RuntimeError::Timeout { plugin, deadline: rt.config.deadline }
        } else {
            RuntimeError::Trap { plugin, message: format!("{e:#}"), panic: state.panic.clone() }
        }
    }

    fn returned<T>(&self, result: std::result::Result<T, PluginError>) -> Result<T> {
        result.map_err(|error| RuntimeError::Plugin { plugin: (*self.inner.id).clone(), error })
    }

    fn malformed(&self, reason: String) -> RuntimeError {
        RuntimeError::MalformedOutput { plugin: (*self.inner.id).clone(), reason }
    }

    fn wrong_kind(&self, expected: PluginKind) -> RuntimeError {
        RuntimeError::WrongKind {
            plugin: (*self.inner.id).clone(),
            expected: expected.world(),
            actual: self.inner.info.kind.world(),
        }
    }
}
