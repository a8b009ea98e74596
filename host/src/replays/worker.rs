//! This instance's side of replay jobs: it runs the jobs it accepted, one at
//! a time (each keeps a core busy, and the server has requests to serve),
//! writes their progress a few times a second, stops one whose cancellation
//! was asked for, and says it is alive so that the other instances can tell
//! when it is not.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::store::{Claimed, End, JobStore, Progress};
use crate::policy::{recorded, replay, runner};

/// How often a running job's progress is written (and its row read for a
/// cancellation): often enough to follow, rare enough to cost nothing.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often this instance says its jobs are alive.
pub(super) const BEAT_EVERY: Duration = Duration::from_secs(1);
/// A job whose instance has not beaten this long is taken for lost: many
/// missed beats, so a busy instance is not mistaken for a dead one.
pub(super) const SILENCE: Duration = Duration::from_secs(10);
/// How often an idle worker looks for queued jobs on its own; a job
/// accepted here wakes it at once.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Runs this instance's queued jobs, oldest first, until `stop`; then
/// marks what it leaves unfinished `interrupted`.
pub(super) async fn work(
    db: PgPool,
    store: JobStore,
    instance: String,
    wake: &Notify,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        match store.claim_next(&instance).await {
            Ok(Some(job)) => {
                run(&db, &store, &instance, job, &stop).await;
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "cannot read the replay queue"),
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = wake.notified() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
    let why = format!("instance {instance} shut down before the replay ran");
    if let Err(err) = store.interrupt_instance(&instance, &why).await {
        tracing::warn!(%err, "cannot mark the queued replays interrupted");
    }
}

/// Beats for this instance's jobs and marks the jobs of silent instances
/// `interrupted`, until `stop`.
pub(super) async fn keep_alive(store: JobStore, instance: String, stop: CancellationToken) {
    let mut every = tokio::time::interval(BEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(err) = store.beat(&instance).await {
            tracing::warn!(%err, "cannot say this instance's replays are alive");
        }
        match store.interrupt_silent(SILENCE).await {
            Ok(0) => {}
            Ok(jobs) => tracing::warn!(
                jobs,
                "replays whose instance stopped answering are marked interrupted"
            ),
            Err(err) => {
                tracing::warn!(%err, "cannot look for replays whose instance stopped answering")
            }
        }
    }
}

/// Runs one claimed job to its end and records how it ended.
async fn run(
    db: &PgPool,
    store: &JobStore,
    instance: &str,
    job: Claimed,
    stop: &CancellationToken,
) {
    let id = job.id;
    let latest = Mutex::new(None);
    let end = replay_job(db, store, instance, job, &latest, stop).await;
    let progress = latest.into_inner().unwrap_or_else(PoisonError::into_inner);
    let end = match &end {
        Ending::Done(progress) => End::Done(progress),
        Ending::Failed(why) => End::Failed(why, progress.as_ref()),
        Ending::Cancelled => End::Cancelled(progress.as_ref()),
        Ending::Interrupted(why) => End::Interrupted(why, progress.as_ref()),
        Ending::Lost => {
            tracing::warn!(replay = %id.simple(), "a replay was taken for lost by another instance; stopped");
            return;
        }
    };
    if let End::Failed(why, _) = &end {
        tracing::warn!(replay = %id.simple(), error = %why, "replay failed");
    }
    if let Err(err) = store.finish(id, instance, end).await {
        tracing::warn!(replay = %id.simple(), %err, "cannot record how a replay ended");
    }
}

/// How a run ended, before it is recorded.
enum Ending {
    Done(Progress),
    Failed(String),
    Cancelled,
    Interrupted(String),
    /// The row is no longer this instance's running job.
    Lost,
}

/// Compiles the candidate, counts the orders and replays them, writing
/// progress every [`PROGRESS_EVERY`] until the replay ends, a cancellation
/// is seen, or `stop`. `latest` holds the newest progress.
async fn replay_job(
    db: &PgPool,
    store: &JobStore,
    instance: &str,
    job: Claimed,
    latest: &Mutex<Option<Progress>>,
    stop: &CancellationToken,
) -> Ending {
    let Claimed {
        id,
        slot,
        component,
        config,
        since,
    } = job;
    // Compiling takes tens of milliseconds: off the async workers. The
    // bytes were checked when the job was accepted; this is wasmtime's
    // cache more often than not.
    let candidate = match tokio::task::spawn_blocking(move || runner::load(&component, slot)).await
    {
        Ok(Ok(candidate)) => candidate,
        Ok(Err(err)) => return Ending::Failed(err.to_string()),
        Err(err) => return Ending::Failed(format!("compiling the candidate: {err}")),
    };
    let total = match recorded::count(db, since).await {
        Ok(total) => total,
        Err(err) => return Ending::Failed(format!("counting the recorded orders: {err}")),
    };
    if let Err(err) = store.set_total(id, total).await {
        return Ending::Failed(format!("recording the total: {err}"));
    }
    let replay = replay::replay_with(db, candidate, since, config, |read, report| {
        *latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Progress {
            read,
            report: report.clone(),
        });
    });
    tokio::pin!(replay);
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            outcome = &mut replay => {
                return match outcome {
                    Ok(report) => {
                        let read = latest
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .as_ref()
                            .map_or(0, |progress| progress.read);
                        Ending::Done(Progress { read, report })
                    }
                    Err(err) => Ending::Failed(format!("{err:#}")),
                };
            }
            () = stop.cancelled() => {
                return Ending::Interrupted(format!(
                    "instance {instance} shut down while the replay ran"
                ));
            }
            _ = every.tick() => {
                let progress = latest.lock().unwrap_or_else(PoisonError::into_inner).clone();
                match store.write_progress(id, instance, progress.as_ref()).await {
                    Ok(Some(false)) => {}
                    Ok(Some(true)) => return Ending::Cancelled,
                    Ok(None) => return Ending::Lost,
                    // The next tick tries again; a database that stays away
                    // makes the other instances take the job for lost.
                    Err(err) => tracing::warn!(replay = %id.simple(), %err, "cannot write a replay's progress"),
                }
            }
        }
    }
}
