//! Shadow evaluation: a candidate component runs beside a slot's active
//! version on every evaluation of the slot, on the same input, and is never
//! applied. This file is the queue that runs candidates and the tally of
//! what they did; starting and stopping shadows is a command of the
//! deployment (`crate::deployment`), which also keeps their rows.
//!
//! The active version answers the request first; its input and answer are
//! then handed to a bounded queue that one thread per instance drains, so
//! the candidate costs the request one clone and a `try_send`. A full queue
//! drops the work and counts the drop. Each candidate call gets a fresh store
//! and its own fuel budget, like any policy call; whatever it does, the
//! request has already been answered. A candidate given its own
//! configuration runs with it; otherwise with the active version's, as the
//! input carries it.
//!
//! Outcomes are tallied in memory and added to the deployment's totals in
//! PostgreSQL every second (and before a report is read), with the newest
//! divergences: PostgreSQL keeps the last [`EXAMPLES_KEPT`] of all instances.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError},
    },
};

use std::collections::BTreeMap;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    LoadedPolicy, PolicyError, Slot,
    call::{Call, Output},
    lock,
    metadata::ConfigKey,
};
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
    /// Its own configuration: `candidate.config`, used instead of the
    /// active version's. `false`: it runs with the active version's.
    pub own_config: bool,
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

    pub(crate) fn install(&self, shadow: Option<Arc<Shadow>>) {
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
            mut call,
            active,
        } = self;
        let input = call.input_json();
        if shadow.own_config {
            *call.config_mut() = shadow.candidate.config.clone();
        }
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
            input,
            active_output: active.to_json(),
            candidate_output,
            candidate_error,
            at: Utc::now(),
        });
    }
}

/// Divergences the deployment keeps per shadow, newest first.
pub const EXAMPLES_KEPT: usize = 20;

/// Outcomes one instance adds to a shadow's totals.
#[derive(Debug, Default)]
pub struct Counts {
    pub evaluated: i64,
    pub diverged: i64,
    pub failed: i64,
    pub dropped: i64,
}

/// Counts added since the last flush, and the newest examples.
pub struct Outcomes {
    pub counts: Counts,
    pub examples: Vec<Example>,
}

impl Tally {
    fn keep(&self, example: Example) {
        let mut examples = lock(&self.examples);
        if examples.len() == EXAMPLES_KEPT {
            examples.pop_front();
        }
        examples.push_back(example);
    }

    fn take(&self) -> Outcomes {
        let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed) as i64;
        Outcomes {
            counts: Counts {
                evaluated: take(&self.evaluated),
                diverged: take(&self.diverged),
                failed: take(&self.failed),
                dropped: take(&self.dropped),
            },
            examples: lock(&self.examples).drain(..).collect(),
        }
    }

    /// Puts back what a failed flush took, for the next one.
    fn restore(&self, taken: Outcomes) {
        let add = |counter: &AtomicU64, n: i64| counter.fetch_add(n as u64, Ordering::Relaxed);
        add(&self.evaluated, taken.counts.evaluated);
        add(&self.diverged, taken.counts.diverged);
        add(&self.failed, taken.counts.failed);
        add(&self.dropped, taken.counts.dropped);
        let mut examples = lock(&self.examples);
        for example in taken.examples.into_iter().rev() {
            if examples.len() < EXAMPLES_KEPT {
                examples.push_front(example);
            }
        }
    }
}

impl Outcomes {
    fn is_empty(&self) -> bool {
        self.counts.evaluated == 0 && self.counts.dropped == 0 && self.examples.is_empty()
    }
}

impl Shadow {
    /// A candidate with its own configuration (`own_config`), or running
    /// with the active version's.
    pub fn new(
        id: i64,
        candidate: Arc<LoadedPolicy>,
        own_config: bool,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            own_config,
            candidate,
            started_at,
            tally: Tally::default(),
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(
            "policy_shadow_evaluations_total",
            "slot" => self.candidate.info.slot.as_str(),
            "candidate" => self.candidate.label(),
            "outcome" => outcome,
        )
        .increment(1);
    }

    /// This instance's tally since the last call, emptied; `None` when
    /// nothing happened. What cannot be written is handed back with
    /// [`Shadow::put_back`].
    pub fn take_outcomes(&self) -> Option<Outcomes> {
        let taken = self.tally.take();
        (!taken.is_empty()).then_some(taken)
    }

    /// Puts back outcomes that could not be written, for the next flush.
    pub fn put_back(&self, outcomes: Outcomes) {
        self.tally.restore(outcomes);
    }
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
    /// The configuration it runs with: its own, or (`own_config` false) the
    /// active version's.
    pub config: BTreeMap<String, String>,
    pub own_config: bool,
    /// The configuration keys the candidate declares.
    pub config_keys: Option<Vec<ConfigKey>>,
    /// Declared keys its configuration does not set: it runs with their defaults.
    pub missing_config_keys: Vec<String>,
    /// Says so in a sentence, when some are missing.
    pub note: Option<String>,
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
    /// When the shadow stopped itself because its candidate failed nearly
    /// always; `null` while it runs.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Why it stopped, in a sentence.
    pub stopped_reason: Option<String>,
    /// The configuration the candidate ran with: its own, or (`own_config`
    /// false) the active version's.
    pub config: BTreeMap<String, String>,
    pub own_config: bool,
    /// Keys the candidate declares that this configuration does not set: it
    /// ran with their defaults, so "no divergence" may mean "not configured".
    pub missing_config_keys: Vec<String>,
    /// Says so in a sentence, when some are missing.
    pub note: Option<String>,
    /// The last divergences and failures, newest first. `input` is the call
    /// as the active version received it (its configuration included).
    pub examples: Vec<Example>,
}
