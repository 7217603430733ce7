//! The HTTP API: the router, the shared state, and how callers authenticate.

mod connect_sessions;
mod connections;
mod integrations;
mod keys;
mod pages;
mod projects;
mod sdk;

pub use projects::check_project_name;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::config::Settings;
use crate::error::{ApiError, ApiResult, ErrorCode, Json};
use crate::outbound::Outbound;
use crate::store::Store;
use crate::vault::KeyRing;

/// Everything a request handler may use.
pub struct App {
    pub store: Store,
    pub vault: Arc<KeyRing>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub outbound: Outbound,
}

impl App {
    pub fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The redirect URI to register at the provider: one per integration, so a
/// code can only ever reach the token endpoint of the integration it was issued for.
pub fn callback_url(settings: &Settings, integration_id: &str) -> String {
    settings.public_url_for(&format!("/oauth/callback/{integration_id}"))
}

/// Request bodies larger than this are refused before they are parsed.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The whole HTTP application; `main` serves it and the tests call it directly.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(projects::router())
        .merge(keys::router())
        .merge(integrations::router())
        .merge(connect_sessions::router())
        .merge(connections::router())
        .merge(sdk::router())
        .merge(pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(common_headers))
        .with_state(state)
}

async fn healthz(State(app): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    app.store.ping().await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}

/// Headers every answer carries: none is to be sniffed as another type, and
/// none is to be kept by a cache (many carry a secret: a new secret key, a
/// session token, a connection's details) unless its handler says otherwise.
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The project a request's secret key belongs to.
pub struct ProjectAuth {
    pub project_id: String,
}

impl FromRequestParts<AppState> for ProjectAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let presented = bearer(&parts.headers).unwrap_or("");
        match app.store.authenticate_secret_key(presented).await? {
            Some(project_id) => Ok(ProjectAuth { project_id }),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// A request bearing the operator token.
pub struct OperatorAuth;

impl FromRequestParts<AppState> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = app.settings.operator_token.as_deref() else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "the admin API is off: set PLUGBOARD_OPERATOR_TOKEN to turn it on",
            ));
        };
        let presented = bearer(&parts.headers).unwrap_or("");
        // Comparing digests keeps the comparison constant-time whatever the lengths.
        let equal: bool = Sha256::digest(presented.as_bytes())
            .ct_eq(&Sha256::digest(expected.as_bytes()))
            .into();
        if equal {
            Ok(OperatorAuth)
        } else {
            Err(ApiError::unauthorized())
        }
    }
}

/// `limit` as lists take it: default 50, from 1 to 200.
pub(crate) fn page_limit(limit: Option<i64>) -> ApiResult<i64> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::field("limit", "must be from 1 to 200")),
    }
}

/// A list response: `{ "data": [...], "next_cursor": … }`.
#[derive(serde::Serialize)]
pub(crate) struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}
