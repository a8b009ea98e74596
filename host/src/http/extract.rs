//! Extractors that turn every malformed request into a `400 INVALID_REQUEST`
//! problem body instead of axum's plain-text rejections.

use std::fmt;

use axum::{
    extract::{FromRequest, FromRequestParts},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::idempotency::{Outcome, StoredResponse};

/// `axum::Json` whose rejections are problem bodies.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` whose rejections are problem bodies.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` whose rejections are problem bodies.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A positive 64-bit id, as every resource has. Zero, negatives and
/// non-numbers are refused while parsing, so handlers never see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "i64", into = "i64")]
#[schema(value_type = i64)]
pub struct Id(i64);

impl Id {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Id {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        if value > 0 {
            Ok(Self(value))
        } else {
            Err(format!("ids are positive integers, got {value}"))
        }
    }
}

impl From<Id> for i64 {
    fn from(id: Id) -> Self {
        id.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub use super::auth::Admin;

/// Header set on a replayed response.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The response to an idempotent request: `status` with the fresh body, or
/// the stored one as it was first sent, marked as replayed.
pub fn respond<T: Serialize>(outcome: Outcome<T>, status: StatusCode) -> Response {
    match outcome {
        Outcome::Fresh(body) => (status, axum::Json(body)).into_response(),
        Outcome::Replayed(StoredResponse { status, body }) => {
            let headers = [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (REPLAYED_HEADER, HeaderValue::from_static("true")),
            ];
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (status, headers, body).into_response()
        }
    }
}

/// The optional `Idempotency-Key` header: 1-255 visible ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub const HEADER: &'static str = "idempotency-key";

    fn parse(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = headers.get(Self::HEADER) else {
            return Ok(Self(None));
        };
        let bytes = value.as_bytes();
        let visible = bytes.iter().all(|b| (0x21..=0x7e).contains(b));
        match value.to_str() {
            Ok(key) if visible && (1..=255).contains(&bytes.len()) => {
                Ok(Self(Some(key.to_owned())))
            }
            _ => Err(ApiError::invalid(
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::parse(&parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive() {
        assert_eq!(serde_json::from_str::<Id>("7").ok(), Some(Id(7)));
        assert!(serde_json::from_str::<Id>("0").is_err());
        assert!(serde_json::from_str::<Id>("-3").is_err());
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_up_to_255() {
        let parse = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                IdempotencyKey::HEADER,
                value.parse().expect("a header value"),
            );
            IdempotencyKey::parse(&headers).map(|key| key.0)
        };
        assert_eq!(parse("abc-123").ok().flatten().as_deref(), Some("abc-123"));
        assert!(parse(&"k".repeat(255)).is_ok());
        assert!(parse(&"k".repeat(256)).is_err());
        assert!(parse("a b").is_err());
        assert!(parse("").is_err());
    }
}
