//! SECURITY 25: canary secrets planted in a client secret, tokens and a
//! session, then error paths triggered (provider errors that echo the
//! request, a timeout, a flood, validation failures, a failed revocation,
//! refreshes, "Test", a client-credentials integration refused, a corrupt
//! value, credential forms refused by a service that echoes them) — the canaries never appear in the server's log at
//! `trace`, in its HTTP answers, or in `Debug` output. One test in its own
//! binary, because it installs the process's log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::fake::{json_response, Behaviour, FakePeer};
use common::journey::Session;
use common::{execute, Engine, TestApp};
use serde_json::json;

const CLIENT_SECRET: &str = "client-secret-canary-7Hq";
const TOKENS: [&str; 2] = ["at-canary-Zq81", "rt-canary-Zq82"];
const ORIGIN: &str = "https://app.example.com";
const FORM_CANARIES: [&str; 2] = ["key-canary-5Tq", "password-canary-5Tq"];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_never_reach_the_log_or_an_answer() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let mut answers = String::new();

    let app = TestApp::starting_now(Engine::Sqlite).await;
    let (_, key) = app.project("Acme").await;
    // Validation failures with the secret in the request.
    for body in [
        json!({ "key": "bad key", "auth_type": "oauth2_authorization_code", "client_secret": CLIENT_SECRET }),
        json!({ "key": "x", "auth_type": "oauth2_authorization_code", "client_secret": [CLIENT_SECRET], "token_url": CLIENT_SECRET }),
    ] {
        answers += &app
            .call("POST", "/v1/integrations", Some(&key), Some(body))
            .await
            .text;
    }
    // Token endpoints that echo, stall and flood; a revocation endpoint that fails.
    for (n, behaviour) in [
        Behaviour::Echo,
        Behaviour::Stall,
        Behaviour::Flood(4 * 1024 * 1024),
    ]
    .into_iter()
    .enumerate()
    {
        let peer = FakePeer::start(behaviour).await;
        let integration = app
            .integration(
                &key,
                &format!("crm{n}"),
                json!({
                    "scopes": ["contacts"],
                    "token_url": format!("{}/token", peer.url),
                    "revocation_url": format!("{}/revoke", peer.url),
                }),
            )
            .await;
        let session = Session::mint(&app, &key, "u1", ORIGIN).await;
        let mut attempt = session.start(&app, &format!("crm{n}")).await;
        answers += &attempt
            .browser
            .get(&attempt.callback(&format!("code-canary-{n}")))
            .await
            .body;
        answers += &session.status(&app, &attempt.id).await.to_string();
        // A connection with canary tokens, disconnected against the failing endpoint.
        let connection = app
            .connection(
                &app.store()
                    .get_integration_by_id(integration["id"].as_str().unwrap())
                    .await
                    .unwrap()
                    .unwrap()
                    .project_id,
                &integration,
                Some("u1"),
                &format!("account{n}"),
            )
            .await;
        // Its token due: a refresh and "Test" against the same endpoint (the
        // stalling one would only add its timeout).
        if n != 1 {
            execute(
                Engine::Sqlite,
                &app.database_url,
                &format!(
                    "UPDATE connections SET token_expires_at = {} WHERE id = '{connection}'",
                    app.state.now() - 60
                ),
                None,
            )
            .await;
            for (method, path) in [
                ("POST", format!("/v1/connections/{connection}/token")),
                ("POST", format!("/v1/integrations/crm{n}/test")),
            ] {
                answers += &app.call(method, &path, Some(&key), None).await.text;
            }
            // A client-credentials integration against the same endpoint.
            answers += &app
                .call(
                    "POST",
                    "/v1/integrations",
                    Some(&key),
                    Some(json!({
                        "key": format!("service{n}"),
                        "auth_type": "oauth2_client_credentials",
                        "token_url": format!("{}/token", peer.url),
                        "client_id": "service-client",
                        "client_secret": CLIENT_SECRET,
                    })),
                )
                .await
                .text;
        }
        peer.set(Behaviour::Respond(json_response(
            503,
            r#"{"error":"temporarily_unavailable"}"#,
        )));
        answers += &app
            .call(
                "DELETE",
                &format!("/v1/connections/{connection}"),
                Some(&key),
                None,
            )
            .await
            .text;
    }
    // The credential form: a key placed in the query and a Basic password,
    // refused by a service that repeats what it received, then one accepted.
    let upstream = common::upstream::Upstream::start(json!({ "accounts": [
        { "checks": [{ "in": "query", "name": "key", "value": FORM_CANARIES[0] }],
          "answer": { "email": "ana@example.com" } },
    ]}));
    for (app_key, body) in [
        (
            "keyed",
            json!({ "auth_type": "api_key", "api_key_in": "query", "api_key_name": "key" }),
        ),
        ("basic", json!({ "auth_type": "basic" })),
    ] {
        let mut body = body;
        body["key"] = json!(app_key);
        body["api_base_url"] = json!(upstream.url);
        body["test_request"] = json!({ "path": "/me", "label_pointer": "/email" });
        answers += &app
            .call("POST", "/v1/integrations", Some(&key), Some(body))
            .await
            .text;
        let session = Session::mint(&app, &key, "u2", ORIGIN).await;
        let mut form = session.open_form(&app, app_key, None).await;
        let fields: Vec<(&str, &str)> = if app_key == "keyed" {
            vec![("api_key", "key-canary-wrong-5Tq")]
        } else {
            vec![("username", "ana"), ("password", FORM_CANARIES[1])]
        };
        answers += &form.submit(&fields).await.body;
        if app_key == "keyed" {
            answers += &form.submit(&[("api_key", FORM_CANARIES[0])]).await.body;
        }
        answers += &session.status(&app, &form.attempt_id).await.to_string();
    }
    answers += &app
        .call("GET", "/v1/events?limit=200", Some(&key), None)
        .await
        .text;

    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log was captured"
    );
    for canary in [
        CLIENT_SECRET,
        TOKENS[0],
        TOKENS[1],
        "code-canary-",
        "key-canary-wrong-5Tq",
        FORM_CANARIES[0],
        FORM_CANARIES[1],
    ] {
        assert!(!log.contains(canary), "{canary} in the log");
        assert!(
            !answers.contains(canary),
            "{canary} in an answer: {answers}"
        );
    }
    // The session token and the secret key are bearer secrets too.
    assert!(!log.contains(&key), "the secret key in the log");

    // Debug output of what holds a secret names the fields, not the values.
    let valid = plugboard::integrations::validate(
        common::oauth_integration("acme").as_object().unwrap(),
        &[],
        &plugboard::outbound::AllowList::default(),
    )
    .unwrap();
    let params = plugboard::connect::CallbackParams {
        code: Some("code-canary-debug".into()),
        state: Some("state-canary-debug".into()),
        ..Default::default()
    };
    for debug in [format!("{valid:?}"), format!("{params:?}")] {
        for canary in [CLIENT_SECRET, "code-canary-debug", "state-canary-debug"] {
            assert!(!debug.contains(canary), "{canary} in {debug}");
        }
    }
}
