//! Admin endpoints the operator console (`/console`) needs beyond the
//! policy API: each slot's state in one read, the activation history,
//! promoting a shadow, replay jobs with progress, and live counters.
//!
//! Replay jobs live in the memory of the instance that runs them (the
//! console polls the instance it was served by); a restart forgets them.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
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
    _: Admin,
    State(state): State<AppState>,
    Path(slot): Path<String>,
) -> ApiResult<Json<PolicyInfo>> {
    let slot = parse_slot(&slot)?;
    Ok(Json(state.policies.promote_shadow(slot).await?))
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

/// This instance's counters since it started, for the console's live
/// charts: a client takes the difference between two reads.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LiveStats {
    /// When the counters were read.
    at: DateTime<Utc>,
    /// Policy calls by slot and version, every function together.
    policy_calls: Vec<PolicyCalls>,
    /// Orders by what happened to them: `placed`, `paid`, `cancelled`,
    /// `expired`, `out_of_stock` (refused).
    orders: BTreeMap<String, u64>,
    /// Coupon issuance answers by outcome: `issued`, `sold_out`,
    /// `already_issued`, `not_eligible`, `not_active`, ...
    coupons: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct PolicyCalls {
    slot: String,
    /// `name@version`.
    policy: String,
    calls: u64,
    failed: u64,
    /// Time spent in the calls, in seconds.
    seconds: f64,
    /// Cumulative latency buckets: calls that took at most `le` seconds.
    buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bucket {
    le: f64,
    count: u64,
}

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
    Json(stats_from(&state.metrics.render()))
}

/// One sample of the Prometheus text exposition: name, labels, value.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Sample<'_> {
    fn label(&self, key: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Parses one line of the text exposition; comments and blanks are `None`.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, mut rest) = line.split_at(line.find(['{', ' '])?);
    let mut labels = Vec::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.trim_start_matches([',', ' ']);
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = body.split_once("=\"")?;
            let (value, after) = quoted(after)?;
            labels.push((key, value));
            body = after;
        }
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A label value up to its closing quote, unescaped (`\\`, `\"`, `\n`),
/// and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// The slot and version a policy metric is labelled with.
fn policy_key(sample: &Sample<'_>) -> (String, String) {
    (
        sample.label("slot").to_owned(),
        sample.label("policy").to_owned(),
    )
}

/// The counters of the version a policy metric is labelled with.
fn version<'m>(
    calls: &'m mut BTreeMap<(String, String), PolicyCalls>,
    sample: &Sample<'_>,
) -> &'m mut PolicyCalls {
    let (slot, policy) = policy_key(sample);
    calls
        .entry((slot.clone(), policy.clone()))
        .or_insert_with(|| PolicyCalls {
            slot,
            policy,
            ..PolicyCalls::default()
        })
}

/// Folds the text exposition into the console's counters.
fn stats_from(text: &str) -> LiveStats {
    let mut stats = LiveStats {
        at: Utc::now(),
        ..LiveStats::default()
    };
    let mut calls: BTreeMap<(String, String), PolicyCalls> = BTreeMap::new();
    // Per version, bucket bound (by its bits) -> (bound, count), every function summed.
    let mut buckets: HashMap<(String, String), BTreeMap<u64, (f64, u64)>> = HashMap::new();
    for sample in text.lines().filter_map(parse_sample) {
        let count = if sample.value.is_finite() && sample.value > 0.0 {
            sample.value as u64
        } else {
            0
        };
        match sample.name {
            "policy_call_duration_seconds_count" => version(&mut calls, &sample).calls += count,
            "policy_call_duration_seconds_sum" => {
                version(&mut calls, &sample).seconds += sample.value;
            }
            "policy_calls_total" if sample.label("outcome") == "failed" => {
                version(&mut calls, &sample).failed += count;
            }
            "policy_call_duration_seconds_bucket" => {
                // `+Inf` is the count.
                if let Ok(le) = sample.label("le").parse::<f64>()
                    && le.is_finite()
                {
                    let bucket = buckets
                        .entry(policy_key(&sample))
                        .or_default()
                        .entry(le.to_bits())
                        .or_insert((le, 0));
                    bucket.1 += count;
                }
            }
            "coupon_issue_total" => {
                *stats
                    .coupons
                    .entry(sample.label("outcome").to_owned())
                    .or_default() += count;
            }
            name => {
                if let Some(what) = name
                    .strip_prefix("orders_")
                    .and_then(|rest| rest.strip_suffix("_total"))
                {
                    *stats.orders.entry(what.to_owned()).or_default() += count;
                }
            }
        }
    }
    for (key, call) in &mut calls {
        let mut bounds: Vec<(f64, u64)> = buckets
            .remove(key)
            .unwrap_or_default()
            .into_values()
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        call.buckets = bounds
            .into_iter()
            .map(|(le, count)| Bucket { le, count })
            .collect();
    }
    stats.policy_calls = calls.into_values().collect();
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE orders_placed_total counter
orders_placed_total 12
orders_paid_total 7
coupon_issue_total{coupon="1",strategy="reserve",outcome="issued"} 3
coupon_issue_total{coupon="2",strategy="reserve",outcome="issued"} 2
coupon_issue_total{coupon="1",strategy="reserve",outcome="sold_out"} 9
policy_calls_total{slot="pricing",policy="pricing-bulk@0.1.0",function="price",outcome="failed"} 1
policy_call_duration_seconds_bucket{slot="pricing",policy="pricing-bulk@0.1.0",function="price",le="0.001"} 4
policy_call_duration_seconds_bucket{slot="pricing",policy="pricing-bulk@0.1.0",function="price",le="+Inf"} 5
policy_call_duration_seconds_sum{slot="pricing",policy="pricing-bulk@0.1.0",function="price"} 0.0125
policy_call_duration_seconds_count{slot="pricing",policy="pricing-bulk@0.1.0",function="price"} 5
policy_call_duration_seconds_count{slot="coupon",policy="a \"quoted\" name@1",function="apply"} 2
"#;

    #[test]
    fn counters_fold_by_what_the_console_charts() {
        let stats = stats_from(TEXT);
        assert_eq!(stats.orders["placed"], 12);
        assert_eq!(stats.orders["paid"], 7);
        assert_eq!(stats.coupons["issued"], 5);
        assert_eq!(stats.coupons["sold_out"], 9);
        let pricing = stats
            .policy_calls
            .iter()
            .find(|c| c.slot == "pricing")
            .expect("pricing calls");
        assert_eq!((pricing.calls, pricing.failed), (5, 1));
        assert!((pricing.seconds - 0.0125).abs() < 1e-9);
        assert_eq!(pricing.buckets.len(), 1);
        assert_eq!(
            (pricing.buckets[0].le, pricing.buckets[0].count),
            (0.001, 4)
        );
        let coupon = stats
            .policy_calls
            .iter()
            .find(|c| c.slot == "coupon")
            .expect("coupon calls");
        assert_eq!(coupon.policy, "a \"quoted\" name@1");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for line in ["", "# HELP x", "x{a=\"1\"", "x{a=1} 2", "x notanumber"] {
            assert!(parse_sample(line).is_none(), "{line}");
        }
    }
}
