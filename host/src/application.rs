//! The application: built from settings, served until a shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    db, http, idempotency, orders, outbox,
    policy::{self, service::PolicyService},
    state::{AppState, Redis, Resources},
    telemetry,
};

/// A bound, ready-to-serve server. Tests build it on port 0 and read `port()`.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to PostgreSQL (creating and migrating the database) and Redis,
    /// and binds the listener. Nothing is served until `run*`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let admin_token = admin_token(&settings)?;
        let db = db::prepare(&settings.database_url, settings.db_pool_size).await?;
        let redis = connect_redis(&settings).await?;
        let settings = Arc::new(settings);
        let policies = PolicyService::start(db.clone(), settings.clone()).await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let coupons = Arc::new(crate::coupons::Issuance::start(db.clone()));
        let state = AppState::new(Resources {
            db,
            redis,
            admin_token,
            metrics: telemetry::metrics_handle(),
            policies,
            coupons,
            outbox_wake: Arc::default(),
            catalog: Default::default(),
            settings,
        });
        Ok(Self { listener, state })
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

    /// Serves until `stop` completes, then stops accepting connections and
    /// waits for the requests already being served.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { listener, state } = self;
        let jobs = CancellationToken::new();
        tokio::spawn(idempotency::prune_periodically(
            state.db.clone(),
            jobs.child_token(),
        ));
        tokio::spawn(state.policies.clone().follow(jobs.child_token()));
        if state.settings.watches_policies()
            && let Some(watch) =
                policy::watch::PolicyWatch::start(state.policies.clone(), state.settings.clone())
        {
            tokio::spawn(watch.follow(jobs.child_token()));
        }
        tokio::spawn(policy::recorded::prune_periodically(
            state.db.clone(),
            state.settings.policy_input_retention_days,
            jobs.child_token(),
        ));
        tokio::spawn(orders::close::expire_periodically(
            state.db.clone(),
            jobs.child_token(),
        ));
        tokio::spawn(outbox::relay(
            state.db.clone(),
            state.redis.clone(),
            state.outbox_wake.clone(),
            jobs.child_token(),
        ));
        tracing::info!(address = %listener.local_addr()?, environment = %state.settings.environment, "serving");
        let result = axum::serve(listener, http::router(state))
            .with_graceful_shutdown(stop)
            .await
            .context("the server failed");
        jobs.cancel();
        tracing::info!("stopped");
        result
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

async fn connect_redis(settings: &Settings) -> anyhow::Result<Redis> {
    let client = redis::Client::open(settings.redis_url.as_str())
        .with_context(|| format!("REDIS_URL is not a Redis URL: {}", settings.redis_url))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(REDIS_RESPONSE_TIMEOUT)
        .set_number_of_retries(2);
    let conn = ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| format!("cannot connect to Redis at {}", settings.redis_url))?;
    Ok(Redis {
        conn,
        prefix: settings.redis_prefix.as_str().into(),
    })
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
