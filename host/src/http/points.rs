//! `/api/v1/users/{user_id}/points`

use axum::{extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiResult, Problem},
    extract::{Id, IdempotencyKey, Json, Path, Query, respond},
};
use crate::{
    idempotency::IdempotentRequest,
    identity::Caller,
    paging::{Page, PageQuery},
    points::{Balance, HistoryEntry},
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_balance))
        .routes(routes!(charge))
        .routes(routes!(get_history))
}

/// A user's balance.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/points", tag = "users",
    params(("user_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = Balance),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "USER_NOT_FOUND"),
    ))]
async fn get_balance(
    caller: Caller,
    State(state): State<AppState>,
    Path(user_id): Path<Id>,
) -> ApiResult<Json<Balance>> {
    let of = caller.act_for(user_id.get())?;
    Ok(Json(state.points.balance(of).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Charge {
    /// 1-1,000,000 won; the balance may not pass 100,000,000.
    #[schema(example = 10000)]
    amount: i64,
}

/// Charge points. Idempotent with an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/points/charge", tag = "users",
    params(
        ("user_id" = i64, Path, minimum = 1),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters"),
    ),
    request_body = Charge,
    responses(
        (status = 200, body = Balance, description = "charged, or replayed with `Idempotent-Replayed: true`"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_AMOUNT or INVALID_REQUEST"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "USER_NOT_FOUND"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "CONCURRENT_UPDATE or IDEMPOTENCY_KEY_IN_PROGRESS"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "IDEMPOTENCY_KEY_REUSED"),
    ))]
async fn charge(
    caller: Caller,
    State(state): State<AppState>,
    Path(user_id): Path<Id>,
    IdempotencyKey(key): IdempotencyKey,
    Json(charge): Json<Charge>,
) -> ApiResult<Response> {
    let to = caller.act_for(user_id.get())?;
    let key = key.map(|key| IdempotentRequest::new(to.user_id(), key, "points.charge", &charge));
    let outcome = state.points.charge(to, charge.amount, key.as_ref()).await?;
    Ok(respond(outcome, StatusCode::OK))
}

/// A user's point history, newest first.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/points/history", tag = "users",
    params(("user_id" = i64, Path, minimum = 1), PageQuery),
    responses(
        (status = 200, body = Page<HistoryEntry>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "USER_NOT_FOUND"),
    ))]
async fn get_history(
    caller: Caller,
    State(state): State<AppState>,
    Path(user_id): Path<Id>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<HistoryEntry>>> {
    let of = caller.act_for(user_id.get())?;
    let page = page.validate()?;
    Ok(Json(state.points.history(of, page).await?))
}
