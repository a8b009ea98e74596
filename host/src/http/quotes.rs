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
    quote::{self, CartItem, Quote},
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
    State(state): State<AppState>,
    Json(request): Json<QuoteRequest>,
) -> ApiResult<Json<Quote>> {
    let inputs = quote::gather(
        &state.db,
        request.user_id.get(),
        &request.items,
        request.user_coupon_id.map(Id::get),
    )
    .await?;
    let policies = state.policies.registry.snapshot();
    Ok(Json(quote::evaluate(policies, inputs).await?))
}
