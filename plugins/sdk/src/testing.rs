//! Runs a plugin's `cases/*.json` against its implementation on the host
//! target, so `cargo test` catches a wrong case or a wrong policy before the
//! component is built. The server's runner reads the same files with the same
//! codec (`commerce-policy-cases`): inputs decode with serde into this SDK's
//! own types, so a 1.0.0 plugin's cases hold 1.0.0 inputs and a 1.1.0
//! plugin's hold 1.1.0 inputs. The 1.1.0 SDK includes this same file.
//!
//! ```ignore
//! #[cfg(test)]
//! #[test]
//! fn cases() {
//!     commerce_policy_sdk::testing::pricing_cases::<Bulk>(env!("CARGO_MANIFEST_DIR"));
//! }
//! ```
//!
//! A case is `{"slot", "call", "input", "expected"}`: field names are the WIT
//! names with `-` → `_`, enums are lowercase strings, an option is `null` or its
//! value, the config is an object of strings, a result is `{"ok": v}` or
//! `{"err": "REASON"}`, times are unix seconds.
//!
//! Each run prints a pass/fail line per case and how many ran, straight to
//! the terminal: `cargo test` counts one test, however many cases it holds.

extern crate std;

use std::format;
use std::io::Write;
use std::path::Path;
use std::string::String;

use commerce_policy_cases::{Case, Summary, decode, encode, files};
use serde_json::Value;

use crate::{Coupon, OrderRules, Pricing};

/// Checks every case of a `pricing` plugin.
pub fn pricing_cases<P: Pricing>(crate_dir: &str) {
    run_cases(crate_dir, "pricing", |call, input| match call {
        "price" => Ok(encode(&P::price(decode(input)?))),
        _ => Err(format!("`{call}` is not a pricing call")),
    });
}

/// Checks every case of a `coupon` plugin.
pub fn coupon_cases<C: Coupon>(crate_dir: &str) {
    run_cases(crate_dir, "coupon", |call, input| match call {
        "apply" => Ok(encode(&C::apply(decode(input)?))),
        "can_issue" => Ok(encode(&C::can_issue(decode(input)?))),
        _ => Err(format!("`{call}` is not a coupon call")),
    });
}

/// Checks every case of an `order_rules` plugin.
pub fn order_rules_cases<R: OrderRules>(crate_dir: &str) {
    run_cases(crate_dir, "order_rules", |call, input| match call {
        "check" => Ok(encode(&R::check(decode(input)?))),
        _ => Err(format!("`{call}` is not an order_rules call")),
    });
}

/// Runs every `cases/*.json` of the crate at `crate_dir` through `run`,
/// compares each answer with the case's `expected`, prints the table and
/// fails when any case does.
pub fn run_cases(crate_dir: &str, slot: &str, run: impl Fn(&str, &Value) -> Result<Value, String>) {
    let dir = Path::new(crate_dir).join("cases");
    let paths = files(&dir).unwrap_or_else(|err| panic!("{err}"));
    let summary = Summary::run(&paths, |case: &Case| {
        if case.slot != slot {
            return Err(format!(
                "slot is `{}`, this plugin serves `{slot}`",
                case.slot
            ));
        }
        let output = run(&case.call, &case.input).map_err(|err| format!("{}: {err}", case.call))?;
        Ok((output, None, None))
    });
    // Past the test harness's capture, which would hide it on success.
    let _ = writeln!(std::io::stderr(), "{}\n{summary}", dir.display());
    let failed: String = summary
        .rows
        .iter()
        .filter_map(|row| {
            row.outcome
                .as_ref()
                .err()
                .map(|why| format!("\n{}: {why}", row.name))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:{failed}",
        summary.failed(),
        summary.rows.len()
    );
}
