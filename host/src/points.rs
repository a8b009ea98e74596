//! Point wallets: charge, balance and history.
//!
//! Wallet updates are optimistic: each reads the wallet's `version` and
//! writes only if it is unchanged. A writer that loses retries a few times
//! with a short random pause, then answers `CONCURRENT_UPDATE`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use crate::{
    error::{Error, Result},
    idempotency::{self, IdempotentRequest, Outcome},
    identity::Acting,
    paging::{Page, PageRequest},
    users,
};

/// Smallest and largest single charge.
pub const CHARGE_RANGE: std::ops::RangeInclusive<i64> = 1..=1_000_000;
/// A wallet never holds more than this.
pub const MAX_BALANCE: i64 = 100_000_000;
/// Attempts of an optimistic update before giving up with `CONCURRENT_UPDATE`.
const ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Balance {
    pub user_id: i64,
    pub balance: i64,
}

#[derive(Debug, Clone, Copy, Serialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Charge,
    Use,
    Refund,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct HistoryEntry {
    pub id: i64,
    pub kind: Kind,
    /// Always positive: a charge or refund adds it, a use takes it off.
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// The points service: a user's wallet and its history.
pub struct Points {
    db: PgPool,
}

impl Points {
    pub(crate) fn new(db: PgPool) -> Self {
        Self { db }
    }

    pub async fn balance(&self, of: Acting) -> Result<Balance> {
        balance(&self.db, of.user_id()).await
    }

    /// Adds `amount` to the wallet, under an idempotency key when given.
    pub async fn charge(
        &self,
        to: Acting,
        amount: i64,
        key: Option<&IdempotentRequest>,
    ) -> Result<Outcome<Balance>> {
        charge(&self.db, to.user_id(), amount, key).await
    }

    pub async fn history(&self, of: Acting, page: PageRequest) -> Result<Page<HistoryEntry>> {
        history(&self.db, of.user_id(), page).await
    }
}

/// A wallet as read for an optimistic update.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub(crate) struct Wallet {
    pub balance: i64,
    pub version: i64,
}

async fn balance(db: &PgPool, user_id: i64) -> Result<Balance> {
    let balance: Option<i64> =
        sqlx::query_scalar("select balance from point_wallets where user_id = $1")
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    balance
        .map(|balance| Balance { user_id, balance })
        .ok_or(Error::UserNotFound(user_id))
}

async fn charge(
    db: &PgPool,
    user_id: i64,
    amount: i64,
    key: Option<&IdempotentRequest>,
) -> Result<Outcome<Balance>> {
    if !CHARGE_RANGE.contains(&amount) {
        return Err(Error::InvalidAmount(format!(
            "amount must be between {} and {}",
            CHARGE_RANGE.start(),
            CHARGE_RANGE.end()
        )));
    }
    for attempt in 1..=ATTEMPTS {
        let mut tx = db.begin().await?;
        if let Some(key) = key
            && let Some(stored) = idempotency::claim(&mut tx, key).await?
        {
            return Ok(Outcome::Replayed(stored));
        }
        let wallet = read_wallet(&mut tx, user_id).await?;
        let balance = wallet.balance + amount;
        if balance > MAX_BALANCE {
            return Err(Error::InvalidAmount(format!(
                "the balance would pass {MAX_BALANCE}"
            )));
        }
        if !apply(&mut tx, user_id, wallet, Kind::Charge, amount, None).await? {
            drop(tx);
            lost_race_pause(attempt).await;
            continue;
        }
        let result = Balance { user_id, balance };
        if let Some(key) = key {
            idempotency::store(&mut tx, key, 200, &result).await?;
        }
        tx.commit().await?;
        return Ok(Outcome::Fresh(result));
    }
    metrics::counter!("points_concurrent_update_total").increment(1);
    Err(Error::ConcurrentUpdate)
}

/// Reads the wallet a following [`apply`] will update.
pub(crate) async fn read_wallet(conn: &mut PgConnection, user_id: i64) -> Result<Wallet> {
    sqlx::query_as("select balance, version from point_wallets where user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await?
        .ok_or(Error::UserNotFound(user_id))
}

/// Moves the wallet from `read` by `amount` (taken off for a use) and writes
/// the history row. `false` when another writer changed the wallet since it
/// was read: nothing was written.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    user_id: i64,
    read: Wallet,
    kind: Kind,
    amount: i64,
    order_id: Option<i64>,
) -> Result<bool> {
    let balance_after = match kind {
        Kind::Charge | Kind::Refund => read.balance + amount,
        Kind::Use => read.balance - amount,
    };
    let updated = sqlx::query(
        "update point_wallets
            set balance = $1, version = version + 1, updated_at = now()
          where user_id = $2 and version = $3",
    )
    .bind(balance_after)
    .bind(user_id)
    .bind(read.version)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "insert into point_history (user_id, kind, amount, balance_after, order_id)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(kind)
    .bind(amount)
    .bind(balance_after)
    .bind(order_id)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// A short random pause that grows with the attempt, so that writers who
/// lost together do not collide again in lockstep.
async fn lost_race_pause(attempt: u32) {
    let millis = rand::random_range(1..=5 * u64::from(attempt));
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

async fn history(db: &PgPool, user_id: i64, page: PageRequest) -> Result<Page<HistoryEntry>> {
    let mut conn = db.acquire().await?;
    users::ensure_exists(&mut conn, user_id).await?;
    let items = sqlx::query_as(
        "select id, kind, amount, balance_after, order_id, created_at
           from point_history
          where user_id = $1
          order by id desc
          limit $2 offset $3",
    )
    .bind(user_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar("select count(*) from point_history where user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(page.with(items, total))
}
