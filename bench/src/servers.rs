//! Two `commerce` instances in this process on port 0, sharing a fresh
//! database and a fresh Redis key prefix: one deployment, as in production
//! and as the end-to-end tests start it. Both are removed by [`stop`].
//!
//! [`stop`]: Deployment::stop

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use commerce::{Application, Settings};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;

/// The database server, without a database name.
const DATABASE_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

pub struct Deployment {
    pub addresses: Vec<SocketAddr>,
    /// A pool of the bench's own, for setting up and checking.
    pub db: PgPool,
    database: String,
    redis_prefix: String,
    stop: Arc<Notify>,
    serving: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The repository's root folder.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

impl Deployment {
    /// `count` instances whose settings `adjust` may change first.
    pub async fn start(count: usize, adjust: impl Fn(&mut Settings)) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("commerce_bench_{id}");
        let redis_prefix = format!("bench:{id}:");
        let stop = Arc::new(Notify::new());
        let mut addresses = Vec::with_capacity(count);
        let mut serving = Vec::with_capacity(count);
        for _ in 0..count {
            let mut settings = Settings::defaults();
            settings.listen = "127.0.0.1:0".parse()?;
            settings.database_url = format!("{DATABASE_SERVER}/{database}");
            settings.redis_url = REDIS_URL.to_owned();
            settings.redis_prefix = redis_prefix.clone();
            settings.environment = "dev".to_owned();
            settings.manifest_dir = repository().join("plugins/environments");
            settings.component_dir = repository().join("target/plugins");
            settings.admin_token = Some("bench".to_owned());
            settings.db_pool_size = 16;
            adjust(&mut settings);
            open_api_for(&mut settings, &database)?;
            let app = Application::build(settings)
                .await
                .context("an instance does not start")?;
            addresses.push(app.local_addr());
            let stop = stop.clone();
            serving.push(tokio::spawn(
                app.run_until(async move { stop.notified().await }),
            ));
        }
        let db = PgPool::connect(&format!("{DATABASE_SERVER}/{database}")).await?;
        Ok(Self {
            addresses,
            db,
            database,
            redis_prefix,
            stop,
            serving,
        })
    }

    /// `count` users, made in one statement with their wallets: their ids.
    pub async fn users(&self, count: usize) -> anyhow::Result<Vec<i64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "insert into users (name) select 'u' || g from generate_series(1, $1) g returning id",
        )
        .bind(i64::try_from(count)?)
        .fetch_all(&self.db)
        .await?;
        sqlx::query("insert into point_wallets (user_id) select unnest($1::bigint[])")
            .bind(&ids)
            .execute(&self.db)
            .await?;
        Ok(ids)
    }

    /// Stops the instances, drops the database and deletes the Redis keys.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.notify_waiters();
        for serving in self.serving {
            serving.await??;
        }
        self.db.close().await;
        let mut admin = PgConnection::connect(&format!("{DATABASE_SERVER}/postgres")).await?;
        sqlx::query(&format!(
            "drop database if exists {} with (force)",
            self.database
        ))
        .execute(&mut admin)
        .await?;
        let mut redis = redis::Client::open(REDIS_URL)?
            .get_multiplexed_async_connection()
            .await?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.redis_prefix))
            .query_async(&mut redis)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut redis)
                .await?;
        }
        Ok(())
    }
}

/// The bench's load carries no user tokens, and only `dev` may serve
/// without them: another environment's manifest (`native`, ...) is served
/// as this deployment's `dev`, from a folder of the bench's own.
fn open_api_for(settings: &mut Settings, database: &str) -> anyhow::Result<()> {
    if settings.environment == "dev" || settings.jwt_secret.is_some() {
        return Ok(());
    }
    let manifest = settings
        .manifest_dir
        .join(format!("{}.toml", settings.environment));
    let folder = std::env::temp_dir().join(format!("{database}-{}", settings.environment));
    std::fs::create_dir_all(&folder)?;
    std::fs::copy(&manifest, folder.join("dev.toml"))
        .with_context(|| format!("cannot copy {}", manifest.display()))?;
    settings.manifest_dir = folder;
    settings.environment = "dev".to_owned();
    Ok(())
}
