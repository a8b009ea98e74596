//! Example `pricing` policy: a line of 10 units or more gets 10% off.
#![no_std]

use commerce_policy_sdk::prelude::*;

/// Units of one line from which the line gets the discount.
const BULK_QUANTITY: u32 = 10;

struct Bulk;

impl Pricing for Bulk {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        input.lines.iter().map(price_line).collect()
    }
}

fn price_line(line: &Line) -> LinePrice {
    let (discount, reason) = if line.quantity >= BULK_QUANTITY {
        // A tenth of the line, rounded down to whole won (amounts are not negative).
        let list = line.unit_price.saturating_mul(i64::from(line.quantity));
        ((list / 10).max(0), "bulk 10% off".into())
    } else {
        (0, String::new())
    };
    LinePrice {
        product_id: line.product_id,
        unit_price: line.unit_price,
        discount,
        reason,
    }
}

export_pricing!(Bulk);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk::testing::pricing_cases::<Bulk>(env!("CARGO_MANIFEST_DIR"));
}
