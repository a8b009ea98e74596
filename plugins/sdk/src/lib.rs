//! Guest SDK for `commerce:policy@1.0.0` components (`commerce-policy-sdk-1-1`,
//! in `plugins/sdk-1.1`, is the same for 1.1.0).
//!
//! A policy is a `#![no_std]` cdylib that implements one slot's trait and
//! exports it with that slot's macro:
//!
//! ```ignore
//! #![no_std]
//! use commerce_policy_sdk::prelude::*;
//!
//! struct Bulk;
//! impl Pricing for Bulk {
//!     fn price(input: PricingInput) -> Vec<LinePrice> { list_prices(&input.lines) }
//! }
//! export_pricing!(Bulk);
//! ```
//!
//! Policies are `no_std` because std on `wasm32-wasip2` imports WASI (its panic
//! hook writes to stderr and reads the environment) and the host provides none.
//! On wasm32 this crate supplies what std would: the allocator, the
//! `cabi_realloc` export, and a panic handler that logs through the host and traps.
//!
//! Policies must be deterministic: no clock, no randomness, no I/O. Everything
//! a policy may know is in its input. Money divisions round toward zero.
//!
//! What names no version of the contract (traits, macros, configuration,
//! the prelude) lives in `shared.rs`, the standard coupon logic in
//! `standard.rs`, the case tests in `testing.rs`: the 1.1.0 SDK includes the
//! same files over its own bindings.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod standard;
pub use standard::{apply_terms, coupon_discount, list_prices, standard_apply};

mod shared;
pub use shared::*;

#[cfg(target_arch = "wasm32")]
mod runtime;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use runtime::on_panic as __on_panic;

#[cfg(feature = "testing")]
pub mod testing;

/// Generated bindings, one module per slot world.
///
/// Each world is generated with `pub_export_macro`, which keeps the world's
/// exports out of this crate's `component-type` section and emits them only
/// where the plugin invokes the export macro. A component therefore exports
/// exactly the slot it implements, though this crate knows all three. The
/// types derive serde: case files decode into them (see `testing`).
#[doc(hidden)]
pub mod bindings {
    pub mod pricing {
        wit_bindgen::generate!({
            world: "pricing-policy",
            path: "../../wit/commerce-policy@1.0.0",
            pub_export_macro: true,
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }

    /// Reuses the types and host modules generated for `pricing`, so every slot
    /// shares one `Line`, one `LogLevel`, ...
    pub mod coupon {
        wit_bindgen::generate!({
            world: "coupon-policy",
            path: "../../wit/commerce-policy@1.0.0",
            with: {
                "commerce:policy/types@1.0.0": crate::bindings::pricing::commerce::policy::types,
                "commerce:policy/host@1.0.0": crate::bindings::pricing::commerce::policy::host,
            },
            pub_export_macro: true,
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }

    pub mod order_rules {
        wit_bindgen::generate!({
            world: "order-rules-policy",
            path: "../../wit/commerce-policy@1.0.0",
            with: {
                "commerce:policy/types@1.0.0": crate::bindings::pricing::commerce::policy::types,
                "commerce:policy/host@1.0.0": crate::bindings::pricing::commerce::policy::host,
            },
            pub_export_macro: true,
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }
}

use bindings::coupon::exports::commerce::policy::coupon as coupon_iface;
use bindings::order_rules::exports::commerce::policy::order_rules as order_rules_iface;
use bindings::pricing::exports::commerce::policy::pricing as pricing_iface;

pub use bindings::pricing::commerce::policy::types::{
    Config, CouponTerms, DiscountKind, Line, LogLevel, Money, PricedLine, Timestamp, UserFacts,
    Violation,
};
pub use coupon_iface::{ApplyInput, IssueInput};
pub use order_rules_iface::OrderInput;
pub use pricing_iface::{LinePrice, PricingInput};
