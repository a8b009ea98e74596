//! Follows the deployment's policy state: every instance listens on the
//! store's `NOTIFY` channel and installs each change it announces, re-reads
//! everything every few seconds in case a notification was lost while its
//! connection was down, and adds its shadow outcomes to the deployment's
//! every `COMMERCE_SHADOW_FLUSH_MS` (and once more when it stops).

use std::{sync::Arc, time::Duration};

use sqlx::{PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;

use super::{
    mirror::Mirror,
    store::{CHANNEL, Change},
};

/// How often each instance re-reads the state regardless of notifications.
const RESYNC_EVERY: Duration = Duration::from_secs(5);

/// Follows changes made through any instance until `stop`, adding this
/// instance's shadow outcomes to the deployment's every `flush_every`.
pub async fn follow(
    db: PgPool,
    mirror: Arc<Mirror>,
    flush_every: Duration,
    stop: CancellationToken,
) {
    let mut listener: Option<PgListener> = None;
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    let mut flush = tokio::time::interval(flush_every);
    loop {
        if listener.is_none() {
            listener = listen(&db).await;
        }
        let notification = async {
            match listener.as_mut() {
                Some(listener) => listener.recv().await.map(|n| Change::parse(n.payload())),
                None => std::future::pending().await,
            }
        };
        let changes: Vec<Change> = tokio::select! {
            () = stop.cancelled() => {
                mirror.flush_shadows().await;
                return;
            }
            _ = flush.tick() => {
                mirror.flush_shadows().await;
                continue;
            }
            _ = resync.tick() => Change::everything(),
            received = notification => match received {
                Ok(Some(change)) => vec![change],
                Ok(None) => Vec::new(),
                Err(err) => {
                    // Notifications may have been missed: read everything.
                    tracing::warn!(%err, "lost the policy change listener; re-reading");
                    listener = None;
                    Change::everything()
                }
            },
        };
        for change in changes {
            let synced = match change {
                Change::Slot(slot) => mirror.sync(slot).await,
                Change::Shadow(slot) => mirror.sync_shadow(slot).await,
            };
            if let Err(err) = synced {
                tracing::warn!(?change, error = %format!("{err:#}"), "cannot install the policy state");
            }
        }
    }
}

/// A listener on the change channel; `None`, logged, while PostgreSQL refuses.
async fn listen(db: &PgPool) -> Option<PgListener> {
    let listening = async {
        let mut listener = PgListener::connect_with(db).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match listening.await {
        Ok(listener) => Some(listener),
        Err(err) => {
            tracing::warn!(%err, "cannot listen for policy changes");
            None
        }
    }
}
