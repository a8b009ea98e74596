//! `/api/v1/admin/policies`: what serves each slot, swaps, rollbacks,
//! reloads, and shadows that try a candidate beside the active version.

use axum::{body::Bytes, extract::DefaultBodyLimit, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{
    router::{OpenApiRouter, UtoipaMethodRouterExt},
    routes,
};

use super::{
    error::{ApiError, ApiResult, Problem},
    extract::{Admin, Json, Path},
};
use crate::{
    policy::{
        Slot,
        loaded::PolicyInfo,
        shadow::{ShadowInfo, ShadowReport},
    },
    state::AppState,
};

/// Largest component accepted on upload: a TypeScript or Python policy
/// carries its interpreter (12-18 MB), so 20 MB components fit.
pub const COMPONENT_LIMIT: usize = 24 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies))
        .routes(routes!(upload_policy).layer(DefaultBodyLimit::max(COMPONENT_LIMIT)))
        .routes(routes!(rollback_policy))
        .routes(routes!(reload_policies))
        .routes(
            routes!(start_shadow, shadow_report, stop_shadow)
                .layer(DefaultBodyLimit::max(COMPONENT_LIMIT)),
        )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    environment: String,
    slots: Vec<PolicyInfo>,
}

fn list(state: &AppState) -> PolicyList {
    let registry = &state.policies.registry;
    PolicyList {
        environment: registry.environment.clone(),
        slots: Slot::ALL
            .into_iter()
            .map(|slot| registry.active(slot).info.clone())
            .collect(),
    }
}

fn parse_slot(slot: &str) -> ApiResult<Slot> {
    Ok(slot.parse::<Slot>()?)
}

/// The active policy of every slot.
#[utoipa::path(get, path = "/api/v1/admin/policies", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = PolicyList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_policies(_: Admin, State(state): State<AppState>) -> Json<PolicyList> {
    Json(list(&state))
}

/// Swap a slot's component, for every instance of the deployment. The bytes
/// are checked against the slot's world before anything changes; requests
/// already running finish on the old version.
#[utoipa::path(put, path = "/api/v1/admin/policies/{slot}", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path)),
    request_body(content(
        (Vec<u8> = "application/wasm"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 200, body = PolicyInfo),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_COMPONENT"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
    ))]
async fn upload_policy(
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
    bytes: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<PolicyInfo>> {
    let slot = parse_slot(&slot)?;
    let bytes = component_bytes(bytes)?;
    Ok(Json(state.policies.upload(slot, bytes).await?))
}

/// The body of a component upload, refused when empty or too large.
fn component_bytes(
    bytes: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Vec<u8>> {
    let bytes = bytes.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: COMPONENT_LIMIT,
            }
        } else {
            ApiError::invalid(rejection.body_text())
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::InvalidComponent(
            "the body is empty; send the component's bytes".into(),
        ));
    }
    Ok(bytes.to_vec())
}

/// Return a slot to the version before the active one.
#[utoipa::path(post, path = "/api/v1/admin/policies/{slot}/rollback", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path)),
    responses(
        (status = 200, body = PolicyInfo),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "NO_PREVIOUS_VERSION"),
    ))]
async fn rollback_policy(
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
) -> ApiResult<Json<PolicyInfo>> {
    let slot = parse_slot(&slot)?;
    Ok(Json(state.policies.rollback(slot).await?))
}

/// Read the environment's manifest again and swap the slots that changed.
#[utoipa::path(post, path = "/api/v1/admin/policies/reload", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = PolicyList),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_MANIFEST; the running policies stay"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn reload_policies(_: Admin, State(state): State<AppState>) -> ApiResult<Json<PolicyList>> {
    state.policies.reload().await?;
    Ok(Json(list(&state)))
}

/// Shadow a slot with a candidate, for every instance of the deployment:
/// from now on every evaluation of the slot also runs the candidate on the
/// same input, with its own fuel budget, never applied and never failing the
/// request, and the two answers are compared. Replaces the slot's shadow.
#[utoipa::path(put, path = "/api/v1/admin/policies/{slot}/shadow", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path)),
    request_body(content(
        (Vec<u8> = "application/wasm"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 200, body = ShadowInfo),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_COMPONENT"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
    ))]
async fn start_shadow(
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
    bytes: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<ShadowInfo>> {
    let slot = parse_slot(&slot)?;
    let bytes = component_bytes(bytes)?;
    Ok(Json(state.policies.start_shadow(slot, bytes).await?))
}

/// How the slot's shadow compares with the active version, across every
/// instance: evaluations, divergences, failures and the last 20 divergences
/// with their inputs.
#[utoipa::path(get, path = "/api/v1/admin/policies/{slot}/shadow", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path)),
    responses(
        (status = 200, body = ShadowReport),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "NO_SHADOW or UNKNOWN_SLOT"),
    ))]
async fn shadow_report(
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
) -> ApiResult<Json<ShadowReport>> {
    let slot = parse_slot(&slot)?;
    Ok(Json(state.policies.shadow_report(slot).await?))
}

/// Stop the slot's shadow on every instance.
#[utoipa::path(delete, path = "/api/v1/admin/policies/{slot}/shadow", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path)),
    responses(
        (status = 204, description = "The shadow is stopped"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "NO_SHADOW or UNKNOWN_SLOT"),
    ))]
async fn stop_shadow(
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
) -> ApiResult<StatusCode> {
    let slot = parse_slot(&slot)?;
    state.policies.stop_shadow(slot).await?;
    Ok(StatusCode::NO_CONTENT)
}
