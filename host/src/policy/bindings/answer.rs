//! A component's answer is untrusted input: it is bounded while it is read
//! out of the guest's memory, before the host copies any of it.
//!
//! The generated bindings lift an answer whole: a component that points
//! every line's `reason` at one 8 MiB buffer makes the host copy that buffer
//! once per line before any check can run. Here the answer is lifted lazily
//! (`WasmList`, `WasmStr`: a pointer and a length into the guest's memory),
//! its shape is checked against the bounds below, and only then is each
//! string copied. Every served contract version answers in the same shapes
//! (`line-price`, `violation`, `result<_, string>`), so one reader serves
//! them all and yields the newest version's types.

use wasmtime::{
    Store,
    component::{
        ComponentExportIndex, ComponentNamedList, ComponentType, InstancePre, Lift, Lower,
        WasmList, WasmStr,
    },
};

use super::{LinePrice, Violation};
use crate::policy::{Slot, engine::CallState};

/// Longest `reason`, violation `code` or `message`, or refusal reason, in
/// bytes: a sentence for a customer or an operator, never a document.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most violations one `check` may answer.
pub const MAX_VIOLATIONS: usize = 100;

/// An answer outside the bounds: the component's failure, like a trap.
#[derive(Debug, thiserror::Error)]
#[error("answered out of bounds: {0}")]
pub struct OutOfBounds(String);

/// `line-price`, its `reason` still in the guest's memory.
#[derive(ComponentType, Lift)]
#[component(record)]
struct LazyLinePrice {
    #[component(name = "product-id")]
    product_id: u64,
    #[component(name = "unit-price")]
    unit_price: i64,
    discount: i64,
    reason: WasmStr,
}

/// `violation`, its strings still in the guest's memory.
#[derive(ComponentType, Lift)]
#[component(record)]
struct LazyViolation {
    code: WasmStr,
    message: WasmStr,
}

/// Where a slot's functions are in a component, found once when it is
/// prepared so that a call looks nothing up by name.
pub struct Exports {
    first: ComponentExportIndex,
    /// `can-issue` for the coupon slot; `None` for the others.
    second: Option<ComponentExportIndex>,
}

impl Exports {
    /// The functions of `slot` under the exported interface `interface`
    /// (e.g. `commerce:policy/pricing@1.1.0`).
    pub fn find(
        pre: &InstancePre<CallState>,
        interface: &str,
        slot: Slot,
    ) -> wasmtime::Result<Self> {
        let component = pre.component();
        let parent = component
            .get_export_index(None, interface)
            .ok_or_else(|| anyhow::anyhow!("the component does not export {interface}"))?;
        let function = |name: &str| {
            component
                .get_export_index(Some(&parent), name)
                .ok_or_else(|| anyhow::anyhow!("{interface} has no function {name}"))
        };
        Ok(match slot {
            Slot::Pricing => Self {
                first: function("price")?,
                second: None,
            },
            Slot::Coupon => Self {
                first: function("apply")?,
                second: Some(function("can-issue")?),
            },
            Slot::OrderRules => Self {
                first: function("check")?,
                second: None,
            },
        })
    }

    fn can_issue(&self) -> wasmtime::Result<&ComponentExportIndex> {
        self.second
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("can-issue is not a function of this slot"))
    }
}

/// Instantiates the component and calls `function` with `input`, keeping
/// the answer in the guest's memory.
fn call<I, R>(
    store: &mut Store<CallState>,
    pre: &InstancePre<CallState>,
    function: &ComponentExportIndex,
    input: &I,
) -> wasmtime::Result<R>
where
    I: ComponentType + Lower,
    R: Lift,
    for<'a> (&'a I,): ComponentNamedList + Lower,
{
    let instance = pre.instantiate(&mut *store)?;
    let func = instance.get_typed_func::<(&I,), (R,)>(&mut *store, function)?;
    let (answer,) = func.call(&mut *store, (input,))?;
    Ok(answer)
}

/// Copies a string out of the guest's memory if it is short enough and
/// holds no NUL; a UTF-8 string is measured where it lies, before any copy.
/// PostgreSQL stores no NUL in text or JSON, and an order stores its reasons
/// and violations: refused here, such an answer is the policy's failure
/// (`503`), not the database's (`500`). Other control characters stay a
/// policy's own choice (a message may span lines).
fn text(store: &Store<CallState>, what: &str, text: &WasmStr) -> wasmtime::Result<String> {
    let text = text.to_str(store)?;
    if text.len() > MAX_TEXT_BYTES {
        return Err(OutOfBounds(format!(
            "{what} of {} bytes (at most {MAX_TEXT_BYTES})",
            text.len()
        ))
        .into());
    }
    if text.contains('\0') {
        return Err(OutOfBounds(format!("{what} holding a NUL character")).into());
    }
    Ok(text.into_owned())
}

/// `price`: at most one answer per input line, each reason bounded.
pub fn price<I>(
    store: &mut Store<CallState>,
    pre: &InstancePre<CallState>,
    exports: &Exports,
    input: &I,
    lines: usize,
) -> wasmtime::Result<Vec<LinePrice>>
where
    I: ComponentType + Lower,
    for<'a> (&'a I,): ComponentNamedList + Lower,
{
    let answer: WasmList<LazyLinePrice> = call(store, pre, &exports.first, input)?;
    if answer.len() > lines {
        return Err(OutOfBounds(format!("{} prices for {lines} lines", answer.len())).into());
    }
    let mut prices = Vec::with_capacity(answer.len());
    for index in 0..answer.len() {
        let Some(line) = answer.get(&mut *store, index).transpose()? else {
            break;
        };
        prices.push(LinePrice {
            product_id: line.product_id,
            unit_price: line.unit_price,
            discount: line.discount,
            reason: text(store, "a reason", &line.reason)?,
        });
    }
    Ok(prices)
}

/// `apply`: the discount, or a bounded reason.
pub fn apply<I>(
    store: &mut Store<CallState>,
    pre: &InstancePre<CallState>,
    exports: &Exports,
    input: &I,
) -> wasmtime::Result<Result<i64, String>>
where
    I: ComponentType + Lower,
    for<'a> (&'a I,): ComponentNamedList + Lower,
{
    let answer: Result<i64, WasmStr> = call(store, pre, &exports.first, input)?;
    Ok(match answer {
        Ok(amount) => Ok(amount),
        Err(reason) => Err(text(store, "a reason", &reason)?),
    })
}

/// `can-issue`: yes, or a bounded reason.
pub fn can_issue<I>(
    store: &mut Store<CallState>,
    pre: &InstancePre<CallState>,
    exports: &Exports,
    input: &I,
) -> wasmtime::Result<Result<(), String>>
where
    I: ComponentType + Lower,
    for<'a> (&'a I,): ComponentNamedList + Lower,
{
    let answer: Result<(), WasmStr> = call(store, pre, exports.can_issue()?, input)?;
    Ok(match answer {
        Ok(()) => Ok(()),
        Err(reason) => Err(text(store, "a reason", &reason)?),
    })
}

/// `check`: at most [`MAX_VIOLATIONS`], each string bounded.
pub fn check<I>(
    store: &mut Store<CallState>,
    pre: &InstancePre<CallState>,
    exports: &Exports,
    input: &I,
) -> wasmtime::Result<Vec<Violation>>
where
    I: ComponentType + Lower,
    for<'a> (&'a I,): ComponentNamedList + Lower,
{
    let answer: WasmList<LazyViolation> = call(store, pre, &exports.first, input)?;
    if answer.len() > MAX_VIOLATIONS {
        return Err(OutOfBounds(format!(
            "{} violations (at most {MAX_VIOLATIONS})",
            answer.len()
        ))
        .into());
    }
    let mut violations = Vec::with_capacity(answer.len());
    for index in 0..answer.len() {
        let Some(violation) = answer.get(&mut *store, index).transpose()? else {
            break;
        };
        violations.push(Violation {
            code: text(store, "a violation code", &violation.code)?,
            message: text(store, "a violation message", &violation.message)?,
        });
    }
    Ok(violations)
}
