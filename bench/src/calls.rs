//! `bench calls`: one policy call of each standard Rust component as the
//! server makes it (a fresh store, instantiate, call, metrics), against the
//! same logic compiled natively into this binary, on the same input; with
//! where the call's time goes ([`split`]) and what the hop onto a blocking
//! thread would add. Within `bench all` the server's metrics recorder is
//! installed by then (the earlier scenarios' servers install it), so the
//! calls record their metrics as a server's do; alone, they record into none.
//!
//! Goals: p50 ≤ 5 µs and p99 ≤ 20 µs per call.

use std::{hint::black_box, time::Instant};

use anyhow::ensure;
use commerce::policy::{call::Call, native::Native, runner};

use crate::{
    policy::{
        apply_input, component, elapsed_nanos, nanos, native_call, order_input, pricing_input,
    },
    report::Row,
    split,
};

/// The goals of one call of a standard Rust component, in microseconds.
const GOAL_P50: f64 = 5.0;
const GOAL_P99: f64 = 20.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Calls per slot, for each of WASM and native.
    #[arg(long, default_value_t = 20_000)]
    pub calls: usize,
}

pub async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    println!(
        "policy calls: {} per slot, one at a time; WASM = fresh store + instantiate + call, \
         as the server does",
        args.calls
    );
    let hop = split::thread_hop(args.calls).await?;
    println!(
        "{:<26} {:>9} {:>9} {:>10} {:>10}  where a WASM call's time goes",
        "slot (function)", "wasm p50", "wasm p99", "native p50", "native p99"
    );
    let cases = [
        (Native::PricingStandard, Call::Price(pricing_input())),
        (Native::CouponStandard, Call::Apply(apply_input())),
        (Native::OrderRulesStandard, Call::Check(order_input())),
    ];
    let mut rows = Vec::new();
    for (native, call) in cases {
        let slot = native.slot();
        let policy = runner::load(&component(native.name())?, slot)?;
        ensure!(
            policy.evaluate(&call)?.0 == native_call(native, &call),
            "{}: the component and the native policy disagree",
            native.name()
        );
        let wasm = split::measure(&policy, &call, args.calls)?;
        let mut natively = nanos()?;
        for _ in 0..args.calls {
            let started = Instant::now();
            black_box(native_call(native, black_box(&call)));
            natively.saturating_record(elapsed_nanos(started));
        }
        let native_at = |q: f64| natively.value_at_quantile(q) as f64 / 1000.0;
        let [p50, p99] = wasm.total;
        println!(
            "{:<26} {:>7.1}µs {:>7.1}µs {:>8.2}µs {:>8.2}µs  {}",
            format!("{slot} ({})", call.function()),
            p50,
            p99,
            native_at(0.5),
            native_at(0.99),
            wasm.describe(),
        );
        let millis = |micros: f64| micros / 1000.0;
        rows.push(
            Row {
                scenario: format!("one {slot} call, {} (Rust)", native.name()),
                per_second: 1e6 / wasm.mean,
                p50: millis(p50),
                p95: millis(wasm.p95),
                p99: millis(p99),
                errors: 0,
                ceiling: "the same call, native".to_owned(),
                ceiling_per_second: 1e9 / natively.mean().max(1.0),
                goals: Vec::new(),
                note: format!(
                    "one at a time; native p50 {:.2} µs, p99 {:.2} µs; {}; a server call \
                     adds the hop to a blocking thread only when the policy is slow \
                     (hop p50 {:.1} µs, p99 {:.1} µs)",
                    native_at(0.5),
                    native_at(0.99),
                    wasm.describe(),
                    hop[0],
                    hop[1],
                ),
            }
            .goal(format!("p50 ≤ {GOAL_P50:.0} µs"), p50 <= GOAL_P50)
            .goal(format!("p99 ≤ {GOAL_P99:.0} µs"), p99 <= GOAL_P99),
        );
    }
    println!(
        "hop to a blocking thread and back: p50 {:.1} µs, p99 {:.1} µs\n",
        hop[0], hop[1]
    );
    Ok(rows)
}
