//! The code exchange when the token endpoint misbehaves (SECURITY 8) and what
//! it is sent (SECURITY 9), against a scripted peer: a real provider cannot be
//! made to stall or flood. On SQLite and PostgreSQL.

mod common;

use common::fake::{json_response, Behaviour, FakePeer};
use common::journey::Session;
use common::provider::Browser;
use common::{Engine, TestApp};
use serde_json::json;

const ORIGIN: &str = "https://app.example.com";

on_both_engines!(
    a_stalled_token_endpoint_fails_cleanly_and_the_code_is_not_resent,
    a_flooding_token_endpoint_is_cut_at_the_size_limit,
    a_token_response_without_access_token_stores_nothing,
    the_exchange_sends_the_same_redirect_uri_and_the_verifier,
    a_token_endpoint_that_echoes_the_request_leaks_nothing,
);

/// Runs one attempt up to the callback against a token endpoint that behaves as told.
/// Returns the app, the peer, the callback page's status, the attempt's status and the callback URL.
async fn exchange(
    engine: Engine,
    behaviour: Behaviour,
) -> (TestApp, FakePeer, u16, serde_json::Value, String, Browser) {
    let app = TestApp::starting_now(engine).await;
    let peer = FakePeer::start(behaviour).await;
    let (_, key) = app.project("Acme").await;
    app.integration(
        &key,
        "crm",
        json!({
            "scopes": ["contacts"],
            "authorization_url": "https://crm.example.com/oauth/authorize",
            "token_url": format!("{}/token", peer.url),
        }),
    )
    .await;
    let session = Session::mint(&app, &key, "u1", ORIGIN).await;
    let mut attempt = session.start(&app, "crm").await;
    // The provider would redirect back with a code; the test plays that part.
    let callback = attempt.callback("code-from-provider");
    let page = attempt.browser.get(&callback).await;
    let status = session.status(&app, &attempt.id).await;
    let browser = attempt.browser;
    (app, peer, page.status, status, callback, browser)
}

async fn assert_nothing_stored(app: &TestApp) {
    let rows = app.store().vault_key_usage().await.unwrap();
    // Only the integration's client secret is sealed: no token was stored, and the attempt's secrets are gone.
    assert_eq!(rows.values().sum::<u64>(), 1, "{rows:?}");
}

async fn replay_sends_nothing(peer: &FakePeer, browser: &mut Browser, callback: &str) {
    let page = browser.get(callback).await;
    assert_eq!(page.status, 400);
    assert_eq!(peer.requests().len(), 1, "a code is never sent twice");
}

async fn a_stalled_token_endpoint_fails_cleanly_and_the_code_is_not_resent(engine: Engine) {
    let (app, peer, page, status, callback, mut browser) = exchange(engine, Behaviour::Stall).await;
    assert_eq!(page, 400);
    assert_eq!(status["error"]["code"], "provider_error");
    assert!(
        status["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{status}"
    );
    assert_eq!(peer.requests().len(), 1);
    assert_nothing_stored(&app).await;
    replay_sends_nothing(&peer, &mut browser, &callback).await;
}

async fn a_flooding_token_endpoint_is_cut_at_the_size_limit(engine: Engine) {
    let (app, peer, page, status, callback, mut browser) =
        exchange(engine, Behaviour::Flood(10 * 1024 * 1024)).await;
    assert_eq!(page, 400);
    assert_eq!(status["error"]["code"], "provider_error");
    assert!(
        status["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than"),
        "{status}"
    );
    assert_nothing_stored(&app).await;
    replay_sends_nothing(&peer, &mut browser, &callback).await;
}

async fn a_token_response_without_access_token_stores_nothing(engine: Engine) {
    let body = r#"{"token_type":"Bearer","refresh_token":"rt-canary-Xy1","expires_in":3600}"#;
    let (app, peer, page, status, callback, mut browser) =
        exchange(engine, Behaviour::Respond(json_response(200, body))).await;
    assert_eq!(page, 400);
    assert_eq!(status["error"]["code"], "provider_error");
    assert!(
        !status.to_string().contains("rt-canary"),
        "the response body is never echoed: {status}"
    );
    assert_nothing_stored(&app).await;
    replay_sends_nothing(&peer, &mut browser, &callback).await;

    // A provider's error answer is reported with its code.
    let error = r#"{"error":"invalid_client","error_description":"client authentication failed"}"#;
    let (_, _, page, status, _, _) =
        exchange(engine, Behaviour::Respond(json_response(401, error))).await;
    assert_eq!(page, 400);
    assert_eq!(status["error"]["providerCode"], "invalid_client");
}

async fn the_exchange_sends_the_same_redirect_uri_and_the_verifier(engine: Engine) {
    let body = r#"{"access_token":"at-canary-Q1","token_type":"bearer","expires_in":3600,"refresh_token":"rt-canary-Q2","scope":"contacts"}"#;
    let (app, peer, page, status, callback, mut browser) =
        exchange(engine, Behaviour::Respond(json_response(200, body))).await;
    assert_eq!(page, 200, "{status}");
    assert_eq!(status["status"], "succeeded");
    let request = &peer.requests()[0];
    let form: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(request.body.as_bytes())
            .into_owned()
            .collect();
    let sent_redirect = callback.split_once('?').unwrap().0;
    assert_eq!(
        form["redirect_uri"], sent_redirect,
        "byte-identical to the authorization request's"
    );
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "code-from-provider");
    assert!(
        form["code_verifier"].len() >= 43,
        "the PKCE verifier is sent"
    );
    assert!(
        !form.contains_key("client_secret"),
        "client_secret_basic keeps the secret out of the body"
    );
    assert!(
        request
            .head
            .to_ascii_lowercase()
            .contains("authorization: basic "),
        "{}",
        request.head
    );
    // Stored sealed, with the granted scopes and the expiry.
    let id = status["connectedAccountId"].as_str().unwrap();
    let secrets = app
        .store()
        .connection_secrets(&app.state.vault, id)
        .await
        .unwrap();
    assert_eq!(secrets["access_token"], "at-canary-Q1");
    assert_eq!(secrets["refresh_token"], "rt-canary-Q2");
    replay_sends_nothing(&peer, &mut browser, &callback).await;
}

/// SECURITY 39: a token endpoint whose error repeats the request (client
/// secret, code, verifier, Basic credentials) has none of it shown or stored.
async fn a_token_endpoint_that_echoes_the_request_leaks_nothing(engine: Engine) {
    let (_app, peer, page, status, _, _) = exchange(engine, Behaviour::Echo).await;
    assert_eq!(page, 400);
    assert_eq!(status["error"]["code"], "provider_error");
    assert_eq!(status["error"]["providerCode"], "invalid_grant");
    let request = &peer.requests()[0];
    let form: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(request.body.as_bytes())
            .into_owned()
            .collect();
    let basic = request
        .head
        .lines()
        .find_map(|l| {
            let lower = l.to_ascii_lowercase();
            lower
                .starts_with("authorization: basic ")
                .then(|| l["authorization: basic ".len()..].trim().to_string())
        })
        .expect("Basic credentials were sent");
    let shown = status.to_string();
    for sent in [
        "client-secret-canary-7Hq",
        form["code"].as_str(),
        form["code_verifier"].as_str(),
        basic.as_str(),
    ] {
        assert!(!shown.contains(sent), "{sent} shown in {shown}");
    }
    assert!(shown.contains("[redacted]"), "{shown}");
    let message = status["error"]["message"].as_str().unwrap();
    assert!(message.chars().count() <= 400, "{message}");
}
