//! Where one policy call's time goes, phase by phase, as the server makes it:
//! a fresh store, the component's instantiation, the call itself, and the
//! store's drop (which hands the instance's memory back to the pool and
//! resets it). The call is what a whole evaluation takes beyond the other
//! three, so the phases add up to the measured total.
//!
//! Besides, the hop a server call makes onto a blocking thread and back
//! (`commerce::policy::evaluate`), timed with an empty closure.

use std::{hint::black_box, time::Instant};

use commerce::policy::{LoadedPolicy, call::Call, engine::PolicyEngine};
use hdrhistogram::Histogram;

use crate::policy::{elapsed_nanos, nanos};

/// p50 and p99 of each phase, in microseconds.
pub struct Split {
    pub store: [f64; 2],
    pub instantiate: [f64; 2],
    pub drop: [f64; 2],
    pub total: [f64; 2],
    /// The whole call's p95 and mean, in microseconds.
    pub p95: f64,
    pub mean: f64,
}

impl Split {
    /// The call itself: the median total less the other phases' medians.
    pub fn call_p50(&self) -> f64 {
        (self.total[0] - self.store[0] - self.instantiate[0] - self.drop[0]).max(0.0)
    }

    /// `store 0.4 + instantiate 3.1 + call 0.9 + drop 1.0 µs (p50)`.
    pub fn describe(&self) -> String {
        format!(
            "store {:.1} + instantiate {:.1} + call {:.1} + drop/reset {:.1} µs (p50)",
            self.store[0],
            self.instantiate[0],
            self.call_p50(),
            self.drop[0]
        )
    }
}

/// Measures `calls` calls of `policy` phase by phase, after a warm-up.
pub fn measure(policy: &LoadedPolicy, call: &Call, calls: usize) -> anyhow::Result<Split> {
    let engine = PolicyEngine::get();
    let component = policy
        .component
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{} is native: it has no phases", policy.label()))?;
    let pre = engine.linker.instantiate_pre(component)?;
    let label = policy.label();
    let limits = commerce::policy::engine::Limits::of(policy.info.slot);
    let [mut store_h, mut instantiate_h, mut drop_h, mut total_h] =
        [nanos()?, nanos()?, nanos()?, nanos()?];
    for round in 0..calls + calls / 10 {
        let warm = round >= calls / 10;
        let started = Instant::now();
        let mut store = engine.store_with(&label, limits);
        let stored = Instant::now();
        black_box(pre.instantiate(&mut store)?);
        let instantiated = Instant::now();
        drop(store);
        let dropped = Instant::now();
        let whole = Instant::now();
        black_box(policy.evaluate(black_box(call))?);
        if warm {
            store_h.saturating_record(nanos_between(started, stored));
            instantiate_h.saturating_record(nanos_between(stored, instantiated));
            drop_h.saturating_record(nanos_between(instantiated, dropped));
            total_h.saturating_record(elapsed_nanos(whole));
        }
    }
    let at = |h: &Histogram<u64>| [0.5, 0.99].map(|q| h.value_at_quantile(q) as f64 / 1000.0);
    Ok(Split {
        store: at(&store_h),
        instantiate: at(&instantiate_h),
        drop: at(&drop_h),
        total: at(&total_h),
        p95: total_h.value_at_quantile(0.95) as f64 / 1000.0,
        mean: total_h.mean() / 1000.0,
    })
}

/// p50 and p99 of the hop onto a blocking thread and back, in microseconds.
pub async fn thread_hop(hops: usize) -> anyhow::Result<[f64; 2]> {
    let mut histogram = nanos()?;
    for round in 0..hops + hops / 10 {
        let started = Instant::now();
        commerce::policy::evaluate(false, || black_box(1)).await?;
        if round >= hops / 10 {
            histogram.saturating_record(elapsed_nanos(started));
        }
    }
    Ok([0.5, 0.99].map(|q| histogram.value_at_quantile(q) as f64 / 1000.0))
}

fn nanos_between(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.duration_since(from).as_nanos()).unwrap_or(u64::MAX)
}
