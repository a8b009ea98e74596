//! `/api/v1/admin/policies`: what serves each slot, swaps, configuration
//! changes, rollbacks, reloads, and shadows that try a candidate beside the
//! active version.
//!
//! A component is uploaded as its bare bytes (`application/wasm`: the slot's
//! configuration stays) or as `multipart/form-data` with a `component` part
//! and a `config` part (a JSON object of strings), to install or shadow it
//! together with its configuration.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{
        DefaultBodyLimit, FromRequest, Multipart, Request, State, multipart::MultipartError,
    },
    http::{StatusCode, header},
};
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
    Error,
    policy::{
        Slot,
        bindings::Config,
        loaded::PolicyInfo,
        metadata,
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
        .routes(routes!(configure_policy))
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
    PolicyList {
        environment: state.policies.registry.environment.clone(),
        slots: Slot::ALL
            .into_iter()
            .map(|slot| state.policies.info(slot))
            .collect(),
    }
}

/// A component upload with its configuration, as `multipart/form-data`
/// (documentation only: the handler reads the parts itself).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct ComponentForm {
    /// The component's bytes.
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
    /// The configuration to run it with: a JSON object of strings.
    #[schema(value_type = Object)]
    config: Option<BTreeMap<String, String>>,
}

/// What an upload carries.
pub(super) struct Upload {
    pub(super) component: Vec<u8>,
    /// `None` for bare bytes.
    pub(super) config: Option<Config>,
}

impl Upload {
    /// Bare component bytes, or a multipart form with `component` and `config`.
    pub(super) async fn read(request: Request) -> ApiResult<Self> {
        let multipart = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("multipart/form-data"));
        if !multipart {
            let bytes = Bytes::from_request(request, &()).await;
            return Ok(Self {
                component: component_bytes(bytes)?,
                config: None,
            });
        }
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        let (mut component, mut config) = (None, None);
        while let Some(field) = form.next_field().await.map_err(form_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            let bytes = field.bytes().await.map_err(form_error)?;
            match name.as_str() {
                "component" => component = Some(bytes),
                "config" => config = Some(config_from(&bytes)?),
                other => {
                    return Err(ApiError::invalid(format!(
                        "the form has a part named {other:?}; it takes `component` and `config`"
                    )));
                }
            }
        }
        let component = component
            .ok_or_else(|| Error::InvalidComponent("the form has no `component` part".into()))?;
        Ok(Self {
            component: component_bytes(Ok(component))?,
            config,
        })
    }
}

fn form_error(err: MultipartError) -> ApiError {
    if let Some(timed_out) = ApiError::if_timed_out(&err) {
        timed_out
    } else if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            limit: COMPONENT_LIMIT,
        }
    } else {
        ApiError::invalid(format!("the form cannot be read: {}", err.body_text()))
    }
}

/// A configuration from a request body or form part: a JSON object of strings.
fn config_from(bytes: &[u8]) -> ApiResult<Config> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        Error::InvalidConfig(format!(
            "the configuration is not JSON ({err}); send an object of strings"
        ))
    })?;
    Ok(metadata::from_json(&value).map_err(Error::InvalidConfig)?)
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
        (ComponentForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, body = PolicyInfo),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_COMPONENT or INVALID_CONFIG"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
    ))]
async fn upload_policy(
    Admin(actor): Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
    request: Request,
) -> ApiResult<Json<PolicyInfo>> {
    let slot = parse_slot(&slot)?;
    let upload = Upload::read(request).await?;
    Ok(Json(
        state
            .policies
            .upload(&actor, slot, upload.component, upload.config)
            .await?,
    ))
}

/// Give the slot's active component a new configuration, for every instance
/// of the deployment. Recorded like a swap: a rollback returns to the
/// configuration before. Keys the component does not declare are refused.
#[utoipa::path(put, path = "/api/v1/admin/policies/{slot}/config", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path)),
    request_body(content = BTreeMap<String, String>, content_type = "application/json"),
    responses(
        (status = 200, body = PolicyInfo),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_CONFIG: not an object of strings, or a key the component does not declare"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
    ))]
async fn configure_policy(
    Admin(actor): Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<PolicyInfo>> {
    let slot = parse_slot(&slot)?;
    let body = body.map_err(|rejection| body_error(&rejection, super::JSON_BODY_LIMIT))?;
    let config = config_from(&body)?;
    Ok(Json(state.policies.set_config(&actor, slot, config).await?))
}

/// The body of a component upload, refused when empty or too large.
fn component_bytes(
    bytes: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Vec<u8>> {
    let bytes = bytes.map_err(|rejection| body_error(&rejection, COMPONENT_LIMIT))?;
    if bytes.is_empty() {
        return Err(ApiError::from(crate::Error::InvalidComponent(
            "the body is empty; send the component's bytes".into(),
        )));
    }
    Ok(bytes.to_vec())
}

/// A body that could not be read: too large for `limit`, or cut short.
fn body_error(rejection: &axum::extract::rejection::BytesRejection, limit: usize) -> ApiError {
    if let Some(timed_out) = ApiError::if_timed_out(rejection) {
        timed_out
    } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::invalid(rejection.body_text())
    }
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
    Admin(actor): Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
) -> ApiResult<Json<PolicyInfo>> {
    let slot = parse_slot(&slot)?;
    Ok(Json(state.policies.rollback(&actor, slot).await?))
}

/// Read the environment's manifest again and swap the slots that changed.
#[utoipa::path(post, path = "/api/v1/admin/policies/reload", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = PolicyList),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_MANIFEST; the running policies stay"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn reload_policies(
    Admin(actor): Admin,
    State(state): State<AppState>,
) -> ApiResult<Json<PolicyList>> {
    state.policies.reload(&actor).await?;
    Ok(Json(list(&state)))
}

/// Shadow a slot with a candidate, for every instance of the deployment:
/// from now on every evaluation of the slot also runs the candidate on the
/// same input, with its own fuel budget, never applied and never failing the
/// request, and the two answers are compared. Replaces the slot's shadow.
/// Bare bytes run with the active version's configuration; a form with a
/// `config` part runs the candidate with its own.
#[utoipa::path(put, path = "/api/v1/admin/policies/{slot}/shadow", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path)),
    request_body(content(
        (Vec<u8> = "application/wasm"),
        (Vec<u8> = "application/octet-stream"),
        (ComponentForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, body = ShadowInfo),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_COMPONENT or INVALID_CONFIG"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
    ))]
async fn start_shadow(
    Admin(actor): Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
    request: Request,
) -> ApiResult<Json<ShadowInfo>> {
    let slot = parse_slot(&slot)?;
    let upload = Upload::read(request).await?;
    Ok(Json(
        state
            .policies
            .start_shadow(&actor, slot, upload.component, upload.config)
            .await?,
    ))
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
    Admin(actor): Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
) -> ApiResult<StatusCode> {
    let slot = parse_slot(&slot)?;
    state.policies.stop_shadow(&actor, slot).await?;
    Ok(StatusCode::NO_CONTENT)
}
