//! Paying an order with points: the points, the order's status and the
//! `order.paid` event change in one transaction.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::{
    http::error::{ApiError, ApiResult},
    idempotency::{self, IdempotentRequest, Outcome},
    orders, outbox,
    points::{self, Kind},
};

const ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub payment_id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub amount: i64,
    pub balance_after: i64,
    /// Always `paid`.
    pub status: &'static str,
    pub paid_at: DateTime<Utc>,
}

pub async fn pay(
    db: &PgPool,
    order_id: i64,
    user_id: i64,
    key: Option<&IdempotentRequest>,
) -> ApiResult<Outcome<Payment>> {
    for attempt in 1..=ATTEMPTS {
        let mut tx = db.begin().await?;
        if let Some(key) = key
            && let Some(stored) = idempotency::claim(&mut tx, key).await?
        {
            return Ok(Outcome::Replayed(stored));
        }
        let row: Option<(i64, String, i64, DateTime<Utc>)> = sqlx::query_as(
            "select user_id, status, total, expires_at from orders where id = $1 for update",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (owner, status, total, expires_at) = row.ok_or(ApiError::OrderNotFound(order_id))?;
        if owner != user_id {
            return Err(ApiError::Forbidden(format!(
                "order {order_id} is not user {user_id}'s"
            )));
        }
        if status != "pending_payment" {
            return Err(ApiError::OrderNotPayable(status));
        }
        if expires_at <= Utc::now() {
            return Err(ApiError::OrderNotPayable("expired".into()));
        }
        let wallet = points::read_wallet(&mut tx, user_id).await?;
        if wallet.balance < total {
            return Err(ApiError::InsufficientPoints {
                balance: wallet.balance,
                total,
            });
        }
        // A free order (a coupon covering everything) moves no points.
        if total > 0
            && !points::apply(&mut tx, user_id, wallet, Kind::Use, total, Some(order_id)).await?
        {
            drop(tx);
            let millis = rand::random_range(1..=5 * u64::from(attempt));
            tokio::time::sleep(Duration::from_millis(millis)).await;
            continue;
        }
        let balance_after = wallet.balance - total;
        sqlx::query("update orders set status = 'paid', paid_at = now() where id = $1")
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        let (payment_id, paid_at): (i64, DateTime<Utc>) = sqlx::query_as(
            "insert into payments (order_id, user_id, amount, balance_after)
             values ($1, $2, $3, $4)
             returning id, paid_at",
        )
        .bind(order_id)
        .bind(user_id)
        .bind(total)
        .bind(balance_after)
        .fetch_one(&mut *tx)
        .await?;
        let order = orders::read(&mut tx, order_id).await?;
        outbox::record(&mut tx, "order.paid", &order).await?;
        let payment = Payment {
            payment_id,
            order_id,
            user_id,
            amount: total,
            balance_after,
            status: "paid",
            paid_at,
        };
        if let Some(key) = key {
            idempotency::store(&mut tx, key, StatusCode::CREATED, &payment).await?;
        }
        tx.commit().await?;
        metrics::counter!("orders_paid_total").increment(1);
        return Ok(Outcome::Fresh(payment));
    }
    Err(ApiError::ConcurrentUpdate)
}
