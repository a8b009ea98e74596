//! The standard policies compiled into the server: what `pricing-standard`,
//! `coupon-standard` and `order-rules-standard` compute, in Rust on the
//! host's own types.
//!
//! They exist to measure what running policy as WebAssembly costs: a
//! manifest entry `component = "native:pricing-standard"` serves the slot
//! with no store, no instance and no fuel, and `bench all` runs the same
//! orders with both. The components' case files are run against them (tests
//! below), so the two say the same.
//!
//! A native policy is recorded like a component whose bytes are its name
//! (`native:pricing-standard`), so the deployment's state in PostgreSQL and
//! every instance agree on what serves. An upload is always a component:
//! a native policy comes only from a manifest.

use std::collections::BTreeSet;

use super::{
    PolicyError, Slot,
    bindings::{ApplyInput, DiscountKind, LinePrice, OrderInput, PricingInput, Violation},
    call::{Call, Output},
};

/// How a manifest and a stored version name a native policy.
pub const PREFIX: &str = "native:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    PricingStandard,
    CouponStandard,
    OrderRulesStandard,
}

impl Native {
    pub const ALL: [Native; 3] = [
        Native::PricingStandard,
        Native::CouponStandard,
        Native::OrderRulesStandard,
    ];

    /// The component whose logic this is.
    pub fn name(self) -> &'static str {
        match self {
            Native::PricingStandard => "pricing-standard",
            Native::CouponStandard => "coupon-standard",
            Native::OrderRulesStandard => "order-rules-standard",
        }
    }

    pub fn slot(self) -> Slot {
        match self {
            Native::PricingStandard => Slot::Pricing,
            Native::CouponStandard => Slot::Coupon,
            Native::OrderRulesStandard => Slot::OrderRules,
        }
    }

    /// What a native policy is stored as: `native:<name>`.
    pub fn bytes(self) -> Vec<u8> {
        format!("{PREFIX}{}", self.name()).into_bytes()
    }

    /// The native policy `bytes` name; `None` when they do not start with
    /// `native:` (they may be a component), an error for an unknown name.
    pub fn named(bytes: &[u8]) -> Option<Result<Self, PolicyError>> {
        let name = bytes.strip_prefix(PREFIX.as_bytes())?;
        let found = Native::ALL
            .into_iter()
            .find(|native| native.name().as_bytes() == name);
        Some(found.ok_or_else(|| {
            let known: Vec<&str> = Native::ALL.iter().map(|native| native.name()).collect();
            PolicyError::InvalidComponent(format!(
                "there is no native policy named {:?}; there are {known:?}",
                String::from_utf8_lossy(name)
            ))
        }))
    }

    /// Answers `call`, which must be one of this policy's slot.
    pub fn answer(self, call: &Call) -> Output {
        match call {
            Call::Price(input) => Output::Prices(price(input)),
            Call::Apply(input) => Output::Applied(apply(input)),
            Call::CanIssue(_) => Output::Issuable(Ok(())),
            Call::Check(input) => Output::Violations(check(input)),
        }
    }
}

/// `pricing-standard`: every line at its list price.
fn price(input: &PricingInput) -> Vec<LinePrice> {
    input
        .lines
        .iter()
        .map(|line| LinePrice {
            product_id: line.product_id,
            unit_price: line.unit_price,
            discount: 0,
            reason: String::new(),
        })
        .collect()
}

/// `coupon-standard`'s `apply`: the coupon's own terms, the validity window
/// first, then the minimum order amount, then the discount within
/// `0..=subtotal` (percent rounded toward zero, capped by `max_amount`).
fn apply(input: &ApplyInput) -> Result<i64, String> {
    let terms = &input.coupon;
    if input.now < terms.valid_from || input.now >= terms.valid_until {
        return Err("NOT_VALID_NOW".into());
    }
    if input.subtotal < terms.min_order_amount {
        return Err("BELOW_MIN_ORDER_AMOUNT".into());
    }
    let subtotal = input.subtotal.max(0);
    let amount = match terms.kind {
        DiscountKind::Fixed => terms.value,
        DiscountKind::Percent => {
            let percent = i128::from(subtotal) * i128::from(terms.value) / 100;
            let percent = i64::try_from(percent.clamp(0, i128::from(subtotal))).unwrap_or(subtotal);
            terms.max_amount.map_or(percent, |max| percent.min(max))
        }
    };
    Ok(amount.clamp(0, subtotal))
}

const MAX_QUANTITY: u32 = 1000;
const MAX_LINES: usize = 50;

/// `order-rules-standard`: at most 50 lines, 1..=1000 units a line, one line
/// per product.
fn check(input: &OrderInput) -> Vec<Violation> {
    let violation = |code: &str, message: String| Violation {
        code: code.into(),
        message,
    };
    let mut violations = Vec::new();
    let lines = input.lines.len();
    if lines > MAX_LINES {
        let message = format!("an order has at most {MAX_LINES} lines, this one has {lines}");
        violations.push(violation("TOO_MANY_LINES", message));
    }
    let mut seen = BTreeSet::new();
    let mut reported = BTreeSet::new();
    for line in &input.lines {
        let (product, quantity) = (line.product_id, line.quantity);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            let message = format!(
                "product {product}: quantity {quantity} is not between 1 and {MAX_QUANTITY}"
            );
            violations.push(violation("INVALID_QUANTITY", message));
        }
        if !seen.insert(product) && reported.insert(product) {
            let message = format!("product {product} is on more than one line");
            violations.push(violation("DUPLICATE_PRODUCT", message));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::{bindings::Contract, runner::Case};

    /// Every case of the standard components, answered natively, gives the
    /// answer the case expects of the component.
    #[test]
    fn native_policies_pass_their_components_cases() {
        let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let mut checked = 0;
        for native in Native::ALL {
            let cases = plugins.join(native.name()).join("cases");
            let mut paths: Vec<_> = std::fs::read_dir(&cases)
                .unwrap_or_else(|err| panic!("{}: {err}", cases.display()))
                .map(|entry| entry.expect("a readable folder").path())
                .collect();
            paths.sort();
            for path in paths {
                let case = Case::read(&path).expect("a case file");
                let Some(expected) = case.expected else {
                    continue;
                };
                assert_eq!(case.slot, native.slot(), "{}", path.display());
                // The standard components are built against 1.0.0: their
                // cases are 1.0.0 inputs.
                let call = Contract::V1_0
                    .read_call(&case.call, &case.input)
                    .expect("a valid input");
                assert_eq!(
                    native.answer(&call).to_json(),
                    expected,
                    "{}",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} cases were found");
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for native in Native::ALL {
            let named = Native::named(&native.bytes()).expect("a native name");
            assert_eq!(named.expect("a known native policy"), native);
        }
        assert!(Native::named(b"\0asm").is_none());
        let err = Native::named(b"native:pricing-bulk")
            .expect("a native name")
            .expect_err("no native pricing-bulk");
        assert!(err.to_string().contains("pricing-bulk"), "{err}");
    }
}
