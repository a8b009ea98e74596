//! `bench polyglot`: policies in TypeScript and Python against Rust and native.
//!
//! 1. One pricing call as the server makes it (a fresh store, instantiate,
//!    call) with `pricing-bulk` in Rust, TypeScript and Python, against the
//!    standard pricing logic compiled natively into this binary. Goals: the
//!    TypeScript call's p50 within 250 µs, the Python call's within 1 ms.
//! 2. Orders on two instances whose pricing slot is the TypeScript
//!    component (coupon and order rules native), against two serving all
//!    three natively, in alternating rounds. Goal: at least 75% of native.
//!    The TypeScript slot's wall-clock backstop is set to its most (1 s).

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use anyhow::ensure;
use commerce::cli::authoring;
use commerce::policy::{
    Slot,
    call::{Call, Output},
    native::Native,
    runner,
};
use hdrhistogram::Histogram;

use crate::{
    load::Shape,
    policy::{
        alternate_orders, component, elapsed_nanos, nanos, native_call, percents, pricing_input,
    },
    report::Row,
    servers::{Deployment, repository},
    split,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Calls per component, and natively.
    #[arg(long, default_value_t = 5_000)]
    pub calls: usize,
    /// Orders per round, for each of TypeScript pricing and native (0: the
    /// calls alone).
    #[arg(long, default_value_t = 3_000)]
    pub orders: usize,
    /// Rounds of the order comparison.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Connections of the order comparison, spread over two instances.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Time bound of one load run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
}

/// The ports, built when missing or stale, as `commerce policy build` does.
const PORTS: [(&str, &str, f64); 3] = [
    ("Rust", "pricing-bulk", f64::INFINITY),
    ("TypeScript", "pricing-bulk-ts", 250.0),
    ("Python", "pricing-bulk-py", 1_000.0),
];

pub async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    for (_, name, _) in &PORTS[1..] {
        authoring::build_if_stale(&repository().join("plugins").join(name))?;
    }
    let mut rows = calls(&args)?;
    if args.orders > 0 {
        rows.push(orders(&args).await?);
    }
    Ok(rows)
}

fn calls(args: &Args) -> anyhow::Result<Vec<Row>> {
    println!(
        "one pricing call: {} per component, one at a time; a fresh store + instantiate + call, \
         as the server does; native = the standard pricing logic in this binary",
        args.calls
    );
    let call = Call::Price(pricing_input());
    let native = Native::PricingStandard;
    let mut natively = nanos()?;
    let started = Instant::now();
    for _ in 0..args.calls {
        let at = Instant::now();
        black_box(native_call(native, black_box(&call)));
        natively.saturating_record(elapsed_nanos(at));
    }
    let native_per_second = args.calls as f64 / started.elapsed().as_secs_f64();
    let micros = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "language", "p50 µs", "p99 µs", "fuel", "native p50", "p50 x"
    );
    let mut rows = Vec::new();
    let mut answer: Option<Output> = None;
    for (language, name, goal) in PORTS {
        let policy = runner::load(&component(name)?, Slot::Pricing)?;
        let (output, report) = policy.evaluate(&call)?;
        // The three ports must agree, or the comparison means nothing.
        if let Some(answer) = &answer {
            ensure!(
                *answer == output,
                "{name} answers differently from pricing-bulk"
            );
        }
        answer = Some(output);
        let split = split::measure(&policy, &call, args.calls)?;
        let [p50, p99] = split.total;
        println!(
            "{:<12} {:>10.1} {:>10.1} {:>10} {:>10.2}µs {:>9.0}x  {}",
            language,
            p50,
            p99,
            report.fuel,
            micros(&natively, 0.5),
            p50 / micros(&natively, 0.5).max(0.001),
            split.describe(),
        );
        let row = Row {
            scenario: format!("one pricing call, {language} component ({name})"),
            per_second: 1e6 / split.mean,
            p50: p50 / 1000.0,
            p95: split.p95 / 1000.0,
            p99: p99 / 1000.0,
            errors: 0,
            ceiling: "the same call, native".to_owned(),
            ceiling_per_second: native_per_second,
            goals: Vec::new(),
            note: format!(
                "calls one at a time; p50 {p50:.1} µs against native {:.2} µs ({:.0}x); \
                 {} instructions of fuel; {}",
                micros(&natively, 0.5),
                p50 / micros(&natively, 0.5).max(0.001),
                report.fuel,
                split.describe(),
            ),
        };
        rows.push(if goal.is_finite() {
            row.goal(format!("p50 ≤ {goal:.0} µs"), p50 <= goal)
        } else {
            row
        });
    }
    println!();
    Ok(rows)
}

/// Orders with the TypeScript pricing component against all-native policies.
async fn orders(args: &Args) -> anyhow::Result<Row> {
    println!(
        "orders: {} per round and kind, {} rounds, {} connections over two instances; \
         TypeScript pricing (coupon and order rules native) against native policies",
        args.orders, args.rounds, args.connections
    );
    let manifests = std::env::temp_dir().join(format!(
        "commerce-bench-polyglot-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(
        manifests.join("typescript.toml"),
        format!(
            // The wall-clock backstop at its most: the machine is shared, and a
            // call kept off its core is not the component's cost.
            "[slots.pricing]\ncomponent = \"{}\"\n[slots.pricing.limits]\ntime_ms = 1000\n\n[slots.coupon]\ncomponent = \"native:coupon-standard\"\n\n\
             [slots.order_rules]\ncomponent = \"native:order-rules-standard\"\n",
            repository()
                .join("target/plugins/pricing-bulk-ts.wasm")
                .display()
        ),
    )?;
    let ts = Deployment::start(2, |settings| {
        settings.environment = "typescript".to_owned();
        settings.manifest_dir = manifests.clone();
    })
    .await?;
    let native = Deployment::start(2, |settings| {
        settings.environment = "native".to_owned();
    })
    .await?;
    let measured = async {
        let ([with_ts, with_native], rounds) = alternate_orders(
            [
                ("TypeScript pricing", &ts, "pricing-bulk-ts@1.0.0"),
                ("native pricing", &native, "pricing-standard@native"),
            ],
            Shape {
                connections: args.connections,
                requests: args.orders,
                max_time: Duration::from_secs(args.max_seconds),
            },
            args.rounds,
        )
        .await?;
        for (name, report) in [("TypeScript pricing", &with_ts), ("native", &with_native)] {
            println!(
                "{:<24} {:>9.0} req/s {:>9.2} p50 ms {:>9.2} p99 ms",
                format!("orders, {name}"),
                report.per_second(),
                report.millis_at(0.5),
                report.millis_at(0.99),
            );
        }
        Ok(Row::new(
            "orders, TypeScript pricing",
            &with_ts,
            "the same orders, native policies",
            with_native.per_second(),
        )
        .target(0.75)
        .note(format!(
            "{} rounds of {} orders each, alternating, round by round {}; pricing-bulk-ts in \
             the pricing slot, coupon and order rules native; native p50 {:.2} ms, p99 {:.2} ms",
            args.rounds,
            args.orders,
            percents(&rounds),
            with_native.millis_at(0.5),
            with_native.millis_at(0.99)
        )))
    }
    .await;
    ts.stop().await?;
    native.stop().await?;
    let _ = std::fs::remove_dir_all(&manifests);
    measured
}
