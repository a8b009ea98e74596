//! First-come-first-served coupons: an operator creates one with a total
//! quantity, users are issued it once each until the total is out, and a
//! user lists what they hold.
//!
//! PostgreSQL is the source of truth. `user_coupons` has one row per issued
//! coupon, unique per user, and `coupons.issued_quantity` counts the rows
//! under a conditional update that never passes `total_quantity`; both change
//! in one transaction. Redis makes the frequent answers cheap and serializes
//! the rest (the `issue` module tells how), but whatever Redis says or
//! forgets, a write the database would refuse stays refused.

mod batch;
mod circuit;
mod fallback;
mod held;
mod issue;
mod lock;
mod reserve;

use std::{future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use crate::{
    audit::{self, Actor},
    error::{Error, Result},
    identity::Acting,
    paging::{Page, PageRequest},
    policy::{
        Registry,
        bindings::{self, CouponTerms},
    },
    redis::Redis,
};

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Most coupons one coupon may issue.
pub const MAX_TOTAL_QUANTITY: i64 = 10_000_000;

pub use crate::config::IssueStrategy;
pub use held::HeldCoupon;
pub(crate) use held::{mark_used, release, usable};

/// The coupon service: creation, the public view, issuance and a user's
/// coupons. It keeps what issuance shares between the requests of one
/// process.
pub struct Coupons {
    db: PgPool,
    redis: Redis,
    /// The coupon slot's active version decides who may be issued one.
    policies: Arc<Registry>,
    strategy: IssueStrategy,
    circuit: circuit::Circuit,
    turns: lock::Turns,
    /// Records `reserve`'s issuances, several per statement in a burst.
    recorder: batch::Recorder,
    /// Coupons as first read: their terms are current, their counts are not.
    terms: moka::future::Cache<i64, Arc<Coupon>>,
    /// Coupons PostgreSQL counted as sold out.
    sold_out: moka::future::Cache<i64, ()>,
}

impl Coupons {
    /// Starts the process's recording task in `tasks`, which shutdown awaits
    /// so that no queued issuance is dropped.
    pub(crate) fn start(
        db: PgPool,
        redis: Redis,
        policies: Arc<Registry>,
        strategy: IssueStrategy,
        tasks: &crate::tasks::Tasks,
    ) -> Self {
        Self {
            recorder: batch::Recorder::start(db.clone(), tasks),
            db,
            redis,
            policies,
            strategy,
            circuit: circuit::Circuit::new(),
            turns: lock::Turns::new(),
            terms: issue::kept(),
            sold_out: issue::kept(),
        }
    }

    /// Creates the coupon and records who did in the audit log.
    pub async fn create(&self, actor: &Actor, new: NewCoupon) -> Result<Coupon> {
        new.validate()?;
        let mut tx = self.db.begin().await?;
        let coupon = insert(&mut tx, &new).await?;
        let change = audit::Change {
            action: "coupon.create",
            target: format!("coupon:{}", coupon.id),
            before: None,
            after: serde_json::to_value(&coupon).ok(),
        };
        audit::record(&mut tx, actor, change).await?;
        tx.commit().await?;
        Ok(coupon)
    }

    pub async fn find(&self, id: i64) -> Result<Coupon> {
        find(&self.db, id).await
    }

    /// Issues the coupon to the user, or says why not.
    pub async fn issue(self: &Arc<Self>, to: Acting, coupon_id: i64) -> Result<IssuedCoupon> {
        issue::issue(self, coupon_id, to.user_id()).await
    }

    /// The user's coupons, newest first, optionally only those in `status`.
    pub async fn held(
        &self,
        of: Acting,
        status: Option<HeldStatus>,
        page: PageRequest,
    ) -> Result<Page<HeldCoupon>> {
        held::list(&self.db, of.user_id(), status, page).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum DiscountKind {
    /// `value` percent off, at most `max_amount` won when it is set.
    Percent,
    /// `value` won off.
    Fixed,
}

/// What a coupon takes off an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "percent", "value": 10, "max_amount": 5000}))]
pub struct Discount {
    #[sqlx(rename = "discount_kind")]
    pub kind: DiscountKind,
    /// Percent off (1-100) for `percent`; won off (> 0) for `fixed`.
    #[sqlx(rename = "discount_value")]
    pub value: i64,
    /// Cap of a `percent` discount in won; absent for no cap. A `fixed`
    /// discount has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<i64>,
}

impl Discount {
    fn validate(&self) -> Result<()> {
        match self.kind {
            DiscountKind::Percent if !(1..=100).contains(&self.value) => {
                Err(Error::invalid("a percent discount's value must be 1-100"))
            }
            DiscountKind::Fixed if self.value < 1 => Err(Error::invalid(
                "a fixed discount's value must be at least 1 won",
            )),
            DiscountKind::Fixed if self.max_amount.is_some() => Err(Error::invalid(
                "max_amount caps percent discounts only; a fixed discount has none",
            )),
            _ if self.max_amount.is_some_and(|max| max < 1) => {
                Err(Error::invalid("max_amount must be at least 1 won"))
            }
            _ => Ok(()),
        }
    }
}

/// A coupon as everyone may read it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Coupon {
    pub id: i64,
    pub name: String,
    #[sqlx(flatten)]
    pub discount: Discount,
    pub total_quantity: i32,
    /// Issued so far, as PostgreSQL counts them.
    pub issued_quantity: i32,
    /// `total_quantity - issued_quantity`.
    pub remaining: i32,
    /// Smallest order subtotal the coupon applies to, in won.
    pub min_order_amount: i64,
    pub valid_from: DateTime<Utc>,
    /// The first instant the coupon is no longer valid.
    pub valid_until: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, discount_kind, discount_value, max_amount, total_quantity,
    issued_quantity, total_quantity - issued_quantity as remaining, min_order_amount,
    valid_from, valid_until";

/// The select of one coupon by the id in `id` (a parameter or a column).
pub(crate) fn select_one(id: &str) -> String {
    format!("select {COLUMNS} from coupons where id = {id}")
}

impl Coupon {
    /// Valid from `valid_from` (included) until `valid_until` (excluded).
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.valid_from <= now && now < self.valid_until
    }

    /// The terms, as policies see them.
    pub fn terms(&self) -> CouponTerms {
        CouponTerms {
            coupon_id: self.id as u64,
            name: self.name.clone(),
            kind: match self.discount.kind {
                DiscountKind::Percent => bindings::DiscountKind::Percent,
                DiscountKind::Fixed => bindings::DiscountKind::Fixed,
            },
            value: self.discount.value,
            max_amount: self.discount.max_amount,
            min_order_amount: self.min_order_amount,
            valid_from: self.valid_from.timestamp(),
            valid_until: self.valid_until.timestamp(),
        }
    }
}

/// A new coupon, as the admin API receives it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCoupon {
    /// 1-100 characters.
    #[schema(example = "Opening week 10%")]
    pub name: String,
    pub discount: Discount,
    /// 1-10,000,000.
    #[schema(example = 100)]
    pub total_quantity: i64,
    /// Smallest order subtotal the coupon applies to, in won; 0 when absent.
    #[serde(default)]
    pub min_order_amount: i64,
    /// RFC 3339; the coupon is issued and applies from this instant...
    pub valid_from: DateTime<Utc>,
    /// ...until this one, excluded. After `valid_from`.
    pub valid_until: DateTime<Utc>,
}

impl NewCoupon {
    fn validate(&self) -> Result<()> {
        crate::validate::text("name", &self.name, MAX_NAME_CHARS)?;
        self.discount.validate()?;
        if !(1..=MAX_TOTAL_QUANTITY).contains(&self.total_quantity) {
            return Err(Error::invalid(format!(
                "total_quantity must be 1-{MAX_TOTAL_QUANTITY}"
            )));
        }
        if self.min_order_amount < 0 {
            return Err(Error::invalid("min_order_amount must not be negative"));
        }
        if self.valid_from >= self.valid_until {
            return Err(Error::invalid("valid_from must be before valid_until"));
        }
        Ok(())
    }
}

/// Creates a coupon outside the admin API (tests, benchmarks), unaudited.
pub async fn create(db: &PgPool, new: NewCoupon) -> Result<Coupon> {
    new.validate()?;
    insert(&mut *db.acquire().await?, &new).await
}

async fn insert(conn: &mut PgConnection, new: &NewCoupon) -> Result<Coupon> {
    let coupon = sqlx::query_as(&format!(
        "insert into coupons (name, discount_kind, discount_value, max_amount, total_quantity,
                              min_order_amount, valid_from, valid_until)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning {COLUMNS}"
    ))
    .bind(new.name.trim())
    .bind(new.discount.kind)
    .bind(new.discount.value)
    .bind(new.discount.max_amount)
    .bind(new.total_quantity as i32)
    .bind(new.min_order_amount)
    .bind(new.valid_from)
    .bind(new.valid_until)
    .fetch_one(conn)
    .await?;
    Ok(coupon)
}

pub(crate) async fn find(db: &PgPool, id: i64) -> Result<Coupon> {
    sqlx::query_as(&select_one("$1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(Error::CouponNotFound(id))
}

/// Where a user's coupon stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum HeldStatus {
    /// Issued, not used, and the coupon is still valid.
    Available,
    /// Used by an order.
    Used,
    /// Not used, and the coupon's `valid_until` has passed.
    Expired,
}

/// A coupon issued to a user.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct IssuedCoupon {
    pub user_coupon_id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    /// `available` on issue.
    pub status: HeldStatus,
    pub issued_at: DateTime<Utc>,
}

/// Whether the user already holds the coupon.
async fn holds(conn: &mut PgConnection, coupon_id: i64, user_id: i64) -> Result<bool> {
    let holds = sqlx::query_scalar(
        "select exists (select 1 from user_coupons where coupon_id = $1 and user_id = $2)",
    )
    .bind(coupon_id)
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok(holds)
}

/// Inserts the user's row. The unique key `(coupon_id, user_id)` refuses a
/// second one, whatever any check before said.
async fn insert_holder(
    conn: &mut PgConnection,
    coupon_id: i64,
    user_id: i64,
) -> Result<IssuedCoupon> {
    let inserted = sqlx::query_as(
        "insert into user_coupons (coupon_id, user_id) values ($1, $2)
         returning id as user_coupon_id, coupon_id, user_id, status, issued_at",
    )
    .bind(coupon_id)
    .bind(user_id)
    .fetch_one(conn)
    .await;
    match inserted {
        Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
            Err(Error::CouponAlreadyIssued { coupon_id, user_id })
        }
        other => Ok(other?),
    }
}

/// Counts one more issued, never past the total: no row updated means the
/// last one is gone.
async fn count_up(conn: &mut PgConnection, coupon_id: i64) -> Result<()> {
    let counted = sqlx::query(
        "update coupons set issued_quantity = issued_quantity + 1
          where id = $1 and issued_quantity < total_quantity",
    )
    .bind(coupon_id)
    .execute(conn)
    .await?;
    if counted.rows_affected() == 0 {
        return Err(Error::CouponSoldOut(coupon_id));
    }
    Ok(())
}

/// Records an issuance in one statement, so one round trip: the coupon
/// counted up, never past its total, and the user's row inserted only if it
/// was. Every issuance of the coupon waits for that row's lock, which is
/// then held for the statement and its commit alone, with no round trip to
/// this process in between. A second row for the user breaks the unique
/// key, which fails the whole statement, count included.
async fn record(db: &PgPool, coupon_id: i64, user_id: i64) -> Result<IssuedCoupon> {
    let recorded = sqlx::query_as(
        "with counted as (
             update coupons set issued_quantity = issued_quantity + 1
              where id = $1 and issued_quantity < total_quantity
             returning id)
         insert into user_coupons (coupon_id, user_id)
         select id, $2 from counted
         returning id as user_coupon_id, coupon_id, user_id, status, issued_at",
    )
    .bind(coupon_id)
    .bind(user_id)
    .fetch_optional(db)
    .await;
    match recorded {
        Ok(Some(issued)) => Ok(issued),
        Ok(None) => Err(Error::CouponSoldOut(coupon_id)),
        Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
            Err(Error::CouponAlreadyIssued { coupon_id, user_id })
        }
        Err(err) => Err(err.into()),
    }
}

/// How long one Redis call of the issuance path may take before the request
/// takes the PostgreSQL path instead. Shorter than the connection's own
/// response timeout: a request should not wait a second to learn that Redis
/// is gone.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// A key of one coupon's state. Every key of a coupon carries the hash tag
/// `{<id>}`, so they share one Redis Cluster slot and one script may use them
/// together.
fn key(redis: &Redis, coupon_id: i64, name: &str) -> String {
    redis.key(&format!("coupon:{{{coupon_id}}}:{name}"))
}

/// Why a path through Redis did not issue.
#[derive(Debug)]
pub enum Failure {
    /// The answer for the client: sold out, already issued, busy, a database
    /// error.
    Answer(Error),
    /// Redis did not answer in time, or answered with an error: nothing was
    /// written to PostgreSQL, and the request may take the PostgreSQL path.
    Redis(String),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Answer(err)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Failure::Answer(err.into())
    }
}

/// Runs one Redis call within [`REDIS_TIMEOUT`].
async fn within<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, Failure> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Failure::Redis(err.to_string())),
        Err(_) => Err(Failure::Redis(format!(
            "no answer within {REDIS_TIMEOUT:?}"
        ))),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percent(value: i64, max_amount: Option<i64>) -> Discount {
        Discount {
            kind: DiscountKind::Percent,
            value,
            max_amount,
        }
    }

    fn fixed(value: i64, max_amount: Option<i64>) -> Discount {
        Discount {
            kind: DiscountKind::Fixed,
            value,
            max_amount,
        }
    }

    #[test]
    fn a_percent_discount_is_one_to_a_hundred_with_an_optional_positive_cap() {
        assert!(percent(1, None).validate().is_ok());
        assert!(percent(100, Some(5_000)).validate().is_ok());
        assert!(percent(0, None).validate().is_err());
        assert!(percent(101, None).validate().is_err());
        assert!(percent(10, Some(0)).validate().is_err());
    }

    #[test]
    fn a_fixed_discount_is_positive_and_has_no_cap() {
        assert!(fixed(3_000, None).validate().is_ok());
        assert!(fixed(0, None).validate().is_err());
        assert!(fixed(3_000, Some(1_000)).validate().is_err());
    }

    #[test]
    fn a_new_coupon_needs_a_name_a_quantity_and_an_ordered_validity() {
        let now = Utc::now();
        let valid = NewCoupon {
            name: "Opening week".into(),
            discount: percent(10, Some(5_000)),
            total_quantity: 100,
            min_order_amount: 0,
            valid_from: now,
            valid_until: now + chrono::Duration::days(30),
        };
        assert!(valid.validate().is_ok());
        let with = |change: fn(&mut NewCoupon)| {
            let mut coupon = valid.clone();
            change(&mut coupon);
            coupon.validate()
        };
        assert!(with(|c| c.name = "  ".into()).is_err());
        assert!(with(|c| c.name = "x".repeat(101)).is_err());
        assert!(with(|c| c.total_quantity = 0).is_err());
        assert!(with(|c| c.total_quantity = MAX_TOTAL_QUANTITY + 1).is_err());
        assert!(with(|c| c.total_quantity = MAX_TOTAL_QUANTITY).is_ok());
        assert!(with(|c| c.min_order_amount = -1).is_err());
        assert!(with(|c| c.valid_until = c.valid_from).is_err());
    }

    #[test]
    fn a_coupon_is_active_from_valid_from_until_just_before_valid_until() {
        let from = Utc::now();
        let coupon = Coupon {
            id: 1,
            name: "c".into(),
            discount: fixed(1_000, None),
            total_quantity: 1,
            issued_quantity: 0,
            remaining: 1,
            min_order_amount: 0,
            valid_from: from,
            valid_until: from + chrono::Duration::seconds(10),
        };
        assert!(!coupon.is_active_at(from - chrono::Duration::milliseconds(1)));
        assert!(coupon.is_active_at(from));
        assert!(!coupon.is_active_at(coupon.valid_until));
    }
}
