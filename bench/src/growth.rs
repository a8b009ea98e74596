//! `bench growth`: how the catalogue list's throughput and p99 grow with
//! concurrency (16 to 1,024 connections, two instances) and with the number
//! of instances (1, 2, 3, at 64 connections).

use std::time::Duration;

use anyhow::ensure;

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
