//! A replay job as the API answers it, and its states.

use std::{collections::BTreeMap, fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::policy::{Slot, replay::ReplayReport};

/// Where a replay job is in its life. `queued` and `running` are the
/// unfinished states; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Waiting for the replays before it on its instance to finish.
    Queued,
    Running,
    Done,
    Failed,
    /// Stopped by a cancellation.
    Cancelled,
    /// Its instance stopped or stopped answering before it finished; `error`
    /// says which.
    Interrupted,
}

impl ReplayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayStatus::Queued => "queued",
            ReplayStatus::Running => "running",
            ReplayStatus::Done => "done",
            ReplayStatus::Failed => "failed",
            ReplayStatus::Cancelled => "cancelled",
            ReplayStatus::Interrupted => "interrupted",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, ReplayStatus::Queued | ReplayStatus::Running)
    }
}

impl fmt::Display for ReplayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReplayStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "queued" => ReplayStatus::Queued,
            "running" => ReplayStatus::Running,
            "done" => ReplayStatus::Done,
            "failed" => ReplayStatus::Failed,
            "cancelled" => ReplayStatus::Cancelled,
            "interrupted" => ReplayStatus::Interrupted,
            other => return Err(format!("{other:?} is not a replay state")),
        })
    }
}

/// A replay of recorded orders through an uploaded component, as every
/// instance of the deployment sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayJob {
    /// 32 hex digits.
    pub id: String,
    pub slot: Slot,
    /// The candidate's `name@version`.
    pub candidate: String,
    pub sha256: String,
    /// The configuration the candidate runs every order with; null: each
    /// order's recorded configuration.
    pub config: Option<BTreeMap<String, String>>,
    /// Orders placed since this time are replayed.
    pub since: DateTime<Utc>,
    pub status: ReplayStatus,
    /// Orders recorded since `since` when the replay started (0 before).
    pub total: i64,
    /// Orders read so far.
    pub read: i64,
    /// The totals so far; final once `done`.
    pub report: Option<ReplayReport>,
    /// The report as `commerce policy replay` prints it, once `done`.
    pub text: Option<String>,
    /// Why the replay failed or was interrupted.
    pub error: Option<String>,
    /// The instance that runs it (`host:port`).
    pub instance: String,
    /// When that instance last said it was alive.
    pub heartbeat_at: DateTime<Utc>,
    /// When a cancellation was asked for; a running replay stops within a
    /// second of it.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}
