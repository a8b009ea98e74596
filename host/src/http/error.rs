//! How the domain's [`Error`] is answered over HTTP: RFC 9457 problem+json
//! with the status and the stable `code` of API.md, plus the few failures
//! only HTTP has (no route, wrong method, body too large).
//!
//! Internal errors are logged with their whole chain and answered with an
//! opaque body.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::Error;

/// What a handler fails with: a domain error, or one of HTTP's own.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] Error),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    BodyTimedOut(#[from] super::serve::BodyTimedOut),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::Domain(Error::invalid(detail))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Domain(err) => status(err),
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTimedOut(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Domain(err) => code(err),
            ApiError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::RouteNotFound(_) => "NOT_FOUND",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::BodyTimedOut(_) => "REQUEST_TIMEOUT",
        }
    }
}

fn status(err: &Error) -> StatusCode {
    use Error::*;
    match err {
        InvalidRequest(_) | InvalidAmount(_) | InvalidComponent(_) | InvalidConfig(_)
        | InvalidManifest(_) => StatusCode::BAD_REQUEST,
        Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Forbidden(_) => StatusCode::FORBIDDEN,
        UserNotFound(_) | ProductNotFound(_) | UnknownSlot(_) | OrderNotFound(_) | NoShadow(_)
        | CouponNotFound(_) | ReplayNotFound(_) => StatusCode::NOT_FOUND,
        ConcurrentUpdate
        | IdempotencyKeyInProgress
        | NoPreviousVersion(_)
        | OutOfStock(_)
        | CouponUnavailable(_)
        | InsufficientPoints { .. }
        | OrderNotPayable(_)
        | OrderNotCancellable(_)
        | CouponSoldOut(_)
        | CouponAlreadyIssued { .. }
        | CouponNotActive(_)
        | ReplayFinished { .. }
        | TooManyReplays(_) => StatusCode::CONFLICT,
        IdempotencyKeyReused | OrderRejected(_) | CouponNotApplicable(_) | CouponNotEligible(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ServiceUnavailable(_) | PolicyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn code(err: &Error) -> &'static str {
    use Error::*;
    match err {
        InvalidRequest(_) => "INVALID_REQUEST",
        InvalidAmount(_) => "INVALID_AMOUNT",
        Unauthorized(_) => "UNAUTHORIZED",
        Forbidden(_) => "FORBIDDEN",
        UserNotFound(_) => "USER_NOT_FOUND",
        ProductNotFound(_) => "PRODUCT_NOT_FOUND",
        ConcurrentUpdate => "CONCURRENT_UPDATE",
        IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
        IdempotencyKeyInProgress => "IDEMPOTENCY_KEY_IN_PROGRESS",
        ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
        PolicyUnavailable(_) => "POLICY_UNAVAILABLE",
        InvalidComponent(_) => "INVALID_COMPONENT",
        InvalidConfig(_) => "INVALID_CONFIG",
        UnknownSlot(_) => "UNKNOWN_SLOT",
        NoPreviousVersion(_) => "NO_PREVIOUS_VERSION",
        InvalidManifest(_) => "INVALID_MANIFEST",
        NoShadow(_) => "NO_SHADOW",
        ReplayNotFound(_) => "REPLAY_NOT_FOUND",
        ReplayFinished { .. } => "REPLAY_FINISHED",
        TooManyReplays(_) => "TOO_MANY_REPLAYS",
        CouponNotFound(_) => "COUPON_NOT_FOUND",
        CouponSoldOut(_) => "COUPON_SOLD_OUT",
        CouponAlreadyIssued { .. } => "COUPON_ALREADY_ISSUED",
        CouponNotEligible(_) => "COUPON_NOT_ELIGIBLE",
        CouponNotActive(_) => "COUPON_NOT_ACTIVE",
        CouponUnavailable(_) => "COUPON_UNAVAILABLE",
        CouponNotApplicable(_) => "COUPON_NOT_APPLICABLE",
        OrderRejected(_) => "ORDER_REJECTED",
        OrderNotFound(_) => "ORDER_NOT_FOUND",
        OutOfStock(_) => "OUT_OF_STOCK",
        InsufficientPoints { .. } => "INSUFFICIENT_POINTS",
        OrderNotPayable(_) => "ORDER_NOT_PAYABLE",
        OrderNotCancellable(_) => "ORDER_NOT_CANCELLABLE",
        Internal(_) => "INTERNAL",
    }
}

/// Context members beside the standard ones (e.g. `product_ids`).
fn extensions(err: &Error) -> Map<String, Value> {
    let mut members = Map::new();
    match err {
        Error::OrderRejected(violations) => {
            members.insert(
                "violations".into(),
                serde_json::to_value(violations).unwrap_or_default(),
            );
        }
        Error::OutOfStock(ids) => {
            members.insert(
                "product_ids".into(),
                serde_json::to_value(ids).unwrap_or_default(),
            );
        }
        Error::ReplayFinished { status, .. } => {
            members.insert("state".into(), Value::String(status.clone()));
        }
        Error::CouponNotApplicable(reason) | Error::CouponNotEligible(reason) => {
            members.insert("reason".into(), Value::String(reason.clone()));
        }
        _ => {}
    }
    members
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
        let code = self.code();
        let detail = match &self {
            ApiError::Domain(Error::Internal(err)) => {
                tracing::error!(error = ?err, "request failed");
                "the server could not complete the request".to_owned()
            }
            other => other.to_string(),
        };
        let extensions = match &self {
            ApiError::Domain(err) => extensions(err),
            _ => Map::new(),
        };
        let problem = Problem {
            kind: format!("/problems/{}", code.to_lowercase().replace('_', "-")),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            extensions,
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        }
        response
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::Domain(self).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::Domain(err.into())
    }
}

impl From<crate::policy::PolicyError> for ApiError {
    fn from(err: crate::policy::PolicyError) -> Self {
        Self::Domain(err.into())
    }
}

impl ApiError {
    /// `408` when a body could not be read because it came too slowly.
    pub fn if_timed_out(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut cause = Some(err);
        while let Some(err) = cause {
            if let Some(timed_out) = err.downcast_ref::<super::serve::BodyTimedOut>() {
                return Some(Self::BodyTimedOut(timed_out.clone()));
            }
            cause = err.source();
        }
        None
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if let Some(timed_out) = Self::if_timed_out(&rejection) {
            return timed_out;
        }
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge {
                limit: super::JSON_BODY_LIMIT,
            };
        }
        Self::invalid(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}
