//! `cargo xtask …`: the project's build chores, so nothing needs a hand-installed tool.
//!
//! - `cargo xtask test` — the whole test suite: starts a throwaway PostgreSQL
//!   cluster on loopback, runs every test on SQLite and on it, stops it.
//! - `cargo xtask postgres` — starts such a cluster and prints its URL until Ctrl-C
//!   (for running single tests by hand).

mod postgres;

use std::process::{Command, ExitCode};

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

fn test(extra: &[String]) -> Result<(), String> {
    let cluster = postgres::Cluster::start()?;
    eprintln!("xtask: PostgreSQL test cluster at {}", cluster.admin_url());
    let status = cargo()
        .args(["test", "--workspace"])
        .args(extra)
        .env("PLUGBOARD_TEST_POSTGRES_URL", cluster.admin_url())
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    drop(cluster);
    if status.success() {
        Ok(())
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
