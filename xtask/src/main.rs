//! `cargo xtask …`: the project's build chores, so nothing needs a hand-installed tool.
//!
//! - `cargo xtask test` — the whole test suite: starts a throwaway PostgreSQL
//!   cluster on loopback, runs every test on SQLite and on it, stops it.
//! - `cargo xtask postgres` — starts such a cluster and prints its URL until Ctrl-C
//!   (for running single tests by hand).

mod postgres;

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("postgres") => hold_postgres(),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 test [cargo test args]   run every test, on SQLite and a throwaway PostgreSQL\n  \
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

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

/// Installs the test provider's npm packages when they are missing or stale.
fn npm_install(dir: &str) -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join(dir);
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

fn test(extra: &[String]) -> Result<(), String> {
    npm_install("tests/provider")?;
    let cluster = postgres::Cluster::start()?;
    eprintln!("xtask: PostgreSQL test cluster at {}", cluster.admin_url());
    let mut child = cargo()
        .args(["test", "--workspace"])
        .args(extra)
        .env("PLUGBOARD_TEST_POSTGRES_URL", cluster.admin_url())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    // Pass the output through, adding up each test binary's result line.
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some((p, f)) = parse_result_line(&line) {
                passed += p;
                failed += f;
            }
        }
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    drop(cluster);
    println!("tests: {passed} passed, {failed} failed");
    if status.success() && passed > 0 {
        Ok(())
    } else if passed == 0 {
        Err("no test ran".to_string())
    } else {
        Err("tests failed".to_string())
    }
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
fn parse_result_line(line: &str) -> Option<(u64, u64)> {
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
    Some((count(" passed")?, count(" failed")?))
}
