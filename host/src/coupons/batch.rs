//! Recording `reserve`'s issuances together.
//!
//! Every issuance of a coupon counts up the coupon's one row, so issuances
//! of one coupon commit one after another, each waiting for the last one's
//! row lock. One task per process records them instead: it takes every
//! issuance waiting when it is free, and records those of a coupon with one
//! statement (one count up by their number, their rows, one commit). Nothing
//! waits on a timer: alone, an issuance is recorded at once; in a burst, the
//! issuances that queued while a statement ran go in the next one.
//!
//! The answers are those of recording each alone: a batch that would pass
//! the total (possible only after a too generous rebuild of the Redis state)
//! or holds a user who already has a row (possible only after a lost
//! holders set) fails as a whole, changing nothing, and its issuances are
//! then recorded one by one, each getting its own answer. A batch the
//! database fails otherwise (unavailable, timed out) gives all of them that
//! answer at once. Each caller hears
//! only after the commit: a 201 still means the row is committed.

use std::collections::BTreeMap;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::{IssuedCoupon, record};
use crate::error::{Error, Result};

/// Most issuances one statement records.
const MAX_BATCH: usize = 256;

/// One issuance waiting to be recorded, and where its answer goes.
struct Pending {
    coupon_id: i64,
    user_id: i64,
    answer: oneshot::Sender<Result<IssuedCoupon>>,
}

/// Most issuances waiting to be recorded; more wait to be queued.
const MAX_QUEUED: usize = 10_000;

/// The handle of a process's recording task. The task records what is
/// queued and ends when the handle is dropped, so shutdown, which awaits
/// it, never drops a queued issuance.
pub struct Recorder {
    queue: mpsc::Sender<Pending>,
}

impl Recorder {
    /// Starts the recording task among the process's tasks.
    pub fn start(db: PgPool, tasks: &crate::tasks::Tasks) -> Self {
        let (queue, pending) = mpsc::channel(MAX_QUEUED);
        tasks.spawn(run(db, pending));
        Self { queue }
    }

    /// Records the issuance, with the issuances queued beside it.
    pub async fn record(&self, coupon_id: i64, user_id: i64) -> Result<IssuedCoupon> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            coupon_id,
            user_id,
            answer,
        };
        let stopped = || Error::ServiceUnavailable("the server is stopping".into());
        self.queue.send(pending).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn run(db: PgPool, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut by_coupon: BTreeMap<i64, Vec<Pending>> = BTreeMap::new();
        for issuance in batch.drain(..) {
            by_coupon
                .entry(issuance.coupon_id)
                .or_default()
                .push(issuance);
        }
        for (coupon_id, issuances) in by_coupon {
            record_together(&db, coupon_id, issuances).await;
        }
    }
}

/// Records one coupon's issuances in one statement, or else one by one.
async fn record_together(db: &PgPool, coupon_id: i64, issuances: Vec<Pending>) {
    if let [_] = issuances[..] {
        return record_each(db, coupon_id, issuances).await;
    }
    let users: Vec<i64> = issuances.iter().map(|issuance| issuance.user_id).collect();
    let recorded: sqlx::Result<Vec<IssuedCoupon>> = sqlx::query_as(
        "with counted as (
             update coupons set issued_quantity = issued_quantity + cardinality($2::bigint[])
              where id = $1 and issued_quantity + cardinality($2::bigint[]) <= total_quantity
             returning id)
         insert into user_coupons (coupon_id, user_id)
         select counted.id, wanted.user_id from counted, unnest($2::bigint[]) as wanted(user_id)
         returning id as user_coupon_id, coupon_id, user_id, status, issued_at",
    )
    .bind(coupon_id)
    .bind(&users)
    .fetch_all(db)
    .await;
    match recorded {
        // Nothing was written: too few left for all of them, or a second
        // row for a user. Each gets its own answer.
        Ok(rows) if rows.is_empty() => record_each(db, coupon_id, issuances).await,
        Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
            record_each(db, coupon_id, issuances).await;
        }
        // Nothing was written, and the database would fail each alone the
        // same way (it is unavailable, say): all get the answer at once
        // rather than one after another.
        Err(err) => {
            let answer = Error::from(err);
            for issuance in issuances {
                let _ = issuance.answer.send(Err(answer.shared()));
            }
        }
        // All were written, one row each.
        Ok(rows) => {
            let mut rows: BTreeMap<i64, IssuedCoupon> =
                rows.into_iter().map(|row| (row.user_id, row)).collect();
            for issuance in issuances {
                let answer = rows.remove(&issuance.user_id).ok_or_else(|| {
                    Error::Internal(anyhow::anyhow!(
                        "user {} has no row in the batch recorded for coupon {coupon_id}",
                        issuance.user_id
                    ))
                });
                let _ = issuance.answer.send(answer);
            }
        }
    }
}

async fn record_each(db: &PgPool, coupon_id: i64, issuances: Vec<Pending>) {
    for issuance in issuances {
        let answer = record(db, coupon_id, issuance.user_id).await;
        let _ = issuance.answer.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{tasks::Tasks, testing};

    fn count(answers: &[Result<IssuedCoupon>], which: fn(&Result<IssuedCoupon>) -> bool) -> usize {
        answers.iter().filter(|answer| which(answer)).count()
    }

    /// Issuances recorded together answer as if recorded one by one: a batch
    /// that cannot pass as a whole (more than are left, a second row for a
    /// user) writes nothing and is recorded one by one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issuances_recorded_together_keep_the_total_and_one_per_user() {
        let db = testing::database().await;
        let coupon = testing::coupon(&db, 3).await;
        let users = testing::users(&db, 5).await;
        let tasks = Tasks::default();
        let recorder = Recorder::start(db.clone(), &tasks);
        let first = [users[0], users[0], users[1]];
        let answers = futures::future::join_all(
            first
                .iter()
                .map(|&user_id| recorder.record(coupon.id, user_id)),
        )
        .await;
        let issued = count(&answers, Result::is_ok);
        let twice = count(&answers, |answer| {
            matches!(answer, Err(Error::CouponAlreadyIssued { .. }))
        });
        assert_eq!((issued, twice), (2, 1), "{answers:?}");

        let answers = futures::future::join_all(
            users[2..]
                .iter()
                .map(|&user_id| recorder.record(coupon.id, user_id)),
        )
        .await;
        let issued = count(&answers, Result::is_ok);
        let sold_out = count(&answers, |answer| {
            matches!(answer, Err(Error::CouponSoldOut(_)))
        });
        assert_eq!((issued, sold_out), (1, 2), "{answers:?}");
        let (issued, rows): (i32, i64) = sqlx::query_as(
            "select issued_quantity, (select count(*) from user_coupons where coupon_id = $1)
               from coupons where id = $1",
        )
        .bind(coupon.id)
        .fetch_one(&db)
        .await
        .expect("the coupon");
        assert_eq!((issued, rows), (3, 3));

        // Shutdown waits for the recorder, which ends with its handle.
        drop(recorder);
        tasks.shut_down().await;
    }
}
