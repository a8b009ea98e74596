//! The process's one wasmtime `Engine` and how a policy call is run.
//!
//! Every call gets a fresh `Store` with a deterministic fuel budget (the
//! instructions a policy may spend, as Shopify Functions count them), a
//! memory limit, and an epoch deadline as a wall-clock backstop. No WASI is
//! linked: the only import is `host.log`.
//!
//! Fuel and memory are per slot ([`Limits`], settable in the manifest); the
//! defaults fit the TypeScript and Python examples, whose interpreters take
//! far more of both than a Rust policy does.
//!
//! Compiled code is cached on disk by wasmtime (its serialized component,
//! keyed by the SHA-256 of the component's bytes and the engine's
//! configuration), so an instance restarting with 12-18 MB TypeScript or
//! Python components active is ready in seconds, not ~30 s per component.

use std::{
    path::PathBuf,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use utoipa::ToSchema;
use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy,
    PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, Trap,
    component::{Component, Linker},
};

use super::{PolicyError, Slot, bindings};

/// Instructions one call may spend by default: far more than a Rust pricing
/// rule needs (thousands), ten times what the TypeScript examples spend
/// (~1.6M: a JavaScript interpreter), spent in tens of milliseconds.
pub const FUEL_PER_CALL: u64 = 20_000_000;
/// Linear memory one call may use by default: the Python interpreter's image
/// alone is ~20 MB.
pub const MEMORY_PER_CALL: usize = 64 << 20;
/// The most memory a slot may be given (the pooling allocator reserves this
/// much address space per pooled memory).
pub const MAX_MEMORY_PER_CALL: usize = 128 << 20;
/// The most fuel a slot may be given: the wall-clock backstop ends a call
/// long before a larger budget could be spent.
pub const MAX_FUEL_PER_CALL: u64 = 1_000_000_000;
/// The epoch advances this often: the wall-clock backstop's resolution.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Wall time one call may take by default. Fuel is the real bound; this is
/// a backstop, with room for an interpreter's call (~1 ms of CPU) kept off
/// its core by a busy machine.
pub const TIME_PER_CALL: Duration = Duration::from_millis(250);
/// The longest wall time a slot may be given.
pub const MAX_TIME_PER_CALL: Duration = Duration::from_secs(1);
/// Pooled memories returned to the kernel in one batch.
const DECOMMIT_BATCH: usize = 16;
/// Memory bytes a pooled slot keeps resident between calls, reset in place:
/// the pages a call wrote when the kernel can say which (PAGEMAP_SCAN), else
/// the first bytes by memset; the rest of what a call wrote goes back to the
/// kernel (see `config`). Every warm slot holds this much while it waits,
/// so it is what bounds the pool's resident memory: 64 MiB here let each of
/// a hundred idle slots keep what a call once touched, gigabytes in all.
const KEEP_RESIDENT_SCANNED: usize = 4 << 20;
const KEEP_RESIDENT_MEMSET: usize = 192 << 10;
/// Warm memory slots left unused before the pool reuses them for other
/// components (wasmtime's default is 100): with [`KEEP_RESIDENT_SCANNED`],
/// idle slots hold at most 64 MiB together. The components a deployment
/// runs at once (three slots, their shadows, a few core instances each) stay
/// within it, so each keeps finding a slot already holding its image.
const MAX_UNUSED_WARM_SLOTS: u32 = 16;
/// Core instances, memories and tables a call may create, and table size:
/// above what a component of any of the supported languages needs (a
/// componentize-py component has 38 core instances, one memory and two
/// tables; componentize-js, 3, one and two; Rust, one of each). Memory bytes
/// are bounded for all of a call's memories together (`CallLimits`), so the
/// count of memories grants no more of them.
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 64;
/// (The pool reserves every table slot at this size, so it stays at
/// wasmtime's default: 20,000 elements of 8 bytes, for 1,024 tables.)
const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Table bytes a pooled slot keeps resident between calls: a whole table at
/// its largest (160 KB), since a Python component fills thousands of
/// elements at every instantiation; table slots are reused before new ones
/// are touched, so only as many as run at once hold it.
const TABLE_KEEP_RESIDENT: usize = MAX_TABLE_ELEMENTS * size_of::<usize>();
/// Log lines kept per call, and their length, so a chatty policy cannot
/// flood the log or the host's memory.
const MAX_LOG_LINES: usize = 32;
const MAX_LOG_CHARS: usize = 1024;

/// What one call of a slot's policy may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Limits {
    /// Linear memory, bytes.
    pub memory: usize,
    /// Instructions (wasmtime fuel).
    pub fuel: u64,
    /// Wall time, milliseconds (the backstop).
    pub time_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: MEMORY_PER_CALL,
            fuel: FUEL_PER_CALL,
            time_ms: TIME_PER_CALL.as_millis() as u64,
        }
    }
}

impl Limits {
    /// Checks a manifest's limits against what the engine can give.
    pub fn new(memory: usize, fuel: u64, time_ms: u64) -> Result<Self, String> {
        if memory == 0 || memory > MAX_MEMORY_PER_CALL {
            return Err(format!(
                "memory must be between 1 MB and {} MB",
                MAX_MEMORY_PER_CALL >> 20
            ));
        }
        if fuel == 0 || fuel > MAX_FUEL_PER_CALL {
            return Err(format!("fuel must be between 1 and {MAX_FUEL_PER_CALL}"));
        }
        let tick = EPOCH_TICK.as_millis() as u64;
        let most = MAX_TIME_PER_CALL.as_millis() as u64;
        if !(tick..=most).contains(&time_ms) {
            return Err(format!("time_ms must be between {tick} and {most}"));
        }
        Ok(Self {
            memory,
            fuel,
            time_ms,
        })
    }

    /// The limits of `slot`'s calls in this process: the manifest's, once
    /// one is loaded, else the defaults.
    pub fn of(slot: Slot) -> Self {
        let [memory, fuel, time_ms] = &SLOT_LIMITS[slot as usize];
        match [memory, fuel, time_ms].map(|limit| limit.load(Ordering::Relaxed)) {
            [memory, fuel, time_ms] if memory > 0 && fuel > 0 && time_ms > 0 => Self {
                memory: memory as usize,
                fuel,
                time_ms,
            },
            _ => Self::default(),
        }
    }

    /// Makes these `slot`'s limits for every later call in this process.
    pub fn apply(self, slot: Slot) {
        let [memory, fuel, time_ms] = &SLOT_LIMITS[slot as usize];
        memory.store(self.memory as u64, Ordering::Relaxed);
        fuel.store(self.fuel, Ordering::Relaxed);
        time_ms.store(self.time_ms, Ordering::Relaxed);
    }
}

/// Per slot: memory bytes, fuel and milliseconds; 0 until a manifest sets them.
static SLOT_LIMITS: [[AtomicU64; 3]; 3] = [const { [const { AtomicU64::new(0) }; 3] }; 3];

/// The store's limits, with the memory bound applied to all of a call's
/// linear memories together: wasmtime's own bounds each memory alone, so a
/// component of eight memories could otherwise take eight times its limit.
struct CallLimits {
    each: StoreLimits,
    /// Bytes all the call's memories may hold together.
    budget: usize,
    /// Bytes they hold now.
    held: usize,
    /// The growth last allowed, taken back if the grow then fails.
    growing: usize,
}

impl wasmtime::ResourceLimiter for CallLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        let growth = desired.saturating_sub(current);
        if self.held.saturating_add(growth) > self.budget {
            anyhow::bail!(
                "forcing trap when growing memory to {desired} bytes: the call's memories \
                 would hold more than {} bytes together",
                self.budget
            );
        }
        let allowed = self.each.memory_growing(current, desired, maximum)?;
        if allowed {
            self.held += growth;
            self.growing = growth;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        self.held -= std::mem::take(&mut self.growing);
        self.each.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        self.each.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        self.each.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.each.instances()
    }

    fn tables(&self) -> usize {
        self.each.tables()
    }

    fn memories(&self) -> usize {
        self.each.memories()
    }
}

/// What the host keeps for one call.
pub struct CallState {
    limits: CallLimits,
    /// The fuel the call was given, to report what it spent.
    fuel: u64,
    /// `name@version` of the policy, for its log lines.
    policy: String,
    pub logs: Vec<(bindings::LogLevel, String)>,
}

impl CallState {
    /// A log line from the policy: into tracing with the policy's label, and
    /// kept for the call's report. Each contract version's `host.log` lands here.
    pub(crate) fn record_log(&mut self, level: bindings::LogLevel, message: String) {
        use bindings::LogLevel::*;
        if self.logs.len() >= MAX_LOG_LINES {
            // Past the cap a line reaches neither the report nor `tracing`:
            // a policy logging in a loop must not flood the server's log.
            return;
        }
        let message: String = message.chars().take(MAX_LOG_CHARS).collect();
        let policy = self.policy.as_str();
        match level {
            Trace => tracing::trace!(policy, "{message}"),
            Debug => tracing::debug!(policy, "{message}"),
            Info => tracing::info!(policy, "{message}"),
            Warn => tracing::warn!(policy, "{message}"),
            Error => tracing::error!(policy, "{message}"),
        }
        self.logs.push((level, message));
    }
}

/// The engine, its linker and the epoch ticker: one per process.
pub struct PolicyEngine {
    pub engine: Engine,
    pub linker: Linker<CallState>,
    /// Whether instances come from the pooling allocator.
    pub pooling: bool,
}

impl PolicyEngine {
    /// The process's engine, created on first use.
    pub fn get() -> &'static PolicyEngine {
        static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
        ENGINE.get_or_init(|| PolicyEngine::new().expect("the policy engine can be configured"))
    }

    fn new() -> anyhow::Result<Self> {
        let cache = compile_cache();
        let (engine, pooling) = match Engine::new(&config(true, cache.clone())) {
            Ok(engine) => (engine, true),
            Err(err) => {
                // Some machines refuse the pooling allocator's address-space
                // reservation; on-demand allocation works everywhere.
                tracing::warn!(%err, "pooling allocator unavailable; allocating instances on demand");
                (Engine::new(&config(false, cache))?, false)
            }
        };
        // Every served version's `host` under its own name: a component is
        // linked against exactly the version it was built for.
        let mut linker = Linker::new(&engine);
        bindings::v1_0::add_to_linker(&mut linker)?;
        bindings::v1_1::add_to_linker(&mut linker)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Self {
            engine,
            linker,
            pooling,
        })
    }

    /// Compiles component bytes (not yet checked against any world), or
    /// reads them compiled from the on-disk cache. One compilation at a time
    /// per process, on one core: compiling a 12 MB interpreter takes tens of
    /// seconds of CPU, and the other cores keep serving requests meanwhile.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, PolicyError> {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let started = Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(|err| {
            PolicyError::InvalidComponent(format!("not a valid component: {err:#}"))
        })?;
        metrics::histogram!("policy_compile_seconds").record(started.elapsed().as_secs_f64());
        Ok(component)
    }

    /// A fresh store for one call of `policy` with the default limits.
    pub fn store(&self, policy: &str) -> Store<CallState> {
        self.store_with(policy, Limits::default())
    }

    /// A fresh store for one call of `policy` within `limits`.
    pub fn store_with(&self, policy: &str, limits: Limits) -> Store<CallState> {
        let fuel = limits.fuel;
        let ticks = limits.time_ms.div_ceil(EPOCH_TICK.as_millis() as u64);
        // Besides memory bytes: how many instances, memories and tables a
        // component may create, and how large a table may grow, so a
        // component cannot exhaust the host with many small ones.
        let limits = CallLimits {
            each: StoreLimitsBuilder::new()
                .memory_size(limits.memory)
                .instances(MAX_INSTANCES)
                .memories(MAX_MEMORIES)
                .tables(MAX_TABLES)
                .table_elements(MAX_TABLE_ELEMENTS)
                .trap_on_grow_failure(true)
                .build(),
            budget: limits.memory,
            held: 0,
            growing: 0,
        };
        let mut store = Store::new(
            &self.engine,
            CallState {
                limits,
                fuel,
                policy: policy.to_owned(),
                logs: Vec::new(),
            },
        );
        store.limiter(|state| &mut state.limits);
        store
            .set_fuel(fuel)
            .expect("fuel is enabled on this engine");
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }
}

fn config(pooling: bool, cache: Option<Cache>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    // Without wasmtime's `parallel-compilation` feature a compilation keeps
    // to one core (see `compile`); a warm start reads the cache instead.
    config.cache(cache);
    if pooling {
        // Every call gets a fresh instance from the pool, and its memory is
        // reset to the component's image when the call's store is dropped.
        // What that reset costs is most of what a small call costs
        // (`bench calls` prints the split):
        // - with the kernel's PAGEMAP_SCAN (Linux 6.7+), only the pages the
        //   call wrote are found and restored in place, up to the kept size,
        //   so a call that writes less faults in nothing and a 12-18 MB
        //   TypeScript or Python image costs what it dirtied, not its size;
        //   past the kept size the pages go back to the kernel, and the next
        //   call faults them in again;
        // - without it, the kept bytes are reset by memset, so they are sized
        //   to what a Rust policy touches (its 64 KiB stack, data, first heap
        //   pages: plugins/.cargo/config.toml), and the rest is returned to
        //   the kernel.
        // What stays resident is at most the kept size per warm slot, and
        // the warm slots are bounded ([`MAX_UNUSED_WARM_SLOTS`] idle, plus
        // those in use).
        let keep = if PoolingAllocationConfig::is_pagemap_scan_available() {
            KEEP_RESIDENT_SCANNED
        } else {
            KEEP_RESIDENT_MEMSET
        };
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(512)
            .total_core_instances(2048)
            .total_memories(1024)
            .total_tables(1024)
            .table_elements(MAX_TABLE_ELEMENTS)
            .max_memory_size(MAX_MEMORY_PER_CALL)
            .decommit_batch_size(DECOMMIT_BATCH)
            .pagemap_scan(Enabled::Auto)
            .max_unused_warm_slots(MAX_UNUSED_WARM_SLOTS)
            .linear_memory_keep_resident(keep)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config.memory_reservation(MAX_MEMORY_PER_CALL as u64);
        // No guard pages: 128 MiB reservations are bounds-checked explicitly
        // anyway (only a 4 GiB one lets the compiler elide checks), and with
        // guard pages every reuse of a slot shrinks its accessible part with
        // an `mprotect` (a TLB shootdown on every core) after the guest's
        // allocator grew it: ~10 µs of a call.
        config.memory_guard_size(0);
        config.guard_before_linear_memory(false);
    }
    config
}

/// wasmtime's on-disk cache of compiled components, in
/// `COMMERCE_COMPILE_CACHE` (`off` disables it), else the user's cache
/// folder (`$XDG_CACHE_HOME/commerce` or `~/.cache/commerce`), shared by the
/// server, the runner and the tests. Entries are keyed by the component's
/// SHA-256 and the engine's configuration and version, so a changed engine
/// never reads stale code.
fn compile_cache() -> Option<Cache> {
    let dir = match std::env::var_os("COMMERCE_COMPILE_CACHE") {
        Some(dir) if dir == "off" => return None,
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?
            .join("commerce"),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let mut cache = CacheConfig::new();
    cache.with_directory(&dir);
    match Cache::new(cache) {
        Ok(cache) => Some(cache),
        Err(err) => {
            // Compiling still works without it, only slower at start.
            tracing::warn!(dir = %dir.display(), %err, "no compile cache");
            None
        }
    }
}

/// Fuel spent, wall time and log lines of one call.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub fuel: u64,
    pub elapsed: Duration,
    pub logs: Vec<(bindings::LogLevel, String)>,
}

impl CallReport {
    pub fn of(store: &Store<CallState>, started: Instant) -> Self {
        Self {
            fuel: store
                .data()
                .fuel
                .saturating_sub(store.get_fuel().unwrap_or(0)),
            elapsed: started.elapsed(),
            logs: store.data().logs.clone(),
        }
    }

    /// A native policy's call: no fuel, no log lines.
    pub fn native(started: Instant) -> Self {
        Self {
            fuel: 0,
            elapsed: started.elapsed(),
            logs: Vec::new(),
        }
    }
}

/// Names why a call failed: the budget it exhausted, or the trap.
pub fn describe_failure(err: &anyhow::Error) -> String {
    describe_failure_within(err, Limits::default())
}

/// As [`describe_failure`], for a call made within `limits`.
pub fn describe_failure_within(err: &anyhow::Error, limits: Limits) -> String {
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!("ran out of fuel ({} instructions)", limits.fuel),
        Some(Trap::Interrupt) => format!("ran out of time ({} ms)", limits.time_ms),
        Some(trap) => format!("trapped: {trap}"),
        None if let Some(bounds) = err.downcast_ref::<bindings::answer::OutOfBounds>() => {
            bounds.to_string()
        }
        // The store's limiter refused a memory growth (`trap_on_grow_failure`).
        None if format!("{err:#}").contains("memory") => {
            format!("exceeded its memory limit of {} bytes", limits.memory)
        }
        None => format!("failed: {err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module of one section: `id` with `payload`.
    fn module(id: u8, payload: &[u8]) -> wasmtime::Module {
        try_module(id, payload).expect("a module")
    }

    fn try_module(id: u8, payload: &[u8]) -> Result<wasmtime::Module, String> {
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.push(id);
        bytes.push(u8::try_from(payload.len()).expect("a short section"));
        bytes.extend_from_slice(payload);
        wasmtime::Module::new(&PolicyEngine::get().engine, bytes).map_err(|err| format!("{err:#}"))
    }

    fn instantiate(store: &mut Store<CallState>, module: &wasmtime::Module) -> Result<(), String> {
        wasmtime::Instance::new(store, module, &[])
            .map(drop)
            .map_err(|err| format!("{err:#}"))
    }

    #[test]
    fn a_calls_memories_tables_and_instances_are_bounded_together() {
        let limits = Limits::new(64 << 20, 1_000, 1_000).expect("limits");
        // 640 pages are 40 MiB: one memory of them fits in 64 MiB, two do not,
        // though each alone would.
        // (A component's core modules are instantiated in one store, so two
        // modules of one such memory each are how a guest would try it.)
        let one = module(5, &[1, 0, 0x80, 0x05]);
        let engine = PolicyEngine::get();
        assert_eq!(
            instantiate(&mut engine.store_with("one", limits), &one),
            Ok(())
        );
        let mut store = engine.store_with("split", limits);
        assert_eq!(instantiate(&mut store, &one), Ok(()));
        let refused = instantiate(&mut store, &one);
        assert!(
            refused.as_ref().is_err_and(|why| why.contains("together")),
            "{refused:?}"
        );
        // A table past the bound (30,000 elements as LEB128): the pool refuses
        // to compile it, the limiter to instantiate it where there is no pool.
        let table = try_module(4, &[1, 0x70, 0, 0xb0, 0xea, 0x01])
            .and_then(|table| instantiate(&mut engine.store_with("table", limits), &table));
        assert!(
            table.as_ref().is_err_and(|why| why.contains("table")),
            "{table:?}"
        );
        // Instances: the call's cap, then no more.
        let empty = wasmtime::Module::new(&engine.engine, b"\0asm\x01\0\0\0").expect("a module");
        let mut store = engine.store_with("many", limits);
        for _ in 0..MAX_INSTANCES {
            assert_eq!(instantiate(&mut store, &empty), Ok(()));
        }
        assert!(instantiate(&mut store, &empty).is_err());
    }

    #[test]
    fn a_chatty_policy_keeps_only_the_first_lines_and_each_short() {
        let store = PolicyEngine::get().store("chatty@1.0.0");
        let mut state = store.into_data();
        for n in 0..1_000 {
            state.record_log(
                bindings::LogLevel::Info,
                format!("{n} {}", "x".repeat(5_000)),
            );
        }
        assert_eq!(state.logs.len(), MAX_LOG_LINES);
        assert!(
            state
                .logs
                .iter()
                .all(|(_, line)| line.chars().count() <= MAX_LOG_CHARS)
        );
        assert!(state.logs[MAX_LOG_LINES - 1].1.starts_with("31 "));
    }
}
