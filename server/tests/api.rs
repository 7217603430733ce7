//! The HTTP API as a customer's backend and an operator use it, on SQLite and PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Engine, TestApp, OPERATOR_TOKEN};
use serde_json::{json, Value};

on_both_engines!(
    health_reports_ok,
    operator_creates_projects_and_nobody_else_can,
    admin_api_is_off_without_an_operator_token,
    secret_keys_rotate_and_the_last_is_kept,
    integration_round_trip_never_returns_secrets,
    integration_validation_names_each_field_and_saves_nothing,
    integration_patch_merges_and_revalidates,
    deleting_an_integration_with_connections_needs_cascade,
    connect_sessions_follow_the_contract,
    connections_list_page_read_and_delete,
    event_log_pages_forward,
    projects_cannot_reach_each_others_data,
    wrong_secret_keys_all_get_the_same_401,
    bad_input_gets_the_error_shape_never_a_500,
    expired_sessions_and_attempt_secrets_are_purged,
    internal_and_reserved_targets_are_refused_at_save,
    identifiers_refuse_invisible_characters_and_labels_lose_them,
    secrets_are_not_cached_nothing_is_sniffed_and_oversize_requests_get_the_shape,
    session_tokens_wrong_in_any_way_get_one_401_over_http,
    sdk_keys_and_callback_routes_take_bad_input_without_a_500,
);

async fn health_reports_ok(engine: Engine) {
    let app = TestApp::new(engine).await;
    let reply = app.call("GET", "/healthz", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "ok");
}

async fn operator_creates_projects_and_nobody_else_can(engine: Engine) {
    let app = TestApp::new(engine).await;
    let body = json!({ "name": "Acme" });
    let reply = app
        .call("POST", "/v1/admin/projects", None, Some(body.clone()))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let reply = app
        .call(
            "POST",
            "/v1/admin/projects",
            Some("not-the-operator-token"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (_, secret_key) = app.project("Acme").await;
    // A project's secret key is not the operator token.
    let reply = app
        .call("POST", "/v1/admin/projects", Some(&secret_key), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = app
        .call(
            "POST",
            "/v1/admin/projects",
            Some(OPERATOR_TOKEN),
            Some(json!({ "name": "  " })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body["error"]["fields"]["name"].is_string(),
        "{}",
        reply.text
    );
    // The key works at once.
    let reply = app
        .call("GET", "/v1/integrations", Some(&secret_key), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({ "data": [], "next_cursor": null }));
}

async fn admin_api_is_off_without_an_operator_token(engine: Engine) {
    let app = TestApp::build(engine, "127.0.0.1", None).await;
    let reply = app
        .call(
            "POST",
            "/v1/admin/projects",
            Some(""),
            Some(json!({ "name": "Acme" })),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("PLUGBOARD_OPERATOR_TOKEN"));
}

async fn secret_keys_rotate_and_the_last_is_kept(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, first) = app.project("Acme").await;
    let created = app.call("POST", "/v1/keys", Some(&first), None).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let second = created.body["secret_key"].as_str().unwrap().to_string();
    let second_id = created.body["id"].as_str().unwrap().to_string();
    assert!(second.starts_with(created.body["prefix"].as_str().unwrap()));

    let listed = app.call("GET", "/v1/keys", Some(&second), None).await;
    let keys = listed.body["data"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert!(
        !listed.text.contains(&first) && !listed.text.contains(&second),
        "a list never shows whole keys"
    );
    let first_id = keys.iter().find(|k| k["id"] != second_id).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Revoke the first key with the second: the first stops working at once.
    let reply = app
        .call(
            "DELETE",
            &format!("/v1/keys/{first_id}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call("GET", "/v1/keys", Some(&first), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The last key is never revoked.
    let reply = app
        .call(
            "DELETE",
            &format!("/v1/keys/{second_id}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    assert_eq!(
        app.call("GET", "/v1/keys", Some(&second), None)
            .await
            .status,
        StatusCode::OK
    );
    let reply = app
        .call("DELETE", "/v1/keys/key_doesnotexist", Some(&second), None)
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

async fn integration_round_trip_never_returns_secrets(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let mut body = common::oauth_integration("teamleader");
    body["id"] = json!("int_chosen_by_client");
    body["callback_url"] = json!("https://evil.example/callback");
    let reply = app
        .call("POST", "/v1/integrations", Some(&key), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let created = reply.body.clone();
    let id = created["id"].as_str().unwrap();
    assert!(
        id.starts_with("int_") && id != "int_chosen_by_client",
        "the id is the server's"
    );
    assert_eq!(
        created["callback_url"],
        format!("{}/oauth/callback/{id}", app.base_url)
    );
    assert_eq!(created["key"], "teamleader");
    assert_eq!(created["scopes"], json!(["contacts", "companies"]));
    assert_eq!(created["multiple_accounts"], true);
    assert_eq!(created["token_auth_method"], "client_secret_basic");
    assert_eq!(created["refresh_buffer_seconds"], 300);
    assert!(created.get("client_secret").is_none());

    let read = app
        .call("GET", "/v1/integrations/teamleader", Some(&key), None)
        .await;
    assert_eq!(read.body, created);
    let list = app.call("GET", "/v1/integrations", Some(&key), None).await;
    assert_eq!(list.body["data"], json!([created]));
    for text in [&reply.text, &read.text, &list.text] {
        assert!(
            !text.contains("client-secret-canary"),
            "a secret came back: {text}"
        );
    }
    // The secret is stored, sealed, and opens to what was written.
    let secrets = app
        .store()
        .integration_secrets(&app.state.vault, id)
        .await
        .unwrap();
    assert_eq!(secrets["client_secret"], "client-secret-canary-7Hq");

    let again = app
        .call(
            "POST",
            "/v1/integrations",
            Some(&key),
            Some(common::oauth_integration("teamleader")),
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    let missing = app
        .call("GET", "/v1/integrations/nope", Some(&key), None)
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

async fn integration_validation_names_each_field_and_saves_nothing(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({}), &["key", "auth_type"]),
        (
            json!({ "key": "Bad Key!", "auth_type": "oauth2_authorization_code" }),
            &[
                "key",
                "client_id",
                "client_secret",
                "authorization_url",
                "token_url",
            ],
        ),
        (
            json!({ "key": "x", "auth_type": "smoke_signals" }),
            &["auth_type"],
        ),
        (
            json!({ "key": "x", "auth_type": "api_key" }),
            &["api_key_name"],
        ),
        (
            json!({
                "key": "x", "auth_type": "oauth2_authorization_code", "client_id": 7, "client_secret": "s",
                "authorization_url": "javascript:alert(1)", "token_url": "http://169.254.169.254/latest",
                "scopes": "read write", "token_auth_method": "private_key_jwt", "multiple_accounts": "yes",
                "refresh_buffer_seconds": -5, "authorization_params": { "state": "fixed" },
                "userinfo_url": "http://0x7f000002:9000/userinfo", "jwks_url": "https://user:pw@idp.example/jwks",
                "provider": "hubspot", "test_request": { "path": "me" }, "colour": "red"
            }),
            &[
                "client_id",
                "authorization_url",
                "token_url",
                "scopes",
                "token_auth_method",
                "multiple_accounts",
                "refresh_buffer_seconds",
                "authorization_params",
                "userinfo_url",
                "jwks_url",
                "provider",
                "test_request.path",
                "colour",
            ],
        ),
    ];
    for (body, expected) in cases {
        let reply = app
            .call("POST", "/v1/integrations", Some(&key), Some(body.clone()))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{body}"
        );
        let fields = reply.body["error"]["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("no fields: {}", reply.text));
        for field in expected {
            assert!(
                fields.contains_key(*field),
                "{field} missing from {}",
                reply.text
            );
        }
    }
    let list = app.call("GET", "/v1/integrations", Some(&key), None).await;
    assert_eq!(list.body["data"], json!([]), "nothing was saved");
}

async fn integration_patch_merges_and_revalidates(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let created = app
        .integration(&key, "teamleader", json!({ "description": "CRM" }))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    app.clock.advance(60);

    let reply = app
        .call(
            "PATCH",
            "/v1/integrations/teamleader",
            Some(&key),
            Some(json!({
                "label": "Teamleader Focus", "description": null, "scopes": ["contacts"],
                "token_auth_method": "client_secret_post", "client_secret": "rotated-secret-canary"
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["label"], "Teamleader Focus");
    assert!(reply.body.get("description").is_none());
    assert_eq!(reply.body["scopes"], json!(["contacts"]));
    assert_eq!(reply.body["token_auth_method"], "client_secret_post");
    assert_eq!(reply.body["id"], id.as_str());
    assert_ne!(reply.body["updated_at"], created["updated_at"]);
    assert!(!reply.text.contains("rotated-secret-canary"));
    let secrets = app
        .store()
        .integration_secrets(&app.state.vault, &id)
        .await
        .unwrap();
    assert_eq!(secrets["client_secret"], "rotated-secret-canary");

    // A PATCH that omits the secret keeps it.
    let reply = app
        .call(
            "PATCH",
            "/v1/integrations/teamleader",
            Some(&key),
            Some(json!({ "label": "TL" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let secrets = app
        .store()
        .integration_secrets(&app.state.vault, &id)
        .await
        .unwrap();
    assert_eq!(secrets["client_secret"], "rotated-secret-canary");

    // Invalid patches change nothing.
    let before = app
        .call("GET", "/v1/integrations/teamleader", Some(&key), None)
        .await
        .body;
    for patch in [
        json!({ "key": "renamed" }),
        json!({ "auth_type": "api_key" }),
        json!({ "token_url": "ftp://x" }),
        json!({ "client_id": null }),
        json!(["not", "an", "object"]),
    ] {
        let reply = app
            .call(
                "PATCH",
                "/v1/integrations/teamleader",
                Some(&key),
                Some(patch.clone()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{patch}: {}",
            reply.text
        );
    }
    let after = app
        .call("GET", "/v1/integrations/teamleader", Some(&key), None)
        .await
        .body;
    assert_eq!(before, after);
    let reply = app
        .call(
            "PATCH",
            "/v1/integrations/nope",
            Some(&key),
            Some(json!({ "label": "x" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

async fn deleting_an_integration_with_connections_needs_cascade(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (project, key) = app.project("Acme").await;
    let integration = app.integration(&key, "teamleader", json!({})).await;
    let empty = app.integration(&key, "empty", json!({})).await;
    let a = app
        .connection(&project, &integration, Some("u1"), "a@example.com")
        .await;
    let b = app
        .connection(&project, &integration, Some("u2"), "b@example.com")
        .await;

    let reply = app
        .call("DELETE", "/v1/integrations/teamleader", Some(&key), None)
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    assert_eq!(
        app.call("GET", &format!("/v1/connections/{a}"), Some(&key), None)
            .await
            .status,
        StatusCode::OK
    );

    let reply = app
        .call(
            "DELETE",
            "/v1/integrations/teamleader?cascade=maybe",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = app
        .call(
            "DELETE",
            "/v1/integrations/teamleader?cascade=true",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    for id in [&a, &b] {
        assert_eq!(
            app.call("GET", &format!("/v1/connections/{id}"), Some(&key), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        app.call("GET", "/v1/integrations/teamleader", Some(&key), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let events = app.call("GET", "/v1/events", Some(&key), None).await;
    let deleted: Vec<&Value> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "connection.deleted")
        .collect();
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[0]["data"]["reason"], "integration_deleted");

    let reply = app
        .call(
            "DELETE",
            &format!("/v1/integrations/{}", empty["key"].as_str().unwrap()),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = app
        .call("DELETE", "/v1/integrations/empty", Some(&key), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

async fn connect_sessions_follow_the_contract(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (project, key) = app.project("Acme").await;
    app.integration(&key, "teamleader", json!({})).await;
    let post = |body: Value| app.call("POST", "/v1/connect/sessions", Some(&key), Some(body));

    let reply = post(json!({ "end_user_id": "u1" })).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body["error"]["fields"]["allowed_origins"].is_string());
    for (body, field) in [
        (
            json!({ "end_user_id": "u1", "allowed_origins": [] }),
            "allowed_origins",
        ),
        (
            json!({ "end_user_id": "u1", "allowed_origins": ["*"] }),
            "allowed_origins",
        ),
        (
            json!({ "end_user_id": "u1", "allowed_origins": ["https://app.example.com/path"] }),
            "allowed_origins",
        ),
        (
            json!({ "allowed_origins": ["https://app.example.com"] }),
            "end_user_id",
        ),
        (
            json!({ "end_user_id": "u1", "allowed_origins": ["https://app.example.com"], "ttl_seconds": 0 }),
            "ttl_seconds",
        ),
        (
            json!({ "end_user_id": "u1", "allowed_origins": ["https://app.example.com"], "ttl_seconds": 86401 }),
            "ttl_seconds",
        ),
        (
            json!({ "end_user_id": "u1", "allowed_origins": ["https://app.example.com"], "integrations": ["nope"] }),
            "integrations",
        ),
    ] {
        let reply = post(body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            reply.body["error"]["fields"][field].is_string(),
            "{field}: {}",
            reply.text
        );
    }

    let reply =
        post(json!({ "end_user_id": "u1", "allowed_origins": ["https://App.example.com"] })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let token = reply.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        reply.body["expires_at"], "2030-01-01T00:15:00Z",
        "the default lifetime is 900 s"
    );
    let reply = post(json!({ "end_user_id": "u1", "allowed_origins": ["https://a.example"], "ttl_seconds": 86400, "integrations": ["teamleader"] })).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["expires_at"], "2030-01-02T00:00:00Z");

    // The token is the end user's, for their allowed origins, until it expires.
    use plugboard::store::SessionLookup;
    let now = app.state.now();
    match app.store().authenticate_session(&token, now).await.unwrap() {
        SessionLookup::Valid(s) => {
            assert_eq!(s.project_id, project);
            assert_eq!(s.end_user_id, "u1");
            assert_eq!(
                s.allowed_origins,
                vec!["https://app.example.com".to_string()]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        app.store()
            .authenticate_session(&token, now + 900)
            .await
            .unwrap(),
        SessionLookup::Expired
    ));
    let mut forged = token.clone();
    forged.replace_range(token.len() - 4.., "zzzz");
    assert!(matches!(
        app.store()
            .authenticate_session(&forged, now)
            .await
            .unwrap(),
        SessionLookup::Unknown
    ));
    // A session token is not a secret key.
    assert_eq!(
        app.call("GET", "/v1/connections", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn connections_list_page_read_and_delete(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (project, key) = app.project("Acme").await;
    let tl = app.integration(&key, "teamleader", json!({})).await;
    let other = app.integration(&key, "other", json!({})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.connection(
                &project,
                &tl,
                Some(if i % 2 == 0 { "u1" } else { "u2" }),
                &format!("acct{i}"),
            )
            .await,
        );
        app.clock.advance(1);
    }
    let project_level = app.connection(&project, &other, None, "company").await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/connections?integration=teamleader&limit=2&cursor={c}"),
            None => "/v1/connections?integration=teamleader&limit=2".to_string(),
        };
        let reply = app.call("GET", &path, Some(&key), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        pages += 1;
        for c in reply.body["data"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every connection once, oldest first");

    let reply = app
        .call("GET", "/v1/connections?end_user_id=u1", Some(&key), None)
        .await;
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 3);
    let reply = app
        .call(
            "GET",
            &format!("/v1/connections/{project_level}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        reply.body,
        json!({
            "id": project_level, "integration": "other", "end_user_id": null, "label": "company",
            "status": "active", "scopes": ["contacts"], "created_at": "2030-01-01T00:00:05Z"
        })
    );
    assert!(
        !reply.text.contains("canary"),
        "credentials never appear in a connection"
    );

    let reply = app
        .call(
            "DELETE",
            &format!("/v1/connections/{}", ids[0]),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = app
        .call(
            "DELETE",
            &format!("/v1/connections/{}", ids[0]),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .call("GET", "/v1/connections?limit=200", Some(&key), None)
        .await;
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 5);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=%21%21",
        "cursor=bm9jb2xvbg",
        "sort=asc",
    ] {
        let reply = app
            .call("GET", &format!("/v1/connections?{bad}"), Some(&key), None)
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{bad}"
        );
    }
}

async fn event_log_pages_forward(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (project, key) = app.project("Acme").await;
    let tl = app.integration(&key, "teamleader", json!({})).await;
    let a = app.connection(&project, &tl, Some("u1"), "a").await;
    let b = app.connection(&project, &tl, Some("u1"), "b").await;
    app.call("DELETE", &format!("/v1/connections/{a}"), Some(&key), None)
        .await;

    let reply = app
        .call("GET", "/v1/events?limit=2", Some(&key), None)
        .await;
    let first: Vec<(String, String)> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["connection_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        first,
        vec![
            ("connection.created".into(), a.clone()),
            ("connection.created".into(), b.clone())
        ]
    );
    let cursor = reply.body["next_cursor"].as_str().unwrap().to_string();
    let reply = app
        .call(
            "GET",
            &format!("/v1/events?cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    let rest = reply.body["data"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["type"], "connection.deleted");
    assert_eq!(rest[0]["integration"], "teamleader");
    assert_eq!(rest[0]["end_user_id"], "u1");
    // Nothing new yet: the same cursor comes back, ready to poll again.
    let tail = reply.body["next_cursor"].as_str().unwrap().to_string();
    let reply = app
        .call(
            "GET",
            &format!("/v1/events?cursor={tail}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.body["data"], json!([]));
    assert_eq!(reply.body["next_cursor"], tail.as_str());

    let reply = app
        .call(
            "GET",
            &format!("/v1/events?connection_id={b}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 1);
}

/// SECURITY 14: another project's ids answer exactly as ids that do not exist.
async fn projects_cannot_reach_each_others_data(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (p1, k1) = app.project("One").await;
    let (_p2, k2) = app.project("Two").await;
    let tl = app.integration(&k1, "teamleader", json!({})).await;
    let conn = app.connection(&p1, &tl, Some("u1"), "a").await;
    let key_list = app.call("GET", "/v1/keys", Some(&k1), None).await;
    let key_id = key_list.body["data"][0]["id"].as_str().unwrap().to_string();

    let probes = [
        (
            "GET",
            format!("/v1/connections/{conn}"),
            format!("/v1/connections/conn_{}", "0".repeat(26)),
            None,
        ),
        (
            "DELETE",
            format!("/v1/connections/{conn}"),
            "/v1/connections/conn_nope".into(),
            None,
        ),
        (
            "GET",
            "/v1/integrations/teamleader".into(),
            "/v1/integrations/nope".into(),
            None,
        ),
        (
            "PATCH",
            "/v1/integrations/teamleader".into(),
            "/v1/integrations/nope".into(),
            Some(json!({ "label": "x" })),
        ),
        (
            "DELETE",
            "/v1/integrations/teamleader?cascade=true".into(),
            "/v1/integrations/nope?cascade=true".into(),
            None,
        ),
        (
            "DELETE",
            format!("/v1/keys/{key_id}"),
            "/v1/keys/key_nope".into(),
            None,
        ),
    ];
    for (method, theirs, missing, body) in probes {
        let a = app.call(method, &theirs, Some(&k2), body.clone()).await;
        let b = app.call(method, &missing, Some(&k2), body).await;
        assert_eq!(
            a.status,
            StatusCode::NOT_FOUND,
            "{method} {theirs}: {}",
            a.text
        );
        assert_eq!(a.body, b.body, "{method} {theirs}");
    }
    for list in [
        "/v1/connections".to_string(),
        "/v1/connections?integration=teamleader".to_string(),
        format!("/v1/events?connection_id={conn}"),
        "/v1/integrations".to_string(),
    ] {
        let reply = app.call("GET", &list, Some(&k2), None).await;
        assert_eq!(reply.body["data"], json!([]), "{list}");
    }
    let sessions = app
        .call("POST", "/v1/connect/sessions", Some(&k2), Some(json!({
            "end_user_id": "u1", "allowed_origins": ["https://a.example"], "integrations": ["teamleader"]
        })))
        .await;
    assert_eq!(
        sessions.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "P2 cannot name P1's integration"
    );
    // P1 still has everything.
    assert_eq!(
        app.call("GET", &format!("/v1/connections/{conn}"), Some(&k1), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", "/v1/keys", Some(&k1), None).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// SECURITY 15: malformed, truncated, extended and altered keys get one answer.
async fn wrong_secret_keys_all_get_the_same_401(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let mut altered = key.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'a' { 'b' } else { 'a' });
    let candidates = [
        String::new(),
        "x".into(),
        "pb_sk_".into(),
        key[..key.len() - 1].to_string(),
        format!("{key}0"),
        altered,
        key.replace("pb_sk_", "pb_cs_"),
        "a".repeat(4000),
        key.to_uppercase(),
    ];
    // The right key first, so that the server keeps it in memory: a wrong
    // key with its prefix must still fail against what is kept.
    assert_eq!(
        app.call("GET", "/v1/integrations", Some(&key), None)
            .await
            .status,
        StatusCode::OK
    );
    let mut answers = std::collections::BTreeSet::new();
    for candidate in &candidates {
        let reply = app
            .call("GET", "/v1/integrations", Some(candidate), None)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{candidate}");
        answers.insert(reply.text);
    }
    let reply = app.call("GET", "/v1/integrations", None, None).await;
    answers.insert(reply.text);
    let basic = app
        .send(
            Request::get("/v1/integrations")
                .header("authorization", format!("Basic {key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    answers.insert(basic.text);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        app.call("GET", "/v1/integrations", Some(&key), None)
            .await
            .status,
        StatusCode::OK
    );
}

/// SECURITY 32 for the routes that exist: 4xx in the error shape, never a 5xx.
async fn bad_input_gets_the_error_shape_never_a_500(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let raw = |method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"));
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(Body::from(body)).unwrap()
    };
    let json_ct = Some("application/json");
    let cases = vec![
        (
            raw("POST", "/v1/integrations", json_ct, b"{not json".to_vec()),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw("POST", "/v1/integrations", json_ct, b"".to_vec()),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(
                "POST",
                "/v1/integrations",
                json_ct,
                vec![b'"', 0xff, 0xfe, b'"'],
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw("POST", "/v1/integrations", None, b"{}".to_vec()),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw("POST", "/v1/integrations", json_ct, b"[1,2]".to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw("POST", "/v1/integrations", json_ct, b"null".to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                "POST",
                "/v1/integrations",
                json_ct,
                format!("{{\"key\":\"{}\"}}", "k".repeat(300 * 1024)).into_bytes(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            raw(
                "POST",
                "/v1/connect/sessions",
                json_ct,
                br#"{"end_user_id": 5, "allowed_origins": "x"}"#.to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                "POST",
                "/v1/connect/sessions",
                json_ct,
                br#"{"end_user_id": "u", "allowed_origins": ["https://a.b"], "ttl_seconds": 1e99}"#
                    .to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                "POST",
                "/v1/connect/sessions",
                json_ct,
                br#"{"end_user_id": "u", "allowed_origins": ["https://a.b"], "surprise": 1}"#
                    .to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw("PATCH", "/v1/integrations/x", json_ct, b"{".to_vec()),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw("GET", "/v1/nothing-here", None, vec![]),
            StatusCode::NOT_FOUND,
        ),
        (
            raw("PUT", "/v1/integrations", None, vec![]),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            raw("GET", "/v1/connections/%ff%fe", None, vec![]),
            StatusCode::NOT_FOUND,
        ),
        (
            raw("GET", "/v1/events?cursor=%ff", None, vec![]),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (request, expected) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = app.send(request).await;
        assert_eq!(reply.status, expected, "{what}: {}", reply.text);
        assert!(
            reply.body["error"]["code"].is_string() && reply.body["error"]["message"].is_string(),
            "{what}: {}",
            reply.text
        );
    }
    let reply = app
        .call(
            "POST",
            "/v1/admin/projects",
            Some(OPERATOR_TOKEN),
            Some(json!({ "name": ["x"] })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Expired sessions and the sealed values of expired attempts are forgotten.
async fn expired_sessions_and_attempt_secrets_are_purged(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    app.integration(&key, "teamleader", json!({})).await;
    let session = app
        .call(
            "POST",
            "/v1/connect/sessions",
            Some(&key),
            Some(json!({ "end_user_id": "u1", "allowed_origins": ["https://app.example.com"], "ttl_seconds": 60 })),
        )
        .await;
    let token = session.body["token"].as_str().unwrap().to_string();
    let started = app
        .send(
            Request::post("/v1/sdk/connect")
                .header("authorization", format!("Bearer {token}"))
                .header("origin", "https://app.example.com")
                .header("content-type", "application/json")
                .body(Body::from(json!({ "app": "teamleader" }).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let before = app
        .store()
        .vault_key_usage()
        .await
        .unwrap()
        .values()
        .sum::<u64>();
    assert_eq!(
        before, 3,
        "the client secret, the PKCE verifier and the authorization URL"
    );

    let now = app.state.now();
    let nothing = app.store().purge_expired(now, 86_400).await.unwrap();
    assert_eq!(
        (nothing.sessions, nothing.attempt_secrets),
        (0, 0),
        "nothing live is purged"
    );
    let purged = app.store().purge_expired(now + 601, 86_400).await.unwrap();
    assert_eq!((purged.sessions, purged.attempt_secrets), (0, 2));
    assert_eq!(
        app.store()
            .vault_key_usage()
            .await
            .unwrap()
            .values()
            .sum::<u64>(),
        1
    );
    let purged = app
        .store()
        .purge_expired(now + 60 + 86_400, 86_400)
        .await
        .unwrap();
    assert_eq!(purged.sessions, 1);
    use plugboard::store::SessionLookup;
    assert!(matches!(
        app.store().authenticate_session(&token, now).await.unwrap(),
        SessionLookup::Unknown
    ));
}

/// SECURITY 16 at save, with https (so the refusal is the internal-address
/// check, not the https rule), and SECURITY 41: the authorization request's
/// own parameters cannot hide in `authorization_url`.
async fn internal_and_reserved_targets_are_refused_at_save(engine: Engine) {
    let app = TestApp::with_allow(engine, "127.0.0.1").await;
    let (_, key) = app.project("Acme").await;
    for (field, url) in [
        ("token_url", "https://169.254.169.254/latest/meta-data"),
        ("token_url", "https://10.0.0.8/token"),
        ("revocation_url", "https://[::ffff:127.0.0.2]/revoke"),
        ("userinfo_url", "https://100.64.0.1/userinfo"),
        ("jwks_url", "https://[fd00::1]/jwks"),
        ("api_base_url", "https://192.168.1.1/"),
    ] {
        let mut body = common::oauth_integration("acme");
        body[field] = json!(url);
        let reply = app
            .call("POST", "/v1/integrations", Some(&key), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let message = reply.body["error"]["fields"][field].as_str().unwrap_or("");
        assert!(
            message.contains("internal address"),
            "{field}={url}: {}",
            reply.text
        );
    }
    for query in [
        "redirect_uri=https://evil.example/",
        "response_type=token",
        "code_challenge_method=plain",
        "client_id=other",
        "state=fixed",
        "scope=admin",
        "nonce=n",
        "code_challenge=x",
    ] {
        let mut body = common::oauth_integration("acme");
        body["authorization_url"] = json!(format!("https://idp.example/authorize?{query}"));
        let reply = app
            .call("POST", "/v1/integrations", Some(&key), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(
            reply.body["error"]["fields"]["authorization_url"].is_string(),
            "{query}: {}",
            reply.text
        );
    }
    // A query of the provider's own is kept.
    let mut body = common::oauth_integration("acme");
    body["authorization_url"] = json!("https://idp.example/authorize?tenant=common");
    let reply = app
        .call("POST", "/v1/integrations", Some(&key), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

/// Identifiers that decide whose data is whose refuse bidirectional and
/// zero-width characters; display labels lose them; an origin with a
/// trailing newline is refused, not silently trimmed.
async fn identifiers_refuse_invisible_characters_and_labels_lose_them(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    for end_user in [
        "user\u{202E}24",
        "user\u{200B}",
        "\u{FEFF}user",
        " user",
        "user\n",
    ] {
        let reply = app
            .call(
                "POST",
                "/v1/connect/sessions",
                Some(&key),
                Some(json!({ "end_user_id": end_user, "allowed_origins": ["https://app.example.com"] })),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{end_user:?}"
        );
        assert!(reply.body["error"]["fields"]["end_user_id"].is_string());
    }
    for origin in [
        "https://app.example.com\n",
        "https://app.example.com ",
        "\thttps://app.example.com",
    ] {
        let reply = app
            .call(
                "POST",
                "/v1/connect/sessions",
                Some(&key),
                Some(json!({ "end_user_id": "u", "allowed_origins": [origin] })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{origin:?}");
        assert!(reply.body["error"]["fields"]["allowed_origins"].is_string());
    }
    let reply = app
        .call(
            "POST",
            "/v1/integrations",
            Some(&key),
            Some({
                let mut b = common::oauth_integration("acme");
                b["label"] = json!("Team\u{202E}redael\u{200B}");
                b
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["label"], "Teamredael");
}

/// SECURITY 40: answers that carry a secret are not cached; nothing is
/// sniffed; and at the protocol level, a too-long target or too-large
/// headers answer in the error shape (sent over a real connection).
async fn secrets_are_not_cached_nothing_is_sniffed_and_oversize_requests_get_the_shape(
    engine: Engine,
) {
    let app = TestApp::new(engine).await;
    let project = app
        .call(
            "POST",
            "/v1/admin/projects",
            Some(OPERATOR_TOKEN),
            Some(json!({ "name": "Acme" })),
        )
        .await;
    let key = project.body["secret_key"].as_str().unwrap().to_string();
    let minted = app.call("POST", "/v1/keys", Some(&key), None).await;
    let session = app
        .call(
            "POST",
            "/v1/connect/sessions",
            Some(&key),
            Some(json!({ "end_user_id": "u", "allowed_origins": ["https://app.example.com"] })),
        )
        .await;
    for reply in [&project, &minted, &session] {
        assert!(reply.status.is_success(), "{}", reply.text);
        assert_eq!(reply.headers["cache-control"], "no-store", "{}", reply.text);
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
    for (method, path) in [
        ("GET", "/healthz"),
        ("GET", "/nothing"),
        ("DELETE", "/healthz"),
    ] {
        let reply = app.call(method, path, None, None).await;
        assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{path}");
    }

    let client = reqwest::Client::new();
    let url = format!("{}/v1/integrations", app.base_url);
    for (request, status) in [
        (client.get(format!("{url}?q={}", "a".repeat(10_000))), 414),
        (
            client.get(&url).header("x-padding", "b".repeat(40_000)),
            431,
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(format!(r#"{{"key":"{}"}}"#, "k".repeat(300 * 1024))),
            413,
        ),
        // Far larger than the socket's buffers: the answer still arrives
        // (the connection lingers), not a reset while the client writes.
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 16 * 1024 * 1024]),
            413,
        ),
    ] {
        let reply = request
            .bearer_auth(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{status}: {e:?}"));
        assert_eq!(reply.status(), status);
        let body: Value = serde_json::from_str(&reply.text().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "validation_failed", "{status}");
    }
    // The proxy makes the same checks itself; its refusals name themselves.
    let url = format!("{}/v1/proxy/conn_nothing/items", app.base_url);
    for (request, status, code) in [
        (
            client.get(format!("{url}?q={}", "a".repeat(10_000))),
            414,
            "validation_failed",
        ),
        (
            client.get(&url).header("x-padding", "b".repeat(40_000)),
            431,
            "validation_failed",
        ),
        (client.get(&url), 404, "not_found"),
    ] {
        let reply = request.bearer_auth(&key).send().await.unwrap();
        assert_eq!(reply.status(), status);
        let headers = reply.headers().clone();
        assert_eq!(headers["plugboard-error"], code, "{status}");
        assert_eq!(headers["cache-control"], "no-store", "{status}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{status}");
        let body: Value = serde_json::from_str(&reply.text().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], code, "{status}");
    }
}

/// SECURITY 15 on the SDK's endpoints, over HTTP as a page sends them:
/// malformed, truncated, extended, forged and foreign tokens get one answer.
async fn session_tokens_wrong_in_any_way_get_one_401_over_http(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let token = common::journey::Session::mint(&app, &key, "u", "http://localhost:3000")
        .await
        .token;
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let client = reqwest::Client::new();
    let mut answers = std::collections::BTreeSet::new();
    for candidate in [
        String::new(),
        "x".to_string(),
        "pb_cs_".to_string(),
        token[..token.len() - 1].to_string(),
        format!("{token}0"),
        forged,
        token.replace("pb_cs_", "pb_sk_"),
        key.clone(),
        "c".repeat(3000),
    ] {
        for path in ["/v1/sdk/apps", "/v1/sdk/connections"] {
            let reply = client
                .get(format!("{}{path}", app.base_url))
                .header("authorization", format!("Bearer {candidate}"))
                .header("origin", "http://localhost:3000")
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 401, "{candidate}");
            answers.insert(reply.text().await.unwrap());
        }
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let ok = client
        .get(format!("{}/v1/sdk/apps", app.base_url))
        .bearer_auth(&token)
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// SECURITY 32 for the SDK's endpoints, `/v1/keys` and the callback.
async fn sdk_keys_and_callback_routes_take_bad_input_without_a_500(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (_, key) = app.project("Acme").await;
    let integration = app.integration(&key, "acme", json!({})).await;
    let token = common::journey::Session::mint(&app, &key, "u", "http://localhost:3000")
        .await
        .token;
    let request = |method: &str, path: &str, bearer: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {bearer}"))
            .header("origin", "http://localhost:3000")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let huge = format!(r#"{{"app":"{}"}}"#, "a".repeat(300 * 1024)).into_bytes();
    let cases = vec![
        request("POST", "/v1/sdk/connect", &token, b"{not json".to_vec()),
        request("POST", "/v1/sdk/connect", &token, br#"{"app":7}"#.to_vec()),
        request(
            "POST",
            "/v1/sdk/connect",
            &token,
            br#"{"app":"acme","extra":1}"#.to_vec(),
        ),
        request(
            "POST",
            "/v1/sdk/connect",
            &token,
            br#"{"app":"acme","params":{"a":[1]}}"#.to_vec(),
        ),
        request("POST", "/v1/sdk/connect", &token, vec![0xff, 0xfe, b'{']),
        request("POST", "/v1/sdk/connect", &token, huge.clone()),
        request("GET", "/v1/sdk/connections?unknown=1", &token, vec![]),
        request("GET", "/v1/sdk/connect/%ff%fe", &token, vec![]),
        request("DELETE", "/v1/sdk/connections/%ff", &token, vec![]),
        request("POST", "/v1/keys", &key, b"[1,2".to_vec()),
        request("POST", "/v1/keys", &key, huge),
        request("DELETE", "/v1/keys/%ff%fe", &key, vec![]),
    ];
    for request in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = app.send(request).await;
        assert!(
            reply.status.is_client_error(),
            "{what}: {} {}",
            reply.status,
            reply.text
        );
        assert!(
            reply.body["error"]["code"].is_string() && reply.body["error"]["message"].is_string(),
            "{what}: {}",
            reply.text
        );
    }
    // A callback whose query is not UTF-8 is a page for people, never a 5xx.
    let id = integration["id"].as_str().unwrap();
    for query in [
        "state=%ff%fe&code=%80",
        "state=%C0%AF",
        "%ff=%ff",
        "error=%ff&state=x",
    ] {
        let reply = app
            .send(
                Request::get(format!("/oauth/callback/{id}?{query}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert!(reply.text.contains("<!doctype html>"), "{query}");
    }
}
