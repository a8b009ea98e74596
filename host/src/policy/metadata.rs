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

/// Longest name a component may give itself, in characters; every order
/// row stores it.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest version, in characters.
pub const MAX_VERSION_CHARS: usize = 50;
/// Most configuration keys a component may declare.
pub const MAX_CONFIG_KEYS: usize = 100;
/// Longest declared key, in characters.
pub const MAX_KEY_CHARS: usize = 100;
/// Longest declared default or description, in characters.
pub const MAX_DECLARED_TEXT_CHARS: usize = 1_000;

/// Longest configuration value, in characters.
pub const MAX_CONFIG_VALUE_CHARS: usize = 1_000;

/// `text` is at most `most` characters and holds no control character
/// (PostgreSQL refuses NUL in text; the others only hide what is stored).
fn printable(what: &str, text: &str, most: usize) -> Result<(), String> {
    let chars = text.chars().count();
    if chars > most {
        return Err(format!("{what} has {chars} characters (at most {most})"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} holds a control character"));
    }
    Ok(())
}

/// Checks what an uploaded component says about itself before any of it is
/// kept: its name and version, copied into every order it prices, and its
/// declared keys, shown in every report, are short, printable text.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let printable = |what: &str, text: &str, most| printable(&format!("its {what}"), text, most);
    if let Some(raw) = section(bytes, SECTION) {
        let text =
            std::str::from_utf8(raw).map_err(|_| format!("its {SECTION} section is not UTF-8"))?;
        let (name, version) = text.trim().split_once('@').unwrap_or((text.trim(), ""));
        printable("name", name, MAX_NAME_CHARS)?;
        printable("version", version, MAX_VERSION_CHARS)?;
    }
    if let Some(keys) = config_keys(bytes) {
        if keys.len() > MAX_CONFIG_KEYS {
            return Err(format!(
                "it declares {} configuration keys (at most {MAX_CONFIG_KEYS})",
                keys.len()
            ));
        }
        for key in &keys {
            printable("configuration key", &key.key, MAX_KEY_CHARS)?;
            printable("default", &key.default, MAX_DECLARED_TEXT_CHARS)?;
            printable("key description", &key.description, MAX_DECLARED_TEXT_CHARS)?;
        }
    }
    Ok(())
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
    let config = object
        .iter()
        .map(|(key, value)| match value.as_str() {
            Some(text) => Ok((key.clone(), text.to_owned())),
            None => Err(format!(
                "configuration key {key:?} is {value}; every value is a string"
            )),
        })
        .collect::<Result<Config, String>>()?;
    check_config(&config)?;
    Ok(config)
}

/// A configuration is at most [`MAX_CONFIG_KEYS`] keys of at most
/// [`MAX_KEY_CHARS`], values of at most [`MAX_CONFIG_VALUE_CHARS`], all
/// printable: it is stored with every activation and shown in reports.
pub fn check_config(config: &Config) -> Result<(), String> {
    if config.len() > MAX_CONFIG_KEYS {
        return Err(format!(
            "the configuration has {} keys (at most {MAX_CONFIG_KEYS})",
            config.len()
        ));
    }
    for (key, value) in config {
        if key.is_empty() {
            return Err("a configuration key is empty".to_owned());
        }
        printable(&format!("configuration key {key:?}"), key, MAX_KEY_CHARS)?;
        printable(
            &format!("the value of {key:?}"),
            value,
            MAX_CONFIG_VALUE_CHARS,
        )?;
    }
    Ok(())
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
    let config = config.into_iter().collect();
    check_config(&config)?;
    Ok(config)
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

    /// A component carrying `sections` as custom sections of its own.
    fn with_sections(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        for (name, data) in sections {
            let mut payload = vec![name.len() as u8];
            payload.extend_from_slice(name.as_bytes());
            payload.extend_from_slice(data);
            bytes.push(0);
            let mut len = payload.len();
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                bytes.push(if len == 0 { byte } else { byte | 0x80 });
                if len == 0 {
                    break;
                }
            }
            bytes.extend_from_slice(&payload);
        }
        bytes
    }

    #[test]
    fn names_versions_and_declared_keys_are_bounded_at_upload() {
        let fine = with_sections(&[(SECTION, b"pricing-bulk@1.2.0")]);
        assert_eq!(check(&fine), Ok(()));
        assert_eq!(read(&fine), Some(("pricing-bulk".into(), "1.2.0".into())));
        let long = format!("{}@1.0.0", "n".repeat(MAX_NAME_CHARS + 1));
        let refused = check(&with_sections(&[(SECTION, long.as_bytes())]));
        assert!(refused.is_err_and(|why| why.contains("name has 101 characters")));
        let control = check(&with_sections(&[(SECTION, b"bad\x07name@1.0.0")]));
        assert!(control.is_err_and(|why| why.contains("control character")));
        let keys = "k\tv\td\n".repeat(MAX_CONFIG_KEYS + 1);
        let many = check(&with_sections(&[(CONFIG_SECTION, keys.as_bytes())]));
        assert!(many.is_err_and(|why| why.contains("101 configuration keys")));
    }

    #[test]
    fn only_objects_of_strings_are_configurations() {
        let ok = from_json(&serde_json::json!({"days": "7"})).expect("an object of strings");
        assert_eq!(ok, config(&[("days", "7")]));
        for bad in [
            serde_json::json!({"days": 7}),
            serde_json::json!(["days", "7"]),
            serde_json::json!("days=7"),
            serde_json::json!({"k\u{0}": "x"}),
            serde_json::json!({"k": "x\u{0}"}),
            serde_json::json!({"": "x"}),
            serde_json::json!({"k": "v".repeat(MAX_CONFIG_VALUE_CHARS + 1)}),
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
