//! Builds the policy components the manifests in `plugins/environments/`
//! name (the standard and example Rust plugins) into `<target>/plugins/`,
//! so the server always starts with current components. Nothing else in
//! `plugins/` is built here: an author's plugin is built with
//! `commerce policy build <dir>`, and the tests build the rest themselves.
//! The host finds the folder through `env!("COMMERCE_PLUGIN_DIR")`.

mod build_components;

use std::path::PathBuf;

use build_components::{build_components, env_var, first_error, manifest_components};

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
    let names = manifest_components(&root)?;
    let out = build_components(&root, &names)?;
    println!("cargo:rustc-env=COMMERCE_PLUGIN_DIR={}", out.display());
    Ok(())
}
