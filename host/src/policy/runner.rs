//! The local runner: a component, a slot and a JSON input in; the output,
//! fuel used, wall time and log lines out. `commerce policy run` and the
//! plugin case tests use it, with the same engine and limits as the server.
//!
//! JSON follows the WIT with `-` written `_`: records are objects, enums are
//! strings, `option` is null or the value, `result` is `{"ok": ..}` or
//! `{"err": ..}`, and `list<tuple<string, string>>` (the config) may be an object.

use std::{path::Path, time::Instant};

use serde::Deserialize;
use serde_json::{Map, Number, Value};
use wasmtime::component::{Type, Val};

use super::{
    LoadedPolicy, PolicyError, Slot,
    bindings::Contract,
    call::Call,
    engine::{self, CallReport, PolicyEngine},
    loaded::{Compiled, PolicyInfo},
};

/// A case file: `plugins/<name>/cases/<case>.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub slot: Slot,
    /// `price`, `apply`, `can_issue` or `check`.
    pub call: String,
    pub input: Value,
    #[serde(default)]
    pub expected: Option<Value>,
}

impl Case {
    pub fn read(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
        serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))
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
pub fn load(bytes: &[u8], slot: Slot) -> Result<std::sync::Arc<LoadedPolicy>, PolicyError> {
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
    LoadedPolicy::prepare(slot, component, info, Vec::new(), 0)
}

/// Calls `function` of the component with `input` in a fresh store.
pub fn run(
    bytes: &[u8],
    slot: Slot,
    function: &str,
    input: &Value,
) -> Result<RunOutput, PolicyError> {
    let policy = load(bytes, slot)?;
    let contract = policy.contract();
    if !functions(slot).contains(&function) {
        return Err(PolicyError::InvalidComponent(format!(
            "the {slot} slot has no function {function:?}; it has {:?}",
            functions(slot)
        )));
    }
    let Some(component) = &policy.component else {
        // A native policy takes the host's types: the input as they read it.
        let call = Call::from_case(function, input.clone())
            .map_err(|err| PolicyError::InvalidComponent(format!("input: {err}")))?;
        let (output, report) = policy.evaluate(&call)?;
        return Ok(RunOutput {
            output: output.to_json(),
            report,
            contract,
        });
    };
    let engine = PolicyEngine::get();
    let mut store = engine.store("runner");
    let unavailable = |reason: String| PolicyError::Unavailable {
        slot,
        policy: "runner".to_owned(),
        reason,
    };
    let started = Instant::now();
    let instance = engine
        .linker
        .instantiate(&mut store, component)
        .map_err(|err| unavailable(engine::describe_failure(&err)))?;
    let export = contract.export(slot);
    let missing = || PolicyError::InvalidComponent(format!("{export} does not export {function}"));
    let interface = instance
        .get_export_index(&mut store, None, &export)
        .ok_or_else(missing)?;
    let index = instance
        .get_export_index(&mut store, Some(&interface), &function.replace('_', "-"))
        .ok_or_else(missing)?;
    let func = instance.get_func(&mut store, index).ok_or_else(missing)?;
    let params = func.params(&store);
    let [(_, input_type)] = &params[..] else {
        return Err(PolicyError::InvalidComponent(format!(
            "{function} must take one input"
        )));
    };
    let argument = to_val(input, input_type)
        .map_err(|err| PolicyError::InvalidComponent(format!("input: {err}")))?;
    let mut results = vec![Val::Bool(false); func.results(&store).len()];
    func.call(&mut store, &[argument], &mut results)
        .and_then(|()| func.post_return(&mut store))
        .map_err(|err| unavailable(engine::describe_failure(&err)))?;
    let report = CallReport::of(&store, started);
    let output = results.first().map(from_val).unwrap_or(Value::Null);
    Ok(RunOutput {
        output,
        report,
        contract,
    })
}

fn json_name(wit: &str) -> String {
    wit.replace('-', "_")
}

/// Converts JSON to a component value of type `ty`.
pub fn to_val(json: &Value, ty: &Type) -> Result<Val, String> {
    let mismatch = || format!("expected {}, got {json}", describe(ty));
    macro_rules! int {
        ($variant:ident, $t:ty) => {
            json.as_i64()
                .and_then(|n| <$t>::try_from(n).ok())
                .or_else(|| json.as_u64().and_then(|n| <$t>::try_from(n).ok()))
                .map(Val::$variant)
                .ok_or_else(mismatch)
        };
    }
    match ty {
        Type::Bool => json.as_bool().map(Val::Bool).ok_or_else(mismatch),
        Type::S8 => int!(S8, i8),
        Type::S16 => int!(S16, i16),
        Type::S32 => int!(S32, i32),
        Type::S64 => int!(S64, i64),
        Type::U8 => int!(U8, u8),
        Type::U16 => int!(U16, u16),
        Type::U32 => int!(U32, u32),
        Type::U64 => int!(U64, u64),
        Type::Float32 => json
            .as_f64()
            .map(|f| Val::Float32(f as f32))
            .ok_or_else(mismatch),
        Type::Float64 => json.as_f64().map(Val::Float64).ok_or_else(mismatch),
        Type::Char => json
            .as_str()
            .and_then(|s| s.chars().next())
            .map(Val::Char)
            .ok_or_else(mismatch),
        Type::String => json
            .as_str()
            .map(|s| Val::String(s.to_owned()))
            .ok_or_else(mismatch),
        Type::List(list) => {
            let element = list.ty();
            if let (Value::Object(map), Type::Tuple(_)) = (json, &element) {
                // A config object: its entries as (key, value) tuples.
                return map
                    .iter()
                    .map(|(k, v)| {
                        to_val(
                            &Value::Array(vec![Value::String(k.clone()), v.clone()]),
                            &element,
                        )
                    })
                    .collect::<Result<_, _>>()
                    .map(Val::List);
            }
            json.as_array()
                .ok_or_else(mismatch)?
                .iter()
                .map(|item| to_val(item, &element))
                .collect::<Result<_, _>>()
                .map(Val::List)
        }
        Type::Record(record) => {
            let object = json.as_object().ok_or_else(mismatch)?;
            record
                .fields()
                .map(|field| {
                    let value = object.get(&json_name(field.name)).unwrap_or(&Value::Null);
                    let converted = if value.is_null() && !matches!(field.ty, Type::Option(_)) {
                        Err(format!("missing field {}", json_name(field.name)))
                    } else {
                        to_val(value, &field.ty)
                            .map_err(|err| format!("{}: {err}", json_name(field.name)))
                    };
                    converted.map(|v| (field.name.to_owned(), v))
                })
                .collect::<Result<_, _>>()
                .map(Val::Record)
        }
        Type::Tuple(tuple) => {
            let items = json.as_array().ok_or_else(mismatch)?;
            if items.len() != tuple.types().len() {
                return Err(mismatch());
            }
            items
                .iter()
                .zip(tuple.types())
                .map(|(item, ty)| to_val(item, &ty))
                .collect::<Result<_, _>>()
                .map(Val::Tuple)
        }
        Type::Enum(names) => {
            let name = json.as_str().ok_or_else(mismatch)?;
            // Any case: recorded inputs and shadow examples write `Fixed`.
            names
                .names()
                .find(|case| json_name(case).eq_ignore_ascii_case(&json_name(name)))
                .map(|case| Val::Enum(case.to_owned()))
                .ok_or_else(mismatch)
        }
        Type::Option(option) => match json {
            Value::Null => Ok(Val::Option(None)),
            value => Ok(Val::Option(Some(Box::new(to_val(value, &option.ty())?)))),
        },
        Type::Result(result) => {
            let object = json
                .as_object()
                .filter(|o| o.len() == 1)
                .ok_or_else(mismatch)?;
            let payload = |ty: Option<Type>, value: &Value| -> Result<Option<Box<Val>>, String> {
                ty.map(|ty| to_val(value, &ty).map(Box::new)).transpose()
            };
            if let Some(value) = object.get("ok") {
                Ok(Val::Result(Ok(payload(result.ok(), value)?)))
            } else if let Some(value) = object.get("err") {
                Ok(Val::Result(Err(payload(result.err(), value)?)))
            } else {
                Err(mismatch())
            }
        }
        Type::Variant(variant) => {
            let (name, value) = match json {
                Value::String(name) => (name.clone(), &Value::Null),
                Value::Object(map) if map.len() == 1 => {
                    let (name, value) = map.iter().next().ok_or_else(mismatch)?;
                    (name.clone(), value)
                }
                _ => return Err(mismatch()),
            };
            let case = variant
                .cases()
                .find(|case| json_name(case.name) == json_name(&name))
                .ok_or_else(mismatch)?;
            let payload = case
                .ty
                .map(|ty| to_val(value, &ty).map(Box::new))
                .transpose()?;
            Ok(Val::Variant(case.name.to_owned(), payload))
        }
        Type::Flags(_) => {
            let names = json.as_array().ok_or_else(mismatch)?;
            names
                .iter()
                .map(|n| n.as_str().map(str::to_owned).ok_or_else(mismatch))
                .collect::<Result<_, _>>()
                .map(Val::Flags)
        }
        _ => Err(format!("{} cannot be written as JSON", describe(ty))),
    }
}

fn describe(ty: &Type) -> String {
    format!("{ty:?}")
        .split(['(', ' '])
        .next()
        .unwrap_or("a value")
        .to_lowercase()
}

/// Converts a component value to JSON.
pub fn from_val(val: &Val) -> Value {
    let boxed = |v: &Option<Box<Val>>| v.as_deref().map_or(Value::Null, from_val);
    match val {
        Val::Bool(b) => Value::Bool(*b),
        Val::S8(n) => Value::from(*n),
        Val::S16(n) => Value::from(*n),
        Val::S32(n) => Value::from(*n),
        Val::S64(n) => Value::from(*n),
        Val::U8(n) => Value::from(*n),
        Val::U16(n) => Value::from(*n),
        Val::U32(n) => Value::from(*n),
        Val::U64(n) => Value::from(*n),
        Val::Float32(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        Val::Float64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Val::Char(c) => Value::String(c.to_string()),
        Val::String(s) => Value::String(s.clone()),
        Val::List(items) | Val::Tuple(items) => Value::Array(items.iter().map(from_val).collect()),
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (json_name(name), from_val(value)))
                .collect::<Map<_, _>>(),
        ),
        Val::Enum(name) => Value::String(json_name(name)),
        Val::Option(value) => boxed(value),
        Val::Result(Ok(value)) => Value::Object(Map::from_iter([("ok".to_owned(), boxed(value))])),
        Val::Result(Err(value)) => {
            Value::Object(Map::from_iter([("err".to_owned(), boxed(value))]))
        }
        Val::Variant(name, None) => Value::String(json_name(name)),
        Val::Variant(name, Some(value)) => {
            Value::Object(Map::from_iter([(json_name(name), from_val(value))]))
        }
        Val::Flags(names) => {
            Value::Array(names.iter().map(|n| Value::String(json_name(n))).collect())
        }
        other => Value::String(format!("{other:?}")),
    }
}
