//! The audit log, as operators read it.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiResult, Problem},
    extract::{Admin, Json, Query},
};
use crate::{
    audit::{self, AuditEntry, Filter},
    paging::{Page, PageQuery},
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// The audit query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only changes to this target: `product:<id>`, `coupon:<id>`,
    /// `policy:<slot>`, `experiment:<slot>` or `promotion:<id>`.
    target: Option<String>,
    /// Only changes by this actor: `admin-token`, `user:<sub>` or `system`.
    actor: Option<String>,
    /// 0-based page number.
    #[param(minimum = 0, maximum = 100000)]
    page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    size: Option<u32>,
}

/// Every change made through the admin API, newest first: who made it, what
/// it changed, and the JSON of the changed thing before and after.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin",
    security(("admin_token" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = Page<AuditEntry>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_audit(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let page = PageQuery {
        page: query.page,
        size: query.size,
    }
    .validate()?;
    let filter = Filter {
        target: query.target,
        actor: query.actor,
    }
    .validate()?;
    Ok(Json(audit::list(&state.db, &filter, page).await?))
}
