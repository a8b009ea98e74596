//! The files `commerce policy new` writes, per language and slot. Each stub
//! passes its one case, so a new plugin builds and runs before it is changed.

use super::{Lang, NEW_CONTRACT};
use crate::policy::Slot;

pub struct Plugin<'a> {
    pub name: &'a str,
    pub slot: Slot,
    pub lang: Lang,
    /// `plugins/` relative to the new folder, for the Rust SDK's path.
    pub sdk: &'a str,
}

/// `(path in the folder, contents)`.
pub fn files(plugin: &Plugin<'_>) -> Vec<(&'static str, String)> {
    let fill = |text: &str| {
        text.replace("{name}", plugin.name)
            .replace("{slot}", plugin.slot.as_str())
            .replace("{world}", plugin.slot.world())
            .replace("{contract}", NEW_CONTRACT)
            .replace("{sdk}", plugin.sdk)
            .replace("{lang}", &plugin.lang.to_string())
    };
    let mut files = vec![
        ("README.md", fill(&readme(plugin.lang))),
        ("cases/example.json", case(plugin.slot).to_owned()),
    ];
    match plugin.lang {
        Lang::Rust => {
            files.push(("Cargo.toml", fill(RUST_CARGO)));
            files.push((".cargo/config.toml", RUST_LINKING.to_owned()));
            files.push(("src/lib.rs", fill(rust_source(plugin.slot))));
        }
        Lang::Ts => {
            files.push(("package.json", fill(TS_PACKAGE)));
            files.push(("tsconfig.json", TS_CONFIG.to_owned()));
            files.push(("src/policy.ts", fill(ts_source(plugin.slot))));
        }
        Lang::Py => {
            files.push(("pyproject.toml", fill(PY_PROJECT)));
            files.push(("src/app.py", fill(py_source(plugin.slot))));
        }
    }
    files
}

fn readme(lang: Lang) -> String {
    let (source, bindings, test) = match lang {
        Lang::Rust => (
            "src/lib.rs",
            "The types come from the SDK (`commerce-policy-sdk-1-1`, in `plugins/sdk-1.1`).",
            "`cargo test --manifest-path Cargo.toml` runs the cases on the host target too.\n",
        ),
        Lang::Ts => (
            "src/policy.ts",
            "`types/` holds the slot's TypeScript declarations, generated from the WIT by \
             jco (`guest-types`); `tsc` checks the source against them on every build.",
            "",
        ),
        Lang::Py => (
            "src/app.py",
            "`bindings/` holds the slot's Python dataclasses and the protocol class to \
             implement, generated from the WIT by `componentize-py bindings`; point your \
             editor's analysis path at it.",
            "",
        ),
    };
    format!(
        "# {{name}}\n\n\
         A `{{slot}}` policy in {{lang}}, against `commerce:policy@{{contract}}`. The slot's \
         function is in `{source}`: change it, add cases, build, run.\n\n\
         {bindings}\n\n\
         ```sh\n\
         commerce policy build plugins/{{name}}\n\
         commerce policy run target/plugins/{{name}}.wasm --slot {{slot}} --input plugins/{{name}}/cases/example.json\n\
         ```\n\n\
         {test}\
         Each case in `cases/` is `{{\"slot\", \"call\", \"input\", \"expected\"}}`; the \
         runner compares the output with `expected`. Then shadow it, and promote it, as \
         plugins/README.md describes.\n"
    )
}

fn case(slot: Slot) -> &'static str {
    match slot {
        Slot::Pricing => CASE_PRICING,
        Slot::Coupon => CASE_COUPON,
        Slot::OrderRules => CASE_ORDER_RULES,
    }
}

const CASE_PRICING: &str = r#"{
  "slot": "pricing",
  "call": "price",
  "input": {
    "lines": [
      { "product_id": 1, "name": "pen", "category": "office", "unit_price": 1500, "quantity": 2 }
    ],
    "user": { "id": 7, "created_at": 1767225600, "paid_orders": 0, "lifetime_spend": 0 },
    "now": 1768435200,
    "config": {}
  },
  "expected": [
    { "product_id": 1, "unit_price": 1500, "discount": 0, "reason": "" }
  ]
}
"#;

const CASE_COUPON: &str = r#"{
  "slot": "coupon",
  "call": "apply",
  "input": {
    "lines": [
      {
        "product_id": 1, "name": "pen", "category": "office", "unit_price": 1500,
        "quantity": 12, "discount": 0, "line_total": 18000
      }
    ],
    "subtotal": 18000,
    "user": { "id": 7, "created_at": 1767225600, "paid_orders": 2, "lifetime_spend": 40000 },
    "coupon": {
      "coupon_id": 3, "name": "10% off", "kind": "percent", "value": 10, "max_amount": 1000,
      "min_order_amount": 10000, "valid_from": 1767225600, "valid_until": 1769904000
    },
    "now": 1768435200,
    "config": {}
  },
  "expected": { "ok": 1000 }
}
"#;

const CASE_ORDER_RULES: &str = r#"{
  "slot": "order_rules",
  "call": "check",
  "input": {
    "lines": [
      {
        "product_id": 1, "name": "pen", "category": "office", "unit_price": 1500,
        "quantity": 2, "discount": 0, "line_total": 3000
      }
    ],
    "subtotal": 3000,
    "coupon_discount": 0,
    "total": 3000,
    "user": { "id": 7, "created_at": 1767225600, "paid_orders": 0, "lifetime_spend": 0 },
    "coupon": null,
    "now": 1768435200,
    "config": {}
  },
  "expected": []
}
"#;

// ----- Rust -------------------------------------------------------------

/// A workspace of its own: the plugin builds apart from `plugins/` and the
/// server, with the size settings the standard plugins use.
const RUST_CARGO: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
commerce-policy-sdk-1-1 = { path = "{sdk}/sdk-1.1" }

[dev-dependencies]
commerce-policy-sdk-1-1 = { path = "{sdk}/sdk-1.1", features = ["testing"] }

# Built on its own, not as a member of plugins/Cargo.toml.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
debug = false
panic = "abort"
"#;

/// How the standard plugins are linked (a small stack), for cargo to find
/// in the new plugin's folder.
const RUST_LINKING: &str = include_str!("../../../../plugins/.cargo/config.toml");

fn rust_source(slot: Slot) -> &'static str {
    match slot {
        Slot::Pricing => {
            r#"//! `{name}`: a `pricing` policy.
#![no_std]

use commerce_policy_sdk_1_1::prelude::*;

struct Policy;

impl Pricing for Policy {
    /// One answer per input line, in the same order. The stub charges list price.
    fn price(input: PricingInput) -> Vec<LinePrice> {
        list_prices(&input.lines)
    }
}

export_pricing!(Policy);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk_1_1::testing::pricing_cases::<Policy>(env!("CARGO_MANIFEST_DIR"));
}
"#
        }
        Slot::Coupon => {
            r#"//! `{name}`: a `coupon` policy.
#![no_std]

use commerce_policy_sdk_1_1::prelude::*;

struct Policy;

impl Coupon for Policy {
    /// The discount in won, or a reason code. The stub follows the coupon's own terms.
    fn apply(input: ApplyInput) -> Result<Money, String> {
        standard_apply(&input)
    }

    /// `Ok` when this user may be issued the coupon. The stub allows anyone.
    fn can_issue(input: IssueInput) -> Result<(), String> {
        let _ = input;
        Ok(())
    }
}

export_coupon!(Policy);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk_1_1::testing::coupon_cases::<Policy>(env!("CARGO_MANIFEST_DIR"));
}
"#
        }
        Slot::OrderRules => {
            r#"//! `{name}`: an `order_rules` policy.
#![no_std]

use commerce_policy_sdk_1_1::prelude::*;

struct Policy;

impl OrderRules for Policy {
    /// Every reason the order is not allowed; an empty list accepts it. The stub accepts all.
    fn check(input: OrderInput) -> Vec<Violation> {
        let _ = input;
        Vec::new()
    }
}

export_order_rules!(Policy);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk_1_1::testing::order_rules_cases::<Policy>(env!("CARGO_MANIFEST_DIR"));
}
"#
        }
    }
}

// ----- TypeScript ----------------------------------------------------------

const TS_PACKAGE: &str = r#"{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "commerce": { "slot": "{slot}", "contract": "{contract}" }
}
"#;

/// Checked against `types/` only: no DOM or Node types, as the component has neither.
pub const TS_CONFIG: &str = r#"{
  "compilerOptions": {
    "target": "es2022",
    "module": "es2022",
    "moduleResolution": "bundler",
    "strict": true,
    "noEmitOnError": true,
    "rootDir": "src",
    "types": [],
    "lib": ["es2022"]
  },
  "include": ["src/**/*.ts", "types/**/*.d.ts"]
}
"#;

fn ts_source(slot: Slot) -> &'static str {
    match slot {
        Slot::Pricing => {
            r#"// `{name}`: a `pricing` policy. Money is bigint won; divisions round toward zero.
import type { LinePrice, PricingInput } from 'commerce:policy/pricing@{contract}';

export const pricing = {
  /** One answer per input line, in the same order. The stub charges list price. */
  price(input: PricingInput): LinePrice[] {
    return input.lines.map((line) => ({
      productId: line.productId,
      unitPrice: line.unitPrice,
      discount: 0n,
      reason: '',
    }));
  },
};
"#
        }
        Slot::Coupon => {
            r#"// `{name}`: a `coupon` policy. Money is bigint won; divisions round toward zero.
// An `err` answer is a thrown string: `throw 'NOT_VALID_NOW'`.
import type { ApplyInput, IssueInput } from 'commerce:policy/coupon@{contract}';
import type { Money } from 'commerce:policy/types@{contract}';

export const coupon = {
  /** The discount in won, or a thrown reason code. The stub follows the coupon's own terms. */
  apply(input: ApplyInput): Money {
    const terms = input.coupon;
    if (input.now < terms.validFrom || input.now >= terms.validUntil) throw 'NOT_VALID_NOW';
    if (input.subtotal < terms.minOrderAmount) throw 'BELOW_MIN_ORDER_AMOUNT';
    const subtotal = input.subtotal > 0n ? input.subtotal : 0n;
    let amount = terms.value;
    if (terms.kind === 'percent') {
      amount = (subtotal * terms.value) / 100n;
      if (terms.maxAmount !== undefined && amount > terms.maxAmount) amount = terms.maxAmount;
    }
    return amount < 0n ? 0n : amount > subtotal ? subtotal : amount;
  },

  /** Returns when this user may be issued the coupon, else throws a reason code. The stub allows anyone. */
  canIssue(_input: IssueInput): void {},
};
"#
        }
        Slot::OrderRules => {
            r#"// `{name}`: an `order_rules` policy.
import type { OrderInput } from 'commerce:policy/order-rules@{contract}';
import type { Violation } from 'commerce:policy/types@{contract}';

export const orderRules = {
  /** Every reason the order is not allowed; an empty list accepts it. The stub accepts all. */
  check(_input: OrderInput): Violation[] {
    return [];
  },
};
"#
        }
    }
}

// ----- Python ----------------------------------------------------------------

const PY_PROJECT: &str = r#"[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.10"

[tool.commerce]
slot = "{slot}"
contract = "{contract}"

# The generated bindings, for editors and type checkers; the build makes its own.
[tool.pyright]
extraPaths = ["bindings"]

[tool.mypy]
mypy_path = "bindings"
"#;

fn py_source(slot: Slot) -> &'static str {
    match slot {
        Slot::Pricing => {
            r#""""`{name}`: a `pricing` policy. Money is int won; divisions round toward zero."""

from typing import List

from wit_world import exports
from wit_world.exports.pricing import LinePrice, PricingInput


class Pricing(exports.Pricing):
    def price(self, input: PricingInput) -> List[LinePrice]:
        """One answer per input line, in the same order. The stub charges list price."""
        return [LinePrice(line.product_id, line.unit_price, 0, "") for line in input.lines]
"#
        }
        Slot::Coupon => {
            r#""""`{name}`: a `coupon` policy. Money is int won; divisions round toward zero.

An `err` answer is raised: `raise Err("NOT_VALID_NOW")`.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.coupon import ApplyInput, IssueInput
from wit_world.imports.types import DiscountKind


class Coupon(exports.Coupon):
    def apply(self, input: ApplyInput) -> int:
        """The discount in won, or a raised reason code. The stub follows the coupon's own terms."""
        terms = input.coupon
        if input.now < terms.valid_from or input.now >= terms.valid_until:
            raise Err("NOT_VALID_NOW")
        if input.subtotal < terms.min_order_amount:
            raise Err("BELOW_MIN_ORDER_AMOUNT")
        subtotal = max(input.subtotal, 0)
        amount = terms.value
        if terms.kind == DiscountKind.PERCENT:
            amount = subtotal * terms.value // 100 if terms.value >= 0 else 0
            if terms.max_amount is not None:
                amount = min(amount, terms.max_amount)
        return min(max(amount, 0), subtotal)

    def can_issue(self, input: IssueInput) -> None:
        """Returns when this user may be issued the coupon, else raises a reason code.
        The stub allows anyone."""
        return None
"#
        }
        Slot::OrderRules => {
            r#""""`{name}`: an `order_rules` policy."""

from typing import List

from wit_world import exports
from wit_world.exports.order_rules import OrderInput
from wit_world.imports.types import Violation


class OrderRules(exports.OrderRules):
    def check(self, input: OrderInput) -> List[Violation]:
        """Every reason the order is not allowed; an empty list accepts it. The stub accepts all."""
        return []
"#
        }
    }
}
