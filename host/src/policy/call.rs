//! One evaluation of a policy, with its input, and the answer: what the
//! active version serves, what a shadow compares and what a replay re-runs.
//!
//! Both are JSON as case files write them (the case codec,
//! `commerce-policy-cases`), so a shadow's example is a case `commerce
//! policy run` can take.

use commerce_policy_cases::{encode, readable};
use serde_json::Value;

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

    /// The input as a case file writes it (the configuration as an object).
    pub fn input_json(&self) -> Value {
        let value = match self {
            Call::Price(input) => serde_json::to_value(input),
            Call::Apply(input) => serde_json::to_value(input),
            Call::CanIssue(input) => serde_json::to_value(input),
            Call::Check(input) => serde_json::to_value(input),
        };
        // Plain records of numbers and strings always serialize.
        readable(value.unwrap_or(Value::Null))
    }
}

impl Output {
    /// The answer as a case's `expected` writes it.
    pub fn to_json(&self) -> Value {
        match self {
            Output::Prices(prices) => encode(prices),
            Output::Applied(decision) => encode(decision),
            Output::Issuable(decision) => encode(decision),
            Output::Violations(violations) => encode(violations),
        }
    }
}
