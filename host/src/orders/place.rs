//! Placing an order: a repeat of an idempotent request is answered from
//! what was stored before anything else is read; then the cart is priced
//! with the policies, then one transaction locks the products in id order,
//! takes the stock, marks the coupon used and stores the order.

use std::collections::HashMap;

use chrono::Utc;
use sqlx::PgPool;

use super::{Order, read, record_event, stock};
use crate::{
    coupons,
    error::Result,
    idempotency::{self, Checked, IdempotentRequest, Outcome},
    identity::Acting,
    policy::{recorded, registry::Policies},
    quote::{self, CartItem, Quote},
};

/// What a client asks to order (or to quote).
pub struct Cart {
    pub items: Vec<CartItem>,
    pub user_coupon_id: Option<i64>,
}

pub(super) async fn place(
    db: &PgPool,
    policies: Policies,
    ttl: std::time::Duration,
    acting: Acting,
    cart: Cart,
    key: Option<&IdempotentRequest>,
) -> Result<Outcome<Order>> {
    let user_id = acting.user_id();
    let priced = idempotency::before_checks(db, key, async {
        let inputs = quote::gather(db, user_id, &cart.items, cart.user_coupon_id).await?;
        // The catalogue prices the policies saw, to re-check under the locks.
        let seen: HashMap<i64, i64> = inputs
            .lines
            .iter()
            .map(|line| (line.product_id as i64, line.unit_price))
            .collect();
        let quote = quote::evaluate(policies, inputs).await?;
        Ok((seen, quote))
    })
    .await?;
    let (seen, quote) = match priced {
        Checked::Passed(priced) => priced,
        Checked::Answered(stored) => return Ok(Outcome::Replayed(stored)),
    };
    take(db, &quote, &seen, ttl, user_id, key).await
}

/// The transaction: claims the key first (a repeat that raced this far is
/// answered from what the first stored), then takes the stock, stores the
/// order and uses the coupon.
async fn take(
    db: &PgPool,
    quote: &Quote,
    seen: &HashMap<i64, i64>,
    ttl: std::time::Duration,
    user_id: i64,
    key: Option<&IdempotentRequest>,
) -> Result<Outcome<Order>> {
    let mut tx = db.begin().await?;
    if let Some(key) = key
        && let Some(stored) = idempotency::claim(&mut tx, key).await?
    {
        return Ok(Outcome::Replayed(stored));
    }
    stock::take(
        &mut tx,
        quote
            .items
            .iter()
            .map(|line| (line.product_id, line.quantity)),
        seen,
    )
    .await?;
    let order_id = insert(&mut tx, user_id, quote, ttl).await?;
    // What the policies were asked, for replaying orders through a candidate.
    recorded::record(&mut tx, order_id, &quote.inputs).await?;
    if let Some(user_coupon_id) = quote.user_coupon_id {
        coupons::mark_used(&mut tx, user_id, user_coupon_id, order_id).await?;
    }
    let placed = read(&mut tx, order_id).await?;
    record_event(&mut tx, "order.placed", &placed).await?;
    if let Some(key) = key {
        idempotency::store(&mut tx, key, 201, &placed).await?;
    }
    tx.commit().await?;
    metrics::counter!("orders_placed_total").increment(1);
    Ok(Outcome::Fresh(placed))
}

async fn insert(
    tx: &mut sqlx::PgConnection,
    user_id: i64,
    quote: &Quote,
    ttl: std::time::Duration,
) -> Result<i64> {
    let expires_at =
        Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10));
    let order_id: i64 = sqlx::query_scalar(
        "insert into orders (user_id, subtotal, discount, total, user_coupon_id,
                             pricing_policy, coupon_policy, order_rules_policy, policy_sha256, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         returning id",
    )
    .bind(user_id)
    .bind(quote.subtotal)
    .bind(quote.discount)
    .bind(quote.total)
    .bind(quote.user_coupon_id)
    .bind(&quote.policies.pricing)
    .bind(&quote.policies.coupon)
    .bind(&quote.policies.order_rules)
    .bind(&quote.policy_sha256)
    .bind(expires_at)
    .fetch_one(&mut *tx)
    .await?;
    let line_nos: Vec<i32> = (1..=quote.items.len() as i32).collect();
    let column = |f: fn(&quote::QuotedLine) -> i64| quote.items.iter().map(f).collect::<Vec<i64>>();
    sqlx::query(
        "insert into order_lines (order_id, line_no, product_id, name, quantity, unit_price, discount, line_total, reason)
         select $1, x.*
           from unnest($2::integer[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[])
             as x(line_no, product_id, name, quantity, unit_price, discount, line_total, reason)",
    )
    .bind(order_id)
    .bind(&line_nos)
    .bind(column(|l| l.product_id))
    .bind(quote.items.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
    .bind(column(|l| l.quantity))
    .bind(column(|l| l.unit_price))
    .bind(column(|l| l.discount))
    .bind(column(|l| l.line_total))
    .bind(quote.items.iter().map(|l| l.reason.clone()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(order_id)
}
