//! The proxy (`ANY /v1/proxy/{connection_id}/{path}`): against the real
//! OpenID provider's userinfo endpoint (the connection's token, refreshed
//! when it expires and once after a 401), SigV4 through it checked by
//! botocore, and SECURITY 16–21 with a scripted upstream.

mod common;

use std::time::Duration;

use common::fake::{json_response, Behaviour, FakePeer};
use common::journey::{connect, posted, registered_integration, Session, ORIGIN};
use common::provider::Provider;
use common::upstream::Upstream;
use common::{Engine, TestApp};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer as the caller sees it.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn own_error(&self) -> Option<&str> {
        self.headers
            .get("plugboard-error")
            .and_then(|v| v.to_str().ok())
    }
}

async fn call(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", app.base_url),
        )
        .bearer_auth(key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("proxy call");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// A request written byte for byte: a path no HTTP client would normalise.
async fn raw(app: &TestApp, key: &str, target: &str) -> (u16, String) {
    let address = app.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// An API-key connection (header `X-Key: key-1`) to `base`, made through the credential form.
async fn key_connection(app: &TestApp, key: &str, base: &str) -> String {
    let created = app
        .call(
            "POST",
            "/v1/integrations",
            Some(key),
            Some(
                json!({ "key": "api", "auth_type": "api_key", "api_key_name": "X-Key",
                         "api_base_url": base }),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let session = Session::mint(app, key, "user-1", ORIGIN).await;
    let mut form = session.open_form(app, "api", None).await;
    let done = form.submit(&[("api_key", "key-1")]).await;
    let (_, message) = posted(&done.body);
    message["connectedAccountId"].as_str().unwrap().to_string()
}

async fn revoke(provider: &Provider, client: &(String, String), token: &str, hint: &str) {
    let revoked = reqwest::Client::new()
        .post(format!("{}/token/revocation", provider.issuer))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", token), ("token_type_hint", hint)])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
}

/// Replaces the connection's access token with `token`, valid for an hour as
/// far as Plugboard knows, keeping its refresh token.
async fn plant_token(app: &TestApp, project: &str, id: &str, token: &str) {
    let row = app
        .store()
        .get_connection(project, id)
        .await
        .unwrap()
        .unwrap();
    let saved = app
        .store()
        .save_connection(
            &app.state.vault,
            plugboard::store::SavedConnection {
                project_id: project,
                integration_id: &row.integration_id,
                integration_key: &row.integration,
                end_user_id: row.end_user_id.as_deref().unwrap(),
                reconnect_id: Some(id),
                subject: None,
                label: None,
                scopes: &row.scopes,
                client_generation: row.client_generation,
                credentials: plugboard::store::SavedCredentials::Tokens {
                    access_token: token,
                    refresh_token: None,
                    token_type: "Bearer",
                    token_expires_at: Some(app.state.now() + 3600),
                },
                now: app.state.now(),
            },
            |_| plugboard::store::AccountDecision::Update(id.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(
        saved,
        plugboard::store::SaveOutcome::Updated(id.to_string())
    );
}

/// The connection's token, refreshed when it expires and once after a 401
/// (exactly one refresh, one retry), against the provider's userinfo.
async fn the_proxy_calls_with_the_connections_fresh_token(engine: Engine) {
    let app = TestApp::starting_now(engine).await;
    let provider = Provider::start_with("127.0.0.1", 2);
    let (project, key) = app.project("Acme").await;
    let mut body = provider.integration("acme");
    body["api_base_url"] = json!(provider.issuer);
    let (callback_url, client_id, client_secret) =
        registered_integration(&app, &provider, &key, body, "client_secret_basic").await;
    let client = (client_id, client_secret);
    let id = connect(&app, &key, &callback_url, None).await;
    let path = format!("/v1/proxy/{id}/me");

    let answer = call(&app, &key, "GET", &path, &[], None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json()["sub"].is_string(), "{}", answer.body);
    assert_eq!(answer.own_error(), None);
    // The router itself (as `http::router` is called in tests) sends the
    // call to the same handler the listener hands it to directly.
    let routed = app.call("GET", &path, Some(&key), None).await;
    assert_eq!(routed.status, 200, "{}", routed.text);
    assert_eq!(routed.body["sub"], answer.json()["sub"]);

    // Expired: refreshed first, once.
    let refreshes = provider.count("refresh_token:ok").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.clock.advance(3);
    assert_eq!(call(&app, &key, "GET", &path, &[], None).await.status, 200);
    assert_eq!(provider.count("refresh_token:ok").await, refreshes + 1);

    // A token the provider does not accept although it has not expired (here
    // Plugboard's copy is replaced by one the provider never issued — the
    // provider itself revokes a whole grant with any of its tokens): the 401
    // is met with one refresh and one retry.
    plant_token(&app, &project, &id, "a-token-the-provider-never-issued").await;
    let answer = call(&app, &key, "GET", &path, &[], None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(provider.count("refresh_token:ok").await, refreshes + 2);
    assert_eq!(call(&app, &key, "GET", &path, &[], None).await.status, 200);
    assert_eq!(provider.count("refresh_token:ok").await, refreshes + 2);

    // The grant is gone too: the 401's refresh finds it dead — needs_reauth,
    // and later calls answer it without reaching the provider.
    let secrets = app
        .store()
        .connection_secrets(&app.state.vault, &id)
        .await
        .unwrap();
    revoke(
        &provider,
        &client,
        secrets["refresh_token"].expose(),
        "refresh_token",
    )
    .await;
    revoke(
        &provider,
        &client,
        secrets["access_token"].expose(),
        "access_token",
    )
    .await;
    let answer = call(&app, &key, "GET", &path, &[], None).await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert_eq!(answer.own_error(), Some("needs_reauth"));
    let failed = provider.count("refresh_token:error").await;
    let answer = call(&app, &key, "GET", &path, &[], None).await;
    assert_eq!(answer.json()["error"]["code"], "needs_reauth");
    assert_eq!(provider.count("refresh_token:error").await, failed);
}

/// SECURITY 17–20 and the retries, against a scripted upstream; the caller's
/// paths never leave its host (a listener on 127.0.0.2 sees nothing).
async fn the_proxy_keeps_to_the_connections_host(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let trap = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let peer = FakePeer::start(Behaviour::Respond(json_response(200, r#"{"ok":true}"#))).await;
    let id = key_connection(&app, &key, &format!("{}/api", peer.url)).await;

    // The credential is placed; the caller's own routing and identity are not passed on.
    let answer = call(
        &app,
        &key,
        "POST",
        &format!("/v1/proxy/{id}/items?page=2&q=a%20b"),
        &[
            ("cookie", "session=theirs"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=10.0.0.1"),
            ("x-key", "the-callers-own"),
            ("content-type", "application/json"),
            ("x-custom", "kept"),
        ],
        Some(r#"{"name":"x"}"#),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, r#"{"ok":true}"#);
    let seen = peer.requests().last().cloned().unwrap();
    let head = seen.head.to_ascii_lowercase();
    assert!(
        head.starts_with("post /api/items?page=2&q=a%20b http/1.1"),
        "{head}"
    );
    assert!(head.contains("x-key: key-1\r\n"), "{head}");
    assert!(!head.contains("the-callers-own"), "{head}");
    assert!(head.contains("x-custom: kept"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    for gone in [
        "cookie",
        "x-forwarded-",
        "forwarded:",
        &key.to_ascii_lowercase(),
        "authorization",
    ] {
        assert!(!head.contains(gone), "{gone} reached the upstream: {head}");
    }
    assert_eq!(seen.body, r#"{"name":"x"}"#);

    // Traversal spellings: refused, before any call.
    let before = peer.requests().len();
    for target in [
        format!("/v1/proxy/{id}/../../admin"),
        format!("/v1/proxy/{id}/%2e%2e/admin"),
        format!("/v1/proxy/{id}/.%2E/admin"),
        format!("/v1/proxy/{id}/a/%2F%2F127.0.0.2:{trap_port}/x"),
        format!("/v1/proxy/{id}//127.0.0.2:{trap_port}/x"),
        format!("/v1/proxy/{id}/a%5c..%5cb"),
    ] {
        let (status, text) = raw(&app, &key, &target).await;
        assert!(
            status == 422 || status == 404 || status == 400,
            "{target}: {text}"
        );
        assert!(
            !text.contains("\"ok\":true"),
            "{target} reached the upstream"
        );
    }
    assert_eq!(peer.requests().len(), before);
    // `@host` stays a path on the connection's host.
    let (status, _) = raw(
        &app,
        &key,
        &format!("/v1/proxy/{id}/@127.0.0.2:{trap_port}/x"),
    )
    .await;
    assert_eq!(status, 200);
    let head = peer.requests().last().unwrap().head.clone();
    assert!(
        head.starts_with(&format!("GET /api/@127.0.0.2:{trap_port}/x ")),
        "{head}"
    );

    // A redirect is passed back, never followed.
    peer.set(Behaviour::Respond(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.2:{trap_port}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )));
    let answer = call(&app, &key, "GET", &format!("/v1/proxy/{id}/go"), &[], None).await;
    assert_eq!(answer.status, 302);
    assert_eq!(
        answer.headers["location"],
        format!("http://127.0.0.2:{trap_port}/steal").as_str()
    );
    assert_eq!(answer.own_error(), None);
    let nothing = tokio::time::timeout(Duration::from_millis(200), trap.accept()).await;
    assert!(nothing.is_err(), "127.0.0.2 was reached");

    // The upstream's own headers come back; those of its hop do not.
    peer.set(Behaviour::Respond(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: kept\r\n\
         keep-alive: timeout=5\r\nproxy-authenticate: Basic realm=\"up\"\r\n\
         trailer: x-sum\r\nupgrade: h2c\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
            .to_string(),
    ));
    let answer = call(&app, &key, "GET", &format!("/v1/proxy/{id}/h"), &[], None).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "{}"));
    assert_eq!(answer.headers["x-upstream"], "kept");
    for gone in ["keep-alive", "proxy-authenticate", "trailer", "upgrade"] {
        assert!(
            !answer.headers.contains_key(gone),
            "{gone} came back: {:?}",
            answer.headers
        );
    }

    // Retries only when asked, on 5xx; the upstream's answer comes back as it came.
    peer.set(Behaviour::Respond(json_response(503, r#"{"busy":true}"#)));
    let before = peer.requests().len();
    let answer = call(&app, &key, "GET", &format!("/v1/proxy/{id}/x"), &[], None).await;
    assert_eq!((answer.status, answer.own_error()), (503, None));
    assert_eq!(answer.body, r#"{"busy":true}"#);
    assert_eq!(peer.requests().len(), before + 1);
    let answer = call(
        &app,
        &key,
        "GET",
        &format!("/v1/proxy/{id}/x"),
        &[("plugboard-retries", "2")],
        None,
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(peer.requests().len(), before + 4);
    assert!(!peer
        .requests()
        .last()
        .unwrap()
        .head
        .to_ascii_lowercase()
        .contains("plugboard-retries"));
    let answer = call(
        &app,
        &key,
        "GET",
        &format!("/v1/proxy/{id}/x"),
        &[("plugboard-retries", "9")],
        None,
    )
    .await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.own_error(), Some("validation_failed"));
    assert_eq!(peer.requests().len(), before + 4);

    // An upstream that floods is cut at the size limit (1 MiB here).
    peer.set(Behaviour::Flood(8 * 1024 * 1024));
    let response = reqwest::Client::new()
        .get(format!("{}/v1/proxy/{id}/big", app.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = 0usize;
    let mut stream = response.bytes_stream();
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received += bytes.len(),
            Err(_) => break,
        }
    }
    assert!(
        received <= 1024 * 1024 + 64 * 1024,
        "{received} bytes passed"
    );
    // One that stalls: upstream_error at the time limit.
    peer.set(Behaviour::Stall);
    let answer = call(
        &app,
        &key,
        "GET",
        &format!("/v1/proxy/{id}/slow"),
        &[],
        None,
    )
    .await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert_eq!(answer.own_error(), Some("upstream_error"));

    // Unknown connections and another project's are the same not_found.
    let (_, other_key) = app.project("Other").await;
    for (k, path) in [
        (&key, "/v1/proxy/conn_nope/x".to_string()),
        (&other_key, format!("/v1/proxy/{id}/x")),
    ] {
        let answer = call(&app, k, "GET", &path, &[], None).await;
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert_eq!(answer.own_error(), Some("not_found"));
    }
}

/// SigV4 through the proxy: the upstream recomputes the signature of what it
/// received with botocore and accepts only a match.
async fn sigv4_through_the_proxy_is_what_botocore_computes(engine: Engine) {
    let app = TestApp::starting_now(engine).await;
    let (_, key) = app.project("Acme").await;
    let upstream = Upstream::start(json!({ "accounts": [
        { "aws": { "access_key_id": "AKIDEXAMPLE", "region": "eu-west-1", "service": "execute-api",
                   "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
          "answer": { "signed": true } },
    ]}));
    let created = app
        .call(
            "POST",
            "/v1/integrations",
            Some(&key),
            Some(
                json!({ "key": "aws", "auth_type": "aws_sigv4", "aws_service": "execute-api",
                         "api_base_url": format!("{}/prod", upstream.url) }),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;
    let mut form = session.open_form(&app, "aws", None).await;
    let done = form
        .submit(&[
            ("access_key_id", "AKIDEXAMPLE"),
            (
                "secret_access_key",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            ("region", "eu-west-1"),
        ])
        .await;
    let (_, message) = posted(&done.body);
    let id = message["connectedAccountId"].as_str().unwrap().to_string();
    for (method, path, body) in [
        ("GET", "/items/a%20b/%C3%A9t%C3%A9?z=1&a=2&a=1", None),
        ("POST", "/items", Some(r#"{"name":"x y"}"#)),
        ("DELETE", "/items/42", None),
    ] {
        let answer = call(
            &app,
            &key,
            method,
            &format!("/v1/proxy/{id}{path}"),
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(answer.status, 200, "{method} {path}: {}", answer.body);
        assert_eq!(answer.json(), json!({ "signed": true }));
    }
}

/// Asks `replica` for `path` until `done` holds of the answer, for up to 5 s
/// (a change reaches another replica through PostgreSQL's NOTIFY, in
/// milliseconds; what the proxy keeps would otherwise live a minute).
async fn until(replica: &TestApp, key: &str, path: &str, done: impl Fn(&Answer) -> bool) -> Answer {
    let started = std::time::Instant::now();
    loop {
        let answer = call(replica, key, "GET", path, &[], None).await;
        if done(&answer) || started.elapsed() > Duration::from_secs(5) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last key the upstream received in `X-Key`.
fn last_key(upstream: &FakePeer) -> String {
    let requests = upstream.requests();
    let head = requests
        .last()
        .map(|r| r.head.to_ascii_lowercase())
        .unwrap_or_default();
    head.lines()
        .find_map(|l| l.strip_prefix("x-key: "))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// What the proxy keeps between calls (the secret key, the connection, its
/// credential) never outlives a change made anywhere: on SQLite in the one
/// process, on PostgreSQL in another replica too — a reconnect's new key, a
/// revoked secret key, a disconnect, and a write it could not hear while
/// its listening connection was down.
async fn what_the_proxy_keeps_follows_every_change(engine: Engine) {
    let app = TestApp::new(engine).await;
    let upstream = FakePeer::start(Behaviour::Respond(json_response(200, r#"{"ok":true}"#))).await;
    let (_, key) = app.project("Acme").await;
    let id = key_connection(&app, &key, &upstream.url).await;
    let replica = match engine {
        Engine::Postgres => Some(app.replica().await),
        Engine::Sqlite => None,
    };
    // The calls go to the replica; the changes are made on the first server.
    let other = replica.as_ref().unwrap_or(&app);
    let second = app.call("POST", "/v1/keys", Some(&key), None).await;
    let (second, second_id) = (
        second.body["secret_key"].as_str().unwrap().to_string(),
        second.body["id"].as_str().unwrap().to_string(),
    );
    let path = format!("/v1/proxy/{id}/items");
    let answer = until(other, &second, &path, |a| a.status == 200).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(last_key(&upstream), "key-1");

    // Reconnected with another key: the next calls carry it.
    let session = Session::mint(&app, &key, "user-1", ORIGIN).await;
    let mut form = session.open_form(&app, "api", Some(&id)).await;
    let done = form.submit(&[("api_key", "key-2")]).await;
    assert_eq!(posted(&done.body).1["connectedAccountId"], json!(id));
    until(other, &second, &path, |_| last_key(&upstream) == "key-2").await;
    assert_eq!(last_key(&upstream), "key-2");
    let calls = upstream.requests().len();
    assert_eq!(
        call(other, &second, "GET", &path, &[], None).await.status,
        200
    );
    assert_eq!(last_key(&upstream), "key-2", "never the old key again");
    assert_eq!(upstream.requests().len(), calls + 1);

    // The secret key the replica knows is revoked: refused there.
    let revoked = app
        .call("DELETE", &format!("/v1/keys/{second_id}"), Some(&key), None)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    let answer = until(other, &second, &path, |a| a.status == 401).await;
    assert_eq!(
        answer.status, 401,
        "a revoked key still worked: {}",
        answer.body
    );

    if engine == Engine::Postgres {
        // The replicas' listening connections are cut, and a write is made
        // that announces nothing (as one made while they were down): the
        // replica's cache was emptied when it lost its connection, and the
        // connection's new state is read.
        assert_eq!(call(other, &key, "GET", &path, &[], None).await.status, 200);
        let cut = common::execute(
            engine,
            &app.database_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            None,
        )
        .await;
        assert_eq!(cut, 2, "each server listens on one connection");
        common::execute(
            engine,
            &app.database_url,
            &format!("UPDATE connections SET status = 'needs_reauth' WHERE id = '{id}'"),
            None,
        )
        .await;
        let answer = until(other, &key, &path, |a| a.status == 409).await;
        assert_eq!(answer.own_error(), Some("needs_reauth"), "{}", answer.body);
        common::execute(
            engine,
            &app.database_url,
            &format!("UPDATE connections SET status = 'active' WHERE id = '{id}'"),
            None,
        )
        .await;
        // Listening again: changes are heard again.
        let answer = until(other, &key, &path, |a| a.status == 200).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    // Disconnected: gone for the proxy.
    let deleted = app
        .call("DELETE", &format!("/v1/connections/{id}"), Some(&key), None)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let answer = until(other, &key, &path, |a| a.status == 404).await;
    assert_eq!(
        answer.status, 404,
        "a deleted connection was still used: {}",
        answer.body
    );
    assert_eq!(answer.own_error(), Some("not_found"));
}

/// An API on loopback that answers what it received: the body's length
/// and SHA-256, and whether it came with a length or chunked.
async fn measuring_upstream() -> String {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use sha2::{Digest, Sha256};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(|headers: HeaderMap, body: Bytes| async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            axum::Json(json!({
                "length": body.len(),
                "sha256": hex::encode(Sha256::digest(&body)),
                "content_length": header("content-length"),
                "transfer_encoding": header("transfer-encoding"),
            }))
        })
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// A body in 64 KiB pieces, with no length given (sent chunked).
fn pieces(body: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

/// Request bodies larger than the request limit go on as they arrive
/// (with the caller's length, or chunked), whole and unchanged; beyond the
/// outbound size limit (413), or trickling past the body time limit (408),
/// they are the caller's error, answered by the proxy itself.
async fn large_request_bodies_stream_through_the_proxy(engine: Engine) {
    let limits = plugboard::config::Limits {
        body_timeout: Duration::from_secs(2),
        ..common::raised_limits()
    };
    let app = TestApp::with_limits(engine, limits, false).await;
    let upstream = measuring_upstream().await;
    let (_, key) = app.project("Acme").await;
    let id = key_connection(&app, &key, &upstream).await;
    let url = format!("{}/v1/proxy/{id}/upload", app.base_url);
    let client = reqwest::Client::new();
    let send = |body: reqwest::Body| client.post(url.clone()).bearer_auth(&key).body(body).send();
    let body: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i * 7 % 251) as u8).collect();

    // With its length: sent on with it.
    let answer = send(body.clone().into()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let received: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(received["length"], json!(body.len()), "{received}");
    assert_eq!(received["sha256"], json!(sha256_hex(&body)));
    assert_eq!(received["content_length"], json!(body.len().to_string()));

    // Chunked: passed on chunked.
    let answer = send(pieces(body.clone())).await.unwrap();
    assert_eq!(answer.status(), 200);
    let received: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(received["length"], json!(body.len()), "{received}");
    assert_eq!(received["sha256"], json!(sha256_hex(&body)));
    assert_eq!(received["transfer_encoding"], json!("chunked"));

    // A small body is read whole as before (and could be sent again).
    let answer = send(b"{\"small\":true}".to_vec().into()).await.unwrap();
    let received: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(received["length"], json!(14), "{received}");

    // Over the outbound size limit (the harness's 1 MiB; 2 MiB by default),
    // said or not: 413, the proxy's own.
    let huge = vec![b'x'; 3 * 1024 * 1024];
    for body in [reqwest::Body::from(huge.clone()), pieces(huge.clone())] {
        let answer = send(body).await.unwrap();
        let status = answer.status();
        let own = answer.headers().get("plugboard-error").cloned();
        let text = answer.text().await.unwrap();
        assert_eq!(status, 413, "{text}");
        assert_eq!(own.unwrap(), "validation_failed");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["code"], "validation_failed", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at most 1048576 bytes"),
            "{error}"
        );
    }

    // Past the request limit, then nothing more: cut at the body time
    // limit (2 s here) with 408.
    let started = std::time::Instant::now();
    let first: Result<Vec<u8>, std::io::Error> = Ok(vec![b'y'; 300 * 1024]);
    let trickle = futures_util::stream::iter([first]).chain(futures_util::stream::pending());
    let answer = send(reqwest::Body::wrap_stream(trickle)).await.unwrap();
    assert_eq!(answer.status(), 408);
    assert_eq!(
        answer.headers().get("plugboard-error").unwrap(),
        "validation_failed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// An API that turns away one token with 401 and otherwise answers what
/// it received; it keeps each request's token and body length.
async fn token_checking_upstream(
    refused: &'static str,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, usize)>>>,
) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let kept = seen.clone();
    let app = axum::Router::new()
        .fallback(move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                let token = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .trim_start_matches("Bearer ")
                    .to_string();
                kept.lock().unwrap().push((token.clone(), body.len()));
                if token == refused {
                    (
                        StatusCode::UNAUTHORIZED,
                        r#"{"error":"invalid_token"}"#.to_string(),
                    )
                } else {
                    (StatusCode::OK, json!({ "length": body.len() }).to_string())
                }
            }
        })
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A streamed body cannot be sent twice: when the upstream answers 401 to
/// it, the token is refreshed once and the 401 goes back to the caller as
/// it came (the body reached the upstream once); the next call carries the
/// new token and is accepted, with no further refresh.
async fn a_streamed_body_meets_a_401_with_one_refresh_and_no_resend(engine: Engine) {
    const REFUSED: &str = "a-token-the-api-turns-away";
    let app = TestApp::starting_now(engine).await;
    let provider = Provider::start("127.0.0.1");
    let (upstream, seen) = token_checking_upstream(REFUSED).await;
    let (project, key) = app.project("Acme").await;
    let mut body = provider.integration("acme");
    body["api_base_url"] = json!(upstream);
    let (callback_url, _, _) =
        registered_integration(&app, &provider, &key, body, "client_secret_basic").await;
    let id = connect(&app, &key, &callback_url, None).await;
    plant_token(&app, &project, &id, REFUSED).await;
    let refreshes = provider.count("refresh_token:ok").await;

    let large: Vec<u8> = vec![b'z'; 512 * 1024];
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/proxy/{id}/upload", app.base_url))
        .bearer_auth(&key)
        .body(pieces(large.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().get("plugboard-error").is_none());
    assert_eq!(answer.text().await.unwrap(), r#"{"error":"invalid_token"}"#);
    assert_eq!(provider.count("refresh_token:ok").await, refreshes + 1);
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![(REFUSED.to_string(), large.len())],
        "the streamed body reaches the upstream once, with the refused token"
    );

    let answer = reqwest::Client::new()
        .post(format!("{}/v1/proxy/{id}/upload", app.base_url))
        .bearer_auth(&key)
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(provider.count("refresh_token:ok").await, refreshes + 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_ne!(seen[1].0, REFUSED);
    assert!(!seen[1].0.is_empty());
    assert_eq!(seen[1].1, large.len());
}

on_both_engines!(
    the_proxy_calls_with_the_connections_fresh_token,
    what_the_proxy_keeps_follows_every_change,
);
on_one_engine!(
    the_proxy_keeps_to_the_connections_host,
    large_request_bodies_stream_through_the_proxy,
    a_streamed_body_meets_a_401_with_one_refresh_and_no_resend,
    sigv4_through_the_proxy_is_what_botocore_computes,
);
