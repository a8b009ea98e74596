//! Cancelling and expiring orders: stock and coupon are restored exactly
//! once, because each runs under the order's row lock and only from a
//! status that allows it.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Order, OrderStatus, read, record_event, stock};
use crate::{
    coupons,
    error::{Error, Result},
    identity::OrderScope,
    points::{self, Kind},
};

/// Attempts of the optimistic refund before giving up.
const REFUND_ATTEMPTS: u32 = 5;

/// What a cancel did, for the side effects after commit.
pub(super) struct Cancelled {
    pub order: Order,
    pub was_paid: bool,
}

/// Cancels the order if `scope` may see it: another user's order is
/// `ORDER_NOT_FOUND`, as if it did not exist.
pub(super) async fn cancel(db: &PgPool, scope: OrderScope, order_id: i64) -> Result<Cancelled> {
    let mut tx = db.begin().await?;
    let row: Option<(i64, OrderStatus, i64)> =
        sqlx::query_as("select user_id, status, total from orders where id = $1 for update")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (user_id, status, total) = row
        .filter(|(owner, _, _)| scope.allows(*owner))
        .ok_or(Error::OrderNotFound(order_id))?;
    if !matches!(status, OrderStatus::PendingPayment | OrderStatus::Paid) {
        return Err(Error::OrderNotCancellable(status.as_str().into()));
    }
    restore(&mut tx, &[order_id]).await?;
    let was_paid = status == OrderStatus::Paid;
    if was_paid && total > 0 {
        refund(&mut tx, user_id, total, order_id).await?;
    }
    sqlx::query("update orders set status = 'cancelled', closed_at = now() where id = $1")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    let order = read(&mut tx, order_id).await?;
    record_event(&mut tx, "order.cancelled", &order).await?;
    tx.commit().await?;
    metrics::counter!("orders_cancelled_total").increment(1);
    Ok(Cancelled { order, was_paid })
}

/// Puts back the stock of the orders' lines and frees their coupons. The
/// products of all the orders are locked together in id order, as placing
/// an order does, so the two never deadlock.
async fn restore(tx: &mut PgConnection, order_ids: &[i64]) -> Result<()> {
    stock::put_back(tx, order_ids).await?;
    coupons::release(tx, order_ids).await
}

/// Gives a paid order's points back, with the wallet's optimistic version.
async fn refund(tx: &mut PgConnection, user_id: i64, amount: i64, order_id: i64) -> Result<()> {
    for _ in 0..REFUND_ATTEMPTS {
        let wallet = points::read_wallet(tx, user_id).await?;
        if points::apply(tx, user_id, wallet, Kind::Refund, amount, Some(order_id)).await? {
            sqlx::query("update payments set refunded_at = now() where order_id = $1")
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
            return Ok(());
        }
    }
    Err(Error::ConcurrentUpdate)
}

/// Orders expired per transaction.
const EXPIRY_BATCH: i64 = 100;

/// Expires unpaid orders past `expires_at`, up to [`EXPIRY_BATCH`] of
/// them in one transaction. When that fails, each order of the batch is
/// expired in a transaction of its own, so one order that cannot be restored
/// (it stays pending, logged, and is tried again) holds up no other. Several
/// instances may run this at once: `skip locked` hands each order to one.
pub(super) async fn expire_due(db: &PgPool) -> Result<usize> {
    let due: Vec<i64> = sqlx::query_scalar(
        "select id from orders
          where status = 'pending_payment' and expires_at <= now()
          order by id
          limit $1",
    )
    .bind(EXPIRY_BATCH)
    .fetch_all(db)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let expired = match expire(db, &due).await {
        Ok(expired) => expired,
        Err(err) => {
            tracing::warn!(%err, orders = due.len(), "cannot expire a batch of orders; expiring them one by one");
            let mut expired = 0;
            for id in due {
                match expire(db, &[id]).await {
                    Ok(n) => expired += n,
                    Err(err) => {
                        metrics::counter!("orders_expiry_failures_total").increment(1);
                        tracing::error!(%err, order_id = id, "cannot expire an order; it stays pending and is tried again");
                    }
                }
            }
            expired
        }
    };
    metrics::counter!("orders_expired_total").increment(expired as u64);
    Ok(expired)
}

/// Expires those of `candidates` still pending and due, in one transaction.
async fn expire(db: &PgPool, candidates: &[i64]) -> Result<usize> {
    let mut tx = db.begin().await?;
    let due: Vec<i64> = sqlx::query_scalar(
        "select id from orders
          where id = any($1) and status = 'pending_payment' and expires_at <= now()
          order by id
            for update skip locked",
    )
    .bind(candidates)
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    restore(&mut tx, &due).await?;
    sqlx::query("update orders set status = 'expired', closed_at = now() where id = any($1)")
        .bind(&due)
        .execute(&mut *tx)
        .await?;
    for id in &due {
        let order = read(&mut tx, *id).await?;
        record_event(&mut tx, "order.expired", &order).await?;
    }
    tx.commit().await?;
    Ok(due.len())
}

/// Runs [`expire_due`] every second until cancelled, waking the outbox
/// relay for the events it wrote.
pub(super) async fn expire_periodically(
    db: &PgPool,
    outbox_wake: &Notify,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        loop {
            match expire_due(db).await {
                Ok(0) => break,
                Ok(n) => {
                    outbox_wake.notify_one();
                    if n == EXPIRY_BATCH as usize {
                        continue;
                    }
                    tracing::info!(orders = n, "expired unpaid orders");
                    break;
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot expire orders");
                    break;
                }
            }
        }
    }
}
