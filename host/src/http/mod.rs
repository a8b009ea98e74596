//! The HTTP surface: one router module per resource, the problem+json error
//! type, extractors, and the middleware every request passes through.

#[cfg(test)]
mod api_reference;
mod audit;
mod auth;
mod console;
mod console_api;
mod coupons;
pub mod error;
pub mod extract;
mod metrics;
mod ops;
mod orders;
mod points;
mod policies;
mod products;
mod quotes;
pub mod serve;
mod users;

use std::{any::Any, time::Duration};

use axum::{
    Router, error_handling::HandleErrorLayer, extract::DefaultBodyLimit, http::Uri,
    response::IntoResponse,
};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{Error, state::AppState};
use error::ApiError;

/// Largest JSON request body.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// No request waits longer than this, whatever it waits on: a request that
/// does is answered 503 and its transaction, if any, rolls back.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "commerce",
        description = "A commerce backend whose business policy runs as WebAssembly components."
    ),
    modifiers(&AdminAuth),
    components(schemas(error::Problem)),
    tags(
        (name = "users", description = "Users and their points"),
        (name = "products", description = "The product catalogue"),
        (name = "coupons", description = "First-come-first-served coupons and the coupons a user holds"),
        (name = "orders", description = "Quotes, orders and payments"),
        (name = "admin", description = "Operator endpoints; bearer token required"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

/// Declares the admin bearer token in the document.
struct AdminAuth;

impl Modify for AdminAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The documented API, as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_identity(api_routes().split_for_parts().1)
}

/// Paths anyone may call without a token (API.md, Identity).
fn is_public(path: &str, method: &str) -> bool {
    method == "get"
        && (path.starts_with("/api/v1/products")
            || path == "/api/v1/coupons/{coupon_id}"
            || matches!(path, "/healthz" | "/readyz"))
}

/// Declares who may call each operation: the user-token scheme, and the
/// `401 UNAUTHORIZED` and `403 FORBIDDEN` answers of every operation that
/// needs a token.
fn with_identity(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, security::SecurityRequirement};
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "user_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            if is_public(path, method) || path == "/openapi.json" {
                continue;
            }
            let responses = &mut operation.responses.responses;
            responses.entry("401".into()).or_insert_with(|| {
                problem("UNAUTHORIZED: no valid token (`WWW-Authenticate: Bearer`)").into()
            });
            responses.entry("403".into()).or_insert_with(|| {
                problem("FORBIDDEN: the token may not act for this user, or lacks the admin role")
                    .into()
            });
            if operation.security.is_none() {
                operation.security = Some(vec![
                    SecurityRequirement::new("user_token", Vec::<String>::new()),
                    SecurityRequirement::new("admin_token", Vec::<String>::new()),
                ]);
            }
        }
    }
    openapi
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(users::routes())
        .merge(points::routes())
        .merge(products::routes())
        .merge(coupons::routes())
        .merge(policies::routes())
        .merge(quotes::routes())
        .merge(orders::routes())
        .merge(ops::routes())
        .merge(audit::routes())
        .merge(console::routes())
}

pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    let openapi = with_identity(openapi);
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|uri: Uri| async move { ApiError::RouteNotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|err: tower::BoxError| async move {
                    if err.is::<tower::timeout::error::Elapsed>() {
                        ApiError::from(Error::ServiceUnavailable(format!(
                            "the request took longer than {REQUEST_TIMEOUT:?}"
                        )))
                    } else {
                        ApiError::from(Error::Internal(anyhow::anyhow!(err)))
                    }
                }))
                .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT)),
        )
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// A panicking handler answers an opaque 500 problem; the server keeps serving.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> axum::response::Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    Error::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}
