//! `ANY /v1/proxy/{connection_id}/{path}`: the customer's backend calls a
//! provider's API through a connection (`crate::proxy`). The upstream's
//! answer comes back as it came, its body streamed; the proxy's own errors
//! carry `Plugboard-Error: <code>`.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::{AppState, ProjectAuth};
use crate::error::ApiError;
use crate::http::error::Path;
use crate::proxy::{self, ProxyRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/proxy/{connection_id}", any(forward))
        .route("/v1/proxy/{connection_id}/", any(forward))
        .route("/v1/proxy/{connection_id}/{*path}", any(forward))
}

/// The proxy's own errors name themselves, apart from the upstream's answers.
fn own_error(error: ApiError) -> Response {
    let code = error.code.as_str();
    let mut response = error.into_response();
    response.headers_mut().insert(
        HeaderName::from_static("plugboard-error"),
        HeaderValue::from_static(code),
    );
    response
}

#[utoipa::path(method(get, post, put, patch, delete), path = "/v1/proxy/{connection_id}/{path}", tag = "proxy", summary = "The provider's API with the connection's credentials; the upstream's answer passed back as it came", params(("connection_id" = String, Path, description = "The connection's id"), ("path" = String, Path, description = "Appended to the connection's base URL"), ("Plugboard-Retries" = Option<u8>, Header, description = "0 to 3 retries on 429 and 5xx")), responses((status = "default", description = "The upstream's answer as it came, or (with Plugboard-Error) the proxy's own error")))]
async fn forward(
    State(app): State<AppState>,
    auth: Result<ProjectAuth, ApiError>,
    path: Result<Path<Vec<(String, String)>>, ApiError>,
    request: Request,
) -> Response {
    let auth = match auth {
        Ok(auth) => auth,
        Err(e) => return own_error(e),
    };
    let connection_id = match path {
        Ok(Path(params)) => params
            .into_iter()
            .find(|(name, _)| name == "connection_id")
            .map(|(_, value)| value)
            .unwrap_or_default(),
        Err(e) => return own_error(e),
    };
    let (parts, body) = request.into_parts();
    // The path as sent, still encoded: what follows the connection id.
    let raw = parts.uri.path();
    let prefix = format!("/v1/proxy/{connection_id}");
    let rest = raw.strip_prefix(prefix.as_str()).unwrap_or("/");
    let path = if rest.is_empty() { "/" } else { rest }.to_string();
    // The body was read whole, within the size and time limits, before routing.
    let body: Bytes = match axum::body::to_bytes(body, super::MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return own_error(ApiError::new(
                crate::error::ErrorCode::BadRequest,
                "the body could not be read",
            ))
        }
    };
    let proxied = ProxyRequest {
        method: parts.method.clone(),
        path,
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body: body.to_vec(),
    };
    match proxy::forward(&app, &auth.project_id, &connection_id, proxied).await {
        Ok(upstream) => {
            let status = axum::http::StatusCode::from_u16(upstream.status)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            let mut headers = upstream.headers.clone();
            for name in proxy::HOP_BY_HOP {
                headers.remove(name);
            }
            let mut response = Response::new(Body::from_stream(upstream.into_stream()));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(e) => own_error(e),
    }
}
