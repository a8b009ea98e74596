//! The ceilings scenarios are compared with: two minimal axum servers in
//! this process, driven by the same load generator with the same
//! connections, showing what this machine serves when the server does next
//! to no work:
//! - `POST /ceiling` parses the same JSON body and makes one Redis call, an
//!   EVALSHA of a trivial script, and nothing else;
//! - `GET /bare` answers a small JSON document and nothing else;
//! - `GET /select?page=` runs one plain indexed SELECT of a catalogue page.

use std::{net::SocketAddr, sync::LazyLock};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    routing::{get, post},
};
use redis::{Script, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const PATH: &str = "/ceiling";
pub const BARE: &str = "/bare";
pub const SELECT: &str = "/select";

static TRIVIAL: LazyLock<Script> = LazyLock::new(|| Script::new("return 1"));

/// The body an issue request has.
#[derive(Deserialize)]
struct Body {
    user_id: i64,
}

#[derive(Clone)]
struct Ceiling {
    redis: ConnectionManager,
    db: Option<PgPool>,
}

async fn one_redis_call(
    State(Ceiling { mut redis, .. }): State<Ceiling>,
    Json(body): Json<Body>,
) -> Result<Json<Value>, StatusCode> {
    let answer: i64 = TRIVIAL
        .arg(body.user_id)
        .invoke_async(&mut redis)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(Json(json!({ "answer": answer })))
}

async fn bare() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Deserialize)]
struct PageQuery {
    page: i64,
}

#[derive(Serialize, sqlx::FromRow)]
struct Product {
    id: i64,
    name: String,
    category: String,
    price: i64,
    stock: i32,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// One catalogue page by the newest-first index, and nothing else.
async fn plain_select(
    State(Ceiling { db, .. }): State<Ceiling>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Vec<Product>>, StatusCode> {
    let db = db.ok_or(StatusCode::NOT_FOUND)?;
    sqlx::query_as(
        "select id, name, category, price, stock, created_at from products
          order by created_at desc, id desc limit 20 offset $1",
    )
    .bind(query.page * 20)
    .fetch_all(&db)
    .await
    .map(Json)
    .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
}

/// Two ceiling servers, served until `stop` is cancelled.
pub async fn start(stop: CancellationToken) -> anyhow::Result<Vec<SocketAddr>> {
    start_with(stop, None).await
}

/// Two ceiling servers whose `/select` reads `db`.
pub async fn start_with(
    stop: CancellationToken,
    db: Option<PgPool>,
) -> anyhow::Result<Vec<SocketAddr>> {
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let redis = ConnectionManager::new(redis::Client::open("redis://127.0.0.1:6379")?).await?;
        let app = Router::new()
            .route(PATH, post(one_redis_call))
            .route(BARE, get(bare))
            .route(SELECT, get(plain_select))
            .with_state(Ceiling {
                redis,
                db: db.clone(),
            });
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
