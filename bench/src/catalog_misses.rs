//! `bench catalog-misses`: catalogue queries that miss every cache, as a
//! client that changes one filter value per request sends them
//! (`name=item&size=100&min_price=<new each time>`), beside other clients
//! reading product detail at a steady pace.
//!
//! Two figures matter: how many of those lists the deployment serves, and
//! how much slower product detail gets for everyone else meanwhile. Detail
//! is measured alone first, with the same pace, as its ceiling.

use std::time::Duration;

use anyhow::ensure;
use tokio_util::sync::CancellationToken;

use crate::{
    ceiling,
    load::{self, Call, Report, Shape},
    report::Row,
    servers::Deployment,
};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Products in the catalogue.
    #[arg(long, default_value_t = 100_000)]
    pub products: u64,
    /// Connections sending a filter no request sent before.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Connections of other clients, each reading one product's detail
    /// every 10 ms.
    #[arg(long, default_value_t = 4)]
    pub detail_connections: usize,
    /// Seconds each measurement lasts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// What the lists must serve, and what detail may cost meanwhile.
const LIST_GOAL_PER_SECOND: f64 = 1_000.0;
const DETAIL_GOAL_P99_MS: f64 = 20.0;
/// How often each detail connection sends.
const DETAIL_PACE: Duration = Duration::from_millis(10);

const SORTS: &[&str] = &["newest", "price_asc", "price_desc", "name"];
/// The seeded prices run from 1,000 to 250,500 won.
const PRICES: usize = 250_001;

/// The n-th list: a name every seeded product matches, the largest page,
/// and a minimum price no earlier request used (7,919 and 250,001 share no
/// factor, so the first 250,001 requests each get their own), in turn with
/// every sort.
fn busting_query(n: usize) -> String {
    let min_price = n * 7_919 % PRICES;
    let sort = SORTS[n % SORTS.len()];
    format!("/api/v1/products?name=item&size=100&min_price={min_price}&sort={sort}")
}

pub async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    let deployment = Deployment::start(2, |_| {}).await?;
    let result = measure(&deployment, &args).await;
    deployment.stop().await?;
    result
}

async fn measure(deployment: &Deployment, args: &Args) -> anyhow::Result<Vec<Row>> {
    commerce::seed::products(&deployment.db, args.products).await?;
    let products = i64::try_from(args.products)?;
    let lasting = Duration::from_secs(args.seconds);
    let for_a_while = |connections| Shape {
        connections,
        requests: usize::MAX,
        max_time: lasting,
    };

    let stop = CancellationToken::new();
    let ceilings = ceiling::start_with(stop.clone(), Some(deployment.db.clone())).await?;
    let select = load::run(&ceilings, for_a_while(args.connections), |n| {
        Call::get(format!("{}?page={}", ceiling::SELECT, n % 10))
    })
    .await?;
    stop.cancel();

    let detail = |offset: usize| {
        let addresses = deployment.addresses.clone();
        let shape = for_a_while(args.detail_connections);
        async move {
            load::run_paced(&addresses, shape, Some(DETAIL_PACE), move |n| {
                let id = ((n + offset) as i64 * 7_919) % products + 1;
                Call::get(format!("/api/v1/products/{id}"))
            })
            .await
        }
    };
    // Both instances open their connections first.
    load::run(
        &deployment.addresses,
        Shape {
            connections: args.connections,
            requests: 2_000,
            max_time: lasting,
        },
        |n| Call::get(format!("/api/v1/products/{}", n + 1)),
    )
    .await?;
    let alone = detail(0).await?;
    let busting = load::run(&deployment.addresses, for_a_while(args.connections), |n| {
        Call::get(busting_query(n))
    });
    let (lists, beside) = tokio::try_join!(busting, detail(1_000_000))?;

    for (name, report) in [("detail alone", &alone), ("detail beside", &beside)] {
        ensure!(
            report.count("200") == report.sent,
            "{name}: not every answer was 200: {:?}",
            report.outcomes
        );
    }
    // A list may be refused as too costly to run now (503), never fail.
    let refused = lists.count("503 SERVICE_UNAVAILABLE");
    ensure!(
        lists.count("200") + refused == lists.sent,
        "lists: answers other than 200 and 503 SERVICE_UNAVAILABLE: {:?}",
        lists.outcomes
    );

    let served = lists.count("200") as f64 / lists.elapsed.as_secs_f64();
    let [alone_p50, alone_p99] = quantiles(&alone);
    let [beside_p50, beside_p99] = quantiles(&beside);
    let thousands = args.products / 1_000;
    Ok(vec![
        Row::new(
            format!("catalogue list, a new filter per request, {thousands}k products"),
            &lists,
            "plain indexed SELECT",
            select.per_second(),
        )
        .goal(
            format!("≥ {LIST_GOAL_PER_SECOND:.0} req/s served"),
            served >= LIST_GOAL_PER_SECOND,
        )
        .note(format!(
            "{} connections, each request `name=item&size=100&min_price=<new>` in turn with \
             each sort; {served:.0} req/s answered 200, {refused} refused with 503",
            args.connections
        )),
        Row::new(
            "product detail beside those lists",
            &beside,
            "the same detail load alone",
            alone.per_second(),
        )
        .goal(
            format!("p99 ≤ {DETAIL_GOAL_P99_MS:.0} ms"),
            beside_p99 <= DETAIL_GOAL_P99_MS,
        )
        .note(format!(
            "{} connections, one request per {} ms each; alone p50 {alone_p50:.2} ms, p99 \
             {alone_p99:.2} ms; beside the lists p50 {beside_p50:.2} ms, p99 {beside_p99:.2} ms",
            args.detail_connections,
            DETAIL_PACE.as_millis()
        )),
    ])
}

fn quantiles(report: &Report) -> [f64; 2] {
    [report.millis_at(0.5), report.millis_at(0.99)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_of_a_run_has_its_own_filter() {
        let queries: std::collections::HashSet<String> = (0..PRICES).map(busting_query).collect();
        assert_eq!(queries.len(), PRICES);
    }
}
