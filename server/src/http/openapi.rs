//! `GET /v1/openapi.json`: the HTTP API described by OpenAPI 3.1, generated
//! by `utoipa` from the handlers' own annotations (each next to its route) and
//! the types they read and answer. `tests/openapi.rs` fails when a route of
//! the router is missing from it.

use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;

use super::AppState;

/// The product's error shape: every error the API answers.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorResponse {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorDetail {
    /// A code of the contract's list, such as `validation_failed`.
    code: String,
    message: String,
    /// For `validation_failed`: each failing field and what is wrong with it.
    fields: Option<std::collections::BTreeMap<String, String>>,
    /// The provider's own error code.
    provider_code: Option<String>,
    /// For `upstream_error`: the provider API's status.
    upstream_status: Option<u16>,
    /// For `upstream_error`: the start of its answer, credentials removed.
    upstream_body: Option<String>,
}

/// A list: `{ data, next_cursor }`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ObjectList {
    data: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct KeyList {
    data: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ConnectionList {
    data: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventList {
    data: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Plugboard",
        description = "Connect your users' accounts at other services, and act on them, without holding a credential."
    ),
    paths(
        document,
        super::healthz,
        super::projects::create,
        super::keys::create,
        super::keys::list,
        super::keys::revoke,
        super::integrations::create,
        super::integrations::list,
        super::integrations::read,
        super::integrations::update,
        super::integrations::remove,
        super::integrations::test,
        super::connect_sessions::create,
        super::connections::list,
        super::connections::read,
        super::connections::remove,
        super::connections::token,
        super::connections::events,
        super::functions::create,
        super::functions::list,
        super::functions::read,
        super::functions::update,
        super::functions::remove,
        super::functions::invoke,
        super::proxy::forward,
        super::sdk::apps,
        super::sdk::connections,
        super::sdk::disconnect,
        super::sdk::start,
        super::sdk::attempt_status,
        super::sdk::cancel_attempt,
        super::sdk::invoke_function,
        super::pages::popup,
        super::pages::bind,
        super::pages::callback,
        super::pages::credential_form,
        super::pages::submit_credential_form,
    )
)]
struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(document))
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", summary = "This OpenAPI document",
    responses((status = 200, description = "OpenAPI 3.1", body = serde_json::Value)))]
async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
