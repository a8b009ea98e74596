//! `/api/v1/users`

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiResult, Problem},
    extract::{Id, Json, Path},
};
use crate::{identity::Caller, state::AppState, users::User};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(get_user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1-100 characters.
    #[schema(example = "kim")]
    name: String,
}

/// Create a user with an empty point wallet.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, body = User),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_user(
    caller: Caller,
    State(state): State<AppState>,
    Json(new): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.back_office()?;
    let user = state.users.create(&new.name).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users",
    params(("user_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = User),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "USER_NOT_FOUND"),
    ))]
async fn get_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(user_id): Path<Id>,
) -> ApiResult<Json<User>> {
    let of = caller.act_for(user_id.get())?;
    Ok(Json(state.users.find(of).await?))
}
