//! Runs a plugin's `cases/*.json` against its implementation on the host
//! target, so `cargo test` catches a wrong case or a wrong policy before the
//! component is built. The server's runner reads the same files.
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

extern crate std;

use std::format;
use std::path::Path;
use std::string::{String, ToString};
use std::vec::Vec;

use serde_json::{Map, Value, json};

use crate::*;

/// A decoded value, or what is wrong with the case.
pub type Outcome<T> = Result<T, String>;

pub(crate) fn print_log(level: LogLevel, message: &str) {
    std::eprintln!("[{level:?}] {message}");
}

/// Checks every case of a `pricing` plugin.
pub fn pricing_cases<P: Pricing>(crate_dir: &str) {
    run_cases(crate_dir, "pricing", |call, input| match call {
        "price" => Ok(P::price(pricing_input(input)?)
            .iter()
            .map(line_price)
            .collect()),
        _ => Err(format!("`{call}` is not a pricing call")),
    });
}

/// Checks every case of a `coupon` plugin.
pub fn coupon_cases<C: Coupon>(crate_dir: &str) {
    run_cases(crate_dir, "coupon", |call, input| match call {
        "apply" => Ok(result(C::apply(apply_input(input)?).map(Value::from))),
        "can_issue" => Ok(result(
            C::can_issue(issue_input(input)?).map(|()| Value::Null),
        )),
        _ => Err(format!("`{call}` is not a coupon call")),
    });
}

/// Checks every case of an `order_rules` plugin.
pub fn order_rules_cases<R: OrderRules>(crate_dir: &str) {
    run_cases(crate_dir, "order_rules", |call, input| match call {
        "check" => Ok(R::check(order_input(input)?)
            .iter()
            .map(violation)
            .collect()),
        _ => Err(format!("`{call}` is not an order_rules call")),
    });
}

/// Runs every `cases/*.json` of the crate at `crate_dir` through `run` and
/// compares its answer with the case's `expected`.
pub fn run_cases(crate_dir: &str, slot: &str, run: impl Fn(&str, &Value) -> Outcome<Value>) {
    let dir = Path::new(crate_dir).join("cases");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no cases in {}", dir.display());

    let check = |path: &Path| -> Outcome<()> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let case: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let case_slot = string(&case, "slot")?;
        if case_slot != slot {
            return Err(format!(
                "slot is `{case_slot}`, this plugin serves `{slot}`"
            ));
        }
        let actual = run(&string(&case, "call")?, field(&case, "input")?)?;
        let expected = field(&case, "expected")?;
        if &actual == expected {
            Ok(())
        } else {
            Err(format!("\n  expected {expected}\n       got {actual}"))
        }
    };
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|path| {
            check(path)
                .err()
                .map(|e| format!("{}: {e}", path.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}

// Decoding: every missing or mistyped field names itself. Public for the
// 1.1.0 SDK's cases, which decode what 1.0.0 has with these.

pub fn field<'a>(v: &'a Value, key: &str) -> Outcome<&'a Value> {
    v.get(key).ok_or_else(|| format!("missing field `{key}`"))
}

pub fn int(v: &Value, key: &str) -> Outcome<i64> {
    field(v, key)?
        .as_i64()
        .ok_or_else(|| format!("`{key}` is not an integer"))
}

pub fn uint(v: &Value, key: &str) -> Outcome<u64> {
    field(v, key)?
        .as_u64()
        .ok_or_else(|| format!("`{key}` is not an unsigned integer"))
}

pub fn uint32(v: &Value, key: &str) -> Outcome<u32> {
    u32::try_from(uint(v, key)?).map_err(|_| format!("`{key}` does not fit in u32"))
}

pub fn string(v: &Value, key: &str) -> Outcome<String> {
    Ok(field(v, key)?
        .as_str()
        .ok_or_else(|| format!("`{key}` is not a string"))?
        .into())
}

pub fn list<T>(v: &Value, key: &str, item: fn(&Value) -> Outcome<T>) -> Outcome<Vec<T>> {
    let items = field(v, key)?
        .as_array()
        .ok_or_else(|| format!("`{key}` is not an array"))?;
    items.iter().map(item).collect()
}

pub fn line(v: &Value) -> Outcome<Line> {
    Ok(Line {
        product_id: uint(v, "product_id")?,
        name: string(v, "name")?,
        category: string(v, "category")?,
        unit_price: int(v, "unit_price")?,
        quantity: uint32(v, "quantity")?,
    })
}

pub fn priced_line(v: &Value) -> Outcome<PricedLine> {
    Ok(PricedLine {
        product_id: uint(v, "product_id")?,
        name: string(v, "name")?,
        category: string(v, "category")?,
        unit_price: int(v, "unit_price")?,
        quantity: uint32(v, "quantity")?,
        discount: int(v, "discount")?,
        line_total: int(v, "line_total")?,
    })
}

pub fn user(v: &Value) -> Outcome<UserFacts> {
    let v = field(v, "user")?;
    Ok(UserFacts {
        id: uint(v, "id")?,
        created_at: int(v, "created_at")?,
        paid_orders: uint32(v, "paid_orders")?,
    })
}

pub fn coupon_terms(v: &Value) -> Outcome<CouponTerms> {
    Ok(CouponTerms {
        coupon_id: uint(v, "coupon_id")?,
        name: string(v, "name")?,
        kind: match string(v, "kind")?.as_str() {
            "fixed" => DiscountKind::Fixed,
            "percent" => DiscountKind::Percent,
            other => return Err(format!("`kind` is `{other}`, not fixed or percent")),
        },
        value: int(v, "value")?,
        max_amount: match field(v, "max_amount")? {
            Value::Null => None,
            _ => Some(int(v, "max_amount")?),
        },
        min_order_amount: int(v, "min_order_amount")?,
        valid_from: int(v, "valid_from")?,
        valid_until: int(v, "valid_until")?,
    })
}

pub fn config(v: &Value) -> Outcome<Config> {
    let object = field(v, "config")?
        .as_object()
        .ok_or("`config` is not an object")?;
    object
        .iter()
        .map(|(key, value)| match value.as_str() {
            Some(value) => Ok((key.clone(), value.into())),
            None => Err(format!("config `{key}` is not a string")),
        })
        .collect()
}

fn pricing_input(v: &Value) -> Outcome<PricingInput> {
    Ok(PricingInput {
        lines: list(v, "lines", line)?,
        user: user(v)?,
        now: int(v, "now")?,
        config: config(v)?,
    })
}

fn apply_input(v: &Value) -> Outcome<ApplyInput> {
    Ok(ApplyInput {
        lines: list(v, "lines", priced_line)?,
        subtotal: int(v, "subtotal")?,
        user: user(v)?,
        coupon: coupon_terms(field(v, "coupon")?)?,
        now: int(v, "now")?,
        config: config(v)?,
    })
}

fn issue_input(v: &Value) -> Outcome<IssueInput> {
    Ok(IssueInput {
        user: user(v)?,
        coupon: coupon_terms(field(v, "coupon")?)?,
        now: int(v, "now")?,
        config: config(v)?,
    })
}

fn order_input(v: &Value) -> Outcome<OrderInput> {
    Ok(OrderInput {
        lines: list(v, "lines", priced_line)?,
        subtotal: int(v, "subtotal")?,
        coupon_discount: int(v, "coupon_discount")?,
        total: int(v, "total")?,
        user: user(v)?,
        coupon: match field(v, "coupon")? {
            Value::Null => None,
            terms => Some(coupon_terms(terms)?),
        },
        now: int(v, "now")?,
        config: config(v)?,
    })
}

// Encoding: the shapes `expected` is written in.

fn line_price(p: &LinePrice) -> Value {
    json!({"product_id": p.product_id, "unit_price": p.unit_price, "discount": p.discount, "reason": p.reason})
}

fn violation(v: &Violation) -> Value {
    json!({"code": v.code, "message": v.message})
}

pub fn result(r: Result<Value, String>) -> Value {
    let mut object = Map::new();
    match r {
        Ok(value) => object.insert("ok".into(), value),
        Err(reason) => object.insert("err".into(), reason.into()),
    };
    Value::Object(object)
}
