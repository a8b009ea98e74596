//! Business policy as WebAssembly components: the engine, the contract's
//! bindings, the loaded versions and the registry that swaps them.
//!
//! Policies are evaluated before any row lock is taken; a policy that traps,
//! runs out of fuel or time, or breaks its memory limit is
//! `POLICY_UNAVAILABLE`, and nothing is written.

pub mod bindings;
pub mod call;
pub mod engine;
pub mod loaded;
pub mod manifest;
pub mod metadata;
pub mod native;
pub mod recorded;
pub mod registry;
pub mod replay;
pub mod runner;
pub mod shadow;
pub mod slot;

pub use loaded::LoadedPolicy;
pub use registry::Registry;
pub use slot::{PolicyError, Slot};

/// Locks `mutex`, going on with what a panicking holder left: every value
/// kept under these locks (caches, tallies, file lists) stays usable.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A policy call that took at most this long may run on the async worker
/// whose request asked for it: it is over sooner than the hop onto a
/// blocking thread and back would be (`bench calls` prints both), and short
/// enough not to hold up the worker's other tasks. A standard Rust policy
/// takes a few microseconds; an interpreter's call (TypeScript, Python)
/// hundreds, and keeps to the blocking threads.
pub const INLINE_CALL: std::time::Duration = std::time::Duration::from_micros(100);

/// One policy evaluation at a time per core, process-wide. A burst would
/// otherwise run hundreds of calls at once on blocking threads that take
/// turns on the cores, and a call kept off its core long enough runs out of
/// its wall-clock budget; waiting for a core here costs no budget.
static CORES: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
    )
});

/// Runs `work` (policy calls: CPU work): right here when `inline` (every
/// policy it calls is [`LoadedPolicy::is_fast`]), else on a blocking thread
/// once a core is free. An inline call is still bounded by its slot's fuel
/// and wall-clock limits; a policy that turns slow goes back to the
/// blocking threads from its next call.
pub async fn evaluate<T: Send + 'static>(
    inline: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    if inline {
        return Ok(work());
    }
    let _core = CORES.acquire().await?;
    Ok(tokio::task::spawn_blocking(work).await?)
}
