//! Example `pricing` policy: lines whose category is one of the configured
//! `categories` get `percent` off. Written as a plugin author would, with
//! ordinary `core`/`alloc` code: two configuration keys, `split`, `sort`,
//! string compares and `format!` (the SDK supplies the memory functions
//! they need).
#![no_std]

use commerce_policy_sdk::prelude::*;

declare_config! {
    /// Comma-separated categories that get the discount, e.g. `books,food`.
    categories = "",
    /// Percent off those lines, 0-100 (a whole number).
    percent = "10",
}

struct Category;

impl Pricing for Category {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        let mut categories: Vec<&str> = CONFIG
            .get(&input.config, "categories")
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .collect();
        categories.sort_unstable();
        categories.dedup();
        let percent: i64 = CONFIG
            .get(&input.config, "percent")
            .trim()
            .parse()
            .unwrap_or(0)
            .clamp(0, 100);
        input
            .lines
            .iter()
            .map(|line| {
                let gross = line.unit_price * i64::from(line.quantity);
                let listed = categories.binary_search(&line.category.as_str()).is_ok();
                let (discount, reason) = if listed && percent > 0 {
                    (
                        gross * percent / 100,
                        format!(
                            "CATEGORY_{}_{percent}_PERCENT",
                            line.category.to_uppercase()
                        ),
                    )
                } else {
                    (0, String::new())
                };
                LinePrice {
                    product_id: line.product_id,
                    unit_price: line.unit_price,
                    discount,
                    reason,
                }
            })
            .collect()
    }
}

export_pricing!(Category);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk::testing::pricing_cases::<Category>(env!("CARGO_MANIFEST_DIR"));
}
