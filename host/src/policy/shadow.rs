//! Shadow evaluation: a candidate component runs beside a slot's active
//! version on every evaluation of the slot, on the same input, and is never
//! applied.
//!
//! The active version answers the request first; its input and answer are
//! then handed to a bounded queue that one thread per instance drains, so
//! the candidate costs the request one clone and a `try_send`. A full queue
//! drops the work and counts the drop. Each candidate call gets a fresh store
//! and its own fuel budget, like any policy call; whatever it does, the
//! request has already been answered.
//!
//! Outcomes are tallied in memory and added to the deployment's totals in
//! PostgreSQL every second (and before a report is read), with the newest
//! divergences: PostgreSQL keeps the last [`EXAMPLES_KEPT`] of all instances.
//! Which candidate shadows a slot is deployment state like the active
//! version: `policy_shadows` with the bytes in `policy_components`, announced
//! with `NOTIFY` and re-read by every instance.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError},
    },
};

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, types::Json};
use utoipa::ToSchema;

use super::{
    LoadedPolicy, PolicyError, Slot,
    call::{Call, Output},
    loaded::PolicyInfo,
    metadata,
    service::{self, Change, PolicyService},
};
use crate::error::{Error, Result};

/// Divergences the deployment keeps per shadow, newest first.
pub const EXAMPLES_KEPT: usize = 20;
/// Evaluations waiting for the shadow thread; more are dropped and counted.
const QUEUE_CAPACITY: usize = 1024;

/// The shadows of one instance's slots, and the thread that runs them.
pub struct Shadows {
    slots: [Arc<ShadowSlot>; 3],
}

/// One slot's shadow, as every loaded version of the slot sees it.
pub struct ShadowSlot {
    current: ArcSwapOption<Shadow>,
    queue: SyncSender<Job>,
}

/// A candidate shadowing a slot, and this instance's tally of it.
pub struct Shadow {
    /// Row id in `policy_shadows`: a new PUT is a new shadow.
    pub id: i64,
    pub candidate: Arc<LoadedPolicy>,
    pub started_at: DateTime<Utc>,
    tally: Tally,
}

/// Outcomes not yet added to the deployment's totals.
#[derive(Default)]
struct Tally {
    evaluated: AtomicU64,
    diverged: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    examples: Mutex<VecDeque<Example>>,
}

/// A divergence: the call's input and both answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Example {
    /// `price`, `apply`, `can_issue` or `check`.
    pub call: String,
    /// The call's input, as a case file writes it.
    pub input: Value,
    pub active_output: Value,
    /// Null when the candidate failed.
    pub candidate_output: Value,
    /// Why the candidate failed: it trapped, ran out of fuel, time or memory.
    pub candidate_error: Option<String>,
    pub at: DateTime<Utc>,
}

struct Job {
    shadow: Arc<Shadow>,
    call: Call,
    active: Output,
}

impl Shadows {
    /// Starts the instance's shadow thread; it ends when the last slot is dropped.
    pub fn start() -> std::io::Result<Self> {
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("policy-shadow".into())
            .spawn(move || run(jobs))?;
        let slot = || {
            Arc::new(ShadowSlot {
                current: ArcSwapOption::empty(),
                queue: queue.clone(),
            })
        };
        Ok(Self {
            slots: [slot(), slot(), slot()],
        })
    }

    pub fn slot(&self, slot: Slot) -> &Arc<ShadowSlot> {
        &self.slots[slot.index()]
    }
}

impl ShadowSlot {
    pub fn current(&self) -> Option<Arc<Shadow>> {
        self.current.load_full()
    }

    fn install(&self, shadow: Option<Arc<Shadow>>) {
        self.current.store(shadow);
    }

    /// Hands an evaluation the active version has answered to the candidate.
    /// Never blocks: a full queue drops it, counted.
    pub fn offer(&self, call: Call, active: &Output) {
        let Some(shadow) = self.current.load_full() else {
            return;
        };
        let job = Job {
            shadow,
            call,
            active: active.clone(),
        };
        if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
            self.queue.try_send(job)
        {
            job.shadow.tally.dropped.fetch_add(1, Ordering::Relaxed);
            job.shadow.count("dropped");
        }
    }
}

fn run(jobs: Receiver<Job>) {
    for job in jobs {
        job.run();
    }
}

/// How the candidate's answer compares with the active version's.
enum Outcome {
    Same,
    Diverged(Output),
    Failed(String),
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Same => "same",
            Outcome::Diverged(_) => "diverged",
            Outcome::Failed(_) => "failed",
        }
    }
}

impl Job {
    fn run(self) {
        let Job {
            shadow,
            call,
            active,
        } = self;
        let outcome = match shadow.candidate.evaluate(&call) {
            Ok((output, _)) if output == active => Outcome::Same,
            Ok((output, _)) => Outcome::Diverged(output),
            Err(PolicyError::Unavailable { reason, .. }) => Outcome::Failed(reason),
            Err(err) => Outcome::Failed(err.to_string()),
        };
        let tally = &shadow.tally;
        tally.evaluated.fetch_add(1, Ordering::Relaxed);
        shadow.count(outcome.name());
        let (candidate_output, candidate_error) = match outcome {
            Outcome::Same => return,
            Outcome::Diverged(output) => {
                tally.diverged.fetch_add(1, Ordering::Relaxed);
                (output.to_json(), None)
            }
            Outcome::Failed(reason) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                (Value::Null, Some(reason))
            }
        };
        tally.keep(Example {
            call: call.function().to_owned(),
            input: call.input_json(),
            active_output: active.to_json(),
            candidate_output,
            candidate_error,
            at: Utc::now(),
        });
    }
}

/// Counts added since the last flush, and the newest examples.
struct Taken {
    evaluated: i64,
    diverged: i64,
    failed: i64,
    dropped: i64,
    examples: Vec<Example>,
}

impl Tally {
    fn keep(&self, example: Example) {
        let mut examples = lock(&self.examples);
        if examples.len() == EXAMPLES_KEPT {
            examples.pop_front();
        }
        examples.push_back(example);
    }

    fn take(&self) -> Taken {
        let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed) as i64;
        Taken {
            evaluated: take(&self.evaluated),
            diverged: take(&self.diverged),
            failed: take(&self.failed),
            dropped: take(&self.dropped),
            examples: lock(&self.examples).drain(..).collect(),
        }
    }

    /// Puts back what a failed flush took, for the next one.
    fn restore(&self, taken: Taken) {
        let add = |counter: &AtomicU64, n: i64| counter.fetch_add(n as u64, Ordering::Relaxed);
        add(&self.evaluated, taken.evaluated);
        add(&self.diverged, taken.diverged);
        add(&self.failed, taken.failed);
        add(&self.dropped, taken.dropped);
        let mut examples = lock(&self.examples);
        for example in taken.examples.into_iter().rev() {
            if examples.len() < EXAMPLES_KEPT {
                examples.push_front(example);
            }
        }
    }
}

impl Taken {
    fn is_empty(&self) -> bool {
        self.evaluated == 0 && self.dropped == 0 && self.examples.is_empty()
    }
}

impl Shadow {
    fn count(&self, outcome: &'static str) {
        metrics::counter!(
            "policy_shadow_evaluations_total",
            "slot" => self.candidate.info.slot.as_str(),
            "candidate" => self.candidate.label(),
            "outcome" => outcome,
        )
        .increment(1);
    }

    /// Adds this instance's tally since the last flush to the deployment's
    /// totals and keeps the newest examples of all instances.
    async fn flush(&self, db: &PgPool) -> sqlx::Result<()> {
        let taken = self.tally.take();
        if taken.is_empty() {
            return Ok(());
        }
        let written = write_tally(db, self.id, &taken).await;
        if written.is_err() {
            self.tally.restore(taken);
        }
        written
    }
}

async fn write_tally(db: &PgPool, shadow_id: i64, taken: &Taken) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    // A shadow stopped or replaced meanwhile updates nothing: its row is gone.
    sqlx::query(
        "update policy_shadows
            set evaluated = evaluated + $2, diverged = diverged + $3,
                failed = failed + $4, dropped = dropped + $5
          where id = $1",
    )
    .bind(shadow_id)
    .bind(taken.evaluated)
    .bind(taken.diverged)
    .bind(taken.failed)
    .bind(taken.dropped)
    .execute(&mut *tx)
    .await?;
    if !taken.examples.is_empty() {
        sqlx::query(
            "insert into policy_shadow_examples
                    (shadow_id, call, input, active_output, candidate_output, candidate_error, at)
             select $1, x.call, x.input, x.active_output, x.candidate_output, x.candidate_error, x.at
               from jsonb_to_recordset($2) as x(call text, input jsonb, active_output jsonb,
                    candidate_output jsonb, candidate_error text, at timestamptz)
              where exists (select 1 from policy_shadows where id = $1)
              order by x.at",
        )
        .bind(shadow_id)
        .bind(Json(&taken.examples))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "delete from policy_shadow_examples
              where shadow_id = $1
                and id < (select min(id) from (select id from policy_shadow_examples
                                                where shadow_id = $1
                                                order by id desc limit $2) newest)",
        )
        .bind(shadow_id)
        .bind(EXAMPLES_KEPT as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A started shadow, as `PUT .../shadow` answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShadowInfo {
    pub slot: Slot,
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of the candidate's bytes.
    pub sha256: String,
    pub started_at: DateTime<Utc>,
    /// The `commerce:policy` version the candidate was built against.
    pub contract: String,
}

/// How a shadow compares, across all instances, as `GET .../shadow` answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShadowReport {
    pub slot: Slot,
    /// The candidate's `name@version`.
    pub candidate: String,
    pub sha256: String,
    pub started_at: DateTime<Utc>,
    /// Evaluations the candidate ran.
    pub evaluated: i64,
    /// ... whose answer differed from the active version's.
    pub diverged: i64,
    /// ... in which the candidate failed (trapped, ran out of fuel, time or memory).
    pub failed: i64,
    /// Evaluations not run because the shadow queue was full.
    pub dropped: i64,
    /// The last divergences and failures, newest first.
    pub examples: Vec<Example>,
}

/// A row of `policy_shadows`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ShadowRow {
    id: i64,
    sha256: Vec<u8>,
    name: String,
    version: String,
    started_at: DateTime<Utc>,
    evaluated: i64,
    diverged: i64,
    failed: i64,
    dropped: i64,
}

async fn shadow_row(db: &PgPool, slot: Slot) -> sqlx::Result<Option<ShadowRow>> {
    sqlx::query_as(
        "select id, sha256, name, version, started_at, evaluated, diverged, failed, dropped
           from policy_shadows
          where slot = $1",
    )
    .bind(slot.as_str())
    .fetch_optional(db)
    .await
}

impl PolicyService {
    /// Makes `bytes` the slot's shadow for the whole deployment, replacing
    /// any shadow it had (whose counts start again).
    pub async fn start_shadow(&self, slot: Slot, bytes: Vec<u8>) -> Result<ShadowInfo> {
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let (name, version) = metadata::label(&bytes, &sha256);
        self.check_and_keep(slot, &sha256, bytes.clone()).await?;
        let mut tx = self.db.begin().await?;
        service::lock_changes(&mut tx).await?;
        service::store_component(&mut tx, &sha256, &bytes).await?;
        sqlx::query("delete from policy_shadows where slot = $1")
            .bind(slot.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into policy_shadows (slot, sha256, name, version) values ($1, $2, $3, $4)",
        )
        .bind(slot.as_str())
        .bind(sha256.as_slice())
        .bind(&name)
        .bind(&version)
        .execute(&mut *tx)
        .await?;
        service::notify(&mut tx, Change::Shadow(slot)).await?;
        tx.commit().await?;
        self.sync_shadow(slot).await.map_err(Error::Internal)?;
        let shadow = self
            .shadows
            .slot(slot)
            .current()
            .ok_or(Error::NoShadow(slot))?;
        let info = &shadow.candidate.info;
        Ok(ShadowInfo {
            slot,
            name: info.name.clone(),
            version: info.version.clone(),
            sha256: info.sha256.clone(),
            started_at: shadow.started_at,
            contract: info.contract.clone(),
        })
    }

    /// Stops the slot's shadow on every instance; its counts and examples go.
    pub async fn stop_shadow(&self, slot: Slot) -> Result<()> {
        let mut tx = self.db.begin().await?;
        service::lock_changes(&mut tx).await?;
        let stopped = sqlx::query("delete from policy_shadows where slot = $1")
            .bind(slot.as_str())
            .execute(&mut *tx)
            .await?;
        if stopped.rows_affected() == 0 {
            return Err(Error::NoShadow(slot));
        }
        service::notify(&mut tx, Change::Shadow(slot)).await?;
        tx.commit().await?;
        self.sync_shadow(slot).await.map_err(Error::Internal)
    }

    /// The slot's shadow across the deployment, with this instance's
    /// latest outcomes added first.
    pub async fn shadow_report(&self, slot: Slot) -> Result<ShadowReport> {
        if let Some(shadow) = self.shadows.slot(slot).current() {
            shadow.flush(&self.db).await?;
        }
        let row = shadow_row(&self.db, slot)
            .await?
            .ok_or(Error::NoShadow(slot))?;
        let examples: Vec<Example> = sqlx::query_as(
            "select call, input, active_output, coalesce(candidate_output, 'null') as candidate_output,
                    candidate_error, at
               from policy_shadow_examples
              where shadow_id = $1
              order by id desc
              limit $2",
        )
        .bind(row.id)
        .bind(EXAMPLES_KEPT as i64)
        .fetch_all(&self.db)
        .await?;
        Ok(ShadowReport {
            slot,
            candidate: format!("{}@{}", row.name, row.version),
            sha256: hex::encode(&row.sha256),
            started_at: row.started_at,
            evaluated: row.evaluated,
            diverged: row.diverged,
            failed: row.failed,
            dropped: row.dropped,
            examples,
        })
    }

    /// The candidate shadowing the slot on this instance, if any.
    pub fn shadow(&self, slot: Slot) -> Option<Arc<Shadow>> {
        self.shadows.slot(slot).current()
    }

    /// Makes the slot's shadow candidate the active version (with the
    /// slot's configuration, as it ran) and stops the shadow.
    pub async fn promote_shadow(&self, slot: Slot) -> Result<PolicyInfo> {
        let bytes: Vec<u8> = sqlx::query_scalar(
            "select c.bytes from policy_shadows s
               join policy_components c on c.sha256 = s.sha256
              where s.slot = $1",
        )
        .bind(slot.as_str())
        .fetch_optional(&self.db)
        .await?
        .ok_or(Error::NoShadow(slot))?;
        let info = self.upload_from(slot, bytes, "shadow").await?;
        match self.stop_shadow(slot).await {
            // Stopped meanwhile through another instance: nothing left to do.
            Ok(()) | Err(Error::NoShadow(_)) => Ok(info),
            Err(err) => Err(err),
        }
    }

    /// Installs the slot's shadow as PostgreSQL has it now.
    pub async fn sync_shadow(&self, slot: Slot) -> anyhow::Result<()> {
        let _one_at_a_time = self.sync_lock.lock().await;
        let cell = self.shadows.slot(slot);
        let current = cell.current();
        let row = shadow_row(&self.db, slot).await?;
        match (row, current) {
            (None, None) => {}
            (None, Some(stopped)) => {
                tracing::info!(%slot, candidate = %stopped.candidate.label(), "shadow stopped");
                cell.install(None);
            }
            (Some(row), Some(current)) if row.id == current.id => {}
            (Some(row), _) => {
                let component = self.component(slot, &row.sha256).await?;
                let info = PolicyInfo {
                    slot,
                    name: row.name,
                    version: row.version,
                    sha256: hex::encode(&row.sha256),
                    loaded_at: row.started_at,
                    source: "shadow".to_owned(),
                    contract: String::new(),
                };
                // The candidate is handed each input as the active version
                // saw it, configuration included.
                let candidate = LoadedPolicy::prepare(slot, component, info, Vec::new(), 0)?;
                tracing::info!(%slot, candidate = %candidate.label(), "shadow started");
                cell.install(Some(Arc::new(Shadow {
                    id: row.id,
                    candidate,
                    started_at: row.started_at,
                    tally: Tally::default(),
                })));
            }
        }
        Ok(())
    }

    /// Adds every slot's outcomes since the last flush to the deployment's.
    pub async fn flush_shadows(&self) {
        for slot in Slot::ALL {
            if let Some(shadow) = self.shadows.slot(slot).current()
                && let Err(err) = shadow.flush(&self.db).await
            {
                tracing::warn!(%slot, %err, "cannot record the shadow's outcomes; retrying");
            }
        }
    }
}
