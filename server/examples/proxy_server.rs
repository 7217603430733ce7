//! The Plugboard that `cargo xtask bench` loads through its proxy: the
//! server's own router and listener on SQLite, with one project, an API-key
//! connection and an OAuth connection (a token with no expiry, so that no
//! refresh is measured), both to the upstream named by
//! `PLUGBOARD_BENCH_UPSTREAM`. Prints one line of `name=value` pairs — where
//! it listens, the secret key, the two connections' ids, its pid — then
//! serves until killed.

use std::sync::Arc;

use plugboard::app::{App, AppState};
use plugboard::clock::SystemClock;
use plugboard::config::{Limits as ServerLimits, Settings};
use plugboard::outbound::{AllowList, Limits, Outbound};
use plugboard::store::{IntegrationRow, NewConnection, Store};
use plugboard::vault::KeyRing;
use serde_json::json;

/// On the runtime `plugboard serve` runs on, with as many threads.
fn main() {
    plugboard::cli::runtime(None)
        .expect("start the async runtime")
        .block_on(run());
}

async fn run() {
    let upstream = std::env::var("PLUGBOARD_BENCH_UPSTREAM")
        .expect("PLUGBOARD_BENCH_UPSTREAM: run this through `cargo xtask bench`");
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = Store::connect(&database).await.expect("open the database");
    store.migrate().await.expect("migrate");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let allow = AllowList::parse("127.0.0.1").unwrap();
    let settings = Settings {
        public_url: url::Url::parse(&format!("{url}/")).unwrap(),
        operator_token: None,
        allow_hosts: allow.clone(),
        trust_proxy: false,
        limits: ServerLimits {
            auth_failures_per_minute: 1_000_000,
            ..ServerLimits::default()
        },
    };
    let app = App::new(
        store,
        KeyRing::parse(&KeyRing::generate_spec()).expect("key ring"),
        Arc::new(SystemClock),
        settings.clone(),
        Outbound::new(allow, Limits::default()).expect("outbound"),
    );
    let (project, _, minted) = app
        .store
        .create_project("Bench", app.now())
        .await
        .expect("project");
    let mut ids = Vec::new();
    for (key, auth_type, config, secrets) in [
        (
            "keys",
            "api_key",
            json!({ "label": "Keys", "multiple_accounts": true, "refresh_buffer_seconds": 300,
                    "api_base_url": upstream, "api_key_in": "header", "api_key_name": "X-Key" }),
            vec![("api_key", "bench-key")],
        ),
        (
            "oauth",
            "oauth2_authorization_code",
            json!({ "label": "OAuth", "multiple_accounts": true, "refresh_buffer_seconds": 300,
                    "api_base_url": upstream,
                    "authorization_url": "https://provider.example/authorize",
                    "token_url": "https://provider.example/token", "client_id": "bench",
                    "scopes": [], "scope_separator": " ", "authorization_params": {},
                    "token_auth_method": "client_secret_basic" }),
            vec![("access_token", "bench-token")],
        ),
    ] {
        let integration = IntegrationRow {
            id: plugboard::ids::new_id("int"),
            project_id: project.id.clone(),
            key: key.into(),
            auth_type: auth_type.into(),
            config: config.to_string(),
            created_at: app.now(),
            updated_at: app.now(),
            client_generation: 0,
        };
        app.store
            .insert_integration(&app.vault, &integration, &[], None)
            .await
            .expect("integration");
        let id = app
            .store
            .insert_connection(
                &app.vault,
                NewConnection {
                    project_id: &project.id,
                    integration_id: &integration.id,
                    integration_key: key,
                    end_user_id: Some("bench-user"),
                    subject: None,
                    label: None,
                    scopes: &[],
                    secrets: &secrets,
                    now: app.now(),
                },
            )
            .await
            .expect("connection");
        ids.push(id);
    }
    println!(
        "url={url} key={} api_key_connection={} oauth_connection={} pid={}",
        minted.token,
        ids[0],
        ids[1],
        std::process::id()
    );
    let state = AppState(Arc::new(app));
    plugboard::http::serve::serve(
        listener,
        plugboard::http::application(state),
        plugboard::http::serve::ServeLimits {
            header_timeout: settings.limits.header_timeout,
            max_connections: 10_000,
        },
        std::future::pending(),
    )
    .await;
    drop(dir);
}
