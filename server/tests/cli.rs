//! The `plugboard` binary as an operator runs it: key rules at start, projects
//! from the command line, key rotation with `vault reencrypt` (SECURITY 24).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::binary::{plugboard, run, serve, text};
use common::Engine;
use plugboard::vault::KeyRing;

on_both_engines!(
    serve_refuses_a_ring_missing_a_key_in_use_and_reencrypt_fixes_it,
    projects_create_prints_a_working_key,
    a_key_that_does_not_open_the_data_is_refused_and_a_corrupt_value_is_not,
);

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
        ("PLUGBOARD_WORKER_THREADS", "0", "--worker-threads"),
        ("PLUGBOARD_WORKER_THREADS", "many", "--worker-threads"),
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

/// The secret key `projects create` printed, once it succeeded.
fn created_secret_key(created: &std::process::Output) -> String {
    assert!(created.status.success(), "{}", text(created));
    String::from_utf8_lossy(&created.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("secret_key="))
        .expect("a secret_key line")
        .to_string()
}

/// The runtime's worker threads in a running process, by name.
fn worker_threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

/// `PLUGBOARD_WORKER_THREADS` is how many threads serve requests: with one the
/// whole server runs on its main thread, and it still serves the API; unset,
/// one per core the process may use.
#[tokio::test]
async fn worker_threads_follow_the_setting() {
    let cores = std::thread::available_parallelism().unwrap().get();
    for (setting, workers) in [
        (Some("1"), 0),
        (Some("3"), 3),
        (None, if cores == 1 { 0 } else { cores }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyRing::generate_spec();
        let created = run(plugboard(dir.path())
            .env("PLUGBOARD_MASTER_KEY", &key)
            .args(["projects", "create", "--name", "Acme"]));
        let secret = created_secret_key(&created);
        let mut command = plugboard(dir.path());
        command.env("PLUGBOARD_MASTER_KEY", &key);
        if let Some(setting) = setting {
            command.env("PLUGBOARD_WORKER_THREADS", setting);
        }
        let server = serve(command).await.expect("serve");
        assert_eq!(worker_threads_of(server.pid()), workers, "{setting:?}");
        let reply = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/v1/integrations", server.1))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "{setting:?}");
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
    let secret = created_secret_key(&output);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
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
    let secret = created_secret_key(&created);
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

/// Creates a project and an integration (one sealed client secret) on a key; answers the secret key.
async fn seal_something(with: &dyn Fn() -> Command) -> String {
    let created = run(with().args(["projects", "create", "--name", "Acme"]));
    let secret = created_secret_key(&created);
    let server = serve(with()).await.expect("serve");
    for key in ["first", "second"] {
        let reply = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/v1/integrations", server.1))
            .bearer_auth(&secret)
            .header("content-type", "application/json")
            .body(common::oauth_integration(key).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
    }
    secret
}

/// SECURITY 35 and 36: another key under the same id, or an empty variable,
/// is refused at start (exit 78) naming the key id; one corrupt value is
/// named in the log and the server starts.
async fn a_key_that_does_not_open_the_data_is_refused_and_a_corrupt_value_is_not(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(engine, dir.path()).await;
    let right = KeyRing::generate_spec();
    let with_key = |key: &str| {
        let mut c = plugboard(dir.path());
        c.env("DATABASE_URL", &url).env("PLUGBOARD_MASTER_KEY", key);
        c
    };
    let secret = seal_something(&|| with_key(&right)).await;

    // Another key under the same id `default`.
    let wrong = run(with_key(&KeyRing::generate_spec()).arg("serve"));
    assert_eq!(wrong.status.code(), Some(78), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("vault key id `default`"),
        "{}",
        text(&wrong)
    );
    // The same without the check values (a database sealed before they existed):
    // the key is tried on the sealed values themselves.
    assert!(common::execute(engine, &url, "DELETE FROM vault_checks", None).await >= 1);
    let wrong = run(with_key(&KeyRing::generate_spec()).arg("serve"));
    assert_eq!(wrong.status.code(), Some(78), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("vault key id `default`"),
        "{}",
        text(&wrong)
    );
    // An empty variable is not "no key".
    let empty = run(with_key("").arg("serve"));
    assert_eq!(empty.status.code(), Some(78), "{}", text(&empty));
    assert!(text(&empty).contains("set but empty"), "{}", text(&empty));

    // One value damaged beyond naming its key: named in the log, the rest works.
    let corrupted = common::execute(
        engine,
        &url,
        "UPDATE integration_secrets SET ciphertext = $1 WHERE integration_id = \
         (SELECT id FROM integrations WHERE key = 'first')",
        Some(b"garbage".to_vec()),
    )
    .await;
    assert_eq!(corrupted, 1);
    let server = serve(with_key(&right))
        .await
        .expect("starts despite one corrupt value");
    let reply = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/v1/integrations/second",
            server.1
        ))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let log = server.stop();
    assert!(
        log.contains("integration_secrets int_") && log.contains("field client_secret"),
        "{log}"
    );
}

/// SECURITY 35 on the embedded default: a lost key file is not replaced by a
/// new key while the database holds sealed values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_key_file_is_not_replaced_over_sealed_data() {
    let dir = tempfile::tempdir().unwrap();
    seal_something(&|| plugboard(dir.path())).await;
    let key_file = dir.path().join("master.key");
    std::fs::remove_file(&key_file).unwrap();
    let output = run(plugboard(dir.path()).arg("serve"));
    assert_eq!(output.status.code(), Some(78), "{}", text(&output));
    assert!(
        text(&output).contains("vault key id `default`"),
        "{}",
        text(&output)
    );
    assert!(!key_file.exists(), "no key was generated");
}

/// SECURITY 40: a SQLite database Plugboard creates, in its data directory or
/// anywhere else, is readable by its user only.
#[test]
fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("outside.db");
    for url in [
        None,
        Some(format!("sqlite://{}?mode=rwc", outside.display())),
    ] {
        let mut command = plugboard(dir.path());
        if let Some(url) = &url {
            command.env("DATABASE_URL", url);
        }
        let output = run(command
            .env("PLUGBOARD_MASTER_KEY", KeyRing::generate_spec())
            .args(["projects", "create", "--name", "Acme"]));
        assert!(output.status.success(), "{}", text(&output));
    }
    for file in [dir.path().join("plugboard.db"), outside] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

/// SECURITY 37: 1,000 clients that send half a request line do not keep
/// `/healthz` from answering; they, a trickled body and an idle keep-alive
/// connection are cut after the configured times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_and_do_not_starve_the_server() {
    slow_clients_are_cut(None).await;
}

/// The same on one thread, where nothing else could serve `/healthz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_on_a_single_thread_too() {
    slow_clients_are_cut(Some("1")).await;
}

async fn slow_clients_are_cut(worker_threads: Option<&str>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plugboard::http::serve::raise_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let mut command = plugboard(dir.path());
    command
        .env("PLUGBOARD_MASTER_KEY", KeyRing::generate_spec())
        .env("PLUGBOARD_HEADER_TIMEOUT_SECONDS", "2")
        .env("PLUGBOARD_BODY_TIMEOUT_SECONDS", "4");
    if let Some(threads) = worker_threads {
        command.env("PLUGBOARD_WORKER_THREADS", threads);
    }
    command.env("RUST_LOG", "error");
    let server = serve(command).await.expect("serve");
    let address = format!("127.0.0.1:{}", server.1);

    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"GET /hea").await.unwrap();
        slow.push(stream);
    }
    let started = std::time::Instant::now();
    let reply = reqwest::Client::new()
        .get(format!("http://{address}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("/healthz answers with 1,000 slow clients connected");
    assert_eq!(reply.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // The slow ones are closed after the header time limit.
    let mut buf = [0u8; 256];
    for stream in slow.iter_mut().take(20) {
        let read = tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf)).await;
        assert!(read.is_ok(), "a slow client was never cut");
    }
    drop(slow);

    // A trickled body: 408 in the error shape, once the body's time is up —
    // the header time, shorter, does not cut a request being answered.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /v1/integrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if stream.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(6), trickle).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(4), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"validation_failed""#), "{answer}");

    // An idle keep-alive connection is closed.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut answer)).await;
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection was never closed"
    );
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    drop(server);
}
