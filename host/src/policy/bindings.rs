//! The one place the WIT contract becomes Rust: one module per world of
//! `commerce:policy@1.0.0`. The `types` and `host` interfaces are generated
//! once (with `pricing`) and shared by the other worlds through `with`.

pub mod pricing {
    wasmtime::component::bindgen!({
        world: "pricing-policy",
        path: "../wit/commerce-policy@1.0.0",
    });
}

pub mod coupon {
    wasmtime::component::bindgen!({
        world: "coupon-policy",
        path: "../wit/commerce-policy@1.0.0",
        with: {
            "commerce:policy/types": super::pricing::commerce::policy::types,
            "commerce:policy/host": super::pricing::commerce::policy::host,
        },
    });
}

pub mod order_rules {
    wasmtime::component::bindgen!({
        world: "order-rules-policy",
        path: "../wit/commerce-policy@1.0.0",
        with: {
            "commerce:policy/types": super::pricing::commerce::policy::types,
            "commerce:policy/host": super::pricing::commerce::policy::host,
        },
    });
}

pub use coupon::exports::commerce::policy::coupon::{ApplyInput, IssueInput};
pub use order_rules::exports::commerce::policy::order_rules::OrderInput;
pub use pricing::commerce::policy::types::{
    CouponTerms, DiscountKind, Line, LogLevel, PricedLine, UserFacts, Violation,
};
pub use pricing::exports::commerce::policy::pricing::{LinePrice, PricingInput};
