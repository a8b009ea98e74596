//! Example `order_rules` policy: at most 5 units of any product per order,
//! counted across all of the order's lines.
#![no_std]

use commerce_policy_sdk::prelude::*;

const MAX_UNITS: u64 = 5;

struct MaxFive;

impl OrderRules for MaxFive {
    fn check(input: OrderInput) -> Vec<Violation> {
        // Summed per product, so splitting 6 units over two lines does not get around it.
        let mut units: BTreeMap<u64, u64> = BTreeMap::new();
        for line in &input.lines {
            *units.entry(line.product_id).or_default() += u64::from(line.quantity);
        }
        units
            .into_iter()
            .filter(|&(_, count)| count > MAX_UNITS)
            .map(|(product, count)| Violation {
                code: "MAX_QUANTITY_PER_PRODUCT".into(),
                message: format!("product {product}: {count} units, at most {MAX_UNITS} per order"),
            })
            .collect()
    }
}

export_order_rules!(MaxFive);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk::testing::order_rules_cases::<MaxFive>(env!("CARGO_MANIFEST_DIR"));
}
