//! The auth types without OAuth, connected through Plugboard's credential
//! form in the popup: each type against a server that really checks what it
//! receives (nginx's `auth_basic` for the Basic family; for keys and AWS
//! SigV4, `tests/upstream/upstream.py`, which recomputes signatures with
//! botocore), the account rules, the form's defences, and canaries.

mod common;

use axum::http::StatusCode;
use common::journey::{posted, CredentialForm, Session, ORIGIN};
use common::nginx::Nginx;
use common::upstream::Upstream;
use common::{Engine, TestApp};
use serde_json::{json, Value};

async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let reply = app
        .call("POST", "/v1/integrations", Some(key), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body
}

async fn connections(app: &TestApp, key: &str) -> Vec<Value> {
    let reply = app.call("GET", "/v1/connections", Some(key), None).await;
    reply.body["data"].as_array().cloned().unwrap_or_default()
}

async fn token(app: &TestApp, key: &str, id: &str) -> Value {
    let reply = app
        .call(
            "POST",
            &format!("/v1/connections/{id}/token"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body
}

/// Submits the right credentials and answers the connection the popup reported.
async fn connected(form: &mut CredentialForm, fields: &[(&str, &str)]) -> String {
    let done = form.submit(fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let (origin, message) = posted(&done.body);
    assert_eq!(origin, ORIGIN);
    assert_eq!(message["status"], "succeeded", "{message}");
    assert_eq!(message["attemptId"], form.attempt_id.as_str());
    message["connectedAccountId"]
        .as_str()
        .expect("a connection")
        .to_string()
}

/// An API key in a header, with a prefix; the test_request's `label_pointer`
/// names the account, and the same value is the same account.
async fn an_api_key_connects_through_the_form(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let upstream = Upstream::start(json!({ "accounts": [
        { "checks": [{ "in": "header", "name": "X-API-Key", "value": "Token key-alice-1" }],
          "answer": { "user": { "email": "alice@example.com" } } },
        { "checks": [{ "in": "header", "name": "X-API-Key", "value": "Token key-alice-2" }],
          "answer": { "user": { "email": "alice@example.com" } } },
        { "checks": [{ "in": "header", "name": "X-API-Key", "value": "Token key-bob" }],
          "answer": { "user": { "email": "bob@example.com" } } },
    ]}));
    let integration = create(
        &app,
        &key,
        json!({
            "key": "acme", "label": "Acme CRM", "auth_type": "api_key",
            "api_key_name": "X-API-Key", "api_key_prefix": "Token ",
            "api_base_url": format!("{}/v1", upstream.url),
            "docs_url": "https://docs.example.com/api-keys",
            "credential_help": "In Acme, open Settings, then API, and copy your key.",
            "test_request": { "path": "/me", "label_pointer": "/user/email" }
        }),
    )
    .await;
    assert!(
        integration.get("callback_url").is_none(),
        "no OAuth here: {integration}"
    );
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;
    let mut form = session.open_form(&app, "acme", None).await;
    let page = form.page.body.clone();
    for shown in [
        "Connect Acme CRM",
        "https://docs.example.com/api-keys",
        "In Acme, open Settings, then API, and copy your key.",
        "name=\"api_key\" type=\"password\"",
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    // The account names itself: no name to type.
    assert!(!page.contains("account_name"), "{page}");
    assert_eq!(
        form.page.headers["cache-control"], "no-store",
        "the form's page is never cached"
    );
    // A closed form is a closed popup: it never reached a provider.
    let status = session.status(&app, &form.attempt_id).await;
    assert_eq!(status["reachedProvider"], false, "{status}");

    // Empty: named, nothing sent.
    let refused = form.submit(&[("api_key", "  ")]).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("API key is required"),
        "{}",
        refused.body
    );
    assert_eq!(upstream.seen("/v1/me").await, 0);
    // Wrong: the service's refusal, with its status, and nothing stored.
    let refused = form.submit(&[("api_key", "key-wrong-canary-Qx71")]).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("(HTTP 401)"), "{}", refused.body);
    assert!(!refused.body.contains("Qx71"), "{}", refused.body);
    assert_eq!(upstream.seen("/v1/me").await, 1);
    assert!(connections(&app, &key).await.is_empty());
    assert_eq!(
        session.status(&app, &form.attempt_id).await["status"],
        "pending"
    );
    // Right, with the white space a paste brings: connected, named by the service.
    let id = connected(&mut form, &[("api_key", " key-alice-1\n")]).await;
    let list = connections(&app, &key).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["label"], "alice@example.com");
    assert_eq!(list[0]["end_user_id"], "user-1");
    assert_eq!(
        token(&app, &key, &id).await,
        json!({ "auth_type": "api_key", "api_key": "key-alice-1" })
    );
    // The form is spent, and this browser's binding forgotten.
    let again = form.submit(&[("api_key", "key-alice-1")]).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(upstream.seen("/v1/me").await, 2);

    // A new key for the same account updates its connection.
    let mut form = session.open_form(&app, "acme", None).await;
    assert_eq!(
        connected(&mut form, &[("api_key", "key-alice-2")]).await,
        id
    );
    assert_eq!(token(&app, &key, &id).await["api_key"], "key-alice-2");
    // Another account, where the app allows one: refused, reported to the page.
    let mut form = session.open_form(&app, "acme", None).await;
    let done = form.submit(&[("api_key", "key-bob")]).await;
    let (_, message) = posted(&done.body);
    assert_eq!(message["status"], "failed");
    assert_eq!(message["error"], "account_limit");
    assert_eq!(connections(&app, &key).await.len(), 1);

    // The end user disconnects it.
    let gone = app
        .send(session.sdk("DELETE", &format!("/v1/sdk/connections/{id}"), None))
        .await;
    assert!(gone.status.is_success(), "{}", gone.text);
    assert!(connections(&app, &key).await.is_empty());
}

/// A key and a secret in the query; no label from the service, so the end
/// user may name the account, and connecting again replaces the credentials.
async fn a_key_and_secret_go_in_the_query(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let upstream = Upstream::start(json!({ "accounts": [
        { "checks": [{ "in": "query", "name": "key", "value": "k-1" },
                     { "in": "query", "name": "secret", "value": "s-1" }],
          "answer": { "ok": true } },
        { "checks": [{ "in": "query", "name": "key", "value": "k-2" },
                     { "in": "query", "name": "secret", "value": "s-2" }],
          "answer": { "ok": true } },
    ]}));
    create(
        &app,
        &key,
        json!({
            "key": "acme", "auth_type": "api_key_secret", "api_key_in": "query",
            "api_key_name": "key", "api_secret_name": "secret",
            "api_base_url": upstream.url, "test_request": { "path": "/account?fields=all" }
        }),
    )
    .await;
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;
    let mut form = session.open_form(&app, "acme", None).await;
    assert!(form.page.body.contains("name=\"account_name\""));
    let refused = form
        .submit(&[("api_key", "k-1"), ("api_secret", "s-2")])
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let id = connected(
        &mut form,
        &[
            ("api_key", "k-1"),
            ("api_secret", "s-1"),
            ("account_name", "Sales team"),
        ],
    )
    .await;
    assert_eq!(connections(&app, &key).await[0]["label"], "Sales team");
    // Unnamed credentials replace the end user's one connection's.
    let mut form = session.open_form(&app, "acme", None).await;
    assert_eq!(
        connected(&mut form, &[("api_key", "k-2"), ("api_secret", "s-2")]).await,
        id
    );
    let list = connections(&app, &key).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["label"], "Sales team");
    assert_eq!(
        token(&app, &key, &id).await,
        json!({ "auth_type": "api_key_secret", "api_key": "k-2", "api_secret": "s-2" })
    );
}

/// The account's own URL: refused when it points at an internal address in
/// any spelling (SECURITY 16), and changing it needs the key again (SECURITY 21).
async fn a_key_with_url_keeps_to_allowed_addresses(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let upstream = Upstream::start(json!({ "accounts": [
        { "checks": [{ "in": "header", "name": "Authorization", "value": "Bearer key-1" }],
          "answer": { "account": { "id": 7, "name": "Acme EU" } } },
    ]}));
    let other = Upstream::start(json!({ "accounts": [
        { "checks": [{ "in": "header", "name": "Authorization", "value": "Bearer key-2" }],
          "answer": { "account": { "id": 7, "name": "Acme EU" } } },
    ]}));
    create(
        &app,
        &key,
        json!({
            "key": "acme", "auth_type": "api_key_url", "api_key_name": "Authorization",
            "api_key_prefix": "Bearer ",
            "test_request": { "path": "/api/me", "label_pointer": "/account/id" }
        }),
    )
    .await;
    // A listener on 127.0.0.2, which is not allow-listed: it must see nothing.
    let trap = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = trap.local_addr().unwrap().port();
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;
    let mut form = session.open_form(&app, "acme", None).await;
    for url in [
        format!("http://127.0.0.2:{port}"),
        format!("http://127.2:{port}"),
        format!("http://0x7f000002:{port}"),
        format!("http://2130706434:{port}"),
        format!("http://0177.0.0.2:{port}"),
        format!("http://[::ffff:127.0.0.2]:{port}"),
        format!("http://[::ffff:7f00:2]:{port}/api"),
        "http://10.0.0.8".to_string(),
        "ftp://files.example.com".to_string(),
        "https://user:pw@api.example.com".to_string(),
        "http://api.example.com".to_string(),
    ] {
        let refused = form
            .submit(&[("base_url", &url), ("api_key", "key-1")])
            .await;
        assert_eq!(refused.status, 422, "{url}: {}", refused.body);
        assert!(
            refused.body.contains("id=\"error-base_url\""),
            "{url}: {}",
            refused.body
        );
    }
    let nothing = tokio::time::timeout(std::time::Duration::from_millis(200), trap.accept()).await;
    assert!(nothing.is_err(), "127.0.0.2 was reached");

    let id = connected(
        &mut form,
        &[
            ("base_url", &format!("{}/", upstream.url)),
            ("api_key", "key-1"),
        ],
    )
    .await;
    assert_eq!(connections(&app, &key).await[0]["label"], "7");
    assert_eq!(
        token(&app, &key, &id).await,
        json!({ "auth_type": "api_key_url", "base_url": upstream.url, "api_key": "key-1" })
    );
    // Reconnecting it at another URL without the key: refused, nothing changed.
    let mut form = session.open_form(&app, "acme", Some(&id)).await;
    assert!(form.page.body.contains("Reconnect"), "{}", form.page.body);
    assert!(
        !form.page.body.contains("key-1"),
        "a stored key is never shown"
    );
    let refused = form.submit(&[("base_url", &other.url)]).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("API key is required"),
        "{}",
        refused.body
    );
    // The URL typed is shown again, so only the key need be typed.
    assert!(refused.body.contains(&other.url), "{}", refused.body);
    assert_eq!(
        token(&app, &key, &id).await["base_url"],
        upstream.url.as_str()
    );
    assert_eq!(other.seen("/api/me").await, 0);
    // With the key: the same account, at its new URL.
    assert_eq!(
        connected(&mut form, &[("base_url", &other.url), ("api_key", "key-2")]).await,
        id
    );
    assert_eq!(
        token(&app, &key, &id).await,
        json!({ "auth_type": "api_key_url", "base_url": other.url, "api_key": "key-2" })
    );
}

/// Basic, Basic with URL, and Basic with a key, against nginx's `auth_basic`.
async fn the_basic_family_connects_against_nginx(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let nginx = Nginx::basic("ana", "pässword:1 x").await;
    let keyed = Nginx::basic_and_header("ana", "pässword:1 x", Some(("X-Tenant", "t-42"))).await;
    let cases = [
        (
            json!({ "auth_type": "basic", "api_base_url": nginx.url }),
            vec![],
        ),
        (
            json!({ "auth_type": "basic_url" }),
            vec![("base_url", nginx.url.clone())],
        ),
        (
            json!({ "auth_type": "basic_api_key", "api_key_name": "X-Tenant" }),
            vec![
                ("base_url", keyed.url.clone()),
                ("api_key", "t-42".to_string()),
            ],
        ),
    ];
    for (n, (settings, extra)) in cases.into_iter().enumerate() {
        let app_key = format!("basic-{n}");
        let mut body = settings.clone();
        body["key"] = json!(app_key);
        body["test_request"] = json!({ "path": "/me" });
        create(&app, &key, body).await;
        let session = Session::mint(&app, &key, &format!("user-{n}"), ORIGIN).await;
        let mut form = session.open_form(&app, &app_key, None).await;
        let fields = |password: &str| {
            let mut fields = vec![
                ("username", "ana".to_string()),
                ("password", password.to_string()),
            ];
            fields.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
            fields
        };
        let wrong = fields("wrong-canary-Bx55");
        let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = form.submit(&wrong).await;
        assert_eq!(refused.status, 422, "{settings}: {}", refused.body);
        assert!(refused.body.contains("(HTTP 401)"), "{}", refused.body);
        assert!(!refused.body.contains("Bx55"), "{}", refused.body);
        let right = fields("pässword:1 x");
        let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let id = connected(&mut form, &right).await;
        let credentials = token(&app, &key, &id).await;
        assert_eq!(credentials["username"], "ana", "{settings}");
        assert_eq!(credentials["password"], "pässword:1 x");
        // The basic_api_key connection with a wrong key: nginx refuses it.
        if n == 2 {
            let mut form = session.open_form(&app, &app_key, None).await;
            let refused = form
                .submit(&[
                    ("base_url", &keyed.url),
                    ("username", "ana"),
                    ("password", "pässword:1 x"),
                    ("api_key", "t-41"),
                ])
                .await;
            assert_eq!(refused.status, 422, "{}", refused.body);
        }
    }
    // A username cannot hold the colon Basic separates with.
    let session = Session::mint(&app, &key, "user-9", ORIGIN).await;
    let mut form = session.open_form(&app, "basic-0", None).await;
    let refused = form.submit(&[("username", "a:b"), ("password", "x")]).await;
    assert!(
        refused.body.contains("id=\"error-username\""),
        "{}",
        refused.body
    );
}

/// AWS keys: the test_request is signed with them, and the upstream accepts
/// only the signature botocore computes for what it received.
async fn aws_keys_sign_the_test_request(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let upstream = Upstream::start(json!({ "accounts": [
        { "aws": { "access_key_id": "AKIDEXAMPLE", "region": "eu-west-1", "service": "s3",
                   "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
          "answer": { "Owner": { "ID": "acme-storage", "DisplayName": "Acme storage" } } },
    ]}));
    create(
        &app,
        &key,
        json!({
            "key": "acme", "auth_type": "aws_sigv4", "aws_service": "s3",
            "api_base_url": upstream.url,
            "test_request": { "path": "/?max-buckets=1&prefix=a%20b", "label_pointer": "/Owner/DisplayName" }
        }),
    )
    .await;
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;
    let mut form = session.open_form(&app, "acme", None).await;
    let refused = form
        .submit(&[
            ("access_key_id", "AKIDEXAMPLE"),
            (
                "secret_access_key",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ",
            ),
            ("region", "moon-1"),
        ])
        .await;
    assert!(
        refused.body.contains("id=\"error-region\""),
        "{}",
        refused.body
    );
    assert_eq!(upstream.seen("/").await, 0);
    let refused = form
        .submit(&[
            ("access_key_id", "AKIDEXAMPLE"),
            (
                "secret_access_key",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ",
            ),
            ("region", "eu-west-1"),
        ])
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("(HTTP 401)"), "{}", refused.body);
    assert!(!refused.body.contains("EXAMPLEKEZ"), "{}", refused.body);
    assert!(connections(&app, &key).await.is_empty());
    let id = connected(
        &mut form,
        &[
            ("access_key_id", "AKIDEXAMPLE"),
            (
                "secret_access_key",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            ("region", "eu-west-1"),
        ],
    )
    .await;
    assert_eq!(connections(&app, &key).await[0]["label"], "Acme storage");
    assert_eq!(
        token(&app, &key, &id).await,
        json!({ "auth_type": "aws_sigv4", "access_key_id": "AKIDEXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "region": "eu-west-1" })
    );
}

/// Only the form's own page, in the browser the attempt is bound to, can
/// submit it; refusals spend nothing.
async fn the_form_refuses_forged_submissions(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let upstream = Upstream::start(json!({ "accounts": [
        { "checks": [{ "in": "header", "name": "X-Key", "value": "right" }], "answer": {} },
    ]}));
    create(
        &app,
        &key,
        json!({ "key": "acme", "auth_type": "api_key", "api_key_name": "X-Key",
                "api_base_url": upstream.url, "test_request": { "path": "/me" } }),
    )
    .await;
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;
    let mut form = session.open_form(&app, "acme", None).await;
    let token = common::journey::form_token(&form.page.body);
    let good = [("form_token", token.as_str()), ("api_key", "right")];
    // Another site's page posting to the form (its Origin), or no Origin at all.
    for origin in ["https://evil.example", ORIGIN, "null"] {
        let forged = form.browser.post_form_from(origin, &form.url, &good).await;
        assert_eq!(forged.status, 400, "{origin}: {}", forged.body);
        assert!(forged.body.contains("not sent from its own window"));
    }
    let no_origin = form.browser.post_form(&form.url, &good).await;
    assert_eq!(no_origin.status, 400);
    // The right origin without the token, or with another.
    let plugboard = url::Url::parse(&form.url)
        .unwrap()
        .origin()
        .ascii_serialization();
    for fields in [
        vec![("api_key", "right")],
        vec![("form_token", "AAAA"), ("api_key", "right")],
    ] {
        let forged = form
            .browser
            .post_form_from(&plugboard, &form.url, &fields)
            .await;
        assert_eq!(forged.status, 400, "{}", forged.body);
    }
    // Another browser (no binding cookie), even with the token.
    let mut other = common::provider::Browser::new();
    assert_eq!(other.get(&form.url).await.status, 400);
    let stolen = other.post_form_from(&plugboard, &form.url, &good).await;
    assert_eq!(stolen.status, 400);
    assert!(stolen.body.contains("did not open in this browser"));
    assert_eq!(upstream.seen("/me").await, 0);
    // None of it spent the attempt: the real form still connects.
    connected(&mut form, &[("api_key", "right")]).await;

    // A form sent after its attempt expired checks nothing, and the app
    // learns why, as from an OAuth popup that came back late.
    let mut late = session.open_form(&app, "acme", None).await;
    app.clock.advance(601);
    let page = late.submit(&[("api_key", "right")]).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("expired"), "{}", page.body);
    let (origin, message) = posted(&page.body);
    assert_eq!(origin, ORIGIN);
    assert_eq!(message["error"], "session_expired");
    assert_eq!(message["attemptId"], late.attempt_id.as_str());
    assert_eq!(upstream.seen("/me").await, 1);
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;

    // One form checks at most ten keys a minute with the service.
    let mut form = session.open_form(&app, "acme", None).await;
    for n in 0..10 {
        let refused = form.submit(&[("api_key", &format!("guess-{n}"))]).await;
        assert!(refused.body.contains("(HTTP 401)"), "{}", refused.body);
    }
    let refused = form.submit(&[("api_key", "right")]).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Too many tries"), "{}", refused.body);
    assert_eq!(upstream.seen("/me").await, 11);
}

/// Canaries (SECURITY 25) in every credential field of every type, through
/// validation failures, a refusal that echoes everything it received, and an
/// unreachable service: never in a page, an answer or an event.
async fn canaries_never_come_back(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let upstream = Upstream::start(json!({ "accounts": [] }));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let types = [
        ("api_key", json!({ "api_key_name": "X-Key" })),
        (
            "api_key_secret",
            json!({ "api_key_name": "X-Key", "api_secret_name": "X-Secret" }),
        ),
        (
            "api_key_url",
            json!({ "api_key_name": "key", "api_key_in": "query" }),
        ),
        ("basic", json!({})),
        ("basic_url", json!({})),
        ("basic_api_key", json!({ "api_key_name": "X-Key" })),
        ("aws_sigv4", json!({ "aws_service": "execute-api" })),
    ];
    let canary = |field: &str| format!("canary-{field}-Zk93");
    for (n, (auth_type, extra)) in types.into_iter().enumerate() {
        let app_key = format!("k{n}");
        let mut body = extra.clone();
        body["key"] = json!(app_key);
        body["auth_type"] = json!(auth_type);
        body["test_request"] = json!({ "path": "/me" });
        if !auth_type.ends_with("_url") && auth_type != "basic_api_key" {
            body["api_base_url"] = json!(upstream.url);
        }
        create(&app, &key, body).await;
        let session = Session::mint(&app, &key, &format!("user-{n}"), ORIGIN).await;
        let mut form = session.open_form(&app, &app_key, None).await;
        let fields: Vec<String> = [
            "api_key",
            "api_secret",
            "username",
            "password",
            "access_key_id",
            "secret_access_key",
        ]
        .into_iter()
        .filter(|f| form.page.body.contains(&format!("name=\"{f}\"")))
        .map(str::to_string)
        .collect();
        assert!(!fields.is_empty(), "{auth_type}");
        let values: Vec<(String, String)> = fields.iter().map(|f| (f.clone(), canary(f))).collect();
        let submit = |base: Option<&str>, region: &str| {
            let mut all: Vec<(String, String)> = values.clone();
            if let Some(base) = base {
                all.push(("base_url".into(), base.to_string()));
            }
            all.push(("region".into(), region.to_string()));
            all
        };
        let needs_base = form.page.body.contains("name=\"base_url\"");
        let attempts = [
            // A field that fails validation beside the canaries.
            submit(needs_base.then_some("http://10.0.0.1"), "not a region"),
            // A refusal that echoes every header and the query it received.
            submit(needs_base.then_some(upstream.url.as_str()), "eu-west-1"),
            // A service that cannot be reached.
            submit(needs_base.then_some(closed.as_str()), "eu-west-1"),
        ];
        for (i, fields) in attempts.iter().enumerate() {
            if i == 2 && !needs_base {
                continue;
            }
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .filter(|(k, _)| k != "region" || auth_type == "aws_sigv4")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let refused = form.submit(&fields).await;
            assert_eq!(refused.status, 422, "{auth_type} #{i}: {}", refused.body);
            assert!(
                !refused.body.contains("Zk93"),
                "{auth_type} #{i}: {}",
                refused.body
            );
            if i == 1 {
                assert!(refused.body.contains("(HTTP 401)"), "{}", refused.body);
            }
        }
        let status = session.status(&app, &form.attempt_id).await;
        assert!(!status.to_string().contains("Zk93"), "{status}");
    }
    let events = app.call("GET", "/v1/events", Some(&key), None).await;
    assert!(!events.text.contains("Zk93"), "{}", events.text);
    assert!(connections(&app, &key).await.is_empty());
}

on_both_engines!(an_api_key_connects_through_the_form);
on_one_engine!(
    a_key_and_secret_go_in_the_query,
    a_key_with_url_keeps_to_allowed_addresses,
    the_basic_family_connects_against_nginx,
    aws_keys_sign_the_test_request,
    the_form_refuses_forged_submissions,
    canaries_never_come_back,
);
