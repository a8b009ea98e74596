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
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

#[cfg(feature = "testing")]
pub mod testing;

/// The allocator, `cabi_realloc` and the panic's last words: the same as
/// the 1.0.0 SDK's, which name no version of the contract.
#[cfg(target_arch = "wasm32")]
#[path = "../../sdk/src/runtime.rs"]
mod runtime;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use runtime::on_panic as __on_panic;

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
        $crate::__panic_handler!();
    };
}

/// Exports a [`Coupon`] implementation as this component's `coupon` slot.
#[macro_export]
macro_rules! export_coupon {
    ($policy:ident) => {
        $crate::bindings::coupon::export!($policy with_types_in $crate::bindings::coupon);
        $crate::__policy_meta!();
        $crate::__panic_handler!();
    };
}

/// Exports an [`OrderRules`] implementation as this component's `order_rules` slot.
#[macro_export]
macro_rules! export_order_rules {
    ($policy:ident) => {
        $crate::bindings::order_rules::export!($policy with_types_in $crate::bindings::order_rules);
        $crate::__policy_meta!();
        $crate::__panic_handler!();
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
            #[allow(unsafe_code)]
            #[unsafe(link_section = "commerce:policy-meta")]
            #[used]
            static POLICY_META: [u8; META.len()] = $crate::__bytes(META);
        };
    };
}

/// The component's panic handler: logs through 1.1.0's `host.log`, then traps.
#[doc(hidden)]
#[macro_export]
macro_rules! __panic_handler {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[panic_handler]
        fn __commerce_policy_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::__on_panic(info, |message| {
                $crate::log($crate::LogLevel::Error, message)
            })
        }
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
    {
        extern crate std;
        std::eprintln!("[{level:?}] {message}");
    }
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

/// Every line at its list price, nothing taken off.
pub fn list_prices(lines: &[Line]) -> Vec<LinePrice> {
    lines
        .iter()
        .map(|line| LinePrice {
            product_id: line.product_id,
            unit_price: line.unit_price,
            discount: 0,
            reason: String::new(),
        })
        .collect()
}

/// Applies a coupon by its own terms:
/// - `NOT_VALID_NOW` unless `valid_from <= now < valid_until`;
/// - `BELOW_MIN_ORDER_AMOUNT` when `subtotal < min_order_amount`;
/// - otherwise [`coupon_discount`].
pub fn standard_apply(input: &ApplyInput) -> Result<Money, String> {
    let terms = &input.coupon;
    if input.now < terms.valid_from || input.now >= terms.valid_until {
        return Err("NOT_VALID_NOW".into());
    }
    if input.subtotal < terms.min_order_amount {
        return Err("BELOW_MIN_ORDER_AMOUNT".into());
    }
    Ok(coupon_discount(terms, input.subtotal))
}

/// What the coupon takes off `subtotal`, always within `0..=subtotal`:
/// fixed takes `value`; percent takes `subtotal * value / 100` rounded toward
/// zero, at most `max_amount` when it is set.
pub fn coupon_discount(terms: &CouponTerms, subtotal: Money) -> Money {
    let subtotal = subtotal.max(0);
    let amount = match terms.kind {
        DiscountKind::Fixed => terms.value,
        DiscountKind::Percent => {
            // In i128 the product cannot overflow; integer `/` truncates toward zero.
            let percent = i128::from(subtotal) * i128::from(terms.value) / 100;
            let percent = percent.clamp(0, i128::from(subtotal));
            let percent = Money::try_from(percent).unwrap_or(subtotal);
            terms.max_amount.map_or(percent, |max| percent.min(max))
        }
    };
    amount.clamp(0, subtotal)
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
