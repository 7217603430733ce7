//! The `plugboard` binary as an operator runs it: key rules at start, projects
//! from the command line, key rotation with `vault reencrypt` (SECURITY 24).

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::Engine;
use plugboard::vault::KeyRing;

on_both_engines!(
    serve_refuses_a_ring_missing_a_key_in_use_and_reencrypt_fixes_it,
    projects_create_prints_a_working_key
);

fn plugboard(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plugboard"));
    for var in [
        "DATABASE_URL",
        "PLUGBOARD_MASTER_KEY",
        "PLUGBOARD_MASTER_KEY_FILE",
        "PLUGBOARD_OPERATOR_TOKEN",
        "PLUGBOARD_LISTEN",
        "PLUGBOARD_PUBLIC_URL",
        "PLUGBOARD_ALLOW_HOSTS",
        "PLUGBOARD_TRUST_PROXY",
    ] {
        command.env_remove(var);
    }
    command
        .env("PLUGBOARD_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run plugboard")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `plugboard serve`, stopped when dropped.
struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(mut command: Command) -> Result<Server, String> {
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
                return Ok(Server(child, port));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    Err("the server did not become healthy".into())
}

#[test]
fn the_embedded_default_generates_a_key_once_and_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = run(plugboard(&data).args(["projects", "create", "--name", "Acme"]));
    assert!(first.status.success(), "{}", text(&first));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("vault key was generated"), "{stderr}");
    let key_file = data.join("master.key");
    let spec = std::fs::read_to_string(&key_file).unwrap();
    assert!(KeyRing::parse(&spec).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let second = run(plugboard(&data).args(["migrate"]));
    assert!(second.status.success(), "{}", text(&second));
    assert!(!text(&second).contains("generated"));
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        spec,
        "the key is kept, not replaced"
    );
}

#[test]
fn postgres_without_a_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    // The refusal comes before any connection is attempted.
    let output = run(plugboard(dir.path())
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("PLUGBOARD_MASTER_KEY"), "{message}");
    assert!(
        !dir.path().join("master.key").exists(),
        "no key is invented for a shared database"
    );
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, expected) in [
        ("PLUGBOARD_MASTER_KEY", "c2hvcnQ=", "32 bytes"),
        ("PLUGBOARD_MASTER_KEY", "not base64!", "base64"),
        (
            "PLUGBOARD_ALLOW_HOSTS",
            "http://x/",
            "PLUGBOARD_ALLOW_HOSTS",
        ),
        (
            "DATABASE_URL",
            "mysql://user:hunter2@db/x",
            "unsupported DATABASE_URL",
        ),
        ("PLUGBOARD_OPERATOR_TOKEN", "short", "at least 16"),
    ] {
        let output =
            run(plugboard(dir.path())
                .env(var, value)
                .args(["serve", "--listen", "127.0.0.1:0"]));
        assert!(!output.status.success(), "{var}={value}");
        let message = text(&output);
        assert!(message.contains(expected), "{var}={value}: {message}");
        assert!(
            !message.contains("hunter2"),
            "a password was echoed: {message}"
        );
    }
}

async fn database_url(engine: Engine, dir: &Path) -> String {
    common::fresh_database_url(engine, dir).await
}

async fn projects_create_prints_a_working_key(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(engine, dir.path()).await;
    let key = KeyRing::generate_spec();
    let output = run(plugboard(dir.path())
        .env("DATABASE_URL", &url)
        .env("PLUGBOARD_MASTER_KEY", &key)
        .args(["projects", "create", "--name", "Acme"]));
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret_key="))
        .expect("secret_key line")
        .to_string();
    assert!(
        stdout.lines().any(|l| l.starts_with("project_id=prj_")),
        "{stdout}"
    );

    let mut command = plugboard(dir.path());
    command
        .env("DATABASE_URL", &url)
        .env("PLUGBOARD_MASTER_KEY", &key);
    let server = serve(command).await.expect("serve");
    let client = reqwest::Client::new();
    let reply = client
        .get(format!("http://127.0.0.1:{}/v1/keys", server.1))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let empty = run(plugboard(dir.path())
        .env("DATABASE_URL", &url)
        .env("PLUGBOARD_MASTER_KEY", &key)
        .args(["projects", "create", "--name", ""]));
    assert!(!empty.status.success());
}

async fn serve_refuses_a_ring_missing_a_key_in_use_and_reencrypt_fixes_it(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(engine, dir.path()).await;
    let old = KeyRing::generate_spec();
    let new = KeyRing::generate_spec();
    let with = |key: String| {
        let mut c = plugboard(dir.path());
        c.env("DATABASE_URL", &url)
            .env("PLUGBOARD_MASTER_KEY", key)
            .env("PLUGBOARD_ALLOW_HOSTS", "127.0.0.1");
        c
    };

    // Start on a plain key (id `default`) and store a secret through the API.
    let created = run(with(old.clone()).args(["projects", "create", "--name", "Acme"]));
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret_key="))
        .expect("key")
        .to_string();
    {
        let server = serve(with(old.clone())).await.expect("serve");
        let reply = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/v1/integrations", server.1))
            .bearer_auth(&secret)
            .header("content-type", "application/json")
            .body(common::oauth_integration("teamleader").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
    }

    // A ring without `default` is refused at start, naming it.
    let message = serve(with(format!("new:{new}")))
        .await
        .err()
        .expect("refused");
    assert!(message.contains("`default`"), "{message}");
    // The rotated ring starts; re-encryption then moves the value.
    drop(
        serve(with(format!("new:{new},default:{old}")))
            .await
            .expect("rotated ring serves"),
    );
    let output = run(with(format!("new:{new},default:{old}")).args(["vault", "reencrypt"]));
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("re-encrypted 1 value(s) under key `new`"),
        "{}",
        text(&output)
    );
    // Now the old key can go.
    let server = serve(with(format!("new:{new}")))
        .await
        .expect("serve after reencrypt");
    let reply = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/v1/integrations/teamleader",
            server.1
        ))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
}
