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

use super::extract::Json;
use crate::state::AppState;

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
    /// `ready`, or `unavailable` when a dependency fails.
    status: &'static str,
    /// Each dependency: `ok`, or why it failed.
    postgres: String,
    redis: String,
}

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// PostgreSQL and Redis answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = Readiness, description = "every dependency answers"),
        (status = 503, body = Readiness, description = "a dependency does not answer"),
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
    let describe = |result: Result<Result<(), String>, _>| match result {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(err)) => err,
        Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
    };
    let (postgres, redis) = (describe(postgres), describe(redis));
    let ready = postgres == "ok" && redis == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        postgres,
        redis,
    };
    (status, Json(body))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
