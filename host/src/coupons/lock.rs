//! The `lock` strategy, the older design kept for comparison: a Redis lock
//! per coupon serializes issuance, and inside it one PostgreSQL transaction
//! checks the user's history and the quantity, inserts and counts up.
//!
//! The lock is `SET key owner NX PX ttl`, released by a script that deletes
//! it only for its owner. A holder can lose the lock without knowing it (a
//! pause longer than the TTL), so the script that takes the lock also hands
//! out a fencing token from a per-coupon counter. The write stores the token
//! in `coupons.fence`, and only while the stored one is lower: a holder whose
//! lease ran out cannot write after a newer holder did.
//!
//! The counter lives in Redis and is lost with a flush or a restart. A write
//! refused for its token takes the lock again asking for a token above the
//! fence that refused it, and the acquiring script lifts the counter there:
//! tokens keep rising above every token that ever wrote, counter or not.
//!
//! Waiters of one process queue in the process, first come first served, so
//! that only one of them per coupon polls Redis; a process that polls in vain
//! claims the next turn, so that two processes take turns rather than the
//! one whose waiters follow each other fastest keeping the lock.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, PoisonError},
    time::{Duration, Instant},
};

use redis::Script;
use sqlx::PgPool;

use super::{Failure, IssuedCoupon, holds, insert_holder, key, millis, within};
use crate::{
    error::{Error, Result},
    redis::Redis,
};

/// How long a lock holds without its owner: a critical section is one short
/// transaction, so this only matters when the owner stalls or dies.
pub const LOCK_TTL: Duration = Duration::from_secs(2);
/// How long a request waits for the lock before `SERVICE_UNAVAILABLE`.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long a process that polled in vain keeps the next turn.
const TURN_TTL: Duration = Duration::from_millis(50);
/// How long the fencing counter of an idle coupon stays in Redis.
const COUNTER_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest pause between polls for the lock.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(4);

/// Takes the lock (KEYS[1]) for the owner ARGV[1] and returns a fencing token
/// from the counter KEYS[2], above ARGV[6]; `0` when the lock is held or
/// another process (not ARGV[3]) has the next turn (KEYS[3]), in which case
/// this process claims the next turn if it is free.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local waiting = redis.call('GET', KEYS[3])
        local my_turn = (not waiting) or waiting == ARGV[3]
        if my_turn and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
            if waiting then
                redis.call('DEL', KEYS[3])
            end
            local token = redis.call('INCR', KEYS[2])
            if token <= tonumber(ARGV[6]) then
                token = tonumber(ARGV[6]) + 1
                redis.call('SET', KEYS[2], token)
            end
            redis.call('PEXPIRE', KEYS[2], ARGV[5])
            return token
        end
        if my_turn then
            redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
        end
        return 0
        ",
    )
});

/// Deletes the lock KEYS[1] if ARGV[1] owns it: `1` when it did.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        ",
    )
});

/// A random owner token, so that only the owner releases a lock.
pub fn owner_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A held lock on one coupon and its fencing token.
#[derive(Debug)]
pub struct Lease {
    key: String,
    owner: String,
    pub token: i64,
}

impl Lease {
    /// Releases the lock if it is still this lease's: `false` when it
    /// expired (and maybe belongs to another holder now).
    pub async fn release(&self, redis: &Redis) -> Result<bool, Failure> {
        release(redis, &self.key, &self.owner).await
    }
}

/// Deletes the lock `lock_key` if `owner` holds it.
pub async fn release(redis: &Redis, lock_key: &str, owner: &str) -> Result<bool, Failure> {
    let mut conn = redis.conn.clone();
    let released: i64 = within(RELEASE.key(lock_key).arg(owner).invoke_async(&mut conn)).await?;
    Ok(released == 1)
}

/// One attempt at the coupon's lock for `process`: the lease, with a token
/// above `above` (the fence that refused this request's last token, else 0),
/// or `None` when the lock is held (or another process has the next turn).
pub async fn try_acquire(
    redis: &Redis,
    coupon_id: i64,
    process: &str,
    ttl: Duration,
    above: i64,
) -> Result<Option<Lease>, Failure> {
    let lock_key = key(redis, coupon_id, "lock");
    let owner = owner_token();
    let mut conn = redis.conn.clone();
    let token: i64 = within(
        ACQUIRE
            .key(&lock_key)
            .key(key(redis, coupon_id, "fence"))
            .key(key(redis, coupon_id, "turn"))
            .arg(&owner)
            .arg(millis(ttl))
            .arg(process)
            .arg(millis(TURN_TTL))
            .arg(millis(COUNTER_TTL))
            .arg(above)
            .invoke_async(&mut conn),
    )
    .await?;
    Ok((token > 0).then_some(Lease {
        key: lock_key,
        owner,
        token,
    }))
}

/// What a fenced write did.
#[derive(Debug)]
pub enum Fenced {
    Issued(IssuedCoupon),
    /// A holder with a newer token wrote first (`fence` is its token): this
    /// lease is lost, and nothing was written.
    Stale {
        fence: i64,
    },
}

/// The transaction inside the lock: checks the user's history and the
/// quantity, inserts, counts up and stores the lease's token, refusing a
/// token that is not above the stored one.
pub async fn write(db: &PgPool, coupon_id: i64, user_id: i64, lease: &Lease) -> Result<Fenced> {
    let mut tx = db.begin().await?;
    let read: Option<(i32, i64)> =
        sqlx::query_as("select total_quantity - issued_quantity, fence from coupons where id = $1")
            .bind(coupon_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (remaining, fence) = read.ok_or(Error::CouponNotFound(coupon_id))?;
    if fence >= lease.token {
        return Ok(Fenced::Stale { fence });
    }
    if holds(&mut tx, coupon_id, user_id).await? {
        return Err(Error::CouponAlreadyIssued { coupon_id, user_id });
    }
    if remaining <= 0 {
        return Err(Error::CouponSoldOut(coupon_id));
    }
    let issued = insert_holder(&mut tx, coupon_id, user_id).await?;
    let counted = sqlx::query(
        "update coupons set issued_quantity = issued_quantity + 1, fence = $2
          where id = $1 and fence < $2 and issued_quantity < total_quantity",
    )
    .bind(coupon_id)
    .bind(lease.token)
    .execute(&mut *tx)
    .await?;
    if counted.rows_affected() == 0 {
        // Someone wrote since the read: a newer holder, or the last coupon
        // went to a holder with an older token.
        let fence: i64 = sqlx::query_scalar("select fence from coupons where id = $1")
            .bind(coupon_id)
            .fetch_one(&mut *tx)
            .await?;
        return if fence >= lease.token {
            Ok(Fenced::Stale { fence })
        } else {
            Err(Error::CouponSoldOut(coupon_id))
        };
    }
    tx.commit().await?;
    Ok(Fenced::Issued(issued))
}

/// Queues kept before the idle ones are dropped.
const MAX_IDLE_QUEUES: usize = 1_024;

/// This process's waiters for coupon locks, queued per coupon.
pub struct Turns {
    /// Names this process in the next-turn claim.
    process: String,
    queues: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Turns {
    pub fn new() -> Self {
        Self {
            process: hex::encode(rand::random::<[u8; 8]>()),
            queues: Mutex::default(),
        }
    }

    /// The coupon's queue; tokio's mutex serves waiters in arrival order.
    /// Queues nobody waits in are dropped once there are many, so one per
    /// coupon ever asked for does not pile up.
    fn queue(&self, coupon_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if queues.len() >= MAX_IDLE_QUEUES {
            queues.retain(|_, queue| Arc::strong_count(queue) > 1);
        }
        queues.entry(coupon_id).or_default().clone()
    }
}

impl Default for Turns {
    fn default() -> Self {
        Self::new()
    }
}

pub(super) async fn issue(
    redis: &Redis,
    db: &PgPool,
    turns: &Turns,
    coupon_id: i64,
    user_id: i64,
) -> Result<IssuedCoupon, Failure> {
    let started = Instant::now();
    let deadline = started + LOCK_WAIT;
    let queue = turns.queue(coupon_id);
    let turn = tokio::time::timeout_at(deadline.into(), queue.lock()).await;
    let Ok(_turn) = turn else {
        record_wait(started);
        return Err(busy(coupon_id));
    };
    let mut lease = acquire_until(redis, coupon_id, &turns.process, 0, deadline).await?;
    record_wait(started);
    // Until a write or a refusal: a token found stale takes the lock again,
    // for a token above the fence that refused it, while the wait lasts.
    loop {
        let Some(held) = lease else {
            return Err(busy(coupon_id));
        };
        let written = write(db, coupon_id, user_id, &held).await;
        if let Err(failure) = held.release(redis).await {
            tracing::warn!(
                coupon_id,
                ?failure,
                "cannot release a coupon lock; it expires"
            );
        }
        match written? {
            Fenced::Issued(issued) => return Ok(issued),
            Fenced::Stale { fence } => {
                tracing::info!(
                    coupon_id,
                    token = held.token,
                    fence,
                    "a coupon lock was lost before its write; taking it again"
                );
                lease = acquire_until(redis, coupon_id, &turns.process, fence, deadline).await?;
            }
        }
    }
}

/// Polls for the lock with growing pauses until `deadline`.
async fn acquire_until(
    redis: &Redis,
    coupon_id: i64,
    process: &str,
    above: i64,
    deadline: Instant,
) -> Result<Option<Lease>, Failure> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(lease) = try_acquire(redis, coupon_id, process, LOCK_TTL, above).await? {
            return Ok(Some(lease));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let jitter = Duration::from_micros(rand::random_range(0..=pause.as_micros() as u64));
        tokio::time::sleep((pause + jitter).min(deadline - now)).await;
        pause = (pause * 2).min(MAX_POLL_PAUSE);
    }
}

fn busy(coupon_id: i64) -> Failure {
    Failure::Answer(Error::ServiceUnavailable(format!(
        "coupon {coupon_id} is busy; retry shortly"
    )))
}

fn record_wait(started: Instant) {
    metrics::histogram!("coupon_lock_wait_duration_seconds")
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_holder_whose_lease_ran_out_cannot_write() {
        let db = testing::database().await;
        let redis = testing::redis().await;
        let coupon = testing::coupon(&db, 10).await;
        let users = testing::users(&db, 2).await;

        let first = try_acquire(&redis, coupon.id, "first", Duration::from_millis(100), 0)
            .await
            .expect("Redis answers")
            .expect("the lock is free");
        // The first holder pauses past its lease...
        tokio::time::sleep(Duration::from_millis(300)).await;
        // ...so another takes the lock and writes.
        let second = try_acquire(&redis, coupon.id, "second", LOCK_TTL, 0)
            .await
            .expect("Redis answers")
            .expect("the lease ran out, so the lock is free");
        assert!(second.token > first.token, "fencing tokens rise");
        let written = write(&db, coupon.id, users[0], &second)
            .await
            .expect("the write succeeds");
        assert!(matches!(written, Fenced::Issued(_)), "{written:?}");

        // The first holder wakes up and tries its write: refused, nothing written.
        let stale = write(&db, coupon.id, users[1], &first)
            .await
            .expect("a refusal, not an error");
        match stale {
            Fenced::Stale { fence } => assert_eq!(fence, second.token),
            other => panic!("a stale lease wrote: {other:?}"),
        }
        assert!(
            !first.release(&redis).await.expect("Redis answers"),
            "a lost lease does not release the new holder's lock"
        );
        assert!(second.release(&redis).await.expect("Redis answers"));

        let rows: Vec<i64> =
            sqlx::query_scalar("select user_id from user_coupons where coupon_id = $1")
                .bind(coupon.id)
                .fetch_all(&db)
                .await
                .expect("rows");
        assert_eq!(rows, [users[0]]);
        let (issued, fence): (i32, i64) =
            sqlx::query_as("select issued_quantity, fence from coupons where id = $1")
                .bind(coupon.id)
                .fetch_one(&db)
                .await
                .expect("the coupon");
        assert_eq!((issued, fence), (1, second.token));
    }
}
