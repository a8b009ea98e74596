//! Test component: a `pricing` policy that keeps the list prices but gives
//! every line a `reason` holding a NUL character. PostgreSQL stores no NUL
//! in text or JSON, so the host must refuse the answer
//! (`POLICY_UNAVAILABLE`) before it writes anything, never fail on the
//! insert with a 500.
#![no_std]

use commerce_policy_sdk::prelude::*;

struct NulReason;

impl Pricing for NulReason {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        input
            .lines
            .iter()
            .map(|line| LinePrice {
                product_id: line.product_id,
                unit_price: line.unit_price,
                discount: 0,
                reason: "list price\0".into(),
            })
            .collect()
    }
}

export_pricing!(NulReason);
