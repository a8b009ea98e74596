//! Idempotency keys, once for every idempotent endpoint.
//!
//! A use case that accepts a key calls [`claim`] first in its transaction and
//! [`store`] last, so the stored response commits or rolls back together with
//! the effect: a key is either absent (nothing happened, the request may run)
//! or holds the answer to replay. A transaction-scoped advisory lock on the
//! key tells a concurrent repeat that the first is still running, without
//! leaving anything behind if the process dies.
//!
//! A repeat answers from what was stored, whatever changed since: the
//! coupon its order used, the stock it took, a swapped policy. So a use case
//! looks its key up ([`before_checks`]) before any check that reads changing
//! state, and claims it again in the transaction that writes.

use std::{future::Future, time::Duration};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Keys are kept at least this long.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// A request that carried an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    user_id: i64,
    key: String,
    /// Digest of the operation and its parsed body: a repeat must match it.
    request_hash: [u8; 32],
}

impl IdempotentRequest {
    /// `operation` names the endpoint so that one key cannot be replayed
    /// against another endpoint of the same user.
    pub fn new(user_id: i64, key: String, operation: &str, body: &impl Serialize) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(operation.as_bytes());
        hasher.update([0]);
        hasher.update(serde_json::to_vec(body).unwrap_or_default());
        Self {
            user_id,
            key,
            request_hash: hasher.finalize().into(),
        }
    }

    /// 64 bits of the key's digest, for `pg_try_advisory_xact_lock`.
    fn lock_id(&self) -> i64 {
        let digest = Sha256::new()
            .chain_update(self.user_id.to_be_bytes())
            .chain_update(self.key.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }
}

/// A response stored under a key.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// The HTTP status it was first sent with.
    pub status: u16,
    /// A JSON document, as it was first sent.
    pub body: Vec<u8>,
}

/// What an idempotent use case produced: a new result, or the stored answer
/// of an earlier request with the same key.
#[derive(Debug)]
pub enum Outcome<T> {
    Fresh(T),
    Replayed(StoredResponse),
}

/// Whether a request's checks ran, or its key already held the answer.
pub enum Checked<T> {
    Passed(T),
    Answered(StoredResponse),
}

/// Runs `checks` (reads of changing state, policy calls) unless the key
/// already holds an answer, which is returned instead. When a check fails,
/// the key is looked at again under its lock: a repeat that raced its first
/// request answers `IDEMPOTENCY_KEY_IN_PROGRESS` or the stored answer, never
/// the error a check sees in the state the first request left.
pub async fn before_checks<T>(
    db: &PgPool,
    key: Option<&IdempotentRequest>,
    checks: impl Future<Output = Result<T>>,
) -> Result<Checked<T>> {
    let Some(key) = key else {
        return checks.await.map(Checked::Passed);
    };
    if let Some(stored) = peek(db, key).await? {
        return Ok(Checked::Answered(stored));
    }
    match checks.await {
        Ok(passed) => Ok(Checked::Passed(passed)),
        Err(failure) => {
            // The transaction only holds the key's lock while it looks.
            let mut tx = db.begin().await?;
            match claim(&mut tx, key).await? {
                Some(stored) => Ok(Checked::Answered(stored)),
                None => Err(failure),
            }
        }
    }
}

/// The stored answer, without taking the key.
async fn peek(db: &PgPool, request: &IdempotentRequest) -> Result<Option<StoredResponse>> {
    let mut conn = db.acquire().await?;
    lookup(&mut conn, request).await
}

/// Takes the key for this transaction. Returns the stored response when the
/// request was already answered; fails with `IDEMPOTENCY_KEY_IN_PROGRESS`
/// while another transaction holds the key and `IDEMPOTENCY_KEY_REUSED` when
/// the key was used for a different request.
pub async fn claim(
    tx: &mut PgConnection,
    request: &IdempotentRequest,
) -> Result<Option<StoredResponse>> {
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(request.lock_id())
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Err(Error::IdempotencyKeyInProgress);
    }
    lookup(tx, request).await
}

/// The stored answer under the key; `IDEMPOTENCY_KEY_REUSED` when it
/// answered a different request.
async fn lookup(
    conn: &mut PgConnection,
    request: &IdempotentRequest,
) -> Result<Option<StoredResponse>> {
    let stored: Option<(Vec<u8>, i16, Vec<u8>)> = sqlx::query_as(
        "select request_hash, response_status, response_body
           from idempotency_keys
          where user_id = $1 and key = $2",
    )
    .bind(request.user_id)
    .bind(&request.key)
    .fetch_optional(conn)
    .await?;
    match stored {
        None => Ok(None),
        Some((hash, _, _)) if hash != request.request_hash => Err(Error::IdempotencyKeyReused),
        Some((_, status, body)) => Ok(Some(StoredResponse {
            status: u16::try_from(status).unwrap_or(200),
            body,
        })),
    }
}

/// Records the response in the same transaction as the effect.
pub async fn store(
    tx: &mut PgConnection,
    request: &IdempotentRequest,
    status: u16,
    body: &impl Serialize,
) -> Result<()> {
    let body = serde_json::to_vec(body).map_err(|err| Error::Internal(err.into()))?;
    sqlx::query(
        "insert into idempotency_keys (user_id, key, request_hash, response_status, response_body)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(request.user_id)
    .bind(&request.key)
    .bind(request.request_hash.as_slice())
    .bind(status as i16)
    .bind(body)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes keys past their retention, every few minutes, until cancelled.
pub(crate) async fn prune_periodically(db: PgPool, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let pruned = sqlx::query(
            "delete from idempotency_keys where created_at < now() - make_interval(secs => $1)",
        )
        .bind(RETENTION.as_secs_f64())
        .execute(&db)
        .await;
        match pruned {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::info!(keys = done.rows_affected(), "pruned idempotency keys");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "cannot prune idempotency keys"),
        }
    }
}
