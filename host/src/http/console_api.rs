//! Admin endpoints the operator console (`/console`) needs beyond the
//! policy API: each slot's state in one read, the activation history,
//! promoting a shadow, replay jobs with progress, and live counters.

use std::collections::BTreeMap;

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{
    router::{OpenApiRouter, UtoipaMethodRouterExt},
    routes,
};

use super::{
    error::{ApiError, ApiResult, Problem},
    extract::{Admin, Json, Path, Query},
    policies::{COMPONENT_LIMIT, ComponentForm, Upload},
};
use crate::{
    paging::{Page, PageQuery},
    policy::{Slot, loaded::PolicyInfo, replay, shadow::ShadowInfo},
    replays::ReplayJob,
    state::AppState,
    telemetry::{self, live::LiveStats},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(slots))
        .routes(routes!(history))
        .routes(routes!(promote_shadow))
        .routes(routes!(start_replay).layer(DefaultBodyLimit::max(COMPONENT_LIMIT)))
        .routes(routes!(list_replays))
        .routes(routes!(get_replay))
        .routes(routes!(cancel_replay))
        .routes(routes!(live_stats))
}

fn parse_slot(slot: &str) -> ApiResult<Slot> {
    Ok(slot.parse::<Slot>()?)
}

// ---------------------------------------------------------------- slots

/// Every slot as the console's Policies page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotsOverview {
    environment: String,
    slots: Vec<SlotOverview>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotOverview {
    slot: Slot,
    active: PolicyInfo,
    /// The active version's configuration.
    config: BTreeMap<String, String>,
    /// The version a rollback returns to, if any.
    previous: Option<PolicyInfo>,
    /// The candidate shadowing the slot, if any.
    shadow: Option<ShadowInfo>,
}

/// Each slot's active version with its configuration, the version a
/// rollback returns to, and the shadow, as this instance serves them (an
/// instance follows changes made through another within one second).
#[utoipa::path(get, path = "/api/v1/admin/console/slots", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = SlotsOverview),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn slots(_: Admin, State(state): State<AppState>) -> Json<SlotsOverview> {
    let policies = &state.policies;
    let slots = Slot::ALL
        .into_iter()
        .map(|slot| {
            let current = policies.registry.slot(slot);
            let shadow = policies
                .shadow(slot)
                .map(|shadow| policies.shadow_info(slot, &shadow));
            SlotOverview {
                slot,
                active: current.active.info.clone(),
                config: current.active.config.iter().cloned().collect(),
                previous: current.previous.as_ref().map(|p| p.info.clone()),
                shadow,
            }
        })
        .collect();
    Json(SlotsOverview {
        environment: policies.registry.environment.clone(),
        slots,
    })
}

// -------------------------------------------------------------- history

/// One activation of a slot.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivationEntry {
    /// Row id: activations are numbered in the order they happened.
    id: i64,
    name: String,
    version: String,
    sha256: String,
    /// `manifest:<file>`, `upload`, or `shadow` for a promoted candidate.
    source: String,
    config: BTreeMap<String, String>,
    activated_at: DateTime<Utc>,
    /// When a rollback retired it.
    retired_at: Option<DateTime<Utc>>,
    /// `active`; `previous` (what a rollback returns to); `standby` (live,
    /// reached by further rollbacks); `rolled_back`.
    state: String,
}

/// A slot's activations, newest first: uploads, manifest loads, promoted
/// shadows, and which of them rollbacks retired.
#[utoipa::path(get, path = "/api/v1/admin/policies/{slot}/history", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path), PageQuery),
    responses(
        (status = 200, body = Page<ActivationEntry>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
    ))]
async fn history(
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<ActivationEntry>>> {
    let slot = parse_slot(&slot)?;
    let page = page.validate()?;
    let (rows, total) = state
        .policies
        .history(slot, page.limit(), page.offset())
        .await?;
    let current = state.policies.registry.slot(slot);
    let previous = current.previous.as_ref().map(|p| p.activation);
    let items = rows
        .into_iter()
        .map(|row| {
            let state = if row.id == current.active.activation {
                "active"
            } else if Some(row.id) == previous {
                "previous"
            } else if row.retired_at.is_some() {
                "rolled_back"
            } else {
                "standby"
            };
            ActivationEntry {
                id: row.id,
                name: row.name,
                version: row.version,
                sha256: hex::encode(&row.sha256),
                source: row.source,
                config: row.config.0.into_iter().collect(),
                activated_at: row.activated_at,
                retired_at: row.retired_at,
                state: state.to_owned(),
            }
        })
        .collect();
    Ok(Json(page.with(items, total)))
}

// -------------------------------------------------------------- promote

/// Make the slot's shadow candidate the active version, for every
/// instance, and stop the shadow. Recorded with source `shadow`.
#[utoipa::path(post, path = "/api/v1/admin/policies/{slot}/shadow/promote", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path)),
    responses(
        (status = 200, body = PolicyInfo),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "NO_SHADOW or UNKNOWN_SLOT"),
    ))]
async fn promote_shadow(
    Admin(actor): Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
) -> ApiResult<Json<PolicyInfo>> {
    let slot = parse_slot(&slot)?;
    Ok(Json(state.policies.promote_shadow(&actor, slot).await?))
}

// -------------------------------------------------------------- replays

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// `24h`, `30m`, `7d`, `90s` before now, or an RFC 3339 time (default `24h`).
    since: Option<String>,
}

/// Replay the orders recorded since `since` through the component in the
/// body, in the background, on this instance (one replay at a time per
/// instance; later ones wait): `202` with the job, which any instance of the
/// deployment answers at `GET /api/v1/admin/replays/{id}`. The component is
/// checked against the slot's world first. Bare bytes replay each order
/// with the configuration it was priced with; a form with a `config` part
/// replays every order with that one. What it reports is what
/// `commerce policy replay` prints.
#[utoipa::path(post, path = "/api/v1/admin/policies/{slot}/replays", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path), ReplayQuery),
    request_body(content(
        (Vec<u8> = "application/wasm"),
        (Vec<u8> = "application/octet-stream"),
        (ComponentForm = "multipart/form-data"),
    )),
    responses(
        (status = 202, body = ReplayJob),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_COMPONENT, INVALID_CONFIG or INVALID_REQUEST (a bad `since`, or one further back than dates go)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "TOO_MANY_REPLAYS: 32 replays are queued or running in the deployment"),
    ))]
async fn start_replay(
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
    Query(query): Query<ReplayQuery>,
    request: Request,
) -> ApiResult<(StatusCode, Json<ReplayJob>)> {
    let slot = parse_slot(&slot)?;
    let since = replay::parse_since(query.since.as_deref().unwrap_or("24h"))
        .map_err(|err| ApiError::invalid(format!("since: {err}")))?;
    let upload = Upload::read(request).await?;
    let job = state
        .replays
        .submit(slot, upload.component, upload.config, since)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// The deployment's replays, newest first (the last 32), whichever
/// instance runs them.
#[utoipa::path(get, path = "/api/v1/admin/replays", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Vec<ReplayJob>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_replays(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<ReplayJob>>> {
    Ok(Json(state.replays.list().await?))
}

/// One replay: its progress while it runs (written by the instance that
/// runs it a few times a second), its report once done.
#[utoipa::path(get, path = "/api/v1/admin/replays/{id}", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{32}$", description = "32 hex digits")),
    responses(
        (status = 200, body = ReplayJob),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "REPLAY_NOT_FOUND"),
    ))]
async fn get_replay(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ReplayJob>> {
    Ok(Json(state.replays.get(&id).await?))
}

/// Cancel a replay, through any instance: a queued one is `cancelled` at
/// once; a running one (`cancel_requested_at` set) stops within a second
/// and is then `cancelled`, keeping the progress it made.
#[utoipa::path(post, path = "/api/v1/admin/replays/{id}/cancel", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{32}$", description = "32 hex digits")),
    responses(
        (status = 200, body = ReplayJob),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "REPLAY_NOT_FOUND"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "REPLAY_FINISHED: done, failed, cancelled or interrupted already (`state` member)"),
    ))]
async fn cancel_replay(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ReplayJob>> {
    Ok(Json(state.replays.cancel(&id).await?))
}

// ---------------------------------------------------------------- stats

/// This instance's policy call latency and counts by slot and version,
/// orders and coupon outcomes: counters since the process started, read
/// from the same recorder `/metrics` renders.
#[utoipa::path(get, path = "/api/v1/admin/console/stats", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = LiveStats),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn live_stats(_: Admin, State(state): State<AppState>) -> Json<LiveStats> {
    Json(telemetry::live::stats_from(&state.metrics.render()))
}
