//! The Redis handle every service holds: one server or a cluster, and the
//! deployment's key prefix.

use std::sync::Arc;

use ::redis::{
    Cmd, Pipeline, RedisFuture, Value, aio::ConnectionManager, cluster_async::ClusterConnection,
};

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

impl ::redis::aio::ConnectionLike for RedisConn {
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
