//! The `commerce` command line, with the rule authors' tools (`policy new`,
//! `policy build`) that it alone uses.

pub mod authoring;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;

use clap::{Args, Parser, Subcommand};

use crate::{
    Application,
    config::Settings,
    db, demo, identity,
    policy::{LoadedPolicy, Slot, metadata, replay, runner},
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
    Serve(Box<Serve>),
    /// Load synthetic products quickly, for benchmarks.
    Seed(Seed),
    /// Print an HS256 user token signed with JWT_SECRET, for development.
    Token(Token),
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
    /// Run a component on a case, a bare input, or every case of a folder:
    /// prints the output, fuel used, wall time and logs; for a folder, a
    /// pass/fail table. Fails when an output differs from the expected one.
    Run {
        /// The component, e.g. target/plugins/pricing-bulk.wasm.
        component: PathBuf,
        /// A case file ({"slot", "call", "input", "expected"}), a bare input,
        /// or a folder of case files (e.g. plugins/pricing-bulk/cases).
        #[arg(long)]
        input: PathBuf,
        /// The slot it fills; by default the case's, or the one the
        /// component's exports fill.
        #[arg(long)]
        slot: Option<Slot>,
        /// The function to call; defaults to the case's, or the slot's first.
        #[arg(long)]
        call: Option<String>,
        /// Run with this configuration instead of the case's (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// Say whether a component fills a slot (and why not), and print the
    /// configuration keys it declares; with --config, check a configuration
    /// against them.
    Check {
        component: PathBuf,
        /// The slot to check; by default the one its exports fill.
        #[arg(long)]
        slot: Option<Slot>,
        /// A configuration to validate against the declared keys (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
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
        /// Run the candidate with this configuration instead of each order's
        /// recorded one (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
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
struct Token {
    /// The user the token speaks for (its `sub`).
    #[arg(long)]
    user: i64,
    /// Give the token the `admin` role.
    #[arg(long)]
    admin: bool,
    /// How long the token is valid: 1h, 30m, 7d, ...
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
    #[command(flatten)]
    signer: identity::Signer,
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
            Some(Command::Serve(serve)) => run_server(*serve).await,
            None => run_server(cli.serve).await,
            Some(Command::Policy(command)) => run_policy(command).await,
            Some(Command::Token(token)) => {
                println!(
                    "{}",
                    token.signer.issue(token.user, token.admin, token.ttl)?
                );
                Ok(())
            }
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
    let signer = identity::Signer::from_settings(&serve.settings);
    let app = Application::build(serve.settings).await?;
    if serve.demo {
        demo::load_if_empty(app.state()).await?;
        if let Some(signer) = signer {
            demo::print_tokens(app.state(), &signer).await?;
        }
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
        PolicyCommand::Check {
            component,
            slot,
            config,
        } => check_policy(&component, slot, &config),
        PolicyCommand::Replay {
            slot,
            component,
            config,
            since,
            database_url,
        } => {
            let bytes = read_component(&component)?;
            let config = (!config.is_empty())
                .then(|| metadata::from_pairs(&config))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let candidate = runner::load(&bytes, slot)?;
            if let Some(config) = &config {
                metadata::validate(candidate.info.config_keys.as_deref(), config)
                    .map_err(anyhow::Error::msg)?;
            }
            let db = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&database_url)
                .await
                .with_context(|| format!("cannot connect to {database_url}"))?;
            print!(
                "{}",
                replay::replay_with(&db, candidate, since, config, |_, _| {}).await?
            );
            Ok(())
        }
        PolicyCommand::Run {
            component,
            input,
            slot,
            call,
            config,
        } => run_cases(&component, &input, slot, call, &config),
    }
}

fn read_component(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The component loaded as `slot`, or as the slot its exports fill.
fn load_policy(
    bytes: &[u8],
    slot: Option<Slot>,
    config: &[String],
) -> anyhow::Result<std::sync::Arc<LoadedPolicy>> {
    let config = metadata::from_pairs(config).map_err(anyhow::Error::msg)?;
    let slot = match slot {
        Some(slot) => slot,
        None => runner::load_any(bytes)?.info.slot,
    };
    let policy = runner::load_with(bytes, slot, config)?;
    metadata::validate(policy.info.config_keys.as_deref(), &policy.config)
        .map_err(anyhow::Error::msg)?;
    Ok(policy)
}

/// `commerce policy check`: the slot, the declared configuration, and
/// whether `config` fits it.
fn check_policy(
    component: &std::path::Path,
    slot: Option<Slot>,
    config: &[String],
) -> anyhow::Result<()> {
    let bytes = read_component(component)?;
    let policy = match slot {
        Some(slot) => runner::load(&bytes, slot)?,
        None => runner::load_any(&bytes)?,
    };
    println!(
        "{} ({}) implements the {} slot (commerce:policy@{})",
        component.display(),
        policy.label(),
        policy.info.slot,
        policy.info.contract
    );
    match &policy.info.config_keys {
        None => println!("it declares no configuration keys: any configuration is accepted"),
        Some(keys) if keys.is_empty() => println!("it reads no configuration"),
        Some(keys) => {
            println!("configuration it reads:");
            let width = keys.iter().map(|key| key.key.len()).max().unwrap_or(0);
            for key in keys {
                println!(
                    "  {:width$}  default {:<12} {}",
                    key.key,
                    format!("{:?}", key.default),
                    key.description
                );
            }
        }
    }
    if !config.is_empty() {
        let config = metadata::from_pairs(config).map_err(anyhow::Error::msg)?;
        metadata::validate(policy.info.config_keys.as_deref(), &config)
            .map_err(|err| anyhow::anyhow!("configuration refused: {err}"))?;
        let missing = metadata::missing(policy.info.config_keys.as_deref(), &config);
        println!("the configuration is accepted");
        if let Some(note) = metadata::missing_note(&missing) {
            println!("note: {note}");
        }
    }
    Ok(())
}

/// `commerce policy run`: one case or input, or a folder of cases.
fn run_cases(
    component: &std::path::Path,
    input: &std::path::Path,
    slot: Option<Slot>,
    call: Option<String>,
    config: &[String],
) -> anyhow::Result<()> {
    let bytes = read_component(component)?;
    if input.is_dir() {
        let paths = commerce_policy_cases::files(input).map_err(anyhow::Error::msg)?;
        let policy = load_policy(&bytes, slot, config)?;
        let summary = runner::run_cases(&policy, &paths, call.as_deref());
        println!(
            "{} (commerce:policy@{}) on {}",
            policy.label(),
            policy.info.contract,
            input.display()
        );
        println!("{summary}");
        if summary.failed() > 0 {
            anyhow::bail!(
                "{} of {} cases failed",
                summary.failed(),
                summary.rows.len()
            );
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", input.display()))?;
    // A case file wraps the input; a bare input is the record itself.
    let case = runner::Case::parse(&text)
        .transpose()
        .map_err(|err| anyhow::anyhow!("{}: {err}", input.display()))?;
    let slot = slot.or(case.as_ref().map(|case| case.slot));
    let policy = load_policy(&bytes, slot, config)?;
    let (function, input, expected) = match case {
        Some(case) => (call.unwrap_or(case.call), case.input, case.expected),
        None => (
            call.unwrap_or_else(|| runner::functions(policy.info.slot)[0].to_owned()),
            json,
            None,
        ),
    };
    let run = runner::run_policy(&policy, &function, &input)?;
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
