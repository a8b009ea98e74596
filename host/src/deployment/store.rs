//! The deployment's policy state in PostgreSQL: every SQL statement about it.
//!
//! - `policy_versions`: each slot's activations; the newest not retired
//!   serves. A swap, a configuration change and a reload insert one, a
//!   rollback retires the newest, so the one before (component and
//!   configuration) serves again.
//! - `policy_components`: the components' bytes, once per content.
//! - `policy_shadows` and `policy_shadow_examples`: the candidate shadowing
//!   each slot, with its configuration, the deployment's counts and newest
//!   divergences.
//!
//! Changes are made in a [`Changes`] transaction, which holds an advisory
//! lock so they apply one at a time, and announced with `NOTIFY` on
//! [`CHANNEL`]; the [follower](super::follower) of every instance listens.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction, types::Json};

use crate::{
    audit::{self, Actor},
    error::Result,
    policy::{
        Slot,
        bindings::Config,
        shadow::{Counts, EXAMPLES_KEPT, Example, Shadow},
    },
};

/// The `NOTIFY` channel announcing a changed slot (the payload).
pub const CHANNEL: &str = "commerce_policy";
/// Advisory lock serializing changes to the policy state.
const CHANGE_LOCK: i64 = 0x706f_6c69_6379; // "policy"

/// What a notification on [`CHANNEL`] announces: `<slot>` for the active
/// versions, `shadow:<slot>` for the shadow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Slot(Slot),
    Shadow(Slot),
}

impl Change {
    fn payload(self) -> String {
        match self {
            Change::Slot(slot) => slot.as_str().to_owned(),
            Change::Shadow(slot) => format!("shadow:{slot}"),
        }
    }

    pub fn parse(payload: &str) -> Option<Self> {
        match payload.strip_prefix("shadow:") {
            Some(slot) => slot.parse().ok().map(Change::Shadow),
            None => payload.parse().ok().map(Change::Slot),
        }
    }

    pub fn everything() -> Vec<Self> {
        Slot::ALL
            .into_iter()
            .flat_map(|slot| [Change::Slot(slot), Change::Shadow(slot)])
            .collect()
    }
}

/// A row of `policy_versions`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Activation {
    pub id: i64,
    pub sha256: Vec<u8>,
    pub name: String,
    pub version: String,
    pub config: Json<Config>,
    pub source: String,
    pub activated_at: DateTime<Utc>,
}

/// A version about to be activated.
/// A row of `policy_versions` as the history shows it: `retired_at` is set
/// once a rollback retired it.
#[derive(Debug, sqlx::FromRow)]
pub struct ActivationRecord {
    pub id: i64,
    pub sha256: Vec<u8>,
    pub name: String,
    pub version: String,
    pub config: Json<Vec<(String, String)>>,
    pub source: String,
    pub activated_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

pub struct NewActivation {
    pub sha256: [u8; 32],
    /// `None` when the component is stored already (a configuration change).
    pub bytes: Option<Vec<u8>>,
    pub name: String,
    pub version: String,
    pub config: Config,
    /// `manifest:<file>`, `upload` or `config`.
    pub source: String,
}

/// A row of `policy_shadows`.
#[derive(Debug, sqlx::FromRow)]
pub struct ShadowRow {
    pub id: i64,
    pub sha256: Vec<u8>,
    pub name: String,
    pub version: String,
    /// `None`: the candidate runs with the active version's configuration.
    pub config: Option<Json<Config>>,
    pub started_at: DateTime<Utc>,
    pub evaluated: i64,
    pub diverged: i64,
    pub failed: i64,
    pub dropped: i64,
    /// When the shadow stopped itself, and why; its candidate no longer runs.
    pub stopped_at: Option<DateTime<Utc>>,
    pub stopped_reason: Option<String>,
}

/// A shadow stops itself once its candidate has failed at least this share
/// of at least [`STOP_AFTER`] evaluations: a candidate that fails nearly
/// always tells nothing more by running, and costs every instance its
/// failures.
const STOP_FAILED_PERCENT: i64 = 90;
/// Evaluations a shadow runs before it may stop itself.
const STOP_AFTER: i64 = 100;

/// A candidate about to shadow a slot.
pub struct NewShadow {
    pub sha256: [u8; 32],
    pub bytes: Vec<u8>,
    pub name: String,
    pub version: String,
    pub config: Option<Config>,
}

/// The policy tables, read and changed.
#[derive(Clone)]
pub struct PolicyStore {
    db: PgPool,
}

impl PolicyStore {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// A transaction that changes the state, once earlier changes are done.
    pub async fn change(&self) -> sqlx::Result<Changes> {
        let mut tx = self.db.begin().await?;
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(CHANGE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(Changes { tx })
    }

    /// The slot's live activations, newest first.
    pub async fn live(&self, slot: Slot, limit: i64) -> sqlx::Result<Vec<Activation>> {
        live(&self.db, slot, limit).await
    }

    /// A stored component's bytes.
    pub async fn component(&self, sha256: &[u8]) -> sqlx::Result<Vec<u8>> {
        sqlx::query_scalar("select bytes from policy_components where sha256 = $1")
            .bind(sha256)
            .fetch_one(&self.db)
            .await
    }

    /// The slot's activations, newest first, `limit` from `offset`, and how
    /// many there are.
    pub async fn history(
        &self,
        slot: Slot,
        limit: i64,
        offset: i64,
    ) -> sqlx::Result<(Vec<ActivationRecord>, i64)> {
        let rows = sqlx::query_as(
            "select id, sha256, name, version, config, source, activated_at, retired_at
               from policy_versions
              where slot = $1
              order by id desc
              limit $2 offset $3",
        )
        .bind(slot.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db)
        .await?;
        let total = sqlx::query_scalar("select count(*) from policy_versions where slot = $1")
            .bind(slot.as_str())
            .fetch_one(&self.db)
            .await?;
        Ok((rows, total))
    }

    pub async fn shadow(&self, slot: Slot) -> sqlx::Result<Option<ShadowRow>> {
        sqlx::query_as(
            "select id, sha256, name, version, config, started_at, evaluated, diverged, failed, dropped,
                    stopped_at, stopped_reason
               from policy_shadows
              where slot = $1",
        )
        .bind(slot.as_str())
        .fetch_optional(&self.db)
        .await
    }

    /// The shadow's newest divergences, newest first.
    pub async fn examples(&self, shadow_id: i64) -> sqlx::Result<Vec<Example>> {
        sqlx::query_as(
            "select call, input, active_output, coalesce(candidate_output, 'null') as candidate_output,
                    candidate_error, at
               from policy_shadow_examples
              where shadow_id = $1
              order by id desc
              limit $2",
        )
        .bind(shadow_id)
        .bind(EXAMPLES_KEPT as i64)
        .fetch_all(&self.db)
        .await
    }

    /// Adds this instance's tally of `shadow` since the last flush to the
    /// deployment's totals, with the newest examples; on failure the tally
    /// is kept for the next flush.
    pub async fn flush(&self, shadow: &Shadow) -> sqlx::Result<()> {
        let Some(outcomes) = shadow.take_outcomes() else {
            return Ok(());
        };
        let written = self
            .add_outcomes(shadow.id, &outcomes.counts, &outcomes.examples)
            .await;
        if written.is_err() {
            shadow.put_back(outcomes);
        }
        written
    }

    /// Adds one instance's outcomes to the shadow's totals and keeps the
    /// newest examples of all instances. A shadow stopped or replaced
    /// meanwhile takes nothing: its row is gone. When the totals show the
    /// candidate failing nearly always, the shadow stops itself here, in
    /// the same update, and every instance is told.
    pub async fn add_outcomes(
        &self,
        shadow_id: i64,
        counts: &Counts,
        examples: &[Example],
    ) -> sqlx::Result<()> {
        let mut tx = self.db.begin().await?;
        // `now()` is this transaction's start: a shadow it stopped has
        // exactly that `stopped_at`, one stopped earlier an older one.
        let stopped: Option<(String, bool)> = sqlx::query_as(
            "update policy_shadows
                set evaluated = evaluated + $2, diverged = diverged + $3,
                    failed = failed + $4, dropped = dropped + $5,
                    stopped_at = case
                        when stopped_at is null and evaluated + $2 >= $6
                             and (failed + $4) * 100 >= (evaluated + $2) * $7 then now()
                        else stopped_at end,
                    stopped_reason = case
                        when stopped_at is null and evaluated + $2 >= $6
                             and (failed + $4) * 100 >= (evaluated + $2) * $7
                        then format('stopped itself: its candidate failed %s of %s evaluations',
                                    failed + $4, evaluated + $2)
                        else stopped_reason end
              where id = $1
              returning slot, stopped_at is not null and stopped_at = now()",
        )
        .bind(shadow_id)
        .bind(counts.evaluated)
        .bind(counts.diverged)
        .bind(counts.failed)
        .bind(counts.dropped)
        .bind(STOP_AFTER)
        .bind(STOP_FAILED_PERCENT)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((slot, true)) = stopped {
            tracing::warn!(%slot, shadow = shadow_id, "a shadow stopped itself: its candidate fails nearly always");
            sqlx::query("select pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(format!("shadow:{slot}"))
                .execute(&mut *tx)
                .await?;
        }
        if !examples.is_empty() {
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
            .bind(Json(examples))
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
}

/// One change of the policy state, under the change lock; announced to
/// every instance when it commits.
pub struct Changes {
    tx: Transaction<'static, Postgres>,
}

impl Changes {
    pub async fn live(&mut self, slot: Slot, limit: i64) -> sqlx::Result<Vec<Activation>> {
        live(&mut *self.tx, slot, limit).await
    }

    /// Makes `new` the slot's active version.
    pub async fn activate(&mut self, slot: Slot, new: &NewActivation) -> sqlx::Result<()> {
        if let Some(bytes) = &new.bytes {
            self.store_component(&new.sha256, bytes).await?;
        }
        sqlx::query(
            "insert into policy_versions (slot, sha256, name, version, config, source)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(slot.as_str())
        .bind(new.sha256.as_slice())
        .bind(&new.name)
        .bind(&new.version)
        .bind(Json(&new.config))
        .bind(&new.source)
        .execute(&mut *self.tx)
        .await?;
        self.notify(Change::Slot(slot)).await
    }

    /// Retires an activation: the one before it serves again.
    pub async fn retire(&mut self, slot: Slot, activation: i64) -> sqlx::Result<()> {
        sqlx::query("update policy_versions set retired_at = now() where id = $1")
            .bind(activation)
            .execute(&mut *self.tx)
            .await?;
        self.notify(Change::Slot(slot)).await
    }

    /// Makes `new` the slot's shadow, replacing any (whose counts go).
    pub async fn replace_shadow(&mut self, slot: Slot, new: &NewShadow) -> sqlx::Result<()> {
        self.store_component(&new.sha256, &new.bytes).await?;
        self.delete_shadow(slot).await?;
        sqlx::query(
            "insert into policy_shadows (slot, sha256, name, version, config)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(slot.as_str())
        .bind(new.sha256.as_slice())
        .bind(&new.name)
        .bind(&new.version)
        .bind(new.config.as_ref().map(Json))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Removes the slot's shadow; `false` when it had none.
    pub async fn delete_shadow(&mut self, slot: Slot) -> sqlx::Result<bool> {
        let deleted = sqlx::query("delete from policy_shadows where slot = $1")
            .bind(slot.as_str())
            .execute(&mut *self.tx)
            .await?;
        self.notify(Change::Shadow(slot)).await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Records the change in the audit log, in this transaction.
    pub async fn audit(&mut self, actor: &Actor, change: audit::Change<'_>) -> Result<()> {
        audit::record(&mut self.tx, actor, change).await
    }

    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }

    /// Stores a component's bytes once per content.
    async fn store_component(&mut self, sha256: &[u8; 32], bytes: &[u8]) -> sqlx::Result<()> {
        sqlx::query(
            "insert into policy_components (sha256, bytes) values ($1, $2) on conflict do nothing",
        )
        .bind(sha256.as_slice())
        .bind(bytes)
        .execute(&mut *self.tx)
        .await
        .map(drop)
    }

    /// Delivered to every listening instance when the transaction commits.
    async fn notify(&mut self, change: Change) -> sqlx::Result<()> {
        sqlx::query("select pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(change.payload())
            .execute(&mut *self.tx)
            .await
            .map(drop)
    }
}

async fn live<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    slot: Slot,
    limit: i64,
) -> sqlx::Result<Vec<Activation>> {
    sqlx::query_as(
        "select id, sha256, name, version, config, source, activated_at
           from policy_versions
          where slot = $1 and retired_at is null
          order by id desc
          limit $2",
    )
    .bind(slot.as_str())
    .bind(limit)
    .fetch_all(conn)
    .await
}
