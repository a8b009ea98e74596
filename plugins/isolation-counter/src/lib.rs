//! Test component: a `pricing` policy that counts its calls in a global and
//! prices every unit at that count. The host gives every call a fresh
//! instance, so it must always answer 1: anything more means state survived
//! from one call into another.
#![no_std]

use core::sync::atomic::{AtomicI64, Ordering};

use commerce_policy_sdk::prelude::*;

static CALLS: AtomicI64 = AtomicI64::new(0);

struct CountsCalls;

impl Pricing for CountsCalls {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        input
            .lines
            .iter()
            .map(|line| LinePrice {
                product_id: line.product_id,
                unit_price: calls,
                discount: 0,
                reason: String::new(),
            })
            .collect()
    }
}

export_pricing!(CountsCalls);
