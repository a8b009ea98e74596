//! Who is calling, from the `Authorization` header: [`Caller`] for the
//! endpoints users call, [`Admin`] for the admin API. The decisions are
//! [`crate::identity`]'s; this only reads the header.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};

use super::error::ApiError;
use crate::{audit::Actor, identity::Caller, state::AppState};

/// The bearer token of the request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        Ok(state.identity.caller(bearer(parts)).await?)
    }
}

/// Proof that the caller holds the admin token or an admin user's token,
/// with who they are for the audit log.
pub struct Admin(pub Actor);

impl<S> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.admin()?;
        Ok(Admin(match caller {
            Caller::User { id, .. } => Actor::user(id),
            Caller::Open | Caller::Operator => Actor::admin_token(),
        }))
    }
}
