//! The connect flow's server half, end to end over HTTP against a real
//! OpenID provider (oidc-provider), on SQLite and PostgreSQL: the SDK's
//! endpoints, the popup, the callback, and the account rules. Also
//! SECURITY.md items 1–10 and 13.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::journey::registered_integration;
use common::provider::{
    connected_id, posted, sign_in_until_callback, Browser, Consent, Provider, Visit,
};
use common::{Engine, Reply, TestApp};
use serde_json::{json, Value};

const ORIGIN: &str = "http://localhost:3000";

on_both_engines!(
    connects_a_first_and_a_second_account_and_updates_the_same_one,
    reconnecting_a_named_connection_updates_it_or_refuses_another_account,
    a_single_account_app_refuses_a_second_account,
    refused_consent_is_access_denied_and_escaped,
    an_expired_session_is_refused_at_start_and_at_the_callback,
    unknown_apps_and_foreign_integrations_are_refused,
    states_are_single_use_and_need_the_binding_cookie,
    a_wrong_issuer_stops_before_the_code_exchange,
    an_injected_code_fails_pkce,
    origins_the_session_does_not_allow_get_nothing,
    sdk_endpoints_list_and_disconnect_only_the_end_users_own,
    popup_ignores_redirect_targets_from_the_request,
    disconnecting_revokes_at_the_provider_then_deletes,
    a_failed_revocation_still_disconnects_and_is_recorded,
    a_re_pointed_url_needs_the_client_secret_and_old_connections_keep_theirs,
    a_popup_without_its_openers_proof_binds_nothing,
    an_attempt_expires_after_ten_minutes_at_the_popup_and_the_callback,
    a_refused_callback_never_reaches_the_token_endpoint,
    a_cancelled_attempt_creates_nothing_and_a_finished_one_keeps_its_outcome,
    sdk_failures_speak_of_the_session_token_and_the_page,
);

struct Setup {
    app: TestApp,
    provider: Provider,
    key: String,
    callback_url: String,
    client_secret: String,
}

async fn setup(engine: Engine, extra: Value) -> Setup {
    setup_with(engine, extra, "client_secret_basic").await
}

async fn setup_with(engine: Engine, extra: Value, auth_method: &str) -> Setup {
    let app = TestApp::starting_now(engine).await;
    let provider = Provider::start("127.0.0.1");
    let (_, key) = app.project("Acme").await;
    let mut body = provider.integration("acme");
    body["token_auth_method"] = json!(auth_method);
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let (callback_url, _, client_secret) =
        registered_integration(&app, &provider, &key, body, auth_method).await;
    Setup {
        app,
        provider,
        key,
        callback_url,
        client_secret,
    }
}

impl Setup {
    async fn session(&self, end_user: &str, extra: Value) -> String {
        let mut body = json!({ "end_user_id": end_user, "allowed_origins": [ORIGIN] });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let reply = self
            .app
            .call("POST", "/v1/connect/sessions", Some(&self.key), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["token"].as_str().unwrap().to_string()
    }

    /// A call to the SDK's endpoints, as a page on `origin` makes it.
    async fn sdk(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        origin: &str,
    ) -> Reply {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("origin", origin)
            .header("content-type", "application/json");
        let request = match body {
            Some(b) => builder.body(Body::from(b.to_string())),
            None => builder.body(Body::empty()),
        }
        .unwrap();
        self.app.send(request).await
    }

    /// Starts an attempt; returns the SDK's answer.
    async fn start(&self, token: &str, body: Value) -> Reply {
        self.sdk("POST", "/v1/sdk/connect", token, Some(body), ORIGIN)
            .await
    }

    /// The whole journey in a fresh browser: start, sign in as `account`,
    /// answer consent, land on the callback. Returns the callback page and the attempt id.
    async fn connect(
        &self,
        token: &str,
        account: &str,
        consent: Consent,
        body: Value,
    ) -> (Visit, String) {
        let started = self.start(token, body).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        let mut browser = Browser::new();
        let callback = browser
            .popup_to_callback(&started.body, account, consent, &self.callback_url)
            .await;
        let page = browser.get(&callback).await;
        (
            page,
            started.body["attemptId"].as_str().unwrap().to_string(),
        )
    }

    /// Starts an attempt and signs in as `account` in a fresh browser, stopping
    /// just before the provider's redirect back to Plugboard.
    async fn until_callback(&self, token: &str, account: &str) -> Journey {
        let started = self.start(token, json!({ "app": "acme" })).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        let popup = started.body["popupUrl"].as_str().unwrap().to_string();
        let attempt = started.body["attemptId"].as_str().unwrap().to_string();
        let mut browser = Browser::new();
        let callback = browser
            .popup_to_callback(&started.body, account, Consent::Allow, &self.callback_url)
            .await;
        Journey {
            browser,
            popup,
            attempt,
            callback,
        }
    }

    /// Deletes a connection from the backend; answers the status.
    async fn delete_connection(&self, id: &str) -> StatusCode {
        self.app
            .call(
                "DELETE",
                &format!("/v1/connections/{id}"),
                Some(&self.key),
                None,
            )
            .await
            .status
    }

    /// A connection's tokens, as stored.
    async fn tokens(
        &self,
        id: &str,
    ) -> std::collections::BTreeMap<String, plugboard::secret::Secret> {
        self.app
            .store()
            .connection_secrets(&self.app.state.vault, id)
            .await
            .unwrap()
    }

    async fn accounts(&self, token: &str) -> Vec<Value> {
        let reply = self
            .sdk("GET", "/v1/sdk/connections", token, None, ORIGIN)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body.as_array().unwrap().clone()
    }

    async fn status(&self, token: &str, attempt: &str) -> Value {
        let reply = self
            .sdk(
                "GET",
                &format!("/v1/sdk/connect/{attempt}"),
                token,
                None,
                ORIGIN,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }
}

/// An attempt signed in at the provider, its callback not yet visited.
struct Journey {
    browser: Browser,
    popup: String,
    attempt: String,
    callback: String,
}

async fn connects_a_first_and_a_second_account_and_updates_the_same_one(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;

    let (page, attempt) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let result = posted(&page);
    assert_eq!(result["origin"], ORIGIN);
    let message = &result["message"];
    assert_eq!(message["type"], "plugboard:connect");
    assert_eq!(message["status"], "succeeded");
    assert_eq!(message["attemptId"], attempt.as_str());
    let alice = message["connectedAccountId"].as_str().unwrap().to_string();
    assert!(
        !page.body.contains("access_token") && !page.body.contains("code="),
        "no code or token in the page"
    );
    let status = s.status(&token, &attempt).await;
    assert_eq!(status["status"], "succeeded");
    assert_eq!(status["connectedAccountId"], alice.as_str());

    let accounts = s.accounts(&token).await;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["id"], alice.as_str());
    assert_eq!(accounts[0]["app"], "acme");
    assert_eq!(accounts[0]["label"], "alice@example.test");
    assert_eq!(accounts[0]["status"], "active");
    let scopes: Vec<&str> = accounts[0]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&"openid") && scopes.contains(&"email"),
        "{scopes:?}"
    );

    // The credentials are stored sealed, and work at the provider.
    let secrets = s.tokens(&alice).await;
    assert!(secrets.contains_key("refresh_token"));
    assert!(token_works(&s, &secrets["access_token"]).await);

    // A second account.
    let (page, _) = s
        .connect(&token, "bob", Consent::Allow, json!({ "app": "acme" }))
        .await;
    assert_eq!(posted(&page)["message"]["status"], "succeeded");
    assert_eq!(s.accounts(&token).await.len(), 2);

    // The same account again: updated, not added.
    let (page, _) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    assert_eq!(
        posted(&page)["message"]["connectedAccountId"],
        alice.as_str()
    );
    let accounts = s.accounts(&token).await;
    assert_eq!(accounts.len(), 2);
    let new_secrets = s.tokens(&alice).await;
    assert_ne!(
        new_secrets["access_token"], secrets["access_token"],
        "the new tokens replaced the old"
    );

    let events = s.app.call("GET", "/v1/events", Some(&s.key), None).await;
    let kinds: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "connection.created",
            "connection.created",
            "connection.updated"
        ]
    );
    // The backend sees the same connections.
    let list = s
        .app
        .call(
            "GET",
            "/v1/connections?end_user_id=user-1",
            Some(&s.key),
            None,
        )
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
}

async fn reconnecting_a_named_connection_updates_it_or_refuses_another_account(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let (page, _) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    let alice = connected_id(&page);
    let before = s.tokens(&alice).await;

    let body = json!({ "app": "acme", "connectedAccountId": alice });
    let (page, _) = s
        .connect(&token, "alice", Consent::Allow, body.clone())
        .await;
    assert_eq!(
        posted(&page)["message"]["connectedAccountId"],
        alice.as_str()
    );
    let after = s.tokens(&alice).await;
    assert_ne!(before["access_token"], after["access_token"]);

    let (page, attempt) = s.connect(&token, "mallory", Consent::Allow, body).await;
    assert_eq!(page.status, 400);
    assert_eq!(posted(&page)["message"]["error"], "account_mismatch");
    assert_eq!(
        s.status(&token, &attempt).await["error"]["code"],
        "account_mismatch"
    );
    let accounts = s.accounts(&token).await;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["label"], "alice@example.test");
    let unchanged = s.tokens(&alice).await;
    assert_eq!(
        unchanged["access_token"], after["access_token"],
        "nothing of mallory's was stored"
    );

    // Another end user's connection cannot be named.
    let other = s.session("user-2", json!({})).await;
    let reply = s
        .start(
            &other,
            json!({ "app": "acme", "connectedAccountId": alice }),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

async fn a_single_account_app_refuses_a_second_account(engine: Engine) {
    let s = setup(engine, json!({ "multiple_accounts": false })).await;
    let token = s.session("user-1", json!({})).await;
    let (page, _) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    let alice = posted(&page)["message"]["connectedAccountId"].clone();
    let (page, attempt) = s
        .connect(&token, "bob", Consent::Allow, json!({ "app": "acme" }))
        .await;
    assert_eq!(page.status, 400);
    assert_eq!(posted(&page)["message"]["error"], "account_limit");
    assert_eq!(
        s.status(&token, &attempt).await["error"]["code"],
        "account_limit"
    );
    // The same account is still welcome.
    let (page, _) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    assert_eq!(posted(&page)["message"]["connectedAccountId"], alice);
    assert_eq!(s.accounts(&token).await.len(), 1);
}

async fn refused_consent_is_access_denied_and_escaped(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let (page, attempt) = s
        .connect(&token, "alice", Consent::Deny, json!({ "app": "acme" }))
        .await;
    assert_eq!(page.status, 400);
    assert_eq!(posted(&page)["message"]["error"], "access_denied");
    let status = s.status(&token, &attempt).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"]["code"], "access_denied");
    // SECURITY 7: the provider's description is shown as text, never as markup.
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<b>No thanks"), "{}", page.body);
    assert!(page.body.contains("&lt;b&gt;No thanks"), "{}", page.body);
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'nonce-"));
    assert!(s.accounts(&token).await.is_empty());
}

async fn an_expired_session_is_refused_at_start_and_at_the_callback(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({ "ttl_seconds": 60 })).await;
    let Journey {
        mut browser,
        attempt,
        callback,
        ..
    } = s.until_callback(&token, "alice").await;

    s.app.clock.advance(61);
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("expired"), "{}", page.body);
    assert_eq!(posted(&page)["message"]["error"], "session_expired");
    let reply = s.start(&token, json!({ "app": "acme" })).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "session_expired")
    );
    let reply = s
        .sdk(
            "GET",
            &format!("/v1/sdk/connect/{attempt}"),
            &token,
            None,
            ORIGIN,
        )
        .await;
    assert_eq!(reply.code(), "session_expired");
    let list = s
        .app
        .call("GET", "/v1/connections", Some(&s.key), None)
        .await;
    assert_eq!(list.body["data"], json!([]));
}

async fn unknown_apps_and_foreign_integrations_are_refused(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let reply = s.start(&token, json!({ "app": "nope" })).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // A session for other integrations only may not connect this one (SECURITY 10).
    s.app.integration(&s.key, "other", json!({})).await;
    let limited = s
        .session("user-1", json!({ "integrations": ["other"] }))
        .await;
    let reply = s.start(&limited, json!({ "app": "acme" })).await;
    // SECURITY 38: exactly like an app that does not exist.
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let apps = s.sdk("GET", "/v1/sdk/apps", &limited, None, ORIGIN).await;
    assert_eq!(apps.body.as_array().unwrap().len(), 1);
    assert_eq!(apps.body[0]["key"], "other");
    // Listing the accounts of an app: one that does not exist and one outside
    // the session answer alike; an app with no accounts yet is an empty list.
    for (token, app) in [(&token, "nope"), (&limited, "acme")] {
        let reply = s
            .sdk(
                "GET",
                &format!("/v1/sdk/connections?app={app}"),
                token,
                None,
                ORIGIN,
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{app}: {}",
            reply.text
        );
    }
    let reply = s
        .sdk(
            "GET",
            "/v1/sdk/connections?app=other",
            &limited,
            None,
            ORIGIN,
        )
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!([]))
    );

    // A state presented at another integration's callback (or an unknown one) is refused and spends nothing.
    let started = s.start(&token, json!({ "app": "acme" })).await;
    let mut browser = Browser::new();
    let callback = browser
        .popup_to_callback(&started.body, "alice", Consent::Allow, &s.callback_url)
        .await;
    let query = callback.split_once('?').unwrap().1.to_string();
    for elsewhere in [format!(
        "{}/oauth/callback/int_unknown?{query}",
        s.app.base_url
    )] {
        let page = browser.get(&elsewhere).await;
        assert_eq!(page.status, 400, "{}", page.body);
    }
    let page = browser.get(&callback).await;
    assert_eq!(
        page.status, 200,
        "the real callback still completes: {}",
        page.body
    );
}

async fn states_are_single_use_and_need_the_binding_cookie(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let Journey {
        mut browser,
        popup,
        attempt,
        callback,
    } = s.until_callback(&token, "alice").await;
    let cookie_name = format!("pb_connect_{attempt}");
    let binding = browser
        .cookie(&s.app.base_url, &cookie_name)
        .expect("binding cookie");

    // SECURITY 1: no state, an unknown state.
    for bad in [
        s.callback_url.clone(),
        format!("{}?code=abc", s.callback_url),
        format!("{}?code=abc&state=unknown", s.callback_url),
    ] {
        let page = browser.get(&bad).await;
        assert_eq!(page.status, 400, "{bad}");
    }
    // SECURITY 2: the valid state from another browser (no binding cookie) spends nothing.
    let mut other = Browser::new();
    let page = other.get(&callback).await;
    assert_eq!(page.status, 400);
    assert!(
        page.body.contains("did not start in this browser"),
        "{}",
        page.body
    );
    other.set_cookie(&s.app.base_url, &cookie_name, "forged-value");
    assert_eq!(other.get(&callback).await.status, 400);
    assert_eq!(s.status(&token, &attempt).await["status"], "pending");
    // The popup URL cannot be claimed by a second browser either.
    let page = other.get(&popup).await;
    assert_eq!(page.status, 400);

    // The real user's flow completes.
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let connection = connected_id(&page);
    assert!(
        browser.cookie(&s.app.base_url, &cookie_name).is_none(),
        "the binding cookie is cleared"
    );

    // SECURITY 1 and 10: the same state again, even with the cookie, is refused; no second token request.
    browser.set_cookie(&s.app.base_url, &cookie_name, &binding);
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("already used"), "{}", page.body);
    // Had the code been sent twice, the provider would have revoked the tokens issued from it.
    let secrets = s.tokens(&connection).await;
    assert!(token_works(&s, &secrets["access_token"]).await);
    assert_eq!(s.accounts(&token).await.len(), 1);
}

async fn a_wrong_issuer_stops_before_the_code_exchange(engine: Engine) {
    let s = setup(engine, json!({})).await;
    // The integration now expects another issuer; the provider's callback names its own.
    let reply = s
        .app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(&s.key),
            Some(json!({ "issuer": "http://127.0.0.1:1", "client_secret": s.client_secret })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let token = s.session("user-1", json!({})).await;
    let (page, attempt) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    assert_eq!(page.status, 400);
    let status = s.status(&token, &attempt).await;
    assert_eq!(status["error"]["code"], "provider_error");
    assert_eq!(status["error"]["providerCode"], "invalid_issuer");
    assert!(s.accounts(&token).await.is_empty());
}

async fn an_injected_code_fails_pkce(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("victim", json!({})).await;
    // The victim's attempt, opened in the victim's browser.
    let Journey {
        browser: mut victim,
        attempt: victim_attempt,
        callback: victim_callback,
        ..
    } = s.until_callback(&token, "victim").await;
    // The attacker's own attempt yields a code for the attacker's account.
    let attacker_token = s.session("attacker", json!({})).await;
    let attacker_callback = s.until_callback(&attacker_token, "attacker").await.callback;
    let code = url::Url::parse(&attacker_callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let mut injected = url::Url::parse(&victim_callback).unwrap();
    let pairs: Vec<(String, String)> = injected
        .query_pairs()
        .map(|(k, v)| {
            if k == "code" {
                (k.to_string(), code.clone())
            } else {
                (k.to_string(), v.to_string())
            }
        })
        .collect();
    injected.query_pairs_mut().clear().extend_pairs(pairs);

    let page = victim.get(injected.as_str()).await;
    assert_eq!(page.status, 400, "{}", page.body);
    let status = s.status(&token, &victim_attempt).await;
    assert_eq!(status["error"]["code"], "provider_error");
    assert_eq!(status["error"]["providerCode"], "invalid_grant");
    assert!(
        s.accounts(&token).await.is_empty(),
        "no connection from the injected code"
    );
}

async fn origins_the_session_does_not_allow_get_nothing(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let evil = "http://evil.localhost:3000";
    for (method, path, body) in [
        ("POST", "/v1/sdk/connect", Some(json!({ "app": "acme" }))),
        ("GET", "/v1/sdk/apps", None),
        ("GET", "/v1/sdk/connections", None),
    ] {
        let reply = s.sdk(method, path, &token, body, evil).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::FORBIDDEN, "origin_not_allowed"),
            "{path}"
        );
        // The refused page can read why.
        assert_eq!(
            reply.headers.get("access-control-allow-origin").unwrap(),
            evil
        );
    }
    // Preflights are answered for any origin.
    let preflight = s
        .app
        .send(
            Request::builder()
                .method("OPTIONS")
                .uri("/v1/sdk/connect")
                .header("origin", evil)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight
            .headers
            .get("access-control-allow-origin")
            .unwrap(),
        evil
    );
    assert!(preflight
        .headers
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("authorization"));
    // Backend endpoints send no CORS headers.
    let backend = s
        .app
        .send(
            Request::get("/v1/connections")
                .header("authorization", format!("Bearer {}", s.key))
                .header("origin", ORIGIN)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(backend.headers.get("access-control-allow-origin").is_none());
    // Nothing was started from the refused origin.
    let list = s
        .app
        .call("GET", "/v1/connections", Some(&s.key), None)
        .await;
    assert_eq!(list.body["data"], json!([]));
    // An allowed origin gets its data, with the header.
    let ok = s.sdk("GET", "/v1/sdk/apps", &token, None, ORIGIN).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.headers.get("access-control-allow-origin").unwrap(),
        ORIGIN
    );
    assert_eq!(ok.body[0]["key"], "acme");
    assert_eq!(ok.body[0]["authType"], "oauth2_authorization_code");
    assert_eq!(ok.body[0]["multipleAccounts"], true);
}

async fn sdk_endpoints_list_and_disconnect_only_the_end_users_own(engine: Engine) {
    let s = setup_with(engine, json!({}), "client_secret_post").await;
    let mine = s.session("user-1", json!({})).await;
    let theirs = s.session("user-2", json!({})).await;
    let (page, _) = s
        .connect(&mine, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    assert_eq!(
        page.status, 200,
        "client_secret_post works too: {}",
        page.body
    );
    let alice = connected_id(&page);
    let (page, attempt) = s
        .connect(&theirs, "bob", Consent::Allow, json!({ "app": "acme" }))
        .await;
    let bob = connected_id(&page);

    assert_eq!(s.accounts(&mine).await.len(), 1);
    // SECURITY 14: another end user's connection and attempt answer as unknown ones.
    for path in [
        format!("/v1/sdk/connections/{bob}"),
        "/v1/sdk/connections/conn_nope".to_string(),
    ] {
        let reply = s.sdk("DELETE", &path, &mine, None, ORIGIN).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
    let reply = s
        .sdk(
            "GET",
            &format!("/v1/sdk/connect/{attempt}"),
            &mine,
            None,
            ORIGIN,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = s
        .sdk(
            "DELETE",
            &format!("/v1/sdk/connections/{alice}"),
            &mine,
            None,
            ORIGIN,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(s.accounts(&mine).await.is_empty());
    assert_eq!(s.accounts(&theirs).await.len(), 1);
    let reply = s
        .sdk("GET", "/v1/sdk/connections?app=acme", &theirs, None, ORIGIN)
        .await;
    assert_eq!(reply.body.as_array().unwrap().len(), 1);
    // A secret key is not a session token.
    let reply = s.sdk("GET", "/v1/sdk/apps", &s.key, None, ORIGIN).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
}

async fn popup_ignores_redirect_targets_from_the_request(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let a = s.start(&token, json!({ "app": "acme" })).await;
    let b = s.start(&token, json!({ "app": "acme" })).await;
    let mut browser = Browser::new();
    // SECURITY 13: a redirect target in the request is never followed.
    let popup = format!(
        "{}?return_to=https://evil.example/&redirect_uri=https://evil.example/",
        a.body["popupUrl"].as_str().unwrap()
    );
    let mut opened = a.body.clone();
    opened["popupUrl"] = json!(popup);
    let visit = browser.open_popup(&opened).await;
    assert!(!visit.body.contains("evil.example"), "{}", visit.body);
    let location = url::Url::parse(visit.location.as_deref().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{}/auth?", s.provider.issuer)),
        "{location}"
    );
    let query: std::collections::BTreeMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(query["redirect_uri"], s.callback_url);
    // SECURITY 6: S256 with a fresh challenge every time; an OpenID nonce since openid is asked.
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["nonce"].len() >= 32);
    assert_eq!(
        query["prompt"], "consent",
        "the integration's extra parameters are sent"
    );
    let cookie = visit.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Path=/oauth/callback/")
    );
    let visit_b = Browser::new().open_popup(&b.body).await;
    let query_b: std::collections::BTreeMap<String, String> =
        url::Url::parse(visit_b.location.as_deref().unwrap())
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
    assert_ne!(query["code_challenge"], query_b["code_challenge"]);
    assert_ne!(query["state"], query_b["state"]);
    assert_ne!(query["nonce"], query_b["nonce"]);
}

/// Whether the provider still honours an access token.
async fn token_works(s: &Setup, access_token: &str) -> bool {
    let me = reqwest::Client::new()
        .get(format!("{}/me", s.provider.issuer))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    me.status() == 200
}

async fn disconnecting_revokes_at_the_provider_then_deletes(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for account in ["alice", "bob", "carol"] {
        let (page, _) = s
            .connect(&token, account, Consent::Allow, json!({ "app": "acme" }))
            .await;
        let id = connected_id(&page);
        let secrets = s.tokens(&id).await;
        assert!(token_works(&s, &secrets["access_token"]).await);
        tokens.push(secrets["access_token"].clone());
        ids.push(id);
    }

    // By the end user, through the SDK.
    let reply = s
        .sdk(
            "DELETE",
            &format!("/v1/sdk/connections/{}", ids[0]),
            &token,
            None,
            ORIGIN,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(
        !token_works(&s, &tokens[0]).await,
        "revoked at the provider"
    );
    assert!(
        token_works(&s, &tokens[1]).await,
        "other accounts untouched"
    );
    // By the backend.
    assert_eq!(s.delete_connection(&ids[1]).await, StatusCode::NO_CONTENT);
    assert!(!token_works(&s, &tokens[1]).await);
    // With the integration.
    let reply = s
        .app
        .call(
            "DELETE",
            "/v1/integrations/acme?cascade=true",
            Some(&s.key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(!token_works(&s, &tokens[2]).await);

    let events = s
        .app
        .call("GET", "/v1/events?limit=200", Some(&s.key), None)
        .await;
    let deleted: Vec<&Value> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "connection.deleted")
        .collect();
    let reasons: Vec<(&str, &str)> = deleted
        .iter()
        .map(|e| {
            (
                e["data"]["reason"].as_str().unwrap(),
                e["data"]["revocation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("disconnected_by_end_user", "revoked"),
            ("deleted", "revoked"),
            ("integration_deleted", "revoked")
        ]
    );
}

async fn a_failed_revocation_still_disconnects_and_is_recorded(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let peer = common::fake::FakePeer::start(common::fake::Behaviour::Respond(
        common::fake::json_response(503, r#"{"error":"temporarily_unavailable"}"#),
    ))
    .await;
    let reply = s
        .app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(&s.key),
            Some(json!({
                "revocation_url": format!("{}/revoke", peer.url),
                "client_secret": s.client_secret,
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let token = s.session("user-1", json!({})).await;
    let (page, _) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    let id = connected_id(&page);

    let reply = s
        .sdk(
            "DELETE",
            &format!("/v1/sdk/connections/{id}"),
            &token,
            None,
            ORIGIN,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(s.accounts(&token).await.is_empty(), "deleted all the same");
    let request = &peer.requests()[0];
    assert!(
        request.body.contains("token_type_hint=refresh_token"),
        "{}",
        request.body
    );
    assert!(request
        .head
        .to_ascii_lowercase()
        .contains("authorization: basic "));
    let last = deleted_event(&s, &id).await;
    assert_eq!(last["data"]["revocation"], "failed");
    assert!(
        last["data"]["revocation_error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{last}"
    );
}

/// The event recorded when a connection was deleted.
async fn deleted_event(s: &Setup, id: &str) -> Value {
    let last = s.app.last_event(&s.key, id).await;
    assert_eq!(last["type"], "connection.deleted", "{last}");
    last
}

/// SECURITY 34: re-pointing a URL that receives a credential needs the client
/// secret in the same request, and what was made before never goes there.
async fn a_re_pointed_url_needs_the_client_secret_and_old_connections_keep_theirs(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let canary = common::fake::FakePeer::start(common::fake::Behaviour::Respond(
        common::fake::json_response(200, r#"{"access_token":"x","token_type":"Bearer"}"#),
    ))
    .await;
    let token = s.session("user-1", json!({})).await;
    let mut made_before = Vec::new();
    for account in ["alice", "bob"] {
        let (page, _) = s
            .connect(&token, account, Consent::Allow, json!({ "app": "acme" }))
            .await;
        made_before.push(connected_id(&page));
    }
    let re_point = json!({
        "token_url": format!("{}/token", canary.url),
        "revocation_url": format!("{}/revoke", canary.url),
        "userinfo_url": format!("{}/me", canary.url),
        "jwks_url": format!("{}/jwks", canary.url),
        "api_base_url": format!("{}/api", canary.url),
    });
    // With the secret key alone: refused, field by field, and nothing changes.
    let reply = s
        .app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(&s.key),
            Some(re_point.clone()),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    for field in [
        "token_url",
        "revocation_url",
        "userinfo_url",
        "jwks_url",
        "api_base_url",
    ] {
        assert!(
            reply.body["error"]["fields"][field]
                .as_str()
                .is_some_and(|m| m.contains("client_secret")),
            "{field}: {}",
            reply.text
        );
    }
    let read = s
        .app
        .call("GET", "/v1/integrations/acme", Some(&s.key), None)
        .await;
    assert!(read.body["token_url"]
        .as_str()
        .unwrap()
        .starts_with(&s.provider.issuer));

    // An attempt signed in before the change, finished after it.
    let journey = s.until_callback(&token, "carol").await;
    let mut with_secret = re_point.clone();
    with_secret["client_secret"] = json!(s.client_secret);
    let reply = s
        .app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(&s.key),
            Some(with_secret),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mut browser = journey.browser;
    let page = browser.get(&journey.callback).await;
    assert_eq!(
        page.status, 200,
        "exchanged at the client it was started with: {}",
        page.body
    );
    let carol = connected_id(&page);

    // Connections made before are revoked at their own provider.
    let secrets = s.tokens(&made_before[0]).await;
    assert_eq!(
        s.delete_connection(&made_before[0]).await,
        StatusCode::NO_CONTENT
    );
    assert!(
        !token_works(&s, &secrets["access_token"]).await,
        "revoked at the real provider"
    );
    assert_eq!(
        deleted_event(&s, &made_before[0]).await["data"]["revocation"],
        "revoked"
    );

    // A new secret for the same client id reaches them (rotation): this one
    // is wrong, so the provider refuses the revocation — at its own URL.
    let reply = s
        .app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(&s.key),
            Some(json!({ "client_secret": "rotated-but-wrong" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for id in [&made_before[1], &carol] {
        let reply = s
            .app
            .call(
                "DELETE",
                &format!("/v1/connections/{id}"),
                Some(&s.key),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        let event = deleted_event(&s, id).await;
        assert_eq!(event["data"]["revocation"], "failed", "{event}");
    }
    assert!(
        canary.requests().is_empty(),
        "nothing reached the re-pointed URLs: {:?}",
        canary.requests()
    );
}

/// SECURITY 33: the popup URL alone cannot complete an attempt. The page asks
/// its opener for a proof; without it (another browser, a link, a forged one)
/// nothing is bound or spent, and the SDK's own popup still goes through.
async fn a_popup_without_its_openers_proof_binds_nothing(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let started = s.start(&token, json!({ "app": "acme" })).await;
    let popup = started.body["popupUrl"].as_str().unwrap().to_string();
    let proof = started.body["popupProof"].as_str().unwrap().to_string();
    assert!(
        proof.len() >= 26 && !popup.contains(&proof),
        "the proof is never in a URL"
    );

    let mut victim = Browser::new();
    let page = victim.get(&popup).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers.get("set-cookie").is_none(),
        "opening binds nothing"
    );
    assert!(!page.body.contains(&proof));
    assert!(
        !page.body.contains("/auth?"),
        "the provider's URL is not on the page"
    );
    for bad in [
        json!({ "proof": "guessed-proof-value" }),
        json!({ "proof": "" }),
    ] {
        let reply = victim.post_json(&popup, &bad).await;
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert!(reply.headers.get("set-cookie").is_none());
        assert!(
            reply.body.contains("not opened by the app"),
            "{}",
            reply.body
        );
    }
    let reply = victim.post_json(&popup, &json!({})).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(
        s.status(&token, started.body["attemptId"].as_str().unwrap())
            .await["status"],
        "pending"
    );

    // The page that started it finishes it.
    let mut browser = Browser::new();
    let callback = browser
        .popup_to_callback(&started.body, "alice", Consent::Allow, &s.callback_url)
        .await;
    // The victim's browser, even with the callback URL, has no binding.
    assert_eq!(victim.get(&callback).await.status, 400);
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // And the proof cannot bind it a second time.
    let reply = Browser::new()
        .post_json(&popup, &json!({ "proof": proof }))
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(s.accounts(&token).await.len(), 1);
}

/// SECURITY 3: an attempt's own 10-minute life, with a session that lives
/// longer, ends it at the popup and at the callback.
async fn an_attempt_expires_after_ten_minutes_at_the_popup_and_the_callback(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({ "ttl_seconds": 3600 })).await;
    let unopened = s.start(&token, json!({ "app": "acme" })).await;
    let journey = s.until_callback(&token, "alice").await;
    s.app.clock.advance(601);

    let mut browser = Browser::new();
    let page = browser
        .get(unopened.body["popupUrl"].as_str().unwrap())
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("expired"), "{}", page.body);
    assert_eq!(posted(&page)["message"]["error"], "session_expired");
    let reply = browser
        .post_json(
            unopened.body["popupUrl"].as_str().unwrap(),
            &json!({ "proof": unopened.body["popupProof"] }),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.headers.get("set-cookie").is_none());

    let mut browser = journey.browser;
    let page = browser.get(&journey.callback).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("sign-in link expired"), "{}", page.body);
    let status = s.status(&token, &journey.attempt).await;
    assert_eq!(status["error"]["code"], "session_expired");
    assert!(s.accounts(&token).await.is_empty());
}

/// SECURITY 1, 2, 4 and 11, with a counting listener as the token endpoint:
/// a callback without a usable state, without the binding cookie, at another
/// integration's callback or naming another issuer sends nothing there. The
/// popup's message carries exactly ids, a status, an error code and the nonce.
async fn a_refused_callback_never_reaches_the_token_endpoint(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let (page, attempt) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    let result = posted(&page);
    assert_eq!(result["origin"], ORIGIN);
    let keys: std::collections::BTreeSet<&str> = result["message"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "attemptId",
            "connectedAccountId",
            "error",
            "nonce",
            "status",
            "type"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(result["message"]["attemptId"], attempt);
    assert_eq!(result["message"]["status"], "succeeded");
    assert!(result["message"]["connectedAccountId"]
        .as_str()
        .unwrap()
        .starts_with("conn_"));

    let counter = common::fake::FakePeer::start(common::fake::Behaviour::Respond(
        common::fake::json_response(200, r#"{"access_token":"x","token_type":"Bearer"}"#),
    ))
    .await;
    let reply = s
        .app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(&s.key),
            Some(json!({ "token_url": format!("{}/token", counter.url), "client_secret": s.client_secret })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let other = s.app.integration(&s.key, "other", json!({})).await;

    let journey = s.until_callback(&token, "bob").await;
    let query = journey.callback.split_once('?').unwrap().1.to_string();
    let mut browser = journey.browser;
    let without_state: String = query
        .split('&')
        .filter(|p| !p.starts_with("state="))
        .collect::<Vec<_>>()
        .join("&");
    let elsewhere = format!(
        "{}/oauth/callback/{}?{query}",
        s.app.base_url,
        other["id"].as_str().unwrap()
    );
    for bad in [
        format!("{}?{without_state}", s.callback_url),
        format!("{}?{without_state}&state=unknown", s.callback_url),
        elsewhere,
    ] {
        assert_eq!(browser.get(&bad).await.status, 400, "{bad}");
    }
    assert_eq!(
        Browser::new().get(&journey.callback).await.status,
        400,
        "no binding cookie"
    );
    assert_eq!(
        s.status(&token, &journey.attempt).await["status"],
        "pending"
    );
    // Another issuer named in the response: the attempt ends, nothing is exchanged.
    let iss =
        url::form_urlencoded::byte_serialize(s.provider.issuer.as_bytes()).collect::<String>();
    assert!(query.contains(&format!("iss={iss}")), "{query}");
    let forged = journey
        .callback
        .replace(&format!("iss={iss}"), "iss=https%3A%2F%2Fevil.example");
    let page = browser.get(&forged).await;
    assert_eq!(page.status, 400);
    assert_eq!(posted(&page)["message"]["error"], "provider_error");
    // Used once: the real response is refused now too.
    assert_eq!(browser.get(&journey.callback).await.status, 400);
    assert!(counter.requests().is_empty(), "{:?}", counter.requests());

    // The listener does count: a good callback reaches it.
    let journey = s.until_callback(&token, "bob").await;
    let mut browser = journey.browser;
    browser.get(&journey.callback).await;
    assert_eq!(counter.requests().len(), 1);
}

/// `connectApp`'s `signal`: the page gives up while the user is at the
/// provider; the provider's redirect that comes later creates nothing.
async fn a_cancelled_attempt_creates_nothing_and_a_finished_one_keeps_its_outcome(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let cancel = |attempt: String, token: String| {
        let s = &s;
        async move {
            s.sdk(
                "POST",
                &format!("/v1/sdk/connect/{attempt}/cancel"),
                &token,
                None,
                ORIGIN,
            )
            .await
        }
    };
    let started = s.start(&token, json!({ "app": "acme" })).await;
    let attempt = started.body["attemptId"].as_str().unwrap().to_string();
    // The server tells whether the popup went on to the provider.
    assert_eq!(s.status(&token, &attempt).await["reachedProvider"], false);
    let mut browser = Browser::new();
    let authorize = browser.open_popup(&started.body).await.location.unwrap();
    let status = s.status(&token, &attempt).await;
    assert_eq!(
        (&status["status"], &status["reachedProvider"]),
        (&json!("pending"), &json!(true))
    );
    let callback = sign_in_until_callback(
        &mut browser,
        &authorize,
        "alice",
        Consent::Allow,
        &s.callback_url,
    )
    .await;

    let reply = cancel(attempt.clone(), token.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "cancelled");
    let page = browser.get(&callback).await;
    assert_ne!(page.status, 200);
    assert!(page.body.contains("cancelled"), "{}", page.body);
    assert!(s.accounts(&token).await.is_empty(), "nothing was connected");
    assert_eq!(s.status(&token, &attempt).await["status"], "cancelled");

    // An attempt that already succeeded keeps its account.
    let (page, attempt) = s
        .connect(&token, "alice", Consent::Allow, json!({ "app": "acme" }))
        .await;
    let reply = cancel(attempt.clone(), token.clone()).await;
    assert_eq!(reply.body["status"], "succeeded");
    assert_eq!(reply.body["connectedAccountId"], json!(connected_id(&page)));
    assert_eq!(s.accounts(&token).await.len(), 1);
    // Another end user cannot cancel it, or learn that it exists.
    let other = s.session("user-2", json!({})).await;
    let reply = cancel(attempt, other).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

/// The SDK's endpoints are called by pages: their failures say so.
async fn sdk_failures_speak_of_the_session_token_and_the_page(engine: Engine) {
    let s = setup(engine, json!({})).await;
    let token = s.session("user-1", json!({})).await;
    let reply = s
        .sdk("GET", "/v1/sdk/apps", "pbs_not_a_token", None, ORIGIN)
        .await;
    assert_eq!(reply.code(), "unauthorized");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("session token"), "{message}");
    assert!(!message.contains("header"), "{message}");

    let request = Request::builder()
        .uri("/v1/sdk/apps")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let reply = s.app.send(request).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "origin_not_allowed")
    );
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("without a page origin"), "{message}");

    let reply = s
        .sdk(
            "GET",
            "/v1/sdk/apps",
            &token,
            None,
            "https://elsewhere.example",
        )
        .await;
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("https://elsewhere.example") && message.contains("allowed_origins"),
        "{message}"
    );
}
