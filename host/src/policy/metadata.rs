//! What a component says about itself in custom sections the guest SDK
//! embeds: its `name@version` (`commerce:policy-meta`) and the configuration
//! keys it reads, with their defaults and descriptions
//! (`commerce:policy-config`, one `key\tdefault\tdescription` line per key).
//!
//! A slot's configuration is checked against the keys its component
//! declares: a key it does not declare is refused, since a typo there
//! would otherwise leave the policy silently on its default. A component
//! that declares nothing (built before declarations, or by hand) accepts
//! any configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wasmparser::{Parser, Payload};

use super::bindings::Config;

pub const SECTION: &str = "commerce:policy-meta";
pub const CONFIG_SECTION: &str = "commerce:policy-config";

/// One configuration key a component reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfigKey {
    pub key: String,
    /// What the component uses when the configuration does not set the key.
    pub default: String,
    pub description: String,
}

/// The bytes of the custom section `name`, wherever it sits: the sections
/// lie in the component's core module, so nested payloads are walked too.
fn section<'a>(bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    Parser::new(0)
        .parse_all(bytes)
        .find_map(|payload| match payload {
            Ok(Payload::CustomSection(section)) if section.name() == name => Some(section.data()),
            _ => None,
        })
}

/// `(name, version)` when the component carries them.
pub fn read(bytes: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(section(bytes, SECTION)?).ok()?;
    let (name, version) = text.trim().split_once('@')?;
    (!name.is_empty() && !version.is_empty()).then(|| (name.to_owned(), version.to_owned()))
}

/// `(name, version)` for an uploaded component: its own, or `unnamed` and a
/// version made of its digest when it carries none.
pub fn label(bytes: &[u8], sha256: &[u8; 32]) -> (String, String) {
    read(bytes).unwrap_or_else(|| {
        (
            "unnamed".to_owned(),
            format!("sha-{}", &hex::encode(sha256)[..12]),
        )
    })
}

/// The configuration keys the component declares; `None` when it declares
/// none (then any configuration is accepted).
pub fn config_keys(bytes: &[u8]) -> Option<Vec<ConfigKey>> {
    let text = String::from_utf8_lossy(section(bytes, CONFIG_SECTION)?).into_owned();
    Some(
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let mut fields = line.splitn(3, '\t');
                let mut next = || fields.next().unwrap_or_default().trim().to_owned();
                ConfigKey {
                    key: next(),
                    default: next(),
                    description: next(),
                }
            })
            .collect(),
    )
}

/// Checks `config` against the declared keys: every key it sets must be
/// declared. `None` declares nothing and accepts everything.
pub fn validate(declared: Option<&[ConfigKey]>, config: &Config) -> Result<(), String> {
    let Some(declared) = declared else {
        return Ok(());
    };
    let unknown: Vec<&str> = config
        .iter()
        .map(|(key, _)| key.as_str())
        .filter(|key| !declared.iter().any(|declared| declared.key == *key))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = declared.iter().map(|key| key.key.as_str()).collect();
    Err(if known.is_empty() {
        format!("the component reads no configuration, but it sets {unknown:?}")
    } else {
        format!("the component does not read {unknown:?}; it reads {known:?}")
    })
}

/// The declared keys `config` does not set: the component runs with their
/// defaults, which a shadow or a replay should say.
pub fn missing<'a>(declared: Option<&'a [ConfigKey]>, config: &Config) -> Vec<&'a ConfigKey> {
    declared
        .unwrap_or_default()
        .iter()
        .filter(|declared| !config.iter().any(|(key, _)| *key == declared.key))
        .collect()
}

/// A sentence naming the missing keys and the defaults they fall back to.
pub fn missing_note(missing: &[&ConfigKey]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let keys: Vec<String> = missing
        .iter()
        .map(|key| format!("{} (default {:?})", key.key, key.default))
        .collect();
    Some(format!(
        "the candidate reads configuration keys its configuration does not set, so it ran with their defaults: {}",
        keys.join(", ")
    ))
}

/// A configuration as the API shows it: an object of strings.
pub fn to_object(config: &Config) -> BTreeMap<String, String> {
    config.iter().cloned().collect()
}

/// A JSON value as a configuration: an object whose values are strings.
pub fn from_json(value: &serde_json::Value) -> Result<Config, String> {
    let object = value
        .as_object()
        .ok_or("the configuration is a JSON object of strings, e.g. {\"days\": \"7\"}")?;
    object
        .iter()
        .map(|(key, value)| match value.as_str() {
            Some(text) => Ok((key.clone(), text.to_owned())),
            None => Err(format!(
                "configuration key {key:?} is {value}; every value is a string"
            )),
        })
        .collect()
}

/// `key=value` pairs from the command line as a configuration.
pub fn from_pairs(pairs: &[String]) -> Result<Config, String> {
    let mut config: BTreeMap<String, String> = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        config.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(config.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Vec<ConfigKey> {
        vec![ConfigKey {
            key: "days".into(),
            default: "7".into(),
            description: "how new a member is".into(),
        }]
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn undeclared_keys_are_refused_and_missing_ones_named() {
        let declared = declared();
        assert!(validate(Some(&declared), &config(&[("days", "3")])).is_ok());
        let err = validate(Some(&declared), &config(&[("dayz", "3")])).expect_err("a typo");
        assert!(err.contains("dayz") && err.contains("days"), "{err}");
        assert!(validate(Some(&[]), &config(&[("days", "3")])).is_err());
        assert!(validate(None, &config(&[("anything", "goes")])).is_ok());
        let missing = missing(Some(&declared), &Config::new());
        assert_eq!(missing.len(), 1);
        assert!(missing_note(&missing).is_some_and(|note| note.contains("days (default \"7\")")));
    }

    #[test]
    fn only_objects_of_strings_are_configurations() {
        let ok = from_json(&serde_json::json!({"days": "7"})).expect("an object of strings");
        assert_eq!(ok, config(&[("days", "7")]));
        for bad in [
            serde_json::json!({"days": 7}),
            serde_json::json!(["days", "7"]),
            serde_json::json!("days=7"),
        ] {
            assert!(from_json(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            from_pairs(&["a=1".into(), "b=x=y".into()]).expect("pairs"),
            config(&[("a", "1"), ("b", "x=y")])
        );
        assert!(from_pairs(&["a".into()]).is_err());
    }
}
