//! `cargo xtask sdk`: builds `sdk-wasm` for wasm32, generates its bindings
//! with the `wasm-bindgen` CLI of exactly the crate's version, and leaves an
//! installable package in `npm/` (`npm pack ./npm` gives the tarball).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, root, run};

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";

/// Where build tools installed for the project live (outside the clone, so they survive it).
pub(crate) fn tools_dir() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(home).join(".cache/plugboard-tools")
}

pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
}

/// The `wasm-bindgen` version Cargo.lock pins.
fn locked_wasm_bindgen_version() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
            {
                return Ok(version.trim_end_matches('"').to_string());
            }
        }
    }
    Err("Cargo.lock has no wasm-bindgen package".into())
}

fn rustup_has_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false)
}

/// Builds the wasm module; returns its path. Uses rustup's wasm32 target,
/// installing it when missing; where that is refused, Debian's `rustc-web`
/// toolchain, which builds the standard library from source.
fn build_wasm() -> Result<PathBuf, String> {
    if rustup_has_target()
        || Command::new("rustup")
            .args(["target", "add", TARGET])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    {
        eprintln!("xtask sdk: building with rustup's {TARGET} target");
        run(cargo().args([
            "build",
            "--package",
            "plugboard-sdk",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ]))?;
        return Ok(target_dir()
            .join(TARGET)
            .join(PROFILE)
            .join("plugboard_sdk.wasm"));
    }
    eprintln!(
        "xtask sdk: rustup could not add {TARGET}; falling back to Debian's rustc-web toolchain"
    );
    if !Path::new("/usr/bin/cargo").exists() || !Path::new("/usr/lib/llvm-19/bin/wasm-ld").exists()
    {
        run(Command::new("apt-get").args([
            "install",
            "-y",
            "rustc-web",
            "cargo-web",
            "rust-web-src",
            "lld-19",
        ]))?;
    }
    let dir = target_dir().join("debian-web");
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    run(Command::new("/usr/bin/cargo")
        .args([
            "build",
            "--package",
            "plugboard-sdk",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ])
        .arg("-Zbuild-std=std,panic_abort")
        .env("PATH", path)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &dir)
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER",
            "/usr/lib/llvm-19/bin/wasm-ld",
        )
        .current_dir(root()))?;
    Ok(dir.join(TARGET).join(PROFILE).join("plugboard_sdk.wasm"))
}

fn cli_version(exe: &Path) -> Option<String> {
    let out = Command::new(exe).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
}

/// The `wasm-bindgen` CLI of exactly `version`: from PATH, from the tools
/// directory, or installed there from crates.io.
fn wasm_bindgen_cli(version: &str) -> Result<PathBuf, String> {
    let installed = tools_dir().join("bin/wasm-bindgen");
    for candidate in [PathBuf::from("wasm-bindgen"), installed.clone()] {
        if cli_version(&candidate).as_deref() == Some(version) {
            return Ok(candidate);
        }
    }
    eprintln!("xtask sdk: installing wasm-bindgen-cli {version} (a few minutes, once)");
    run(cargo()
        .args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={version}"),
            "--root",
        ])
        .arg(tools_dir()))?;
    Ok(installed)
}

/// Size of a file, raw and gzipped at the highest level.
pub fn sizes(path: &Path) -> Result<(u64, u64), String> {
    let raw = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .map_err(|e| format!("gzip: {e}"))?;
    Ok((raw, out.stdout.len() as u64))
}

/// The files the package ships that carry code.
pub fn shipped_files() -> Vec<PathBuf> {
    let npm = root().join("npm");
    vec![
        npm.join("dist/plugboard_sdk_bg.wasm"),
        npm.join("dist/plugboard_sdk.js"),
        npm.join("index.js"),
    ]
}

/// The most the `.wasm` and its glue may weigh together, gzipped (`-9`), in bytes.
pub const SIZE_BUDGET: u64 = 32_000;

/// The module name the glue gives the WebAssembly's imports.
const GLUE_MODULE: &str = "./plugboard_sdk_bg.js";

/// Runs a tool of `xtask/tools` (installed with `npm ci` there) under Node.
fn node_tool(script: &str) -> Command {
    let mut command = Command::new("node");
    command.arg(root().join("xtask/tools/node_modules").join(script));
    command
}

/// Shrinks what wasm-bindgen wrote: short import names in both files, then
/// `wasm-opt -Oz` on the module and a minifier on the glue.
fn shrink(dist: &Path) -> Result<(), String> {
    let wasm_path = dist.join("plugboard_sdk_bg.wasm");
    let glue_path = dist.join("plugboard_sdk.js");
    let read_error = |e: std::io::Error| format!("{}: {e}", dist.display());
    let wasm = std::fs::read(&wasm_path).map_err(read_error)?;
    let glue = std::fs::read_to_string(&glue_path).map_err(read_error)?;
    let (wasm, glue, renamed) = crate::imports::shorten(&wasm, &glue, GLUE_MODULE)?;
    std::fs::write(&wasm_path, wasm).map_err(read_error)?;
    std::fs::write(&glue_path, glue).map_err(read_error)?;
    eprintln!("xtask sdk: {renamed} import names shortened");
    crate::npm_install("xtask/tools")?;
    run(node_tool("binaryen/bin/wasm-opt")
        .args(["-Oz", "--converge"])
        .arg(&wasm_path)
        .arg("-o")
        .arg(&wasm_path))?;
    run(node_tool("terser/bin/terser")
        .arg(&glue_path)
        .args(["--module", "--compress", "--mangle", "--output"])
        .arg(&glue_path))?;
    Ok(())
}

fn report(stage: &str) -> Result<(), String> {
    for file in shipped_files().iter().take(2) {
        let (raw, gz) = sizes(file)?;
        eprintln!(
            "xtask sdk: {stage:<18} {:<22} {raw:>7} bytes, {gz:>6} gzipped",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    Ok(())
}

pub fn sdk() -> Result<(), String> {
    let wasm = build_wasm()?;
    let version = locked_wasm_bindgen_version()?;
    let cli = wasm_bindgen_cli(&version)?;
    let dist = root().join("npm/dist");
    let _ = std::fs::remove_dir_all(&dist);
    run(Command::new(&cli)
        .args([
            "--target",
            "web",
            "--remove-name-section",
            "--remove-producers-section",
            "--out-name",
            "plugboard_sdk",
        ])
        .arg("--out-dir")
        .arg(&dist)
        .arg(&wasm))?;
    report("from wasm-bindgen")?;
    shrink(&dist)?;
    // The package carries the project's license (npm adds LICENSE to any tarball).
    std::fs::copy(root().join("LICENSE"), root().join("npm/LICENSE"))
        .map_err(|e| format!("LICENSE: {e}"))?;
    report("shipped")?;
    eprintln!("xtask sdk: the package is in npm/ (`npm pack ./npm` makes the tarball)");
    Ok(())
}
