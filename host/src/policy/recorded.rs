//! The exact inputs each order was priced with, kept for replaying history
//! through a candidate (`commerce policy replay`).
//!
//! One `jsonb` per order in `order_policy_inputs`, written in the order's
//! transaction: the three calls' input records as the policies received them,
//! configuration and `now` included, in the newest contract's types. Rows
//! older than `POLICY_INPUT_RETENTION_DAYS` are pruned hourly.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, types::Json};
use tokio_util::sync::CancellationToken;

use super::bindings::{ApplyInput, Contract, OrderInput, PricingInput};

/// What the policies were asked when an order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedInputs {
    /// The contract version of these records, so a later host can adapt them.
    pub contract: String,
    pub pricing: PricingInput,
    /// `None` when the order used no coupon.
    pub coupon: Option<ApplyInput>,
    pub order_rules: OrderInput,
}

impl RecordedInputs {
    pub fn new(pricing: PricingInput, coupon: Option<ApplyInput>, order_rules: OrderInput) -> Self {
        Self {
            contract: Contract::LATEST.version().to_owned(),
            pricing,
            coupon,
            order_rules,
        }
    }
}

/// Records an order's inputs, in the order's transaction.
pub async fn record(
    tx: &mut PgConnection,
    order_id: i64,
    inputs: &RecordedInputs,
) -> sqlx::Result<()> {
    sqlx::query("insert into order_policy_inputs (order_id, inputs) values ($1, $2)")
        .bind(order_id)
        .bind(Json(inputs))
        .execute(tx)
        .await
        .map(drop)
}

/// An order as a replay sees it: what the policies were asked and what the
/// order came to.
#[derive(Debug, sqlx::FromRow)]
pub struct RecordedOrder {
    pub order_id: i64,
    pub created_at: DateTime<Utc>,
    pub inputs: Json<RecordedInputs>,
    /// The lines' totals, in line order.
    pub line_totals: Vec<i64>,
    pub subtotal: i64,
    pub discount: i64,
}

/// Up to `limit` orders placed since `since` with an id above `after`, in id
/// order: one page of a replay.
pub async fn page(
    db: &PgPool,
    since: DateTime<Utc>,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<RecordedOrder>> {
    sqlx::query_as(
        "select i.order_id, i.created_at, i.inputs, o.subtotal, o.discount,
                array(select l.line_total from order_lines l
                       where l.order_id = o.id order by l.line_no) as line_totals
           from order_policy_inputs i
           join orders o on o.id = i.order_id
          where i.created_at >= $1 and i.order_id > $2
          order by i.order_id
          limit $3",
    )
    .bind(since)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// How many orders placed since `since` a replay would read.
pub async fn count(db: &PgPool, since: DateTime<Utc>) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from order_policy_inputs where created_at >= $1")
        .bind(since)
        .fetch_one(db)
        .await
}

/// Deletes inputs older than `days` days, every hour, until cancelled.
pub async fn prune_periodically(db: PgPool, days: u32, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        match prune(&db, days).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(orders = pruned, "pruned recorded policy inputs"),
            Err(err) => tracing::warn!(%err, "cannot prune recorded policy inputs"),
        }
    }
}

/// Deletes inputs older than `days` days, in batches so no statement holds
/// many row locks for long.
pub async fn prune(db: &PgPool, days: u32) -> sqlx::Result<u64> {
    let mut pruned = 0;
    loop {
        let batch = sqlx::query(
            "delete from order_policy_inputs
              where order_id in (select order_id from order_policy_inputs
                                  where created_at < now() - make_interval(days => $1)
                                  limit 5000)",
        )
        .bind(i32::try_from(days).unwrap_or(i32::MAX))
        .execute(db)
        .await?
        .rows_affected();
        pruned += batch;
        if batch < 5000 {
            return Ok(pruned);
        }
    }
}
