//! Builds policy components of the `plugins/` workspace and copies each to
//! `<target>/plugins/<plugin-name>.wasm`. Shared by two build scripts:
//!
//! - the server's (`host/build.rs`) builds only the components the
//!   manifests in `plugins/environments/` name, so an author's plugin, broken
//!   or not, never stops or slows the server's build;
//! - the tests' (`tests/build.rs`) builds every member of `plugins/Cargo.toml`,
//!   the misbehaving test components included.
//!
//! The plugins are their own cargo workspace for `wasm32-wasip2`. They are
//! always built in release (debug host builds reuse the same artifacts) and in
//! a separate target dir, because the outer build holds the lock on its own.
//! An author builds a plugin outside that workspace with `commerce policy build`.

#![allow(dead_code)]

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WASM_TARGET: &str = "wasm32-wasip2";

/// Builds the `plugins/` workspace members `names` and copies their
/// components to `<target>/plugins/`; prints the `cargo:` lines that make
/// the calling build script rerun when they change. Returns that folder.
pub fn build_components(root: &Path, names: &[String]) -> Result<PathBuf, String> {
    let plugins = root.join("plugins");
    let target = target_dir(root);
    let out = target.join("plugins");
    // The named components and what they are built with (the SDKs).
    let mut dirs: Vec<PathBuf> = names.iter().map(|name| plugins.join(name)).collect();
    for member in workspace_members(root)? {
        let dir = plugins.join(&member);
        if !is_component(&dir)? {
            dirs.push(dir);
        }
    }
    watch(root, &plugins, &dirs);
    ensure_wasm_target()?;
    build(&plugins, &target.join("plugins-build"), names)?;

    let built = target
        .join("plugins-build")
        .join(WASM_TARGET)
        .join("release");
    fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    for name in names {
        let from = built.join(format!("{}.wasm", name.replace('-', "_")));
        let bytes = fs::read(&from).map_err(|e| {
            format!(
                "{}: {e}\nplugins/{name} must be a member of plugins/Cargo.toml and its package must be named `{name}`",
                from.display()
            )
        })?;
        let to = out.join(format!("{name}.wasm"));
        // Rewrite only on change, so a watcher of target/plugins sees real updates only.
        if fs::read(&to).ok().as_deref() != Some(bytes.as_slice()) {
            fs::write(&to, bytes).map_err(|e| format!("writing {}: {e}", to.display()))?;
        }
    }
    Ok(out)
}

/// The components the manifests in `plugins/environments/` name that are
/// members of the `plugins/` workspace (not `native:` ones, not paths).
pub fn manifest_components(root: &Path) -> Result<Vec<String>, String> {
    let environments = root.join("plugins").join("environments");
    println!("cargo:rerun-if-changed={}", environments.display());
    let members = workspace_members(root)?;
    let entries = fs::read_dir(&environments)
        .map_err(|e| format!("reading {}: {e}", environments.display()))?;
    let mut names = Vec::new();
    for path in entries.filter_map(|entry| entry.ok().map(|e| e.path())) {
        if path.extension() != Some(OsStr::new("toml")) {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let text =
            fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        // `component = "<name>"` lines; the server's manifest loader checks the rest.
        for line in text.lines() {
            let Some(value) = line.trim().strip_prefix("component") else {
                continue;
            };
            let Some(value) = value.trim_start().strip_prefix('=') else {
                continue;
            };
            let name = value.trim().trim_matches('"');
            if members.iter().any(|member| member == name) && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The members of `plugins/Cargo.toml` that are components (cdylibs), not the SDKs.
pub fn component_members(root: &Path) -> Result<Vec<String>, String> {
    let plugins = root.join("plugins");
    let mut names = Vec::new();
    for name in workspace_members(root)? {
        if is_component(&plugins.join(&name))? {
            names.push(name);
        }
    }
    Ok(names)
}

/// `members = [...]` of `plugins/Cargo.toml`.
fn workspace_members(root: &Path) -> Result<Vec<String>, String> {
    let manifest = root.join("plugins").join("Cargo.toml");
    let text = fs::read_to_string(&manifest)
        .map_err(|e| format!("reading {}: {e}", manifest.display()))?;
    let start = text
        .find("members")
        .and_then(|at| text[at..].find('[').map(|open| at + open + 1))
        .ok_or_else(|| format!("{}: no members list", manifest.display()))?;
    let end = text[start..]
        .find(']')
        .map(|close| start + close)
        .ok_or_else(|| format!("{}: the members list is not closed", manifest.display()))?;
    Ok(text[start..end]
        .split(',')
        .map(|item| item.trim().trim_matches('"').to_owned())
        .filter(|item| !item.is_empty() && !item.starts_with('#'))
        .collect())
}

/// `CARGO_TARGET_DIR` (relative to the workspace root when relative), else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Rebuild on changes to what the components are made of, and nothing else
/// (every rerun recompiles the host): not the cases or READMEs, and not a
/// `plugins/target` left by a build run there directly.
fn watch(root: &Path, plugins: &Path, members: &[PathBuf]) {
    let mut paths = vec![
        plugins.join("Cargo.toml"),
        plugins.join("Cargo.lock"),
        root.join("wit"),
    ];
    for dir in members {
        paths.extend([
            dir.join("Cargo.toml"),
            dir.join("src"),
            dir.join("build.rs"),
        ]);
    }
    // A missing path would make cargo rerun this script on every build.
    for path in paths.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// A plugin crate (as opposed to the SDK) is a cdylib.
fn is_component(dir: &Path) -> Result<bool, String> {
    let manifest = dir.join("Cargo.toml");
    let text = fs::read_to_string(&manifest)
        .map_err(|e| format!("reading {}: {e}", manifest.display()))?;
    Ok(text.contains("\"cdylib\""))
}

fn ensure_wasm_target() -> Result<(), String> {
    // Without rustup (a distribution's toolchain) the build below says what is missing.
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    let added = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .output()
        .map_err(|e| format!("running `rustup target add {WASM_TARGET}`: {e}"))?;
    if added.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the {WASM_TARGET} target is not installed and `rustup target add {WASM_TARGET}` failed; \
             install it by hand and build again\n{}",
            output_text(&added)
        ))
    }
}

fn build(plugins: &Path, target_dir: &Path, names: &[String]) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"));
    // Only these: a member that does not compile stops only the builds that need it.
    for name in names {
        command.args(["--package", name]);
    }
    command
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(plugins);
    // The outer build's settings are for the host: its flags, wrappers (clippy
    // sets one), target, profile overrides and jobserver must not reach the
    // inner build, nor must the variables cargo sets for this build script.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = [
            "RUSTFLAGS",
            "RUSTDOCFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_ENCODED_RUSTDOCFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_TARGET_DIR",
            "CARGO_MAKEFLAGS",
            "MAKEFLAGS",
            "MFLAGS",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_MANIFEST_LINKS",
            "RUSTC_LINKER",
            "OUT_DIR",
        ]
        .contains(&key)
            || [
                "CARGO_BUILD_",
                "CARGO_TARGET_",
                "CARGO_PROFILE_",
                "CARGO_CFG_",
                "CARGO_FEATURE_",
                "CARGO_PKG_",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix));
        // The user's job limit still holds: this machine may be small.
        if leaks && key != "CARGO_BUILD_JOBS" {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("running cargo for plugins/: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build --release --target {WASM_TARGET}` in plugins/ failed\n{}",
            output_text(&output)
        ))
    }
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The compiler's first error, else the first line.
pub fn first_error(message: &str) -> &str {
    let mut lines = message.lines();
    message
        .lines()
        .find(|line| line.starts_with("error"))
        .or_else(|| lines.next())
        .unwrap_or(message)
}

pub fn env_var(key: &str) -> Result<String, String> {
    env::var(key).map_err(|_| format!("{key} is not set; build scripts run under cargo"))
}
