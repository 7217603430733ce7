//! `/v1/admin/projects`: the operator creates tenants.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{AppState, OperatorAuth};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult, Json};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/projects", post(create))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    name: String,
}

#[derive(Serialize)]
struct CreatedProject {
    id: String,
    name: String,
    secret_key: String,
    created_at: String,
}

pub fn check_project_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "must be 1 to 200 characters without control characters",
        ));
    }
    Ok(name.to_string())
}

async fn create(
    State(app): State<AppState>,
    _operator: OperatorAuth,
    Json(body): Json<CreateProject>,
) -> ApiResult<(StatusCode, Json<CreatedProject>)> {
    let name = check_project_name(&body.name)?;
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
