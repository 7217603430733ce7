//! `/v1/functions`: a project's declared functions, and running them on a
//! connection (`crate::functions`) — the built-in `http.request` included.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AppState, Page, ProjectAuth};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::functions;
use crate::http::error::{Json, Path};
use crate::store::FunctionRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/functions", post(create).get(list))
        .route(
            "/v1/functions/{name}",
            get(read).patch(update).delete(remove),
        )
        .route("/v1/functions/{name}/invoke", post(invoke))
}

/// A function as read: its definition, plus `id`, `name`, `integration` and times.
fn view(row: &FunctionRow) -> ApiResult<Value> {
    let config: Map<String, Value> =
        serde_json::from_str(&row.config).map_err(ApiError::internal)?;
    let mut out = Map::new();
    out.insert("id".into(), Value::String(row.id.clone()));
    out.insert("name".into(), Value::String(row.name.clone()));
    out.insert("integration".into(), Value::String(row.integration.clone()));
    out.extend(config);
    out.insert("created_at".into(), Value::String(rfc3339(row.created_at)));
    out.insert("updated_at".into(), Value::String(rfc3339(row.updated_at)));
    Ok(Value::Object(out))
}

fn as_object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::field("body", "must be a JSON object")),
    }
}

/// The integration a function names, in the caller's project.
async fn integration_id(app: &AppState, project_id: &str, key: &str) -> ApiResult<String> {
    app.store
        .get_integration_by_key(project_id, key)
        .await?
        .map(|i| i.id)
        .ok_or_else(|| {
            ApiError::field("integration", "no integration of this project has this key")
        })
}

#[utoipa::path(post, path = "/v1/functions", tag = "functions", summary = "Declare a function", request_body = serde_json::Value, responses((status = 201, description = "The function as read", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn create(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let valid = functions::validate(&as_object(body)?).map_err(ApiError::validation)?;
    let integration = integration_id(&app, &auth.project_id, &valid.integration).await?;
    let config = Value::Object(valid.config).to_string();
    match app
        .store
        .insert_function(
            &auth.project_id,
            &integration,
            &valid.name,
            &config,
            app.now(),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_unique_violation() => {
            return Err(ApiError::conflict(format!(
                "a function named `{}` already exists in this project",
                valid.name
            )))
        }
        Err(e) => return Err(e.into()),
    }
    let row = find(&app, &auth.project_id, &valid.name).await?;
    Ok((StatusCode::CREATED, Json(view(&row)?)))
}

async fn find(app: &AppState, project_id: &str, name: &str) -> ApiResult<FunctionRow> {
    app.store
        .get_function(project_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("function"))
}

#[utoipa::path(get, path = "/v1/functions", tag = "functions", summary = "List the project's functions", responses((status = 200, description = "The functions", body = crate::http::openapi::ObjectList), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn list(State(app): State<AppState>, auth: ProjectAuth) -> ApiResult<Json<Page<Value>>> {
    let data = app
        .store
        .list_functions(&auth.project_id)
        .await?
        .iter()
        .map(view)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Page {
        data,
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions", summary = "Read a function", params(("name" = String, Path, description = "The function's name")), responses((status = 200, description = "The function as read", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn read(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&find(&app, &auth.project_id, &name).await?)?))
}

/// A JSON merge patch over the definition, validated whole; the name stays.
#[utoipa::path(patch, path = "/v1/functions/{name}", tag = "functions", summary = "Change a function (JSON merge patch)", request_body = serde_json::Value, params(("name" = String, Path, description = "The function's name")), responses((status = 200, description = "The function as read", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn update(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let patch = as_object(body)?;
    let row = find(&app, &auth.project_id, &name).await?;
    if patch.get("name").is_some_and(|n| n.as_str() != Some(&name)) {
        return Err(ApiError::field(
            "name",
            "cannot be changed; create a new function instead",
        ));
    }
    let mut merged: Map<String, Value> =
        serde_json::from_str(&row.config).map_err(ApiError::internal)?;
    merged.insert("name".into(), Value::String(name.clone()));
    merged.insert("integration".into(), Value::String(row.integration.clone()));
    for (field, value) in patch {
        if value.is_null() {
            merged.remove(&field);
        } else {
            merged.insert(field, value);
        }
    }
    let valid = functions::validate(&merged).map_err(ApiError::validation)?;
    let integration = integration_id(&app, &auth.project_id, &valid.integration).await?;
    let config = Value::Object(valid.config).to_string();
    if !app
        .store
        .update_function(&auth.project_id, &name, &integration, &config, app.now())
        .await?
    {
        return Err(ApiError::not_found("function"));
    }
    Ok(Json(view(&find(&app, &auth.project_id, &name).await?)?))
}

#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions", summary = "Delete a function", params(("name" = String, Path, description = "The function's name")), responses((status = 204, description = "Deleted"), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn remove(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if app.store.delete_function(&auth.project_id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("function"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
struct InvokeBody {
    connection_id: String,
    #[serde(default)]
    input: Value,
    page: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct InvokedView {
    output: Value,
    next_page: Option<String>,
}

#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions", summary = "Run a function (or http.request) on a connection", request_body = InvokeBody, params(("name" = String, Path, description = "The function's name, or http.request")), responses((status = 200, description = "Its output and the next page", body = InvokedView), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn invoke(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Path(name): Path<String>,
    Json(body): Json<InvokeBody>,
) -> ApiResult<Json<InvokedView>> {
    let input = if body.input.is_null() {
        Value::Object(Map::new())
    } else {
        body.input
    };
    let invoked = functions::invoke_for_project(
        &app,
        &auth.project_id,
        &name,
        &body.connection_id,
        &input,
        body.page.as_deref(),
    )
    .await?;
    Ok(Json(InvokedView {
        output: invoked.output,
        next_page: invoked.next_page,
    }))
}
