//! `/api/v1/quotes`: what an order would cost, priced by the active policies.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiResult, Problem},
    extract::{Id, Json},
};
use crate::{
    identity::Caller,
    orders::Cart,
    quote::{CartItem, Quote},
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_quote))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    user_id: Id,
    items: Vec<CartItem>,
    #[serde(default)]
    user_coupon_id: Option<Id>,
}

/// Price a cart as an order would be priced, writing nothing.
#[utoipa::path(post, path = "/api/v1/quotes", tag = "orders",
    request_body = QuoteRequest,
    responses(
        (status = 200, body = Quote),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "USER_NOT_FOUND or PRODUCT_NOT_FOUND"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "COUPON_UNAVAILABLE"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "ORDER_REJECTED with `violations`, or COUPON_NOT_APPLICABLE with `reason`"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "POLICY_UNAVAILABLE"),
    ))]
async fn create_quote(
    caller: Caller,
    State(state): State<AppState>,
    Json(request): Json<QuoteRequest>,
) -> ApiResult<Json<Quote>> {
    let acting = caller.act_for(request.user_id.get())?;
    let cart = Cart {
        items: request.items,
        user_coupon_id: request.user_coupon_id.map(Id::get),
    };
    Ok(Json(state.orders.quote(acting, cart).await?))
}
