//! `bench policy`: what running business policy as WebAssembly costs.
//!
//! 1. Per slot, the latency of one policy call as the server makes it (a
//!    fresh store, instantiate, call, metrics) with the standard component,
//!    against the same logic compiled natively into this binary, on the same
//!    input: p50/p99 and their ratio.
//! 2. The cost of a shadow: quotes and orders on one instance, without and
//!    with `pricing-bulk` shadowing the pricing slot, same load, in
//!    alternating rounds so that a machine shared with other work drifts
//!    into both alike.

use std::{
    hint::black_box,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use commerce::policy::{
    Slot,
    bindings::{
        ApplyInput, CouponTerms, DiscountKind, Line, LinePrice, OrderInput, PricedLine,
        PricingInput, UserFacts, Violation,
    },
    call::Call,
    runner,
};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes, client::conn::http1};
use hyper_util::rt::TokioIo;

use crate::{
    load::{self, Report, Shape},
    servers::Deployment,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Calls per slot, for each of WASM and native.
    #[arg(long, default_value_t = 20_000)]
    pub calls: usize,
    /// Quotes, then orders, per run of the shadow comparison.
    #[arg(long, default_value_t = 3_000)]
    pub requests: usize,
    /// Rounds of the shadow comparison, each one run without and one with.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Connections of the load generator.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Time bound of one load run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    calls(&args)?;
    shadow(&args).await
}

/// The repository's `target/plugins/<name>.wasm`.
fn component(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| {
        format!(
            "{}: build the components with `cargo build --release`",
            path.display()
        )
    })
}

fn calls(args: &Args) -> anyhow::Result<()> {
    println!(
        "policy calls: {} per slot, one at a time; WASM = fresh store + instantiate + call, \
         as the server does",
        args.calls
    );
    println!(
        "{:<28} {:>10} {:>10} {:>12} {:>12} {:>8}",
        "slot (function)", "wasm p50", "wasm p99", "native p50", "native p99", "p50 x"
    );
    let cases: [(Slot, &str, Call); 3] = [
        (
            Slot::Pricing,
            "pricing-standard",
            Call::Price(pricing_input()),
        ),
        (Slot::Coupon, "coupon-standard", Call::Apply(apply_input())),
        (
            Slot::OrderRules,
            "order-rules-standard",
            Call::Check(order_input()),
        ),
    ];
    for (slot, name, call) in cases {
        let policy = runner::load(&component(name)?, slot)?;
        let mut wasm = nanos()?;
        for _ in 0..args.calls / 10 {
            policy.evaluate(&call)?;
        }
        for _ in 0..args.calls {
            let started = Instant::now();
            black_box(policy.evaluate(black_box(&call))?);
            wasm.saturating_record(elapsed_nanos(started));
        }
        let mut native = nanos()?;
        for _ in 0..args.calls {
            let started = Instant::now();
            black_box(native_call(black_box(&call)));
            native.saturating_record(elapsed_nanos(started));
        }
        let micros =
            |histogram: &Histogram<u64>, q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:<28} {:>8.1}µs {:>8.1}µs {:>10.2}µs {:>10.2}µs {:>7.0}x",
            format!("{slot} ({})", call.function()),
            micros(&wasm, 0.5),
            micros(&wasm, 0.99),
            micros(&native, 0.5),
            micros(&native, 0.99),
            micros(&wasm, 0.5) / micros(&native, 0.5).max(0.001),
        );
    }
    println!();
    Ok(())
}

fn nanos() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

fn elapsed_nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The standard policies' logic, natively: what the components compute,
/// with the host's own types, on an input cloned as a call hands it over.
fn native_call(call: &Call) -> usize {
    match call.clone() {
        Call::Price(input) => native_price(input).len(),
        Call::Apply(input) => usize::from(native_apply(input).is_ok()),
        Call::CanIssue(_) => 1,
        Call::Check(input) => native_check(input).len(),
    }
}

/// `pricing-standard`: list price, nothing off.
fn native_price(input: PricingInput) -> Vec<LinePrice> {
    input
        .lines
        .iter()
        .map(|line| LinePrice {
            product_id: line.product_id,
            unit_price: line.unit_price,
            discount: 0,
            reason: String::new(),
        })
        .collect()
}

/// `coupon-standard`: the coupon's own terms.
fn native_apply(input: ApplyInput) -> Result<i64, String> {
    let terms = &input.coupon;
    if input.now < terms.valid_from || input.now >= terms.valid_until {
        return Err("NOT_VALID_NOW".into());
    }
    if input.subtotal < terms.min_order_amount {
        return Err("BELOW_MIN_ORDER_AMOUNT".into());
    }
    let subtotal = input.subtotal.max(0);
    let amount = match terms.kind {
        DiscountKind::Fixed => terms.value,
        DiscountKind::Percent => {
            let percent = i128::from(subtotal) * i128::from(terms.value) / 100;
            let percent = i64::try_from(percent.clamp(0, i128::from(subtotal))).unwrap_or(subtotal);
            terms.max_amount.map_or(percent, |max| percent.min(max))
        }
    };
    Ok(amount.clamp(0, subtotal))
}

/// `order-rules-standard`: 1..=1000 units a line, at most 50 lines, one line
/// per product.
fn native_check(input: OrderInput) -> Vec<Violation> {
    let mut violations = Vec::new();
    if input.lines.len() > 50 {
        violations.push(Violation {
            code: "TOO_MANY_LINES".into(),
            message: format!(
                "an order has at most 50 lines, this one has {}",
                input.lines.len()
            ),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut reported = std::collections::BTreeSet::new();
    for line in &input.lines {
        if !(1..=1000).contains(&line.quantity) {
            violations.push(Violation {
                code: "INVALID_QUANTITY".into(),
                message: format!(
                    "product {}: quantity {} is not between 1 and 1000",
                    line.product_id, line.quantity
                ),
            });
        }
        if !seen.insert(line.product_id) && reported.insert(line.product_id) {
            violations.push(Violation {
                code: "DUPLICATE_PRODUCT".into(),
                message: format!("product {} is on more than one line", line.product_id),
            });
        }
    }
    violations
}

fn user() -> UserFacts {
    UserFacts {
        id: 7,
        created_at: 1_767_225_600,
        paid_orders: 3,
        lifetime_spend: 120_000,
    }
}

/// A cart of three lines, as the order path hands it over.
fn lines() -> Vec<Line> {
    [
        (1, "Pen", 1_500, 3),
        (2, "Notebook", 4_000, 2),
        (3, "Ink", 12_000, 1),
    ]
    .into_iter()
    .map(|(id, name, price, quantity)| Line {
        product_id: id,
        name: name.into(),
        category: "office".into(),
        unit_price: price,
        quantity,
    })
    .collect()
}

fn priced() -> Vec<PricedLine> {
    lines()
        .into_iter()
        .map(|line| PricedLine {
            product_id: line.product_id,
            name: line.name,
            category: line.category,
            unit_price: line.unit_price,
            quantity: line.quantity,
            discount: 0,
            line_total: line.unit_price * i64::from(line.quantity),
        })
        .collect()
}

fn pricing_input() -> PricingInput {
    PricingInput {
        lines: lines(),
        user: user(),
        now: 1_768_435_200,
        config: Vec::new(),
    }
}

fn terms() -> CouponTerms {
    CouponTerms {
        coupon_id: 1,
        name: "ten percent".into(),
        kind: DiscountKind::Percent,
        value: 10,
        max_amount: Some(5_000),
        min_order_amount: 10_000,
        valid_from: 1_767_225_600,
        valid_until: 1_798_761_600,
    }
}

fn apply_input() -> ApplyInput {
    ApplyInput {
        lines: priced(),
        subtotal: 24_500,
        user: user(),
        coupon: terms(),
        now: 1_768_435_200,
        config: Vec::new(),
    }
}

fn order_input() -> OrderInput {
    OrderInput {
        lines: priced(),
        subtotal: 24_500,
        coupon_discount: 2_450,
        total: 22_050,
        user: user(),
        coupon: Some(terms()),
        now: 1_768_435_200,
        config: Vec::new(),
    }
}

async fn shadow(args: &Args) -> anyhow::Result<()> {
    let shape = Shape {
        connections: args.connections,
        requests: args.requests,
        max_time: Duration::from_secs(args.max_seconds),
    };
    println!(
        "shadow overhead: {} quotes, then {} orders, {} connections, one instance; \
         without a shadow, then with pricing-bulk shadowing pricing-standard",
        args.requests, args.requests, args.connections
    );
    let deployment = Deployment::start(1, |_| {}).await?;
    let users = deployment.users(100).await?;
    let products: Vec<i64> = sqlx::query_scalar(
        "insert into products (name, category, price, stock)
         select 'product ' || g, 'bench', 1000 + g * 100, 1000000
           from generate_series(1, 20) g
         returning id",
    )
    .fetch_all(&deployment.db)
    .await?;
    // Carts of one to three lines; every fourth has a line of ten units, so
    // the candidate diverges on a share of them.
    let cart = move |n: usize| {
        let lines = 1 + n % 3;
        let items: Vec<String> = (0..lines)
            .map(|line| {
                let product = products[(n + line * 7) % products.len()];
                let quantity = if n.is_multiple_of(4) && line == 0 {
                    10
                } else {
                    1 + line
                };
                format!(r#"{{"product_id":{product},"quantity":{quantity}}}"#)
            })
            .collect();
        format!(
            r#"{{"user_id":{},"items":[{}]}}"#,
            users[n % users.len()],
            items.join(",")
        )
    };
    let target = deployment.addresses[0];
    let quote = {
        let cart = cart.clone();
        move |n: usize| load::Call::post("/api/v1/quotes", cart(n))
    };
    let order = move |n: usize| load::Call::post("/api/v1/orders", cart(n));
    let warm_up = Shape {
        requests: args.requests / 5,
        ..shape
    };
    load::run(&[target], warm_up, quote.clone()).await?;

    let mut runs: [Option<Report>; 4] = [None, None, None, None];
    let shadow_path = "/api/v1/admin/policies/pricing/shadow";
    for _ in 0..args.rounds {
        for shadowed in [false, true] {
            if shadowed {
                admin(
                    target,
                    hyper::Method::PUT,
                    shadow_path,
                    component("pricing-bulk")?,
                )
                .await?;
            }
            let quotes = load::run(&[target], shape, quote.clone()).await?;
            let orders = load::run(&[target], shape, order.clone()).await?;
            let at = usize::from(shadowed);
            merge(&mut runs[at], quotes)?;
            merge(&mut runs[2 + at], orders)?;
            if shadowed {
                // The report counts what this round's shadow saw.
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                let (evaluated, diverged, failed, dropped): (i64, i64, i64, i64) = sqlx::query_as(
                    "select evaluated, diverged, failed, dropped from policy_shadows
                      where slot = 'pricing'",
                )
                .fetch_one(&deployment.db)
                .await?;
                println!(
                    "round: the shadow evaluated {evaluated} of {} pricing evaluations \
                     (diverged {diverged}, failed {failed}, dropped {dropped})",
                    2 * args.requests
                );
                admin(target, hyper::Method::DELETE, shadow_path, Vec::new()).await?;
            }
        }
    }
    let [
        Some(quotes_without),
        Some(quotes_with),
        Some(orders_without),
        Some(orders_with),
    ] = runs
    else {
        anyhow::bail!("no rounds ran");
    };

    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>8}",
        "all rounds", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (name, report) in [
        ("quotes, no shadow", &quotes_without),
        ("quotes, with shadow", &quotes_with),
        ("orders, no shadow", &orders_without),
        ("orders, with shadow", &orders_with),
    ] {
        let errors = report.sent - report.count("200") - report.count("201");
        println!(
            "{name:<24} {:>9.0} {:>9.2} {:>9.2} {errors:>8}",
            report.per_second(),
            report.millis_at(0.5),
            report.millis_at(0.99),
        );
        ensure!(errors == 0, "{name}: {:?}", report.outcomes);
    }
    let overhead = |without: &Report, with: &Report, q: f64| {
        (with.millis_at(q) / without.millis_at(q) - 1.0) * 100.0
    };
    println!(
        "shadow overhead: quotes p50 {:+.1}%, p99 {:+.1}%; orders p50 {:+.1}%, p99 {:+.1}%",
        overhead(&quotes_without, &quotes_with, 0.5),
        overhead(&quotes_without, &quotes_with, 0.99),
        overhead(&orders_without, &orders_with, 0.5),
        overhead(&orders_without, &orders_with, 0.99),
    );
    deployment.stop().await
}

/// Adds a run to the runs of its kind.
fn merge(into: &mut Option<Report>, run: Report) -> anyhow::Result<()> {
    match into {
        None => *into = Some(run),
        Some(total) => {
            total.sent += run.sent;
            total.elapsed += run.elapsed;
            total.latency.add(&run.latency)?;
            for (outcome, count) in run.outcomes {
                *total.outcomes.entry(outcome).or_default() += count;
            }
        }
    }
    Ok(())
}

/// An admin request with the bench's token, which must succeed.
async fn admin(
    target: SocketAddr,
    method: hyper::Method,
    path: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    let stream = tokio::net::TcpStream::connect(target).await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", target.to_string())
        .header("authorization", "Bearer bench")
        .header("content-type", "application/wasm")
        .body(Full::new(Bytes::from(bytes)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    ensure!(
        status.is_success(),
        "{path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}
