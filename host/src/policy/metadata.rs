//! A component's name and version, from the `commerce:policy-meta` custom
//! section the guest SDK embeds (`name@version`).

use wasmparser::{Parser, Payload};

pub const SECTION: &str = "commerce:policy-meta";

/// `(name, version)` when the component carries them.
pub fn read(bytes: &[u8]) -> Option<(String, String)> {
    // The section sits in the component's core module, so nested payloads
    // are walked too.
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CustomSection(section)) = payload else {
            continue;
        };
        if section.name() == SECTION {
            let text = std::str::from_utf8(section.data()).ok()?;
            let (name, version) = text.trim().split_once('@')?;
            if !name.is_empty() && !version.is_empty() {
                return Some((name.to_owned(), version.to_owned()));
            }
        }
    }
    None
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
