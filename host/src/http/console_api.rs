//! Admin endpoints the operator console (`/console`) needs beyond the
//! policy API: each slot's state in one read, the activation history,
//! promoting a shadow, replay jobs with progress, and live counters.
//!
//! Replay jobs live in the memory of the instance that runs them (the
//! console polls the instance it was served by); a restart forgets them.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{LazyLock, Mutex},
};

use axum::{body::Bytes, extract::DefaultBodyLimit, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{
    router::{OpenApiRouter, UtoipaMethodRouterExt},
    routes,
};

use super::{
    error::{ApiError, ApiResult, Problem},
    extract::{Admin, Json, Path, Query},
    policies::{COMPONENT_LIMIT, component_bytes},
};
use crate::{
    paging::{Page, PageQuery},
    policy::{
        Slot,
        loaded::PolicyInfo,
        recorded,
        replay::{self, ReplayReport},
        runner,
        shadow::ShadowInfo,
    },
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

/// Replay jobs this instance keeps, newest last; older finished ones go.
const JOBS_KEPT: usize = 32;

/// The jobs of this process. Replays run one at a time: each keeps a core
/// busy, and the server has requests to serve.
static JOBS: LazyLock<Mutex<VecDeque<ReplayJob>>> = LazyLock::new(Default::default);
static ONE_AT_A_TIME: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(1));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Waiting for the replay before it to finish.
    Queued,
    Running,
    Done,
    Failed,
}

/// A replay of recorded orders through an uploaded component.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayJob {
    /// 32 hex digits.
    id: String,
    slot: Slot,
    /// The candidate's `name@version`.
    candidate: String,
    sha256: String,
    /// Orders placed since this time are replayed.
    since: DateTime<Utc>,
    status: ReplayStatus,
    /// Orders recorded since `since` when the replay started.
    total: i64,
    /// Orders read so far.
    read: u64,
    /// The totals so far; final once `done`.
    report: Option<ReplayReport>,
    /// The report as `commerce policy replay` prints it, once `done`.
    text: Option<String>,
    /// Why the replay failed.
    error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// `24h`, `30m`, `7d`, `90s` before now, or an RFC 3339 time (default `24h`).
    since: Option<String>,
}

fn jobs() -> std::sync::MutexGuard<'static, VecDeque<ReplayJob>> {
    JOBS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn update(id: &str, change: impl FnOnce(&mut ReplayJob)) {
    if let Some(job) = jobs().iter_mut().find(|job| job.id == id) {
        change(job);
    }
}

/// Replay the orders recorded since `since` through the component in the
/// body, on this instance, in the background: `202` with the job to poll at
/// `GET /api/v1/admin/replays/{id}`. The component is checked against the
/// slot's world first. What it reports is what `commerce policy replay`
/// prints.
#[utoipa::path(post, path = "/api/v1/admin/policies/{slot}/replays", tag = "admin",
    security(("admin_token" = [])),
    params(("slot" = Slot, Path), ReplayQuery),
    request_body(content(
        (Vec<u8> = "application/wasm"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 202, body = ReplayJob),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "INVALID_COMPONENT or INVALID_REQUEST (a bad `since`)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "UNKNOWN_SLOT"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "SERVICE_UNAVAILABLE: 32 replays are queued or running here"),
    ))]
async fn start_replay(
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
    Query(query): Query<ReplayQuery>,
    bytes: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<ReplayJob>)> {
    let slot = parse_slot(&slot)?;
    let since = replay::parse_since(query.since.as_deref().unwrap_or("24h"))
        .map_err(|err| ApiError::invalid(format!("since: {err}")))?;
    let bytes = component_bytes(bytes)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    // Compiling takes tens of milliseconds: off the async workers.
    let candidate = tokio::task::spawn_blocking(move || runner::load(&bytes, slot))
        .await
        .map_err(|err| crate::Error::Internal(err.into()))??;
    let job = ReplayJob {
        id: uuid::Uuid::new_v4().simple().to_string(),
        slot,
        candidate: candidate.label(),
        sha256,
        since,
        status: ReplayStatus::Queued,
        total: 0,
        read: 0,
        report: None,
        text: None,
        error: None,
        created_at: Utc::now(),
        finished_at: None,
    };
    {
        let mut jobs = jobs();
        if jobs.len() >= JOBS_KEPT {
            // The oldest finished job makes room; with none finished, the
            // queue is full.
            let oldest = jobs
                .iter()
                .position(|job| job.finished_at.is_some())
                .ok_or_else(|| {
                    crate::Error::ServiceUnavailable(format!(
                        "{JOBS_KEPT} replays are queued or running on this instance; retry once one finishes"
                    ))
                })?;
            jobs.remove(oldest);
        }
        jobs.push_back(job.clone());
    }
    let id = job.id.clone();
    let db = state.db.clone();
    tokio::spawn(async move {
        let _turn = ONE_AT_A_TIME.acquire().await;
        update(&id, |job| job.status = ReplayStatus::Running);
        let run = async {
            let total = recorded::count(&db, since).await?;
            update(&id, |job| job.total = total);
            replay::replay_with(&db, candidate, since, None, |read, report| {
                update(&id, |job| {
                    job.read = read;
                    job.report = Some(report.clone());
                });
            })
            .await
        };
        let outcome = run.await;
        update(&id, |job| {
            job.finished_at = Some(Utc::now());
            match outcome {
                Ok(report) => {
                    job.status = ReplayStatus::Done;
                    job.text = Some(report.to_string());
                    job.read = job.read.max(report.replayed);
                    job.report = Some(report);
                }
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "replay failed");
                    job.status = ReplayStatus::Failed;
                    job.error = Some(format!("{err:#}"));
                }
            }
        });
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// The replays this instance ran or runs, newest first (the last 32).
#[utoipa::path(get, path = "/api/v1/admin/replays", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Vec<ReplayJob>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_replays(_: Admin) -> Json<Vec<ReplayJob>> {
    Json(jobs().iter().rev().cloned().collect())
}

/// One replay: its progress while it runs, its report once done.
#[utoipa::path(get, path = "/api/v1/admin/replays/{id}", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{32}$", description = "32 hex digits")),
    responses(
        (status = 200, body = ReplayJob),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "REPLAY_NOT_FOUND: unknown to this instance, or forgotten by a restart"),
    ))]
async fn get_replay(_: Admin, Path(id): Path<String>) -> ApiResult<Json<ReplayJob>> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid("a replay id is 32 hex digits"));
    }
    let id = id.to_ascii_lowercase();
    jobs()
        .iter()
        .find(|job| job.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| crate::Error::ReplayNotFound(id).into())
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
