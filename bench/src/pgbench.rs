//! Ceilings measured by pgbench: the SQL a use case runs, replayed by
//! PostgreSQL's own load generator with no HTTP, no policies and no Rust in
//! between.

use std::path::PathBuf;

use anyhow::Context;

/// What pgbench measured.
pub struct Measured {
    pub per_second: f64,
    pub latency_ms: f64,
}

/// Runs `script` (a file under bench/sql) against `database` with
/// `clients` connections for `seconds`, defining each `variables` pair.
pub async fn run(
    database: &str,
    script: &str,
    clients: usize,
    seconds: u64,
    variables: &[(&str, String)],
) -> anyhow::Result<Measured> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join(script);
    let mut command = std::process::Command::new("pgbench");
    command
        .args(["-n", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"])
        .arg("-f")
        .arg(&path)
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
        ]);
    for (name, value) in variables {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    command.arg(database);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("pgbench does not run (is it installed?)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    let number = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    Ok(Measured {
        per_second: number("tps = ").context("no tps in pgbench's output")?,
        latency_ms: number("latency average = ").unwrap_or(0.0),
    })
}
