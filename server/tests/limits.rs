//! Rate limits (SECURITY 38): failed authentication per client address and
//! per key, connect sessions and attempts per project; each over its limit
//! answers `429 rate_limited` with `Retry-After`, in the error shape, and
//! recovers as time passes. The other suites raise these limits.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Engine, Reply, TestApp};
use plugboard::config::Limits;
use serde_json::json;

on_both_engines!(
    failed_authentication_is_limited_per_address_and_per_key,
    sessions_and_attempts_are_limited_per_project,
);

fn limits() -> Limits {
    Limits {
        auth_failures_per_minute: 5,
        sessions_per_minute: 3,
        attempts_per_minute: 2,
        ..Limits::default()
    }
}

async fn from(app: &TestApp, address: &str, path: &str, bearer: &str) -> Reply {
    let method = if path.starts_with("/v1/admin/") {
        "POST"
    } else {
        "GET"
    };
    app.send(
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {bearer}"))
            .header("x-forwarded-for", address)
            .header("origin", "http://localhost:3000")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn assert_limited(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "rate_limited");
    assert!(reply.body["error"]["message"].is_string());
    let wait: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
}

async fn failed_authentication_is_limited_per_address_and_per_key(engine: Engine) {
    // Behind a trusted reverse proxy, so each request can name its client.
    let app = TestApp::with_limits(engine, limits(), true).await;
    let (_, key) = app.project("Acme").await;

    // Per address: five wrong keys, then even the right one waits.
    for n in 0..5 {
        let reply = from(
            &app,
            "203.0.113.1",
            "/v1/integrations",
            &format!("pb_sk_wrong{n}"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_limited(&from(&app, "203.0.113.1", "/v1/integrations", "pb_sk_wrong9").await);
    assert_limited(&from(&app, "203.0.113.1", "/v1/integrations", &key).await);
    // Session tokens and the operator token count alike.
    assert_limited(&from(&app, "203.0.113.1", "/v1/sdk/apps", "pb_cs_wrong").await);
    assert_limited(&from(&app, "203.0.113.1", "/v1/admin/projects", "wrong").await);
    // Another address is not held back by it.
    let reply = from(&app, "203.0.113.2", "/v1/integrations", &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // Per key: one key guessed at from many addresses.
    let guessed_prefix = "pb_sk_guessedprefi";
    // Each guess varies the secret part; the public prefix stays.
    for n in 0..5 {
        let guess = format!("{guessed_prefix}_guess{n}");
        let reply = from(&app, &format!("198.51.100.{n}"), "/v1/integrations", &guess).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let guess = format!("{guessed_prefix}_guess9");
    assert_limited(&from(&app, "198.51.100.77", "/v1/integrations", &guess).await);

    // Time heals: a minute later the first address may try again.
    app.clock.advance(61);
    let reply = from(&app, "203.0.113.1", "/v1/integrations", &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

async fn sessions_and_attempts_are_limited_per_project(engine: Engine) {
    let app = TestApp::with_limits(engine, limits(), false).await;
    let (_, key) = app.project("Acme").await;
    let (_, other) = app.project("Other").await;
    app.integration(&key, "acme", json!({})).await;
    let session = |key: String| {
        let app = &app;
        async move {
            app.call(
                "POST",
                "/v1/connect/sessions",
                Some(&key),
                Some(json!({ "end_user_id": "u", "allowed_origins": ["http://localhost:3000"] })),
            )
            .await
        }
    };
    let mut token = String::new();
    for _ in 0..3 {
        let reply = session(key.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        token = reply.body["token"].as_str().unwrap().to_string();
    }
    assert_limited(&session(key.clone()).await);
    assert_eq!(
        session(other.clone()).await.status,
        StatusCode::CREATED,
        "per project"
    );

    let start = || {
        app.send(
            Request::post("/v1/sdk/connect")
                .header("authorization", format!("Bearer {token}"))
                .header("origin", "http://localhost:3000")
                .header("content-type", "application/json")
                .body(Body::from(json!({ "app": "acme" }).to_string()))
                .unwrap(),
        )
    };
    for _ in 0..2 {
        assert_eq!(start().await.status, StatusCode::CREATED);
    }
    let refused = start().await;
    assert_limited(&refused);
    assert!(
        refused.headers.get("access-control-allow-origin").is_some(),
        "the page can read why"
    );

    app.clock.advance(61);
    assert_eq!(session(key.clone()).await.status, StatusCode::CREATED);
    assert_eq!(start().await.status, StatusCode::CREATED);
}
