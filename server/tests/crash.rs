//! SECURITY 27: the process dies between the provider's answer to a refresh
//! and the commit that would store it. Built only with the `fault-hooks`
//! feature (`cargo xtask test` runs it so), whose `PLUGBOARD_FAULT` makes the
//! `plugboard` binary exit at that point as a crash would.
//!
//! The test provider rotates refresh tokens and revokes the grant when a spent
//! one comes back, so after the crash the stored refresh token is dead: the
//! next use must find that once, mark the connection `needs_reauth` with a
//! clear error, and never retry the dead token in a loop.

mod common;

use std::time::Duration;

use common::binary::{plugboard, serve};
use common::journey::connected;
use common::Engine;

/// How long the provider's access tokens live.
const TTL: u64 = 2;

async fn token(port: u16, key: &str, id: &str) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/connections/{id}/token"))
        .bearer_auth(key)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_providers_answer_leaves_a_clear_needs_reauth_and_no_retry_loop() {
    // An account connected through an in-process server on a SQLite file...
    let c = connected(Engine::Sqlite, TTL).await;
    let data = tempfile::tempdir().unwrap();
    // ...then the binary on the same database and vault key.
    let binary = |fault: Option<&str>| {
        let mut command = plugboard(data.path());
        command
            .env("DATABASE_URL", &c.app.database_url)
            .env("PLUGBOARD_MASTER_KEY", &c.app.key_spec)
            .env("PLUGBOARD_ALLOW_HOSTS", "127.0.0.1,::1")
            // The lease the killed process leaves lapses in two seconds, not 45.
            .env("PLUGBOARD_FAULT_LEASE_SECONDS", "2");
        if let Some(point) = fault {
            command.env("PLUGBOARD_FAULT", point);
        }
        command
    };
    tokio::time::sleep(Duration::from_secs(TTL + 1)).await;

    let refreshed = c.provider.count("refresh_token:ok").await;
    match serve(binary(Some("after-refresh-response"))).await {
        // The proactive refresh got there first (its first pass is 30 s after
        // start, so only on a very slow machine).
        Err(output) => assert!(
            output.contains("fault point after-refresh-response"),
            "{output}"
        ),
        Ok(mut doomed) => {
            let answer = token(doomed.1, &c.key, &c.connection).await;
            assert!(
                answer.is_err(),
                "the process died before answering: {answer:?}"
            );
            assert_eq!(doomed.exit_code().await, Some(86));
        }
    }
    assert_eq!(
        c.provider.count("refresh_token:ok").await,
        refreshed + 1,
        "the provider answered (and rotated the refresh token) before the crash"
    );

    // After the restart, the stored (now spent) refresh token is found dead once.
    let server = serve(binary(None)).await.expect("serve again");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let errors = c.provider.count("refresh_token:error").await;
    let (status, body) = token(server.1, &c.key, &c.connection).await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "needs_reauth");
    // Whoever found it (this call, or on a very slow machine the proactive
    // refresh) names the provider's code.
    if !body["error"]["provider_code"].is_null() {
        assert_eq!(body["error"]["provider_code"], "invalid_grant");
    }
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("connect this account again"), "{message}");
    for _ in 0..3 {
        let (status, _) = token(server.1, &c.key, &c.connection).await.unwrap();
        assert_eq!(status, 409);
    }
    assert_eq!(
        c.provider.count("refresh_token:error").await,
        errors + 1,
        "the dead refresh token reached the provider once"
    );
    let last = c.app.last_event(&c.key, &c.connection).await;
    assert_eq!(last["type"], "connection.needs_reauth");
}
