//! The token lifecycle against the real provider (tests/provider: refresh
//! tokens rotate, a spent one presented again revokes the grant, access
//! tokens live two seconds): `POST /v1/connections/{id}/token`, single-flight
//! refresh within a process and across two servers on one database (SECURITY
//! 26), a dead grant (SECURITY 28), and reconnecting it.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use plugboard::app::AppState;
use serde_json::{json, Value};
use tower::ServiceExt;

use common::binary::{plugboard, serve};
use common::fake::{json_response, Behaviour, FakePeer};
use common::journey::{connect, connected, Connected};
use common::provider::Provider;
use common::{execute, Engine, TestApp};

/// How long the provider's access tokens live.
const TTL: u64 = 2;
/// For the concurrent uses: a late caller on a loaded machine still finds the
/// refreshed token within half its lifetime (the refresh rule), so only the
/// one refresh is due.
const CONCURRENT_TTL: u64 = 4;

on_both_engines!(
    twenty_concurrent_uses_of_an_expired_token_refresh_it_once,
    a_forgotten_grant_is_needs_reauth_once_then_left_alone_until_reconnected,
    the_background_job_refreshes_ahead_and_finds_a_dead_grant_first,
    a_refresh_failure_that_may_pass_is_retried_then_waits_and_secrets_never_show,
    a_client_credentials_integration_is_saved_with_a_working_token_or_not_at_all,
    a_refresh_token_integration_is_saved_with_a_working_token_or_not_at_all,
    test_reads_the_provider_and_tells_a_wrong_secret_from_a_right_one,
);

/// `POST /v1/connections/{id}/token` on the server behind `state`.
async fn token(state: &AppState, key: &str, id: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method("POST")
        .uri(format!("/v1/connections/{id}/token"))
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = plugboard::http::router(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Waits until the access token has expired for the provider (real time)
/// and for Plugboard (its clock), so the check holds under any buffer.
async fn expire(app: &TestApp) {
    expire_after(app, TTL).await;
}

/// The same for tokens that live `ttl` seconds.
async fn expire_after(app: &TestApp, ttl: u64) {
    tokio::time::sleep(Duration::from_secs(ttl + 1)).await;
    app.clock.advance(ttl as i64 + 1);
}

/// The provider forgets the grant: its refresh token is revoked there (RFC 7009).
async fn forget_grant(c: &Connected) {
    let secrets = c
        .app
        .store()
        .connection_secrets(&c.app.state.vault, &c.connection)
        .await
        .unwrap();
    let revoked = reqwest::Client::new()
        .post(format!("{}/token/revocation", c.provider.issuer))
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[
            ("token", secrets["refresh_token"].expose()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
}

/// Whether the provider accepts `access_token` (its userinfo endpoint).
async fn provider_accepts(provider: &Provider, access_token: &str) -> bool {
    reqwest::Client::new()
        .get(format!("{}/me", provider.issuer))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo")
        .status()
        .is_success()
}

/// 20 uses at once of the server behind `state`; answers each one's access token.
async fn twenty_uses(state: &AppState, key: &str, id: &str) -> Vec<String> {
    let uses = (0..20).map(|_| {
        let state = state.clone();
        let (key, id) = (key.to_string(), id.to_string());
        tokio::spawn(async move { token(&state, &key, &id).await })
    });
    let mut tokens = Vec::new();
    for task in uses {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_string());
    }
    tokens
}

async fn twenty_concurrent_uses_of_an_expired_token_refresh_it_once(engine: Engine) {
    let c = connected(engine, CONCURRENT_TTL).await;
    let (status, body) = token(&c.app.state, &c.key, &c.connection).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth_type"], "oauth2_authorization_code");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_at"].is_string(), "{body}");
    assert!(
        body.get("refresh_token").is_none() && body.get("client_secret").is_none(),
        "{body}"
    );

    expire_after(&c.app, CONCURRENT_TTL).await;
    let before = c.provider.count("refresh_token:ok").await;
    let tokens = twenty_uses(&c.app.state, &c.key, &c.connection).await;
    assert_eq!(
        c.provider.count("refresh_token:ok").await,
        before + 1,
        "one refresh reached the provider"
    );
    assert_eq!(c.provider.count("refresh_token:error").await, 0);
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "every use got the refreshed token"
    );
    assert!(provider_accepts(&c.provider, &tokens[0]).await);

    // Two servers on one database (as two replicas would be), the uses split between them.
    // Two `plugboard` processes on the same PostgreSQL database, the uses
    // split between them (and their proactive refresh running too).
    if engine == Engine::Postgres {
        let data = tempfile::tempdir().unwrap();
        let process = || {
            let mut command = plugboard(data.path());
            command
                .env("DATABASE_URL", &c.app.database_url)
                .env("PLUGBOARD_MASTER_KEY", &c.app.key_spec)
                .env("PLUGBOARD_ALLOW_HOSTS", "127.0.0.1,::1");
            command
        };
        let (one, two) = (
            serve(process()).await.unwrap(),
            serve(process()).await.unwrap(),
        );
        expire_after(&c.app, CONCURRENT_TTL).await;
        let before = c.provider.count("refresh_token:ok").await;
        let uses = (0..20).map(|i| {
            let port = if i % 2 == 0 { one.1 } else { two.1 };
            let (key, id) = (c.key.clone(), c.connection.clone());
            tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(format!("http://127.0.0.1:{port}/v1/connections/{id}/token"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .expect("token");
                assert_eq!(response.status(), 200);
                let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
                body["access_token"].as_str().unwrap().to_string()
            })
        });
        let mut tokens = Vec::new();
        for use_ in uses {
            tokens.push(use_.await.unwrap());
        }
        assert_eq!(c.provider.count("refresh_token:ok").await, before + 1);
        assert_eq!(c.provider.count("refresh_token:error").await, 0);
        assert!(tokens.iter().all(|t| *t == tokens[0]));
        assert!(provider_accepts(&c.provider, &tokens[0]).await);
    }
}

async fn a_forgotten_grant_is_needs_reauth_once_then_left_alone_until_reconnected(engine: Engine) {
    let c = connected(engine, TTL).await;
    forget_grant(&c).await;

    expire(&c.app).await;
    let before = c.provider.count("refresh_token:error").await;
    let (status, body) = token(&c.app.state, &c.key, &c.connection).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "needs_reauth");
    assert_eq!(body["error"]["provider_code"], "invalid_grant");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("connect this account again"), "{message}");
    assert_eq!(c.provider.count("refresh_token:error").await, before + 1);

    // Read everywhere as needs_reauth, recorded once in the event log.
    let read = c
        .app
        .call(
            "GET",
            &format!("/v1/connections/{}", c.connection),
            Some(&c.key),
            None,
        )
        .await;
    assert_eq!(read.body["status"], "needs_reauth");
    let events = c
        .app
        .call(
            "GET",
            &format!("/v1/events?connection_id={}", c.connection),
            Some(&c.key),
            None,
        )
        .await;
    let kinds: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "connection.needs_reauth")
            .count(),
        1,
        "{kinds:?}"
    );

    // Later uses answer at once, without calling the provider again.
    for _ in 0..3 {
        let (status, body) = token(&c.app.state, &c.key, &c.connection).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("needs_reauth"))
        );
    }
    assert_eq!(c.provider.count("refresh_token:error").await, before + 1);

    // The end user connects the same account again, in place: active, with an event.
    let again = connect(&c.app, &c.key, &c.callback_url, Some(&c.connection)).await;
    assert_eq!(again, c.connection);
    let (status, body) = token(&c.app.state, &c.key, &c.connection).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(provider_accepts(&c.provider, body["access_token"].as_str().unwrap()).await);
    let last = c.app.last_event(&c.key, &c.connection).await;
    assert_eq!(last["type"], "connection.recovered");
}

async fn the_background_job_refreshes_ahead_and_finds_a_dead_grant_first(engine: Engine) {
    let c = connected(engine, TTL).await;
    expire(&c.app).await;
    let before = c.provider.count("refresh_token:ok").await;
    plugboard::jobs::refresh_pass(&c.app.state).await;
    assert_eq!(c.provider.count("refresh_token:ok").await, before + 1);
    // A use right after finds the token the job stored.
    let (status, body) = token(&c.app.state, &c.key, &c.connection).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(c.provider.count("refresh_token:ok").await, before + 1);
    assert!(provider_accepts(&c.provider, body["access_token"].as_str().unwrap()).await);

    // The grant dies: the job finds it before any use, once.
    forget_grant(&c).await;
    expire(&c.app).await;
    let errors = c.provider.count("refresh_token:error").await;
    plugboard::jobs::refresh_pass(&c.app.state).await;
    let read = c
        .app
        .call(
            "GET",
            &format!("/v1/connections/{}", c.connection),
            Some(&c.key),
            None,
        )
        .await;
    assert_eq!(read.body["status"], "needs_reauth");
    assert_eq!(
        c.app.last_event(&c.key, &c.connection).await["type"],
        "connection.needs_reauth"
    );
    plugboard::jobs::refresh_pass(&c.app.state).await;
    assert_eq!(c.provider.count("refresh_token:error").await, errors + 1);
}

/// Faults the real provider cannot be made to produce (SECURITY 25, 28): a
/// token endpoint that answers 503, then one that repeats the whole request
/// it received in its `invalid_grant` description.
async fn a_refresh_failure_that_may_pass_is_retried_then_waits_and_secrets_never_show(
    engine: Engine,
) {
    const CANARIES: [&str; 3] = [
        "client-secret-canary-7Hq",
        "rt-canary-Zq82",
        "at-canary-Zq81",
    ];
    let unavailable = json_response(503, r#"{"error":"temporarily_unavailable"}"#);
    let fake = FakePeer::start(Behaviour::Respond(unavailable)).await;
    let app = TestApp::new(engine).await;
    let (project_id, key) = app.project("Acme").await;
    let integration = app
        .integration(
            &key,
            "acme",
            json!({ "token_url": format!("{}/token", fake.url) }),
        )
        .await;
    let id = app
        .connection(&project_id, &integration, Some("user-1"), "alice")
        .await;
    let expired = app.state.now() - 3600;
    execute(
        engine,
        &app.database_url,
        &format!("UPDATE connections SET token_expires_at = {expired} WHERE id = '{id}'"),
        None,
    )
    .await;
    let shows_a_secret = |text: &str| CANARIES.iter().any(|c| text.contains(c));

    let (status, body) = token(&app.state, &key, &id).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "upstream_error");
    assert_eq!(
        fake.requests().len(),
        3,
        "tried three times within the call"
    );
    assert!(!shows_a_secret(&body.to_string()), "{body}");
    let read = app
        .call("GET", &format!("/v1/connections/{id}"), Some(&key), None)
        .await;
    assert_eq!(read.body["status"], "active");
    let event = app.last_event(&key, &id).await;
    assert_eq!(event["type"], "connection.refresh_failed");
    assert!(!shows_a_secret(&event.to_string()), "{event}");

    // Within the backoff, a use answers at once.
    let (status, body) = token(&app.state, &key, &id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("upstream_error"))
    );
    assert_eq!(fake.requests().len(), 3);

    // After it, the provider answers invalid_grant and repeats the request.
    app.clock.advance(60);
    fake.set(Behaviour::Echo);
    let (status, body) = token(&app.state, &key, &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "needs_reauth");
    assert_eq!(fake.requests().len(), 4);
    let echoed = fake.requests().last().unwrap().clone();
    assert!(
        echoed.body.contains("rt-canary-Zq82"),
        "the provider did receive the refresh token"
    );
    assert!(!shows_a_secret(&body.to_string()), "{body}");
    let event = app.last_event(&key, &id).await;
    assert_eq!(event["type"], "connection.needs_reauth");
    assert!(!shows_a_secret(&event.to_string()), "{event}");
}

/// The project-level connections of an integration (`end_user_id` null).
async fn project_connections(app: &TestApp, key: &str) -> Vec<Value> {
    let list = app.call("GET", "/v1/connections", Some(key), None).await;
    list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["end_user_id"].is_null())
        .cloned()
        .collect()
}

async fn a_client_credentials_integration_is_saved_with_a_working_token_or_not_at_all(
    engine: Engine,
) {
    let app = TestApp::starting_now(engine).await;
    let provider = Provider::start_with("127.0.0.1", TTL);
    let (_, key) = app.project("Acme").await;
    let (client_id, client_secret) = provider.register_service().await;
    let body = |secret: &str| {
        json!({
            "key": "service",
            "auth_type": "oauth2_client_credentials",
            "token_url": format!("{}/token", provider.issuer),
            "client_id": client_id,
            "client_secret": secret,
        })
    };

    // A wrong secret: the field and the provider's code, and nothing saved.
    let reply = app
        .call(
            "POST",
            "/v1/integrations",
            Some(&key),
            Some(body("wrong-secret-canary-K2")),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "validation_failed");
    assert_eq!(reply.body["error"]["provider_code"], "invalid_client");
    assert!(
        reply.body["error"]["fields"]["client_secret"].is_string(),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains("wrong-secret-canary-K2"));
    let read = app
        .call("GET", "/v1/integrations/service", Some(&key), None)
        .await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
    assert!(project_connections(&app, &key).await.is_empty());

    // The right one: saved with its project-level connection, whose token works.
    let reply = app
        .call(
            "POST",
            "/v1/integrations",
            Some(&key),
            Some(body(&client_secret)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let connections = project_connections(&app, &key).await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0]["integration"], "service");
    let id = connections[0]["id"].as_str().unwrap().to_string();
    let (status, first) = token(&app.state, &key, &id).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["auth_type"], "oauth2_client_credentials");
    assert_eq!(provider.count("client_credentials:ok").await, 1);

    // Re-acquired (not refreshed) once it expires.
    expire(&app).await;
    let (status, second) = token(&app.state, &key, &id).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(provider.count("client_credentials:ok").await, 2);

    // A change is saved only with a token the provider issues for it.
    let patch = |secret: &str| json!({ "client_secret": secret });
    let reply = app
        .call(
            "PATCH",
            "/v1/integrations/service",
            Some(&key),
            Some(patch("wrong-secret-canary-K3")),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.body["error"]["provider_code"], "invalid_client");
    let test = app
        .call("POST", "/v1/integrations/service/test", Some(&key), None)
        .await;
    assert_eq!(
        test.body["ok"], true,
        "the stored secret is unchanged: {}",
        test.text
    );
    let reply = app
        .call(
            "PATCH",
            "/v1/integrations/service",
            Some(&key),
            Some(patch(&client_secret)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        provider.count("client_credentials:ok").await,
        4,
        "the test's token, then the change's"
    );
    let (status, third) = token(&app.state, &key, &id).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_ne!(
        third["access_token"], second["access_token"],
        "the change's token is the connection's"
    );
    assert_eq!(
        app.last_event(&key, &id).await["type"],
        "connection.updated"
    );
}

async fn a_refresh_token_integration_is_saved_with_a_working_token_or_not_at_all(engine: Engine) {
    // A refresh token as a developer would have one: from an authorization
    // the provider granted their client.
    let c = connected(engine, TTL).await;
    let secrets = c
        .app
        .store()
        .connection_secrets(&c.app.state.vault, &c.connection)
        .await
        .unwrap();
    let refresh_token = secrets["refresh_token"].expose().to_string();
    let body = |refresh_token: &str| {
        json!({
            "key": "pasted",
            "auth_type": "oauth2_refresh_token",
            "token_url": format!("{}/token", c.provider.issuer),
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "refresh_token": refresh_token,
        })
    };
    let reply = c
        .app
        .call(
            "POST",
            "/v1/integrations",
            Some(&c.key),
            Some(body("rt-not-issued-canary-Q7")),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.body["error"]["provider_code"], "invalid_grant");
    assert!(
        reply.body["error"]["fields"]["refresh_token"].is_string(),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains("rt-not-issued-canary-Q7"));
    assert!(project_connections(&c.app, &c.key).await.is_empty());

    let reply = c
        .app
        .call(
            "POST",
            "/v1/integrations",
            Some(&c.key),
            Some(body(&refresh_token)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert!(
        !reply.text.contains(&refresh_token),
        "the refresh token is write-only"
    );
    let connections = project_connections(&c.app, &c.key).await;
    assert_eq!(connections.len(), 1);
    let id = connections[0]["id"].as_str().unwrap().to_string();
    let (status, body) = token(&c.app.state, &c.key, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(provider_accepts(&c.provider, body["access_token"].as_str().unwrap()).await);
    // It keeps working past expiry, through the rotated refresh token it stored.
    expire(&c.app).await;
    let (status, body) = token(&c.app.state, &c.key, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(provider_accepts(&c.provider, body["access_token"].as_str().unwrap()).await);
    assert_eq!(
        c.provider.count("refresh_token:error").await,
        1,
        "only the made-up token was refused"
    );

    // A change of client secret asks again with the refresh token the
    // connection holds now (the first one was spent by rotation).
    let reply = c
        .app
        .call(
            "PATCH",
            "/v1/integrations/pasted",
            Some(&c.key),
            Some(json!({ "client_secret": c.client_secret })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        c.provider.count("refresh_token:error").await,
        1,
        "no spent token was sent"
    );
    let (status, body) = token(&c.app.state, &c.key, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(provider_accepts(&c.provider, body["access_token"].as_str().unwrap()).await);
}

async fn test_reads_the_provider_and_tells_a_wrong_secret_from_a_right_one(engine: Engine) {
    let c = connected(engine, TTL).await;
    let test = |key: &'static str| {
        let (app, secret_key) = (&c.app, c.key.clone());
        async move {
            app.call(
                "POST",
                &format!("/v1/integrations/{key}/test"),
                Some(&secret_key),
                None,
            )
            .await
        }
    };
    let reply = test("acme").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["ok"], true, "{}", reply.text);
    let steps = reply.body["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["discovery", "token endpoint"]);
    assert_eq!(steps[1]["provider_code"], "invalid_grant");
    assert_eq!(steps[1]["url"], format!("{}/token", c.provider.issuer));
    assert!(steps
        .iter()
        .all(|s| s["status"].is_u64() && s["method"].is_string()));

    // A wrong secret: the token endpoint step fails with invalid_client; no secret shows.
    let reply = c
        .app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(&c.key),
            Some(json!({ "client_secret": "wrong-secret-canary-T5" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = test("acme").await;
    assert_eq!(reply.body["ok"], false, "{}", reply.text);
    let step = &reply.body["steps"][1];
    assert_eq!(step["ok"], false);
    assert_eq!(step["provider_code"], "invalid_client");
    assert_eq!(step["status"], 401);
    for hidden in [
        "wrong-secret-canary-T5",
        &c.client_secret,
        "plugboard-test-not-a-real-grant",
    ] {
        assert!(!reply.text.contains(hidden), "{hidden} in {}", reply.text);
    }

    // Discovery that disagrees with the integration is named.
    c.app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(&c.key),
            Some(json!({
                "client_secret": c.client_secret,
                "userinfo_url": format!("{}/elsewhere", c.provider.issuer),
            })),
        )
        .await;
    let reply = test("acme").await;
    let step = &reply.body["steps"][0];
    assert_eq!(step["ok"], false, "{}", reply.text);
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .contains("userinfo_endpoint"),
        "{step}"
    );
    assert_eq!(reply.body["steps"][1]["ok"], true, "{}", reply.text);

    // Client credentials: the token request itself; its token never shows.
    let (client_id, client_secret) = c.provider.register_service().await;
    let created = c
        .app
        .call(
            "POST",
            "/v1/integrations",
            Some(&c.key),
            Some(json!({
                "key": "service",
                "auth_type": "oauth2_client_credentials",
                "token_url": format!("{}/token", c.provider.issuer),
                "client_id": client_id,
                "client_secret": client_secret,
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let reply = test("service").await;
    assert_eq!(reply.body["ok"], true, "{}", reply.text);
    let excerpt = reply.body["steps"][0]["body_excerpt"].as_str().unwrap();
    assert!(
        excerpt.contains("\"access_token\":\"[redacted]\""),
        "{excerpt}"
    );
}
