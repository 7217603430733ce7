//! SECURITY 32: an independent fuzzer, schemathesis (PyPI, pinned; installed
//! by `cargo xtask test`, found at `PLUGBOARD_SCHEMATHESIS_PATH`), driven by
//! `/v1/openapi.json`, against the `plugboard` binary on SQLite whose outbound
//! calls may reach no host but 127.0.0.1 (`PLUGBOARD_OUTBOUND_ONLY_ALLOWED`:
//! a fuzzed URL is refused before DNS). A bounded run: no answer may be a
//! 5xx, and every answer must match the documented status, content type and
//! schema — but the proxy's (the upstream's answers, passed through) and the
//! popup's HTML pages.

mod common;

use std::process::Command;

use common::binary;
use serde_json::{json, Value};

const OPERATOR_TOKEN: &str = "fuzz-operator-token-0123456789";

fn schemathesis(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let path = std::env::var("PLUGBOARD_SCHEMATHESIS_PATH").unwrap_or_else(|_| {
        panic!(
            "the fuzzer needs PLUGBOARD_SCHEMATHESIS_PATH; run the suite with `cargo xtask test`, \
             which installs schemathesis"
        )
    });
    let output = Command::new("python3")
        .args(["-m", "schemathesis.cli", "run"])
        .args(args)
        .current_dir(dir)
        .env("PYTHONPATH", path)
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Whether a run found nothing wrong with the API: every generated case
/// passed every check, and no error but schemathesis's own "Runtime Error"
/// (its generator failing on a schema, as Hypothesis sometimes does on
/// free-form JSON such as a function's `input`) — a network error, a timeout
/// or a crash of the server is a failure.
fn judge(output: &str) -> Result<(), String> {
    let cases = output
        .lines()
        .skip_while(|l| l.trim() != "Test cases:")
        .nth(1)
        .map(str::trim)
        .ok_or("no test-case summary")?;
    let (generated, passed) = cases
        .split_once(" generated, ")
        .and_then(|(g, rest)| Some((g.trim().parse::<u64>().ok()?, rest)))
        .ok_or_else(|| format!("a summary of failures: {cases}"))?;
    if passed != format!("{generated} passed") || generated == 0 {
        return Err(format!("not every case passed: {cases}"));
    }
    let errors: Vec<&str> = output
        .lines()
        .skip_while(|l| l.trim() != "Errors:")
        .skip(1)
        .take_while(|l| l.trim_start().starts_with('🚫'))
        .collect();
    match errors.iter().find(|l| !l.contains("Runtime Error")) {
        Some(other) => Err(format!("an error that is not the fuzzer's own: {other}")),
        None => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_api_survives_a_fuzzer() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = binary::plugboard(dir.path());
    command
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/fuzz.db?mode=rwc", dir.path().display()),
        )
        .env(
            "PLUGBOARD_MASTER_KEY",
            "dGhpcnR5LXR3by1ieXRlcy1vZi1rZXktbWF0ZXJpYWw=",
        )
        .env("PLUGBOARD_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("PLUGBOARD_ALLOW_HOSTS", "127.0.0.1")
        .env("PLUGBOARD_OUTBOUND_ONLY_ALLOWED", "true")
        .env("PLUGBOARD_AUTH_FAILURES_PER_MINUTE", "1000000")
        .env("PLUGBOARD_SESSIONS_PER_MINUTE", "1000000")
        .env("PLUGBOARD_ATTEMPTS_PER_MINUTE", "1000000")
        .env("RUST_LOG", "error");
    let server = binary::serve(command).await.expect("plugboard serves");
    let base = format!("http://127.0.0.1:{}", server.1);
    let client = reqwest::Client::new();
    let post = |path: &str, bearer: &str, body: Value| {
        let request = client
            .post(format!("{base}{path}"))
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let text = request.send().await.unwrap().text().await.unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let project = post(
        "/v1/admin/projects",
        OPERATOR_TOKEN,
        json!({ "name": "Fuzz" }),
    )
    .await;
    let key = project["secret_key"].as_str().unwrap().to_string();
    let session = post(
        "/v1/connect/sessions",
        &key,
        json!({ "end_user_id": "fuzzer", "allowed_origins": ["http://localhost:3000"], "ttl_seconds": 3600 }),
    )
    .await;
    let token = session["token"].as_str().unwrap().to_string();
    let schema = format!("{base}/v1/openapi.json");
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
    let skipped = "^/v1/proxy/|^/connect/|^/oauth/";
    // The backend's routes with the secret key; then the SDK's with a session token.
    let runs = [
        (
            format!("Authorization: Bearer {key}"),
            format!("{skipped}|^/v1/sdk/"),
            "75",
        ),
        (
            format!("Authorization: Bearer {token}"),
            "^/(?!v1/sdk/)".to_string(),
            "25",
        ),
    ];
    for (auth, exclude, seconds) in &runs {
        let (ok, output) = schemathesis(
            dir.path(),
            &[
                &schema,
                "-H",
                auth,
                "-H",
                "Origin: http://localhost:3000",
                "--checks",
                checks,
                "--exclude-path-regex",
                exclude,
                "--phases",
                "examples,coverage,fuzzing",
                "--max-time",
                seconds,
                "--workers",
                "2",
                "--request-timeout",
                "30",
                "--no-color",
            ],
        );
        let verdict = judge(&output);
        assert!(
            ok || verdict.is_ok(),
            "schemathesis found failures:\n{output}"
        );
        verdict.unwrap_or_else(|why| panic!("{why}:\n{output}"));
        let lines: Vec<&str> = output.lines().collect();
        println!("{}", lines[lines.len().saturating_sub(12)..].join("\n"));
    }
    // Still serving after everything it was sent.
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let log = server.stop();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

#[test]
fn a_run_is_judged_by_its_cases_and_its_kinds_of_error() {
    let passed = "Test cases:\n  2881 generated, 2881 passed\n";
    assert!(judge(passed).is_ok());
    assert!(judge(&format!("Errors:\n  🚫 Runtime Error: 1\n{passed}")).is_ok());
    assert!(judge(&format!("Errors:\n  🚫 Network Error: 2\n{passed}")).is_err());
    assert!(judge("Test cases:\n  100 generated, 97 passed, 3 failed\n").is_err());
    assert!(judge("nothing ran").is_err());
}
