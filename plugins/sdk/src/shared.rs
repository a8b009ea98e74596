//! Everything of the SDK that names no version of the contract: the slot
//! traits and their defaults, the export macros, configuration, logging and
//! the prelude. Both SDK crates include this file (`#[path]`), each over its
//! own version's bindings, so a fix lands in both; only the bindings differ.

use alloc::string::String;
use alloc::vec::Vec;

use crate::{
    ApplyInput, Config, IssueInput, LinePrice, LogLevel, Money, OrderInput, PricingInput,
    Violation, coupon_iface, list_prices, order_rules_iface, pricing_iface, standard_apply,
};

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

/// The component's panic handler: logs through the host, then traps.
/// Defined by the export macro, in the plugin crate, so that the runtime it
/// calls names no version's `host`.
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
    crate::bindings::pricing::commerce::policy::host::log(level, message);
    #[cfg(all(not(target_arch = "wasm32"), feature = "testing"))]
    {
        extern crate std;
        std::eprintln!("[{level:?}] {message}");
    }
    #[cfg(all(not(target_arch = "wasm32"), not(feature = "testing")))]
    let _ = (level, message);
}

/// Whether two strings are the same, byte by byte. Written out rather than
/// `==`, which may call `memcmp`, a function a component does not have.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The value of `key` in the slot's configuration, as given. Prefer a
/// declared key and [`ConfigKeys::get`], which knows its default.
pub fn config_value<'a>(config: &'a Config, key: &str) -> Option<&'a str> {
    config
        .iter()
        .find(|(k, _)| same(k, key))
        .map(|(_, v)| v.as_str())
}

/// One configuration key a policy reads: see [`declare_config!`].
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    pub key: &'static str,
    pub default: &'static str,
    pub description: &'static str,
}

/// The configuration keys a policy declares, as [`declare_config!`] makes them.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKeys(pub &'static [ConfigKey]);

impl ConfigKeys {
    /// The value of `key` in `config`, or its declared default.
    ///
    /// # Panics
    /// When `key` is not declared: a mistake the plugin's first case catches
    /// (a panic in a component is a trap).
    pub fn get<'a>(&self, config: &'a Config, key: &str) -> &'a str {
        if let Some(value) = config_value(config, key) {
            return value;
        }
        match self.0.iter().find(|declared| same(declared.key, key)) {
            Some(declared) => declared.default,
            None => panic!("configuration key `{key}` is not declared in declare_config!"),
        }
    }
}

/// Declares the configuration keys the policy reads, with their defaults and
/// descriptions, and defines `CONFIG` to read them:
///
/// ```ignore
/// declare_config! {
///     /// Comma-separated categories whose lines are discounted.
///     categories = "",
///     /// Whole percent taken off those lines.
///     percent = "10",
/// }
/// let percent = CONFIG.get(&input.config, "percent");
/// ```
///
/// The declarations are embedded in the component (`commerce:policy-config`):
/// the server refuses a configuration that sets a key the policy does not
/// declare, shows them in `GET /api/v1/admin/policies`, and a shadow's report
/// names those its configuration leaves at the default. `commerce policy
/// check` prints them. Keys are identifiers; defaults and descriptions are
/// string literals without tabs.
#[macro_export]
macro_rules! declare_config {
    ($( $(#[doc = $doc:literal])* $key:ident = $default:literal ),* $(,)?) => {
        /// The configuration keys this policy reads (see `declare_config!`).
        pub const CONFIG: $crate::ConfigKeys = $crate::ConfigKeys(&[
            $( $crate::ConfigKey {
                key: stringify!($key),
                default: $default,
                description: concat!($($doc),*),
            } ),*
        ]);

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            // One `key \t default \t description` line per key.
            const TEXT: &str = concat!($( stringify!($key), "\t", $default, "\t", $($doc,)* "\n", )*);
            assert!(
                $crate::__plain_lines(TEXT),
                "a configuration default or description holds a tab or a line break"
            );
            #[allow(unsafe_code)]
            #[unsafe(link_section = "commerce:policy-config")]
            #[used]
            static POLICY_CONFIG: [u8; TEXT.len()] = $crate::__bytes(TEXT);
        };
    };
}

/// Whether every line of `text` has exactly two tabs (three fields).
#[doc(hidden)]
pub const fn __plain_lines(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (mut i, mut tabs) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\t' => tabs += 1,
            b'\n' => {
                if tabs != 2 {
                    return false;
                }
                tabs = 0;
            }
            _ => {}
        }
        i += 1;
    }
    tabs == 0
}

/// Everything a policy usually needs, including what `no_std` leaves out of
/// the prelude (`Vec`, `String`, `format!`, ...).
pub mod prelude {
    pub use crate::{
        ApplyInput, Config, ConfigKey, ConfigKeys, Coupon, CouponTerms, DiscountKind, IssueInput,
        Line, LinePrice, LogLevel, Money, OrderInput, OrderRules, PricedLine, Pricing,
        PricingInput, Timestamp, UserFacts, Violation, config_value, coupon_discount, list_prices,
        log, standard_apply,
    };
    pub use crate::{declare_config, export_coupon, export_order_rules, export_pricing};
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::collections::{BTreeMap, BTreeSet};
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}
