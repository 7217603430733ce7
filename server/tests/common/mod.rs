//! The harness the server's integration tests share: a `TestApp` on SQLite or
//! on a fresh database of the throwaway PostgreSQL cluster that `cargo xtask test` starts.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use plugboard::app::{App, AppState};
use plugboard::clock::ManualClock;
use plugboard::config::Settings;
use plugboard::http;
use plugboard::outbound::{AllowList, Limits, Outbound};
use plugboard::store::Store;
use plugboard::vault::KeyRing;
use serde_json::Value;
use tower::ServiceExt;

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per engine for each named `async fn(Engine)`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Engine::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Engine::Postgres).await
                }
            )*
        }
    };
}

/// One `#[tokio::test]` for each named `async fn(Engine)`, on SQLite only:
/// for tests whose subject does not depend on the database engine.
#[macro_export]
macro_rules! on_one_engine {
    ($($name:ident),* $(,)?) => {
        mod once {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Engine::Sqlite).await
                }
            )*
        }
    };
}

/// The admin URL of the test PostgreSQL cluster.
pub fn postgres_admin_url() -> String {
    std::env::var("PLUGBOARD_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL half of the tests needs PLUGBOARD_TEST_POSTGRES_URL; \
             run the suite with `cargo xtask test`, which starts a throwaway cluster and sets it"
        )
    })
}

/// A database URL on a fresh, empty database for one test.
pub async fn fresh_database_url(engine: Engine, dir: &std::path::Path) -> String {
    match engine {
        Engine::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
        Engine::Postgres => {
            use sqlx::Connection;
            let admin = postgres_admin_url();
            let name = format!(
                "t_{}",
                plugboard::ids::new_id("db").trim_start_matches("db_")
            );
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to the test cluster");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create a test database");
            conn.close().await.ok();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    }
}

/// Runs one SQL statement on a test database, with an optional byte value as `$1`;
/// answers the rows it changed. For planting faults the API cannot make.
pub async fn execute(engine: Engine, url: &str, sql: &str, value: Option<Vec<u8>>) -> u64 {
    match engine {
        Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
            let mut q = sqlx::query(sql);
            if let Some(v) = value {
                q = q.bind(v);
            }
            let n = q.execute(&pool).await.expect("execute").rows_affected();
            pool.close().await;
            n
        }
        Engine::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            let mut q = sqlx::query(sql);
            if let Some(v) = value {
                q = q.bind(v);
            }
            let n = q.execute(&pool).await.expect("execute").rows_affected();
            pool.close().await;
            n
        }
    }
}

pub struct TestApp {
    pub engine: Engine,
    pub state: AppState,
    pub clock: ManualClock,
    pub database_url: String,
    pub key_spec: String,
    /// Where the app listens, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error code of a reply in the product's error shape.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn new(engine: Engine) -> TestApp {
        Self::with_allow(engine, "127.0.0.1,::1").await
    }

    pub async fn with_allow(engine: Engine, allow: &str) -> TestApp {
        Self::build(engine, allow, Some(OPERATOR_TOKEN)).await
    }

    pub async fn build(engine: Engine, allow: &str, operator_token: Option<&str>) -> TestApp {
        Self::build_at(
            engine,
            allow,
            operator_token,
            time::macros::datetime!(2030-01-01 00:00 UTC),
        )
        .await
    }

    /// A TestApp whose clock starts now: for flows with a real provider, whose tokens carry real times.
    pub async fn starting_now(engine: Engine) -> TestApp {
        Self::build_at(
            engine,
            "127.0.0.1,::1",
            Some(OPERATOR_TOKEN),
            time::OffsetDateTime::now_utc(),
        )
        .await
    }

    /// Builds the app and serves it on a loopback port, so that providers and
    /// browsers can reach it as they would a deployed server.
    pub async fn build_at(
        engine: Engine,
        allow: &str,
        operator_token: Option<&str>,
        start: time::OffsetDateTime,
    ) -> TestApp {
        Self::build_limited(engine, allow, operator_token, start, raised_limits(), false).await
    }

    /// A TestApp with the given limits (for the tests of the limits themselves).
    pub async fn with_limits(
        engine: Engine,
        limits: plugboard::config::Limits,
        trust_proxy: bool,
    ) -> TestApp {
        Self::build_limited(
            engine,
            "127.0.0.1,::1",
            Some(OPERATOR_TOKEN),
            time::macros::datetime!(2030-01-01 00:00 UTC),
            limits,
            trust_proxy,
        )
        .await
    }

    pub async fn build_limited(
        engine: Engine,
        allow: &str,
        operator_token: Option<&str>,
        start: time::OffsetDateTime,
        limits: plugboard::config::Limits,
        trust_proxy: bool,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = fresh_database_url(engine, dir.path()).await;
        let key_spec = KeyRing::generate_spec();
        let clock = ManualClock::new(start);
        Self::serve_on(
            engine,
            database_url,
            key_spec,
            clock,
            allow,
            operator_token,
            limits,
            trust_proxy,
            dir,
        )
        .await
    }

    /// A second server on this one's database, with its own store, caches
    /// and connections to the database, as another replica would be; it
    /// shares this one's clock and vault key.
    pub async fn replica(&self) -> TestApp {
        Self::serve_on(
            self.engine,
            self.database_url.clone(),
            self.key_spec.clone(),
            self.clock.clone(),
            "127.0.0.1,::1",
            Some(OPERATOR_TOKEN),
            raised_limits(),
            false,
            tempfile::tempdir().expect("tempdir"),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve_on(
        engine: Engine,
        database_url: String,
        key_spec: String,
        clock: ManualClock,
        allow: &str,
        operator_token: Option<&str>,
        limits: plugboard::config::Limits,
        trust_proxy: bool,
        dir: tempfile::TempDir,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let store = Store::connect(&database_url).await.expect("open store");
        store.migrate().await.expect("migrate");
        let vault = KeyRing::parse(&key_spec).expect("key ring");
        let allow_hosts = AllowList::parse(allow).expect("allow list");
        let settings = Settings {
            public_url: url::Url::parse(&format!("{base_url}/")).expect("url"),
            operator_token: operator_token.map(str::to_string),
            allow_hosts: allow_hosts.clone(),
            trust_proxy,
            limits,
        };
        let state = AppState(Arc::new(App::new(
            store,
            vault,
            Arc::new(clock.clone()),
            settings,
            Outbound::new(
                allow_hosts,
                Limits {
                    // Generous: a loaded machine must not fail provider-backed tests.
                    // The stalled-peer tests wait this long once each.
                    total_timeout: std::time::Duration::from_secs(10),
                    max_body_bytes: 1024 * 1024,
                    ..Limits::default()
                },
            )
            .expect("outbound"),
        )));
        tokio::spawn(plugboard::http::serve::serve(
            listener,
            http::application(state.clone()),
            plugboard::http::serve::ServeLimits {
                header_timeout: limits.header_timeout,
                max_connections: 1000,
            },
            std::future::pending(),
        ));
        TestApp {
            engine,
            state,
            clock,
            database_url,
            key_spec,
            base_url,
            _dir: dir,
        }
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Sends a request through the router, as a client would.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = http::router(self.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(json) => builder
                .header("content-type", "application/json")
                .body(Body::from(json.to_string())),
            None => builder.body(Body::empty()),
        }
        .expect("request");
        self.send(request).await
    }

    /// Creates a project through the admin API; returns (id, secret key).
    pub async fn project(&self, name: &str) -> (String, String) {
        let reply = self
            .call(
                "POST",
                "/v1/admin/projects",
                Some(OPERATOR_TOKEN),
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        (
            reply.body["id"].as_str().expect("id").to_string(),
            reply.body["secret_key"]
                .as_str()
                .expect("secret_key")
                .to_string(),
        )
    }

    /// Creates an authorization-code integration; returns it as read.
    pub async fn integration(&self, secret_key: &str, key: &str, extra: Value) -> Value {
        let mut body = oauth_integration(key);
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let reply = self
            .call("POST", "/v1/integrations", Some(secret_key), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body
    }

    /// The newest event recorded for a connection.
    pub async fn last_event(&self, secret_key: &str, connection_id: &str) -> Value {
        let events = self
            .call(
                "GET",
                &format!("/v1/events?connection_id={connection_id}"),
                Some(secret_key),
                None,
            )
            .await;
        events.body["data"]
            .as_array()
            .and_then(|list| list.last())
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Stores a connection as the connect flow will: through the store, sealed.
    pub async fn connection(
        &self,
        project_id: &str,
        integration: &Value,
        end_user: Option<&str>,
        label: &str,
    ) -> String {
        let secrets = [
            ("access_token", "at-canary-Zq81"),
            ("refresh_token", "rt-canary-Zq82"),
        ];
        self.store()
            .insert_connection(
                &self.state.vault,
                plugboard::store::NewConnection {
                    project_id,
                    integration_id: integration["id"].as_str().expect("id"),
                    integration_key: integration["key"].as_str().expect("key"),
                    end_user_id: end_user,
                    subject: Some(label),
                    label: Some(label),
                    scopes: &["contacts".to_string()],
                    secrets: &secrets,
                    now: self.state.now(),
                },
            )
            .await
            .expect("insert connection")
    }
}

/// The server's limits with the rate limits raised out of the way: tests
/// that share one server must not throttle each other. The tests of the
/// limits themselves set their own.
pub fn raised_limits() -> plugboard::config::Limits {
    plugboard::config::Limits {
        auth_failures_per_minute: 1_000_000,
        sessions_per_minute: 1_000_000,
        attempts_per_minute: 1_000_000,
        ..plugboard::config::Limits::default()
    }
}

pub fn oauth_integration(key: &str) -> Value {
    serde_json::json!({
        "key": key,
        "label": "Teamleader",
        "auth_type": "oauth2_authorization_code",
        "client_id": "client-123",
        "client_secret": "client-secret-canary-7Hq",
        "scopes": ["contacts", "companies"],
        "authorization_url": "https://focus.teamleader.example/oauth2/authorize",
        "token_url": "https://focus.teamleader.example/oauth2/access_token",
        "api_base_url": "https://api.focus.teamleader.example",
        "multiple_accounts": true
    })
}
pub mod binary;
pub mod fake;
pub mod journey;
pub mod nginx;
pub mod provider;
pub mod upstream;
