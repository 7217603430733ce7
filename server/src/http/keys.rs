//! `/v1/keys`: a project's secret keys. Several may be live at once so that a
//! key can be rotated; the last one is never revoked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::Serialize;

use super::{AppState, Page, ProjectAuth};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::http::error::{Json, Path};
use crate::store::{DeleteKey, SecretKeyRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/keys", get(list).post(create))
        .route("/v1/keys/{id}", delete(revoke))
}

#[derive(Serialize, utoipa::ToSchema)]
struct KeyView {
    id: String,
    /// The public start of the key, to tell keys apart.
    prefix: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
}

impl KeyView {
    fn from_row(row: SecretKeyRow, secret_key: Option<String>) -> Self {
        KeyView {
            id: row.id,
            prefix: row.prefix,
            created_at: rfc3339(row.created_at),
            secret_key,
        }
    }
}

/// `POST /v1/keys` takes no fields; a body, when sent, must be an empty JSON object.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
struct CreateKey {}

#[utoipa::path(post, path = "/v1/keys", tag = "keys", summary = "Create another secret key", request_body = CreateKey, responses((status = 201, description = "The key, with the secret shown once", body = KeyView), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn create(
    State(app): State<AppState>,
    auth: ProjectAuth,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice::<CreateKey>(&body).map_err(|e| {
            ApiError::new(
                crate::error::ErrorCode::ValidationFailed,
                format!("the body must be an empty JSON object or nothing: {e}"),
            )
        })?;
    }
    let (row, minted) = app
        .store
        .create_secret_key(&auth.project_id, app.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyView::from_row(row, Some(minted.token))),
    ))
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys", summary = "List the project's secret keys", responses((status = 200, description = "The keys", body = crate::http::openapi::KeyList), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn list(State(app): State<AppState>, auth: ProjectAuth) -> ApiResult<Json<Page<KeyView>>> {
    let rows = app.store.list_secret_keys(&auth.project_id).await?;
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|r| KeyView::from_row(r, None))
            .collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", summary = "Revoke a secret key (never the last)", params(("id" = String, Path, description = "The key's id")), responses((status = 204, description = "Revoked"), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn revoke(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    match app.store.delete_secret_key(&auth.project_id, &id).await? {
        DeleteKey::Deleted => Ok(StatusCode::NO_CONTENT),
        DeleteKey::NotFound => Err(ApiError::not_found("secret key")),
        DeleteKey::LastKey => Err(ApiError::conflict(
            "this is the project's last secret key; create another before revoking it",
        )),
    }
}
