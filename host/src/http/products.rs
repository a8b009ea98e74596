//! `/api/v1/products` and `/api/v1/admin/products`

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiResult, Problem},
    extract::{Admin, Id, Json, Path, Query},
};
use crate::{
    catalog::{Filter, NewProduct, Product, ProductPatch, Sort},
    paging::{Page, PageQuery},
    popular::Popular,
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(popular_products))
        .routes(routes!(get_product))
        .routes(routes!(create_product))
        .routes(routes!(update_product))
}

/// The catalogue query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Case-insensitive substring of the name.
    name: Option<String>,
    /// Exact category.
    category: Option<String>,
    #[param(minimum = 0)]
    min_price: Option<i64>,
    #[param(minimum = 0)]
    max_price: Option<i64>,
    /// Only products with (true) or without (false) stock.
    in_stock: Option<bool>,
    #[param(inline)]
    sort: Option<Sort>,
    /// 0-based page number.
    #[param(minimum = 0, maximum = 100000)]
    page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    size: Option<u32>,
}

/// A page of products, filtered and sorted.
#[utoipa::path(get, path = "/api/v1/products", tag = "products",
    params(ListQuery),
    responses(
        (status = 200, body = Page<Product>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_products(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Page<Product>>> {
    let page = PageQuery {
        page: query.page,
        size: query.size,
    }
    .validate()?;
    let filter = Filter {
        name: query.name,
        category: query.category,
        min_price: query.min_price,
        max_price: query.max_price,
        in_stock: query.in_stock,
        sort: query.sort.unwrap_or_default(),
    }
    .validate()?;
    let page = state.catalog.list(&filter, page).await?;
    Ok(Json(Page::clone(&page)))
}

/// The `popular` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PopularQuery {
    /// Paid orders of the last `days` days, 1-30 (default 3).
    #[param(minimum = 1, maximum = 30)]
    days: Option<u32>,
    /// How many products, 1-50 (default 5).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<u32>,
}

/// The best sellers: units in paid orders of the last days.
#[utoipa::path(get, path = "/api/v1/products/popular", tag = "products",
    params(PopularQuery),
    responses(
        (status = 200, body = Popular),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
async fn popular_products(
    State(state): State<AppState>,
    Query(query): Query<PopularQuery>,
) -> ApiResult<Json<Popular>> {
    let days = query.days.unwrap_or(3);
    let limit = query.limit.unwrap_or(5);
    Ok(Json(state.catalog.popular(days, limit).await?))
}

/// One product.
#[utoipa::path(get, path = "/api/v1/products/{product_id}", tag = "products",
    params(("product_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = Product),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "PRODUCT_NOT_FOUND"),
    ))]
async fn get_product(
    State(state): State<AppState>,
    Path(product_id): Path<Id>,
) -> ApiResult<Json<Product>> {
    Ok(Json(state.catalog.find(product_id.get()).await?))
}

/// Add a product.
#[utoipa::path(post, path = "/api/v1/admin/products", tag = "admin",
    security(("admin_token" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, body = Product),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_product(
    Admin(actor): Admin,
    State(state): State<AppState>,
    Json(new): Json<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    let product = state.catalog.create(&actor, new).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// Change a product's name, category, price or stock.
#[utoipa::path(patch, path = "/api/v1/admin/products/{product_id}", tag = "admin",
    security(("admin_token" = [])),
    params(("product_id" = i64, Path, minimum = 1)),
    request_body = ProductPatch,
    responses(
        (status = 200, body = Product),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "PRODUCT_NOT_FOUND"),
    ))]
async fn update_product(
    Admin(actor): Admin,
    State(state): State<AppState>,
    Path(product_id): Path<Id>,
    Json(patch): Json<ProductPatch>,
) -> ApiResult<Json<Product>> {
    Ok(Json(
        state
            .catalog
            .update(&actor, product_id.get(), patch)
            .await?,
    ))
}
