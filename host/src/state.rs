//! What every request handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::{config::Settings, policy::service::PolicyService};

/// The process's resources, shared by every request: a clone is one
/// reference count, and a request clones it at least once.
#[derive(Clone)]
pub struct AppState(Arc<Resources>);

impl AppState {
    pub fn new(resources: Resources) -> Self {
        Self(Arc::new(resources))
    }
}

impl std::ops::Deref for AppState {
    type Target = Resources;

    fn deref(&self) -> &Resources {
        &self.0
    }
}

/// Handles to the process's resources.
pub struct Resources {
    pub db: PgPool,
    pub redis: Redis,
    /// `None` closes the admin API.
    pub admin_token: Option<Arc<str>>,
    pub metrics: PrometheusHandle,
    pub policies: Arc<PolicyService>,
    /// Coupon issuance's own state: Redis's health, waiters for coupon locks.
    pub coupons: Arc<crate::coupons::Issuance>,
    /// Recent catalogue pages and totals.
    pub catalog: crate::catalog::ReadCache,
    /// Wakes this instance's outbox relay after a commit that wrote events.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    pub settings: Arc<Settings>,
}

/// A Redis connection and the prefix every key of this deployment carries.
#[derive(Clone)]
pub struct Redis {
    pub conn: ConnectionManager,
    pub prefix: Arc<str>,
}

impl Redis {
    /// The full name of one of this deployment's keys.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }
}
