//! The PostgreSQL pool: created on demand, migrated on start.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool,
    migrate::MigrateDatabase,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// Migrations compiled into the binary, so a deployment cannot run code
/// against a schema it does not know.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How long a request may wait for a free connection before it is told the
/// database is unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A statement that runs longer than this is cancelled by the server.
const STATEMENT_TIMEOUT: &str = "10s";

/// Creates the database when it is missing, connects and applies migrations.
pub async fn prepare(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    create_if_missing(url).await?;
    let options = PgConnectOptions::from_str(url)
        .with_context(|| {
            format!(
                "DATABASE_URL is not a PostgreSQL URL: {}",
                crate::config::redact_url(url)
            )
        })?
        .options([("statement_timeout", STATEMENT_TIMEOUT)]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")?;
    MIGRATOR
        .run(&pool)
        .await
        .context("cannot apply the database migrations")?;
    Ok(pool)
}

async fn create_if_missing(url: &str) -> anyhow::Result<()> {
    if sqlx::Postgres::database_exists(url)
        .await
        .context("cannot reach PostgreSQL")?
    {
        return Ok(());
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => {
            tracing::info!("created the database");
            Ok(())
        }
        // Another instance starting at the same time created it first.
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P04") => Ok(()),
        Err(err) => Err(err).context("cannot create the database"),
    }
}

/// How long a follower waits before listening again after losing its
/// connection.
const RELISTEN_PAUSE: Duration = Duration::from_secs(1);

/// Listens on `channel` until `stop`, calling `on_event` with each
/// notification's payload, and with `None` whenever the listener
/// (re)connects: notifications sent while it was away are lost, so the
/// caller must treat `None` as "anything may have changed".
pub async fn follow(
    db: &PgPool,
    channel: &str,
    stop: tokio_util::sync::CancellationToken,
    mut on_event: impl FnMut(Option<&str>) + Send,
) {
    loop {
        let mut listener = match listen(db, channel).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(%err, channel, "cannot listen");
                let pause = tokio::time::sleep(RELISTEN_PAUSE);
                if stop.run_until_cancelled(pause).await.is_none() {
                    return;
                }
                continue;
            }
        };
        on_event(None);
        loop {
            match stop.run_until_cancelled(listener.recv()).await {
                None => return,
                Some(Ok(notification)) => on_event(Some(notification.payload())),
                Some(Err(err)) => {
                    tracing::warn!(%err, channel, "lost the listener; listening again");
                    break;
                }
            }
        }
    }
}

async fn listen(db: &PgPool, channel: &str) -> sqlx::Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(db).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
