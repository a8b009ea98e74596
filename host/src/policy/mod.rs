//! Business policy as WebAssembly components: the engine, the contract's
//! bindings, the loaded versions and the registry that swaps them.
//!
//! Policies are evaluated before any row lock is taken; a policy that traps,
//! runs out of fuel or time, or breaks its memory limit is
//! `POLICY_UNAVAILABLE`, and nothing is written.

pub mod authoring;
pub mod bindings;
pub mod call;
pub mod engine;
mod follower;
pub mod loaded;
pub mod manifest;
pub mod metadata;
mod mirror;
pub mod native;
pub mod recorded;
pub mod registry;
pub mod replay;
pub mod runner;
pub mod service;
pub mod shadow;
mod store;
pub mod watch;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use loaded::LoadedPolicy;
pub use registry::Registry;

/// A place in the request path that a policy fills.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Slot {
    Pricing,
    Coupon,
    OrderRules,
}

impl Slot {
    pub const ALL: [Slot; 3] = [Slot::Pricing, Slot::Coupon, Slot::OrderRules];

    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Pricing => "pricing",
            Slot::Coupon => "coupon",
            Slot::OrderRules => "order_rules",
        }
    }

    /// The WIT world a component must implement to fill this slot.
    pub fn world(self) -> &'static str {
        match self {
            Slot::Pricing => "pricing-policy",
            Slot::Coupon => "coupon-policy",
            Slot::OrderRules => "order-rules-policy",
        }
    }

    /// The interface a component exports to fill this slot, without its
    /// package and version (see [`bindings::Contract::export`]).
    pub fn interface(self) -> &'static str {
        match self {
            Slot::Pricing => "pricing",
            Slot::Coupon => "coupon",
            Slot::OrderRules => "order-rules",
        }
    }

    /// The functions a component in this slot exports, as case files and
    /// metrics name them.
    pub fn functions(self) -> &'static [&'static str] {
        match self {
            Slot::Pricing => &["price"],
            Slot::Coupon => &["apply", "can_issue"],
            Slot::OrderRules => &["check"],
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Slot {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Slot::ALL
            .into_iter()
            .find(|slot| slot.as_str() == s)
            .ok_or_else(|| PolicyError::UnknownSlot(s.to_owned()))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    /// The component cannot serve: it trapped, ran out of fuel, time or memory.
    #[error("the {slot} policy {policy} {reason}")]
    Unavailable {
        slot: Slot,
        policy: String,
        reason: String,
    },
    /// The bytes are not a component implementing the slot's world.
    #[error("{0}")]
    InvalidComponent(String),
    #[error("there is no policy slot named {0:?}; slots are pricing, coupon, order_rules")]
    UnknownSlot(String),
    /// A configuration that is not an object of strings, or that the
    /// component's declared keys refuse.
    #[error("{0}")]
    InvalidConfig(String),
}

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
