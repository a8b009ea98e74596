//! Health, readiness and metrics.

use std::time::Duration;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{error::ApiResult, extract::Json};
use crate::{identity::Caller, state::AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`; `degraded` when Redis does not answer (the server works on
    /// PostgreSQL alone, slower); `unavailable` when PostgreSQL does not.
    status: &'static str,
    /// Each dependency: `ok` or `error` (why is in the server's log, not
    /// here: a driver's message can name hosts and users).
    postgres: &'static str,
    redis: &'static str,
}

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether PostgreSQL and Redis answer. Without Redis the server is degraded,
/// not down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = Readiness, description = "`ready`, or `degraded` when only Redis does not answer"),
        (status = 503, body = Readiness, description = "PostgreSQL does not answer"),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let postgres = async {
        sqlx::query("select 1")
            .execute(&state.db)
            .await
            .map(drop)
            .map_err(|err| err.to_string())
    };
    let redis = async {
        let mut conn = state.redis.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|err| err.to_string())
    };
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, postgres),
        tokio::time::timeout(PROBE_TIMEOUT, redis)
    );
    let describe = |name: &str, result: Result<Result<(), String>, _>| match result {
        Ok(Ok(())) => "ok",
        Ok(Err(err)) => {
            tracing::warn!(dependency = name, error = %err, "readiness probe failed");
            "error"
        }
        Err(_) => {
            tracing::warn!(
                dependency = name,
                "readiness probe got no answer within {PROBE_TIMEOUT:?}"
            );
            "error"
        }
    };
    let (postgres, redis) = (describe("postgres", postgres), describe("redis", redis));
    // Without Redis the server still serves, on PostgreSQL alone; without
    // PostgreSQL it cannot.
    let (status, readiness) = match (postgres == "ok", redis == "ok") {
        (true, true) => (StatusCode::OK, "ready"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = Readiness {
        status: readiness,
        postgres,
        redis,
    };
    (status, Json(body))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(caller: Caller, State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    caller.back_office()?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    ))
}
