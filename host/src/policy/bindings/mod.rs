//! The one place the WIT contract becomes Rust: one module per released
//! version of `commerce:policy`, as Zed keeps one per extension API version.
//!
//! The host works in the newest version's types. A component built against an
//! older version is served exactly the contract it was built for: its
//! version's module converts the host's input down (dropping what that
//! version does not know) and the component's output up. Which version a
//! component speaks is read from the interface it exports.

pub mod answer;
pub mod v1_0;
pub mod v1_1;

use std::fmt;

use wasmtime::{
    Engine, Store,
    component::{Component, InstancePre},
};

use super::{
    Slot,
    call::{Call, Output},
    engine::CallState,
};

/// The newest version's types: what quotes, orders, shadows and replays use.
pub use v1_1::{
    ApplyInput, Config, CouponTerms, DiscountKind, IssueInput, Line, LinePrice, LogLevel,
    OrderInput, PricedLine, PricingInput, UserFacts, Violation,
};

/// A released version of `commerce:policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contract {
    V1_0,
    V1_1,
}

impl Contract {
    /// Every version the host serves, newest first.
    pub const SERVED: [Contract; 2] = [Contract::V1_1, Contract::V1_0];
    /// The version whose types the host works in.
    pub const LATEST: Contract = Contract::V1_1;

    pub fn version(self) -> &'static str {
        match self {
            Contract::V1_0 => "1.0.0",
            Contract::V1_1 => "1.1.0",
        }
    }

    /// The interface a component of this version exports to fill `slot`,
    /// e.g. `commerce:policy/pricing@1.1.0`.
    pub fn export(self, slot: Slot) -> String {
        format!("commerce:policy/{}@{}", slot.interface(), self.version())
    }

    /// The version named `version`, e.g. `1.0.0`.
    pub fn named(version: &str) -> Option<Contract> {
        Contract::SERVED
            .into_iter()
            .find(|contract| contract.version() == version)
    }

    /// The call `function` with `input` as this version writes it (a case
    /// file, a recorded input), converted to the newest version's types.
    /// Reading each input in its own version's types keeps what a replay or
    /// a case means fixed when a newer version comes.
    pub fn read_call(self, function: &str, input: &serde_json::Value) -> Result<Call, String> {
        match self {
            Contract::V1_0 => v1_0::read_call(function, input),
            Contract::V1_1 => v1_1::read_call(function, input),
        }
        .map_err(|err| format!("{function} input (commerce:policy@{self}): {err}"))
    }

    /// The version whose `slot` interface the component exports, newest first.
    pub fn of(engine: &Engine, component: &Component, slot: Slot) -> Option<Contract> {
        let ty = component.component_type();
        Contract::SERVED.into_iter().find(|contract| {
            let export = contract.export(slot);
            ty.exports(engine).any(|(name, _)| name == export)
        })
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.version())
    }
}

/// A component pre-linked against one slot's world of one version.
pub enum Prepared {
    V1_0(v1_0::Prepared),
    V1_1(v1_1::Prepared),
}

impl Prepared {
    /// Type-checks the component's export against the world of `slot` in
    /// `contract`.
    pub fn new(
        contract: Contract,
        slot: Slot,
        pre: InstancePre<CallState>,
    ) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::V1_0 => Prepared::V1_0(v1_0::Prepared::new(slot, pre)?),
            Contract::V1_1 => Prepared::V1_1(v1_1::Prepared::new(slot, pre)?),
        })
    }

    pub fn contract(&self) -> Contract {
        match self {
            Prepared::V1_0(_) => Contract::V1_0,
            Prepared::V1_1(_) => Contract::V1_1,
        }
    }

    /// Instantiates the component in `store` and makes the call, in the
    /// component's own version of the contract.
    pub fn call(&self, store: &mut Store<CallState>, call: &Call) -> wasmtime::Result<Output> {
        match self {
            Prepared::V1_0(prepared) => prepared.call(store, call),
            Prepared::V1_1(prepared) => prepared.call(store, call),
        }
    }
}
