//! Replaying recorded orders through a candidate: what would have differed,
//! and by how much money, had the candidate served the slot.
//!
//! Each order placed within the retention window kept the exact inputs its
//! policies were asked (see [`super::recorded`]). The candidate answers each
//! order's input of the slot, with the engine and limits the server uses,
//! and its answer is compared with what the order came to:
//! - `pricing`: the lines' totals; the money is the sum over orders of
//!   |candidate subtotal − recorded subtotal|;
//! - `coupon` (orders with a coupon): the discount; a refusal is a flip and
//!   differs by the whole recorded discount;
//! - `order_rules`: every recorded order was accepted, so any violation is a
//!   flip from accepted to rejected.

use std::{fmt, sync::Arc};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{
    LoadedPolicy, PolicyError, Slot,
    bindings::Config,
    call::{Call, Output},
    metadata,
    recorded::{self, RecordedOrder},
};

/// Orders read at a time.
const PAGE: i64 = 500;
/// The longest a slice of policy calls runs before progress is told: a slow
/// candidate (up to a quarter of a second per call) is followed, and can be
/// stopped, between slices rather than between pages.
const SLICE: std::time::Duration = std::time::Duration::from_millis(100);
/// Differing orders the report shows.
pub const EXAMPLES: usize = 10;

/// What a replay found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplayReport {
    pub slot: Slot,
    /// The candidate's `name@version`.
    pub candidate: String,
    /// The contract version the candidate was built against.
    pub contract: String,
    pub since: DateTime<Utc>,
    /// Orders whose input of the slot the candidate answered (for `coupon`,
    /// orders that used one).
    pub replayed: u64,
    /// ... whose outcome the candidate would have changed (failures included).
    pub differ: u64,
    /// ... in which the candidate failed or answered invalidly.
    pub failed: u64,
    /// Won: the sum over orders of |candidate − recorded|.
    pub money: i64,
    /// Orders the candidate would have refused: a coupon it does not apply,
    /// or order rules it says are broken.
    pub flips: u64,
    /// The configuration given for the candidate; `None`: each order's own.
    pub config: Option<std::collections::BTreeMap<String, String>>,
    /// Names the declared keys that configuration leaves at their defaults.
    pub note: Option<String>,
    /// The first differing orders, in id order.
    pub examples: Vec<ReplayExample>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplayExample {
    pub order_id: i64,
    pub created_at: DateTime<Utc>,
    /// What the order came to.
    #[schema(value_type = Object)]
    pub recorded: Value,
    /// The candidate's answer, or `{"failed": reason}`.
    #[schema(value_type = Object)]
    pub candidate: Value,
    /// Won, candidate minus recorded.
    pub difference: i64,
}

/// How one order compares.
struct Verdict {
    differs: bool,
    failed: bool,
    flip: bool,
    difference: i64,
    recorded: Value,
    candidate: Value,
}

/// Replays every order placed since `since` through `candidate`, each with
/// the configuration the order was priced with.
pub async fn replay(
    db: &PgPool,
    candidate: Arc<LoadedPolicy>,
    since: DateTime<Utc>,
) -> anyhow::Result<ReplayReport> {
    replay_with(db, candidate, since, None, |_, _| {}).await
}

/// As [`replay`]; with `config`, the candidate runs every order with it
/// instead of the recorded configuration. `progress` is told, after each
/// slice of at most [`SLICE`] of policy calls, how many recorded orders were
/// replayed so far and what the report holds, for long runs. Dropping the
/// future stops the replay once the slice under way ends.
pub async fn replay_with(
    db: &PgPool,
    candidate: Arc<LoadedPolicy>,
    since: DateTime<Utc>,
    config: Option<Config>,
    mut progress: impl FnMut(u64, &ReplayReport),
) -> anyhow::Result<ReplayReport> {
    let slot = candidate.info.slot;
    let note = config.as_ref().and_then(|config| {
        metadata::missing_note(&metadata::missing(
            candidate.info.config_keys.as_deref(),
            config,
        ))
    });
    let mut report = ReplayReport {
        slot,
        candidate: candidate.label(),
        contract: candidate.info.contract.clone(),
        since,
        replayed: 0,
        differ: 0,
        failed: 0,
        money: 0,
        flips: 0,
        config: config.as_ref().map(metadata::to_object),
        note,
        examples: Vec::new(),
    };
    let mut after = 0;
    let mut read = 0;
    loop {
        let mut orders = recorded::page(db, since, after, PAGE).await?;
        let Some(last) = orders.last() else {
            return Ok(report);
        };
        after = last.order_id;
        while !orders.is_empty() {
            let policy = candidate.clone();
            let config = config.clone();
            // Policy calls are CPU work: off the async workers.
            let slice =
                tokio::task::spawn_blocking(move || judge_slice(&policy, orders, config.as_ref()))
                    .await?;
            read += slice.judged.len() as u64;
            for (order, verdict) in slice.judged {
                if let Some(verdict) = verdict {
                    report.add(&order, verdict);
                }
            }
            progress(read, &report);
            orders = slice.rest;
        }
    }
}

/// What one slice of a page came to.
struct Slice {
    /// The orders judged, each with its verdict (`None`: it never asked the
    /// slot).
    judged: Vec<(RecordedOrder, Option<Verdict>)>,
    /// The page's orders left for the next slice.
    rest: Vec<RecordedOrder>,
}

/// Judges `orders` in order for at most [`SLICE`].
fn judge_slice(
    candidate: &LoadedPolicy,
    orders: Vec<RecordedOrder>,
    config: Option<&Config>,
) -> Slice {
    let started = std::time::Instant::now();
    let mut orders = orders.into_iter();
    let mut judged = Vec::new();
    for order in orders.by_ref() {
        let verdict = judge(candidate, &order, config);
        judged.push((order, verdict));
        if started.elapsed() >= SLICE {
            break;
        }
    }
    Slice {
        judged,
        rest: orders.collect(),
    }
}

impl ReplayReport {
    fn add(&mut self, order: &RecordedOrder, verdict: Verdict) {
        self.replayed += 1;
        if !verdict.differs {
            return;
        }
        self.differ += 1;
        self.failed += u64::from(verdict.failed);
        self.flips += u64::from(verdict.flip);
        self.money += verdict.difference.abs();
        if self.examples.len() < EXAMPLES {
            self.examples.push(ReplayExample {
                order_id: order.order_id,
                created_at: order.created_at,
                recorded: verdict.recorded,
                candidate: verdict.candidate,
                difference: verdict.difference,
            });
        }
    }
}

/// The candidate's verdict on one order; `None` when the order never asked
/// the slot (no coupon).
fn judge(
    candidate: &LoadedPolicy,
    order: &RecordedOrder,
    config: Option<&Config>,
) -> Option<Verdict> {
    let inputs = &order.inputs;
    let mut call = match candidate.info.slot {
        Slot::Pricing => Call::Price(inputs.pricing.clone()),
        Slot::Coupon => Call::Apply(inputs.coupon.clone()?),
        Slot::OrderRules => Call::Check(inputs.order_rules.clone()),
    };
    if let Some(config) = config {
        *call.config_mut() = config.clone();
    }
    let recorded = match candidate.info.slot {
        Slot::Pricing => json!({ "line_totals": order.line_totals, "subtotal": order.subtotal }),
        Slot::Coupon => json!({ "discount": order.discount }),
        Slot::OrderRules => json!({ "violations": [] }),
    };
    let failure = |reason: String, difference: i64| Verdict {
        differs: true,
        failed: true,
        flip: false,
        difference,
        recorded: recorded.clone(),
        candidate: json!({ "failed": reason }),
    };
    let output = match candidate.evaluate(&call) {
        Ok((output, _)) => output,
        Err(PolicyError::Unavailable { reason, .. }) => return Some(failure(reason, 0)),
        Err(err) => return Some(failure(err.to_string(), 0)),
    };
    Some(match (&call, output) {
        (Call::Price(input), Output::Prices(prices)) => {
            let totals: Option<Vec<i64>> = (prices.len() == input.lines.len())
                .then(|| {
                    input
                        .lines
                        .iter()
                        .zip(&prices)
                        .map(|(line, price)| {
                            price
                                .unit_price
                                .checked_mul(i64::from(line.quantity))
                                .map(|gross| gross - price.discount)
                        })
                        .collect()
                })
                .flatten();
            let Some(totals) = totals else {
                return Some(failure("answered invalidly".to_owned(), 0));
            };
            let subtotal: i64 = totals.iter().sum();
            Verdict {
                differs: totals != order.line_totals,
                failed: false,
                flip: false,
                difference: subtotal - order.subtotal,
                recorded,
                candidate: json!({ "line_totals": totals, "subtotal": subtotal }),
            }
        }
        (Call::Apply(_), Output::Applied(Ok(amount))) => Verdict {
            differs: amount != order.discount,
            failed: false,
            flip: false,
            difference: amount - order.discount,
            recorded,
            candidate: json!({ "discount": amount }),
        },
        (Call::Apply(_), Output::Applied(Err(reason))) => Verdict {
            differs: true,
            failed: false,
            flip: true,
            difference: -order.discount,
            recorded,
            candidate: json!({ "refused": reason }),
        },
        (Call::Check(_), Output::Violations(violations)) => Verdict {
            differs: !violations.is_empty(),
            failed: false,
            flip: !violations.is_empty(),
            difference: 0,
            recorded,
            candidate: Output::Violations(violations).to_json(),
        },
        _ => failure("answered a different call".to_owned(), 0),
    })
}

/// `24h`, `30m`, `7d`, `90s` before now, or an RFC 3339 time. Never a time
/// before the year 1: further back than any stored order, and than
/// PostgreSQL's timestamps go.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    let too_far = || format!("{text:?} reaches further back than dates go");
    let earliest = DateTime::<Utc>::from_timestamp(EARLIEST_SECONDS, 0).ok_or_else(too_far)?;
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        let at = at.with_timezone(&Utc);
        return if at < earliest {
            Err(too_far())
        } else {
            Ok(at)
        };
    }
    let text = text.trim();
    let unit = text
        .chars()
        .last()
        .ok_or("give a duration such as 24h, or an RFC 3339 time")?;
    let count: i64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 24h, 30m, 7d or 90s"))?;
    if count < 0 {
        return Err(format!(
            "{text:?} is not a duration such as 24h, 30m, 7d or 90s"
        ));
    }
    // Every step is checked: a count too large for a duration, or a
    // duration reaching before the earliest date, is refused, never a panic.
    let ago = match unit {
        's' => Duration::try_seconds(count),
        'm' => Duration::try_minutes(count),
        'h' => Duration::try_hours(count),
        'd' => Duration::try_days(count),
        _ => {
            return Err(format!(
                "{text:?} is not a duration such as 24h, 30m, 7d or 90s"
            ));
        }
    }
    .ok_or_else(too_far)?;
    Utc::now()
        .checked_sub_signed(ago)
        .filter(|at| *at >= earliest)
        .ok_or_else(too_far)
}

/// 0001-01-01T00:00:00Z, in seconds from the Unix epoch.
const EARLIEST_SECONDS: i64 = -62_135_596_800;

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.slot {
            Slot::Coupon => "orders with a coupon",
            _ => "orders",
        };
        writeln!(
            f,
            "replayed {} {what} placed since {} through {} (commerce:policy@{}) in the {} slot",
            self.replayed,
            self.since.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.candidate,
            self.contract,
            self.slot
        )?;
        match &self.config {
            Some(config) => writeln!(
                f,
                "the candidate ran with the configuration {}",
                serde_json::to_string(config).unwrap_or_default()
            )?,
            None => writeln!(
                f,
                "the candidate ran with each order's recorded configuration"
            )?,
        }
        if let Some(note) = &self.note {
            writeln!(f, "note: {note}")?;
        }
        let share = if self.replayed == 0 {
            0.0
        } else {
            self.differ as f64 * 100.0 / self.replayed as f64
        };
        let money = match self.slot {
            Slot::Pricing => "the sum over orders of |candidate - recorded| lines' total",
            Slot::Coupon => "the sum over orders of |candidate - recorded| discount",
            Slot::OrderRules => "order rules move no money",
        };
        writeln!(
            f,
            "differ: {} ({share:.1}%), by {} won in total ({money})",
            self.differ, self.money
        )?;
        match self.slot {
            Slot::Coupon => writeln!(f, "coupons the candidate would refuse: {}", self.flips)?,
            Slot::OrderRules => writeln!(f, "accepted orders it would reject: {}", self.flips)?,
            Slot::Pricing => {}
        }
        writeln!(f, "candidate failures: {}", self.failed)?;
        if !self.examples.is_empty() {
            writeln!(f, "first examples:")?;
        }
        for example in &self.examples {
            writeln!(
                f,
                "  order {} ({}): recorded {}, candidate {} ({:+} won)",
                example.order_id,
                example
                    .created_at
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
                example.recorded,
                example.candidate,
                example.difference
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_count_back_from_now() {
        let since = parse_since("24h").expect("a duration");
        let ago = Utc::now() - since;
        assert!(ago >= Duration::hours(24) && ago < Duration::hours(24) + Duration::minutes(1));
        assert!(parse_since("7d").is_ok() && parse_since("90s").is_ok());
    }

    #[test]
    fn a_time_is_taken_as_it_is() {
        let since = parse_since("2026-11-25T00:00:00Z").expect("a time");
        assert_eq!(since.to_rfc3339(), "2026-11-25T00:00:00+00:00");
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "h",
            "24",
            "24x",
            "yesterday",
            "-5d",
            "1.5h",
            "99999999999999999999h",
        ] {
            assert!(parse_since(text).is_err(), "{text}");
        }
    }

    #[test]
    fn durations_too_long_for_any_date_are_refused() {
        for text in [
            "100000000000d",
            "3000000d",
            "9223372036854775807s",
            "9223372036854775807d",
            "0000-01-01T00:00:00Z",
        ] {
            let refused = parse_since(text).expect_err(text);
            assert!(refused.contains("further back"), "{text}: {refused}");
        }
        // The year 1 is the earliest accepted.
        assert!(parse_since("0001-01-01T00:00:00Z").is_ok());
        assert!(parse_since("700000d").is_ok());
    }
}
