//! What every request handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use redis::{
    Cmd, Pipeline, RedisFuture, Value, aio::ConnectionManager, cluster_async::ClusterConnection,
};
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
///
/// # Key layout
/// Every key starts with the prefix (`COMMERCE_REDIS_PREFIX`, `commerce:` by
/// default), which must not contain `{` or `}`: on a Redis Cluster the first
/// `{...}` of a key is its hash tag, and the keys below rely on theirs.
/// - `coupon:{<id>}:remaining|holders|holders:<owner>|rebuild|lock|fence|turn`:
///   one coupon's state ([`crate::coupons`]); the tag `{<id>}` puts all of a
///   coupon's keys in one slot, so its scripts use them together, and spreads
///   coupons over the cluster.
/// - `{popular}:<days>`: the cached rankings ([`crate::popular`]), one slot,
///   so that one `DEL` evicts them all.
/// - `events:orders`: the outbox stream ([`crate::outbox`]), one key.
///
/// No command or script touches keys of two groups at once.
#[derive(Clone)]
pub struct Redis {
    pub conn: RedisConn,
    pub prefix: Arc<str>,
}

impl Redis {
    /// The full name of one of this deployment's keys.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }
}

/// One Redis server (`REDIS_URL`) or a Redis Cluster
/// (`REDIS_CLUSTER_NODES`): call sites clone it and run commands, scripts
/// and pipelines on it without knowing which. Both kinds reconnect by
/// themselves; the cluster one also follows slots to their new masters
/// after a failover.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}
