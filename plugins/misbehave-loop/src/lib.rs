//! Test component: a `pricing` policy that never returns, for the host's fuel
//! and epoch limits.
#![no_std]

use commerce_policy_sdk::prelude::*;

struct Loop;

impl Pricing for Loop {
    fn price(_input: PricingInput) -> Vec<LinePrice> {
        // `black_box` makes each iteration's result observable, so the
        // optimizer can neither delete the loop nor prove it does nothing.
        let mut spins = 0u64;
        loop {
            spins = core::hint::black_box(spins.wrapping_add(1));
        }
    }
}

export_pricing!(Loop);
