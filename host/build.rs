//! Builds every policy component in `plugins/` and copies each to
//! `<target>/plugins/<plugin-name>.wasm`, so `cargo build`, `cargo test` and
//! `cargo clippy` of the host always run with current components. The host
//! finds them through `env!("COMMERCE_PLUGIN_DIR")`.
//!
//! The plugins are their own cargo workspace for `wasm32-wasip2`. They are
//! always built in release (debug host builds reuse the same artifacts) and in
//! a separate target dir, because the outer build holds the lock on its own.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    if let Err(message) = run() {
        // Cargo prints a failing build script's stderr; the warning says where to look.
        println!(
            "cargo:warning=building the policy components failed: {}",
            first_error(&message)
        );
        eprintln!("{message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let host_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let root = host_dir
        .parent()
        .ok_or("the host crate has no parent directory")?
        .to_path_buf();
    let plugins = root.join("plugins");
    let target = target_dir(&root);
    let out = target.join("plugins");

    let members = plugin_dirs(&plugins)?;
    watch(&root, &plugins, &members);
    println!("cargo:rustc-env=COMMERCE_PLUGIN_DIR={}", out.display());

    ensure_wasm_target()?;
    build(&plugins, &target.join("plugins-build"))?;

    let built = target
        .join("plugins-build")
        .join(WASM_TARGET)
        .join("release");
    fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    for dir in &members {
        let name = dir_name(dir);
        if !is_component(dir)? {
            continue;
        }
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
    Ok(())
}

/// `CARGO_TARGET_DIR` (relative to the workspace root when relative), else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Every crate directory under `plugins/`, sorted; `target` is build output.
fn plugin_dirs(plugins: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        fs::read_dir(plugins).map_err(|e| format!("reading {}: {e}", plugins.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.join("Cargo.toml").is_file() && path.file_name() != Some(OsStr::new("target"))
        })
        .collect();
    dirs.sort();
    Ok(dirs)
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

fn build(plugins: &Path, target_dir: &Path) -> Result<(), String> {
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
        .arg(plugins.join("Cargo.toml"))
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
fn first_error(message: &str) -> &str {
    let mut lines = message.lines();
    message
        .lines()
        .find(|line| line.starts_with("error"))
        .or_else(|| lines.next())
        .unwrap_or(message)
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn env_var(key: &str) -> Result<String, String> {
    env::var(key).map_err(|_| format!("{key} is not set; build scripts run under cargo"))
}
