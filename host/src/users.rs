//! Users: created with an empty point wallet.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use crate::{
    error::{Error, Result},
    policy::bindings::UserFacts,
};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// The users service: the back office creates users, each with a wallet.
pub struct Users {
    db: PgPool,
}

impl Users {
    pub(crate) fn new(db: PgPool) -> Self {
        Self { db }
    }

    pub async fn create(&self, name: &str) -> Result<User> {
        create(&self.db, name).await
    }

    pub async fn find(&self, of: crate::identity::Acting) -> Result<User> {
        find(&self.db, of.user_id()).await
    }
}

/// Creates a user and its wallet in one transaction.
pub(crate) async fn create(db: &PgPool, name: &str) -> Result<User> {
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

async fn find(db: &PgPool, id: i64) -> Result<User> {
    sqlx::query_as("select id, name, created_at from users where id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(Error::UserNotFound(id))
}

/// Fails with `USER_NOT_FOUND` unless the user exists.
pub async fn ensure_exists(conn: &mut PgConnection, id: i64) -> Result<()> {
    let exists: bool = sqlx::query_scalar("select exists (select 1 from users where id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await?;
    if exists {
        Ok(())
    } else {
        Err(Error::UserNotFound(id))
    }
}

/// What a policy may know of a user, as one select of the user id in
/// `user_param` (`$1`, `$2`, ...): one row with `user_created_at` (null when
/// no such user), `paid_orders` (orders paid and not cancelled) and
/// `lifetime_spend` (their totals, for `commerce:policy@1.1.0` and later).
/// Quotes and coupon issuance both read it, the latter joined to the coupon.
pub(crate) fn facts_select(user_param: &str) -> String {
    format!(
        "select (select created_at from users where id = {user_param}) as user_created_at,
                count(*) as paid_orders, coalesce(sum(total), 0)::bigint as lifetime_spend
           from orders where user_id = {user_param} and status = 'paid'"
    )
}

/// A row of [`facts_select`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FactsRow {
    pub user_created_at: Option<DateTime<Utc>>,
    pub paid_orders: Option<i64>,
    pub lifetime_spend: Option<i64>,
}

impl FactsRow {
    /// The facts, or `None` when there is no such user.
    pub(crate) fn into_facts(self, user_id: i64) -> Option<UserFacts> {
        self.user_created_at.map(|created_at| UserFacts {
            id: user_id as u64,
            created_at: created_at.timestamp(),
            paid_orders: u32::try_from(self.paid_orders.unwrap_or(0)).unwrap_or(u32::MAX),
            lifetime_spend: self.lifetime_spend.unwrap_or(0),
        })
    }
}

/// What a policy may know of the user: `USER_NOT_FOUND` when there is none.
pub(crate) async fn facts(db: &PgPool, user_id: i64) -> Result<UserFacts> {
    let row: FactsRow = sqlx::query_as(&facts_select("$1"))
        .bind(user_id)
        .fetch_one(db)
        .await?;
    row.into_facts(user_id).ok_or(Error::UserNotFound(user_id))
}
