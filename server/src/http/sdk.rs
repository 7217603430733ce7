//! `/v1/sdk/*`: the endpoints the browser SDK calls with a connect session
//! token. They answer CORS preflights for any origin and put
//! `Access-Control-Allow-Origin` on every answer, errors included, so a page
//! refused with `origin_not_allowed` can read why; data goes only to the
//! session's allowed origins, which the `SessionAuth` extractor enforces.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{bearer, AppState, AuthGuard};
use crate::clock::rfc3339;
use crate::connect;
use crate::connections;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::error::{Json, Path, Query};
use crate::integrations::IntegrationSpec;
use crate::store::{self, ConnectionRow, SessionLookup, SessionRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sdk/apps", get(apps).options(preflight))
        .route("/v1/sdk/connections", get(connections).options(preflight))
        .route(
            "/v1/sdk/connections/{id}",
            axum::routing::delete(disconnect).options(preflight),
        )
        .route(
            "/v1/sdk/connect",
            axum::routing::post(start).options(preflight),
        )
        .route(
            "/v1/sdk/connect/{attempt_id}",
            get(attempt_status).options(preflight),
        )
        .route(
            "/v1/sdk/connect/{attempt_id}/cancel",
            axum::routing::post(cancel_attempt).options(preflight),
        )
        .route(
            "/v1/sdk/functions/{name}/invoke",
            axum::routing::post(invoke_function).options(preflight),
        )
        .layer(middleware::from_fn(allow_origin))
}

/// The `Origin` a browser sent, unless it is the opaque `null`.
fn request_origin(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| !o.is_empty() && *o != "null")
}

async fn allow_origin(request: Request, next: Next) -> Response {
    let origin = request_origin(request.headers()).and_then(|o| HeaderValue::from_str(o).ok());
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, DELETE"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

/// A request bearing a valid session token, from one of its allowed origins.
pub struct SessionAuth {
    pub session: SessionRow,
    pub origin: String,
}

impl FromRequestParts<AppState> for SessionAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let presented = bearer(&parts.headers).unwrap_or("");
        let guard = AuthGuard::check(app, parts, presented)?;
        let session = match app.store.authenticate_session(presented, app.now()).await? {
            SessionLookup::Valid(session) => session,
            SessionLookup::Expired => {
                return Err(ApiError::new(
                    ErrorCode::SessionExpired,
                    "the connect session has expired; get a new session token",
                ))
            }
            SessionLookup::Unknown => {
                return Err(guard.failed(ApiError::new(
                    ErrorCode::Unauthorized,
                    "the session token is missing or not valid; mint a new connect session",
                )))
            }
        };
        let Some(origin) = request_origin(&parts.headers) else {
            return Err(ApiError::new(
                ErrorCode::OriginNotAllowed,
                "the request came without a page origin: the SDK's endpoints answer only \
                 pages in the browser, on one of the session's allowed_origins",
            ));
        };
        if !session.allowed_origins.iter().any(|o| o == origin) {
            return Err(ApiError::new(
                ErrorCode::OriginNotAllowed,
                format!("this page's origin ({origin}) is not one of the connect session's allowed_origins"),
            ));
        }
        let origin = origin.to_string();
        Ok(SessionAuth { session, origin })
    }
}

/// An app as the SDK shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(utoipa::ToSchema)]
struct AppView {
    key: String,
    label: String,
    description: Option<String>,
    logo_url: Option<String>,
    auth_type: String,
    multiple_accounts: bool,
}

/// A connected account as the SDK shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(utoipa::ToSchema)]
struct ConnectedAccountView {
    id: String,
    app: String,
    label: Option<String>,
    status: String,
    scopes: Vec<String>,
    created_at: String,
}

impl From<ConnectionRow> for ConnectedAccountView {
    fn from(row: ConnectionRow) -> Self {
        ConnectedAccountView {
            id: row.id,
            app: row.integration,
            label: row.label,
            status: row.status,
            scopes: row.scopes,
            created_at: rfc3339(row.created_at),
        }
    }
}

#[utoipa::path(get, path = "/v1/sdk/apps", tag = "sdk", summary = "The apps the session may connect (session token)", responses((status = 200, description = "The apps", body = Vec<AppView>), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn apps(State(app): State<AppState>, auth: SessionAuth) -> ApiResult<Json<Vec<AppView>>> {
    let rows = app
        .store
        .list_integrations(&auth.session.project_id)
        .await?;
    let mut out = Vec::new();
    for row in rows
        .into_iter()
        .filter(|r| connections::session_allows(&auth.session, &r.key))
    {
        let settings =
            IntegrationSpec::parse(&row.auth_type, &row.config).map_err(ApiError::internal)?;
        out.push(AppView {
            key: row.key,
            label: settings.label,
            description: settings.description,
            logo_url: settings.logo_url,
            auth_type: row.auth_type,
            multiple_accounts: settings.multiple_accounts,
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionsParams {
    app: Option<String>,
}

/// The end user's own connected accounts (`connections::end_users_connections`).
#[utoipa::path(get, path = "/v1/sdk/connections", tag = "sdk", summary = "The end user's connected accounts (session token)", params(("app" = Option<String>, Query, description = "Only this app's")), responses((status = 200, description = "The accounts", body = Vec<ConnectedAccountView>), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn connections(
    State(app): State<AppState>,
    auth: SessionAuth,
    Query(params): Query<ConnectionsParams>,
) -> ApiResult<Json<Vec<ConnectedAccountView>>> {
    let rows =
        connections::end_users_connections(&app, &auth.session, params.app.as_deref()).await?;
    Ok(Json(
        rows.into_iter().map(ConnectedAccountView::from).collect(),
    ))
}

#[utoipa::path(delete, path = "/v1/sdk/connections/{id}", tag = "sdk", summary = "Disconnect one of the end user's accounts (session token)", params(("id" = String, Path, description = "The connection's id")), responses((status = 204, description = "Disconnected"), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn disconnect(
    State(app): State<AppState>,
    auth: SessionAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let connection = connections::end_users_connection(&app, &auth.session, &id, None).await?;
    if crate::connections::disconnect(&app, &connection, "disconnected_by_end_user").await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("connected account"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[derive(utoipa::ToSchema)]
struct StartBody {
    app: String,
    connected_account_id: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/v1/sdk/connect", tag = "sdk", summary = "Start a connect attempt (session token)", request_body = StartBody, responses((status = 201, description = "The attempt", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn start(
    State(app): State<AppState>,
    auth: SessionAuth,
    Json(body): Json<StartBody>,
) -> ApiResult<(StatusCode, Json<connect::StartedAttempt>)> {
    if body.params.len() > 20
        || body
            .params
            .iter()
            .any(|(k, v)| k.len() > 64 || v.len() > 512)
    {
        return Err(ApiError::field(
            "params",
            "at most 20 parameters, names up to 64 and values up to 512 characters",
        ));
    }
    if let Err(wait) = app
        .limiters
        .attempts
        .take(&auth.session.project_id, app.now_precise())
    {
        return Err(ApiError::rate_limited(
            "too many connect attempts for this project; try again later",
            wait,
        ));
    }
    let started = connect::start(
        &app,
        &auth.session,
        &auth.origin,
        &body.app,
        body.connected_account_id.as_deref(),
        &body.params,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(started)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(utoipa::ToSchema)]
struct AttemptStatusView {
    id: String,
    status: String,
    /// Whether the popup went on to the provider (`connect::reached_provider`).
    reached_provider: bool,
    connected_account_id: Option<String>,
    error: Option<AttemptError>,
}

impl AttemptStatusView {
    fn new(attempt: store::AttemptRow, now: i64) -> AttemptStatusView {
        AttemptStatusView {
            status: connect::visible_status(&attempt, now).to_string(),
            reached_provider: connect::reached_provider(&attempt),
            error: attempt.error_code.map(|code| AttemptError {
                code,
                message: attempt.error_message.unwrap_or_default(),
                provider_code: attempt.provider_code,
            }),
            id: attempt.id,
            connected_account_id: attempt.connection_id,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(utoipa::ToSchema)]
struct AttemptError {
    code: String,
    message: String,
    provider_code: Option<String>,
}

/// How an attempt ended, or that it has not yet: the SDK's source of truth
/// when the popup's message cannot reach it.
#[utoipa::path(get, path = "/v1/sdk/connect/{attempt_id}", tag = "sdk", summary = "A connect attempt's status (session token)", params(("attempt_id" = String, Path, description = "The attempt's id")), responses((status = 200, description = "The status", body = AttemptStatusView), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn attempt_status(
    State(app): State<AppState>,
    auth: SessionAuth,
    Path(attempt_id): Path<String>,
) -> ApiResult<Json<AttemptStatusView>> {
    let attempt = connect::session_attempt(&app, &auth.session, &attempt_id).await?;
    Ok(Json(AttemptStatusView::new(attempt, app.now())))
}

/// The page gave up waiting (`connectApp`'s `signal`): see `connect::cancel`.
#[utoipa::path(post, path = "/v1/sdk/connect/{attempt_id}/cancel", tag = "sdk", summary = "Give up a connect attempt (session token)", params(("attempt_id" = String, Path, description = "The attempt's id")), responses((status = 200, description = "The status", body = AttemptStatusView), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn cancel_attempt(
    State(app): State<AppState>,
    auth: SessionAuth,
    Path(attempt_id): Path<String>,
) -> ApiResult<Json<AttemptStatusView>> {
    let attempt = connect::cancel(&app, &auth.session, &attempt_id).await?;
    Ok(Json(AttemptStatusView::new(attempt, app.now())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[derive(utoipa::ToSchema)]
struct InvokeBody {
    connected_account_id: Option<String>,
    #[serde(default)]
    input: serde_json::Value,
    page: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[derive(utoipa::ToSchema)]
struct InvokedView {
    output: serde_json::Value,
    next_page: Option<String>,
}

/// `invokeFunction`: a declared function on one of the end user's own accounts.
#[utoipa::path(post, path = "/v1/sdk/functions/{name}/invoke", tag = "sdk", summary = "invokeFunction: a declared function on the end user's account (session token)", request_body = InvokeBody, params(("name" = String, Path, description = "The function's name")), responses((status = 200, description = "Its output and the next page", body = InvokedView), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn invoke_function(
    State(app): State<AppState>,
    auth: SessionAuth,
    Path(name): Path<String>,
    Json(body): Json<InvokeBody>,
) -> ApiResult<Json<InvokedView>> {
    let input = if body.input.is_null() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        body.input
    };
    let invoked = crate::functions::invoke_for_end_user(
        &app,
        &auth.session,
        &name,
        body.connected_account_id.as_deref(),
        &input,
        body.page.as_deref(),
    )
    .await?;
    Ok(Json(InvokedView {
        output: invoked.output,
        next_page: invoked.next_page,
    }))
}
