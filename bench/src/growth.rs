//! `bench growth`: how the catalogue list's throughput and p99 grow with
//! concurrency (16 to 1,024 connections, two instances) and with the number
//! of instances (1, 2, 3, at 64 connections).
//!
//! `--cluster` runs the instances (1 to 4 by default) on a Redis Cluster of
//! three masters and three replicas and through PgBouncer in transaction
//! mode in front of the machine's PostgreSQL, as docs/scaling.md describes,
//! and reports each instance count as a ratio of one instance's throughput.
//! It needs PgBouncer 1.21 or later (`scripts/install-pgbouncer.sh`).

use std::time::Duration;

use anyhow::ensure;

use commerce_tests::lab::{PgBouncer, RedisCluster};

use crate::{
    catalog,
    load::{self, Report, Shape},
    servers::Deployment,
};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    pub products: u64,
    /// Requests per point.
    #[arg(long, default_value_t = 30_000)]
    pub requests: usize,
    #[arg(long, value_delimiter = ',', default_values_t = [16, 64, 256, 1024])]
    pub connections: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 3])]
    pub instances: Vec<usize>,
    #[arg(long, default_value_t = 20)]
    pub max_seconds: u64,
    /// On a Redis Cluster and through PgBouncer (instances 1 to 4 unless
    /// `--instances` says otherwise).
    #[arg(long)]
    pub cluster: bool,
}

/// One point of a growth curve.
pub struct Point {
    pub x: usize,
    pub per_second: f64,
    pub p50: f64,
    pub p99: f64,
}

impl Point {
    fn of(x: usize, report: &Report) -> Self {
        Self {
            x,
            per_second: report.per_second(),
            p50: report.millis_at(0.5),
            p99: report.millis_at(0.99),
        }
    }
}

pub struct Curves {
    pub by_connections: Vec<Point>,
    pub by_instances: Vec<Point>,
}

pub async fn run(args: Args) -> anyhow::Result<Curves> {
    let most = args.instances.iter().copied().max().unwrap_or(1).max(2);
    let deployment = Deployment::start(most, |_| {}).await?;
    let result = measure(&deployment, &args).await;
    deployment.stop().await?;
    result
}

/// The machine's PostgreSQL, which PgBouncer fronts.
const POSTGRES_PORT: u16 = 5432;

/// `bench growth --cluster`: the same curves on a Redis Cluster and through
/// PgBouncer.
pub async fn run_on_cluster(mut args: Args) -> anyhow::Result<Curves> {
    if args.instances == [1, 2, 3] {
        args.instances = vec![1, 2, 3, 4];
    }
    let dir = std::env::temp_dir().join(format!(
        "commerce-bench-cluster-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let cluster = RedisCluster::start(&dir);
    let pgbouncer = PgBouncer::start(&dir, POSTGRES_PORT);
    let most = args.instances.iter().copied().max().unwrap_or(1).max(2);
    let (seeds, bouncer) = (cluster.seeds(), format!("127.0.0.1:{}", pgbouncer.port));
    let deployment = Deployment::start(most, |settings| {
        settings.redis_cluster_nodes = seeds.split(',').map(str::to_owned).collect();
        let direct = settings.database_url.clone();
        settings.database_url = direct.replace(&format!("127.0.0.1:{POSTGRES_PORT}"), &bouncer);
        settings.database_direct_url = Some(direct);
    })
    .await?;
    let result = measure(&deployment, &args).await;
    deployment.stop().await?;
    drop((cluster, pgbouncer));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(deployment: &Deployment, args: &Args) -> anyhow::Result<Curves> {
    commerce::seed::products(&deployment.db, args.products).await?;
    let call = catalog::list_call();
    let shape = |connections| Shape {
        connections,
        requests: args.requests,
        max_time: Duration::from_secs(args.max_seconds),
    };
    let two = &deployment.addresses[..2];
    // Each point is measured after a run of its own that fills the caches
    // of the instances it uses, so that a point measures the steady state.
    let warm_up = |targets: &[std::net::SocketAddr], connections| {
        let call = call.clone();
        let targets = targets.to_vec();
        async move {
            let shape = Shape {
                requests: args.requests / 4,
                ..shape(connections)
            };
            load::run(&targets, shape, move |n| call(n)).await
        }
    };
    // Instances first: the runs at hundreds of connections leave the
    // machine slower for a while after them.
    let mut by_instances = Vec::new();
    for &instances in &args.instances {
        let call = call.clone();
        let targets = &deployment.addresses[..instances.min(deployment.addresses.len())];
        warm_up(targets, 64).await?;
        let report = load::run(targets, shape(64), move |n| call(n)).await?;
        ensure!(
            report.server_errors() == 0,
            "server errors on {instances} instances: {:?}",
            report.outcomes
        );
        by_instances.push(Point::of(instances, &report));
    }
    let mut by_connections = Vec::new();
    for &connections in &args.connections {
        warm_up(two, connections).await?;
        let call = call.clone();
        let report = load::run(two, shape(connections), move |n| call(n)).await?;
        ensure!(
            report.server_errors() == 0,
            "server errors at {connections} connections: {:?}",
            report.outcomes
        );
        by_connections.push(Point::of(connections, &report));
    }
    Ok(Curves {
        by_connections,
        by_instances,
    })
}

/// The curves as markdown tables.
pub fn markdown(curves: &Curves) -> String {
    let mut out = String::from(
        "\n## Growth: catalogue list\n\n| connections (2 instances) | req/s | p50 ms | p99 ms |\n|---|---|---|---|\n",
    );
    for p in &curves.by_connections {
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} |\n",
            p.x, p.per_second, p.p50, p.p99
        ));
    }
    out.push_str("\n| instances (64 connections) | req/s | p50 ms | p99 ms |\n|---|---|---|---|\n");
    for p in &curves.by_instances {
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} |\n",
            p.x, p.per_second, p.p50, p.p99
        ));
    }
    out
}

/// The instance curve as ratios of one instance's throughput, for
/// `--cluster`.
pub fn ratios(curves: &Curves) -> String {
    let mut out = String::from(
        "\n## Growth on a Redis Cluster through PgBouncer: catalogue list\n\n| instances (64 connections) | req/s | x one instance | p50 ms | p99 ms |\n|---|---|---|---|---|\n",
    );
    let one = curves
        .by_instances
        .first()
        .map_or(1.0, |p| p.per_second.max(1.0));
    for p in &curves.by_instances {
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} |\n",
            p.x,
            p.per_second,
            p.per_second / one,
            p.p50,
            p.p99
        ));
    }
    out
}
