//! The ceiling a scenario is compared with: two minimal axum servers in this
//! process whose one endpoint parses the same JSON body and makes one Redis
//! call, an EVALSHA of a trivial script, and nothing else. Driven by the same
//! load generator with the same connections, it shows what this machine
//! serves when the server does next to no work.

use std::{net::SocketAddr, sync::LazyLock};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use redis::{Script, aio::ConnectionManager};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const PATH: &str = "/ceiling";

static TRIVIAL: LazyLock<Script> = LazyLock::new(|| Script::new("return 1"));

/// The body an issue request has.
#[derive(Deserialize)]
struct Body {
    user_id: i64,
}

async fn one_redis_call(
    State(mut redis): State<ConnectionManager>,
    Json(body): Json<Body>,
) -> Result<Json<Value>, StatusCode> {
    let answer: i64 = TRIVIAL
        .arg(body.user_id)
        .invoke_async(&mut redis)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(Json(json!({ "answer": answer })))
}

/// Two ceiling servers, served until `stop` is cancelled.
pub async fn start(stop: CancellationToken) -> anyhow::Result<Vec<SocketAddr>> {
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let redis = ConnectionManager::new(redis::Client::open("redis://127.0.0.1:6379")?).await?;
        let app = Router::new()
            .route(PATH, post(one_redis_call))
            .with_state(redis);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        addresses.push(listener.local_addr()?);
        let stop = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
    }
    Ok(addresses)
}
