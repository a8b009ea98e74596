//! The coupons users hold (`user_coupons`) once issued: the user's list,
//! whether one may be used by an order, using it and giving it back. Every
//! statement on `user_coupons` outside issuance lives here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use super::{Coupon, Discount, HeldStatus, select_one};
use crate::{
    error::{Error, Result},
    paging::{Page, PageRequest},
    policy::bindings::CouponTerms,
    users,
};

/// One of a user's coupons with its terms, as the user's list shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct HeldCoupon {
    pub user_coupon_id: i64,
    pub coupon_id: i64,
    pub name: String,
    #[sqlx(flatten)]
    pub discount: Discount,
    pub status: HeldStatus,
    pub issued_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub valid_until: DateTime<Utc>,
}

/// A user's coupons with the status they have now: an unused coupon past its
/// `valid_until` is `expired`, which no column stores.
const HELD: &str = "select uc.id as user_coupon_id, uc.coupon_id, c.name,
        c.discount_kind, c.discount_value, c.max_amount,
        case when uc.status = 'available' and c.valid_until <= now() then 'expired'
             else uc.status end as status,
        uc.issued_at, uc.used_at, c.valid_until
   from user_coupons uc
   join coupons c on c.id = uc.coupon_id
  where uc.user_id = $1";

/// The user's coupons, newest first, optionally only those in `status`.
pub(super) async fn list(
    db: &PgPool,
    user_id: i64,
    status: Option<HeldStatus>,
    page: PageRequest,
) -> Result<Page<HeldCoupon>> {
    let mut conn = db.acquire().await?;
    users::ensure_exists(&mut conn, user_id).await?;
    let items = sqlx::query_as(&format!(
        "select * from ({HELD}) held
          where $2::text is null or held.status = $2
          order by user_coupon_id desc
          limit $3 offset $4"
    ))
    .bind(user_id)
    .bind(status)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!(
        "select count(*) from ({HELD}) held where $2::text is null or held.status = $2"
    ))
    .bind(user_id)
    .bind(status)
    .fetch_one(&mut *conn)
    .await?;
    Ok(page.with(items, total))
}

/// A user's coupon with its terms, as an order may use it.
#[derive(Debug, sqlx::FromRow)]
struct Usable {
    user_id: i64,
    held: HeldStatus,
    #[sqlx(flatten)]
    coupon: Coupon,
}

/// The terms of the user's coupon `id`, if an order may use it now:
/// `COUPON_UNAVAILABLE` when it is another user's, used, or not valid now.
/// Read before any lock: [`mark_used`] checks again in the order's
/// transaction.
pub(crate) async fn usable(db: &PgPool, user_id: i64, id: i64) -> Result<CouponTerms> {
    let usable: Option<Usable> = sqlx::query_as(&format!(
        "select uc.user_id, uc.status as held, c.*
           from user_coupons uc, lateral ({}) c
          where uc.id = $1",
        select_one("uc.coupon_id")
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    let usable = usable
        .filter(|usable| usable.user_id == user_id)
        .ok_or_else(|| Error::CouponUnavailable(format!("user coupon {id} is not this user's")))?;
    if usable.held != HeldStatus::Available {
        return Err(Error::CouponUnavailable(format!(
            "user coupon {id} is already used"
        )));
    }
    if !usable.coupon.is_active_at(Utc::now()) {
        return Err(Error::CouponUnavailable(format!(
            "user coupon {id} is not valid now"
        )));
    }
    Ok(usable.coupon.terms())
}

/// Marks the coupon used by `order_id`: only the owner's, only if still
/// available and valid now, since another order may have used it after
/// [`usable`] read it.
pub(crate) async fn mark_used(
    tx: &mut PgConnection,
    user_id: i64,
    user_coupon_id: i64,
    order_id: i64,
) -> Result<()> {
    let used = sqlx::query(
        "update user_coupons uc
            set status = 'used', used_at = now(), order_id = $3
           from coupons c
          where uc.id = $1 and uc.user_id = $2 and uc.status = 'available'
            and c.id = uc.coupon_id and now() >= c.valid_from and now() < c.valid_until",
    )
    .bind(user_coupon_id)
    .bind(user_id)
    .bind(order_id)
    .execute(tx)
    .await?;
    if used.rows_affected() == 1 {
        Ok(())
    } else {
        Err(Error::CouponUnavailable(format!(
            "user coupon {user_coupon_id} was used or expired meanwhile"
        )))
    }
}

/// Gives back the coupons the orders used, so their users may use them
/// again (a coupon past its validity then lists as `expired`).
pub(crate) async fn release(tx: &mut PgConnection, order_ids: &[i64]) -> Result<()> {
    sqlx::query(
        "update user_coupons
            set status = 'available', used_at = null, order_id = null
          where order_id = any($1) and status = 'used'",
    )
    .bind(order_ids)
    .execute(tx)
    .await?;
    Ok(())
}
