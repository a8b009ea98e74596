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
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

mod standard;
pub use standard::{coupon_discount, list_prices, standard_apply};

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
/// exactly the slot it implements, though this crate knows all three.
#[doc(hidden)]
pub mod bindings {
    pub mod pricing {
        wit_bindgen::generate!({
            world: "pricing-policy",
            path: "../../wit/commerce-policy@1.0.0",
            pub_export_macro: true,
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

/// The `pricing` slot: prices every line of a cart.
pub trait Pricing {
    /// One answer per input line, in the same order. Default: list price,
    /// nothing taken off.
    fn price(input: PricingInput) -> Vec<LinePrice> {
        list_prices(&input.lines)
    }
}

/// The `coupon` slot: what a coupon takes off, and who may be issued one.
pub trait Coupon {
    /// The discount in won (`0 <= amount <= subtotal`) or a reason code.
    /// Default: the coupon's own terms, see [`standard_apply`].
    fn apply(input: ApplyInput) -> Result<Money, String> {
        standard_apply(&input)
    }

    /// `Ok` when this user may be issued the coupon, else a reason code.
    /// Default: anyone; the host checks quantity and validity itself.
    fn can_issue(input: IssueInput) -> Result<(), String> {
        let _ = input;
        Ok(())
    }
}

/// The `order_rules` slot: every reason an order is not allowed.
pub trait OrderRules {
    /// An empty list accepts the order. Default: accept everything.
    fn check(input: OrderInput) -> Vec<Violation> {
        let _ = input;
        Vec::new()
    }
}

// The generated `Guest` traits forward to the SDK traits, which carry the defaults.
impl<T: Pricing> pricing_iface::Guest for T {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        <T as Pricing>::price(input)
    }
}

impl<T: Coupon> coupon_iface::Guest for T {
    fn apply(input: ApplyInput) -> Result<Money, String> {
        <T as Coupon>::apply(input)
    }
    fn can_issue(input: IssueInput) -> Result<(), String> {
        <T as Coupon>::can_issue(input)
    }
}

impl<T: OrderRules> order_rules_iface::Guest for T {
    fn check(input: OrderInput) -> Vec<Violation> {
        <T as OrderRules>::check(input)
    }
}

/// Exports a [`Pricing`] implementation as this component's `pricing` slot.
#[macro_export]
macro_rules! export_pricing {
    ($policy:ident) => {
        $crate::bindings::pricing::export!($policy with_types_in $crate::bindings::pricing);
        $crate::__policy_meta!();
        $crate::__panic_handler!($crate::log, $crate::LogLevel::Error);
    };
}

/// Exports a [`Coupon`] implementation as this component's `coupon` slot.
#[macro_export]
macro_rules! export_coupon {
    ($policy:ident) => {
        $crate::bindings::coupon::export!($policy with_types_in $crate::bindings::coupon);
        $crate::__policy_meta!();
        $crate::__panic_handler!($crate::log, $crate::LogLevel::Error);
    };
}

/// Exports an [`OrderRules`] implementation as this component's `order_rules` slot.
#[macro_export]
macro_rules! export_order_rules {
    ($policy:ident) => {
        $crate::bindings::order_rules::export!($policy with_types_in $crate::bindings::order_rules);
        $crate::__policy_meta!();
        $crate::__panic_handler!($crate::log, $crate::LogLevel::Error);
    };
}

/// The component's panic handler: logs through `$log`, then traps. Defined
/// by the export macro, in the plugin crate, so that the runtime it calls
/// (shared with the 1.1.0 SDK) names no version's `host`.
#[doc(hidden)]
#[macro_export]
macro_rules! __panic_handler {
    ($log:path, $error:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[panic_handler]
        fn __commerce_policy_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::__on_panic(info, |message| $log($error, message))
        }
    };
}

/// Embeds the plugin crate's `name@version` in a `commerce:policy-meta` custom
/// section: the host reads it to label the policy (orders record the label).
/// Expanded in the plugin crate, so `CARGO_PKG_*` are the plugin's own.
#[doc(hidden)]
#[macro_export]
macro_rules! __policy_meta {
    () => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            const META: &str = concat!(env!("CARGO_PKG_NAME"), "@", env!("CARGO_PKG_VERSION"));
            // The same kind of section wit-bindgen emits for the component type.
            #[allow(unsafe_code)]
            #[unsafe(link_section = "commerce:policy-meta")]
            #[used]
            static POLICY_META: [u8; META.len()] = $crate::__bytes(META);
        };
    };
}

/// `text` as an array, for a `static` in a custom section.
#[doc(hidden)]
pub const fn __bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut array = [0; N];
    let mut i = 0;
    while i < N {
        array[i] = bytes[i];
        i += 1;
    }
    array
}

/// Writes a line to the server's log, tagged with the policy's name and version.
///
/// Outside a component (unit tests on the host target) the line goes to stderr
/// with the `testing` feature and is dropped without it.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::pricing::commerce::policy::host::log(level, message);
    #[cfg(all(not(target_arch = "wasm32"), feature = "testing"))]
    testing::print_log(level, message);
    #[cfg(all(not(target_arch = "wasm32"), not(feature = "testing")))]
    let _ = (level, message);
}

/// The value of `key` in the slot's config from the environment's manifest.
pub fn config_value<'a>(config: &'a Config, key: &str) -> Option<&'a str> {
    config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Everything a policy usually needs, including what `no_std` leaves out of
/// the prelude (`Vec`, `String`, `format!`, ...).
pub mod prelude {
    pub use crate::{
        ApplyInput, Config, Coupon, CouponTerms, DiscountKind, IssueInput, Line, LinePrice,
        LogLevel, Money, OrderInput, OrderRules, PricedLine, Pricing, PricingInput, Timestamp,
        UserFacts, Violation, config_value, coupon_discount, list_prices, log, standard_apply,
    };
    pub use crate::{export_coupon, export_order_rules, export_pricing};
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::collections::{BTreeMap, BTreeSet};
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}
