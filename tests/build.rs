//! Builds every component of the `plugins/` workspace into
//! `<target>/plugins/`: the tests use the misbehaving and example components
//! the server's own build leaves out. The same code as the server's build.

#[path = "../host/build_components.rs"]
mod build_components;

use std::path::PathBuf;

use build_components::{build_components, component_members, env_var, first_error};

fn main() {
    if let Err(message) = run() {
        println!(
            "cargo:warning=building the policy components failed: {}",
            first_error(&message)
        );
        eprintln!("{message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let tests_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let root = tests_dir
        .parent()
        .ok_or("the tests crate has no parent directory")?
        .to_path_buf();
    build_components(&root, &component_members(&root)?)?;
    Ok(())
}
