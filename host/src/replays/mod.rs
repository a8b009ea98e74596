//! Replay jobs: a candidate component replayed, in the background, through
//! the orders recorded since a time (what `commerce policy replay` does),
//! kept in PostgreSQL (`replay_jobs`, see [`store`]) so that the whole
//! deployment shares them.
//!
//! - The instance that accepts a job queues it and runs it: one at a time
//!   per instance, oldest first ([`worker`]), writing its progress a few
//!   times a second.
//! - Any instance lists and reads jobs from the table, so a replay started
//!   through one instance is followed through another.
//! - A cancellation, through any instance, ends a queued job at once and
//!   marks a running one, whose instance sees it at its next progress write
//!   and stops.
//! - A job is never lost silently: an instance that stops marks its jobs
//!   `interrupted`, one that starts marks those its previous process left,
//!   and every instance marks those of an instance that stopped beating.
//! - At most [`MAX_UNFINISHED`] jobs are queued or running in the
//!   deployment.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod job;
mod store;
mod worker;

pub use self::job::ReplayJob;
use self::store::{JobStore, NewJob, Row};
use crate::{
    error::{Error, Result},
    policy::{Slot, bindings::Config, metadata, runner},
};

/// Jobs queued or running in the deployment at most: each holds its
/// candidate's bytes, and a longer queue would wait for hours.
pub const MAX_UNFINISHED: i64 = 32;
/// Jobs a list shows, newest first.
pub const LISTED: i64 = 32;

pub struct Replays {
    store: JobStore,
    db: PgPool,
    /// This instance's name in `replay_jobs.instance`: `host:port`, the same
    /// for a process that restarts in its place, so it can tell the jobs its
    /// previous process left.
    instance: String,
    /// Wakes the worker when a job is queued here.
    wake: Notify,
}

impl Replays {
    /// The replay jobs of the deployment, as the instance named `instance`
    /// sees them. Jobs left unfinished by a previous process of the same
    /// name are marked `interrupted` first.
    pub async fn start(db: PgPool, instance: String) -> anyhow::Result<Arc<Self>> {
        let store = JobStore::new(db.clone());
        let why = format!("instance {instance} restarted before the replay finished");
        let left = store.interrupt_instance(&instance, &why).await?;
        if left > 0 {
            tracing::warn!(
                jobs = left,
                "replays left by this instance's previous process are marked interrupted"
            );
        }
        Ok(Arc::new(Self {
            store,
            db,
            instance,
            wake: Notify::new(),
        }))
    }

    /// This instance's name, `host:port`: the host's name and the port it
    /// serves on.
    pub fn instance_name(port: u16) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}:{port}")
    }

    /// Checks `component` against the slot's world (and `config` against
    /// the keys it declares), then queues its replay of the orders placed
    /// since `since`, to run on this instance.
    pub async fn submit(
        &self,
        slot: Slot,
        component: Vec<u8>,
        config: Option<Config>,
        since: DateTime<Utc>,
    ) -> Result<ReplayJob> {
        let sha256: [u8; 32] = Sha256::digest(&component).into();
        // Compiling takes tens of milliseconds: off the async workers.
        let (candidate, component) = tokio::task::spawn_blocking(move || {
            runner::load(&component, slot).map(|candidate| (candidate, component))
        })
        .await
        .map_err(|err| Error::Internal(err.into()))??;
        if let Some(config) = &config {
            metadata::validate(candidate.info.config_keys.as_deref(), config)
                .map_err(Error::InvalidConfig)?;
        }
        let job = NewJob {
            id: Uuid::new_v4(),
            slot,
            name: candidate.info.name.clone(),
            version: candidate.info.version.clone(),
            sha256,
            component,
            config,
            since,
        };
        let row = self
            .store
            .admit(&job, &self.instance, MAX_UNFINISHED)
            .await?
            .ok_or(Error::TooManyReplays(MAX_UNFINISHED))?;
        self.wake.notify_one();
        job_of(row)
    }

    /// The deployment's newest [`LISTED`] jobs, newest first.
    pub async fn list(&self) -> Result<Vec<ReplayJob>> {
        self.store
            .newest(LISTED)
            .await?
            .into_iter()
            .map(job_of)
            .collect()
    }

    pub async fn get(&self, id: &str) -> Result<ReplayJob> {
        let id = parse_id(id)?;
        let row = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::ReplayNotFound(id.simple().to_string()))?;
        job_of(row)
    }

    /// Cancels a job: a queued one is `cancelled` at once; a running one
    /// stops within a second, on its instance, and is then `cancelled`.
    pub async fn cancel(&self, id: &str) -> Result<ReplayJob> {
        let id = parse_id(id)?;
        if let Some(row) = self.store.request_cancel(id).await? {
            return job_of(row);
        }
        let row = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::ReplayNotFound(id.simple().to_string()))?;
        Err(Error::ReplayFinished {
            id: id.simple().to_string(),
            status: row.state()?.to_string(),
        })
    }

    /// Runs the jobs queued on this instance until `stop`.
    pub async fn work(self: Arc<Self>, stop: CancellationToken) {
        worker::work(
            self.db.clone(),
            self.store.clone(),
            self.instance.clone(),
            &self.wake,
            stop,
        )
        .await;
    }

    /// Keeps this instance's jobs alive and interrupts those of silent
    /// instances, until `stop`.
    pub async fn keep_alive(self: Arc<Self>, stop: CancellationToken) {
        worker::keep_alive(self.store.clone(), self.instance.clone(), stop).await;
    }
}

/// A job's id: 32 hex digits.
fn parse_id(text: &str) -> Result<Uuid> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid("a replay id is 32 hex digits"));
    }
    Uuid::try_parse(text).map_err(|_| Error::invalid("a replay id is 32 hex digits"))
}

fn job_of(row: Row) -> Result<ReplayJob> {
    row.into_job().map_err(Error::Internal)
}
