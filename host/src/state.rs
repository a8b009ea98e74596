//! What every request handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::{
    catalog::Catalog, config::Settings, coupons::Coupons, identity::Identity, orders::Orders,
    points::Points, policy::service::PolicyService, users::Users,
};

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

/// The process's services, each owning its handles and the effects that
/// follow its writes; a handler parses, calls one of them and answers.
pub struct Resources {
    pub identity: Arc<Identity>,
    pub users: Users,
    pub points: Points,
    pub catalog: Arc<Catalog>,
    pub coupons: Arc<Coupons>,
    pub orders: Arc<Orders>,
    pub policies: Arc<PolicyService>,
    /// For readiness checks.
    pub db: PgPool,
    pub redis: Redis,
    pub metrics: PrometheusHandle,
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
