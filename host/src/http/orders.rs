//! `/api/v1/orders`, `/api/v1/users/{user_id}/orders` and `/api/v1/payments`.

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
    orders::{Cart, Order, Payment},
    paging::{Page, PageQuery},
    quote::CartItem,
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place_order))
        .routes(routes!(get_order))
        .routes(routes!(list_user_orders))
        .routes(routes!(cancel_order))
        .routes(routes!(pay))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    user_id: Id,
    /// 1-100 lines; the order rules may allow fewer.
    items: Vec<CartItem>,
    /// A coupon the user holds, or null.
    #[serde(default)]
    user_coupon_id: Option<Id>,
}

/// Place an order: stock is reserved and the coupon used at once; it waits
/// for payment until `expires_at`. Idempotent with an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters")),
    request_body = NewOrder,
    responses(
        (status = 201, body = Order, description = "placed, or replayed with `Idempotent-Replayed: true`"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "USER_NOT_FOUND or PRODUCT_NOT_FOUND"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "OUT_OF_STOCK with `product_ids`, COUPON_UNAVAILABLE, CONCURRENT_UPDATE, IDEMPOTENCY_KEY_IN_PROGRESS"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "ORDER_REJECTED with `violations`, COUPON_NOT_APPLICABLE with `reason`, IDEMPOTENCY_KEY_REUSED"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "POLICY_UNAVAILABLE"),
    ))]
async fn place_order(
    caller: Caller,
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    Json(new): Json<NewOrder>,
) -> ApiResult<Response> {
    let acting = caller.act_for(new.user_id.get())?;
    let key = key.map(|key| IdempotentRequest::new(acting.user_id(), key, "orders.place", &new));
    let cart = Cart {
        items: new.items,
        user_coupon_id: new.user_coupon_id.map(Id::get),
    };
    let outcome = state.orders.place(acting, cart, key.as_ref()).await?;
    Ok(respond(outcome, StatusCode::CREATED))
}

/// One order.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = Order),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "ORDER_NOT_FOUND"),
    ))]
async fn get_order(
    caller: Caller,
    State(state): State<AppState>,
    Path(order_id): Path<Id>,
) -> ApiResult<Json<Order>> {
    let scope = caller.order_scope();
    Ok(Json(state.orders.find(scope, order_id.get()).await?))
}

/// A user's orders, newest first.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/orders", tag = "orders",
    params(("user_id" = i64, Path, minimum = 1), PageQuery),
    responses(
        (status = 200, body = Page<Order>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "USER_NOT_FOUND"),
    ))]
async fn list_user_orders(
    caller: Caller,
    State(state): State<AppState>,
    Path(user_id): Path<Id>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<Order>>> {
    let of = caller.act_for(user_id.get())?;
    let page = page.validate()?;
    Ok(Json(state.orders.of_user(of, page).await?))
}

/// Cancel an order: stock and coupon are restored, and points refunded if
/// it was paid.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = Order),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "ORDER_NOT_FOUND"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "ORDER_NOT_CANCELLABLE"),
    ))]
async fn cancel_order(
    caller: Caller,
    State(state): State<AppState>,
    Path(order_id): Path<Id>,
) -> ApiResult<Json<Order>> {
    let scope = caller.order_scope();
    Ok(Json(state.orders.cancel(scope, order_id.get()).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    order_id: Id,
    user_id: Id,
}

/// Pay an order with points. Idempotent with an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/payments", tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters")),
    request_body = PaymentRequest,
    responses(
        (status = 201, body = Payment, description = "paid, or replayed with `Idempotent-Replayed: true`"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "FORBIDDEN: not the order's user"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "ORDER_NOT_FOUND"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "INSUFFICIENT_POINTS (the order stays payable), ORDER_NOT_PAYABLE, CONCURRENT_UPDATE"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "IDEMPOTENCY_KEY_REUSED"),
    ))]
async fn pay(
    caller: Caller,
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<PaymentRequest>,
) -> ApiResult<Response> {
    let acting = caller.act_for(request.user_id.get())?;
    let key =
        key.map(|key| IdempotentRequest::new(acting.user_id(), key, "payments.pay", &request));
    let order_id = request.order_id.get();
    let outcome = state.orders.pay(acting, order_id, key.as_ref()).await?;
    Ok(respond(outcome, StatusCode::CREATED))
}
