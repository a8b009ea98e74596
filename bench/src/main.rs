//! `bench`: load scenarios against two in-process `commerce` instances that
//! share a fresh database, each compared with a ceiling measured in the same
//! run by the same load generator. Loopback only; run one scenario at a
//! time on an otherwise quiet machine:
//!
//! ```sh
//! cargo run --release -p bench -- coupons
//! ```

mod ceiling;
mod coupons;
mod load;
mod servers;

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
        Scenario::Coupons(args) => coupons::run(args).await,
    }
}
