//! `commerce:policy@1.1.0`, the newest version: its types are the host's.
//! New since 1.0.0: `user-facts.lifetime-spend`.
//!
//! The types also derive serde, so recorded inputs and shadow examples are
//! these records as JSON (the runner's format: WIT names with `-` → `_`).

use wasmtime::{
    Store,
    component::{HasSelf, InstancePre, Linker},
};

use super::{Contract, answer};
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
pub struct Prepared {
    slot: Slot,
    pre: InstancePre<CallState>,
    exports: answer::Exports,
}

impl Prepared {
    /// Type-checks the component against the slot's world, then finds its
    /// functions.
    pub fn new(slot: Slot, pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        match slot {
            Slot::Pricing => drop(pricing::PricingPolicyPre::new(pre.clone())?),
            Slot::Coupon => drop(coupon::CouponPolicyPre::new(pre.clone())?),
            Slot::OrderRules => drop(order_rules::OrderRulesPolicyPre::new(pre.clone())?),
        }
        let exports = answer::Exports::find(&pre, &Contract::V1_1.export(slot), slot)?;
        Ok(Self { slot, pre, exports })
    }

    /// Instantiates the component in `store` and makes the call, its answer
    /// bounded as it is read ([`answer`]).
    pub fn call(&self, store: &mut Store<CallState>, call: &Call) -> wasmtime::Result<Output> {
        if call.slot() != self.slot {
            anyhow::bail!("{} is not a call of this slot", call.function());
        }
        let (pre, exports) = (&self.pre, &self.exports);
        Ok(match call {
            Call::Price(input) => Output::Prices(answer::price(
                store,
                pre,
                exports,
                input,
                input.lines.len(),
            )?),
            Call::Apply(input) => Output::Applied(answer::apply(store, pre, exports, input)?),
            Call::CanIssue(input) => {
                Output::Issuable(answer::can_issue(store, pre, exports, input)?)
            }
            Call::Check(input) => Output::Violations(answer::check(store, pre, exports, input)?),
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
