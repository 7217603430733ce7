//! `ANY /v1/proxy/{connection_id}/{path}`: the customer's backend calls a
//! provider's API through a connection (`crate::proxy`). The upstream's
//! answer comes back as it came, its body streamed; the proxy's own errors
//! carry `Plugboard-Error: <code>`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use bytes::BytesMut;
use futures_util::StreamExt;

use super::{with_common_headers, AppState, ProjectAuth};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::outbound::OutboundError;
use crate::proxy::{self, CallerBody, ProxyRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/proxy/{connection_id}", any(forward))
        .route("/v1/proxy/{connection_id}/", any(forward))
        .route("/v1/proxy/{connection_id}/{*path}", any(forward))
}

/// Whether the router sends a request for `path` to [`forward`]: a
/// connection id follows `/v1/proxy/`.
pub(super) fn routed_here(path: &str) -> bool {
    path.strip_prefix("/v1/proxy/")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
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
pub(super) async fn forward(State(app): State<AppState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    forward_from(&app, request, peer).await
}

/// [`forward`] for a request that came on a connection from `peer`, as the
/// listener hands it over.
pub(super) async fn forward_from(
    app: &AppState,
    request: Request,
    peer: Option<std::net::SocketAddr>,
) -> Response {
    with_common_headers(answer(app, request, peer).await)
}

async fn answer(app: &AppState, request: Request, peer: Option<std::net::SocketAddr>) -> Response {
    if let Some(error) = super::too_large(request.uri(), request.headers()) {
        return own_error(error);
    }
    let (parts, body) = request.into_parts();
    let auth = match ProjectAuth::authenticate(app, &parts.headers, peer).await {
        Ok(auth) => auth,
        Err(e) => return own_error(e),
    };
    // The path as sent, still encoded: the connection id, then what follows it.
    let raw = parts.uri.path().strip_prefix("/v1/proxy/").unwrap_or("");
    let end = raw.bytes().position(|b| b == b'/').unwrap_or(raw.len());
    let (segment, rest) = raw.split_at(end);
    let connection_id = if segment.as_bytes().contains(&b'%') {
        match percent_encoding::percent_decode_str(segment).decode_utf8() {
            Ok(decoded) => decoded,
            Err(_) => return own_error(ApiError::not_found("connection")),
        }
    } else {
        std::borrow::Cow::Borrowed(segment)
    };
    let path = if rest.is_empty() { "/" } else { rest };
    let query = parts.uri.query();
    let mut path_and_query = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    path_and_query.push_str(path);
    if let Some(query) = query {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    let length = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (body, fault) = match caller_body(app, body, length).await {
        Ok(read) => read,
        Err(e) => return own_error(e),
    };
    let proxied = ProxyRequest {
        method: parts.method,
        path_and_query,
        headers: parts.headers,
        body,
    };
    match proxy::forward(app, &auth.project_id, &connection_id, proxied).await {
        Ok(mut upstream) => {
            let status = axum::http::StatusCode::from_u16(upstream.status)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            let mut headers = std::mem::take(&mut upstream.headers);
            proxy::drop_hop_by_hop(&mut headers);
            let mut response = Response::new(Body::new(upstream.into_body()));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        // The caller's own body failing is the caller's error, not the upstream's.
        Err(e) => own_error(fault.and_then(|fault| fault.take()).unwrap_or(e)),
    }
}

/// What went wrong with a streamed caller body, for the answer.
#[derive(Default, Clone)]
struct Fault(Arc<Mutex<Option<ApiError>>>);

impl Fault {
    fn set(&self, error: ApiError) {
        if let Ok(mut fault) = self.0.lock() {
            fault.get_or_insert(error);
        }
    }
    fn take(&self) -> Option<ApiError> {
        self.0.lock().ok().and_then(|mut fault| fault.take())
    }
}

fn body_too_large(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("a proxied body may be at most {max} bytes"),
    )
}

fn body_too_slow(limit: Duration) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTimeout,
        format!("the body did not arrive within {} seconds", limit.as_secs()),
    )
}

fn body_unreadable() -> ApiError {
    ApiError::new(ErrorCode::BadRequest, "the body could not be read")
}

/// The caller's body (not read by the router's layer for this route): whole
/// when it ends within the request size limit; beyond it, what was read
/// followed by the rest as it arrives — each within the body time limit (SECURITY 37) and
/// the outbound size limit, a failure recorded in the [`Fault`] answered with it.
async fn caller_body(
    app: &App,
    body: Body,
    length: Option<u64>,
) -> Result<(CallerBody, Option<Fault>), ApiError> {
    let max = app.outbound.limits().max_body_bytes;
    if length.is_some_and(|n| n > max as u64) {
        return Err(body_too_large(max));
    }
    use axum::body::HttpBody;
    if body.size_hint().exact() == Some(0) {
        return Ok((CallerBody::Whole(bytes::Bytes::new()), None));
    }
    let limit = app.settings.limits.body_timeout;
    let deadline = tokio::time::Instant::now() + limit;
    let mut stream = body.into_data_stream();
    let mut read = BytesMut::new();
    while read.len() <= super::MAX_BODY_BYTES {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(body_too_slow(limit)),
            Ok(None) => return Ok((CallerBody::Whole(read.freeze()), None)),
            Ok(Some(Err(_))) => return Err(body_unreadable()),
            Ok(Some(Ok(chunk))) => read.extend_from_slice(&chunk),
        }
    }
    if read.len() > max {
        return Err(body_too_large(max));
    }
    let seen = read.len();
    let first = futures_util::stream::iter([Ok(read.freeze())]);
    let fault = Fault::default();
    let answered = fault.clone();
    let rest = futures_util::stream::unfold(Some((stream, seen)), move |state| {
        let fault = fault.clone();
        async move {
            let (mut stream, seen) = state?;
            let failed = |error: ApiError, why: OutboundError| {
                fault.set(error);
                Some((Err(why), None))
            };
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => failed(body_too_slow(limit), OutboundError::Timeout),
                Ok(None) => None,
                Ok(Some(Err(_))) => failed(
                    body_unreadable(),
                    OutboundError::Transport("the caller's body could not be read".into()),
                ),
                Ok(Some(Ok(chunk))) => {
                    let seen = seen + chunk.len();
                    if seen > max {
                        return failed(body_too_large(max), OutboundError::TooLarge(max));
                    }
                    Some((Ok(chunk), Some((stream, seen))))
                }
            }
        }
    });
    let streamed = CallerBody::Streamed {
        stream: Box::pin(first.chain(rest)),
        length,
    };
    Ok((streamed, Some(answered)))
}
