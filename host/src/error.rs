//! The one error of the domain: every module outside `http/` returns it.
//!
//! Each variant is an outcome a client can act on (`OUT_OF_STOCK`,
//! `COUPON_SOLD_OUT`, ...) or a failure of a resource the server depends on.
//! Only `http/` knows how each is answered (status, `code`, extra members);
//! the variants carry the context those answers need.

use serde::Serialize;
use utoipa::ToSchema;

use crate::policy::slot::{PolicyError, Slot};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidAmount(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("user {0} does not exist")]
    UserNotFound(i64),
    #[error("product {0} does not exist")]
    ProductNotFound(i64),
    #[error("another update of the same wallet won the race; retry")]
    ConcurrentUpdate,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still running")]
    IdempotencyKeyInProgress,
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    PolicyUnavailable(String),
    #[error("{0}")]
    InvalidComponent(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    UnknownSlot(String),
    #[error("the {0} slot has no version before the active one")]
    NoPreviousVersion(Slot),
    #[error("{0}")]
    InvalidManifest(String),
    #[error("the {0} slot has no shadow")]
    NoShadow(Slot),
    #[error("replay {0} does not exist (finished replays are kept 30 days)")]
    ReplayNotFound(String),
    #[error("replay {id} is {status} already")]
    ReplayFinished { id: String, status: String },
    #[error(
        "{0} replays are queued or running in the deployment; retry once one finishes, or cancel one"
    )]
    TooManyReplays(i64),
    #[error("coupon {0} does not exist")]
    CouponNotFound(i64),
    #[error("coupon {0} is sold out")]
    CouponSoldOut(i64),
    #[error("user {user_id} already holds coupon {coupon_id}")]
    CouponAlreadyIssued { coupon_id: i64, user_id: i64 },
    #[error("the coupon policy does not issue this coupon to this user: {0}")]
    CouponNotEligible(String),
    #[error("{0}")]
    CouponNotActive(String),
    #[error("{0}")]
    CouponUnavailable(String),
    #[error("the coupon does not apply to this order: {0}")]
    CouponNotApplicable(String),
    #[error("the order rules refused the order")]
    OrderRejected(Vec<RuleViolation>),
    #[error("order {0} does not exist")]
    OrderNotFound(i64),
    #[error("not enough stock for products {0:?}")]
    OutOfStock(Vec<i64>),
    #[error("the balance of {balance} does not cover {total}")]
    InsufficientPoints { balance: i64, total: i64 },
    #[error("the order is {0} and cannot be paid")]
    OrderNotPayable(String),
    #[error("the order is {0} and cannot be cancelled")]
    OrderNotCancellable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// One reason the order rules refused an order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleViolation {
    pub code: String,
    pub message: String,
}

impl Error {
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidRequest(detail.into())
    }

    /// The same failure for another request that waited on it: unavailable
    /// stays unavailable with its detail; anything else is an internal error.
    pub fn shared(&self) -> Error {
        match self {
            Error::ServiceUnavailable(detail) => Error::ServiceUnavailable(detail.clone()),
            other => Error::Internal(anyhow::anyhow!("{other}")),
        }
    }

    /// Maps a database error to what the client should see: an unreachable,
    /// restarting or overloaded database is a 503 to retry; a transaction
    /// the database aborted to break a deadlock or a serialization conflict
    /// is a 409 to retry; everything else is internal.
    pub fn from_db(err: sqlx::Error) -> Self {
        const UNAVAILABLE: &str = "the database is unavailable; retry shortly";
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::ServiceUnavailable(UNAVAILABLE.into())
            }
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // 08: connection exception, 53: insufficient resources,
                // 57: operator intervention (shutdown, statement timeout).
                Some(code)
                    if code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57") =>
                {
                    Self::ServiceUnavailable(UNAVAILABLE.into())
                }
                Some("40001" | "40P01") => Self::ConcurrentUpdate,
                _ => Self::Internal(err.into()),
            },
            _ => Self::Internal(err.into()),
        }
    }
}

impl From<PolicyError> for Error {
    fn from(err: PolicyError) -> Self {
        match err {
            PolicyError::Unavailable { .. } => Self::PolicyUnavailable(err.to_string()),
            PolicyError::InvalidComponent(reason) => Self::InvalidComponent(reason),
            PolicyError::UnknownSlot(_) => Self::UnknownSlot(err.to_string()),
            PolicyError::InvalidConfig(reason) => Self::InvalidConfig(reason),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::from_db(err)
    }
}
