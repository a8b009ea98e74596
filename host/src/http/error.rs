//! The one error type of the HTTP layer, rendered as RFC 9457 problem+json.
//!
//! Each variant carries its status and the stable `code` of API.md. Internal
//! errors are logged with their whole chain and answered with an opaque body.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidAmount(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    #[error("user {0} does not exist")]
    UserNotFound(i64),
    #[error("product {0} does not exist")]
    ProductNotFound(i64),
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
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
    UnknownSlot(String),
    #[error("the {0} slot has no version before the active one")]
    NoPreviousVersion(crate::policy::Slot),
    #[error("{0}")]
    InvalidManifest(String),
    #[error("{0}")]
    InvalidConfig(String),
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
    #[error("the order rules refused the order")]
    OrderRejected(Vec<crate::quote::RuleViolation>),
    #[error("order {0} does not exist")]
    OrderNotFound(i64),
    #[error("not enough stock for products {0:?}")]
    OutOfStock(Vec<i64>),
    #[error("{0}")]
    CouponUnavailable(String),
    #[error("the coupon does not apply to this order: {0}")]
    CouponNotApplicable(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the balance of {balance} does not cover {total}")]
    InsufficientPoints { balance: i64, total: i64 },
    #[error("the order is {0} and cannot be paid")]
    OrderNotPayable(String),
    #[error("the order is {0} and cannot be cancelled")]
    OrderNotCancellable(String),
    #[error("the {0} slot has no shadow")]
    NoShadow(crate::policy::Slot),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The same failure for another request that waited on it: unavailable
    /// stays unavailable with its detail; anything else is an internal error.
    pub fn shared(&self) -> ApiError {
        match self {
            ApiError::ServiceUnavailable(detail) => ApiError::ServiceUnavailable(detail.clone()),
            other => ApiError::Internal(anyhow::anyhow!("{other}")),
        }
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidRequest(_) | InvalidAmount(_) | InvalidComponent(_) | InvalidManifest(_)
            | InvalidConfig(_) => StatusCode::BAD_REQUEST,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Unauthorized => StatusCode::UNAUTHORIZED,
            UserNotFound(_) | ProductNotFound(_) | RouteNotFound(_) | UnknownSlot(_) => {
                StatusCode::NOT_FOUND
            }
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ConcurrentUpdate | IdempotencyKeyInProgress | NoPreviousVersion(_) => {
                StatusCode::CONFLICT
            }
            IdempotencyKeyReused | OrderRejected(_) | CouponNotApplicable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            OrderNotFound(_) | NoShadow(_) => StatusCode::NOT_FOUND,
            OutOfStock(_)
            | CouponUnavailable(_)
            | InsufficientPoints { .. }
            | OrderNotPayable(_)
            | OrderNotCancellable(_) => StatusCode::CONFLICT,
            Forbidden(_) => StatusCode::FORBIDDEN,
            ServiceUnavailable(_) | PolicyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            CouponNotFound(_) => StatusCode::NOT_FOUND,
            CouponSoldOut(_) | CouponAlreadyIssued { .. } | CouponNotActive(_) => {
                StatusCode::CONFLICT
            }
            CouponNotEligible(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidRequest(_) => "INVALID_REQUEST",
            InvalidAmount(_) => "INVALID_AMOUNT",
            PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Unauthorized => "UNAUTHORIZED",
            UserNotFound(_) => "USER_NOT_FOUND",
            ProductNotFound(_) => "PRODUCT_NOT_FOUND",
            RouteNotFound(_) => "NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ConcurrentUpdate => "CONCURRENT_UPDATE",
            IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            IdempotencyKeyInProgress => "IDEMPOTENCY_KEY_IN_PROGRESS",
            ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
            PolicyUnavailable(_) => "POLICY_UNAVAILABLE",
            InvalidComponent(_) => "INVALID_COMPONENT",
            UnknownSlot(_) => "UNKNOWN_SLOT",
            NoPreviousVersion(_) => "NO_PREVIOUS_VERSION",
            InvalidManifest(_) => "INVALID_MANIFEST",
            InvalidConfig(_) => "INVALID_CONFIG",
            OrderRejected(_) => "ORDER_REJECTED",
            OrderNotFound(_) => "ORDER_NOT_FOUND",
            OutOfStock(_) => "OUT_OF_STOCK",
            CouponUnavailable(_) => "COUPON_UNAVAILABLE",
            CouponNotApplicable(_) => "COUPON_NOT_APPLICABLE",
            Forbidden(_) => "FORBIDDEN",
            InsufficientPoints { .. } => "INSUFFICIENT_POINTS",
            OrderNotPayable(_) => "ORDER_NOT_PAYABLE",
            OrderNotCancellable(_) => "ORDER_NOT_CANCELLABLE",
            NoShadow(_) => "NO_SHADOW",
            CouponNotFound(_) => "COUPON_NOT_FOUND",
            CouponSoldOut(_) => "COUPON_SOLD_OUT",
            CouponAlreadyIssued { .. } => "COUPON_ALREADY_ISSUED",
            CouponNotEligible(_) => "COUPON_NOT_ELIGIBLE",
            CouponNotActive(_) => "COUPON_NOT_ACTIVE",
            Internal(_) => "INTERNAL",
        }
    }

    /// Context members beside the standard ones (e.g. `product_ids`).
    fn extensions(&self) -> Map<String, Value> {
        let mut members = Map::new();
        match self {
            ApiError::OrderRejected(violations) => {
                members.insert(
                    "violations".into(),
                    serde_json::to_value(violations).unwrap_or_default(),
                );
            }
            ApiError::OutOfStock(ids) => {
                members.insert(
                    "product_ids".into(),
                    serde_json::to_value(ids).unwrap_or_default(),
                );
            }
            ApiError::CouponNotApplicable(reason) | ApiError::CouponNotEligible(reason) => {
                members.insert("reason".into(), Value::String(reason.clone()));
            }
            _ => {}
        }
        members
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidRequest(detail.into())
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

impl From<crate::policy::PolicyError> for ApiError {
    fn from(err: crate::policy::PolicyError) -> Self {
        use crate::policy::PolicyError;
        match err {
            PolicyError::Unavailable { .. } => Self::PolicyUnavailable(err.to_string()),
            PolicyError::InvalidComponent(reason) => Self::InvalidComponent(reason),
            PolicyError::UnknownSlot(_) => Self::UnknownSlot(err.to_string()),
            PolicyError::InvalidConfig(reason) => Self::InvalidConfig(reason),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_db(err)
    }
}

/// An RFC 9457 problem document as this API sends it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `OUT_OF_STOCK`.
    pub code: String,
    /// Context members such as `product_ids` or `violations`.
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extensions: Map<String, Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                "the server could not complete the request".to_owned()
            }
            other => other.to_string(),
        };
        let code = self.code();
        let problem = Problem {
            kind: format!("/problems/{}", code.to_lowercase().replace('_', "-")),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            extensions: self.extensions(),
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge {
                limit: super::JSON_BODY_LIMIT,
            };
        }
        Self::InvalidRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::InvalidRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidRequest(rejection.body_text())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
