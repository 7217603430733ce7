//! The `plugboard` binary, run as an operator runs it: a command with a clean
//! environment, and `serve` on a free loopback port until it is healthy.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub fn plugboard(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plugboard"));
    for var in [
        "DATABASE_URL",
        "PLUGBOARD_MASTER_KEY",
        "PLUGBOARD_MASTER_KEY_FILE",
        "PLUGBOARD_OPERATOR_TOKEN",
        "PLUGBOARD_LISTEN",
        "PLUGBOARD_PUBLIC_URL",
        "PLUGBOARD_ALLOW_HOSTS",
        "PLUGBOARD_OUTBOUND_ONLY_ALLOWED",
        "PLUGBOARD_TRUST_PROXY",
        "PLUGBOARD_HEADER_TIMEOUT_SECONDS",
        "PLUGBOARD_BODY_TIMEOUT_SECONDS",
        "PLUGBOARD_MAX_CONNECTIONS",
        "PLUGBOARD_AUTH_FAILURES_PER_MINUTE",
        "PLUGBOARD_SESSIONS_PER_MINUTE",
        "PLUGBOARD_ATTEMPTS_PER_MINUTE",
        "PLUGBOARD_WORKER_THREADS",
    ] {
        command.env_remove(var);
    }
    command
        .env("PLUGBOARD_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run plugboard")
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `plugboard serve`, stopped when dropped.
pub struct Server(Option<Child>, pub u16);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// Waits (up to ten seconds) for the process to end by itself; answers its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        let child = self.0.as_mut()?;
        for _ in 0..100 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Stops the server; answers what it wrote.
    pub fn stop(mut self) -> String {
        let mut child = self.0.take().expect("running");
        let _ = child.kill();
        text(&child.wait_with_output().expect("output"))
    }
}

pub async fn serve(mut command: Command) -> Result<Server, String> {
    let port = free_port();
    let mut child = command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            let output = child.wait_with_output().expect("output");
            return Err(text(&output));
        }
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            if r.status() == 200 {
                return Ok(Server(Some(child), port));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    Err("the server did not become healthy".into())
}
