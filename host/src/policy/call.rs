//! One evaluation of a policy, with its input, and the answer: what the
//! active version serves, what a shadow compares and what a replay re-runs.
//!
//! Both are JSON in the runner's format (records as objects with WIT names,
//! `-` written `_`; a result as `{"ok": ..}` or `{"err": ..}`), so a shadow's
//! example is a case `commerce policy run` can take.

use serde_json::{Value, json};

use super::{
    Slot,
    bindings::{ApplyInput, Config, IssueInput, LinePrice, OrderInput, PricingInput, Violation},
};

/// A call a slot's component answers, with its input.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Price(PricingInput),
    Apply(ApplyInput),
    CanIssue(IssueInput),
    Check(OrderInput),
}

/// A component's answer to a [`Call`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Prices(Vec<LinePrice>),
    Applied(Result<i64, String>),
    Issuable(Result<(), String>),
    Violations(Vec<Violation>),
}

impl Call {
    pub fn slot(&self) -> Slot {
        match self {
            Call::Price(_) => Slot::Pricing,
            Call::Apply(_) | Call::CanIssue(_) => Slot::Coupon,
            Call::Check(_) => Slot::OrderRules,
        }
    }

    /// The function's name as case files write it.
    pub fn function(&self) -> &'static str {
        match self {
            Call::Price(_) => "price",
            Call::Apply(_) => "apply",
            Call::CanIssue(_) => "can_issue",
            Call::Check(_) => "check",
        }
    }

    /// The slot's configuration handed to the policy with this call.
    pub fn config_mut(&mut self) -> &mut Config {
        match self {
            Call::Price(input) => &mut input.config,
            Call::Apply(input) => &mut input.config,
            Call::CanIssue(input) => &mut input.config,
            Call::Check(input) => &mut input.config,
        }
    }

    pub fn input_json(&self) -> Value {
        let value = match self {
            Call::Price(input) => serde_json::to_value(input),
            Call::Apply(input) => serde_json::to_value(input),
            Call::CanIssue(input) => serde_json::to_value(input),
            Call::Check(input) => serde_json::to_value(input),
        };
        // Plain records of numbers and strings always serialize.
        value.unwrap_or(Value::Null)
    }

    /// The call `function` with `input` as [`Call::input_json`] wrote it.
    pub fn from_json(function: &str, input: Value) -> Result<Self, String> {
        let decoded = match function {
            "price" => serde_json::from_value(input).map(Call::Price),
            "apply" => serde_json::from_value(input).map(Call::Apply),
            "can_issue" => serde_json::from_value(input).map(Call::CanIssue),
            "check" => serde_json::from_value(input).map(Call::Check),
            other => return Err(format!("no policy function is named {other:?}")),
        };
        decoded.map_err(|err| format!("{function} input: {err}"))
    }

    /// The call `function` with `input` as a case file writes it, which
    /// [`Call::from_json`] does not read as is: the config may be an object,
    /// an enum may be written in lower case (`"fixed"`), and an input of
    /// contract 1.0.0 has no `lifetime_spend` (taken as 0).
    pub fn from_case(function: &str, mut input: Value) -> Result<Self, String> {
        if let Some(Value::Object(config)) = input.get("config") {
            let pairs = config
                .iter()
                .map(|(key, value)| json!([key, value]))
                .collect();
            input["config"] = Value::Array(pairs);
        }
        if let Some(Value::String(kind)) = input.pointer_mut("/coupon/kind") {
            let mut chars = kind.chars();
            *kind = chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
        }
        if let Some(Value::Object(user)) = input.get_mut("user") {
            user.entry("lifetime_spend").or_insert(json!(0));
        }
        Self::from_json(function, input)
    }
}

impl Output {
    pub fn to_json(&self) -> Value {
        match self {
            Output::Prices(prices) => prices
                .iter()
                .map(|price| {
                    json!({
                        "product_id": price.product_id,
                        "unit_price": price.unit_price,
                        "discount": price.discount,
                        "reason": price.reason,
                    })
                })
                .collect(),
            Output::Applied(Ok(amount)) => json!({ "ok": amount }),
            Output::Issuable(Ok(())) => json!({ "ok": null }),
            Output::Applied(Err(reason)) | Output::Issuable(Err(reason)) => {
                json!({ "err": reason })
            }
            Output::Violations(violations) => violations
                .iter()
                .map(|violation| json!({ "code": violation.code, "message": violation.message }))
                .collect(),
        }
    }
}
