//! The vault through the store, on SQLite and PostgreSQL: values bound to
//! their row and field, tampering detected, keys rotated (SECURITY 22–24).

mod common;

use common::{Engine, TestApp};
use plugboard::store::{Store, StoreError};
use plugboard::vault::{KeyRing, VaultError};
use serde_json::json;

on_both_engines!(
    a_corrupt_value_is_named_when_used_and_the_rest_works,
    a_value_copied_to_another_row_or_field_fails_and_names_it,
    flipped_truncated_or_unknown_key_values_never_decrypt,
    rotation_keeps_old_rows_readable_and_reencrypt_moves_them,
    ciphertexts_hold_no_plaintext,
);

/// Raw access to a connection's sealed values, as an attacker with the database would have.
async fn raw_get(app: &TestApp, connection: &str, field: &str) -> Vec<u8> {
    let sql = "SELECT ciphertext FROM connection_secrets WHERE connection_id = $1 AND field = $2";
    match app.engine {
        Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
            let (v,): (Vec<u8>,) = sqlx::query_as(sql)
                .bind(connection)
                .bind(field)
                .fetch_one(&pool)
                .await
                .unwrap();
            v
        }
        Engine::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
            let (v,): (Vec<u8>,) = sqlx::query_as(sql)
                .bind(connection)
                .bind(field)
                .fetch_one(&pool)
                .await
                .unwrap();
            v
        }
    }
}

async fn raw_set(app: &TestApp, connection: &str, field: &str, value: &[u8]) {
    let sql =
        "UPDATE connection_secrets SET ciphertext = $1 WHERE connection_id = $2 AND field = $3";
    let n = match app.engine {
        Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
            sqlx::query(sql)
                .bind(value)
                .bind(connection)
                .bind(field)
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected()
        }
        Engine::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
            sqlx::query(sql)
                .bind(value)
                .bind(connection)
                .bind(field)
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected()
        }
    };
    assert_eq!(n, 1);
}

async fn two_connections(app: &TestApp) -> (String, String) {
    let (project, key) = app.project("Acme").await;
    let integration = app.integration(&key, "teamleader", json!({})).await;
    let a = app
        .connection(&project, &integration, Some("u1"), "a")
        .await;
    let b = app
        .connection(&project, &integration, Some("u2"), "b")
        .await;
    (a, b)
}

fn vault_error(result: Result<impl std::fmt::Debug, StoreError>) -> VaultError {
    match result {
        Err(StoreError::Vault(e)) => e,
        other => panic!("expected a vault error, got {other:?}"),
    }
}

async fn a_value_copied_to_another_row_or_field_fails_and_names_it(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (a, b) = two_connections(&app).await;
    let a_token = raw_get(&app, &a, "access_token").await;

    // To another row.
    raw_set(&app, &b, "access_token", &a_token).await;
    let err = vault_error(app.store().connection_secrets(&app.state.vault, &b).await);
    assert!(matches!(err, VaultError::Tampered(_)), "{err:?}");
    assert!(
        err.to_string().contains(&b),
        "the error names the row: {err}"
    );
    // The row it came from is unaffected.
    let secrets = app
        .store()
        .connection_secrets(&app.state.vault, &a)
        .await
        .unwrap();
    assert_eq!(secrets["access_token"], "at-canary-Zq81");

    // To another field of the same row.
    let app = TestApp::new(engine).await;
    let (a, _) = two_connections(&app).await;
    let a_token = raw_get(&app, &a, "access_token").await;
    raw_set(&app, &a, "refresh_token", &a_token).await;
    let err = vault_error(app.store().connection_secrets(&app.state.vault, &a).await);
    assert!(err.to_string().contains("refresh_token"), "{err}");
}

async fn flipped_truncated_or_unknown_key_values_never_decrypt(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (a, b) = two_connections(&app).await;
    let original = raw_get(&app, &a, "access_token").await;

    let mut flipped = original.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    raw_set(&app, &a, "access_token", &flipped).await;
    let err = vault_error(app.store().connection_secrets(&app.state.vault, &a).await);
    assert!(matches!(err, VaultError::Tampered(_)), "{err:?}");

    raw_set(&app, &a, "access_token", &original[..20]).await;
    let err = vault_error(app.store().connection_secrets(&app.state.vault, &a).await);
    assert!(matches!(err, VaultError::Malformed(_)), "{err:?}");
    raw_set(&app, &a, "access_token", b"").await;
    assert!(matches!(
        vault_error(app.store().connection_secrets(&app.state.vault, &a).await),
        VaultError::Malformed(_)
    ));

    // Sealed under a key this ring does not have.
    let stranger = KeyRing::parse(&format!("elsewhere:{}", KeyRing::generate_spec())).unwrap();
    let foreign = stranger.seal(
        plugboard::vault::Binding {
            table: "connection_secrets",
            row: &a,
            field: "access_token",
        },
        b"foreign",
    );
    raw_set(&app, &a, "access_token", &foreign).await;
    let err = vault_error(app.store().connection_secrets(&app.state.vault, &a).await);
    assert_eq!(
        err,
        VaultError::UnknownKey {
            binding: format!("connection_secrets {a} field access_token"),
            key_id: "elsewhere".into()
        }
    );
    let e = err.to_string();
    assert!(!e.contains("canary") && !e.contains("foreign"), "{e}");
    // Other rows are unaffected.
    assert_eq!(
        app.store()
            .connection_secrets(&app.state.vault, &b)
            .await
            .unwrap()["access_token"],
        "at-canary-Zq81"
    );
}

async fn rotation_keeps_old_rows_readable_and_reencrypt_moves_them(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (a, b) = two_connections(&app).await;
    let old = app.key_spec.clone();
    let new = KeyRing::generate_spec();
    let store = Store::connect(&app.database_url).await.unwrap();

    // A plain key is `default`; a ring introduced later names it.
    let rotated = KeyRing::parse(&format!("new:{new},default:{old}")).unwrap();
    store.check_vault_keys(&rotated, 0).await.unwrap();
    assert_eq!(
        store.connection_secrets(&rotated, &a).await.unwrap()["refresh_token"],
        "rt-canary-Zq82"
    );

    // Without the old key, the rows that use it are named.
    let only_new = KeyRing::parse(&format!("new:{new}")).unwrap();
    let err = store
        .check_vault_keys(&only_new, 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`default`") && err.contains("5 values"),
        "{err}"
    );

    // Re-encryption moves every value (one client secret, two per connection).
    let done = store.reencrypt_vault(&rotated).await.unwrap();
    assert_eq!((done.moved, done.unchanged), (5, 0));
    let usage = store.vault_key_usage().await.unwrap();
    assert_eq!(
        usage.into_iter().collect::<Vec<_>>(),
        vec![("new".to_string(), 5)]
    );
    store.check_vault_keys(&only_new, 0).await.unwrap();
    for id in [&a, &b] {
        let secrets = store.connection_secrets(&only_new, id).await.unwrap();
        assert_eq!(secrets["access_token"], "at-canary-Zq81");
    }
    let again = store.reencrypt_vault(&rotated).await.unwrap();
    assert_eq!((again.moved, again.unchanged), (0, 5));
    // The old ring alone can no longer read them, and says which key it lacks.
    let err = vault_error(store.connection_secrets(&app.state.vault, &a).await);
    assert!(
        matches!(err, VaultError::UnknownKey { ref key_id, .. } if key_id == "new"),
        "{err:?}"
    );
}

async fn ciphertexts_hold_no_plaintext(engine: Engine) {
    let app = TestApp::new(engine).await;
    let (a, _) = two_connections(&app).await;
    let sealed = raw_get(&app, &a, "access_token").await;
    assert!(!sealed
        .windows(b"at-canary".len())
        .any(|w| w == b"at-canary"));
    assert_eq!(plugboard::vault::key_id_of(&sealed), Some("default"));
    // Sealing the same value for the same row and field again gives another
    // ciphertext (a fresh nonce each time), and both open.
    let binding = plugboard::vault::Binding {
        table: "connection_secrets",
        row: &a,
        field: "access_token",
    };
    let again = app.state.vault.seal(binding, b"at-canary-Zq81");
    assert_ne!(again, sealed);
    assert_eq!(
        &sealed[..4 + 1 + 7],
        &again[..4 + 1 + 7],
        "same format and key id"
    );
    assert_ne!(&sealed[12..24], &again[12..24], "another nonce");
    for ciphertext in [&sealed, &again] {
        assert_eq!(
            app.state.vault.open(binding, ciphertext).unwrap(),
            b"at-canary-Zq81"
        );
    }
}

/// SECURITY 36 in use: disconnecting a connection whose token cannot be
/// opened still deletes it (never a 500) and records which value failed;
/// the other connection is revoked as usual.
async fn a_corrupt_value_is_named_when_used_and_the_rest_works(engine: Engine) {
    let app = TestApp::new(engine).await;
    let peer = common::fake::FakePeer::start(common::fake::Behaviour::Respond(
        common::fake::json_response(200, "{}"),
    ))
    .await;
    let (project, key) = app.project("Acme").await;
    let integration = app
        .integration(
            &key,
            "teamleader",
            json!({ "revocation_url": format!("{}/revoke", peer.url) }),
        )
        .await;
    let a = app
        .connection(&project, &integration, Some("u1"), "a")
        .await;
    let b = app
        .connection(&project, &integration, Some("u2"), "b")
        .await;
    raw_set(&app, &a, "access_token", b"garbage").await;

    let reply = app
        .call("DELETE", &format!("/v1/connections/{a}"), Some(&key), None)
        .await;
    assert_eq!(
        reply.status,
        axum::http::StatusCode::NO_CONTENT,
        "{}",
        reply.text
    );
    let deleted = app.last_event(&key, &a).await;
    assert_eq!(deleted["data"]["revocation"], "failed");
    let why = deleted["data"]["revocation_error"].as_str().unwrap();
    assert!(
        why.contains(&format!("connection_secrets {a} field access_token")),
        "{why}"
    );
    assert!(
        peer.requests().is_empty(),
        "nothing was sent for the corrupt one"
    );

    let reply = app
        .call("DELETE", &format!("/v1/connections/{b}"), Some(&key), None)
        .await;
    assert_eq!(reply.status, axum::http::StatusCode::NO_CONTENT);
    assert_eq!(peer.requests().len(), 2, "refresh and access token revoked");
}
