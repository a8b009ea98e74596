//! The transactional outbox: events are written in the transaction of their
//! cause and a relay publishes them to the Redis stream
//! `<prefix>events:orders`, at least once, each with its `event_id`.
//!
//! Instances relay side by side: `for update skip locked` gives each row to
//! one of them. A relay that dies after publishing and before marking the
//! row publishes it again later with the same `event_id`; consumers dedupe.
//!
//! Neither store grows without bound: the stream keeps about
//! `OUTBOX_STREAM_MAXLEN` entries (`XADD MAXLEN ~`), and published rows are
//! deleted after `OUTBOX_RETENTION_DAYS`.

use std::{sync::Arc, time::Duration};

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{error::Result, redis::Redis};

/// Rows published per transaction.
const BATCH: i64 = 200;
/// How often the relay looks without being woken (changes made through
/// other instances, or Redis coming back).
const POLL: Duration = Duration::from_millis(500);

/// How often published rows past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// How much each store keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// About how many entries the stream keeps.
    pub stream_maxlen: u64,
    /// Days a published row is kept.
    pub days: u32,
}

/// The stream events go to, under the deployment's prefix: one key, so on a
/// Redis Cluster one slot, and a batch's `XADD`s go in one pipeline to its
/// master.
pub fn stream(redis: &Redis) -> String {
    redis.key("events:orders")
}

/// Writes an event about order `order_id` in the caller's transaction. The
/// relay publishes `payload` with the event's `event_id`, `type` and
/// `occurred_at` (the transaction's time) added.
pub async fn record(
    tx: &mut PgConnection,
    kind: &str,
    order_id: i64,
    payload: &impl Serialize,
) -> Result<()> {
    let payload =
        serde_json::to_value(payload).map_err(|err| crate::error::Error::Internal(err.into()))?;
    sqlx::query("insert into outbox (type, order_id, payload) values ($1, $2, $3)")
        .bind(kind)
        .bind(order_id)
        .bind(payload)
        .execute(tx)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Event {
    id: i64,
    event_id: uuid::Uuid,
    #[sqlx(rename = "type")]
    kind: String,
    order_id: i64,
    payload: serde_json::Value,
}

/// Publishes one batch; the number of events published.
async fn publish_batch(db: &PgPool, redis: &Redis, maxlen: u64) -> anyhow::Result<usize> {
    let mut tx = db.begin().await?;
    let events: Vec<Event> = sqlx::query_as(
        r#"select id, event_id, type, order_id,
                payload || jsonb_build_object('event_id', event_id, 'type', type,
                                              'occurred_at', to_char(created_at at time zone 'utc',
                                                                     'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
                  as payload
           from outbox
          where published_at is null
          order by id
          limit $1
            for update skip locked"#,
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if events.is_empty() {
        return Ok(0);
    }
    let stream = stream(redis);
    let mut pipe = redis::pipe();
    for event in &events {
        pipe.cmd("XADD")
            .arg(&stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(maxlen)
            .arg("*")
            .arg("event_id")
            .arg(event.event_id.to_string())
            .arg("type")
            .arg(&event.kind)
            .arg("order_id")
            .arg(event.order_id)
            .arg("payload")
            .arg(event.payload.to_string())
            .ignore();
    }
    let mut conn = redis.conn.clone();
    pipe.query_async::<()>(&mut conn).await?;
    let ids: Vec<i64> = events.iter().map(|event| event.id).collect();
    sqlx::query("update outbox set published_at = now() where id = any($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(events.len())
}

/// Relays until cancelled: woken after a commit that wrote events, and every
/// half second. While Redis is down events wait in PostgreSQL.
pub(crate) async fn relay(
    db: PgPool,
    redis: Redis,
    wake: Arc<Notify>,
    retention: Retention,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(tokio::time::Instant::now());
            prune(&db, retention.days).await;
        }
        let published = publish_batch(&db, &redis, retention.stream_maxlen).await;
        let pause = match published {
            Ok(n) if n as i64 == BATCH => {
                failures = 0;
                continue;
            }
            Ok(n) => {
                if n > 0 {
                    metrics::counter!("outbox_published_total").increment(n as u64);
                }
                failures = 0;
                POLL
            }
            Err(err) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::warn!(error = %format!("{err:#}"), "cannot publish events; they wait in PostgreSQL");
                }
                POLL * failures.min(10)
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Deletes published rows older than `days`.
async fn prune(db: &PgPool, days: u32) {
    let pruned = sqlx::query(
        "delete from outbox
          where published_at is not null and published_at < now() - make_interval(days => $1)",
    )
    .bind(days as i32)
    .execute(db)
    .await;
    match pruned {
        Ok(done) if done.rows_affected() > 0 => {
            tracing::info!(
                events = done.rows_affected(),
                "pruned published outbox events"
            );
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "cannot prune the outbox"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    async fn events(db: &PgPool, count: i64, published_days_ago: Option<i32>) {
        sqlx::query(
            "insert into outbox (type, order_id, payload, published_at)
             select 'order.paid', g, '{}'::jsonb, now() - make_interval(days => $2)
               from generate_series(1, $1) g",
        )
        .bind(count)
        .bind(published_days_ago)
        .execute(db)
        .await
        .expect("events are inserted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn published_events_past_their_retention_are_pruned_and_the_stream_is_capped() {
        let db = testing::database().await;
        let redis = testing::redis().await;
        events(&db, 3, Some(10)).await;
        events(&db, 2, Some(1)).await;
        prune(&db, 7).await;
        let kept: i64 = sqlx::query_scalar("select count(*) from outbox")
            .fetch_one(&db)
            .await
            .expect("a count");
        assert_eq!(kept, 2, "only events published more than 7 days ago go");

        // 1,000 unpublished events through a stream capped at about 100.
        events(&db, 1_000, None).await;
        while publish_batch(&db, &redis, 100).await.expect("published") > 0 {}
        let mut conn = redis.conn.clone();
        let length: u64 = redis::cmd("XLEN")
            .arg(stream(&redis))
            .query_async(&mut conn)
            .await
            .expect("a length");
        assert!((100..400).contains(&length), "the stream holds {length}");
        let _: () = redis::cmd("DEL")
            .arg(stream(&redis))
            .query_async(&mut conn)
            .await
            .expect("deleted");
    }
}
