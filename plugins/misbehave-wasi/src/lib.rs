//! Test component: a `pricing` policy built with std that reads a file, so
//! the component imports WASI (filesystem, environment, ...). The host links
//! nothing but `host.log` and must refuse it with `INVALID_COMPONENT`.

wit_bindgen::generate!({
    world: "pricing-policy",
    path: "../../wit/commerce-policy@1.0.0",
});

use exports::commerce::policy::pricing::{Guest, LinePrice, PricingInput};

struct Snoop;

impl Guest for Snoop {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        let found = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        input
            .lines
            .iter()
            .map(|line| LinePrice {
                product_id: line.product_id,
                unit_price: line.unit_price,
                discount: 0,
                reason: found.clone(),
            })
            .collect()
    }
}

export!(Snoop);
