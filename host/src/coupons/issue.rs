//! Issuing a coupon to a user: the checks every path shares, then the
//! configured strategy, or PostgreSQL alone while Redis is unavailable.
//!
//! The checks run in the order of their answers: the coupon exists
//! (`COUPON_NOT_FOUND`) and is valid now (`COUPON_NOT_ACTIVE`); the user
//! holds it already (`COUPON_ALREADY_ISSUED`) or none is left
//! (`COUPON_SOLD_OUT`), as far as this can be told cheaply; the user exists
//! (`USER_NOT_FOUND`); the coupon policy's `can-issue` agrees
//! (`COUPON_NOT_ELIGIBLE`). Only then is anything taken, by
//! - `reserve` ([`super::reserve`]): a Redis script takes one, a transaction
//!   records it;
//! - `lock` ([`super::lock`]): a fenced Redis lock around the transaction;
//! - PostgreSQL alone ([`super::fallback`]) when a Redis call fails or times
//!   out, and for a second after that (see [`super::circuit`]).
//!
//! A 201 always means the row is committed.
//!
//! # What a burst costs
//! Most of a burst comes when none is left, so that answer is made cheap.
//! A coupon's terms never change once it is created, so each process keeps
//! them ([`Coupons::terms`](super::Coupons)). Before asking the policy,
//! `reserve` looks at the coupon's Redis state (the reserve script, taking
//! nothing), beside the read of the user's facts: a holder or an empty count
//! is answered there. And rows are never deleted and `issued_quantity` never goes
//! down, so a coupon PostgreSQL has seen sold out stays sold out: each
//! process remembers such coupons ([`Coupons::sold_out`](super::Coupons)) and answers them
//! whatever the strategy, asking only whether the user is a holder (Redis,
//! or one indexed read). An unknown user asking for a coupon that is gone is
//! told `COUPON_SOLD_OUT`: the coupon-wide answer comes first.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};

use super::{
    Coupon, Coupons, Failure, IssueStrategy, IssuedCoupon, fallback,
    reserve::{self, Look},
};
use crate::{
    error::{Error, Result},
    policy::{
        Slot,
        bindings::{IssueInput, UserFacts},
    },
    users,
};

/// Coupons whose terms, and sold-out coupons, each process keeps; one
/// forgotten is read again.
const COUPONS_KEPT: u64 = 10_000;
const COUPONS_IDLE: Duration = Duration::from_secs(10 * 60);

pub(super) fn kept<V: Clone + Send + Sync + 'static>() -> moka::future::Cache<i64, V> {
    moka::future::Cache::builder()
        .max_capacity(COUPONS_KEPT)
        .time_to_idle(COUPONS_IDLE)
        .build()
}

/// Issues the coupon to the user, or says why not.
pub(super) async fn issue(
    state: &Arc<Coupons>,
    coupon_id: i64,
    user_id: i64,
) -> Result<IssuedCoupon> {
    let state = state.clone();
    // The issuance runs in a task of its own, to its end even when the client
    // goes away: a reservation taken in Redis is then always either committed
    // or given back, never dropped half way.
    tokio::spawn(async move { issue_to_the_end(&state, coupon_id, user_id).await })
        .await
        .map_err(|err| Error::Internal(err.into()))?
}

async fn issue_to_the_end(state: &Coupons, coupon_id: i64, user_id: i64) -> Result<IssuedCoupon> {
    let terms = &state.terms;
    let coupon = match terms.get(&coupon_id).await {
        Some(coupon) => coupon,
        None => {
            let coupon = Arc::new(super::find(&state.db, coupon_id).await?);
            terms.insert(coupon_id, coupon.clone()).await;
            coupon
        }
    };
    let (path, outcome) = decide(state, &coupon, user_id).await;
    count(path, &outcome);
    outcome
}

/// The checks in the order of their answers, then the taking; returns the
/// path that decided with the outcome.
async fn decide(
    state: &Coupons,
    coupon: &Coupon,
    user_id: i64,
) -> (&'static str, Result<IssuedCoupon>) {
    let strategy = state.strategy;
    let refused = |answer| (strategy.as_str(), Err(answer));
    if let Err(answer) = active(coupon, Utc::now()) {
        return refused(answer);
    }
    if state.sold_out.contains_key(&coupon.id) {
        return after_sold_out(state, coupon, user_id).await;
    }
    let read = if strategy == IssueStrategy::Reserve {
        // The database's read goes out beside the look, not after it: an
        // issuance then waits for one round trip less. The look still
        // answers first; a refusal it gives costs the read too, but only
        // until a read has seen the coupon sold out (then `sold_out`
        // answers before either).
        let (look, read) = tokio::join!(
            look(state, coupon.id, user_id),
            read(state, coupon.id, user_id)
        );
        if matches!(read, Ok((remaining, _)) if remaining <= 0) {
            state.sold_out.insert(coupon.id, ()).await;
        }
        match look {
            Some(Look::Holder) => {
                return refused(Error::CouponAlreadyIssued {
                    coupon_id: coupon.id,
                    user_id,
                });
            }
            Some(Look::SoldOut) => return refused(Error::CouponSoldOut(coupon.id)),
            Some(Look::Available | Look::Missing) | None => read,
        }
    } else {
        read(state, coupon.id, user_id).await
    };
    let (remaining, user) = match read {
        Ok(read) => read,
        Err(err) => return ("database", Err(err)),
    };
    if remaining <= 0 {
        state.sold_out.insert(coupon.id, ()).await;
        return after_sold_out(state, coupon, user_id).await;
    }
    match check(state, coupon, user_id, user).await {
        Ok(()) => take(state, strategy, coupon.id, user_id).await,
        Err(answer) => refused(answer),
    }
}

/// What the coupon's `reserve` state says of the user, taking nothing;
/// `None` when Redis is not to be asked, fails, or has no state.
async fn look(state: &Coupons, coupon_id: i64, user_id: i64) -> Option<Look> {
    let issuance = state;
    if !issuance.circuit.allows() {
        return None;
    }
    match reserve::look(&state.redis, coupon_id, user_id).await {
        Ok(Look::Missing) => {
            issuance.circuit.succeeded();
            None
        }
        Ok(look) => {
            issuance.circuit.succeeded();
            Some(look)
        }
        Err(Failure::Redis(why)) => {
            issuance.circuit.failed(why);
            None
        }
        Err(Failure::Answer(_)) => None,
    }
}

/// The coupon's count left, and what the coupon policy may know of the user
/// (`None`: no such user), in one round trip.
async fn read(state: &Coupons, coupon_id: i64, user_id: i64) -> Result<(i32, Option<UserFacts>)> {
    #[derive(sqlx::FromRow)]
    struct Read {
        remaining: i32,
        #[sqlx(flatten)]
        facts: users::FactsRow,
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "select c.total_quantity - c.issued_quantity as remaining, f.*
               from coupons c, ({}) f
              where c.id = $1",
            users::facts_select("$2")
        )
    });
    let read: Option<Read> = sqlx::query_as(SQL.as_str())
        .bind(coupon_id)
        .bind(user_id)
        .fetch_optional(&state.db)
        .await?;
    let read = read.ok_or(Error::CouponNotFound(coupon_id))?;
    Ok((read.remaining, read.facts.into_facts(user_id)))
}

/// What only the user's facts and the policy can refuse.
async fn check(
    state: &Coupons,
    coupon: &Coupon,
    user_id: i64,
    user: Option<UserFacts>,
) -> Result<()> {
    let input = IssueInput {
        user: user.ok_or(Error::UserNotFound(user_id))?,
        coupon: coupon.terms(),
        now: Utc::now().timestamp(),
        config: Vec::new(),
    };
    let policy = state.policies.active(Slot::Coupon);
    let decision = crate::policy::evaluate(policy.is_fast(), move || policy.can_issue(input))
        .await
        .map_err(Error::Internal)??;
    decision.map_err(Error::CouponNotEligible)
}

fn active(coupon: &Coupon, now: DateTime<Utc>) -> Result<()> {
    if coupon.is_active_at(now) {
        return Ok(());
    }
    Err(Error::CouponNotActive(format!(
        "coupon {} is valid from {} until {}",
        coupon.id,
        coupon.valid_from.to_rfc3339(),
        coupon.valid_until.to_rfc3339()
    )))
}

/// The answer for a coupon that is sold out for good: already issued to
/// this user, or sold out. Whether the user holds one is asked of the
/// `reserve` state when there is one and Redis allows, else of PostgreSQL
/// (always with `lock`, which keeps no holders in Redis).
async fn after_sold_out(
    state: &Coupons,
    coupon: &Coupon,
    user_id: i64,
) -> (&'static str, Result<IssuedCoupon>) {
    let strategy = state.strategy;
    let looked = match strategy {
        IssueStrategy::Reserve => look(state, coupon.id, user_id).await,
        IssueStrategy::Lock => None,
    };
    let (path, holds) = match looked {
        Some(look) => (strategy.as_str(), look == Look::Holder),
        None => match holds_in_database(state, coupon.id, user_id).await {
            Ok(holds) => ("database", holds),
            Err(err) => return ("database", Err(err)),
        },
    };
    let answer = if holds {
        Error::CouponAlreadyIssued {
            coupon_id: coupon.id,
            user_id,
        }
    } else {
        Error::CouponSoldOut(coupon.id)
    };
    (path, Err(answer))
}

async fn holds_in_database(state: &Coupons, coupon_id: i64, user_id: i64) -> Result<bool> {
    let mut conn = state.db.acquire().await?;
    super::holds(&mut conn, coupon_id, user_id).await
}

/// Takes one for the user along the path Redis allows; returns the path's
/// name with the outcome.
async fn take(
    state: &Coupons,
    strategy: IssueStrategy,
    coupon_id: i64,
    user_id: i64,
) -> (&'static str, Result<IssuedCoupon>) {
    let issuance = state;
    if issuance.circuit.allows() {
        let taken = match strategy {
            IssueStrategy::Reserve => {
                let recorder = &issuance.recorder;
                reserve::issue(&state.redis, &state.db, recorder, coupon_id, user_id).await
            }
            IssueStrategy::Lock => {
                super::lock::issue(&state.redis, &state.db, &issuance.turns, coupon_id, user_id)
                    .await
            }
        };
        match taken {
            Ok(issued) => {
                issuance.circuit.succeeded();
                return (strategy.as_str(), Ok(issued));
            }
            Err(Failure::Answer(answer)) => {
                issuance.circuit.succeeded();
                return (strategy.as_str(), Err(answer));
            }
            Err(Failure::Redis(why)) => issuance.circuit.failed(why),
        }
    }
    (
        "database",
        fallback::issue(&state.db, coupon_id, user_id).await,
    )
}

/// `coupon_issue_total{coupon, strategy, outcome}`. `strategy` is the path
/// that decided: `reserve` or `lock` as configured, or `database` when
/// PostgreSQL alone did (Redis unavailable, or a sold-out coupon's holder
/// looked up there).
/// Counts the outcome. No label per coupon: coupon ids are unbounded, and
/// each label set is a series Prometheus keeps.
fn count(strategy: &'static str, outcome: &Result<IssuedCoupon>) {
    let outcome = match outcome {
        Ok(_) => "issued",
        Err(Error::CouponSoldOut(_)) => "sold_out",
        Err(Error::CouponAlreadyIssued { .. }) => "already_issued",
        Err(Error::CouponNotEligible(_)) => "not_eligible",
        Err(Error::CouponNotActive(_)) => "not_active",
        Err(Error::UserNotFound(_)) => "user_not_found",
        Err(_) => "error",
    };
    metrics::counter!(
        "coupon_issue_total",
        "strategy" => strategy,
        "outcome" => outcome,
    )
    .increment(1);
}
