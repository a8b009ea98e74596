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

/// The pool requests use, and the direct one for what a transaction-pooling
/// PgBouncer cannot carry.
pub struct Databases {
    /// `DATABASE_URL`: every query and transaction.
    pub pool: PgPool,
    /// `DATABASE_DIRECT_URL`: LISTEN (each follower holds one connection
    /// for as long as it listens) and migrations (their advisory lock is
    /// session-scoped). The same pool as `pool` when there is no pooler.
    pub direct: PgPool,
}

/// Most connections of the direct pool: the policy and catalogue followers
/// hold one each, a third lets one reconnect while the other still holds.
const DIRECT_CONNECTIONS: u32 = 3;

/// Says at start how many processes of this pool size PostgreSQL admits, and
/// warns when a second one would not fit: the process past the limit
/// answers `503` on every request that needs the database.
async fn say_how_many_fit(pool: &PgPool, pool_size: u32) {
    let admitted: sqlx::Result<i32> = sqlx::query_scalar(
        "select current_setting('max_connections')::int
              - current_setting('superuser_reserved_connections')::int",
    )
    .fetch_one(pool)
    .await;
    let Ok(admitted) = admitted else { return };
    let fit = u32::try_from(admitted).unwrap_or(0) / pool_size.max(1);
    if fit < 2 {
        tracing::warn!(
            admitted,
            pool_size,
            fit,
            "PostgreSQL admits fewer than two processes of this pool size (COMMERCE_DB_POOL_SIZE)"
        );
    } else {
        tracing::info!(
            admitted,
            pool_size,
            fit,
            "PostgreSQL connections: this many processes of this pool size fit"
        );
    }
}

/// Creates the database when it is missing, connects and applies migrations.
pub async fn prepare(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    Ok(connect(url, url, max_connections).await?.pool)
}

/// Creates the database when it is missing and applies migrations, both
/// through `direct_url`; then the pool on `url`.
///
/// When the two differ, `url` is taken to go through PgBouncer in
/// transaction mode: a session's settings do not follow its transactions
/// from one server connection to the next, so the pooled connections send no
/// startup parameter PgBouncer does not track (the statement timeout is then
/// PgBouncer's or the role's to set, see docs/scaling.md). Named prepared
/// statements, which sqlx uses for every query with arguments, need
/// PgBouncer's `max_prepared_statements` (1.21 and later).
pub async fn connect(
    url: &str,
    direct_url: &str,
    max_connections: u32,
) -> anyhow::Result<Databases> {
    create_if_missing(direct_url).await?;
    let direct_options = options(direct_url, "DATABASE_DIRECT_URL")?
        .options([("statement_timeout", STATEMENT_TIMEOUT)]);
    let pooled = url != direct_url;
    let direct = if pooled {
        PgPoolOptions::new()
            .max_connections(DIRECT_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(direct_options)
            .await
            .context("cannot connect to PostgreSQL directly (DATABASE_DIRECT_URL)")?
    } else {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(direct_options)
            .await
            .context("cannot connect to PostgreSQL")?
    };
    MIGRATOR
        .run(&direct)
        .await
        .context("cannot apply the database migrations")?;
    if !pooled {
        say_how_many_fit(&direct, max_connections).await;
        return Ok(Databases {
            pool: direct.clone(),
            direct,
        });
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options(url, "DATABASE_URL")?.extra_float_digits(None))
        .await
        .context("cannot connect to PostgreSQL through DATABASE_URL")?;
    Ok(Databases { pool, direct })
}

fn options(url: &str, name: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).with_context(|| {
        format!(
            "{name} is not a PostgreSQL URL: {}",
            crate::config::redact_url(url)
        )
    })
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
