//! `bench orders`: orders spread over 1,000 products, orders on one hot
//! product, and payments, on two instances; each compared with pgbench
//! running the same SQL in the same run. Stock is checked afterwards: for
//! every product, stock + units in live orders = initial stock.

use std::{sync::Arc, time::Duration};

use anyhow::ensure;

use crate::{
    load::{self, Call, Shape},
    pgbench,
    report::Row,
    servers::Deployment,
};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Requests per run.
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// Products the spread run orders from.
    #[arg(long, default_value_t = 1_000)]
    pub products: usize,
    /// Connections of the load generator, spread over the two instances.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Time bound of one run (and of each pgbench ceiling), in seconds.
    #[arg(long, default_value_t = 30)]
    pub max_seconds: u64,
}

const INITIAL_STOCK: i32 = 10_000_000;
const USERS: usize = 2_000;

pub async fn run(args: Args) -> anyhow::Result<Vec<Row>> {
    let deployment = Deployment::start(2, |_| {}).await?;
    let result = measure(&deployment, &args).await;
    deployment.stop().await?;
    result
}

async fn measure(deployment: &Deployment, args: &Args) -> anyhow::Result<Vec<Row>> {
    let db = &deployment.db;
    let products: Vec<i64> = sqlx::query_scalar(
        "insert into products (name, category, price, stock)
         select 'Item ' || g, 'bench', 1000, $2 from generate_series(1, $1) g returning id",
    )
    .bind(i64::try_from(args.products)?)
    .bind(INITIAL_STOCK)
    .fetch_all(db)
    .await?;
    let users = deployment.users(USERS).await?;
    sqlx::query(
        "with charged as (update point_wallets set balance = 50000000, version = 1 returning user_id)
         insert into point_history (user_id, kind, amount, balance_after)
         select user_id, 'charge', 50000000, 50000000 from charged",
    )
    .execute(db)
    .await?;
    let (products, users) = (Arc::new(products), Arc::new(users));
    let shape = Shape {
        connections: args.connections,
        requests: args.requests,
        max_time: Duration::from_secs(args.max_seconds),
    };
    let clients = 32;
    let database = database_name(db).await?;
    let variables = [
        ("products", args.products.to_string()),
        ("users", USERS.to_string()),
    ];

    let order = |spread: bool| {
        let (products, users) = (products.clone(), users.clone());
        move |n: usize| {
            let product = if spread {
                products[n % products.len()]
            } else {
                products[0]
            };
            Call::post(
                "/api/v1/orders",
                format!(
                    r#"{{"user_id":{},"items":[{{"product_id":{product},"quantity":1}}]}}"#,
                    users[n % users.len()]
                ),
            )
        }
    };
    // Warm the connections, the statement caches and the policies.
    load::run(
        &deployment.addresses,
        Shape {
            requests: 500,
            ..shape
        },
        order(true),
    )
    .await?;

    let mut rows = Vec::new();
    let ceiling = pgbench::run(
        &database,
        "order.pgbench",
        clients,
        args.max_seconds.min(15),
        &variables,
    )
    .await?;
    let spread = load::run(&deployment.addresses, shape, order(true)).await?;
    rows.push(
        Row::new(
            format!("orders over {} products", args.products),
            &spread,
            "pgbench: the order's SQL",
            ceiling.per_second,
        )
        .target(0.9)
        .note(format!(
            "pgbench's average latency {:.2} ms at {clients} clients",
            ceiling.latency_ms
        )),
    );

    let hot_variables = [("products", "1".to_owned()), ("users", USERS.to_string())];
    let hot_ceiling = pgbench::run(
        &database,
        "order.pgbench",
        clients,
        args.max_seconds.min(15),
        &hot_variables,
    )
    .await?;
    let hot = load::run(&deployment.addresses, shape, order(false)).await?;
    rows.push(
        Row::new(
            "orders on one hot product",
            &hot,
            "pgbench: the order's SQL, one product",
            hot_ceiling.per_second,
        )
        .target(0.5)
        .note(format!(
            "every order waits for the one product row's lock; pgbench's average latency {:.2} ms",
            hot_ceiling.latency_ms
        )),
    );

    // Pay orders the runs placed, each once.
    let pending: Vec<(i64, i64)> = sqlx::query_as(
        "select id, user_id from orders where status = 'pending_payment' and policy_sha256 <> '{}'::jsonb
          order by id limit $1",
    )
    .bind(i64::try_from(args.requests)?)
    .fetch_all(db)
    .await?;
    let orders_placed = pending.len();
    let pending = Arc::new(pending);
    let pay = {
        let pending = pending.clone();
        move |n: usize| {
            let (order, user) = pending[n % pending.len()];
            Call::post(
                "/api/v1/payments",
                format!(r#"{{"order_id":{order},"user_id":{user}}}"#),
            )
        }
    };
    let payments = load::run(
        &deployment.addresses,
        Shape {
            requests: orders_placed,
            ..shape
        },
        pay,
    )
    .await?;
    // After the payments: the script writes payment rows of its own.
    let pay_ceiling = pgbench::run(
        &database,
        "payment.pgbench",
        clients,
        args.max_seconds.min(15),
        &[
            ("orders", orders_placed.to_string()),
            ("users", USERS.to_string()),
        ],
    )
    .await?;

    rows.push(
        Row::new(
            "payments",
            &payments,
            "pgbench: the payment's SQL",
            pay_ceiling.per_second,
        )
        .target(0.5)
        .note(format!("outcomes: {:?}", payments.outcomes)),
    );

    for (name, report) in [("spread", &spread), ("hot", &hot)] {
        ensure!(
            report.server_errors() == 0,
            "{name}: server errors {:?}",
            report.outcomes
        );
    }
    ensure!(
        payments.server_errors() == 0,
        "payments: server errors {:?}",
        payments.outcomes
    );
    assert_stock_conserved(db, INITIAL_STOCK).await?;
    Ok(rows)
}

/// The database the deployment runs on, for pgbench.
async fn database_name(db: &sqlx::PgPool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("select current_database()")
        .fetch_one(db)
        .await?)
}

/// For every product: stock + units in live orders = initial stock.
pub async fn assert_stock_conserved(db: &sqlx::PgPool, initial: i32) -> anyhow::Result<()> {
    let broken: i64 = sqlx::query_scalar(
        "select count(*) from products p
          where p.stock + coalesce((select sum(l.quantity) from order_lines l join orders o on o.id = l.order_id
                                     where l.product_id = p.id and o.status in ('pending_payment', 'paid')), 0) <> $1",
    )
    .bind(initial)
    .fetch_one(db)
    .await?;
    ensure!(broken == 0, "stock not conserved for {broken} products");
    Ok(())
}
