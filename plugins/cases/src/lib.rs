//! The case files of policy components (`plugins/<name>/cases/*.json`) and
//! what runs them: one codec for the SDKs' case tests (`cargo test` of a
//! plugin), the server's runner (`commerce policy run`) and the server's
//! own tests, so a case means the same wherever it runs.
//!
//! A case is `{"slot", "call", "input", "expected"}`. `input` and `expected`
//! are the WIT records in their serde form (field names are the WIT names
//! with `-` written `_`), decoded with serde straight into the types of
//! whoever reads them (the guest SDK's or the host's). A case file may also
//! write what people find easier, which [`decode`] rewrites first:
//! - `config` as an object of strings (`{"days": "7"}`) rather than pairs;
//! - an enum in lower case (`"fixed"`) rather than its Rust name (`"Fixed"`).
//!
//! Results are written `{"ok": ..}` / `{"err": ..}` ([`encode`]).

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

/// One case file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Case {
    /// `pricing`, `coupon` or `order_rules`.
    pub slot: String,
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
        Self::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|err| format!("not a case file: {err}"))
    }

    /// The input as `T`, the call's input record.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, String> {
        decode(&self.input).map_err(|err| format!("{} input: {err}", self.call))
    }
}

/// `input` (as a case writes it) as `T`.
pub fn decode<T: DeserializeOwned>(input: &Value) -> Result<T, String> {
    serde_json::from_value(normalize(input.clone())).map_err(|err| err.to_string())
}

/// Rewrites what a case may write for people into the serde form.
fn normalize(mut input: Value) -> Value {
    if let Some(Value::Object(config)) = input.get("config") {
        let pairs = config
            .iter()
            .map(|(key, value)| Value::Array(vec![Value::String(key.clone()), value.clone()]))
            .collect();
        input["config"] = Value::Array(pairs);
    }
    // The one enum of the inputs: `coupon.kind`.
    if let Some(Value::String(kind)) = input.pointer_mut("/coupon/kind") {
        let mut chars = kind.chars();
        *kind = chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
    }
    input
}

/// An input (serde form) as a case writes it: the config as an object, the
/// coupon's kind in lower case. What a shadow's example shows.
pub fn readable(mut input: Value) -> Value {
    if let Some(Value::Array(pairs)) = input.get("config") {
        let object: Map<String, Value> = pairs
            .iter()
            .filter_map(|pair| {
                let key = pair.get(0)?.as_str()?.to_owned();
                Some((key, pair.get(1)?.clone()))
            })
            .collect();
        input["config"] = Value::Object(object);
    }
    if let Some(Value::String(kind)) = input.pointer_mut("/coupon/kind") {
        *kind = kind.to_lowercase();
    }
    input
}

/// An answer as `expected` writes it: serde's form, with a result as
/// `{"ok": ..}` or `{"err": ..}`.
pub fn encode<T: Serialize>(output: &T) -> Value {
    match serde_json::to_value(output).unwrap_or(Value::Null) {
        Value::Object(object) if object.len() == 1 => {
            let (key, value) = object.into_iter().next().unwrap_or_default();
            let key = match key.as_str() {
                "Ok" => "ok".to_owned(),
                "Err" => "err".to_owned(),
                _ => key,
            };
            Value::Object(Map::from_iter([(key, value)]))
        }
        other => other,
    }
}

/// The `*.json` files of `dir`, in name order.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{}: no cases (*.json)", dir.display()));
    }
    Ok(paths)
}

/// How one case went.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    /// `Ok` when the answer is the expected one (or none is expected), else
    /// what differs or what went wrong.
    pub outcome: Result<(), String>,
    /// Instructions spent, when the case ran in the engine.
    pub fuel: Option<u64>,
    pub elapsed: Option<Duration>,
}

/// A run of cases: a pass/fail table and a verdict.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub rows: Vec<Row>,
}

impl Summary {
    /// Runs `run` on every case of `paths` and compares its answer with the
    /// case's `expected`. `run` answers the output and, when it has them,
    /// the fuel and time spent.
    pub fn run(
        paths: &[PathBuf],
        mut run: impl FnMut(&Case) -> Result<(Value, Option<u64>, Option<Duration>), String>,
    ) -> Self {
        let rows = paths
            .iter()
            .map(|path| {
                let name = path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let ran = Case::read(path).and_then(|case| Ok((run(&case)?, case.expected)));
                match ran {
                    Ok(((output, fuel, elapsed), expected)) => Row {
                        name,
                        outcome: compare(expected.as_ref(), &output),
                        fuel,
                        elapsed,
                    },
                    Err(err) => Row {
                        name,
                        outcome: Err(err),
                        fuel: None,
                        elapsed: None,
                    },
                }
            })
            .collect();
        Self { rows }
    }

    pub fn passed(&self) -> usize {
        self.rows.iter().filter(|row| row.outcome.is_ok()).count()
    }

    pub fn failed(&self) -> usize {
        self.rows.len() - self.passed()
    }
}

/// `Ok` when `output` is `expected` (or nothing is expected).
pub fn compare(expected: Option<&Value>, output: &Value) -> Result<(), String> {
    match expected {
        Some(expected) if expected != output => {
            Err(format!("expected {expected}\n    got {output}"))
        }
        _ => Ok(()),
    }
}

impl fmt::Display for Summary {
    /// One line per case (`pass` or `FAIL`, its name, fuel and time when
    /// known, and what differs), then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|row| row.name.len())
            .max()
            .unwrap_or(0);
        for row in &self.rows {
            let verdict = if row.outcome.is_ok() { "pass" } else { "FAIL" };
            write!(f, "{verdict}  {:width$}", row.name)?;
            if let Some(fuel) = row.fuel {
                write!(f, "  {fuel:>9} fuel")?;
            }
            if let Some(elapsed) = row.elapsed {
                write!(f, "  {:>8.3} ms", elapsed.as_secs_f64() * 1000.0)?;
            }
            writeln!(f)?;
            if let Err(why) = &row.outcome {
                for line in why.lines() {
                    writeln!(f, "      {line}")?;
                }
            }
        }
        write!(
            f,
            "{} cases: {} passed, {} failed",
            self.rows.len(),
            self.passed(),
            self.failed()
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    enum Kind {
        Fixed,
        Percent,
    }

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Terms {
        kind: Kind,
    }

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Input {
        coupon: Terms,
        config: Vec<(String, String)>,
    }

    #[test]
    fn what_people_write_decodes_and_reads_back() {
        let written = json!({"coupon": {"kind": "percent"}, "config": {"days": "7"}});
        let input: Input = decode(&written).expect("a case input");
        assert_eq!(
            input,
            Input {
                coupon: Terms {
                    kind: Kind::Percent
                },
                config: vec![("days".into(), "7".into())],
            }
        );
        let serde_form = serde_json::to_value(&input).expect("serializes");
        assert_eq!(decode::<Input>(&serde_form).expect("the serde form"), input);
        assert_eq!(readable(serde_form), written);
        let _ = Kind::Fixed;
    }

    #[test]
    fn results_are_written_in_lower_case() {
        assert_eq!(encode(&Ok::<i64, String>(5)), json!({"ok": 5}));
        assert_eq!(encode(&Ok::<(), String>(())), json!({"ok": null}));
        assert_eq!(
            encode(&Err::<(), String>("NO".into())),
            json!({"err": "NO"})
        );
        assert_eq!(encode(&vec![1, 2]), json!([1, 2]));
    }

    #[test]
    fn a_summary_counts_and_tables_its_cases() {
        let summary = Summary {
            rows: vec![
                Row {
                    name: "a.json".into(),
                    outcome: Ok(()),
                    fuel: Some(10),
                    elapsed: None,
                },
                Row {
                    name: "b.json".into(),
                    outcome: compare(Some(&json!(1)), &json!(2)),
                    fuel: None,
                    elapsed: None,
                },
            ],
        };
        assert_eq!((summary.passed(), summary.failed()), (1, 1));
        let table = summary.to_string();
        assert!(
            table.contains("pass  a.json") && table.contains("FAIL  b.json"),
            "{table}"
        );
        assert!(table.ends_with("2 cases: 1 passed, 1 failed"), "{table}");
    }
}
