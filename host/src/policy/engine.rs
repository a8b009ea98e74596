//! The process's one wasmtime `Engine` and how a policy call is run.
//!
//! Every call gets a fresh `Store` with a deterministic fuel budget (the
//! instructions a policy may spend, as Shopify Functions count them), a
//! memory limit, and an epoch deadline as a wall-clock backstop. No WASI is
//! linked: the only import is `host.log`.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, Trap,
    component::{Component, Linker},
};

use super::{PolicyError, bindings};

/// Instructions one call may spend: far more than a pricing rule needs, and
/// spent in a few milliseconds, well inside the wall-clock backstop.
pub const FUEL_PER_CALL: u64 = 20_000_000;
/// Linear memory one call may use.
pub const MEMORY_PER_CALL: usize = 32 << 20;
/// The epoch advances this often...
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// ...and a call is interrupted after this many ticks (50 ms).
const DEADLINE_TICKS: u64 = 10;
/// Pooled memories returned to the kernel in one batch.
const DECOMMIT_BATCH: usize = 16;
/// Core instances, memories and tables a call may create, and table size:
/// far above what a component of any of the supported languages needs.
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 64;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Log lines kept per call, and their length, so a chatty policy cannot
/// flood the log or the host's memory.
const MAX_LOG_LINES: usize = 32;
const MAX_LOG_CHARS: usize = 1024;

/// What the host keeps for one call.
pub struct CallState {
    limits: StoreLimits,
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
        let (engine, pooling) = match Engine::new(&config(true)) {
            Ok(engine) => (engine, true),
            Err(err) => {
                // Some machines refuse the pooling allocator's address-space
                // reservation; on-demand allocation works everywhere.
                tracing::warn!(%err, "pooling allocator unavailable; allocating instances on demand");
                (Engine::new(&config(false))?, false)
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

    /// Compiles component bytes (not yet checked against any world).
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, PolicyError> {
        Component::new(&self.engine, bytes)
            .map_err(|err| PolicyError::InvalidComponent(format!("not a valid component: {err:#}")))
    }

    /// A fresh store for one call of `policy`.
    pub fn store(&self, policy: &str) -> Store<CallState> {
        // Besides memory bytes: how many instances, memories and tables a
        // component may create, and how large a table may grow, so a
        // component cannot exhaust the host with many small ones.
        let limits = StoreLimitsBuilder::new()
            .memory_size(MEMORY_PER_CALL)
            .instances(MAX_INSTANCES)
            .memories(MAX_MEMORIES)
            .tables(MAX_TABLES)
            .table_elements(MAX_TABLE_ELEMENTS)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            CallState {
                limits,
                policy: policy.to_owned(),
                logs: Vec::new(),
            },
        );
        store.limiter(|state| &mut state.limits);
        store
            .set_fuel(FUEL_PER_CALL)
            .expect("fuel is enabled on this engine");
        store.set_epoch_deadline(DEADLINE_TICKS);
        store.epoch_deadline_trap();
        store
    }
}

fn config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(512)
            .total_core_instances(2048)
            .total_memories(1024)
            .total_tables(1024)
            .max_memory_size(MEMORY_PER_CALL)
            .decommit_batch_size(DECOMMIT_BATCH);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config.memory_reservation(MEMORY_PER_CALL as u64);
    }
    config
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
            fuel: FUEL_PER_CALL.saturating_sub(store.get_fuel().unwrap_or(0)),
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
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!("ran out of fuel ({FUEL_PER_CALL} instructions)"),
        Some(Trap::Interrupt) => format!(
            "ran out of time ({} ms)",
            (EPOCH_TICK * DEADLINE_TICKS as u32).as_millis()
        ),
        Some(trap) => format!("trapped: {trap}"),
        // The store's limiter refused a memory growth (`trap_on_grow_failure`).
        None if format!("{err:#}").contains("memory") => {
            format!("exceeded its memory limit of {MEMORY_PER_CALL} bytes")
        }
        None => format!("failed: {err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
