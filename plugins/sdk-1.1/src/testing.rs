//! Runs a plugin's `cases/*.json` against its implementation on the host
//! target, as the 1.0.0 SDK's `testing` does; 1.1.0 cases write
//! `user.lifetime_spend` too.
//!
//! ```ignore
//! #[cfg(test)]
//! #[test]
//! fn cases() {
//!     commerce_policy_sdk_1_1::testing::pricing_cases::<Loyalty>(env!("CARGO_MANIFEST_DIR"));
//! }
//! ```

extern crate std;

use std::format;
use std::vec::Vec;

use serde_json::{Value, json};

use crate::*;
use commerce_policy_sdk::testing::{self as v1_0, Outcome, field, int, list, result, run_cases};

/// Checks every case of a 1.1.0 `pricing` plugin.
pub fn pricing_cases<P: Pricing>(crate_dir: &str) {
    run_cases(crate_dir, "pricing", |call, input| {
        match call {
        "price" => Ok(P::price(pricing_input(input)?)
            .iter()
            .map(|p| json!({"product_id": p.product_id, "unit_price": p.unit_price, "discount": p.discount, "reason": p.reason}))
            .collect()),
        _ => Err(format!("`{call}` is not a pricing call")),
    }
    });
}

/// Checks every case of a 1.1.0 `coupon` plugin.
pub fn coupon_cases<C: Coupon>(crate_dir: &str) {
    run_cases(crate_dir, "coupon", |call, input| match call {
        "apply" => Ok(result(C::apply(apply_input(input)?).map(Value::from))),
        "can_issue" => Ok(result(
            C::can_issue(issue_input(input)?).map(|()| Value::Null),
        )),
        _ => Err(format!("`{call}` is not a coupon call")),
    });
}

/// Checks every case of a 1.1.0 `order_rules` plugin.
pub fn order_rules_cases<R: OrderRules>(crate_dir: &str) {
    run_cases(crate_dir, "order_rules", |call, input| match call {
        "check" => Ok(R::check(order_input(input)?)
            .iter()
            .map(|v| json!({"code": v.code, "message": v.message}))
            .collect()),
        _ => Err(format!("`{call}` is not an order_rules call")),
    });
}

// Decoding: 1.0.0's decoders, then what 1.1.0 adds.

fn user(v: &Value) -> Outcome<UserFacts> {
    let known = v1_0::user(v)?;
    Ok(UserFacts {
        id: known.id,
        created_at: known.created_at,
        paid_orders: known.paid_orders,
        lifetime_spend: int(field(v, "user")?, "lifetime_spend")?,
    })
}

fn line(v: &Value) -> Outcome<Line> {
    let line = v1_0::line(v)?;
    Ok(Line {
        product_id: line.product_id,
        name: line.name,
        category: line.category,
        unit_price: line.unit_price,
        quantity: line.quantity,
    })
}

fn priced_line(v: &Value) -> Outcome<PricedLine> {
    let line = v1_0::priced_line(v)?;
    Ok(PricedLine {
        product_id: line.product_id,
        name: line.name,
        category: line.category,
        unit_price: line.unit_price,
        quantity: line.quantity,
        discount: line.discount,
        line_total: line.line_total,
    })
}

fn coupon_terms(v: &Value) -> Outcome<CouponTerms> {
    let terms = v1_0::coupon_terms(v)?;
    Ok(CouponTerms {
        coupon_id: terms.coupon_id,
        name: terms.name,
        kind: match terms.kind {
            commerce_policy_sdk::DiscountKind::Fixed => DiscountKind::Fixed,
            commerce_policy_sdk::DiscountKind::Percent => DiscountKind::Percent,
        },
        value: terms.value,
        max_amount: terms.max_amount,
        min_order_amount: terms.min_order_amount,
        valid_from: terms.valid_from,
        valid_until: terms.valid_until,
    })
}

fn pricing_input(v: &Value) -> Outcome<PricingInput> {
    Ok(PricingInput {
        lines: list(v, "lines", line)?,
        user: user(v)?,
        now: int(v, "now")?,
        config: v1_0::config(v)?,
    })
}

fn apply_input(v: &Value) -> Outcome<ApplyInput> {
    Ok(ApplyInput {
        lines: list(v, "lines", priced_line)?,
        subtotal: int(v, "subtotal")?,
        user: user(v)?,
        coupon: coupon_terms(field(v, "coupon")?)?,
        now: int(v, "now")?,
        config: v1_0::config(v)?,
    })
}

fn issue_input(v: &Value) -> Outcome<IssueInput> {
    Ok(IssueInput {
        user: user(v)?,
        coupon: coupon_terms(field(v, "coupon")?)?,
        now: int(v, "now")?,
        config: v1_0::config(v)?,
    })
}

fn order_input(v: &Value) -> Outcome<OrderInput> {
    let lines: Vec<PricedLine> = list(v, "lines", priced_line)?;
    Ok(OrderInput {
        lines,
        subtotal: int(v, "subtotal")?,
        coupon_discount: int(v, "coupon_discount")?,
        total: int(v, "total")?,
        user: user(v)?,
        coupon: match field(v, "coupon")? {
            Value::Null => None,
            terms => Some(coupon_terms(terms)?),
        },
        now: int(v, "now")?,
        config: v1_0::config(v)?,
    })
}
