//! `commerce:policy@1.1.0`, the newest version: its types are the host's.
//! New since 1.0.0: `user-facts.lifetime-spend`.
//!
//! The types also derive serde, so recorded inputs and shadow examples are
//! these records as JSON (the runner's format: WIT names with `-` → `_`).

use wasmtime::{
    Store,
    component::{HasSelf, InstancePre, Linker},
};

use crate::policy::{
    Slot,
    call::{Call, Output},
    engine::CallState,
};

pub mod pricing {
    wasmtime::component::bindgen!({
        world: "pricing-policy",
        path: "../wit/commerce-policy@1.1.0",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub mod coupon {
    wasmtime::component::bindgen!({
        world: "coupon-policy",
        path: "../wit/commerce-policy@1.1.0",
        with: {
            "commerce:policy/types": super::pricing::commerce::policy::types,
            "commerce:policy/host": super::pricing::commerce::policy::host,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub mod order_rules {
    wasmtime::component::bindgen!({
        world: "order-rules-policy",
        path: "../wit/commerce-policy@1.1.0",
        with: {
            "commerce:policy/types": super::pricing::commerce::policy::types,
            "commerce:policy/host": super::pricing::commerce::policy::host,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub use coupon::exports::commerce::policy::coupon::{ApplyInput, IssueInput};
pub use order_rules::exports::commerce::policy::order_rules::OrderInput;
pub use pricing::commerce::policy::types::{
    Config, CouponTerms, DiscountKind, Line, LogLevel, PricedLine, UserFacts, Violation,
};
pub use pricing::exports::commerce::policy::pricing::{LinePrice, PricingInput};

impl pricing::commerce::policy::host::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.record_log(level, message);
    }
}

impl pricing::commerce::policy::types::Host for CallState {}

/// Defines this version's `host` and `types` imports.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    pricing::commerce::policy::host::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    pricing::commerce::policy::types::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

/// A component pre-linked against one slot's 1.1.0 world.
pub enum Prepared {
    Pricing(pricing::PricingPolicyPre<CallState>),
    Coupon(coupon::CouponPolicyPre<CallState>),
    OrderRules(order_rules::OrderRulesPolicyPre<CallState>),
}

impl Prepared {
    pub fn new(slot: Slot, pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        Ok(match slot {
            Slot::Pricing => Prepared::Pricing(pricing::PricingPolicyPre::new(pre)?),
            Slot::Coupon => Prepared::Coupon(coupon::CouponPolicyPre::new(pre)?),
            Slot::OrderRules => Prepared::OrderRules(order_rules::OrderRulesPolicyPre::new(pre)?),
        })
    }

    /// Instantiates the component in `store` and makes the call.
    pub fn call(&self, store: &mut Store<CallState>, call: &Call) -> wasmtime::Result<Output> {
        Ok(match (self, call) {
            (Prepared::Pricing(pre), Call::Price(input)) => {
                let instance = pre.instantiate(&mut *store)?;
                let pricing = instance.commerce_policy_pricing();
                Output::Prices(pricing.call_price(&mut *store, input)?)
            }
            (Prepared::Coupon(pre), Call::Apply(input)) => {
                let instance = pre.instantiate(&mut *store)?;
                let coupon = instance.commerce_policy_coupon();
                Output::Applied(coupon.call_apply(&mut *store, input)?)
            }
            (Prepared::Coupon(pre), Call::CanIssue(input)) => {
                let instance = pre.instantiate(&mut *store)?;
                let coupon = instance.commerce_policy_coupon();
                Output::Issuable(coupon.call_can_issue(&mut *store, input)?)
            }
            (Prepared::OrderRules(pre), Call::Check(input)) => {
                let instance = pre.instantiate(&mut *store)?;
                let rules = instance.commerce_policy_order_rules();
                Output::Violations(rules.call_check(&mut *store, input)?)
            }
            (_, call) => anyhow::bail!("{} is not a call of this slot", call.function()),
        })
    }
}

/// The call `function` with `input` written in 1.1.0's types.
pub fn read_call(function: &str, input: &serde_json::Value) -> Result<Call, String> {
    use commerce_policy_cases::decode;
    Ok(match function {
        "price" => Call::Price(decode(input)?),
        "apply" => Call::Apply(decode(input)?),
        "can_issue" => Call::CanIssue(decode(input)?),
        "check" => Call::Check(decode(input)?),
        other => return Err(format!("no policy function is named {other:?}")),
    })
}
