//! `/v1/connections` and `/v1/events`: a project's connections and what happened to them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{page_limit, AppState, Page, ProjectAuth};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::http::error::{Json, Path, Query};
use crate::integrations::AuthType;
use crate::store::{ConnectionCursor, ConnectionRow, EventRow};
use crate::tokens::FreshCredentials;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/connections", get(list))
        .route("/v1/connections/{id}", get(read).delete(remove))
        .route("/v1/connections/{id}/token", post(token))
        .route("/v1/events", get(events))
}

/// A connection as read.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectionView {
    pub id: String,
    pub integration: String,
    pub end_user_id: Option<String>,
    pub label: Option<String>,
    pub status: String,
    pub scopes: Vec<String>,
    pub created_at: String,
}

impl From<ConnectionRow> for ConnectionView {
    fn from(row: ConnectionRow) -> Self {
        ConnectionView {
            id: row.id,
            integration: row.integration,
            end_user_id: row.end_user_id,
            label: row.label,
            status: row.status,
            scopes: row.scopes,
            created_at: rfc3339(row.created_at),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    end_user_id: Option<String>,
    integration: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

fn encode_cursor(text: String) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn bad_cursor() -> ApiError {
    ApiError::field("cursor", "is not a cursor this list returned")
}

#[utoipa::path(get, path = "/v1/connections", tag = "connections", summary = "List connections", params(("end_user_id" = Option<String>, Query, description = "Only this end user's"), ("integration" = Option<String>, Query, description = "Only this integration's (its key)"), ("cursor" = Option<String>, Query, description = "From an earlier page"), ("limit" = Option<i64>, Query, description = "1 to 200 (default 50)")), responses((status = 200, description = "A page of connections", body = crate::http::openapi::ConnectionList), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn list(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Page<ConnectionView>>> {
    let limit = page_limit(params.limit)?;
    let cursor = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let text = decode_cursor(c).ok_or_else(bad_cursor)?;
            let (time, id) = text.split_once(':').ok_or_else(bad_cursor)?;
            Some(ConnectionCursor {
                created_at: time.parse().map_err(|_| bad_cursor())?,
                id: id.to_string(),
            })
        }
    };
    let mut rows = app
        .store
        .list_connections(
            &auth.project_id,
            params.end_user_id.as_deref(),
            params.integration.as_deref(),
            cursor.as_ref(),
            limit + 1,
        )
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|r| encode_cursor(format!("{}:{}", r.created_at, r.id)))
        })
        .flatten();
    Ok(Json(Page {
        data: rows.into_iter().map(ConnectionView::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/connections/{id}", tag = "connections", summary = "Read a connection", params(("id" = String, Path, description = "The connection's id")), responses((status = 200, description = "The connection", body = ConnectionView), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn read(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    let row = app
        .store
        .get_connection(&auth.project_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    Ok(Json(row.into()))
}

#[utoipa::path(delete, path = "/v1/connections/{id}", tag = "connections", summary = "Disconnect (revoke, then delete)", params(("id" = String, Path, description = "The connection's id")), responses((status = 204, description = "Deleted"), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn remove(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let connection = app
        .store
        .get_connection(&auth.project_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    if crate::connections::disconnect(&app, &connection, "deleted").await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("connection"))
    }
}

/// Fresh credentials for the caller to use at the provider itself: for
/// OAuth `{ auth_type, access_token, token_type, expires_at }`, for the other
/// types `{ auth_type, <each credential field> }`; never a refresh token or a
/// client secret.
#[utoipa::path(post, path = "/v1/connections/{id}/token", tag = "connections", summary = "Fresh credentials to call the provider yourself", params(("id" = String, Path, description = "The connection's id")), responses((status = 200, description = "For OAuth: auth_type, access_token, token_type, expires_at; for the other types their fields", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn token(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Map<String, serde_json::Value>>> {
    let connection = app
        .store
        .get_connection(&auth.project_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    let integration = app
        .store
        .get_integration_by_id(&connection.integration_id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    let auth_type = AuthType::parse(&integration.auth_type)
        .ok_or_else(|| ApiError::internal("an integration of an unknown auth type"))?;
    let mut view = serde_json::Map::new();
    view.insert("auth_type".into(), integration.auth_type.clone().into());
    match crate::tokens::fresh_credentials(&app, &connection.id, auth_type).await? {
        FreshCredentials::AccessToken(token) => {
            view.insert(
                "access_token".into(),
                token.access_token.expose().to_string().into(),
            );
            view.insert("token_type".into(), token.token_type.into());
            view.insert("expires_at".into(), token.expires_at.map(rfc3339).into());
        }
        FreshCredentials::Fields(fields) => {
            for (name, value) in fields {
                view.insert(name.into(), value.expose().to_string().into());
            }
        }
    }
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventParams {
    connection_id: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct EventView {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    connection_id: Option<String>,
    integration: Option<String>,
    end_user_id: Option<String>,
    data: serde_json::Value,
    created_at: String,
}

impl From<EventRow> for EventView {
    fn from(row: EventRow) -> Self {
        EventView {
            id: row.id,
            kind: row.kind,
            connection_id: row.connection_id,
            integration: row.integration,
            end_user_id: row.end_user_id,
            data: serde_json::from_str(&row.data).unwrap_or(serde_json::Value::Null),
            created_at: rfc3339(row.created_at),
        }
    }
}

/// The event log, oldest first; `next_cursor` continues after the last event
/// returned, so a client can poll it for new events.
#[utoipa::path(get, path = "/v1/events", tag = "events", summary = "The event log", params(("connection_id" = Option<String>, Query, description = "Only this connection's"), ("cursor" = Option<String>, Query, description = "From an earlier page"), ("limit" = Option<i64>, Query, description = "1 to 200 (default 50)")), responses((status = 200, description = "A page of events", body = crate::http::openapi::EventList), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn events(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Query(params): Query<EventParams>,
) -> ApiResult<Json<Page<EventView>>> {
    let limit = page_limit(params.limit)?;
    let after = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => decode_cursor(c)
            .and_then(|t| t.strip_prefix("e:").and_then(|n| n.parse::<i64>().ok()))
            .ok_or_else(bad_cursor)?,
    };
    let rows = app
        .store
        .list_events(
            &auth.project_id,
            params.connection_id.as_deref(),
            after,
            limit,
        )
        .await?;
    let next_cursor = rows
        .last()
        .map(|r| encode_cursor(format!("e:{}", r.seq)))
        .or(params.cursor);
    Ok(Json(Page {
        data: rows.into_iter().map(EventView::from).collect(),
        next_cursor,
    }))
}
