//! Per-environment manifests: `plugins/environments/<env>.toml` says which
//! component serves each slot, with the slot's configuration.
//!
//! ```toml
//! [slots.pricing]
//! component = "pricing-standard"     # <component dir>/pricing-standard.wasm
//! [slots.pricing.config]
//! key = "value"
//! [slots.coupon]
//! component = "../custom/coupon.wasm" # a path, relative to this file
//! [slots.order_rules]
//! component = "native:order-rules-standard" # compiled into the server
//! [slots.order_rules.limits]                 # optional, per call
//! memory_mb = 64                            # linear memory
//! fuel = 20000000                           # instructions
//! time_ms = 250                             # wall-clock backstop
//! ```
//!
//! `native:` names one of the standard policies built into the server (see
//! [`super::native`]), for measuring what WebAssembly costs.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Slot, engine::Limits, metadata, native::Native};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    slots: BTreeMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    component: String,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    limits: LimitsEntry,
}

/// A slot's `[limits]`: what one call may spend; unset ones keep the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsEntry {
    memory_mb: Option<usize>,
    fuel: Option<u64>,
    time_ms: Option<u64>,
}

impl LimitsEntry {
    fn limits(&self) -> Result<Limits, String> {
        let default = Limits::default();
        Limits::new(
            self.memory_mb
                .map_or(default.memory, |mb| mb.saturating_mul(1 << 20)),
            self.fuel.unwrap_or(default.fuel),
            self.time_ms.unwrap_or(default.time_ms),
        )
    }
}

/// A manifest that parsed and whose components could be read.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    pub slots: Vec<ManifestSlot>,
}

#[derive(Debug, Clone)]
pub struct ManifestSlot {
    pub slot: Slot,
    /// The component's file; `None` for a native policy.
    pub component: Option<PathBuf>,
    pub bytes: Vec<u8>,
    pub sha256: [u8; 32],
    pub name: String,
    pub version: String,
    pub config: Vec<(String, String)>,
    /// What one call of the slot may spend.
    pub limits: Limits,
}

impl Manifest {
    /// `manifest:<file name>`, how versions it activated are labelled.
    pub fn source(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("manifest:{file}")
    }

    /// Makes the manifest's per-slot limits this process's.
    pub fn apply_limits(&self) {
        for entry in &self.slots {
            entry.limits.apply(entry.slot);
        }
    }

    pub fn slot(&self, slot: Slot) -> &ManifestSlot {
        self.slots
            .iter()
            .find(|entry| entry.slot == slot)
            .expect("a loaded manifest has every slot")
    }
}

/// Reads `<manifest_dir>/<environment>.toml` and the components it names.
/// Every error names the file, the slot when there is one, and the problem.
pub fn load(
    manifest_dir: &Path,
    component_dir: &Path,
    environment: &str,
) -> Result<Manifest, String> {
    let path = manifest_dir.join(format!("{environment}.toml"));
    let at = path.display();
    let text = std::fs::read_to_string(&path).map_err(|err| {
        format!("{at}: cannot read the manifest of environment {environment:?}: {err}")
    })?;
    let file: File = toml::from_str(&text).map_err(|err| format!("{at}: {err}"))?;
    for name in file.slots.keys() {
        name.parse::<Slot>().map_err(|err| format!("{at}: {err}"))?;
    }
    let mut slots = Vec::with_capacity(Slot::ALL.len());
    for slot in Slot::ALL {
        let entry = file
            .slots
            .get(slot.as_str())
            .ok_or_else(|| format!("{at}: slot {slot}: missing; every slot needs a component"))?;
        let limits = entry
            .limits
            .limits()
            .map_err(|err| format!("{at}: slot {slot}: limits: {err}"))?;
        if let Some(native) = Native::named(entry.component.as_bytes()) {
            let native = native.map_err(|err| format!("{at}: slot {slot}: {err}"))?;
            let bytes = native.bytes();
            slots.push(ManifestSlot {
                slot,
                component: None,
                sha256: Sha256::digest(&bytes).into(),
                bytes,
                name: native.name().to_owned(),
                version: "native".to_owned(),
                config: entry.config.clone().into_iter().collect(),
                limits,
            });
            continue;
        }
        let component = if entry.component.ends_with(".wasm") {
            path.parent()
                .unwrap_or(Path::new("."))
                .join(&entry.component)
        } else {
            component_dir.join(format!("{}.wasm", entry.component))
        };
        let bytes = std::fs::read(&component).map_err(|err| {
            format!(
                "{at}: slot {slot}: cannot read component {}: {err} (build the plugins with `cargo build --release`)",
                component.display()
            )
        })?;
        let (name, version) = metadata::read(&bytes).unwrap_or_else(|| {
            let name = component
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_else(|| entry.component.clone());
            (name, "0.0.0".to_owned())
        });
        slots.push(ManifestSlot {
            slot,
            sha256: Sha256::digest(&bytes).into(),
            component: Some(component),
            bytes,
            name,
            version,
            config: entry.config.clone().into_iter().collect(),
            limits,
        });
    }
    Ok(Manifest { path, slots })
}
