//! `bench catalog`: the catalogue of 100,000 products (`commerce seed`):
//! pages with filters and sorts, product detail and popular products, on two
//! instances, against a bare HTTP endpoint and a plain indexed SELECT served
//! by the same kind of axum server, in the same run.

use std::{sync::Arc, time::Duration};

use anyhow::ensure;
use commerce::seed::CATEGORIES;
use tokio_util::sync::CancellationToken;

use crate::{
    ceiling,
    load::{self, Call, Shape},
    report::Row,
    servers::Deployment,
};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Products in the catalogue.
    #[arg(long, default_value_t = 100_000)]
    pub products: u64,
    /// Requests per run.
    #[arg(long, default_value_t = 100_000)]
    pub requests: usize,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    #[arg(long, default_value_t = 30)]
    pub max_seconds: u64,
}

const SORTS: &[&str] = &["newest", "price_asc", "price_desc", "name"];

/// The n-th catalogue query: a mix of categories, sorts, price ranges,
/// in-stock filters, name searches and pages, 2,000 distinct in all.
fn list_query(n: usize) -> String {
    let category = CATEGORIES[n % CATEGORIES.len()];
    let sort = SORTS[n / 10 % SORTS.len()];
    let page = n / 40 % 10;
    match n % 5 {
        0 => format!("/api/v1/products?sort={sort}&page={page}"),
        1 => format!("/api/v1/products?category={category}&sort={sort}&page={page}"),
        2 => format!(
            "/api/v1/products?category={category}&min_price=10000&max_price=100000&sort={sort}&page={page}"
        ),
        3 => format!("/api/v1/products?in_stock=true&category={category}&sort={sort}&page={page}"),
        _ => format!("/api/v1/products?name=item%20{}&sort={sort}", n % 50),
    }
}

pub async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    let deployment = Deployment::start(2, |_| {}).await?;
    let result = measure(&deployment, &args).await;
    deployment.stop().await?;
    result
}

async fn measure(deployment: &Deployment, args: &Args) -> anyhow::Result<Vec<Row>> {
    commerce::seed::products(&deployment.db, args.products).await?;
    let shape = Shape {
        connections: args.connections,
        requests: args.requests,
        max_time: Duration::from_secs(args.max_seconds),
    };
    let stop = CancellationToken::new();
    let ceilings = ceiling::start_with(stop.clone(), Some(deployment.db.clone())).await?;
    let bare = load::run(&ceilings, shape, |_| Call::get(ceiling::BARE)).await?;
    let select = load::run(&ceilings, shape, |n| {
        Call::get(format!("{}?page={}", ceiling::SELECT, n % 10))
    })
    .await?;
    stop.cancel();

    // Every one of the 2,000 queries reaches both instances a few times
    // first: the run measures the steady state, not the first reads.
    load::run(
        &deployment.addresses,
        Shape {
            requests: 8_000.min(args.requests),
            ..shape
        },
        list_query_call,
    )
    .await?;
    let list = load::run(&deployment.addresses, shape, list_query_call).await?;
    let products = i64::try_from(args.products)?;
    let detail = load::run(&deployment.addresses, shape, move |n| {
        Call::get(format!(
            "/api/v1/products/{}",
            (n as i64 * 7_919) % products + 1
        ))
    })
    .await?;
    let popular = load::run(&deployment.addresses, shape, |n| {
        Call::get(format!(
            "/api/v1/products/popular?days={}&limit=5",
            n % 3 + 1
        ))
    })
    .await?;
    for (name, report) in [("list", &list), ("detail", &detail), ("popular", &popular)] {
        ensure!(
            report.server_errors() == 0,
            "{name}: server errors {:?}",
            report.outcomes
        );
        ensure!(
            report.count("200") == report.sent,
            "{name}: not every answer was 200: {:?}",
            report.outcomes
        );
    }
    let absolute = |report: &load::Report| {
        format!(
            "{:.0} req/s with p99 {:.1} ms (target ≥ 10,000 req/s with p99 < 20 ms: {})",
            report.per_second(),
            report.millis_at(0.99),
            if report.per_second() >= 10_000.0 && report.millis_at(0.99) < 20.0 {
                "met"
            } else {
                "missed"
            }
        )
    };
    Ok(vec![
        Row::new("bare HTTP endpoint", &bare, "itself", bare.per_second()),
        Row::new(
            format!("catalogue list, {}k products", args.products / 1000),
            &list,
            "plain indexed SELECT",
            select.per_second(),
        )
        .note(absolute(&list)),
        Row::new(
            "product detail",
            &detail,
            "plain indexed SELECT",
            select.per_second(),
        ),
        Row::new(
            "popular products",
            &popular,
            "plain indexed SELECT",
            select.per_second(),
        ),
    ])
}

fn list_query_call(n: usize) -> Call {
    Call::get(list_query(n % 2_000))
}

/// Shared with the growth scenario.
pub fn list_call() -> Arc<dyn Fn(usize) -> Call + Send + Sync> {
    Arc::new(list_query_call)
}
