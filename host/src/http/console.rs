//! `/console`: the operator console. One page, one script and one style
//! sheet, compiled into the binary like `/docs`, so the console works
//! wherever the server runs, with nothing fetched from elsewhere. The page
//! talks to the admin API of the instance that served it (see
//! [`super::console_api`] for the endpoints only the console needs).

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use utoipa_axum::router::OpenApiRouter;

use super::{error::ApiError, extract::Path};
use crate::state::AppState;

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");
const ICON: &str = include_str!("../../console/icon.svg");

/// Only this origin's own files and API: no inline script, no third party,
/// not framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The console's pages and assets (not in the OpenAPI document: they are
/// not API), and the admin endpoints it uses (documented).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/{asset}", get(asset))
        .merge(super::console_api::routes())
}

async fn page() -> Response {
    let mut response = served("text/html; charset=utf-8", PAGE);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (content_type, body) = match name.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "app.css" => ("text/css; charset=utf-8", STYLE),
        "icon.svg" => ("image/svg+xml", ICON),
        _ => return Err(ApiError::RouteNotFound(format!("/console/{name}"))),
    };
    Ok(served(content_type, body))
}

/// A page or asset; revalidated on every load so a new binary's console is
/// never mixed with an old one's script.
fn served(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
