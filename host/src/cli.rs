//! The `commerce` command line.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;

use clap::{Args, Parser, Subcommand};

use crate::{
    Application,
    config::Settings,
    db, demo,
    policy::{Slot, authoring, replay, runner},
    seed, telemetry,
};

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
    /// Work with policy components locally, as the server would run them.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Make a plugin folder: the slot's function stubbed, typed bindings, a case, a README.
    New {
        /// The plugin's name: lowercase letters, digits and '-'.
        name: String,
        /// The slot it fills: pricing, coupon or order_rules.
        #[arg(long)]
        slot: Slot,
        /// The language: rust, ts (TypeScript) or py (Python).
        #[arg(long)]
        lang: authoring::Lang,
        /// The folder to create; defaults to plugins/<name>.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a plugin folder (Rust, TypeScript or Python) to target/plugins/<name>.wasm,
    /// installing the language's tools into target/tools/ on first use.
    Build {
        /// The plugin folder, e.g. plugins/pricing-bulk-ts.
        dir: PathBuf,
    },
    /// Run a component on an input: prints the output, fuel used, wall time and logs.
    Run {
        /// The component, e.g. target/plugins/pricing-bulk.wasm.
        component: PathBuf,
        /// The slot it fills: pricing, coupon or order_rules.
        #[arg(long)]
        slot: Slot,
        /// A case file ({"slot", "call", "input", "expected"}) or a bare input.
        #[arg(long)]
        input: PathBuf,
        /// The function to call; defaults to the case's, or the slot's first.
        #[arg(long)]
        call: Option<String>,
    },
    /// Say whether a component implements a slot's world, and why not.
    Check {
        component: PathBuf,
        #[arg(long)]
        slot: Slot,
    },
    /// Re-run the policy inputs recorded with each order through a candidate:
    /// how many orders it would change, by how much money, and the first ones.
    Replay {
        /// The slot the candidate would fill: pricing, coupon or order_rules.
        #[arg(long)]
        slot: Slot,
        /// The candidate component, e.g. target/plugins/pricing-bulk.wasm.
        #[arg(long)]
        component: PathBuf,
        /// Orders placed since: a duration back from now (24h, 30m, 7d) or an RFC 3339 time.
        #[arg(long, default_value = "24h", value_parser = replay::parse_since)]
        since: chrono::DateTime<chrono::Utc>,
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/commerce"
        )]
        database_url: String,
    },
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
            Some(Command::Policy(command)) => run_policy(command).await,
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

async fn run_policy(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::New {
            name,
            slot,
            lang,
            dir,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("plugins").join(&name));
            authoring::new(&authoring::NewPlugin {
                name: &name,
                slot,
                lang,
                dir: &dir,
            })?;
            println!(
                "made {} ({lang} {slot} policy); next: commerce policy build {}",
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        PolicyCommand::Build { dir } => {
            // Tools and compilers run for seconds to minutes: off the async workers.
            let built = tokio::task::spawn_blocking(move || authoring::build(&dir)).await??;
            println!(
                "built {}@{} -> {} ({:.1} MB) in {:.1} s",
                built.name,
                built.version,
                built.path.display(),
                built.bytes as f64 / 1e6,
                built.elapsed.as_secs_f64()
            );
            Ok(())
        }
        PolicyCommand::Check { component, slot } => {
            let bytes = std::fs::read(&component)
                .with_context(|| format!("cannot read {}", component.display()))?;
            let policy = runner::load(&bytes, slot)?;
            println!(
                "{} implements the {slot} slot (commerce:policy@{})",
                component.display(),
                policy.info.contract
            );
            Ok(())
        }
        PolicyCommand::Replay {
            slot,
            component,
            since,
            database_url,
        } => {
            let bytes = std::fs::read(&component)
                .with_context(|| format!("cannot read {}", component.display()))?;
            let candidate = runner::load(&bytes, slot)?;
            let db = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&database_url)
                .await
                .with_context(|| format!("cannot connect to {database_url}"))?;
            print!("{}", replay::replay(&db, candidate, since).await?);
            Ok(())
        }
        PolicyCommand::Run {
            component,
            slot,
            input,
            call,
        } => {
            let bytes = std::fs::read(&component)
                .with_context(|| format!("cannot read {}", component.display()))?;
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", input.display()))?;
            // A case file wraps the input; a bare input is the record itself.
            let case: Option<runner::Case> = serde_json::from_value(json.clone()).ok();
            let (function, input, expected) = match case {
                Some(case) => (call.unwrap_or(case.call), case.input, case.expected),
                None => (
                    call.unwrap_or_else(|| runner::functions(slot)[0].to_owned()),
                    json,
                    None,
                ),
            };
            let run = runner::run(&bytes, slot, &function, &input)?;
            println!("{}", serde_json::to_string_pretty(&run.output)?);
            println!(
                "fuel: {} instructions, time: {:.3} ms, contract: commerce:policy@{}",
                run.report.fuel,
                run.report.elapsed.as_secs_f64() * 1000.0,
                run.contract
            );
            for (level, message) in &run.report.logs {
                println!("log {level:?}: {message}");
            }
            match expected {
                Some(expected) if expected == run.output => {
                    println!("matches the expected output");
                    Ok(())
                }
                Some(expected) => anyhow::bail!(
                    "differs from the expected output:\n{}",
                    serde_json::to_string_pretty(&expected)?
                ),
                None => Ok(()),
            }
        }
    }
}
