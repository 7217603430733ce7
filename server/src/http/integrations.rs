//! `/v1/integrations`: a project's configured providers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{AppState, Page, ProjectAuth};
use crate::clock::rfc3339;
use crate::connections::{self, IntegrationDeleted};
use crate::error::{ApiError, ApiResult};
use crate::http::error::{Json, Path, Query};
use crate::ids;
use crate::integrations::{self as integration, AuthType, ValidIntegration};
use crate::store::{
    IntegrationRow, IntegrationUpdate, ProjectConnection, RetiredClient, UpdateOutcome,
};
use crate::tokens;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/integrations", get(list).post(create))
        .route(
            "/v1/integrations/{key}",
            get(read).patch(update).delete(remove),
        )
        .route("/v1/integrations/{key}/test", post(test))
}

/// "Test": the checks that need no browser (`checks::test_integration`).
#[utoipa::path(post, path = "/v1/integrations/{key}/test", tag = "integrations", summary = "Test an integration's settings", params(("key" = String, Path, description = "The integration's key")), responses((status = 200, description = "Each step run", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn test(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(key): Path<String>,
) -> ApiResult<Json<crate::checks::TestReport>> {
    let row = find(&app, &auth.project_id, &key).await?;
    Ok(Json(crate::checks::test_integration(&app, &row).await?))
}

/// An integration as read: its settings without secrets, plus `id` and, for
/// the OAuth types, `callback_url`.
fn view(app: &AppState, row: &IntegrationRow) -> ApiResult<Value> {
    let config: Map<String, Value> =
        serde_json::from_str(&row.config).map_err(ApiError::internal)?;
    let mut out = Map::new();
    out.insert("id".into(), Value::String(row.id.clone()));
    out.insert("key".into(), Value::String(row.key.clone()));
    out.insert("auth_type".into(), Value::String(row.auth_type.clone()));
    out.extend(config);
    if AuthType::parse(&row.auth_type).is_some_and(AuthType::is_oauth) {
        out.insert(
            "callback_url".into(),
            Value::String(crate::app::callback_url(&app.settings, &row.id)),
        );
    }
    out.insert("created_at".into(), Value::String(rfc3339(row.created_at)));
    out.insert("updated_at".into(), Value::String(rfc3339(row.updated_at)));
    Ok(Value::Object(out))
}

fn as_object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::new(
            crate::error::ErrorCode::ValidationFailed,
            "the body must be a JSON object",
        )),
    }
}

fn secret_changes(valid: &ValidIntegration) -> Vec<(&str, Option<&str>)> {
    valid
        .secrets
        .iter()
        .map(|(field, value)| (*field, Some(value.expose())))
        .collect()
}

#[utoipa::path(post, path = "/v1/integrations", tag = "integrations", summary = "Create an integration", request_body = serde_json::Value, responses((status = 201, description = "The integration as read", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn create(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input = as_object(body)?;
    let valid = integration::validate(&input, &[], &app.settings.allow_hosts)
        .map_err(ApiError::validation)?;
    let auth_type = AuthType::parse(&valid.auth_type)
        .ok_or_else(|| ApiError::internal("a validated integration has an unknown auth_type"))?;
    // A grant without an end user is saved only with a token that works.
    let first = if auth_type.is_project_level() {
        Some(tokens::first_grant(&app, auth_type, &valid.config, &valid.secrets).await?)
    } else {
        None
    };
    let now = app.now();
    // The id is always the server's: any `id` in the body is ignored.
    let row = IntegrationRow {
        id: ids::new_id("int"),
        project_id: auth.project_id.clone(),
        key: valid.key.clone(),
        auth_type: valid.auth_type.clone(),
        config: Value::Object(valid.config.clone()).to_string(),
        created_at: now,
        updated_at: now,
        client_generation: 0,
    };
    let connection_id = ids::new_id("conn");
    let label = valid
        .config
        .get("label")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let sealed: Vec<(&str, &str)> = first
        .as_ref()
        .map(|f| f.secrets.iter().map(|(k, v)| (*k, v.expose())).collect())
        .unwrap_or_default();
    let connection = first.as_ref().map(|f| ProjectConnection {
        id: &connection_id,
        label: &label,
        scopes: &f.scopes,
        token_type: &f.token_type,
        token_expires_at: f.expires_at,
        secrets: &sealed,
    });
    match app
        .store
        .insert_integration(
            &app.vault,
            &row,
            &secret_changes(&valid),
            connection.as_ref(),
        )
        .await
    {
        Ok(()) => Ok((StatusCode::CREATED, Json(view(&app, &row)?))),
        Err(e) if e.is_unique_violation() => Err(ApiError::conflict(format!(
            "an integration with key `{}` already exists in this project",
            valid.key
        ))),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/v1/integrations", tag = "integrations", summary = "List integrations", responses((status = 200, description = "The integrations", body = crate::http::openapi::ObjectList), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn list(State(app): State<AppState>, auth: ProjectAuth) -> ApiResult<Json<Page<Value>>> {
    let rows = app.store.list_integrations(&auth.project_id).await?;
    let data = rows
        .iter()
        .map(|r| view(&app, r))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Page {
        data,
        next_cursor: None,
    }))
}

async fn find(app: &AppState, project_id: &str, key: &str) -> ApiResult<IntegrationRow> {
    app.store
        .get_integration_by_key(project_id, key)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))
}

#[utoipa::path(get, path = "/v1/integrations/{key}", tag = "integrations", summary = "Read an integration", params(("key" = String, Path, description = "The integration's key")), responses((status = 200, description = "The integration as read", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn read(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = find(&app, &auth.project_id, &key).await?;
    Ok(Json(view(&app, &row)?))
}

#[utoipa::path(patch, path = "/v1/integrations/{key}", tag = "integrations", summary = "Change an integration (JSON merge patch)", request_body = serde_json::Value, params(("key" = String, Path, description = "The integration's key")), responses((status = 200, description = "The integration as read", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn update(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let patch = as_object(body)?;
    let row = find(&app, &auth.project_id, &key).await?;
    let stored: Map<String, Value> =
        serde_json::from_str(&row.config).map_err(ApiError::internal)?;
    let merged = integration::merge_patch(&row.key, &row.auth_type, &stored, &patch)
        .map_err(ApiError::validation)?;
    let existing_secrets = app.store.integration_secret_fields(&row.id).await?;
    let valid = integration::validate(&merged, &existing_secrets, &app.settings.allow_hosts)
        .map_err(ApiError::validation)?;
    let new_secret = valid
        .secrets
        .iter()
        .find(|(field, _)| *field == "client_secret")
        .map(|(_, value)| value.expose());
    // SECURITY 34: where a URL that receives a credential changes, whoever
    // changes it must know the client secret; the connections made before
    // keep the client they were made with, so nothing of theirs goes there.
    let repointed = integration::repointed_fields(&stored, &valid.config);
    let has_client_secret = existing_secrets.iter().any(|f| f == "client_secret");
    if !repointed.is_empty() && has_client_secret && new_secret.is_none() {
        return Err(ApiError::validation(
            repointed
                .iter()
                .map(|f| {
                    (
                        f.to_string(),
                        "changing it requires client_secret in the same request".to_string(),
                    )
                })
                .collect(),
        ));
    }
    // A grant without an end user keeps a working token: a change to its
    // token request is saved only if the provider issues one for it.
    let auth_type = AuthType::parse(&row.auth_type)
        .ok_or_else(|| ApiError::internal("a stored integration has an unknown auth_type"))?;
    let new_grant = if auth_type.is_project_level()
        && tokens::grant_needs_new_token(&stored, &valid.config, !valid.secrets.is_empty())
    {
        let secrets =
            tokens::grant_secrets_after_change(&app, &row.id, auth_type, &valid.secrets).await?;
        Some(tokens::first_grant(&app, auth_type, &valid.config, &secrets).await?)
    } else {
        None
    };
    let old_client_id = stored
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let new_client_id = valid
        .config
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let changed = integration::client_changed(&stored, &valid.config);
    let old_secret = if changed {
        app.store
            .integration_secrets(&app.vault, &row.id)
            .await?
            .remove("client_secret")
    } else {
        None
    };
    let retire = changed.then(|| RetiredClient {
        client_id: old_client_id,
        config: &row.config,
        client_secret: old_secret.as_deref(),
    });
    let now = app.now();
    let config = Value::Object(valid.config.clone()).to_string();
    let changes = secret_changes(&valid);
    let outcome = app
        .store
        .update_integration(
            &app.vault,
            IntegrationUpdate {
                project_id: &auth.project_id,
                id: &row.id,
                config: &config,
                now,
                secrets: &changes,
                generation: row.client_generation,
                retire,
                rotate: new_secret.map(|secret| (new_client_id, secret)),
            },
        )
        .await?;
    match outcome {
        UpdateOutcome::Updated => {}
        UpdateOutcome::NotFound => return Err(ApiError::not_found("integration")),
        UpdateOutcome::Raced => {
            return Err(ApiError::conflict(
                "the integration was changed by another request meanwhile; read it and try again",
            ))
        }
    }
    let row = IntegrationRow {
        config,
        updated_at: now,
        client_generation: row.client_generation + i64::from(changed),
        ..row
    };
    if let Some(grant) = &new_grant {
        tokens::store_new_grant(
            &app,
            &row.project_id,
            &row.id,
            &row.key,
            row.client_generation,
            grant,
        )
        .await?;
    }
    Ok(Json(view(&app, &row)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    #[serde(default)]
    cascade: bool,
}

#[utoipa::path(delete, path = "/v1/integrations/{key}", tag = "integrations", summary = "Delete an integration", params(("key" = String, Path, description = "The integration's key"), ("cascade" = Option<bool>, Query, description = "Disconnect its connections first")), responses((status = 204, description = "Deleted"), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn remove(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(key): Path<String>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<StatusCode> {
    match connections::delete_integration(&app, &auth.project_id, &key, params.cascade).await? {
        IntegrationDeleted::Deleted => Ok(StatusCode::NO_CONTENT),
        IntegrationDeleted::NotFound => Err(ApiError::not_found("integration")),
        IntegrationDeleted::HasConnections(n) => Err(ApiError::conflict(format!(
            "the integration still has {n} connection(s); delete them first or pass ?cascade=true to disconnect them all"
        ))),
    }
}
