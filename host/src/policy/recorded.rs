//! The exact inputs each order was priced with, kept for replaying history
//! through a candidate (`commerce policy replay`).
//!
//! One `jsonb` per order in `order_policy_inputs`, written in the order's
//! transaction: the three calls' input records as the policies received them,
//! configuration and `now` included, in the newest contract's types, with
//! that contract's version. They are read back through the version they
//! name ([`RecordedInputs::read`]), so a later contract does not change what
//! a replay of an older order sees. Rows older than
//! `POLICY_INPUT_RETENTION_DAYS` are pruned hourly.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, types::Json};
use tokio_util::sync::CancellationToken;

use serde_json::Value;

use super::{
    bindings::{ApplyInput, Contract, OrderInput, PricingInput},
    call::Call,
};

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

    /// Recorded inputs as stored, read in the types of the contract
    /// version they name and converted to the newest's.
    pub fn read(stored: &Value) -> Result<Self, String> {
        let version = stored["contract"].as_str().unwrap_or_default();
        let contract = Contract::named(version).ok_or_else(|| {
            format!("recorded with contract {version:?}, which this host does not serve")
        })?;
        let pricing = match contract.read_call("price", &stored["pricing"])? {
            Call::Price(input) => input,
            _ => return Err("pricing is not a price input".to_owned()),
        };
        let coupon = match &stored["coupon"] {
            Value::Null => None,
            input => match contract.read_call("apply", input)? {
                Call::Apply(input) => Some(input),
                _ => return Err("coupon is not an apply input".to_owned()),
            },
        };
        let order_rules = match contract.read_call("check", &stored["order_rules"])? {
            Call::Check(input) => input,
            _ => return Err("order_rules is not a check input".to_owned()),
        };
        Ok(Self {
            contract: Contract::LATEST.version().to_owned(),
            pricing,
            coupon,
            order_rules,
        })
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

/// An order as a replay sees it: what the policies were asked (in the
/// newest contract's types) and what the order came to.
#[derive(Debug)]
pub struct RecordedOrder {
    pub order_id: i64,
    pub created_at: DateTime<Utc>,
    pub inputs: RecordedInputs,
    /// The lines' totals, in line order.
    pub line_totals: Vec<i64>,
    pub subtotal: i64,
    pub discount: i64,
}

/// A row as stored: the inputs in the version they were recorded in.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    order_id: i64,
    created_at: DateTime<Utc>,
    inputs: Json<Value>,
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
) -> anyhow::Result<Vec<RecordedOrder>> {
    let rows: Vec<Row> = sqlx::query_as(
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
    .await?;
    rows.into_iter()
        .map(|row| {
            let inputs = RecordedInputs::read(&row.inputs.0).map_err(|err| {
                anyhow::anyhow!("order {}'s recorded inputs: {err}", row.order_id)
            })?;
            Ok(RecordedOrder {
                order_id: row.order_id,
                created_at: row.created_at,
                inputs,
                line_totals: row.line_totals,
                subtotal: row.subtotal,
                discount: row.discount,
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(lifetime_spend: Option<i64>) -> Value {
        let mut user = json!({"id": 7, "created_at": 0, "paid_orders": 2});
        if let Some(spent) = lifetime_spend {
            user["lifetime_spend"] = json!(spent);
        }
        user
    }

    fn stored(contract: &str, user: Value) -> Value {
        json!({
            "contract": contract,
            "pricing": {"lines": [], "user": user, "now": 5, "config": [["days", "7"]]},
            "coupon": null,
            "order_rules": {"lines": [], "subtotal": 0, "coupon_discount": 0, "total": 0,
                            "user": user, "coupon": null, "now": 5, "config": []},
        })
    }

    #[test]
    fn inputs_are_read_in_the_version_they_were_recorded_in() {
        let newest = RecordedInputs::read(&stored("1.1.0", user(Some(900)))).expect("1.1.0");
        assert_eq!(newest.pricing.user.lifetime_spend, 900);
        assert_eq!(
            newest.pricing.config,
            vec![("days".to_owned(), "7".to_owned())]
        );
        // 1.0.0 had no lifetime spend: read as 1.0.0, it is taken as none.
        let older = RecordedInputs::read(&stored("1.0.0", user(None))).expect("1.0.0");
        assert_eq!(older.order_rules.user.lifetime_spend, 0);
        // A 1.1.0 record must carry what 1.1.0 has.
        assert!(RecordedInputs::read(&stored("1.1.0", user(None))).is_err());
        assert!(RecordedInputs::read(&stored("9.0.0", user(Some(1)))).is_err());
    }
}
