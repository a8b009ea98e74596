//! `bench`: load scenarios against two in-process `commerce` instances that
//! share a fresh database, each compared with a ceiling measured in the same
//! run by the same load generator. Loopback only; run one scenario at a
//! time on an otherwise quiet machine:
//!
//! ```sh
//! cargo run --release -p bench -- coupons
//! ```

/// The allocator the `commerce` binary uses, so that the in-process
/// instances run as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod all;
mod calls;
mod catalog;
mod catalog_misses;
mod ceiling;
mod coupons;
mod growth;
mod load;
mod orders;
mod pgbench;
mod plot;
mod policy;
mod polyglot;
mod report;
mod servers;
mod split;
mod swap;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Load scenarios against two in-process commerce instances"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// A burst of issue requests from distinct users for one limited coupon,
    /// with each issuance strategy.
    Coupons(coupons::Args),
    /// One policy call per slot, WASM against the same logic native, and
    /// where a call's time goes.
    Calls(calls::Args),
    /// Orders with WASM policies against the same logic native, and what a
    /// shadow costs quotes and orders.
    Policy(policy::Args),
    /// One pricing call in Rust, TypeScript and Python against native, and
    /// orders with the TypeScript pricing policy against native.
    Polyglot(polyglot::Args),
    /// Orders over many products and on one hot product, and payments,
    /// against pgbench running the same SQL.
    Orders(orders::Args),
    /// Catalogue pages, product detail and popular products over a seeded
    /// catalogue, against a bare endpoint and a plain indexed SELECT.
    Catalog(catalog::Args),
    /// Catalogue lists that each miss every cache (a new filter value per
    /// request), beside other clients reading product detail.
    CatalogMisses(catalog_misses::Args),
    /// Orders while the pricing policy is swapped every 100 ms.
    Swap(swap::Args),
    /// Catalogue throughput and p99 against connections and instances.
    Growth(growth::Args),
    /// Every scenario, then the table, bench/report.md and bench/report.svg.
    All(all::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The servers' own logs would drown the figures; warnings still show.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.scenario {
        Scenario::Coupons(args) => print(coupons::run(args).await?),
        Scenario::Orders(args) => print(orders::run(args).await?),
        Scenario::Catalog(args) => print(catalog::run(args).await?),
        Scenario::CatalogMisses(args) => print(catalog_misses::run(args).await?),
        Scenario::Swap(args) => print(swap::run(args).await?),
        Scenario::Growth(args) => {
            if args.cluster {
                let curves = growth::run_on_cluster(args).await?;
                print!("{}{}", growth::markdown(&curves), growth::ratios(&curves));
            } else {
                print!("{}", growth::markdown(&growth::run(args).await?));
            }
            Ok(())
        }
        Scenario::All(args) => all::run(args).await,
        Scenario::Calls(args) => print(calls::run(args).await?),
        Scenario::Policy(args) => print(policy::run(args).await?),
        Scenario::Polyglot(args) => print(polyglot::run(args).await?),
    }
}

fn print(rows: Vec<report::Row>) -> anyhow::Result<()> {
    println!("{}", report::table(&rows));
    for row in rows.iter().filter(|row| !row.note.is_empty()) {
        println!("- {}: {}", row.scenario, row.note);
    }
    Ok(())
}
