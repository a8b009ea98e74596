//! Cancelling and expiring orders: stock and coupon are restored exactly
//! once, because each runs under the order's row lock and only from a
//! status that allows it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
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
    restore(&mut tx, order_id).await?;
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

/// Puts back the stock of the order's lines and frees its coupon. The
/// products are locked in id order, as placing an order does, so the two
/// never deadlock.
async fn restore(tx: &mut PgConnection, order_id: i64) -> Result<()> {
    stock::put_back(tx, &[order_id]).await?;
    coupons::release(tx, &[order_id]).await
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

/// Due orders read per query; each is then expired in a transaction of its own.
const EXPIRY_PAGE: i64 = 100;

/// What one pass over the due orders did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExpiryPass {
    pub expired: usize,
    /// Orders whose expiry failed: they stay pending and the next pass tries
    /// them again.
    pub failed: usize,
}

/// Expires every unpaid order past its `expires_at`, each in a transaction
/// of its own, so that an order that cannot be restored (logged, counted in
/// `orders_expiry_failures_total`, left pending) holds up no other: the pass
/// walks the due orders in `(expires_at, id)` order past the failing ones.
/// Several instances may run this at once: each order is expired under its
/// row lock, taken `skip locked`, by the one instance that gets it. `wake`
/// is told after each page that expired something, so the outbox relay
/// publishes the events as they are written; `stop` ends the pass between
/// two pages.
pub(super) async fn expire_due(
    db: &PgPool,
    wake: &Notify,
    stop: &CancellationToken,
) -> Result<ExpiryPass> {
    let mut pass = ExpiryPass::default();
    // Before every order: `expires_at` is set at placing, after 1970.
    let mut after: (DateTime<Utc>, i64) = (DateTime::UNIX_EPOCH, 0);
    loop {
        let page: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
            "select id, expires_at from orders
              where status = 'pending_payment' and expires_at <= now()
                and (expires_at, id) > ($1, $2)
              order by expires_at, id
              limit $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(EXPIRY_PAGE)
        .fetch_all(db)
        .await?;
        let expired_before = pass.expired;
        for &(id, expires_at) in &page {
            after = (expires_at, id);
            // No connection to be had ends the pass: the others would wait
            // for one in vain. A failure inside the order's own
            // transaction is that order's alone.
            let tx = db.begin().await?;
            match expire(tx, id).await {
                Ok(true) => pass.expired += 1,
                Ok(false) => {}
                Err(err) => {
                    pass.failed += 1;
                    metrics::counter!("orders_expiry_failures_total").increment(1);
                    tracing::error!(%err, order_id = id, "cannot expire an order; it stays pending and is tried again");
                }
            }
        }
        let expired = pass.expired - expired_before;
        if expired > 0 {
            metrics::counter!("orders_expired_total").increment(expired as u64);
            wake.notify_one();
        }
        if page.len() < EXPIRY_PAGE as usize || stop.is_cancelled() {
            return Ok(pass);
        }
    }
}

/// Expires the order if it is still pending and due and no other instance
/// holds it, in one transaction: `false` when there was nothing to do.
async fn expire(mut tx: Transaction<'_, Postgres>, order_id: i64) -> Result<bool> {
    let due: Option<i64> = sqlx::query_scalar(
        "select id from orders
          where id = $1 and status = 'pending_payment' and expires_at <= now()
            for update skip locked",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    if due.is_none() {
        return Ok(false);
    }
    restore(&mut tx, order_id).await?;
    sqlx::query("update orders set status = 'expired', closed_at = now() where id = $1")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    let order = read(&mut tx, order_id).await?;
    record_event(&mut tx, "order.expired", &order).await?;
    tx.commit().await?;
    Ok(true)
}

/// Runs [`expire_due`] every second until cancelled.
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
        match expire_due(db, outbox_wake, &stop).await {
            Ok(ExpiryPass { expired: 0, .. }) => {}
            Ok(pass) => tracing::info!(
                orders = pass.expired,
                failed = pass.failed,
                "expired unpaid orders"
            ),
            Err(err) => tracing::warn!(%err, "cannot expire orders"),
        }
    }
}
