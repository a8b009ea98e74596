//! `/api/v1/coupons`, `/api/v1/admin/coupons` and `/api/v1/users/{user_id}/coupons`

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiResult, Problem},
    extract::{Admin, Id, Json, Path, Query},
};
use crate::{
    coupons::{Coupon, HeldCoupon, HeldStatus, IssuedCoupon, NewCoupon},
    identity::Caller,
    paging::{Page, PageQuery},
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_coupon))
        .routes(routes!(get_coupon))
        .routes(routes!(issue_coupon))
        .routes(routes!(list_user_coupons))
}

/// Create a coupon.
#[utoipa::path(post, path = "/api/v1/admin/coupons", tag = "admin",
    security(("admin_token" = [])),
    request_body = NewCoupon,
    responses(
        (status = 201, body = Coupon),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_coupon(
    Admin(actor): Admin,
    State(state): State<AppState>,
    Json(new): Json<NewCoupon>,
) -> ApiResult<(StatusCode, Json<Coupon>)> {
    let coupon = state.coupons.create(&actor, new).await?;
    Ok((StatusCode::CREATED, Json(coupon)))
}

/// One coupon, with how many are issued and how many remain.
#[utoipa::path(get, path = "/api/v1/coupons/{coupon_id}", tag = "coupons",
    params(("coupon_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = Coupon),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "COUPON_NOT_FOUND"),
    ))]
async fn get_coupon(
    State(state): State<AppState>,
    Path(coupon_id): Path<Id>,
) -> ApiResult<Json<Coupon>> {
    Ok(Json(state.coupons.find(coupon_id.get()).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    #[schema(example = 7)]
    user_id: Id,
}

/// Issue the coupon to a user: first come, first served, once per user.
/// Of any number of concurrent requests from distinct users, across every
/// instance, exactly `total_quantity` are answered 201; a 201 means the
/// user's coupon is committed.
#[utoipa::path(post, path = "/api/v1/coupons/{coupon_id}/issue", tag = "coupons",
    params(("coupon_id" = i64, Path, minimum = 1)),
    request_body = IssueRequest,
    responses(
        (status = 201, body = IssuedCoupon),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "COUPON_NOT_FOUND or USER_NOT_FOUND"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "COUPON_SOLD_OUT, COUPON_ALREADY_ISSUED or COUPON_NOT_ACTIVE"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "COUPON_NOT_ELIGIBLE: the coupon policy said no; `reason` says why"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "POLICY_UNAVAILABLE or SERVICE_UNAVAILABLE; retry"),
    ))]
async fn issue_coupon(
    caller: Caller,
    State(state): State<AppState>,
    Path(coupon_id): Path<Id>,
    Json(request): Json<IssueRequest>,
) -> ApiResult<(StatusCode, Json<IssuedCoupon>)> {
    let to = caller.act_for(request.user_id.get())?;
    let issued = state.coupons.issue(to, coupon_id.get()).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// The query of a user's coupon list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeldQuery {
    /// Only coupons in this state; `expired` are unused coupons past their
    /// `valid_until`.
    #[param(inline)]
    status: Option<HeldStatus>,
    /// 0-based page number.
    #[param(minimum = 0, maximum = 100000)]
    page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    size: Option<u32>,
}

/// A user's coupons, newest first.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/coupons", tag = "coupons",
    params(("user_id" = i64, Path, minimum = 1), HeldQuery),
    responses(
        (status = 200, body = Page<HeldCoupon>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "USER_NOT_FOUND"),
    ))]
async fn list_user_coupons(
    caller: Caller,
    State(state): State<AppState>,
    Path(user_id): Path<Id>,
    Query(query): Query<HeldQuery>,
) -> ApiResult<Json<Page<HeldCoupon>>> {
    let of = caller.act_for(user_id.get())?;
    let page = PageQuery {
        page: query.page,
        size: query.size,
    }
    .validate()?;
    Ok(Json(state.coupons.held(of, query.status, page).await?))
}
