//! The local runner: a component and a case in; the output, fuel used, wall
//! time and log lines out. `commerce policy run` and the plugin case tests
//! use it, with the same engine and limits as the server.
//!
//! Cases are read with the case codec (`commerce-policy-cases`) the SDKs'
//! case tests use, in the types of the contract version the component was
//! built against, so a case means the same in `cargo test` of the plugin
//! and here.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use commerce_policy_cases::Summary;

use serde_json::Value;

use super::{
    LoadedPolicy, PolicyError, Slot,
    bindings::{Config, Contract},
    engine::CallReport,
    loaded::{Compiled, PolicyInfo},
};

/// A case file: `plugins/<name>/cases/<case>.json`.
#[derive(Debug, Clone)]
pub struct Case {
    pub slot: Slot,
    /// `price`, `apply`, `can_issue` or `check`.
    pub call: String,
    pub input: Value,
    pub expected: Option<Value>,
}

impl Case {
    pub fn read(path: &Path) -> Result<Self, String> {
        let case = commerce_policy_cases::Case::read(path)?;
        Self::from_codec(case).map_err(|err| format!("{}: {err}", path.display()))
    }

    /// `text` as a case; `None` when it is not one (a bare input).
    pub fn parse(text: &str) -> Option<Result<Self, String>> {
        let case = commerce_policy_cases::Case::parse(text).ok()?;
        Some(Self::from_codec(case))
    }

    /// A case as the codec read it, its slot named.
    pub fn from_codec(case: commerce_policy_cases::Case) -> Result<Self, String> {
        Ok(Self {
            slot: case
                .slot
                .parse()
                .map_err(|err: PolicyError| err.to_string())?,
            call: case.call,
            input: case.input,
            expected: case.expected,
        })
    }
}

/// The functions a slot's world exports.
pub fn functions(slot: Slot) -> &'static [&'static str] {
    match slot {
        Slot::Pricing => &["price"],
        Slot::Coupon => &["apply", "can_issue"],
        Slot::OrderRules => &["check"],
    }
}

#[derive(Debug, Clone)]
pub struct RunOutput {
    pub output: Value,
    pub report: CallReport,
    /// The contract version the component was built against.
    pub contract: Contract,
}

/// Compiles `bytes` and checks them against `slot`'s world.
pub fn check(bytes: &[u8], slot: Slot) -> Result<(), PolicyError> {
    load(bytes, slot).map(drop)
}

/// Compiles `bytes` and loads them as a version of `slot`, outside any
/// deployment: no configuration, no shadow.
pub fn load(bytes: &[u8], slot: Slot) -> Result<Arc<LoadedPolicy>, PolicyError> {
    load_with(bytes, slot, Config::new())
}

/// As [`load`], with `config`: [`run_policy`] runs every call with it,
/// whatever the input's, when it is not empty.
pub fn load_with(
    bytes: &[u8],
    slot: Slot,
    config: Config,
) -> Result<Arc<LoadedPolicy>, PolicyError> {
    let component = Compiled::new(bytes)?;
    let (name, version) =
        super::metadata::read(bytes).unwrap_or_else(|| ("unnamed".to_owned(), "0.0.0".to_owned()));
    let info = PolicyInfo::new(
        slot,
        name,
        version,
        String::new(),
        chrono::Utc::now(),
        "runner".to_owned(),
    );
    LoadedPolicy::prepare(slot, component, info, config, 0)
}

/// Loads `bytes` as whichever slot its exports fill.
pub fn load_any(bytes: &[u8]) -> Result<Arc<LoadedPolicy>, PolicyError> {
    // Not a component at all: say so once, not once per slot.
    Compiled::new(bytes)?;
    let mut refusals = Vec::new();
    for slot in Slot::ALL {
        match load(bytes, slot) {
            Ok(policy) => return Ok(policy),
            Err(err) => refusals.push(format!("{slot}: {err}")),
        }
    }
    Err(PolicyError::InvalidComponent(format!(
        "the component fills no slot:\n  {}",
        refusals.join("\n  ")
    )))
}

/// Calls `function` of the component with `input` (as a case writes it) in
/// a fresh store.
pub fn run(
    bytes: &[u8],
    slot: Slot,
    function: &str,
    input: &Value,
) -> Result<RunOutput, PolicyError> {
    let policy = load(bytes, slot)?;
    run_policy(&policy, function, input)
}

/// Calls `function` of a loaded policy with `input` (as a case writes it),
/// read in the types of the policy's own contract version. A policy loaded
/// with a configuration runs with it, whatever the input's.
pub fn run_policy(
    policy: &LoadedPolicy,
    function: &str,
    input: &Value,
) -> Result<RunOutput, PolicyError> {
    let slot = policy.info.slot;
    if !functions(slot).contains(&function) {
        return Err(PolicyError::InvalidComponent(format!(
            "the {slot} slot has no function {function:?}; it has {:?}",
            functions(slot)
        )));
    }
    let contract = policy.contract();
    let mut call = contract
        .read_call(function, input)
        .map_err(PolicyError::InvalidComponent)?;
    if !policy.config.is_empty() {
        *call.config_mut() = policy.config.clone();
    }
    let (output, report) = policy.evaluate(&call)?;
    Ok(RunOutput {
        output: output.to_json(),
        report,
        contract,
    })
}

/// Runs every case of `paths` through `policy` (with `function` instead of
/// each case's, when given): a pass/fail row per case, with its fuel and time.
pub fn run_cases(policy: &LoadedPolicy, paths: &[PathBuf], function: Option<&str>) -> Summary {
    Summary::run(paths, |case| {
        let case = Case::from_codec(case.clone())?;
        if case.slot != policy.info.slot {
            return Err(format!(
                "a case of the {} slot; {} fills {}",
                case.slot,
                policy.label(),
                policy.info.slot
            ));
        }
        let function = function.unwrap_or(&case.call);
        let run = run_policy(policy, function, &case.input).map_err(|err| err.to_string())?;
        Ok((run.output, Some(run.report.fuel), Some(run.report.elapsed)))
    })
}
