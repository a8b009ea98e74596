//! Test component: a `pricing` policy that prices every unit at 2^62 won.
//! Each line fits in an `s64`, but two lines' sum does not: the host must
//! refuse such an answer (`POLICY_UNAVAILABLE`), never wrap a total.
#![no_std]

use commerce_policy_sdk::prelude::*;

struct HugePrices;

impl Pricing for HugePrices {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        input
            .lines
            .iter()
            .map(|line| LinePrice {
                product_id: line.product_id,
                unit_price: 1 << 62,
                discount: 0,
                reason: String::new(),
            })
            .collect()
    }
}

export_pricing!(HugePrices);
