//! `bench policy`: what running business policy as WebAssembly costs an
//! order (one call alone is `bench calls`).
//!
//! 1. The order path: orders on two instances serving the standard
//!    components (`dev`) against two serving the same logic natively
//!    (`native`), in alternating rounds; judged as a ratio of the native
//!    throughput, overall and round by round. Goal: at least 97% in all.
//! 2. The cost of a shadow: quotes and orders on one instance, without and
//!    with `pricing-bulk` shadowing the pricing slot, same load, in
//!    alternating rounds so that a machine shared with other work drifts
//!    into both alike.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use commerce::policy::{
    bindings::{
        ApplyInput, CouponTerms, DiscountKind, Line, OrderInput, PricedLine, PricingInput,
        UserFacts,
    },
    call::{Call, Output},
    native::Native,
};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes, client::conn::http1};
use hyper_util::rt::TokioIo;

use crate::{
    load::{self, Report, Shape},
    report::Row,
    servers::Deployment,
};

#[derive(Debug, clap::Args)]
pub struct Args {
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
    /// Orders per round of the order path comparison, for each of WASM and
    /// native.
    #[arg(long, default_value_t = 4_000)]
    pub orders: usize,
    /// Connections of the order path comparison, spread over two instances.
    #[arg(long, default_value_t = 64)]
    pub order_connections: usize,
}

/// Runs all three; the order path comparison is the report's row.
pub async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    let row = order_path(&args).await?;
    shadow(&args).await?;
    Ok(vec![row])
}

/// Products and users of a deployment that takes orders: products with
/// stock that never runs out, users with their wallets.
pub(crate) async fn stock(
    deployment: &Deployment,
    products: usize,
    users: usize,
) -> anyhow::Result<Cart> {
    let products: Vec<i64> = sqlx::query_scalar(
        "insert into products (name, category, price, stock)
         select 'product ' || g, 'bench', 1000 + g * 100, 10000000
           from generate_series(1, $1) g
         returning id",
    )
    .bind(i64::try_from(products)?)
    .fetch_all(&deployment.db)
    .await?;
    let users = deployment.users(users).await?;
    Ok(Cart {
        products: Arc::new(products),
        users: Arc::new(users),
    })
}

/// Carts of one to three lines; every fourth has a line of ten units, so
/// that `pricing-bulk` diverges from `pricing-standard` on a share of them.
#[derive(Clone)]
pub(crate) struct Cart {
    products: Arc<Vec<i64>>,
    users: Arc<Vec<i64>>,
}

impl Cart {
    fn body(&self, n: usize) -> String {
        let products = &self.products;
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
            self.users[n % self.users.len()],
            items.join(",")
        )
    }

    pub(crate) fn order(&self) -> impl Fn(usize) -> load::Call + Send + Sync + Clone + 'static {
        let cart = self.clone();
        move |n| load::Call::post("/api/v1/orders", cart.body(n))
    }
}

/// Orders with the standard components against the same orders with the
/// native policies, each on a two-instance deployment of its own.
async fn order_path(args: &Args) -> anyhow::Result<Row> {
    println!(
        "order path: {} orders per round and kind, {} rounds, {} connections over two \
         instances; standard components (dev) against native policies (native)",
        args.orders, args.rounds, args.order_connections
    );
    let wasm = Deployment::start(2, |_| {}).await?;
    let native = Deployment::start(2, |settings| {
        settings.environment = "native".to_owned();
    })
    .await?;
    let measured = async {
        let ([with_wasm, with_native], rounds) = alternate_orders(
            [
                ("WASM policies", &wasm, "pricing-standard@1.0.0"),
                ("native policies", &native, "pricing-standard@native"),
            ],
            Shape {
                connections: args.order_connections,
                requests: args.orders,
                max_time: Duration::from_secs(args.max_seconds),
            },
            args.rounds,
        )
        .await?;
        println!(
            "{:<24} {:>9} {:>9} {:>9}",
            "all rounds", "req/s", "p50 ms", "p99 ms"
        );
        for (name, report) in [("WASM", &with_wasm), ("native", &with_native)] {
            println!(
                "{:<24} {:>9.0} {:>9.2} {:>9.2}",
                format!("orders, {name} policies"),
                report.per_second(),
                report.millis_at(0.5),
                report.millis_at(0.99),
            );
        }
        Ok(Row::new(
            "orders, WASM policies",
            &with_wasm,
            "the same orders, native policies",
            with_native.per_second(),
        )
        .target(0.97)
        .note(format!(
            "{} rounds of {} orders each, alternating, round by round {}; native p50 {:.2} ms, \
             p99 {:.2} ms; an order makes two or three policy calls",
            args.rounds,
            args.orders,
            percents(&rounds),
            with_native.millis_at(0.5),
            with_native.millis_at(0.99),
        )))
    }
    .await;
    wasm.stop().await?;
    native.stop().await?;
    measured
}

/// The repository's `target/plugins/<name>.wasm`.
pub(crate) fn component(name: &str) -> anyhow::Result<Vec<u8>> {
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

pub(crate) fn nanos() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

pub(crate) fn elapsed_nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The call answered by the native policy of its slot, on an input cloned
/// as a call hands it over.
pub(crate) fn native_call(native: Native, call: &Call) -> Output {
    native.answer(&call.clone())
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

pub(crate) fn pricing_input() -> PricingInput {
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

pub(crate) fn apply_input() -> ApplyInput {
    ApplyInput {
        lines: priced(),
        subtotal: 24_500,
        user: user(),
        coupon: terms(),
        now: 1_768_435_200,
        config: Vec::new(),
    }
}

pub(crate) fn order_input() -> OrderInput {
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
    let cart = stock(&deployment, 20, 100).await?;
    let target = deployment.addresses[0];
    let quote = {
        let cart = cart.clone();
        move |n: usize| load::Call::post("/api/v1/quotes", cart.body(n))
    };
    let order = cart.order();
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
pub(crate) fn merge(into: &mut Option<Report>, run: Report) -> anyhow::Result<()> {
    match into {
        None => *into = Some(run),
        Some(total) => total.absorb(run)?,
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

/// `[0.97, 1.01]` as `97%, 101%`.
pub(crate) fn percents(ratios: &[f64]) -> String {
    let percents: Vec<String> = ratios
        .iter()
        .map(|ratio| format!("{:.0}%", ratio * 100.0))
        .collect();
    percents.join(", ")
}

/// Orders on two deployments in alternating rounds after a warm-up each:
/// both reports and each round's ratio of the first's throughput to the
/// second's, once every order was answered 201 and each deployment's
/// orders were all priced by the pricing policy `label` names.
pub(crate) async fn alternate_orders(
    deployments: [(&str, &Deployment, &str); 2],
    shape: Shape,
    rounds: usize,
) -> anyhow::Result<([Report; 2], Vec<f64>)> {
    let warm_up = Shape {
        requests: shape.requests / 5,
        ..shape
    };
    let mut orders = Vec::new();
    for (_, deployment, _) in deployments {
        let order = stock(deployment, 1_000, 2_000).await?.order();
        load::run(&deployment.addresses, warm_up, order.clone()).await?;
        orders.push(order);
    }
    let mut runs: [Option<Report>; 2] = [None, None];
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let mut per_second = [0.0; 2];
        for (at, (_, deployment, _)) in deployments.into_iter().enumerate() {
            let report = load::run(&deployment.addresses, shape, orders[at].clone()).await?;
            per_second[at] = report.per_second();
            merge(&mut runs[at], report)?;
        }
        ratios.push(per_second[0] / per_second[1].max(f64::MIN_POSITIVE));
    }
    let [Some(first), Some(second)] = runs else {
        anyhow::bail!("no rounds ran");
    };
    for ((name, deployment, label), report) in deployments.into_iter().zip([&first, &second]) {
        ensure!(
            report.count("201") == report.sent,
            "orders with {name}: {:?}",
            report.outcomes
        );
        let labels: Vec<String> = sqlx::query_scalar("select distinct pricing_policy from orders")
            .fetch_all(&deployment.db)
            .await?;
        ensure!(
            labels == [label],
            "orders with {name} were priced by {labels:?}"
        );
    }
    Ok(([first, second], ratios))
}
