//! What the crate's own tests share: a fresh migrated database and a Redis
//! handle with a prefix of its own, on the machine's PostgreSQL and Redis
//! (`TEST_DATABASE_URL`, `TEST_REDIS_URL`, defaulting to the local ones).

use sqlx::PgPool;

use crate::{coupons, db, redis::Redis};

fn database_url(name: &str) -> String {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{}/{name}", base.trim_end_matches('/'))
}

/// A new database of its own, migrated.
pub(crate) async fn database() -> PgPool {
    let name = format!("commerce_unit_{}", uuid::Uuid::new_v4().simple());
    db::prepare(&database_url(&name), 8)
        .await
        .expect("PostgreSQL for tests")
}

/// The local Redis, every key under a prefix of its own.
pub(crate) async fn redis() -> Redis {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).expect("a Redis URL");
    Redis {
        conn: crate::redis::RedisConn::Single(
            redis::aio::ConnectionManager::new(client)
                .await
                .expect("Redis for tests"),
        ),
        prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()).into(),
    }
}

/// `count` users with wallets: their ids.
pub(crate) async fn users(db: &PgPool, count: i64) -> Vec<i64> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "insert into users (name) select 'u' || g from generate_series(1, $1) g returning id",
    )
    .bind(count)
    .fetch_all(db)
    .await
    .expect("users are inserted");
    sqlx::query("insert into point_wallets (user_id) select unnest($1::bigint[])")
        .bind(&ids)
        .execute(db)
        .await
        .expect("wallets are inserted");
    ids
}

/// An open coupon of `total`, valid for a day.
pub(crate) async fn coupon(db: &PgPool, total: i64) -> coupons::Coupon {
    let now = chrono::Utc::now();
    coupons::create(
        db,
        coupons::NewCoupon {
            name: "test".into(),
            discount: coupons::Discount {
                kind: coupons::DiscountKind::Fixed,
                value: 1_000,
                max_amount: None,
            },
            total_quantity: total,
            min_order_amount: 0,
            valid_from: now - chrono::Duration::minutes(1),
            valid_until: now + chrono::Duration::days(1),
        },
    )
    .await
    .expect("the coupon is created")
}
