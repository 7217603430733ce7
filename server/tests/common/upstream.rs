//! `tests/upstream/upstream.py`: a provider API on loopback that checks the
//! credentials it receives — keys in headers or the query, and AWS SigV4
//! signatures recomputed by botocore — and answers the account they belong to.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct Upstream {
    /// e.g. `http://127.0.0.1:41234`
    pub url: String,
    child: Child,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstream {
    /// Starts it with `{"accounts": [...]}` (see the script).
    pub fn start(config: Value) -> Upstream {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/upstream/upstream.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg(config.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Ok(path) = std::env::var("PLUGBOARD_BOTOCORE_PATH") {
            command.env("PYTHONPATH", path);
        }
        let mut child = command.spawn().expect("python3 (install python3)");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("the upstream's first line");
        let url = first
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the upstream did not start: {first:?}"))
            .to_string();
        Upstream { url, child }
    }

    /// How many requests reached `path`.
    pub async fn seen(&self, path: &str) -> u64 {
        let text = reqwest::get(format!("{}/_seen", self.url))
            .await
            .expect("upstream")
            .text()
            .await
            .expect("body");
        let seen: Value = serde_json::from_str(&text).expect("json");
        seen[path].as_u64().unwrap_or(0)
    }
}
