//! The standard `pricing` policy: every line at its list price, nothing taken off.
#![no_std]

use commerce_policy_sdk::prelude::*;

struct Standard;

impl Pricing for Standard {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        list_prices(&input.lines)
    }
}

export_pricing!(Standard);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk::testing::pricing_cases::<Standard>(env!("CARGO_MANIFEST_DIR"));
}
