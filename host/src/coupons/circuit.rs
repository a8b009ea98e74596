//! Whether Redis is worth asking.
//!
//! After a Redis call of the issuance path fails, this process's requests
//! skip Redis for [`PAUSE`] and take the PostgreSQL path, so that a Redis
//! that hangs does not cost every request a timeout. Then one request tries
//! Redis again: its success closes the circuit, its failure starts another
//! pause. Nothing needs a restart: Redis is used again as soon as it answers.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// How long Redis is skipped after a failure.
pub const PAUSE: Duration = Duration::from_secs(1);

pub struct Circuit {
    started: Instant,
    /// Milliseconds after `started` until which Redis is skipped; 0 while
    /// the circuit is closed.
    open_until: AtomicU64,
}

impl Circuit {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            open_until: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this request may ask Redis. After a pause exactly one request
    /// is let through to probe; the others keep skipping until it answers.
    pub fn allows(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now();
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now + super::millis(PAUSE),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    pub fn succeeded(&self) {
        if self.open_until.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!("Redis answers again; coupon issuance uses it");
        }
    }

    pub fn failed(&self, why: impl fmt::Display) {
        // `+ 1` keeps a failure in the first millisecond distinct from "closed".
        let until = self.now() + super::millis(PAUSE) + 1;
        if self.open_until.swap(until, Ordering::AcqRel) == 0 {
            tracing::warn!(
                error = %why,
                "Redis is unavailable; coupons are issued by PostgreSQL alone until it answers"
            );
        }
    }
}

impl Default for Circuit {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_pauses_redis_then_one_request_probes() {
        let circuit = Circuit::new();
        assert!(circuit.allows());
        circuit.failed("refused");
        assert!(!circuit.allows());
        // Pretend the pause is over.
        std::thread::sleep(Duration::from_millis(2));
        circuit.open_until.store(1, Ordering::Release);
        assert!(circuit.allows(), "the first request after the pause probes");
        assert!(!circuit.allows(), "the others wait for the probe");
        circuit.succeeded();
        assert!(circuit.allows());
        assert!(circuit.allows());
    }
}
