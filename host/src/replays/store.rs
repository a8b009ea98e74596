//! `replay_jobs`: every SQL statement about replay jobs.
//!
//! A job is inserted `queued` by the instance that accepted it, which alone
//! claims it (`running`), writes its progress and ends it. Any instance
//! reads jobs, asks for a cancellation, and marks `interrupted` the jobs of
//! an instance that stopped beating.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

use super::job::{ReplayJob, ReplayStatus};
use crate::policy::{Slot, bindings::Config, metadata, replay::ReplayReport};

/// Advisory lock taken while a job is admitted, so the deployment-wide cap
/// holds when instances accept jobs at the same time.
const ADMIT_LOCK: i64 = 0x7265_706c_6179; // "replay"

/// Finished jobs are forgotten after this many days.
const KEPT_DAYS: i32 = 30;

/// The columns a [`Row`] reads.
const COLUMNS: &str = "id, slot, name, version, sha256, config, since, state, total, read, report,
    error, instance, heartbeat_at, cancel_requested_at, created_at, started_at, finished_at";

/// A row of `replay_jobs`, without the component's bytes.
#[derive(Debug, sqlx::FromRow)]
pub struct Row {
    id: Uuid,
    slot: String,
    name: String,
    version: String,
    sha256: Vec<u8>,
    config: Option<Json<Config>>,
    since: DateTime<Utc>,
    state: String,
    total: Option<i64>,
    read: i64,
    report: Option<Json<ReplayReport>>,
    error: Option<String>,
    instance: String,
    heartbeat_at: DateTime<Utc>,
    cancel_requested_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl Row {
    pub fn state(&self) -> anyhow::Result<ReplayStatus> {
        self.state.parse().map_err(anyhow::Error::msg)
    }

    /// The job as the API answers it.
    pub fn into_job(self) -> anyhow::Result<ReplayJob> {
        let status = self.state()?;
        let slot = self.slot.parse::<Slot>()?;
        let report = self.report.map(|report| report.0);
        let text = match (&report, status) {
            (Some(report), ReplayStatus::Done) => Some(report.to_string()),
            _ => None,
        };
        Ok(ReplayJob {
            id: self.id.simple().to_string(),
            slot,
            candidate: format!("{}@{}", self.name, self.version),
            sha256: hex::encode(&self.sha256),
            config: self.config.map(|config| metadata::to_object(&config.0)),
            since: self.since,
            status,
            total: self.total.unwrap_or(0),
            read: self.read,
            report,
            text,
            error: self.error,
            instance: self.instance,
            heartbeat_at: self.heartbeat_at,
            cancel_requested_at: self.cancel_requested_at,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

/// A job about to be queued.
pub struct NewJob {
    pub id: Uuid,
    pub slot: Slot,
    pub name: String,
    pub version: String,
    pub sha256: [u8; 32],
    pub component: Vec<u8>,
    pub config: Option<Config>,
    pub since: DateTime<Utc>,
}

/// A job this instance claimed, with what running it takes.
pub struct Claimed {
    pub id: Uuid,
    pub slot: Slot,
    pub component: Vec<u8>,
    pub config: Option<Config>,
    pub since: DateTime<Utc>,
}

/// How far a running job got.
#[derive(Debug, Clone)]
pub struct Progress {
    pub read: u64,
    pub report: ReplayReport,
}

/// How a job ends.
pub enum End<'a> {
    Done(&'a Progress),
    Failed(&'a str, Option<&'a Progress>),
    Cancelled(Option<&'a Progress>),
    Interrupted(&'a str, Option<&'a Progress>),
}

#[derive(Clone)]
pub struct JobStore {
    db: PgPool,
}

impl JobStore {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// Queues `job` on `instance`, unless `cap` jobs are queued or running in
    /// the deployment: then `Ok(None)`. Finished jobs past their keeping
    /// time go at the same time.
    pub async fn admit(&self, job: &NewJob, instance: &str, cap: i64) -> sqlx::Result<Option<Row>> {
        let mut tx = self.db.begin().await?;
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(ADMIT_LOCK)
            .execute(&mut *tx)
            .await?;
        let unfinished: i64 = sqlx::query_scalar(
            "select count(*) from replay_jobs where state in ('queued', 'running')",
        )
        .fetch_one(&mut *tx)
        .await?;
        if unfinished >= cap {
            return Ok(None);
        }
        sqlx::query(
            "delete from replay_jobs
              where finished_at < now() - make_interval(days => $1)",
        )
        .bind(KEPT_DAYS)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as(&format!(
            "insert into replay_jobs (id, slot, name, version, sha256, component, config, since, instance)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             returning {COLUMNS}"
        ))
        .bind(job.id)
        .bind(job.slot.as_str())
        .bind(&job.name)
        .bind(&job.version)
        .bind(job.sha256.as_slice())
        .bind(&job.component)
        .bind(job.config.as_ref().map(Json))
        .bind(job.since)
        .bind(instance)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// The newest `limit` jobs of the deployment, newest first.
    pub async fn newest(&self, limit: i64) -> sqlx::Result<Vec<Row>> {
        sqlx::query_as(&format!(
            "select {COLUMNS} from replay_jobs order by created_at desc, id limit $1"
        ))
        .bind(limit)
        .fetch_all(&self.db)
        .await
    }

    pub async fn get(&self, id: Uuid) -> sqlx::Result<Option<Row>> {
        sqlx::query_as(&format!("select {COLUMNS} from replay_jobs where id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await
    }

    /// Asks an unfinished job to stop: a queued one is cancelled at once, a
    /// running one is told through its row. `None` when the job is unknown
    /// or already finished.
    pub async fn request_cancel(&self, id: Uuid) -> sqlx::Result<Option<Row>> {
        sqlx::query_as(&format!(
            "update replay_jobs
                set cancel_requested_at = coalesce(cancel_requested_at, now()),
                    state = case when state = 'queued' then 'cancelled' else state end,
                    finished_at = case when state = 'queued' then now() else finished_at end,
                    component = case when state = 'queued' then null else component end
              where id = $1 and state in ('queued', 'running')
              returning {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await
    }

    /// This instance's oldest queued job, now `running`.
    pub async fn claim_next(&self, instance: &str) -> anyhow::Result<Option<Claimed>> {
        #[derive(sqlx::FromRow)]
        struct Taken {
            id: Uuid,
            slot: String,
            component: Option<Vec<u8>>,
            config: Option<Json<Config>>,
            since: DateTime<Utc>,
        }
        let taken: Option<Taken> = sqlx::query_as(
            "update replay_jobs
                set state = 'running', started_at = now(), heartbeat_at = now()
              where id = (select id from replay_jobs
                           where instance = $1 and state = 'queued'
                           order by created_at, id
                           limit 1
                           for update skip locked)
              returning id, slot, component, config, since",
        )
        .bind(instance)
        .fetch_optional(&self.db)
        .await?;
        let Some(taken) = taken else {
            return Ok(None);
        };
        let component = taken
            .component
            .ok_or_else(|| anyhow::anyhow!("replay {} has no component", taken.id.simple()))?;
        Ok(Some(Claimed {
            id: taken.id,
            slot: taken.slot.parse()?,
            component,
            config: taken.config.map(|config| config.0),
            since: taken.since,
        }))
    }

    /// Records how many orders the running job will read.
    pub async fn set_total(&self, id: Uuid, total: i64) -> sqlx::Result<()> {
        sqlx::query("update replay_jobs set total = $2, heartbeat_at = now() where id = $1")
            .bind(id)
            .bind(total)
            .execute(&self.db)
            .await
            .map(drop)
    }

    /// Writes a running job's progress, and reads whether it should go on:
    /// `Some(true)` when a cancellation was asked for, `None` when the job
    /// is no longer this instance's running job (another instance took it
    /// for dead).
    pub async fn write_progress(
        &self,
        id: Uuid,
        instance: &str,
        progress: Option<&Progress>,
    ) -> sqlx::Result<Option<bool>> {
        let counts = Counts::of(progress);
        sqlx::query_scalar(
            "update replay_jobs
                set heartbeat_at = now(),
                    read = coalesce($3, read), replayed = coalesce($4, replayed),
                    differ = coalesce($5, differ), failed = coalesce($6, failed),
                    report = coalesce($7, report)
              where id = $1 and instance = $2 and state = 'running'
              returning cancel_requested_at is not null",
        )
        .bind(id)
        .bind(instance)
        .bind(counts.read)
        .bind(counts.replayed)
        .bind(counts.differ)
        .bind(counts.failed)
        .bind(progress.map(|progress| Json(&progress.report)))
        .fetch_optional(&self.db)
        .await
    }

    /// Ends a running job of this instance; its bytes go.
    pub async fn finish(&self, id: Uuid, instance: &str, end: End<'_>) -> sqlx::Result<()> {
        let (state, error, progress) = match end {
            End::Done(progress) => (ReplayStatus::Done, None, Some(progress)),
            End::Failed(error, progress) => (ReplayStatus::Failed, Some(error), progress),
            End::Cancelled(progress) => (ReplayStatus::Cancelled, None, progress),
            End::Interrupted(error, progress) => (ReplayStatus::Interrupted, Some(error), progress),
        };
        let counts = Counts::of(progress);
        sqlx::query(
            "update replay_jobs
                set state = $3, error = $4, finished_at = now(), heartbeat_at = now(),
                    component = null,
                    read = coalesce($5, read), replayed = coalesce($6, replayed),
                    differ = coalesce($7, differ), failed = coalesce($8, failed),
                    report = coalesce($9, report)
              where id = $1 and instance = $2 and state = 'running'",
        )
        .bind(id)
        .bind(instance)
        .bind(state.as_str())
        .bind(error)
        .bind(counts.read)
        .bind(counts.replayed)
        .bind(counts.differ)
        .bind(counts.failed)
        .bind(progress.map(|progress| Json(&progress.report)))
        .execute(&self.db)
        .await
        .map(drop)
    }

    /// Says this instance's unfinished jobs are alive.
    pub async fn beat(&self, instance: &str) -> sqlx::Result<()> {
        sqlx::query(
            "update replay_jobs set heartbeat_at = now()
              where instance = $1 and state in ('queued', 'running')",
        )
        .bind(instance)
        .execute(&self.db)
        .await
        .map(drop)
    }

    /// Marks `interrupted` the unfinished jobs of every instance that has
    /// not beaten for `silence`: how many.
    pub async fn interrupt_silent(&self, silence: Duration) -> sqlx::Result<u64> {
        sqlx::query(
            "update replay_jobs
                set state = 'interrupted', finished_at = now(), component = null,
                    error = format('instance %s stopped answering: its last heartbeat was at %s',
                                   instance, heartbeat_at)
              where state in ('queued', 'running')
                and heartbeat_at < now() - make_interval(secs => $1)",
        )
        .bind(silence.as_secs_f64())
        .execute(&self.db)
        .await
        .map(|done| done.rows_affected())
    }

    /// Marks `interrupted`, with `why`, the unfinished jobs of `instance`:
    /// when it starts (they belong to the process before it) or stops.
    pub async fn interrupt_instance(&self, instance: &str, why: &str) -> sqlx::Result<u64> {
        sqlx::query(
            "update replay_jobs
                set state = 'interrupted', finished_at = now(), component = null,
                    error = $2
              where instance = $1 and state in ('queued', 'running')",
        )
        .bind(instance)
        .bind(why)
        .execute(&self.db)
        .await
        .map(|done| done.rows_affected())
    }
}

/// A progress's counts as bound to a statement: all null without one, so
/// the row keeps what it has.
struct Counts {
    read: Option<i64>,
    replayed: Option<i64>,
    differ: Option<i64>,
    failed: Option<i64>,
}

impl Counts {
    fn of(progress: Option<&Progress>) -> Self {
        let count = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
        match progress {
            Some(Progress { read, report }) => Self {
                read: count(*read),
                replayed: count(report.replayed),
                differ: count(report.differ),
                failed: count(report.failed),
            },
            None => Self {
                read: None,
                replayed: None,
                differ: None,
                failed: None,
            },
        }
    }
}
