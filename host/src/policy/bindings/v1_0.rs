//! `commerce:policy@1.0.0`, served unchanged to the components built against
//! it: the host's (newest) input is converted down to these records, without
//! what 1.0.0 does not have, and the component's output converted up.
//!
//! The types derive serde, so a 1.0.0 case file or recorded input is read
//! in 1.0.0's own types, then converted up ([`read_call`]): what 1.1.0 added
//! is taken as unknown (`lifetime_spend` 0).

use wasmtime::{
    Store,
    component::{HasSelf, InstancePre, Linker},
};

use super::{Contract, answer, v1_1 as latest};
use crate::policy::{
    Slot,
    call::{Call, Output},
    engine::CallState,
};

pub mod pricing {
    wasmtime::component::bindgen!({
        world: "pricing-policy",
        path: "../wit/commerce-policy@1.0.0",
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub mod coupon {
    wasmtime::component::bindgen!({
        world: "coupon-policy",
        path: "../wit/commerce-policy@1.0.0",
        with: {
            "commerce:policy/types": super::pricing::commerce::policy::types,
            "commerce:policy/host": super::pricing::commerce::policy::host,
        },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub mod order_rules {
    wasmtime::component::bindgen!({
        world: "order-rules-policy",
        path: "../wit/commerce-policy@1.0.0",
        with: {
            "commerce:policy/types": super::pricing::commerce::policy::types,
            "commerce:policy/host": super::pricing::commerce::policy::host,
        },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

use coupon::exports::commerce::policy::coupon::{ApplyInput, IssueInput};
use order_rules::exports::commerce::policy::order_rules::OrderInput;
use pricing::commerce::policy::types::{
    CouponTerms, DiscountKind, Line, LogLevel, PricedLine, UserFacts,
};
use pricing::exports::commerce::policy::pricing::PricingInput;

impl pricing::commerce::policy::host::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Trace => latest::LogLevel::Trace,
            LogLevel::Debug => latest::LogLevel::Debug,
            LogLevel::Info => latest::LogLevel::Info,
            LogLevel::Warn => latest::LogLevel::Warn,
            LogLevel::Error => latest::LogLevel::Error,
        };
        self.record_log(level, message);
    }
}

impl pricing::commerce::policy::types::Host for CallState {}

/// Defines this version's `host` and `types` imports.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    pricing::commerce::policy::host::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    pricing::commerce::policy::types::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

/// A component pre-linked against one slot's 1.0.0 world.
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
        let exports = answer::Exports::find(&pre, &Contract::V1_0.export(slot), slot)?;
        Ok(Self { slot, pre, exports })
    }

    /// Instantiates the component in `store` and makes the call with the
    /// input converted down; the answer is read bounded ([`answer`]), in
    /// the newest version's types (the shapes did not change).
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
                &PricingInput::from(input),
                input.lines.len(),
            )?),
            Call::Apply(input) => Output::Applied(answer::apply(
                store,
                pre,
                exports,
                &ApplyInput::from(input),
            )?),
            Call::CanIssue(input) => Output::Issuable(answer::can_issue(
                store,
                pre,
                exports,
                &IssueInput::from(input),
            )?),
            Call::Check(input) => Output::Violations(answer::check(
                store,
                pre,
                exports,
                &OrderInput::from(input),
            )?),
        })
    }
}

// Down: the host's input as 1.0.0 has it.

impl From<&latest::UserFacts> for UserFacts {
    fn from(user: &latest::UserFacts) -> Self {
        Self {
            id: user.id,
            created_at: user.created_at,
            paid_orders: user.paid_orders,
        }
    }
}

impl From<&latest::Line> for Line {
    fn from(line: &latest::Line) -> Self {
        Self {
            product_id: line.product_id,
            name: line.name.clone(),
            category: line.category.clone(),
            unit_price: line.unit_price,
            quantity: line.quantity,
        }
    }
}

impl From<&latest::PricedLine> for PricedLine {
    fn from(line: &latest::PricedLine) -> Self {
        Self {
            product_id: line.product_id,
            name: line.name.clone(),
            category: line.category.clone(),
            unit_price: line.unit_price,
            quantity: line.quantity,
            discount: line.discount,
            line_total: line.line_total,
        }
    }
}

impl From<&latest::CouponTerms> for CouponTerms {
    fn from(terms: &latest::CouponTerms) -> Self {
        Self {
            coupon_id: terms.coupon_id,
            name: terms.name.clone(),
            kind: match terms.kind {
                latest::DiscountKind::Fixed => DiscountKind::Fixed,
                latest::DiscountKind::Percent => DiscountKind::Percent,
            },
            value: terms.value,
            max_amount: terms.max_amount,
            min_order_amount: terms.min_order_amount,
            valid_from: terms.valid_from,
            valid_until: terms.valid_until,
        }
    }
}

impl From<&latest::PricingInput> for PricingInput {
    fn from(input: &latest::PricingInput) -> Self {
        Self {
            lines: input.lines.iter().map(Into::into).collect(),
            user: (&input.user).into(),
            now: input.now,
            config: input.config.clone(),
        }
    }
}

impl From<&latest::ApplyInput> for ApplyInput {
    fn from(input: &latest::ApplyInput) -> Self {
        Self {
            lines: input.lines.iter().map(Into::into).collect(),
            subtotal: input.subtotal,
            user: (&input.user).into(),
            coupon: (&input.coupon).into(),
            now: input.now,
            config: input.config.clone(),
        }
    }
}

impl From<&latest::IssueInput> for IssueInput {
    fn from(input: &latest::IssueInput) -> Self {
        Self {
            user: (&input.user).into(),
            coupon: (&input.coupon).into(),
            now: input.now,
            config: input.config.clone(),
        }
    }
}

impl From<&latest::OrderInput> for OrderInput {
    fn from(input: &latest::OrderInput) -> Self {
        Self {
            lines: input.lines.iter().map(Into::into).collect(),
            subtotal: input.subtotal,
            coupon_discount: input.coupon_discount,
            total: input.total,
            user: (&input.user).into(),
            coupon: input.coupon.as_ref().map(Into::into),
            now: input.now,
            config: input.config.clone(),
        }
    }
}

// Up: a 1.0.0 input (a case file, a recorded input) as the host's.

/// The call `function` with `input` written in 1.0.0's types, as the newest's.
pub fn read_call(function: &str, input: &serde_json::Value) -> Result<Call, String> {
    use commerce_policy_cases::decode;
    Ok(match function {
        "price" => Call::Price(decode::<PricingInput>(input)?.into()),
        "apply" => Call::Apply(decode::<ApplyInput>(input)?.into()),
        "can_issue" => Call::CanIssue(decode::<IssueInput>(input)?.into()),
        "check" => Call::Check(decode::<OrderInput>(input)?.into()),
        other => return Err(format!("no policy function is named {other:?}")),
    })
}

impl From<UserFacts> for latest::UserFacts {
    fn from(user: UserFacts) -> Self {
        Self {
            id: user.id,
            created_at: user.created_at,
            paid_orders: user.paid_orders,
            // Unknown to 1.0.0: nothing spent, as far as the input says.
            lifetime_spend: 0,
        }
    }
}

impl From<Line> for latest::Line {
    fn from(line: Line) -> Self {
        Self {
            product_id: line.product_id,
            name: line.name,
            category: line.category,
            unit_price: line.unit_price,
            quantity: line.quantity,
        }
    }
}

impl From<PricedLine> for latest::PricedLine {
    fn from(line: PricedLine) -> Self {
        Self {
            product_id: line.product_id,
            name: line.name,
            category: line.category,
            unit_price: line.unit_price,
            quantity: line.quantity,
            discount: line.discount,
            line_total: line.line_total,
        }
    }
}

impl From<CouponTerms> for latest::CouponTerms {
    fn from(terms: CouponTerms) -> Self {
        Self {
            coupon_id: terms.coupon_id,
            name: terms.name,
            kind: match terms.kind {
                DiscountKind::Fixed => latest::DiscountKind::Fixed,
                DiscountKind::Percent => latest::DiscountKind::Percent,
            },
            value: terms.value,
            max_amount: terms.max_amount,
            min_order_amount: terms.min_order_amount,
            valid_from: terms.valid_from,
            valid_until: terms.valid_until,
        }
    }
}

impl From<PricingInput> for latest::PricingInput {
    fn from(input: PricingInput) -> Self {
        Self {
            lines: input.lines.into_iter().map(Into::into).collect(),
            user: input.user.into(),
            now: input.now,
            config: input.config,
        }
    }
}

impl From<ApplyInput> for latest::ApplyInput {
    fn from(input: ApplyInput) -> Self {
        Self {
            lines: input.lines.into_iter().map(Into::into).collect(),
            subtotal: input.subtotal,
            user: input.user.into(),
            coupon: input.coupon.into(),
            now: input.now,
            config: input.config,
        }
    }
}

impl From<IssueInput> for latest::IssueInput {
    fn from(input: IssueInput) -> Self {
        Self {
            user: input.user.into(),
            coupon: input.coupon.into(),
            now: input.now,
            config: input.config,
        }
    }
}

impl From<OrderInput> for latest::OrderInput {
    fn from(input: OrderInput) -> Self {
        Self {
            lines: input.lines.into_iter().map(Into::into).collect(),
            subtotal: input.subtotal,
            coupon_discount: input.coupon_discount,
            total: input.total,
            user: input.user.into(),
            coupon: input.coupon.map(Into::into),
            now: input.now,
            config: input.config,
        }
    }
}
