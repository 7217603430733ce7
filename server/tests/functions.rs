//! Functions: declared per project, run on a connection from the backend and
//! from a page's session — against the real OpenID provider's userinfo, and
//! a scripted upstream for what a real one will not show (the exact request
//! a template made, pages, failures that echo the credential).

mod common;

use axum::http::StatusCode;
use common::fake::{json_response, Behaviour, FakePeer};
use common::journey::{connect, posted, registered_integration, Session, ORIGIN};
use common::provider::Provider;
use common::{Engine, TestApp};
use serde_json::{json, Value};

async fn create_function(app: &TestApp, key: &str, body: Value) -> Value {
    let reply = app
        .call("POST", "/v1/functions", Some(key), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body
}

async fn invoke(app: &TestApp, key: &str, name: &str, body: Value) -> common::Reply {
    app.call(
        "POST",
        &format!("/v1/functions/{name}/invoke"),
        Some(key),
        Some(body),
    )
    .await
}

/// An API-key connection (`X-Key: key-canary-Fn42`) to `base` for `user`.
async fn key_connection(app: &TestApp, key: &str, base: &str, user: &str) -> String {
    if app
        .call("GET", "/v1/integrations/api", Some(key), None)
        .await
        .status
        == StatusCode::NOT_FOUND
    {
        let created = app
            .call(
                "POST",
                "/v1/integrations",
                Some(key),
                Some(
                    json!({ "key": "api", "auth_type": "api_key", "api_key_name": "X-Key",
                             "api_base_url": base, "multiple_accounts": true }),
                ),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    let session = Session::mint(app, key, user, ORIGIN).await;
    let mut form = session.open_form(app, "api", None).await;
    let done = form.submit(&[("api_key", "key-canary-Fn42")]).await;
    let (_, message) = posted(&done.body);
    message["connectedAccountId"].as_str().unwrap().to_string()
}

/// A declared function against the provider's userinfo, from the backend and
/// from the end user's page; input checked against its schema.
async fn a_function_runs_on_a_connection(engine: Engine) {
    let app = TestApp::starting_now(engine).await;
    let provider = Provider::start_with("127.0.0.1", 60);
    let (_, key) = app.project("Acme").await;
    let mut body = provider.integration("acme");
    body["api_base_url"] = json!(provider.issuer);
    let (callback_url, _, _) =
        registered_integration(&app, &provider, &key, body, "client_secret_basic").await;
    let id = connect(&app, &key, &callback_url, None).await;
    create_function(
        &app,
        &key,
        json!({
            "name": "whoami", "integration": "acme", "description": "The signed-in account",
            "input_schema": { "type": "object", "properties": { "verbose": { "type": "boolean" } },
                              "additionalProperties": false },
            "request": { "method": "GET", "path": "/me" },
            "output": { "email": "/email", "subject": "/sub" }
        }),
    )
    .await;
    let reply = invoke(
        &app,
        &key,
        "whoami",
        json!({ "connection_id": id, "input": {} }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["output"]["email"], "alice@example.test");
    assert!(reply.body["output"]["subject"].is_string());
    assert_eq!(reply.body["next_page"], Value::Null);
    // A bad input names the field; nothing is sent.
    let reply = invoke(
        &app,
        &key,
        "whoami",
        json!({ "connection_id": id, "input": { "verbose": "yes", "extra": 1 } }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.code(), "validation_failed");
    assert!(
        reply.body["error"]["fields"]["input.verbose"].is_string(),
        "{}",
        reply.text
    );
    assert!(
        reply.body["error"]["fields"]["input"].is_string(),
        "{}",
        reply.text
    );
    // connection_id is required on the backend's route.
    let reply = invoke(&app, &key, "whoami", json!({ "input": {} })).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );

    // From the page: the end user's only account, found without an id.
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;
    let reply = app
        .send(session.sdk(
            "POST",
            "/v1/sdk/functions/whoami/invoke",
            Some(json!({ "input": {} })),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["output"]["email"], "alice@example.test");
    assert_eq!(reply.body["nextPage"], Value::Null);
    // A second account: the page must name one.
    connect_second(&app, &key, &callback_url).await;
    let reply = app
        .send(session.sdk(
            "POST",
            "/v1/sdk/functions/whoami/invoke",
            Some(json!({ "input": {} })),
        ))
        .await;
    assert_eq!(reply.code(), "account_ambiguous", "{}", reply.text);
    let reply = app
        .send(session.sdk(
            "POST",
            "/v1/sdk/functions/whoami/invoke",
            Some(json!({ "connectedAccountId": id, "input": {} })),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Never the built-in request from a page, nor someone else's account.
    let reply = app
        .send(session.sdk(
            "POST",
            "/v1/sdk/functions/http.request/invoke",
            Some(json!({ "connectedAccountId": id, "input": { "path": "/me" } })),
        ))
        .await;
    assert_eq!(reply.code(), "not_found", "{}", reply.text);
    let stranger = Session::mint(&app, &key, "user-2", ORIGIN).await;
    let reply = app
        .send(stranger.sdk(
            "POST",
            "/v1/sdk/functions/whoami/invoke",
            Some(json!({ "connectedAccountId": id, "input": {} })),
        ))
        .await;
    assert_eq!(reply.code(), "not_found", "{}", reply.text);
    let reply = app
        .send(stranger.sdk(
            "POST",
            "/v1/sdk/functions/whoami/invoke",
            Some(json!({ "input": {} })),
        ))
        .await;
    assert_eq!(reply.code(), "not_found", "{}", reply.text);
    // The backend may use http.request.
    let reply = invoke(
        &app,
        &key,
        "http.request",
        json!({ "connection_id": id, "input": { "method": "GET", "path": "/me" } }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["output"]["email"], "alice@example.test");
}

/// Connects `bob` for `user-1`, beside alice.
async fn connect_second(app: &TestApp, key: &str, callback_url: &str) {
    let session = Session::mint(app, key, "user-1", ORIGIN).await;
    let started = app
        .send(session.sdk("POST", "/v1/sdk/connect", Some(json!({ "app": "acme" }))))
        .await;
    let mut browser = common::provider::Browser::new();
    let callback = browser
        .popup_to_callback(
            &started.body,
            "bob",
            common::provider::Consent::Allow,
            callback_url,
        )
        .await;
    assert_eq!(browser.get(&callback).await.status, 200);
}

/// What a template sends: values encoded for their place, never a new host.
async fn templates_are_filled_safely(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let peer = FakePeer::start(Behaviour::Respond(json_response(200, r#"{"ok":true}"#))).await;
    let id = key_connection(&app, &key, &format!("{}/api", peer.url), "user-1").await;
    create_function(
        &app,
        &key,
        json!({
            "name": "contacts.update", "integration": "api",
            "input_schema": { "type": "object", "required": ["id"],
                              "properties": { "id": { "type": "string" }, "name": {}, "q": {} } },
            "request": { "method": "PATCH", "path": "/contacts/{{input.id}}",
                         "query": { "q": "{{input.q}}", "fixed": "1" },
                         "headers": { "X-Trace": "t-{{input.id}}" },
                         "body": { "name": "{{input.name}}", "note": "id={{input.id}}" } }
        }),
    )
    .await;
    for (id_value, expected_path) in [
        ("42", "/api/contacts/42?fixed=1&q=a+%26+b%3Dc"),
        (
            "../../admin",
            "/api/contacts/..%2F..%2Fadmin?fixed=1&q=a+%26+b%3Dc",
        ),
        (
            "@evil.example",
            "/api/contacts/%40evil.example?fixed=1&q=a+%26+b%3Dc",
        ),
        (
            "a b/c?d#e",
            "/api/contacts/a%20b%2Fc%3Fd%23e?fixed=1&q=a+%26+b%3Dc",
        ),
    ] {
        let reply = invoke(
            &app,
            &key,
            "contacts.update",
            json!({ "connection_id": id, "input": { "id": id_value, "q": "a & b=c",
                                                    "name": "x\", \"admin\": true" } }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let seen = peer.requests().last().cloned().unwrap();
        let first = seen.head.lines().next().unwrap().to_string();
        assert_eq!(
            first,
            format!("PATCH {expected_path} HTTP/1.1"),
            "{id_value}"
        );
        let sent: Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(
            sent,
            json!({ "name": "x\", \"admin\": true", "note": format!("id={id_value}") })
        );
        assert!(seen
            .head
            .to_ascii_lowercase()
            .contains("x-key: key-canary-fn42"));
    }
    // `.` and `..` as a whole segment: refused.
    let reply = invoke(
        &app,
        &key,
        "contacts.update",
        json!({ "connection_id": id, "input": { "id": ".." } }),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    // A header value cannot smuggle a line.
    let reply = invoke(
        &app,
        &key,
        "contacts.update",
        json!({ "connection_id": id, "input": { "id": "1\r\nX-Evil: 1" } }),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );

    // A failed call: upstream_error with the status and the body, the credential removed.
    peer.set(Behaviour::Echo);
    let reply = invoke(
        &app,
        &key,
        "contacts.update",
        json!({ "connection_id": id, "input": { "id": "7" } }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text);
    assert_eq!(reply.code(), "upstream_error");
    assert_eq!(reply.body["error"]["upstream_status"], 400);
    let excerpt = reply.body["error"]["upstream_body"].as_str().unwrap();
    assert!(excerpt.contains("PATCH /api/contacts/7"), "{excerpt}");
    assert!(!reply.text.contains("Fn42"), "{}", reply.text);

    // http.request: the same path rules as the proxy.
    peer.set(Behaviour::Respond(json_response(200, r#"{"ok":true}"#)));
    for path in ["/../x", "/%2e%2e/x", "//evil.example/x", "relative"] {
        let reply = invoke(
            &app,
            &key,
            "http.request",
            json!({ "connection_id": id, "input": { "path": path } }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert!(reply.body["error"]["fields"]["input.path"].is_string());
    }
    let reply = invoke(
        &app,
        &key,
        "http.request",
        json!({ "connection_id": id, "input": { "method": "POST", "path": "/x",
                "query": { "a": "1 2" }, "headers": { "X-Custom": "y" }, "body": { "k": [1] } } }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let seen = peer.requests().last().cloned().unwrap();
    assert!(
        seen.head.starts_with("POST /api/x?a=1+2 HTTP/1.1"),
        "{}",
        seen.head
    );
    assert_eq!(seen.body, r#"{"k":[1]}"#);
}

/// Cursor, link and offset pages: `next_page` until the last.
async fn pages_follow_the_functions_rule(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let peer = FakePeer::start(Behaviour::Respond(json_response(200, "{}"))).await;
    let id = key_connection(&app, &key, &format!("{}/api", peer.url), "user-1").await;
    create_function(
        &app,
        &key,
        json!({ "name": "by-cursor", "integration": "api",
                "request": { "path": "/items", "query": { "limit": "2" } },
                "output": "/items",
                "pagination": { "type": "cursor", "cursor_pointer": "/next", "param": "after" } }),
    )
    .await;
    create_function(
        &app,
        &key,
        json!({ "name": "by-link", "integration": "api", "request": { "path": "/pages" },
                "pagination": { "type": "link" } }),
    )
    .await;
    create_function(
        &app,
        &key,
        json!({ "name": "by-offset", "integration": "api", "request": { "path": "/rows" },
                "output": "/rows",
                "pagination": { "type": "offset", "param": "offset", "page_size": 2 } }),
    )
    .await;

    peer.set(Behaviour::Respond(json_response(
        200,
        r#"{"items":[1,2],"next":"c-2"}"#,
    )));
    let first = invoke(&app, &key, "by-cursor", json!({ "connection_id": id })).await;
    assert_eq!(first.body["output"], json!([1, 2]), "{}", first.text);
    let next = first.body["next_page"]
        .as_str()
        .expect("a next page")
        .to_string();
    peer.set(Behaviour::Respond(json_response(
        200,
        r#"{"items":[3],"next":null}"#,
    )));
    let last = invoke(
        &app,
        &key,
        "by-cursor",
        json!({ "connection_id": id, "page": next }),
    )
    .await;
    assert_eq!(last.body["output"], json!([3]));
    assert_eq!(last.body["next_page"], Value::Null);
    let head = peer.requests().last().unwrap().head.clone();
    assert!(
        head.starts_with("GET /api/items?limit=2&after=c-2 "),
        "{head}"
    );
    let bad = invoke(
        &app,
        &key,
        "by-cursor",
        json!({ "connection_id": id, "page": "forged" }),
    )
    .await;
    assert!(
        bad.body["error"]["fields"]["page"].is_string(),
        "{}",
        bad.text
    );

    // A Link header: followed only under the connection's base URL.
    let base = format!("{}/api", peer.url);
    peer.set(Behaviour::Respond(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlink: <{base}/pages?p=2>; rel=\"next\"\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]"
    )));
    let first = invoke(&app, &key, "by-link", json!({ "connection_id": id })).await;
    let next = first.body["next_page"]
        .as_str()
        .expect("a next page")
        .to_string();
    peer.set(Behaviour::Respond(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlink: <http://127.0.0.2:9/steal>; rel=\"next\"\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]".to_string(),
    ));
    let second = invoke(
        &app,
        &key,
        "by-link",
        json!({ "connection_id": id, "page": next }),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert!(peer
        .requests()
        .last()
        .unwrap()
        .head
        .starts_with("GET /api/pages?p=2 "));
    assert_eq!(
        second.body["next_page"],
        Value::Null,
        "a link elsewhere ends the pages"
    );

    // Offsets: a full page means there may be another.
    peer.set(Behaviour::Respond(json_response(
        200,
        r#"{"rows":["a","b"]}"#,
    )));
    let first = invoke(&app, &key, "by-offset", json!({ "connection_id": id })).await;
    let next = first.body["next_page"]
        .as_str()
        .expect("a next page")
        .to_string();
    peer.set(Behaviour::Respond(json_response(200, r#"{"rows":["c"]}"#)));
    let last = invoke(
        &app,
        &key,
        "by-offset",
        json!({ "connection_id": id, "page": next }),
    )
    .await;
    assert_eq!(last.body["output"], json!(["c"]));
    assert_eq!(last.body["next_page"], Value::Null);
    assert!(peer
        .requests()
        .last()
        .unwrap()
        .head
        .starts_with("GET /api/rows?offset=2 "));
}

/// Declaring functions: each fault named, names unique, a connection of
/// another integration refused, another project's functions invisible.
async fn functions_are_declared_per_project(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let peer = FakePeer::start(Behaviour::Respond(json_response(200, "{}"))).await;
    let id = key_connection(&app, &key, &peer.url, "user-1").await;
    let reply = app
        .call(
            "POST",
            "/v1/functions",
            Some(&key),
            Some(json!({ "name": "f", "integration": "nope", "request": { "path": "/x" } })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body["error"]["fields"]["integration"].is_string());
    let reply = app
        .call(
            "POST",
            "/v1/functions",
            Some(&key),
            Some(json!({ "name": "f", "integration": "api", "request": { "path": "/x" },
                         "input_schema": { "properties": { "a": { "$ref": "http://127.0.0.1:9/s.json" } } } })),
        )
        .await;
    assert!(
        reply.body["error"]["fields"]["input_schema"]
            .as_str()
            .unwrap_or_default()
            .contains("other documents"),
        "{}",
        reply.text
    );
    let created = create_function(
        &app,
        &key,
        json!({ "name": "f", "integration": "api", "request": { "path": "/x" } }),
    )
    .await;
    assert_eq!(created["integration"], "api");
    assert_eq!(created["request"]["method"], "GET");
    let again = app
        .call(
            "POST",
            "/v1/functions",
            Some(&key),
            Some(json!({ "name": "f", "integration": "api", "request": { "path": "/y" } })),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let patched = app
        .call(
            "PATCH",
            "/v1/functions/f",
            Some(&key),
            Some(json!({ "description": "Finds", "request": { "method": "POST", "path": "/y" } })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["request"]["path"], "/y");
    let list = app.call("GET", "/v1/functions", Some(&key), None).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);

    let (_, other) = app.project("Other").await;
    assert_eq!(
        app.call("GET", "/v1/functions/f", Some(&other), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let reply = invoke(&app, &other, "f", json!({ "connection_id": id })).await;
    assert_eq!(reply.code(), "not_found");
    let reply = invoke(
        &app,
        &other,
        "http.request",
        json!({ "connection_id": id, "input": { "path": "/" } }),
    )
    .await;
    assert_eq!(reply.code(), "not_found");
    assert_eq!(
        app.call("DELETE", "/v1/functions/f", Some(&key), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        invoke(&app, &key, "f", json!({ "connection_id": id }))
            .await
            .code(),
        "not_found"
    );
}

on_both_engines!(a_function_runs_on_a_connection);
on_one_engine!(
    templates_are_filled_safely,
    pages_follow_the_functions_rule,
    functions_are_declared_per_project,
);
