//! Stock moves: an order takes its units under row locks and gives them
//! back exactly once when it is cancelled or expires.
//!
//! Product rows are always locked in id order, by placing and by restoring
//! alike, so two transactions never wait on each other in a cycle; and
//! `stock` never goes below zero because units are taken only from rows
//! locked and checked in the same transaction.

use std::collections::{BTreeMap, HashMap};

use sqlx::PgConnection;

use crate::error::{Error, Result};

/// Takes the units of `lines` (`(product_id, quantity)`, a product may be on
/// several) from stock. `priced_at` holds the unit price each product had
/// when the cart was priced: a product whose price changed since is a
/// `CONCURRENT_UPDATE` (the order would be priced on a stale price), and
/// products short of stock are `OUT_OF_STOCK` with their ids. Nothing is
/// taken unless everything is.
pub(super) async fn take(
    tx: &mut PgConnection,
    lines: impl IntoIterator<Item = (i64, i64)>,
    priced_at: &HashMap<i64, i64>,
) -> Result<()> {
    let (ids, units) = units_by_product(lines);
    let locked = lock(tx, &ids).await?;
    if locked.len() != ids.len() {
        return Err(Error::ConcurrentUpdate);
    }
    let mut short = Vec::new();
    for ((id, stock, price), wanted) in locked.iter().zip(&units) {
        if priced_at.get(id) != Some(price) {
            return Err(Error::ConcurrentUpdate);
        }
        if stock < wanted {
            short.push(*id);
        }
    }
    if !short.is_empty() {
        metrics::counter!("orders_out_of_stock_total").increment(1);
        return Err(Error::OutOfStock(short));
    }
    shift(tx, &ids, &units, -1).await
}

/// Gives back the units of every line of the orders. The caller makes sure
/// it runs once per order (its status moves in the same transaction).
pub(super) async fn put_back(tx: &mut PgConnection, order_ids: &[i64]) -> Result<()> {
    let lines: Vec<(i64, i32)> =
        sqlx::query_as("select product_id, quantity from order_lines where order_id = any($1)")
            .bind(order_ids)
            .fetch_all(&mut *tx)
            .await?;
    let (ids, units) = units_by_product(lines.into_iter().map(|(id, q)| (id, i64::from(q))));
    lock(tx, &ids).await?;
    shift(tx, &ids, &units, 1).await
}

/// Units per product, in product-id order: the order in which their rows
/// are locked. A product on two lines is counted once.
fn units_by_product(lines: impl IntoIterator<Item = (i64, i64)>) -> (Vec<i64>, Vec<i32>) {
    let mut units: BTreeMap<i64, i64> = BTreeMap::new();
    for (product_id, quantity) in lines {
        *units.entry(product_id).or_default() += quantity;
    }
    units
        .into_iter()
        .map(|(id, quantity)| (id, i32::try_from(quantity).unwrap_or(i32::MAX)))
        .unzip()
}

/// Locks the products' rows in id order and returns `(id, stock, price)`.
async fn lock(tx: &mut PgConnection, ids: &[i64]) -> Result<Vec<(i64, i32, i64)>> {
    Ok(sqlx::query_as(
        "select id, stock, price from products where id = any($1) order by id for update",
    )
    .bind(ids)
    .fetch_all(tx)
    .await?)
}

/// Moves stock by `sign * units` for each product (already locked).
async fn shift(tx: &mut PgConnection, ids: &[i64], units: &[i32], sign: i32) -> Result<()> {
    sqlx::query(
        "update products p
            set stock = p.stock + $3 * x.units
           from unnest($1::bigint[], $2::integer[]) as x(id, units)
          where p.id = x.id",
    )
    .bind(ids)
    .bind(units)
    .bind(sign)
    .execute(tx)
    .await?;
    Ok(())
}
