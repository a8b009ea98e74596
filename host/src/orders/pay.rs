//! Paying an order with points: the points, the order's status and the
//! `order.paid` event change in one transaction. The key is claimed first,
//! so a repeat is answered from what was stored even after the order
//! expired or was cancelled.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{OrderStatus, read, record_event};
use crate::{
    error::{Error, Result},
    idempotency::{self, IdempotentRequest, Outcome},
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

pub(super) async fn pay(
    db: &PgPool,
    order_id: i64,
    user_id: i64,
    key: Option<&IdempotentRequest>,
) -> Result<Outcome<Payment>> {
    for attempt in 1..=ATTEMPTS {
        let mut tx = db.begin().await?;
        if let Some(key) = key
            && let Some(stored) = idempotency::claim(&mut tx, key).await?
        {
            return Ok(Outcome::Replayed(stored));
        }
        let row: Option<(i64, OrderStatus, i64, DateTime<Utc>)> = sqlx::query_as(
            "select user_id, status, total, expires_at from orders where id = $1 for update",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (owner, status, total, expires_at) = row.ok_or(Error::OrderNotFound(order_id))?;
        if owner != user_id {
            return Err(Error::Forbidden(format!(
                "order {order_id} is not user {user_id}'s"
            )));
        }
        if status != OrderStatus::PendingPayment {
            return Err(Error::OrderNotPayable(status.as_str().into()));
        }
        if expires_at <= Utc::now() {
            return Err(Error::OrderNotPayable("expired".into()));
        }
        let wallet = points::read_wallet(&mut tx, user_id).await?;
        if wallet.balance < total {
            return Err(Error::InsufficientPoints {
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
        let order = read(&mut tx, order_id).await?;
        record_event(&mut tx, "order.paid", &order).await?;
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
            idempotency::store(&mut tx, key, 201, &payment).await?;
        }
        tx.commit().await?;
        metrics::counter!("orders_paid_total").increment(1);
        return Ok(Outcome::Fresh(payment));
    }
    Err(Error::ConcurrentUpdate)
}
