//! The application: built from settings, served until a shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};
use tokio::{net::TcpListener, sync::Notify};

use crate::{
    catalog::Catalog,
    config::{Settings, redact_url},
    coupons::Coupons,
    db,
    deployment::{self, PolicyService},
    http, idempotency,
    identity::Identity,
    orders::Orders,
    outbox,
    points::Points,
    policy,
    redis::{Redis, RedisConn},
    replays::Replays,
    state::{AppState, Resources},
    tasks::Tasks,
    telemetry,
    users::Users,
};

/// A bound, ready-to-serve server. Tests build it on port 0 and read `port()`.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    tasks: Tasks,
    outbox_wake: Arc<Notify>,
}

impl Application {
    /// Connects to PostgreSQL (creating and migrating the database) and Redis,
    /// checks the identity settings and binds the listener. Nothing is
    /// served until `run*`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // The recorder first: a loaded policy registers its call metrics
        // once, when it is loaded, and a handle taken before the recorder
        // exists records nothing.
        let metrics = telemetry::metrics_handle();
        let admin_token = admin_token(&settings)?;
        let identity = Arc::new(Identity::start(&settings, admin_token).await?);
        let databases = db::connect(
            &settings.database_url,
            settings.database_direct_url(),
            settings.db_pool_size,
        )
        .await?;
        let db = databases.pool;
        let redis = connect_redis(&settings).await?;
        let settings = Arc::new(settings);
        let policies =
            PolicyService::start(db.clone(), databases.direct.clone(), settings.clone()).await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let replays = Replays::start(
            db.clone(),
            Replays::instance_name(listener.local_addr()?.port()),
        )
        .await?;
        let tasks = Tasks::default();
        let outbox_wake = Arc::new(Notify::new());
        let state = AppState::new(Resources {
            identity,
            users: Users::new(db.clone()),
            points: Points::new(db.clone()),
            catalog: Arc::new(Catalog::new(db.clone(), databases.direct, redis.clone())),
            coupons: Arc::new(Coupons::start(
                db.clone(),
                redis.clone(),
                policies.registry.clone(),
                settings.coupon_issue_strategy,
                &tasks,
            )),
            orders: Arc::new(Orders::new(
                db.clone(),
                redis.clone(),
                policies.registry.clone(),
                outbox_wake.clone(),
                settings.order_ttl(),
            )),
            policies,
            replays,
            db,
            redis,
            metrics,
            settings,
        });
        Ok(Self {
            listener,
            state,
            tasks,
            outbox_wake,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then stops accepting connections,
    /// waits for the requests already being served, and then for the
    /// background tasks to finish what they hold.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            tasks,
            outbox_wake,
        } = self;
        let settings = state.settings.clone();
        let db = state.db.clone();
        tasks.spawn_until_stopped(|stop| idempotency::prune_periodically(db.clone(), stop));
        tasks.spawn_until_stopped(|stop| state.policies.clone().follow(stop));
        if settings.watches_policies()
            && let Some(watch) =
                deployment::watch::PolicyWatch::start(state.policies.clone(), settings.clone())
        {
            tasks.spawn_until_stopped(|stop| watch.follow(stop));
        }
        tasks.spawn_until_stopped(|stop| {
            policy::recorded::prune_periodically(
                db.clone(),
                settings.policy_input_retention_days,
                stop,
            )
        });
        tasks.spawn_until_stopped(|stop| state.replays.clone().work(stop));
        tasks.spawn_until_stopped(|stop| state.replays.clone().keep_alive(stop));
        tasks.spawn_until_stopped(|stop| state.catalog.clone().follow(stop));
        tasks.spawn_until_stopped(|stop| state.identity.clone().follow_jwks(stop));
        tasks.spawn_until_stopped(|stop| state.orders.clone().expire_periodically(stop));
        let retention = outbox::Retention {
            stream_maxlen: settings.outbox_stream_maxlen,
            days: settings.outbox_retention_days,
        };
        let redis = state.redis.clone();
        tasks.spawn_until_stopped(|stop| outbox::relay(db, redis, outbox_wake, retention, stop));
        tracing::info!(address = %listener.local_addr()?, environment = %settings.environment, "serving");
        let limits = http::serve::Limits {
            max_connections: settings.max_connections,
            header_timeout: Duration::from_millis(settings.header_timeout_ms),
            idle_timeout: Duration::from_millis(settings.idle_timeout_ms),
            body_timeout: Duration::from_millis(settings.body_timeout_ms),
            max_streams: settings.http2_max_streams,
        };
        http::serve::serve(listener, http::router(state), limits, stop).await;
        // Every request has been answered and the router (with the services'
        // handles) dropped: the tasks can finish what is queued.
        tasks.shut_down().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The admin token from the settings; `dev` generates one when none is set,
/// `prod` refuses to start without one.
fn admin_token(settings: &Settings) -> anyhow::Result<Option<Arc<str>>> {
    match settings.admin_token.as_deref() {
        Some(token) if !token.is_empty() => Ok(Some(token.into())),
        _ if settings.is_prod() => {
            anyhow::bail!("ADMIN_TOKEN must be set when COMMERCE_ENV is prod")
        }
        _ if settings.environment == "dev" => {
            let token = hex::encode(rand::random::<[u8; 16]>());
            tracing::warn!(%token, "ADMIN_TOKEN is not set; generated one for this dev process");
            Ok(Some(token.into()))
        }
        _ => {
            tracing::warn!("ADMIN_TOKEN is not set; the admin API is closed");
            Ok(None)
        }
    }
}

/// How long one Redis command may take before it is given up.
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Connects to the Redis Cluster when `REDIS_CLUSTER_NODES` is set, else to
/// the one Redis at `REDIS_URL`.
async fn connect_redis(settings: &Settings) -> anyhow::Result<Redis> {
    let prefix: Arc<str> = settings.redis_prefix.as_str().into();
    anyhow::ensure!(
        !prefix.contains(['{', '}']),
        "COMMERCE_REDIS_PREFIX must not contain braces: on a Redis Cluster they would be the keys' hash tag"
    );
    let conn = if settings.redis_cluster_nodes.is_empty() {
        RedisConn::Single(connect_single(settings).await?)
    } else {
        RedisConn::Cluster(connect_cluster(&settings.redis_cluster_nodes).await?)
    };
    Ok(Redis { conn, prefix })
}

async fn connect_single(settings: &Settings) -> anyhow::Result<ConnectionManager> {
    let shown = redact_url(&settings.redis_url);
    let client = redis::Client::open(settings.redis_url.as_str())
        .with_context(|| format!("REDIS_URL is not a Redis URL: {shown}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(REDIS_RESPONSE_TIMEOUT)
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| format!("cannot connect to Redis at {shown}"))
}

/// A cluster connection from the seed nodes: it learns the slots from them,
/// and again whenever a node answers MOVED or goes away (a failover). Few,
/// quick retries: a call that cannot succeed within about a second should
/// fail, so that the coupon circuit takes the PostgreSQL path meanwhile.
async fn connect_cluster(nodes: &[String]) -> anyhow::Result<ClusterConnection> {
    let urls: Vec<String> = nodes
        .iter()
        .map(|node| node.trim())
        .filter(|node| !node.is_empty())
        .map(|node| {
            if node.contains("://") {
                node.to_owned()
            } else {
                format!("redis://{node}")
            }
        })
        .collect();
    let client = ClusterClientBuilder::new(urls.clone())
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(REDIS_RESPONSE_TIMEOUT)
        .retries(3)
        .min_retry_wait(20)
        .max_retry_wait(200)
        .build()
        .with_context(|| format!("REDIS_CLUSTER_NODES is not a list of host:port: {nodes:?}"))?;
    client
        .get_async_connection()
        .await
        .with_context(|| format!("cannot connect to the Redis Cluster at {urls:?}"))
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
