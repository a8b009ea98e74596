//! Popular products: units sold in paid orders of the last days, from an
//! index-backed query, cached in Redis for a few seconds. Payment and cancel
//! evict the cache so a sale shows at once.

use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::{error::Result, redis::Redis};

pub const DAYS: std::ops::RangeInclusive<u32> = 1..=30;
pub const LIMIT: std::ops::RangeInclusive<u32> = 1..=50;
const TTL: Duration = Duration::from_secs(10);
/// Redis waits at most this long; a slow cache is skipped, not waited for.
const CACHE_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct PopularProduct {
    pub rank: i64,
    pub product_id: i64,
    pub name: String,
    pub price: i64,
    pub sold_quantity: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Popular {
    pub days: u32,
    pub items: Vec<PopularProduct>,
}

/// The cached ranking for `days`: `{popular}:<days>`. The hash tag puts
/// every ranking in one Redis Cluster slot, so that [`evict`] drops them all
/// with one `DEL`.
fn cache_key(redis: &Redis, days: u32) -> String {
    redis.key(&format!("{{popular}}:{days}"))
}

/// The top `limit` for `days`: the cached top 50 when fresh, else the query.
pub async fn top(db: &PgPool, redis: &Redis, days: u32, limit: u32) -> Result<Popular> {
    let key = cache_key(redis, days);
    let mut conn = redis.conn.clone();
    let cached: Option<String> = tokio::time::timeout(CACHE_TIMEOUT, conn.get(&key))
        .await
        .ok()
        .and_then(Result::ok);
    let mut items: Vec<PopularProduct> =
        match cached.and_then(|text| serde_json::from_str(&text).ok()) {
            Some(items) => items,
            None => {
                let items = query(db, days).await?;
                if let Ok(text) = serde_json::to_string(&items) {
                    let _ = tokio::time::timeout(
                        CACHE_TIMEOUT,
                        conn.set_ex::<_, _, ()>(&key, text, TTL.as_secs()),
                    )
                    .await;
                }
                items
            }
        };
    items.truncate(limit as usize);
    Ok(Popular { days, items })
}

async fn query(db: &PgPool, days: u32) -> Result<Vec<PopularProduct>> {
    Ok(sqlx::query_as(
        "select row_number() over (order by sum(l.quantity) desc, p.id) as rank,
                p.id as product_id, p.name, p.price, sum(l.quantity)::bigint as sold_quantity
           from orders o
           join order_lines l on l.order_id = o.id
           join products p on p.id = l.product_id
          where o.status = 'paid' and o.created_at >= now() - make_interval(days => $1)
          group by p.id
          order by sold_quantity desc, p.id
          limit $2",
    )
    .bind(days as i32)
    .bind(*LIMIT.end() as i64)
    .fetch_all(db)
    .await?)
}

/// Drops every cached ranking (one slot, see [`cache_key`]); called after a
/// payment or a cancel commits.
pub async fn evict(redis: &Redis) {
    let keys: Vec<String> = DAYS.map(|days| cache_key(redis, days)).collect();
    let mut conn = redis.conn.clone();
    let _ = tokio::time::timeout(CACHE_TIMEOUT, conn.del::<_, ()>(keys)).await;
}
