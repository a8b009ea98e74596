//! `bench swap`: orders on two instances while the pricing policy is
//! swapped every 100 ms through one of them (pricing-bulk in, rolled back
//! out), against the same load without swaps in the same run. Every answer
//! must be a 201 and every order's total the one its recorded policy gives.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::ensure;

use crate::{
    load::{self, Call, Shape},
    report::Row,
    servers::Deployment,
};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 5_000)]
    pub requests: usize,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    #[arg(long, default_value_t = 30)]
    pub max_seconds: u64,
    /// Time between two swaps, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub every_ms: u64,
}

pub async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    let deployment = Deployment::start(2, |_| {}).await?;
    let result = measure(&deployment, &args).await;
    deployment.stop().await?;
    result
}

async fn measure(deployment: &Deployment, args: &Args) -> anyhow::Result<Vec<Row>> {
    let products: Vec<i64> = sqlx::query_scalar(
        "insert into products (name, category, price, stock)
         select 'Item ' || g, 'bench', 1000, 10000000 from generate_series(1, 100) g returning id",
    )
    .fetch_all(&deployment.db)
    .await?;
    let users = Arc::new(deployment.users(1_000).await?);
    let products = Arc::new(products);
    let order = move |n: usize| {
        Call::post(
            "/api/v1/orders",
            format!(
                r#"{{"user_id":{},"items":[{{"product_id":{},"quantity":10}}]}}"#,
                users[n % users.len()],
                products[n % products.len()]
            ),
        )
    };
    let shape = Shape {
        connections: args.connections,
        requests: args.requests,
        max_time: Duration::from_secs(args.max_seconds),
    };
    let order = Arc::new(order);
    // Connections, statement caches and policies warm before either run.
    {
        let order = order.clone();
        let warm_up = Shape {
            requests: args.requests / 5,
            ..shape
        };
        load::run(&deployment.addresses, warm_up, move |n| order(n)).await?;
    }
    let steady = {
        let order = order.clone();
        load::run(&deployment.addresses, shape, move |n| order(n)).await?
    };

    let swapping = Arc::new(AtomicBool::new(true));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (swapping, swaps) = (swapping.clone(), swaps.clone());
        let admin = format!("http://{}", deployment.addresses[0]);
        let bulk =
            std::fs::read(crate::servers::repository().join("target/plugins/pricing-bulk.wasm"))?;
        let every = Duration::from_millis(args.every_ms);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut failures = 0;
            while swapping.load(Ordering::Relaxed) {
                let n = swaps.fetch_add(1, Ordering::Relaxed);
                let request = if n % 2 == 0 {
                    client
                        .put(format!("{admin}/api/v1/admin/policies/pricing"))
                        .body(bulk.clone())
                } else {
                    client.post(format!("{admin}/api/v1/admin/policies/pricing/rollback"))
                };
                let ok = request
                    .bearer_auth("bench")
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if !ok {
                    failures += 1;
                }
                tokio::time::sleep(every).await;
            }
            failures
        })
    };
    let swapped = {
        let order = order.clone();
        load::run(&deployment.addresses, shape, move |n| order(n)).await?
    };
    swapping.store(false, Ordering::Relaxed);
    let failed_swaps = swapper.await?;
    let swaps = swaps.load(Ordering::Relaxed);

    ensure!(failed_swaps == 0, "{failed_swaps} of {swaps} swaps failed");
    ensure!(
        swapped.count("201") == swapped.sent,
        "not every order was placed: {:?}",
        swapped.outcomes
    );
    // Every order's total is what the policy it recorded gives: 10 units of
    // 1,000 won, 10% off under pricing-bulk.
    let wrong: i64 = sqlx::query_scalar(
        "select count(*) from orders
          where not ((pricing_policy like 'pricing-standard@%' and total = 10000)
                  or (pricing_policy like 'pricing-bulk@%' and total = 9000))",
    )
    .fetch_one(&deployment.db)
    .await?;
    ensure!(
        wrong == 0,
        "{wrong} orders do not match the policy they record"
    );
    let by_bulk: i64 = sqlx::query_scalar(
        "select count(*) from orders where pricing_policy like 'pricing-bulk@%'",
    )
    .fetch_one(&deployment.db)
    .await?;
    Ok(vec![
        Row::new(format!("orders during {swaps} policy swaps"), &swapped, "the same orders without swaps", steady.per_second())
            .target(0.9)
            .note(format!(
                "{swaps} swaps every {} ms, none failed; {} orders, all 201, {by_bulk} priced by pricing-bulk; every total matches its recorded policy",
                args.every_ms, swapped.sent
            )),
    ])
}
