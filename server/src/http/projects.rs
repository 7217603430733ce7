//! `/v1/admin/projects`: the operator creates tenants.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{AppState, OperatorAuth};
use crate::clock::rfc3339;
use crate::error::ApiResult;
use crate::http::error::Json;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/projects", post(create))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
struct CreateProject {
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct CreatedProject {
    id: String,
    name: String,
    secret_key: String,
    created_at: String,
}

#[utoipa::path(post, path = "/v1/admin/projects", tag = "admin", summary = "Create a project (operator token)", request_body = CreateProject, responses((status = 201, description = "The project and its first secret key", body = CreatedProject), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn create(
    State(app): State<AppState>,
    _operator: OperatorAuth,
    Json(body): Json<CreateProject>,
) -> ApiResult<(StatusCode, Json<CreatedProject>)> {
    let name = crate::projects::check_name(&body.name)?;
    let (project, _key, minted) = app.store.create_project(&name, app.now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedProject {
            id: project.id,
            name: project.name,
            secret_key: minted.token,
            created_at: rfc3339(project.created_at),
        }),
    ))
}
