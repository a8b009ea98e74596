//! The slots a policy fills and how a policy call fails: the vocabulary
//! the rest of the server shares with the policy runtime, so it depends on
//! nothing.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A place in the request path that a policy fills.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Slot {
    Pricing,
    Coupon,
    OrderRules,
}

impl Slot {
    pub const ALL: [Slot; 3] = [Slot::Pricing, Slot::Coupon, Slot::OrderRules];

    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Pricing => "pricing",
            Slot::Coupon => "coupon",
            Slot::OrderRules => "order_rules",
        }
    }

    /// The WIT world a component must implement to fill this slot.
    pub fn world(self) -> &'static str {
        match self {
            Slot::Pricing => "pricing-policy",
            Slot::Coupon => "coupon-policy",
            Slot::OrderRules => "order-rules-policy",
        }
    }

    /// The interface a component exports to fill this slot, without its
    /// package and version (see [`super::bindings::Contract::export`]).
    pub fn interface(self) -> &'static str {
        match self {
            Slot::Pricing => "pricing",
            Slot::Coupon => "coupon",
            Slot::OrderRules => "order-rules",
        }
    }

    /// The functions a component in this slot exports, as case files and
    /// metrics name them.
    pub fn functions(self) -> &'static [&'static str] {
        match self {
            Slot::Pricing => &["price"],
            Slot::Coupon => &["apply", "can_issue"],
            Slot::OrderRules => &["check"],
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Slot {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Slot::ALL
            .into_iter()
            .find(|slot| slot.as_str() == s)
            .ok_or_else(|| PolicyError::UnknownSlot(s.to_owned()))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    /// The component cannot serve: it trapped, ran out of fuel, time or memory.
    #[error("the {slot} policy {policy} {reason}")]
    Unavailable {
        slot: Slot,
        policy: String,
        reason: String,
    },
    /// The bytes are not a component implementing the slot's world.
    #[error("{0}")]
    InvalidComponent(String),
    #[error("there is no policy slot named {0:?}; slots are pricing, coupon, order_rules")]
    UnknownSlot(String),
    /// A configuration that is not an object of strings, or that the
    /// component's declared keys refuse.
    #[error("{0}")]
    InvalidConfig(String),
}
