//! The process's background tasks (outbox relay, expiry, followers, the
//! coupon recorder, ...), tracked so that shutdown can stop them and wait
//! for each to finish what it holds: a queued issuance, the last shadow
//! flush.

use std::{future::Future, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// How long shutdown waits for the background tasks before giving up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    /// Spawns a task that is awaited on shutdown; it ends by itself.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// Spawns a task that runs until shutdown: it is given the token that
    /// tells it to stop, and is awaited after that.
    pub fn spawn_until_stopped<F>(&self, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task(self.stop.child_token()));
    }

    /// Tells every task to stop and waits for them all, at most
    /// [`DRAIN_TIMEOUT`]. Tasks that end when their handles are dropped
    /// (the coupon recorder) must have lost them by now.
    pub async fn shut_down(&self) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.tracker.len(),
                "background tasks did not finish in time"
            );
        }
    }
}
