//! The `reserve` strategy: one Redis script takes a coupon for the user, then
//! one PostgreSQL transaction records it.
//!
//! Per coupon Redis keeps `remaining`, a counter, and `holders`, the set of
//! user ids that hold it (with the sentinel `0`, which is no user, so that an
//! empty set still exists and a lost set is told from an empty one). The
//! reserve script refuses a holder, refuses when nothing remains, and
//! otherwise takes one and adds the holder, in one step. The transaction
//! then inserts the user's row and counts it up only while
//! `issued_quantity < total_quantity` (several issuances per statement in a
//! burst, see [`super::batch`]); if it fails for any reason the reservation
//! is given back. Most of a burst is answered by the script
//! alone: once a coupon is gone, a refusal costs one Redis call.
//!
//! # The state is a cache of PostgreSQL
//! Missing state (first use, a flush, a restart, its expiry) is rebuilt by
//! one process under a short lock: `remaining = total - issued` and the
//! holders, read in one snapshot. A rebuild can make the state too generous,
//! never too strict:
//! - a reservation taken before the rebuild and committed after its read is
//!   counted by neither: `remaining` is one too high, and the extra
//!   reservation this allows meets the conditional update, which refuses it
//!   (answered `COUPON_SOLD_OUT`, the reservation given back);
//! - that user is missing from `holders`: a second click passes the script
//!   and meets the unique key (answered `COUPON_ALREADY_ISSUED`, given back);
//! - rows are never deleted and `issued_quantity` never goes down, so even a
//!   rebuild from an old read errs the same way.
//!
//! So "at most `total_quantity`" and "once per user" are the database's
//! guarantees, and a rebuild costs at most some refused transactions.
//!
//! A reservation is given back at most once: the give-back script increments
//! `remaining` only when it removes the user from `holders`, which only that
//! reservation added. A reservation whose give-back never ran (the process
//! died between the two) leaves `remaining` one too low; the state expires
//! [`STATE_TTL`] after its rebuild, which returns it.

use std::{
    sync::LazyLock,
    time::{Duration, Instant},
};

use redis::Script;
use sqlx::PgPool;

use super::{Failure, IssuedCoupon, batch::Recorder, key, lock, millis, within};
use crate::{error::Error, redis::Redis};

/// A rebuilt state lives this long, then is rebuilt on next use: coupons
/// nobody asks for leave Redis, and a reservation leaked by a crash returns.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);
/// How long the rebuild lock holds; a rebuilder that dies frees it by then.
const REBUILD_LOCK_TTL: Duration = Duration::from_secs(3);
/// How long a request waits for another process's rebuild before it takes
/// the PostgreSQL path.
const REBUILD_WAIT: Duration = Duration::from_secs(1);
/// Pause between looks at a state another process is rebuilding.
const REBUILD_POLL: Duration = Duration::from_millis(2);
/// How long a half-built holders set lives if its rebuilder dies.
const STAGE_TTL: Duration = Duration::from_secs(60);
/// Holders added to Redis per command while rebuilding.
const STAGE_CHUNK: usize = 10_000;
/// The member every holders set has: user ids are positive, so it is no user.
const SENTINEL: i64 = 0;

/// Takes one for the user (with ARGV[2] = `take`; anything else only
/// looks): `1` taken (or one is left), `0` none left, `2` the user holds one,
/// `-1` the state is missing.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[1], KEYS[2]) < 2 then
            return -1
        end
        if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
            return 2
        end
        if tonumber(redis.call('GET', KEYS[1])) <= 0 then
            return 0
        end
        if ARGV[2] == 'take' then
            redis.call('DECR', KEYS[1])
            redis.call('SADD', KEYS[2], ARGV[1])
        end
        return 1
        ",
    )
});

/// Gives the user's reservation back, only if this state holds it: `1` when
/// one was given back.
static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[1], KEYS[2]) < 2 then
            return 0
        end
        if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
            redis.call('INCR', KEYS[1])
            return 1
        end
        return 0
        ",
    )
});

/// Installs a rebuilt state (`remaining` = ARGV[1], holders staged in
/// KEYS[3]) unless another rebuild already did: `1` when installed.
static INSTALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[1], KEYS[2]) == 2 then
            redis.call('DEL', KEYS[3])
            return 0
        end
        redis.call('RENAME', KEYS[3], KEYS[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return 1
        ",
    )
});

/// The keys of one coupon's state.
struct StateKeys {
    remaining: String,
    holders: String,
}

impl StateKeys {
    fn of(redis: &Redis, coupon_id: i64) -> Self {
        Self {
            remaining: key(redis, coupon_id, "remaining"),
            holders: key(redis, coupon_id, "holders"),
        }
    }
}

/// What the reserve script said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reservation {
    Taken,
    SoldOut,
    Holder,
    Missing,
}

/// What the coupon's state says of a user, looked at without taking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// One is left for the user to try to take.
    Available,
    SoldOut,
    Holder,
    /// The state is missing: nothing can be told.
    Missing,
}

/// Looks at the coupon's state for the user, taking nothing.
pub(super) async fn look(redis: &Redis, coupon_id: i64, user_id: i64) -> Result<Look, Failure> {
    let keys = StateKeys::of(redis, coupon_id);
    Ok(match run(redis, &keys, user_id, "look").await? {
        Reservation::Taken => Look::Available,
        Reservation::SoldOut => Look::SoldOut,
        Reservation::Holder => Look::Holder,
        Reservation::Missing => Look::Missing,
    })
}

pub(super) async fn issue(
    redis: &Redis,
    db: &PgPool,
    recorder: &Recorder,
    coupon_id: i64,
    user_id: i64,
) -> Result<IssuedCoupon, Failure> {
    let keys = StateKeys::of(redis, coupon_id);
    let deadline = Instant::now() + REBUILD_WAIT;
    loop {
        match reserve(redis, &keys, user_id).await {
            Ok(Reservation::Taken) => break,
            Ok(Reservation::SoldOut) => return Err(Error::CouponSoldOut(coupon_id).into()),
            Ok(Reservation::Holder) => {
                return Err(Error::CouponAlreadyIssued { coupon_id, user_id }.into());
            }
            Ok(Reservation::Missing) => {
                if Instant::now() >= deadline {
                    return Err(Failure::Redis(format!(
                        "the state of coupon {coupon_id} was not rebuilt within {REBUILD_WAIT:?}"
                    )));
                }
                if !rebuild(redis, db, coupon_id).await? {
                    tokio::time::sleep(REBUILD_POLL).await;
                }
            }
            Err(failure) => {
                // A call that timed out may still have run in Redis; giving
                // back what it may have taken keeps `remaining` from leaking.
                let _ = give_back(redis, &keys, user_id).await;
                return Err(failure);
            }
        }
    }
    match recorder.record(coupon_id, user_id).await {
        Ok(issued) => Ok(issued),
        Err(refused) => {
            if let Err(failure) = give_back(redis, &keys, user_id).await {
                tracing::warn!(
                    coupon_id,
                    user_id,
                    ?failure,
                    "cannot give a reservation back; the state's expiry returns it"
                );
            }
            Err(Failure::Answer(refused))
        }
    }
}

async fn reserve(redis: &Redis, keys: &StateKeys, user_id: i64) -> Result<Reservation, Failure> {
    run(redis, keys, user_id, "take").await
}

/// Runs the reserve script; `mode` is `take` or `look`.
async fn run(
    redis: &Redis,
    keys: &StateKeys,
    user_id: i64,
    mode: &str,
) -> Result<Reservation, Failure> {
    let mut conn = redis.conn.clone();
    let answer: i64 = within(
        RESERVE
            .key(&keys.remaining)
            .key(&keys.holders)
            .arg(user_id)
            .arg(mode)
            .invoke_async(&mut conn),
    )
    .await?;
    match answer {
        1 => Ok(Reservation::Taken),
        0 => Ok(Reservation::SoldOut),
        2 => Ok(Reservation::Holder),
        -1 => Ok(Reservation::Missing),
        other => Err(Failure::Redis(format!(
            "the reserve script answered {other}"
        ))),
    }
}

/// Whether a reservation was given back.
async fn give_back(redis: &Redis, keys: &StateKeys, user_id: i64) -> Result<bool, Failure> {
    let mut conn = redis.conn.clone();
    let given: i64 = within(
        GIVE_BACK
            .key(&keys.remaining)
            .key(&keys.holders)
            .arg(user_id)
            .invoke_async(&mut conn),
    )
    .await?;
    Ok(given == 1)
}

/// Rebuilds the coupon's state from PostgreSQL unless another process is
/// already at it: `false` when it is, and the caller should look again soon.
async fn rebuild(redis: &Redis, db: &PgPool, coupon_id: i64) -> Result<bool, Failure> {
    let lock_key = key(redis, coupon_id, "rebuild");
    let owner = lock::owner_token();
    let mut conn = redis.conn.clone();
    let acquired: Option<String> = within(
        redis::cmd("SET")
            .arg(&lock_key)
            .arg(&owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(REBUILD_LOCK_TTL))
            .query_async(&mut conn),
    )
    .await?;
    if acquired.is_none() {
        return Ok(false);
    }
    let built = build(redis, db, coupon_id, &owner).await;
    if let Err(failure) = lock::release(redis, &lock_key, &owner).await {
        tracing::warn!(
            coupon_id,
            ?failure,
            "cannot release the rebuild lock; it expires"
        );
    }
    built.map(|()| true)
}

/// Reads the coupon's issued rows and count in one snapshot, stages the
/// holders under a key of this rebuild's own, and installs both at once.
async fn build(redis: &Redis, db: &PgPool, coupon_id: i64, owner: &str) -> Result<(), Failure> {
    let snapshot: Option<(i32, Vec<i64>)> = sqlx::query_as(
        "select total_quantity - issued_quantity,
                array(select user_id from user_coupons where coupon_id = $1)
           from coupons where id = $1",
    )
    .bind(coupon_id)
    .fetch_optional(db)
    .await?;
    let (remaining, holders) = snapshot.ok_or(Error::CouponNotFound(coupon_id))?;
    let keys = StateKeys::of(redis, coupon_id);
    let staged = key(redis, coupon_id, &format!("holders:{owner}"));
    let mut conn = redis.conn.clone();
    within(
        redis::pipe()
            .del(&staged)
            .ignore()
            .sadd(&staged, SENTINEL)
            .ignore()
            .pexpire(&staged, millis(STAGE_TTL) as i64)
            .ignore()
            .query_async::<()>(&mut conn),
    )
    .await?;
    for chunk in holders.chunks(STAGE_CHUNK) {
        within(
            redis::cmd("SADD")
                .arg(&staged)
                .arg(chunk)
                .query_async::<()>(&mut conn),
        )
        .await?;
    }
    let installed: i64 = within(
        INSTALL
            .key(&keys.remaining)
            .key(&keys.holders)
            .key(&staged)
            .arg(remaining)
            .arg(millis(STATE_TTL))
            .invoke_async(&mut conn),
    )
    .await?;
    if installed == 1 {
        tracing::info!(
            coupon_id,
            remaining,
            holders = holders.len(),
            "rebuilt a coupon's Redis state"
        );
    }
    Ok(())
}
