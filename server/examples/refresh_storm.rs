//! The refresh storm that `cargo xtask bench` measures: 1,000 connections
//! whose tokens are all due, used at once through two servers (two `App`s,
//! each with its own pool and its own process-local state, as two replicas
//! would be) sharing one PostgreSQL database, against a local token endpoint
//! that counts the refreshes it serves for each connection.
//!
//! Reports refreshes per connection (single-flight means exactly one), the
//! time until every use has its token, and the callers' waits. Run by
//! `cargo xtask bench`, which starts a throwaway PostgreSQL and passes its
//! URL as `PLUGBOARD_BENCH_POSTGRES_URL`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use plugboard::app::App;
use plugboard::clock::SystemClock;
use plugboard::config::{Limits as ServerLimits, Settings};
use plugboard::outbound::{AllowList, Limits, Outbound};
use plugboard::store::{IntegrationRow, NewConnection, Store};
use plugboard::vault::KeyRing;
use serde_json::{json, Value};

const CONNECTIONS: usize = 1_000;
/// Uses of each connection, spread over the two servers.
const USES_PER_CONNECTION: usize = 4;
/// The token endpoint's pretend round trip.
const PROVIDER_DELAY: Duration = Duration::from_millis(20);

/// Refreshes served, by the connection the refresh token belongs to.
type Counts = Arc<Mutex<HashMap<String, usize>>>;

async fn token_endpoint(State(counts): State<Counts>, body: String) -> Json<Value> {
    tokio::time::sleep(PROVIDER_DELAY).await;
    let refresh_token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    // "rt-<connection>-<n>": count by connection, hand out the next one.
    let (connection, n) = refresh_token
        .rsplit_once('-')
        .map(|(c, n)| (c.to_string(), n.parse::<u64>().unwrap_or(0)))
        .unwrap_or_default();
    *counts
        .lock()
        .unwrap()
        .entry(connection.clone())
        .or_default() += 1;
    Json(json!({
        "access_token": format!("at-{connection}-{}", n + 1),
        "refresh_token": format!("{connection}-{}", n + 1),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
}

async fn server(url: &str, key_spec: &str, settings: &Settings) -> App {
    let store = Store::connect(url).await.expect("open the database");
    let outbound = Outbound::new(
        AllowList::parse("127.0.0.1").expect("allow list"),
        Limits::default(),
    )
    .expect("outbound");
    App::new(
        store,
        KeyRing::parse(key_spec).expect("key ring"),
        Arc::new(SystemClock),
        settings.clone(),
        outbound,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let url = std::env::var("PLUGBOARD_BENCH_POSTGRES_URL")
        .expect("PLUGBOARD_BENCH_POSTGRES_URL: run this through `cargo xtask bench`");

    let counts: Counts = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let token_url = format!("http://{}/token", listener.local_addr().unwrap());
    let endpoint = Router::new()
        .route("/token", post(token_endpoint))
        .with_state(counts.clone());
    tokio::spawn(async move { axum::serve(listener, endpoint).await });

    // The data: one project, one integration, 1,000 connections all due.
    let key_spec = KeyRing::generate_spec();
    let settings = Settings {
        public_url: url::Url::parse("http://127.0.0.1:8080/").unwrap(),
        operator_token: None,
        allow_hosts: AllowList::parse("127.0.0.1").unwrap(),
        trust_proxy: false,
        limits: ServerLimits::default(),
    };
    let first = server(&url, &key_spec, &settings).await;
    first.store.migrate().await.expect("migrate");
    let (project, _, _) = first
        .store
        .create_project("Storm", first.now())
        .await
        .expect("project");
    let config = json!({
        "label": "Storm", "multiple_accounts": true, "refresh_buffer_seconds": 300,
        "authorization_url": "https://provider.example/authorize", "token_url": token_url,
        "client_id": "storm-client", "scopes": [], "scope_separator": " ",
        "authorization_params": {}, "token_auth_method": "client_secret_post",
    });
    let integration = IntegrationRow {
        id: plugboard::ids::new_id("int"),
        project_id: project.id.clone(),
        key: "storm".into(),
        auth_type: "oauth2_authorization_code".into(),
        config: config.to_string(),
        created_at: first.now(),
        updated_at: first.now(),
        client_generation: 0,
    };
    first
        .store
        .insert_integration(
            &first.vault,
            &integration,
            &[("client_secret", Some("storm-secret"))],
            None,
        )
        .await
        .expect("integration");
    let mut ids = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let refresh_token = format!("c{i}-0");
        let end_user = format!("user-{i}");
        let id = first
            .store
            .insert_connection(
                &first.vault,
                NewConnection {
                    project_id: &project.id,
                    integration_id: &integration.id,
                    integration_key: "storm",
                    end_user_id: Some(&end_user),
                    subject: None,
                    label: None,
                    scopes: &[],
                    secrets: &[
                        ("access_token", "at-expired"),
                        ("refresh_token", &refresh_token),
                    ],
                    now: first.now(),
                },
            )
            .await
            .expect("connection");
        ids.push(id);
    }
    // Every token expired a minute ago (the store has no API for that: the
    // connect flow sets expiries).
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::query("UPDATE connections SET token_expires_at = $1 WHERE integration_id = $2")
        .bind(first.now() - 60)
        .bind(&integration.id)
        .execute(&pool)
        .await
        .expect("expire");

    // Two servers on the database, every connection used four times at once.
    let servers = [
        Arc::new(first),
        Arc::new(server(&url, &key_spec, &settings).await),
    ];
    let started = Instant::now();
    let mut uses = Vec::with_capacity(CONNECTIONS * USES_PER_CONNECTION);
    for (i, id) in ids.iter().enumerate() {
        for u in 0..USES_PER_CONNECTION {
            let app = servers[(i + u) % 2].clone();
            let id = id.clone();
            uses.push(tokio::spawn(async move {
                let asked = Instant::now();
                let token = plugboard::tokens::fresh_access_token(&app, &id).await;
                (asked.elapsed(), token.is_ok())
            }));
        }
    }
    let mut waits = Vec::with_capacity(uses.len());
    let mut failed = 0;
    for use_ in uses {
        let (wait, ok) = use_.await.expect("task");
        waits.push(wait);
        failed += usize::from(!ok);
    }
    let drained = started.elapsed();
    waits.sort();

    let counts = counts.lock().unwrap();
    let per_connection: Vec<usize> = (0..CONNECTIONS)
        .map(|i| counts.get(&format!("c{i}")).copied().unwrap_or(0))
        .collect();
    let (least, most) = (
        per_connection.iter().min().copied().unwrap_or(0),
        per_connection.iter().max().copied().unwrap_or(0),
    );
    println!("refresh storm: {CONNECTIONS} connections due, {USES_PER_CONNECTION} uses each over 2 servers on PostgreSQL");
    println!("  refreshes per connection: min {least}, max {most} (single-flight: exactly 1)");
    println!("  failed uses: {failed}");
    println!("  time to drain: {:.2} s", drained.as_secs_f64());
    println!(
        "  caller wait: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (the token endpoint takes {} ms)",
        percentile(&waits, 0.50).as_secs_f64() * 1000.0,
        percentile(&waits, 0.99).as_secs_f64() * 1000.0,
        waits.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        PROVIDER_DELAY.as_millis()
    );
    if least != 1 || most != 1 || failed != 0 {
        eprintln!("refresh storm: single-flight did not hold");
        std::process::exit(1);
    }
}
