//! The HTTP layer, the only module that knows axum, cookies, HTML and the
//! wire shapes: the router, the listener, how callers authenticate, the
//! popup's pages. It calls the domain; nothing in the domain calls it.

mod connect_sessions;
mod connections;
pub mod error;
mod functions;
mod integrations;
mod keys;
mod openapi;
mod pages;
mod projects;
mod proxy;
mod sdk;
pub mod serve;

use crate::app::{App, AppState};

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::error::Json;

/// Request bodies larger than this are refused before they are parsed.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A request target longer than this is refused (414).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Headers larger than this in all are refused (431).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The whole HTTP application; `main` serves it (as [`Application`]) and the
/// tests call it directly.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(healthz))
        .merge(projects::router())
        .merge(keys::router())
        .merge(integrations::router())
        .merge(connect_sessions::router())
        .merge(connections::router())
        .merge(sdk::router())
        .merge(pages::router())
        .merge(functions::router())
        .merge(openapi::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body_within,
        ))
        .layer(axum::middleware::map_response(common_headers));
    // The proxy makes the same checks and sets the same headers itself, and
    // streams its bodies: outside the layers, a proxied call costs less.
    Router::new()
        .merge(proxy::router())
        .merge(api)
        .with_state(state)
}

/// What the listener serves: the router, except that a proxied call goes
/// straight to the proxy's handler — the one the router has for it —
/// without the router's work per call (matching, path parameters, boxed
/// services), which is a tenth of a proxied call's cost.
#[derive(Clone)]
pub struct Application {
    router: Router,
    state: AppState,
}

/// The application of [`router`] as [`serve::serve`] serves it.
pub fn application(state: AppState) -> Application {
    Application {
        router: router(state.clone()),
        state,
    }
}

impl Application {
    /// Answers `request`, which came on a connection from `peer`.
    pub async fn handle(
        self,
        mut request: axum::extract::Request,
        peer: std::net::SocketAddr,
    ) -> Response {
        if proxy::routed_here(request.uri().path()) {
            return proxy::forward_from(&self.state, request, Some(peer)).await;
        }
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        use tower::ServiceExt;
        self.router
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {})
    }
}

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Whether the server and its database answer", responses((status = 200, description = "The status, ok", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn healthz(State(app): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    app.store.ping().await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}

/// Headers every answer carries: none is to be sniffed as another type, and
/// none is to be kept by a cache (many carry a secret: a new secret key, a
/// session token, a connection's details) unless its handler says otherwise.
async fn common_headers(response: Response) -> Response {
    with_common_headers(response)
}

pub(crate) fn with_common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Why a request target or its headers are refused as too large, if they are.
pub(crate) fn too_large(uri: &axum::http::Uri, headers: &HeaderMap) -> Option<ApiError> {
    let uri_bytes = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        ));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!("the request headers are larger than {MAX_HEADER_BYTES} bytes"),
        ));
    }
    None
}

/// Refuses a request target or headers that are too large, in the product's
/// error shape, and reads the body within the body time limit (SECURITY 37):
/// a client that trickles its body is cut off with 408.
async fn read_body_within(
    State(app): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(error) = too_large(request.uri(), request.headers()) {
        return error.into_response();
    }
    use axum::body::HttpBody;
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let limit = app.settings.limits.body_timeout;
    let read = tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY_BYTES)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_large {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::new(ErrorCode::BadRequest, "the body could not be read")
            }
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the body did not arrive within {} seconds", limit.as_secs()),
            )
            .into_response()
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// The address a request came from: the connection's peer, or with
/// `PLUGBOARD_TRUST_PROXY` the last address the reverse proxy added to
/// `X-Forwarded-For`.
pub(crate) fn client_address(
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    trust_proxy: bool,
) -> ClientAddress<'_> {
    if trust_proxy {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty());
        if let Some(address) = forwarded {
            return ClientAddress::Forwarded(address);
        }
    }
    match peer {
        Some(peer) => ClientAddress::Peer(address_text(peer.ip())),
        None => ClientAddress::Unknown,
    }
}

/// The peer of the connection a request came on, as the listener records it.
fn peer_of(parts: &Parts) -> Option<std::net::SocketAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0)
}

/// [`client_address`]'s answer, as text without an allocation.
pub(crate) enum ClientAddress<'a> {
    Forwarded(&'a str),
    Peer(AddressText),
    Unknown,
}

impl ClientAddress<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            ClientAddress::Forwarded(text) => text,
            ClientAddress::Peer(text) => text.as_str(),
            ClientAddress::Unknown => "unknown",
        }
    }
}

/// An IP address as text, kept inline (the longest, an IPv4-mapped IPv6
/// address, has 45 characters).
pub(crate) struct AddressText {
    bytes: [u8; 45],
    len: usize,
}

impl AddressText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("unknown")
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }
}

impl std::fmt::Write for AddressText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        if self.len + text.len() > self.bytes.len() {
            return Err(std::fmt::Error);
        }
        text.bytes().for_each(|byte| self.push(byte));
        Ok(())
    }
}

/// An address as `Display` writes it, without the formatter for the common
/// IPv4 case (it is made for every authenticated request).
fn address_text(ip: std::net::IpAddr) -> AddressText {
    let mut text = AddressText {
        bytes: [0; 45],
        len: 0,
    };
    let std::net::IpAddr::V4(v4) = ip else {
        let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{ip}"));
        return text;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push(b'.');
        }
        if octet >= 100 {
            text.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            text.push(b'0' + octet / 10 % 10);
        }
        text.push(b'0' + octet % 10);
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "9.99.199.200",
            "::1",
            "2001:db8::ff00:42:8329",
            "::ffff:10.0.0.1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(super::address_text(ip).as_str(), ip.to_string());
        }
    }
}

/// Guards a credential check against guessing (SECURITY 38): refused while
/// the client address or the presented key (by its public prefix) is over
/// its limit of failures; a failure counts against both.
pub(crate) struct AuthGuard<'a> {
    app: &'a App,
    headers: &'a HeaderMap,
    peer: Option<std::net::SocketAddr>,
    /// The presented key's public prefix.
    key: &'a str,
}

impl<'a> AuthGuard<'a> {
    pub(crate) fn check(
        app: &'a App,
        parts: &'a Parts,
        presented: &'a str,
    ) -> ApiResult<AuthGuard<'a>> {
        Self::check_from(app, &parts.headers, peer_of(parts), presented)
    }

    /// [`AuthGuard::check`] for a request's headers and its connection's peer.
    pub(crate) fn check_from(
        app: &'a App,
        headers: &'a HeaderMap,
        peer: Option<std::net::SocketAddr>,
        presented: &'a str,
    ) -> ApiResult<AuthGuard<'a>> {
        let guard = AuthGuard {
            app,
            headers,
            peer,
            key: crate::ids::public_part(presented),
        };
        let limits = &app.limiters;
        // Nothing failed lately (the usual case): nothing to look up.
        if limits.auth_by_address.is_empty() && limits.auth_by_key.is_empty() {
            return Ok(guard);
        }
        let now = app.now_precise();
        if let Err(wait) = limits
            .auth_by_address
            .allowed(guard.address().as_str(), now)
            .and_then(|()| limits.auth_by_key.allowed(guard.key, now))
        {
            return Err(ApiError::rate_limited(
                "too many failed authentications; try again later",
                wait,
            ));
        }
        Ok(guard)
    }

    fn address(&self) -> ClientAddress<'a> {
        client_address(self.headers, self.peer, self.app.settings.trust_proxy)
    }

    /// Records a failed authentication and answers the error to return.
    pub(crate) fn failed(self, error: ApiError) -> ApiError {
        let now = self.app.now_precise();
        let limits = &self.app.limiters;
        let _ = limits.auth_by_address.take(self.address().as_str(), now);
        let _ = limits.auth_by_key.take(self.key, now);
        error
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The project a request's secret key belongs to.
pub struct ProjectAuth {
    pub project_id: String,
}

impl FromRequestParts<AppState> for ProjectAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        ProjectAuth::authenticate(app, &parts.headers, peer_of(parts)).await
    }
}

impl ProjectAuth {
    /// The project of the secret key a request with `headers` presents,
    /// which came on a connection from `peer`.
    pub(crate) async fn authenticate(
        app: &App,
        headers: &HeaderMap,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<ProjectAuth, ApiError> {
        let presented = bearer(headers).unwrap_or("");
        let guard = AuthGuard::check_from(app, headers, peer, presented)?;
        match app.store.authenticate_secret_key(presented).await? {
            Some(project_id) => Ok(ProjectAuth { project_id }),
            None => Err(guard.failed(ApiError::unauthorized())),
        }
    }
}

/// A request bearing the operator token.
pub struct OperatorAuth;

impl FromRequestParts<AppState> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = app.settings.operator_token.as_deref() else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "the admin API is off: set PLUGBOARD_OPERATOR_TOKEN to turn it on",
            ));
        };
        let presented = bearer(&parts.headers).unwrap_or("");
        let guard = AuthGuard::check(app, parts, presented)?;
        // Comparing digests keeps the comparison constant-time whatever the lengths.
        let equal: bool = Sha256::digest(presented.as_bytes())
            .ct_eq(&Sha256::digest(expected.as_bytes()))
            .into();
        if equal {
            Ok(OperatorAuth)
        } else {
            Err(guard.failed(ApiError::unauthorized()))
        }
    }
}

/// `limit` as lists take it: default 50, from 1 to 200.
pub(crate) fn page_limit(limit: Option<i64>) -> ApiResult<i64> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::field("limit", "must be from 1 to 200")),
    }
}

/// A list response: `{ "data": [...], "next_cursor": … }`.
#[derive(serde::Serialize)]
pub(crate) struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}
