//! Guest SDK for `commerce:policy@1.1.0` components, which see
//! `UserFacts::lifetime_spend`. Everything else is as in `commerce-policy-sdk`
//! (1.0.0): the same traits, defaults, helpers and export macros.
//!
//! ```ignore
//! #![no_std]
//! use commerce_policy_sdk_1_1::prelude::*;
//!
//! struct Loyalty;
//! impl Pricing for Loyalty {
//!     fn price(input: PricingInput) -> Vec<LinePrice> {
//!         let _spent = input.user.lifetime_spend;
//!         list_prices(&input.lines)
//!     }
//! }
//! export_pricing!(Loyalty);
//! ```
//!
//! One SDK crate per contract version, as one component holds one version:
//! a component built with this crate runs on hosts that serve 1.1.0, one
//! built with `commerce-policy-sdk` on hosts that serve 1.0.0 (this host
//! serves both). The two cannot share a component: the tools that assemble
//! it treat 1.0.0 and 1.1.0 of one interface as one, and `user-facts`
//! differs between them.
//!
//! Only the bindings are this crate's own: the traits, macros,
//! configuration, standard logic, runtime and case tests are the 1.0.0
//! SDK's files, included here over these bindings.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[path = "../../sdk/src/standard.rs"]
mod standard;
pub use standard::{apply_terms, coupon_discount, list_prices, standard_apply};

#[path = "../../sdk/src/shared.rs"]
mod shared;
pub use shared::*;

/// The allocator, `cabi_realloc` and the panic's last words: the same as
/// the 1.0.0 SDK's, which name no version of the contract.
#[cfg(target_arch = "wasm32")]
#[path = "../../sdk/src/runtime.rs"]
mod runtime;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use runtime::on_panic as __on_panic;

/// Runs `cases/*.json` on the host target: the 1.0.0 SDK's, over 1.1.0's
/// types, so 1.1.0 cases write `user.lifetime_spend` too.
#[cfg(feature = "testing")]
#[path = "../../sdk/src/testing.rs"]
pub mod testing;

/// Generated bindings, one module per slot world, as in the 1.0.0 SDK: with
/// `pub_export_macro`, a world's exports are recorded only where the plugin
/// invokes the export macro.
#[doc(hidden)]
pub mod bindings {
    pub mod pricing {
        wit_bindgen::generate!({
            world: "pricing-policy",
            path: "../../wit/commerce-policy@1.1.0",
            pub_export_macro: true,
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }

    /// Reuses the types and host modules generated for `pricing`.
    pub mod coupon {
        wit_bindgen::generate!({
            world: "coupon-policy",
            path: "../../wit/commerce-policy@1.1.0",
            with: {
                "commerce:policy/types@1.1.0": crate::bindings::pricing::commerce::policy::types,
                "commerce:policy/host@1.1.0": crate::bindings::pricing::commerce::policy::host,
            },
            pub_export_macro: true,
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }

    pub mod order_rules {
        wit_bindgen::generate!({
            world: "order-rules-policy",
            path: "../../wit/commerce-policy@1.1.0",
            with: {
                "commerce:policy/types@1.1.0": crate::bindings::pricing::commerce::policy::types,
                "commerce:policy/host@1.1.0": crate::bindings::pricing::commerce::policy::host,
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
