//! `cargo xtask …`: the project's build chores, so nothing needs a hand-installed tool.
//!
//! - `cargo xtask test` — the whole test suite: starts a throwaway PostgreSQL
//!   cluster on loopback, runs every test on SQLite and on it, stops it.
//! - `cargo xtask postgres` — starts such a cluster and prints its URL until Ctrl-C
//!   (for running single tests by hand).

mod imports;
mod instructions;
mod postgres;
mod proxy_bench;
mod sdk;

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("postgres") => hold_postgres(),
        Some("sdk") => sdk::sdk(),
        Some("bench") => bench(),
        Some("demo") => demo(),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 test [cargo test args]   run every test, on SQLite and a throwaway PostgreSQL\n  \
                 sdk                      build the WebAssembly SDK into the npm package in npm/\n  \
                 bench                    measure: the npm package's size, and a token refresh storm\n  \
                 demo                     run the demo: Plugboard, a local provider and a customer app\n  \
                 postgres                 start a throwaway PostgreSQL and print its URL until Ctrl-C"
            );
            Err("unknown task".to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
/// The repository this run works on, found at run time: `cargo xtask` (a
/// `cargo run`) names the xtask package's directory in `CARGO_MANIFEST_DIR`;
/// else the nearest directory above the current one that holds `xtask/`. Not
/// the compile-time path: one build directory may serve several clones.
fn root() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let dir = std::path::PathBuf::from(dir);
        if let Some(parent) = dir.parent().filter(|p| p.join("xtask").is_dir()) {
            return parent.to_path_buf();
        }
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));
    cwd.ancestors()
        .find(|d| d.join("xtask").is_dir() && d.join("Cargo.toml").is_file())
        .map(std::path::Path::to_path_buf)
        .unwrap_or(cwd)
}

/// Runs a command to completion, failing with its name when it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

/// Installs the npm packages of `dir` (a test peer, a build tool) when they are missing or stale.
pub(crate) fn npm_install(dir: &str) -> Result<(), String> {
    let dir = root().join(dir);
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (
        std::fs::metadata(&installed),
        std::fs::metadata(dir.join("package-lock.json")),
    ) {
        (Ok(i), Ok(l)) => i.modified().ok() >= l.modified().ok(),
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    eprintln!("xtask: npm ci in {}", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("cannot run npm (Node.js 20 or later is needed): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("npm ci failed in {}", dir.display()))
    }
}

/// The version of botocore, the independent SigV4 signer the tests compare against.
const BOTOCORE: &str = "1.44.8";
/// The version of schemathesis, the fuzzer driven by `/v1/openapi.json`.
const SCHEMATHESIS: &str = "4.32.5";

/// botocore from PyPI, pinned, in the tools directory (kept between clones).
fn botocore() -> Result<std::path::PathBuf, String> {
    pip_tool("botocore", BOTOCORE, "the SigV4 tests")
}

/// A Python package from PyPI, pinned, installed once into the tools
/// directory (kept between clones); answers the directory for `PYTHONPATH`.
fn pip_tool(name: &str, version: &str, what_for: &str) -> Result<std::path::PathBuf, String> {
    let dir = sdk::tools_dir().join(format!("python/{name}-{version}"));
    if dir.join(name).exists() {
        return Ok(dir);
    }
    eprintln!("xtask: installing {name} {version} from PyPI for {what_for}");
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-conflicts",
            "--target",
        ])
        .arg(&dir)
        .arg(format!("{name}=={version}")))?;
    Ok(dir)
}

/// Totals of test results read from the runners' closing lines.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    /// Ignored (cargo) and skipped or todo (node) tests: reported, never hidden.
    skipped: u64,
}

/// Runs a test command, passing its output through and adding up its results
/// (cargo's `test result:` lines and node's `# pass` / `# fail` lines).
fn run_counted(command: &mut Command, tally: &mut Tally) -> Result<bool, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some((p, f, i)) = parse_result_line(&line) {
                tally.passed += p;
                tally.failed += f;
                tally.skipped += i;
            } else {
                // node's TAP reporter closes with `# pass N`, `# fail N`, …
                let count = |prefix: &str| {
                    line.strip_prefix(prefix)
                        .and_then(|n| n.trim().parse::<u64>().ok())
                };
                if let Some(n) = count("# pass ") {
                    tally.passed += n;
                } else if let Some(n) = count("# fail ").or_else(|| count("# cancelled ")) {
                    tally.failed += n;
                } else if let Some(n) = count("# skipped ").or_else(|| count("# todo ")) {
                    tally.skipped += n;
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("{command:?}: {e}"))?;
    Ok(status.success())
}

fn test(extra: &[String]) -> Result<(), String> {
    npm_install("tests/provider")?;
    npm_install("tests/browser")?;
    npm_install("examples/customer-app")?;
    // The package the browser tests load, built as users get it.
    sdk::sdk()?;
    run(cargo().args(["build", "--package", "plugboard", "--bin", "plugboard"]))?;
    let cluster = postgres::Cluster::start()?;
    eprintln!("xtask: PostgreSQL test cluster at {}", cluster.admin_url());
    let binary = sdk::target_dir().join("debug").join("plugboard");
    let botocore = botocore()?;
    let schemathesis = pip_tool("schemathesis", SCHEMATHESIS, "the fuzzing test")?;
    let mut tally = Tally::default();
    let mut ok = run_counted(
        cargo()
            .args(["test", "--workspace"])
            .args(extra)
            .env("PLUGBOARD_TEST_POSTGRES_URL", cluster.admin_url())
            .env("PLUGBOARD_BOTOCORE_PATH", &botocore)
            .env("PLUGBOARD_SCHEMATHESIS_PATH", &schemathesis),
        &mut tally,
    )?;
    // What a crash leaves behind (SECURITY 27): the server built with its
    // fault hooks, a feature no other build enables.
    ok &= run_counted(
        cargo()
            .args([
                "test",
                "--package",
                "plugboard",
                "--features",
                "fault-hooks",
                "--test",
                "crash",
            ])
            .args(extra)
            .env("PLUGBOARD_TEST_POSTGRES_URL", cluster.admin_url()),
        &mut tally,
    )?;
    // The npm package as users install it, then the SDK in Chromium: all of
    // it on SQLite, and its core again on PostgreSQL.
    let node_suites: [(&str, &[&str]); 2] = [
        (
            "sqlite",
            &[
                "npm/test/package.test.mjs",
                "tests/browser/core.test.mjs",
                "tests/browser/popup.test.mjs",
                "tests/browser/credentials.test.mjs",
                "tests/browser/bundlers.test.mjs",
                "tests/browser/demo.test.mjs",
            ],
        ),
        ("postgres", &["tests/browser/core.test.mjs"]),
    ];
    for (engine, files) in node_suites {
        eprintln!("xtask: browser and package tests on {engine}");
        ok &= run_counted(
            Command::new("node")
                .args(["--test", "--test-reporter=tap", "--test-timeout=120000"])
                .args(files)
                .current_dir(root())
                .env("PLUGBOARD_BIN", &binary)
                // Built once above: the demo test must not rebuild it while
                // other suites pack it.
                .env("PLUGBOARD_SDK_BUILT", "1")
                .env("PLUGBOARD_BROWSER_ENGINE", engine)
                .env("PLUGBOARD_BOTOCORE_PATH", &botocore)
                .env("PLUGBOARD_TEST_POSTGRES_URL", cluster.admin_url()),
            &mut tally,
        )?;
    }
    drop(cluster);
    println!(
        "tests: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.skipped
    );
    if tally.passed == 0 {
        Err("no test ran".to_string())
    } else if ok && tally.failed == 0 {
        Ok(())
    } else {
        Err("tests failed".to_string())
    }
}

/// The demo: builds what it needs, then runs `examples/demo.mjs` until Ctrl-C.
fn demo() -> Result<(), String> {
    npm_install("tests/provider")?;
    // `cargo xtask test` builds the SDK once for all its suites, the demo's included.
    if std::env::var_os("PLUGBOARD_SDK_BUILT").is_none() {
        sdk::sdk()?;
    }
    npm_install("examples/customer-app")?;
    run(cargo().args(["build", "--package", "plugboard", "--bin", "plugboard"]))?;
    let binary = sdk::target_dir().join("debug").join("plugboard");
    let status = Command::new("node")
        .arg("examples/demo.mjs")
        .current_dir(root())
        .env("PLUGBOARD_BIN", binary)
        .status()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the demo stopped ({status})"))
    }
}

/// Measurements: the bytes the npm package ships, raw and gzipped, built
/// exactly as `cargo xtask sdk` builds them; then the refresh storm.
fn bench() -> Result<(), String> {
    sdk::sdk()?;
    println!("{:<28} {:>10} {:>10}", "shipped file", "bytes", "gzipped");
    let (mut raw_total, mut gz_total) = (0, 0);
    for file in sdk::shipped_files() {
        let (raw, gz) = sdk::sizes(&file)?;
        raw_total += raw;
        gz_total += gz;
        println!(
            "{:<28} {raw:>10} {gz:>10}",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    println!("{:<28} {raw_total:>10} {gz_total:>10}", "total");
    let mut core = 0;
    for file in sdk::shipped_files().iter().take(2) {
        core += sdk::sizes(file)?.1;
    }
    println!(
        "the .wasm and its glue, gzipped: {core} bytes of the {} budget ({:.0}%)",
        sdk::SIZE_BUDGET,
        100.0 * core as f64 / sdk::SIZE_BUDGET as f64
    );
    println!(
        "gzip keeps {:.1}% of the bytes",
        100.0 * gz_total as f64 / raw_total.max(1) as f64
    );
    // The refresh storm (server/examples/refresh_storm.rs), optimised, on a
    // throwaway PostgreSQL cluster.
    println!();
    let cluster = postgres::Cluster::start()?;
    run(cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "plugboard",
            "--example",
            "refresh_storm",
        ])
        .env("PLUGBOARD_BENCH_POSTGRES_URL", cluster.admin_url()))?;
    drop(cluster);
    proxy_bench::run(cargo, &sdk::target_dir())
}

fn hold_postgres() -> Result<(), String> {
    let cluster = postgres::Cluster::start()?;
    println!("PLUGBOARD_TEST_POSTGRES_URL={}", cluster.admin_url());
    eprintln!("xtask: press Enter or Ctrl-D to stop the cluster");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(())
}

/// Reads `test result: ok. 12 passed; 0 failed; …` into (passed, failed).
fn parse_result_line(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| -> Option<u64> {
        rest.split(';')
            .find_map(|part| {
                part.trim()
                    .trim_start_matches("ok. ")
                    .trim_start_matches("FAILED. ")
                    .strip_suffix(word)
            })
            .and_then(|n| n.trim().parse().ok())
    };
    Some((
        count(" passed")?,
        count(" failed")?,
        count(" ignored").unwrap_or(0),
    ))
}
