//! Example `pricing` policy built against `commerce:policy@1.1.0`: users who
//! have spent at least `min_lifetime_spend` won (config; default 1,000,000)
//! get 5% off every line, rounded down to whole won.
#![no_std]

use commerce_policy_sdk_1_1::prelude::*;

declare_config! {
    /// Won a user must have spent on paid orders to get 5% off (a whole number).
    min_lifetime_spend = "1000000",
}

/// The threshold when the configured one is not a number.
const DEFAULT_MIN_LIFETIME_SPEND: Money = 1_000_000;
const PERCENT_OFF: i128 = 5;

struct Loyalty;

impl Pricing for Loyalty {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        let threshold = CONFIG
            .get(&input.config, "min_lifetime_spend")
            .trim()
            .parse::<Money>()
            .unwrap_or(DEFAULT_MIN_LIFETIME_SPEND);
        let mut prices = list_prices(&input.lines);
        if input.user.lifetime_spend < threshold {
            return prices;
        }
        for (price, line) in prices.iter_mut().zip(&input.lines) {
            // In i128 the product cannot overflow; `/` rounds toward zero,
            // which is down for amounts that are not negative.
            let list = i128::from(line.unit_price) * i128::from(line.quantity);
            price.discount = Money::try_from(list * PERCENT_OFF / 100)
                .unwrap_or(0)
                .max(0);
            price.reason = "loyalty 5% off".into();
        }
        prices
    }
}

export_pricing!(Loyalty);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk_1_1::testing::pricing_cases::<Loyalty>(env!("CARGO_MANIFEST_DIR"));
}
