//! What every request handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::{
    catalog::Catalog, config::Settings, coupons::Coupons, deployment::PolicyService,
    identity::Identity, orders::Orders, points::Points, redis::Redis, replays::Replays,
    users::Users,
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
    pub replays: Arc<Replays>,
    /// For readiness checks.
    pub db: PgPool,
    pub redis: Redis,
    pub metrics: PrometheusHandle,
    pub settings: Arc<Settings>,
}
