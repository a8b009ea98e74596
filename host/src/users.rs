//! Users: created with an empty point wallet.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Creates a user and its wallet in one transaction.
pub async fn create(db: &PgPool, name: &str) -> ApiResult<User> {
    let name = crate::validate::text("name", name, MAX_NAME_CHARS)?;
    let mut tx = db.begin().await?;
    let user: User =
        sqlx::query_as("insert into users (name) values ($1) returning id, name, created_at")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query("insert into point_wallets (user_id) values ($1)")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn find(db: &PgPool, id: i64) -> ApiResult<User> {
    sqlx::query_as("select id, name, created_at from users where id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::UserNotFound(id))
}

/// Fails with `USER_NOT_FOUND` unless the user exists.
pub async fn ensure_exists(conn: &mut PgConnection, id: i64) -> ApiResult<()> {
    let exists: bool = sqlx::query_scalar("select exists (select 1 from users where id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await?;
    if exists {
        Ok(())
    } else {
        Err(ApiError::UserNotFound(id))
    }
}

/// Orders the user has paid and not cancelled, as policies see it.
pub async fn paid_orders(db: &PgPool, user_id: i64) -> ApiResult<u32> {
    let count: i64 =
        sqlx::query_scalar("select count(*) from orders where user_id = $1 and status = 'paid'")
            .bind(user_id)
            .fetch_one(db)
            .await?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// What the user has spent: the sum of the totals of those same orders, as
/// policies of `commerce:policy@1.1.0` and later see it.
pub async fn lifetime_spend(db: &PgPool, user_id: i64) -> ApiResult<i64> {
    Ok(sqlx::query_scalar(
        "select coalesce(sum(total), 0)::bigint from orders where user_id = $1 and status = 'paid'",
    )
    .bind(user_id)
    .fetch_one(db)
    .await?)
}
