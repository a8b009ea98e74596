//! The `commerce` command line.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::{Application, config::Settings, db, demo, seed, telemetry};

/// A commerce backend whose business policy runs as WebAssembly components.
///
/// Without a subcommand, `commerce` serves (as `commerce serve`).
#[derive(Debug, Parser)]
#[command(name = "commerce", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and migrate the database if needed, then serve the API.
    Serve(Serve),
    /// Load synthetic products quickly, for benchmarks.
    Seed(Seed),
}

#[derive(Debug, Args)]
struct Serve {
    #[command(flatten)]
    settings: Settings,
    /// Load demo users, products and coupons when the database is empty.
    #[arg(long)]
    demo: bool,
}

#[derive(Debug, Args)]
struct Seed {
    /// How many products to add.
    #[arg(long)]
    products: u64,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/commerce"
    )]
    database_url: String,
}

/// Parses the command line, runs the command and reports a failure with its
/// whole chain of causes.
pub fn main() -> ExitCode {
    // A missing .env file is the normal case.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    telemetry::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Serve(serve)) => run_server(serve).await,
            None => run_server(cli.serve).await,
            Some(Command::Seed(seed)) => {
                let db = db::prepare(&seed.database_url, 4).await?;
                seed::products(&db, seed.products).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server(serve: Serve) -> anyhow::Result<()> {
    let app = Application::build(serve.settings).await?;
    if serve.demo {
        demo::load_if_empty(&app.state().db).await?;
    }
    app.run_until_stopped().await
}
