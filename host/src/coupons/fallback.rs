//! Issuance by PostgreSQL alone, while Redis is unavailable.
//!
//! The coupon's row lock (`select ... for update`) serializes the issuances
//! of one coupon across every instance; inside it the user's history and the
//! quantity are checked, the row inserted and counted up. The guarantees are
//! those of the other paths; every request, refusals included, waits for the
//! hottest row lock of the burst, so it is slower.

use sqlx::PgPool;

use super::{IssuedCoupon, count_up, holds, insert_holder};
use crate::error::{Error, Result};

pub(super) async fn issue(db: &PgPool, coupon_id: i64, user_id: i64) -> Result<IssuedCoupon> {
    let mut tx = db.begin().await?;
    let remaining: Option<i32> = sqlx::query_scalar(
        "select total_quantity - issued_quantity from coupons where id = $1 for update",
    )
    .bind(coupon_id)
    .fetch_optional(&mut *tx)
    .await?;
    let remaining = remaining.ok_or(Error::CouponNotFound(coupon_id))?;
    if holds(&mut tx, coupon_id, user_id).await? {
        return Err(Error::CouponAlreadyIssued { coupon_id, user_id });
    }
    if remaining <= 0 {
        return Err(Error::CouponSoldOut(coupon_id));
    }
    let issued = insert_holder(&mut tx, coupon_id, user_id).await?;
    count_up(&mut tx, coupon_id).await?;
    tx.commit().await?;
    Ok(issued)
}
