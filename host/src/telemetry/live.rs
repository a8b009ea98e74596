//! The console's live counters, folded from the text `/metrics` renders:
//! the same numbers Prometheus scrapes, so the two never disagree.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// This instance's counters since it started, for the console's live
/// charts: a client takes the difference between two reads.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LiveStats {
    /// When the counters were read.
    at: DateTime<Utc>,
    /// Policy calls by slot and version, every function together.
    policy_calls: Vec<PolicyCalls>,
    /// Orders by what happened to them: `placed`, `paid`, `cancelled`,
    /// `expired`, `out_of_stock` (refused).
    orders: BTreeMap<String, u64>,
    /// Coupon issuance answers by outcome: `issued`, `sold_out`,
    /// `already_issued`, `not_eligible`, `not_active`, ...
    coupons: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct PolicyCalls {
    slot: String,
    /// `name@version`.
    policy: String,
    calls: u64,
    failed: u64,
    /// Time spent in the calls, in seconds.
    seconds: f64,
    /// Cumulative latency buckets: calls that took at most `le` seconds.
    buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bucket {
    le: f64,
    count: u64,
}

/// One sample of the Prometheus text exposition: name, labels, value.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Sample<'_> {
    fn label(&self, key: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Parses one line of the text exposition; comments and blanks are `None`.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, mut rest) = line.split_at(line.find(['{', ' '])?);
    let mut labels = Vec::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.trim_start_matches([',', ' ']);
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = body.split_once("=\"")?;
            let (value, after) = quoted(after)?;
            labels.push((key, value));
            body = after;
        }
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A label value up to its closing quote, unescaped (`\\`, `\"`, `\n`),
/// and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// The slot and version a policy metric is labelled with.
fn policy_key(sample: &Sample<'_>) -> (String, String) {
    (
        sample.label("slot").to_owned(),
        sample.label("policy").to_owned(),
    )
}

/// The counters of the version a policy metric is labelled with.
fn version<'m>(
    calls: &'m mut BTreeMap<(String, String), PolicyCalls>,
    sample: &Sample<'_>,
) -> &'m mut PolicyCalls {
    let (slot, policy) = policy_key(sample);
    calls
        .entry((slot.clone(), policy.clone()))
        .or_insert_with(|| PolicyCalls {
            slot,
            policy,
            ..PolicyCalls::default()
        })
}

/// Folds the text exposition into the console's counters.
pub(crate) fn stats_from(text: &str) -> LiveStats {
    let mut stats = LiveStats {
        at: Utc::now(),
        ..LiveStats::default()
    };
    let mut calls: BTreeMap<(String, String), PolicyCalls> = BTreeMap::new();
    // Per version, bucket bound (by its bits) -> (bound, count), every function summed.
    let mut buckets: HashMap<(String, String), BTreeMap<u64, (f64, u64)>> = HashMap::new();
    for sample in text.lines().filter_map(parse_sample) {
        let count = if sample.value.is_finite() && sample.value > 0.0 {
            sample.value as u64
        } else {
            0
        };
        match sample.name {
            "policy_call_duration_seconds_count" => version(&mut calls, &sample).calls += count,
            "policy_call_duration_seconds_sum" => {
                version(&mut calls, &sample).seconds += sample.value;
            }
            "policy_calls_total" if sample.label("outcome") == "failed" => {
                version(&mut calls, &sample).failed += count;
            }
            "policy_call_duration_seconds_bucket" => {
                // `+Inf` is the count.
                if let Ok(le) = sample.label("le").parse::<f64>()
                    && le.is_finite()
                {
                    let bucket = buckets
                        .entry(policy_key(&sample))
                        .or_default()
                        .entry(le.to_bits())
                        .or_insert((le, 0));
                    bucket.1 += count;
                }
            }
            "coupon_issue_total" => {
                *stats
                    .coupons
                    .entry(sample.label("outcome").to_owned())
                    .or_default() += count;
            }
            name => {
                if let Some(what) = name
                    .strip_prefix("orders_")
                    .and_then(|rest| rest.strip_suffix("_total"))
                {
                    *stats.orders.entry(what.to_owned()).or_default() += count;
                }
            }
        }
    }
    for (key, call) in &mut calls {
        let mut bounds: Vec<(f64, u64)> = buckets
            .remove(key)
            .unwrap_or_default()
            .into_values()
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        call.buckets = bounds
            .into_iter()
            .map(|(le, count)| Bucket { le, count })
            .collect();
    }
    stats.policy_calls = calls.into_values().collect();
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE orders_placed_total counter
orders_placed_total 12
orders_paid_total 7
coupon_issue_total{coupon="1",strategy="reserve",outcome="issued"} 3
coupon_issue_total{coupon="2",strategy="reserve",outcome="issued"} 2
coupon_issue_total{coupon="1",strategy="reserve",outcome="sold_out"} 9
policy_calls_total{slot="pricing",policy="pricing-bulk@0.1.0",function="price",outcome="failed"} 1
policy_call_duration_seconds_bucket{slot="pricing",policy="pricing-bulk@0.1.0",function="price",le="0.001"} 4
policy_call_duration_seconds_bucket{slot="pricing",policy="pricing-bulk@0.1.0",function="price",le="+Inf"} 5
policy_call_duration_seconds_sum{slot="pricing",policy="pricing-bulk@0.1.0",function="price"} 0.0125
policy_call_duration_seconds_count{slot="pricing",policy="pricing-bulk@0.1.0",function="price"} 5
policy_call_duration_seconds_count{slot="coupon",policy="a \"quoted\" name@1",function="apply"} 2
"#;

    #[test]
    fn counters_fold_by_what_the_console_charts() {
        let stats = stats_from(TEXT);
        assert_eq!(stats.orders["placed"], 12);
        assert_eq!(stats.orders["paid"], 7);
        assert_eq!(stats.coupons["issued"], 5);
        assert_eq!(stats.coupons["sold_out"], 9);
        let pricing = stats
            .policy_calls
            .iter()
            .find(|c| c.slot == "pricing")
            .expect("pricing calls");
        assert_eq!((pricing.calls, pricing.failed), (5, 1));
        assert!((pricing.seconds - 0.0125).abs() < 1e-9);
        assert_eq!(pricing.buckets.len(), 1);
        assert_eq!(
            (pricing.buckets[0].le, pricing.buckets[0].count),
            (0.001, 4)
        );
        let coupon = stats
            .policy_calls
            .iter()
            .find(|c| c.slot == "coupon")
            .expect("coupon calls");
        assert_eq!(coupon.policy, "a \"quoted\" name@1");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for line in ["", "# HELP x", "x{a=\"1\"", "x{a=1} 2", "x notanumber"] {
            assert!(parse_sample(line).is_none(), "{line}");
        }
    }
}
