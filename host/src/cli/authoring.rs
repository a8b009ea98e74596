//! `commerce policy new` and `commerce policy build`: a plugin folder in
//! Rust, TypeScript or Python, and its component in `target/plugins/`.
//!
//! A plugin folder says its language by the file that describes it:
//! `Cargo.toml` (Rust, built with cargo for `wasm32-wasip2`), `package.json`
//! (TypeScript, type-checked with `tsc` and made a component by
//! componentize-js) or `pyproject.toml` (Python, made a component by
//! componentize-py). The JavaScript and Python tools are installed on first
//! use into `target/tools/`, pinned, so nothing is installed by hand; only
//! node and python themselves must be there.
//!
//! An author's plugin is built on its own: it is not a member of the
//! `plugins/` workspace, and building it never touches the server's build.

mod templates;

use std::{
    fmt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::policy::{Slot, metadata};

/// The contract a new plugin is written against: the newest.
pub const NEW_CONTRACT: &str = "1.1.0";

/// The JavaScript tools, pinned: `tsc` checks the source against the
/// declarations jco generates, componentize-js makes the component.
/// jco 1.17 is the newest whose `guest-types` runs on Node 20.
const NODE_TOOLS: &[(&str, &str)] = &[
    ("@bytecodealliance/componentize-js", "0.23.0"),
    ("@bytecodealliance/jco", "1.17.9"),
    ("typescript", "5.9.3"),
];
/// The Python tool, pinned: bindings and components from one binary.
const PYTHON_TOOL: &str = "componentize-py==0.25.1";
/// What a TypeScript component may not import: the host links no WASI.
const JS_DISABLED: &[&str] = &["stdio", "random", "clocks", "http", "fetch-event"];

/// A plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Ts,
    Py,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::Ts => "TypeScript",
            Lang::Py => "Python",
        })
    }
}

/// The repository a plugin is authored in: where the WIT, the Rust SDK and
/// `target/` are.
#[derive(Debug, Clone)]
pub struct Repository {
    pub root: PathBuf,
}

impl Repository {
    /// The repository `dir` is in, else the one the working folder is in
    /// (a plugin may live outside the repository).
    pub fn of(dir: &Path) -> anyhow::Result<Self> {
        Self::find(dir).or_else(|err| Self::find(Path::new(".")).map_err(|_| err))
    }

    /// The nearest folder at or above `start` that holds `wit/`.
    pub fn find(start: &Path) -> anyhow::Result<Self> {
        let start = std::path::absolute(start)
            .with_context(|| format!("cannot resolve {}", start.display()))?;
        start
            .ancestors()
            .find(|dir| dir.join("wit").join(format!("commerce-policy@{NEW_CONTRACT}")).is_dir())
            .map(|root| Self {
                root: root.to_path_buf(),
            })
            .with_context(|| {
                format!(
                    "{} is not inside the commerce repository (no wit/commerce-policy@{NEW_CONTRACT} above it)",
                    start.display()
                )
            })
    }

    pub fn wit(&self, contract: &str) -> PathBuf {
        self.root
            .join("wit")
            .join(format!("commerce-policy@{contract}"))
    }

    /// `target/plugins/`, where the server and the runner find components.
    pub fn components(&self) -> PathBuf {
        self.root.join("target").join("plugins")
    }

    fn tools(&self) -> PathBuf {
        self.root.join("target").join("tools")
    }

    /// Intermediate files of author builds, apart from the server's.
    fn work(&self) -> PathBuf {
        self.root.join("target").join("plugins-authoring")
    }
}

/// What `commerce policy new` makes.
pub struct NewPlugin<'a> {
    pub name: &'a str,
    pub slot: Slot,
    pub lang: Lang,
    /// The folder to create; it must not exist yet.
    pub dir: &'a Path,
}

/// Makes a plugin folder: the slot's function stubbed, typed bindings for
/// TypeScript and Python, one case the stub passes, a README.
pub fn new(plugin: &NewPlugin<'_>) -> anyhow::Result<()> {
    check_name(plugin.name)?;
    if plugin.dir.exists() {
        bail!(
            "{} already exists; choose another folder or name",
            plugin.dir.display()
        );
    }
    let parent = plugin.dir.parent().unwrap_or(Path::new("."));
    let repo = Repository::of(if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    })?;
    let dir = std::path::absolute(plugin.dir)?;
    let files = templates::files(&templates::Plugin {
        name: plugin.name,
        slot: plugin.slot,
        lang: plugin.lang,
        sdk: &relative_path(&dir, &repo.root.join("plugins"))?,
    });
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    match plugin.lang {
        Lang::Rust => {}
        Lang::Ts => ts_types(&repo, &dir, plugin.slot, NEW_CONTRACT)?,
        Lang::Py => py_bindings(&repo, &dir, plugin.slot, NEW_CONTRACT)?,
    }
    Ok(())
}

/// A component built by [`build`].
#[derive(Debug)]
pub struct Built {
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    pub bytes: usize,
    pub elapsed: Duration,
}

/// Builds the plugin in `dir` to `target/plugins/<name>.wasm`.
pub fn build(dir: &Path) -> anyhow::Result<Built> {
    let started = Instant::now();
    let repo = Repository::of(dir)?;
    let dir = std::path::absolute(dir)?;
    let plugin = Described::read(&dir)?;
    check_name(&plugin.name)?;
    let bytes = match plugin.lang {
        Lang::Rust => build_rust(&repo, &dir, &plugin)?,
        Lang::Ts => build_ts(&repo, &dir, &plugin)?,
        Lang::Py => build_py(&repo, &dir, &plugin)?,
    };
    // The label orders record; Rust plugins carry it already (the SDK embeds it).
    let bytes = if metadata::read(&bytes).is_some() {
        bytes
    } else {
        with_label(bytes, &plugin.name, &plugin.version)
    };
    let out = repo.components();
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = out.join(format!("{}.wasm", plugin.name));
    // Written whole and renamed, so a server watching the folder never reads half a file.
    let partial = out.join(format!(".{}.wasm.partial", plugin.name));
    std::fs::write(&partial, &bytes)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Built {
        name: plugin.name,
        version: plugin.version,
        path,
        bytes: bytes.len(),
        elapsed: started.elapsed(),
    })
}

/// Builds the plugin in `dir` unless `target/plugins/<name>.wasm` is newer
/// than every file of the plugin's own (not its generated bindings); the
/// tests use it for the TypeScript and Python examples.
pub fn build_if_stale(dir: &Path) -> anyhow::Result<PathBuf> {
    let repo = Repository::of(dir)?;
    let plugin = Described::read(dir)?;
    let path = repo.components().join(format!("{}.wasm", plugin.name));
    let built = std::fs::metadata(&path)
        .and_then(|meta| meta.modified())
        .ok();
    let newest = newest_change(dir)?;
    if built.is_some_and(|built| built >= newest) {
        return Ok(path);
    }
    build(dir).map(|built| built.path)
}

/// The latest modification of the files a build reads (generated and
/// intermediate folders aside).
fn newest_change(dir: &Path) -> anyhow::Result<std::time::SystemTime> {
    let mut newest = std::time::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if [
            "types",
            "bindings",
            "target",
            "node_modules",
            "cases",
            "__pycache__",
        ]
        .iter()
        .any(|skip| name == *skip)
        {
            continue;
        }
        let meta = entry.metadata()?;
        let changed = if meta.is_dir() {
            newest_change(&entry.path())?
        } else {
            meta.modified()?
        };
        newest = newest.max(changed);
    }
    Ok(newest)
}

/// What a plugin folder says of itself.
#[derive(Debug)]
struct Described {
    lang: Lang,
    name: String,
    version: String,
    /// The slot, for TypeScript and Python (Rust's SDK macro knows it).
    slot: Option<Slot>,
    contract: String,
}

#[derive(Deserialize)]
struct PackageJson {
    name: String,
    version: String,
    commerce: CommerceSection,
}

#[derive(Deserialize)]
struct CommerceSection {
    slot: Slot,
    contract: String,
}

#[derive(Deserialize)]
struct Pyproject {
    project: PyprojectProject,
    tool: PyprojectTool,
}

#[derive(Deserialize)]
struct PyprojectProject {
    name: String,
    version: String,
}

#[derive(Deserialize)]
struct PyprojectTool {
    commerce: CommerceSection,
}

#[derive(Deserialize)]
struct CargoToml {
    package: CargoPackage,
}

#[derive(Deserialize)]
struct CargoPackage {
    name: String,
    version: String,
}

impl Described {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let read = |file: &str| -> anyhow::Result<Option<String>> {
            let path = dir.join(file);
            if !path.is_file() {
                return Ok(None);
            }
            std::fs::read_to_string(&path)
                .map(Some)
                .with_context(|| format!("cannot read {}", path.display()))
        };
        if let Some(text) = read("package.json")? {
            let package: PackageJson = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}/package.json needs name, version and commerce.slot, commerce.contract",
                    dir.display()
                )
            })?;
            return Ok(Self {
                lang: Lang::Ts,
                name: package.name,
                version: package.version,
                slot: Some(package.commerce.slot),
                contract: package.commerce.contract,
            });
        }
        if let Some(text) = read("pyproject.toml")? {
            let project: Pyproject = toml::from_str(&text).with_context(|| {
                format!(
                    "{}/pyproject.toml needs [project] name, version and [tool.commerce] slot, contract",
                    dir.display()
                )
            })?;
            return Ok(Self {
                lang: Lang::Py,
                name: project.project.name,
                version: project.project.version,
                slot: Some(project.tool.commerce.slot),
                contract: project.tool.commerce.contract,
            });
        }
        if let Some(text) = read("Cargo.toml")? {
            let cargo: CargoToml = toml::from_str(&text).with_context(|| {
                format!(
                    "{}/Cargo.toml needs a [package] with its own name and version",
                    dir.display()
                )
            })?;
            return Ok(Self {
                lang: Lang::Rust,
                name: cargo.package.name,
                version: cargo.package.version,
                slot: None,
                contract: String::new(),
            });
        }
        bail!(
            "{} is not a plugin folder: it has no Cargo.toml (Rust), package.json (TypeScript) or pyproject.toml (Python)",
            dir.display()
        )
    }

    fn slot(&self) -> anyhow::Result<Slot> {
        self.slot
            .with_context(|| format!("the plugin {} does not name its slot", self.name))
    }
}

/// Names become file names and labels: lowercase letters, digits and `-`.
fn check_name(name: &str) -> anyhow::Result<()> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if fits {
        Ok(())
    } else {
        bail!(
            "{name:?} is not a plugin name: use lowercase letters, digits and '-', starting with a letter"
        )
    }
}

// ----- Rust -------------------------------------------------------------

fn build_rust(repo: &Repository, dir: &Path, plugin: &Described) -> anyhow::Result<Vec<u8>> {
    const TARGET: &str = "wasm32-wasip2";
    // Absolute: cargo runs in the plugin's folder (see below).
    let dir = &std::path::absolute(dir)?;
    let target_dir = std::path::absolute(repo.work().join("rust"))?;
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Cargo reads `.cargo/config.toml` (how the component is linked)
        // from the folder it runs in and the folders above it.
        .current_dir(dir)
        // The author's own settings for the host must not reach the guest.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    run(
        &mut command,
        "cargo",
        "Rust (https://rustup.rs) with the wasm32-wasip2 target: `rustup target add wasm32-wasip2`",
    )
    .map_err(|err| {
        if format!("{err}").contains("believes it's in a workspace") {
            // A folder under plugins/ that is not a member of plugins/Cargo.toml.
            err.context(format!(
                "{}/Cargo.toml: give the plugin a workspace of its own with an empty `[workspace]` table, as `commerce policy new` does",
                dir.display()
            ))
        } else {
            err
        }
    })?;
    let built = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", plugin.name.replace('-', "_")));
    std::fs::read(&built).with_context(|| {
        format!(
            "{}: cargo built no component; is {}/Cargo.toml a cdylib (`crate-type = [\"cdylib\"]`)?",
            built.display(),
            dir.display()
        )
    })
}

// ----- TypeScript --------------------------------------------------------

fn build_ts(repo: &Repository, dir: &Path, plugin: &Described) -> anyhow::Result<Vec<u8>> {
    let slot = plugin.slot()?;
    let tools = node_tools(repo)?;
    // A fresh clone has no generated declarations until the first build.
    if !dir.join("types").is_dir() {
        ts_types(repo, dir, slot, &plugin.contract)?;
    }
    let work = repo.work().join("ts").join(&plugin.name);
    let js = work.join("js");
    let _ = std::fs::remove_dir_all(&js);
    // Type-checks against the declarations in `types/` and writes plain JavaScript.
    run(
        Command::new(tools.join("node_modules/.bin/tsc"))
            .arg("-p")
            .arg(dir)
            .arg("--outDir")
            .arg(&js),
        "tsc",
        "",
    )?;
    let entry = js.join("policy.js");
    if !entry.is_file() {
        bail!(
            "{} has no src/policy.ts (tsc wrote no policy.js); the slot's exports live there",
            dir.display()
        );
    }
    let out = work.join("component.wasm");
    let mut command = Command::new(tools.join("node_modules/.bin/componentize-js"));
    command
        .arg(&entry)
        .arg("--wit")
        .arg(repo.wit(&plugin.contract))
        .args(["--world-name", slot.world(), "--disable"])
        .args(JS_DISABLED)
        .arg("-o")
        .arg(&out);
    run(&mut command, "componentize-js", "")?;
    std::fs::read(&out).with_context(|| format!("cannot read {}", out.display()))
}

/// Regenerates `types/`: TypeScript declarations of the slot's world, from
/// the WIT, with jco's guest types.
pub fn ts_types(repo: &Repository, dir: &Path, slot: Slot, contract: &str) -> anyhow::Result<()> {
    let tools = node_tools(repo)?;
    let types = dir.join("types");
    let _ = std::fs::remove_dir_all(&types);
    // jco reads the WIT through a sandbox rooted at the working folder: paths relative to it.
    let wit = relative_path(&repo.root, &repo.wit(contract))?;
    let types_arg =
        relative_path(&repo.root, &types).unwrap_or_else(|_| types.to_string_lossy().into_owned());
    run(
        Command::new(tools.join("node_modules/.bin/jco"))
            .current_dir(&repo.root)
            .args([
                "guest-types",
                &wit,
                "--world-name",
                slot.world(),
                "-q",
                "-o",
            ])
            .arg(types_arg),
        "jco",
        "",
    )
}

/// `target/tools/node`, with the pinned tools installed if they are not yet.
fn node_tools(repo: &Repository) -> anyhow::Result<PathBuf> {
    let node = "Node.js 18 or newer with npm (https://nodejs.org, or `apt-get install nodejs npm`)";
    version_of("node", node)?;
    let dir = repo.tools().join("node");
    let wanted: Vec<String> = NODE_TOOLS
        .iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    let stamp = dir.join("installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.join("\n").as_str()) {
        return Ok(dir);
    }
    version_of("npm", node)?;
    eprintln!(
        "installing {} into {} (once)",
        wanted.join(", "),
        dir.display()
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Its own package.json, so npm installs here and not in a parent project.
    let dependencies: serde_json::Map<String, serde_json::Value> = NODE_TOOLS
        .iter()
        .map(|(name, version)| ((*name).to_owned(), serde_json::Value::from(*version)))
        .collect();
    let package = serde_json::json!({ "private": true, "dependencies": dependencies });
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(&package)?,
    )?;
    run(
        Command::new("npm").current_dir(&dir).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]),
        "npm",
        node,
    )?;
    std::fs::write(&stamp, wanted.join("\n"))?;
    Ok(dir)
}

// ----- Python -------------------------------------------------------------

fn build_py(repo: &Repository, dir: &Path, plugin: &Described) -> anyhow::Result<Vec<u8>> {
    let slot = plugin.slot()?;
    let tool = python_tool(repo)?;
    // For editors only (the build generates its own), made once for a fresh clone.
    if !dir.join("bindings").is_dir() {
        py_bindings(repo, dir, slot, &plugin.contract)?;
    }
    let src = dir.join("src");
    if !src.join("app.py").is_file() {
        bail!(
            "{} has no src/app.py; the slot's class lives there",
            dir.display()
        );
    }
    let work = repo.work().join("py").join(&plugin.name);
    std::fs::create_dir_all(&work)?;
    let out = work.join("component.wasm");
    // `--stub-wasi`: the interpreter's WASI imports become traps, since the host links none.
    run(
        Command::new(tool)
            .arg("-d")
            .arg(repo.wit(&plugin.contract))
            .args(["-w", slot.world(), "componentize", "--stub-wasi", "-p"])
            .arg(&src)
            .args(["app", "-o"])
            .arg(&out),
        "componentize-py",
        "",
    )?;
    std::fs::read(&out).with_context(|| format!("cannot read {}", out.display()))
}

/// Regenerates `bindings/`: the slot's world as Python dataclasses and a
/// protocol class to implement, from the WIT, with componentize-py.
pub fn py_bindings(
    repo: &Repository,
    dir: &Path,
    slot: Slot,
    contract: &str,
) -> anyhow::Result<()> {
    let tool = python_tool(repo)?;
    let bindings = dir.join("bindings");
    let _ = std::fs::remove_dir_all(&bindings);
    run(
        Command::new(tool)
            .arg("-d")
            .arg(repo.wit(contract))
            .args(["-w", slot.world(), "bindings"])
            .arg(&bindings),
        "componentize-py",
        "",
    )
}

/// `target/tools/python/bin/componentize-py`, installed into its own
/// virtual environment if it is not yet.
fn python_tool(repo: &Repository) -> anyhow::Result<PathBuf> {
    let python_needed = "Python 3.10 or newer with venv (https://python.org, or `apt-get install python3 python3-venv`)";
    let python = ["python3", "python"]
        .into_iter()
        .find(|name| version_of(name, "").is_ok())
        .with_context(|| {
            format!("python is not installed: building Python policies needs {python_needed}")
        })?;
    let venv = repo.tools().join("python");
    let tool = venv.join("bin").join("componentize-py");
    let stamp = venv.join("installed");
    if tool.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(PYTHON_TOOL) {
        return Ok(tool);
    }
    eprintln!("installing {PYTHON_TOOL} into {} (once)", venv.display());
    run(
        Command::new(python).args(["-m", "venv"]).arg(&venv),
        "python -m venv",
        python_needed,
    )?;
    run(
        Command::new(venv.join("bin").join("python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PYTHON_TOOL,
        ]),
        "pip",
        python_needed,
    )?;
    std::fs::write(&stamp, PYTHON_TOOL)?;
    Ok(tool)
}

// ----- helpers ------------------------------------------------------------

/// `bytes` with a `commerce:policy-meta` custom section holding
/// `name@version` appended: a component may end with custom sections, and
/// the host reads the label from there as it does the Rust SDK's.
fn with_label(mut bytes: Vec<u8>, name: &str, version: &str) -> Vec<u8> {
    let label = format!("{name}@{version}");
    let mut payload = leb128(metadata::SECTION.len());
    payload.extend_from_slice(metadata::SECTION.as_bytes());
    payload.extend_from_slice(label.as_bytes());
    bytes.push(0); // custom section
    bytes.extend(leb128(payload.len()));
    bytes.extend(payload);
    bytes
}

/// Unsigned LEB128, as wasm encodes sizes.
fn leb128(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The first line `<program> --version` prints, or what to install.
fn version_of(program: &str, needed: &str) -> anyhow::Result<String> {
    match Command::new(program).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()),
        _ => bail!("{program} is not installed or does not run: this needs {needed}"),
    }
}

/// Runs `command`; a failure carries the tool's own output.
fn run(command: &mut Command, tool: &str, needed: &str) -> anyhow::Result<()> {
    let output = match command.output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !needed.is_empty() => {
            bail!("{tool} is not installed: this needs {needed}")
        }
        Err(err) => return Err(err).with_context(|| format!("cannot run {tool}")),
    };
    if output.status.success() {
        return Ok(());
    }
    bail!(
        "{tool} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `to` relative to the folder `from`, with `/` separators (both absolute).
fn relative_path(from: &Path, to: &Path) -> anyhow::Result<String> {
    let from = std::path::absolute(from)?;
    let to = std::path::absolute(to)?;
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.components().count() - common;
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_owned(), ups).collect();
    parts.extend(
        to.components()
            .skip(common)
            .map(|part| part.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words() {
        assert!(check_name("pricing-bulk-ts").is_ok());
        for bad in ["", "Pricing", "1st", "a_b", "../x", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_label_appended_to_a_component_is_read_back() {
        // The smallest component: magic and the component layer's version.
        let empty = b"\0asm\x0d\0\x01\0".to_vec();
        assert_eq!(metadata::read(&empty), None);
        let labelled = with_label(empty, "pricing-bulk-ts", "1.0.0");
        assert_eq!(
            metadata::read(&labelled),
            Some(("pricing-bulk-ts".to_owned(), "1.0.0".to_owned()))
        );
        assert_eq!(leb128(300), vec![0xac, 0x02]);
    }

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        let rel =
            relative_path(Path::new("/r/plugins/mine"), Path::new("/r/plugins")).expect("a path");
        assert_eq!(rel, "..");
        let rel = relative_path(Path::new("/r"), Path::new("/r/wit/x")).expect("a path");
        assert_eq!(rel, "wit/x");
        let rel = relative_path(Path::new("/a/b"), Path::new("/c")).expect("a path");
        assert_eq!(rel, "../../c");
    }
}
