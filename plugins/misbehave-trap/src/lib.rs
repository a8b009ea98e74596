//! Test component: a `pricing` policy that panics, which traps the call.
#![no_std]

use commerce_policy_sdk::prelude::*;

struct Trap;

impl Pricing for Trap {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        panic!(
            "misbehave-trap panics on purpose ({} lines)",
            input.lines.len()
        )
    }
}

export_pricing!(Trap);
