//! The standard `order_rules` policy: 1 to 1000 units a line, at most 50
//! lines, and each product on one line only.
#![no_std]

use commerce_policy_sdk::prelude::*;

const MAX_QUANTITY: u32 = 1000;
const MAX_LINES: usize = 50;

struct Standard;

impl OrderRules for Standard {
    fn check(input: OrderInput) -> Vec<Violation> {
        let mut violations = Vec::new();
        let lines = input.lines.len();
        if lines > MAX_LINES {
            let message = format!("an order has at most {MAX_LINES} lines, this one has {lines}");
            violations.push(violation("TOO_MANY_LINES", message));
        }

        // A product on two lines is rejected rather than merged: the lines were
        // priced separately, and merging them would change what pricing decided.
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
}

fn violation(code: &str, message: String) -> Violation {
    Violation {
        code: code.into(),
        message,
    }
}

export_order_rules!(Standard);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk::testing::order_rules_cases::<Standard>(env!("CARGO_MANIFEST_DIR"));
}
