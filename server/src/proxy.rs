//! The proxy: a request from the customer's backend, forwarded to a
//! connection's base URL with the connection's credentials, and the upstream
//! answer passed back as it came (status, headers but hop-by-hop ones, body,
//! a redirect included — never followed).
//!
//! What the caller cannot do: reach another host (the path is appended to the
//! base URL and checked, `..` and encoded dots and slashes refused), send its
//! own `Host`, `Authorization`, `Cookie`, `X-Forwarded-*`/`Forwarded` or
//! hop-by-hop headers (dropped), or reach an internal address (the outbound
//! client refuses it after DNS). What Plugboard adds: fresh credentials (an
//! OAuth token is refreshed when due, and once more after the upstream
//! answers 401 to it), and, when asked with `Plugboard-Retries`, retries on
//! 429 and 5xx honouring `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::app::App;
use crate::auth::{ConnectionCredential, ReadyCredential};
use crate::cache::{Cache, Topic};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::integrations::{AuthSpec, IntegrationSpec};
use crate::outbound::{OutboundError, OutboundRequest, StreamedResponse};
use crate::store::ConnectionRow;
use crate::tokens::AccessToken;

/// The request header that asks for retries (0 to 3); never forwarded.
pub const RETRIES_HEADER: &str = "plugboard-retries";
static RETRIES: HeaderName = HeaderName::from_static(RETRIES_HEADER);
const MAX_RETRIES: u32 = 3;
/// A `Retry-After` longer than this is not waited for: the answer goes back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Headers that describe one hop, never forwarded either way (RFC 9110 7.6.1).
fn is_hop_by_hop_name(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Request headers a caller may not send on: where the request goes, who
/// the caller is to Plugboard, and what Plugboard sets itself.
fn is_caller_only(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "authorization"
            | "cookie"
            | "forwarded"
            | "x-real-ip"
            | "content-length"
            | "origin"
    )
}

/// A request to forward.
pub struct ProxyRequest {
    pub method: http::Method,
    /// What follows `/v1/proxy/{connection id}`, as sent (percent-encoded),
    /// from its `/`, with the query if there is one.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: CallerBody,
}

/// A request body to send on.
pub enum CallerBody {
    /// Read whole (within the request size limit): it can be sent again
    /// after a 401 or for a retry, and an AWS signature covers its hash.
    Whole(bytes::Bytes),
    /// Larger: passed on as it arrives, once (no retry; an AWS signature
    /// says `UNSIGNED-PAYLOAD`, which S3 accepts), cut at the outbound size
    /// limit. `length` is the caller's `Content-Length`, sent on with it.
    Streamed {
        stream: crate::outbound::ByteStream,
        length: Option<u64>,
    },
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed, message)
}

/// Why a proxied path may not be used, if it may not: it must stay under the
/// connection's base URL, whatever a server makes of dots, slashes and
/// backslashes, encoded or not.
pub(crate) fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("the path must start with '/'");
    }
    let controls = if path.is_ascii() {
        path.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\')
    } else {
        path.chars().any(|c| c.is_control() || c == '\\')
    };
    if controls {
        return Some("the path may not hold control characters or backslashes");
    }
    let segments = path.as_bytes()[1..].split(|b| *b == b'/');
    let count = path.as_bytes()[1..].iter().filter(|b| **b == b'/').count() + 1;
    let mut inner_empty = false;
    for (i, segment) in segments.enumerate() {
        if segment.contains(&b'%') {
            let decoded: Vec<u8> = percent_encoding::percent_decode(segment).collect();
            if decoded == b"." || decoded == b".." {
                return Some("the path may not hold '.' or '..' segments, encoded or not");
            }
            if decoded.contains(&b'/') || decoded.contains(&b'\\') {
                return Some("the path may not hold encoded slashes or backslashes");
            }
        } else if segment == b"." || segment == b".." {
            return Some("the path may not hold '.' or '..' segments, encoded or not");
        }
        // Only the last segment may be empty (a trailing slash).
        inner_empty |= segment.is_empty() && i + 1 < count;
    }
    if inner_empty {
        return Some("the path may not hold empty segments ('//')");
    }
    None
}

/// How many retries the caller asked for.
fn retries_asked(headers: &HeaderMap) -> ApiResult<u32> {
    match headers.get(&RETRIES) {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n <= MAX_RETRIES)
            .ok_or_else(|| {
                let mut error = refused("Plugboard-Retries must be a whole number from 0 to 3");
                error.fields = Some(
                    [(
                        "Plugboard-Retries".to_string(),
                        "must be a whole number from 0 to 3".to_string(),
                    )]
                    .into_iter()
                    .collect(),
                );
                error
            }),
    }
}

/// The header names a message's `Connection` header lists: hop-by-hop
/// for that message alone (beside those always so, and `close`).
fn connection_named(headers: &HeaderMap) -> Vec<String> {
    const USUAL: [&[u8]; 4] = [b"close", b"keep-alive", b"upgrade", b"te"];
    let mut named = Vec::new();
    for value in headers.get_all(http::header::CONNECTION) {
        for token in value.as_bytes().split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() || USUAL.iter().any(|u| u.eq_ignore_ascii_case(token)) {
                continue;
            }
            // A header name is ASCII: a token that is not names none.
            if let Ok(text) = std::str::from_utf8(token) {
                named.push(text.to_ascii_lowercase());
            }
        }
    }
    named
}

/// Removes from `headers` every header `dropped` says to. A message has few
/// headers: finding the next one afresh each time costs less than listing
/// them first.
fn drop_headers(headers: &mut HeaderMap, dropped: impl Fn(&str) -> bool) {
    while let Some(name) = headers.keys().find(|name| dropped(name.as_str())).cloned() {
        headers.remove(&name);
    }
}

fn is_hop_by_hop(name: &str, named: &[String]) -> bool {
    is_hop_by_hop_name(name) || named.iter().any(|n| n == name)
}

/// Leaves in `headers` only what goes on to the upstream: the caller's
/// headers without hop-by-hop ones (and those its `Connection` names), the
/// caller's own, `X-Forwarded-*` and Plugboard's.
fn keep_forwarded(headers: &mut HeaderMap) {
    let named = connection_named(headers);
    drop_headers(headers, |name| {
        is_hop_by_hop(name, &named)
            || is_caller_only(name)
            || name.starts_with("x-forwarded-")
            || name.starts_with("plugboard-")
    });
}

/// Removes an upstream answer's hop-by-hop headers (and those its
/// `Connection` names) before it goes back to the caller.
pub fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named = connection_named(headers);
    drop_headers(headers, |name| is_hop_by_hop(name, &named));
}

/// What the proxy calls with: the base URL and how to get the credential.
struct Target {
    base: String,
    /// `base` parsed, once.
    base_url: Option<url::Url>,
    oauth: bool,
    spec: IntegrationSpec,
    /// The fields of a connection without OAuth, read once.
    fields: std::collections::BTreeMap<String, crate::secret::Secret>,
}

async fn target(app: &App, connection: &ConnectionRow) -> ApiResult<Target> {
    let integration = app
        .store
        .get_integration_by_id(&connection.integration_id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    // The settings the connection was made with: a base URL set later never
    // receives its credentials (SECURITY 34).
    let config = app
        .store
        .client_config(&integration, connection.client_generation)
        .await?
        .ok_or_else(|| ApiError::internal("the connection's integration settings are gone"))?;
    let spec =
        IntegrationSpec::parse(&integration.auth_type, &config).map_err(ApiError::internal)?;
    let oauth = spec.auth_type.is_oauth();
    let (base, fields) = if oauth {
        (spec.api_base_url.clone(), Default::default())
    } else {
        let fields = app
            .store
            .connection_secrets(&app.vault, &connection.id)
            .await?;
        (spec.connection_base_url(&fields), fields)
    };
    let base = base.ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            "the connection's integration has no api_base_url: the proxy has nowhere to send it",
        )
    })?;
    if base.contains('{') {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the integration's api_base_url has variables this connection does not fill",
        ));
    }
    Ok(Target {
        base_url: url::Url::parse(&base).ok(),
        base,
        oauth,
        spec,
        fields,
    })
}

/// Everything a call with a connection needs, read once and kept in
/// [`App::calls`](crate::app::App) until a write to the connection or its
/// integration drops it (`crate::cache`).
pub struct Prepared {
    connection: ConnectionRow,
    target: Target,
    /// An OAuth connection's access token, used until it falls due.
    token: Option<AccessToken>,
    /// The credential to call with, made once: the access token, or keys
    /// and passwords, with the headers they become. An AWS signature is made
    /// per call, at its time.
    credential: Option<Arc<ReadyCredential>>,
}

/// Prepared connections by id.
pub type Calls = Arc<Cache<Arc<Prepared>>>;

/// The project's connection, ready to call with: from [`Calls`] when kept
/// and its token (if any) not yet due, else read, checked and kept.
pub(crate) async fn prepare(
    app: &App,
    project_id: &str,
    connection_id: &str,
) -> ApiResult<Arc<Prepared>> {
    if let Some(prepared) = app.calls.get(connection_id) {
        let fresh = match &prepared.token {
            Some(token) => token.due_at.is_none_or(|at| app.now() < at),
            None => !prepared.target.oauth,
        };
        if prepared.connection.project_id == project_id && fresh {
            return Ok(prepared);
        }
    }
    let ticket = app.calls.ticket();
    let connection = usable_connection(app, project_id, connection_id).await?;
    let target = target(app, &connection).await?;
    let token = if target.oauth {
        Some(crate::tokens::fresh_access_token(app, &connection.id).await?)
    } else {
        None
    };
    let topics = vec![
        Topic::Connection(connection.id.clone()),
        Topic::Integration(connection.integration_id.clone()),
    ];
    let credential = match &token {
        Some(token) => Some(ConnectionCredential::AccessToken(
            token.access_token.clone(),
        )),
        None if matches!(target.spec.auth, AuthSpec::AwsSigV4(_)) => None,
        None => Some(
            ConnectionCredential::from_fields(&target.spec.auth, &target.fields, app.clock.now())
                .map_err(ApiError::internal)?,
        ),
    };
    let prepared = Arc::new(Prepared {
        connection,
        target,
        token,
        credential: credential.map(|c| Arc::new(ReadyCredential::new(c))),
    });
    // A refresh just made announced itself, so this is kept from the next call on.
    app.calls
        .put(ticket, connection_id, prepared.clone(), topics);
    Ok(prepared)
}

/// The credential to call with: the prepared one, or after the provider
/// rejected an OAuth token (its version `rejected`) or a wait, a fresh one.
async fn credential(
    app: &App,
    prepared: &Prepared,
    renew: Renew,
) -> ApiResult<(Arc<ReadyCredential>, Option<i64>)> {
    if prepared.target.oauth {
        let id = &prepared.connection.id;
        let token = match (renew, &prepared.token, &prepared.credential) {
            (Renew::No, Some(token), Some(credential)) => {
                return Ok((credential.clone(), Some(token.version)))
            }
            (Renew::Rejected(version), _, _) => {
                crate::tokens::replace_rejected_token(app, id, version).await?
            }
            _ => crate::tokens::fresh_access_token(app, id).await?,
        };
        return Ok((
            Arc::new(ReadyCredential::new(ConnectionCredential::AccessToken(
                token.access_token,
            ))),
            Some(token.version),
        ));
    }
    if let Some(credential) = &prepared.credential {
        return Ok((credential.clone(), None));
    }
    let credential = ConnectionCredential::from_fields(
        &prepared.target.spec.auth,
        &prepared.target.fields,
        app.clock.now(),
    )
    .map_err(ApiError::internal)?;
    Ok((Arc::new(ReadyCredential::new(credential)), None))
}

/// Which credential [`credential`] gives.
#[derive(Clone, Copy)]
enum Renew {
    /// The prepared one.
    No,
    /// A fresh one, read again (after a wait).
    Again,
    /// A replacement for this version of the OAuth token.
    Rejected(i64),
}

fn upstream_error(error: &OutboundError) -> ApiError {
    let message = match error {
        OutboundError::Refused { .. } => {
            format!("the upstream is an internal address and was not called: {error}")
        }
        OutboundError::TooLarge(_) => format!("the upstream exchange was cut: {error}"),
        _ => format!("the upstream could not be reached: {error}"),
    };
    ApiError::new(ErrorCode::UpstreamError, message)
}

/// How long an answer asks to be waited for before a retry, if it may be.
fn retry_delay(response: &StreamedResponse, attempt: u32) -> Option<Duration> {
    let after = response
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match after {
        Some(delay) if delay > MAX_RETRY_AFTER => None,
        Some(delay) => Some(delay),
        None => Some(Duration::from_millis(250 << attempt.min(4))),
    }
}

/// Forwards `request` with the connection's credentials; answers the
/// upstream's response, its body still to come.
pub async fn forward(
    app: &App,
    project_id: &str,
    connection_id: &str,
    request: ProxyRequest,
) -> ApiResult<StreamedResponse> {
    let retries = retries_asked(&request.headers)?;
    let path = match request.path_and_query.split_once('?') {
        Some((path, _)) => path,
        None => &request.path_and_query,
    };
    if let Some(problem) = path_problem(path) {
        return Err(refused(problem));
    }
    let prepared = prepare(app, project_id, connection_id).await?;
    let mut headers = request.headers;
    keep_forwarded(&mut headers);
    send_prepared(
        app,
        &prepared,
        Outgoing {
            method: request.method,
            path_and_query: request.path_and_query,
            headers,
            body: request.body,
            retries,
        },
    )
    .await
}

/// The project's connection, if it can be used without its end user.
pub(crate) async fn usable_connection(
    app: &App,
    project_id: &str,
    connection_id: &str,
) -> ApiResult<ConnectionRow> {
    let connection = app
        .store
        .get_connection(project_id, connection_id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    if connection.status == "needs_reauth" {
        return Err(ApiError::new(
            ErrorCode::NeedsReauth,
            "the connection must be connected again by its end user",
        ));
    }
    Ok(connection)
}

/// A request to a connection's API, as the proxy and functions make it.
pub(crate) struct Outgoing {
    pub method: http::Method,
    /// Appended to the connection's base URL (checked to stay on its host).
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: CallerBody,
    /// Retries on 429 and 5xx (0 to 3).
    pub retries: u32,
}

/// Sends `outgoing` to the connection's base URL with its credential (see
/// [`send_prepared`]).
pub(crate) async fn send(
    app: &App,
    connection: &ConnectionRow,
    outgoing: Outgoing,
) -> ApiResult<StreamedResponse> {
    let prepared = prepare(app, &connection.project_id, &connection.id).await?;
    send_prepared(app, &prepared, outgoing).await
}

/// Sends `outgoing` with the prepared connection: one refresh and one retry
/// after a 401 to an OAuth token; the retries asked for on 429 and 5xx.
async fn send_prepared(
    app: &App,
    prepared: &Prepared,
    outgoing: Outgoing,
) -> ApiResult<StreamedResponse> {
    let target = &prepared.target;
    let url = target
        .base_url
        .as_ref()
        .and_then(|base_url| {
            crate::outbound::append_path_under(&target.base, base_url, &outgoing.path_and_query)
        })
        .ok_or_else(|| refused("the path would leave the connection's base URL"))?;
    let (mut credential_now, mut version) = credential(app, prepared, Renew::No).await?;
    let mut retried_401 = false;
    let mut attempt = 0;
    let replayable = matches!(outgoing.body, CallerBody::Whole(_));
    let mut body = Some(outgoing.body);
    let mut headers = outgoing.headers;
    loop {
        // The caller's headers are copied only for a request that may be
        // sent again: after a rejected token, or when retries were asked.
        let oauth_retry = prepared.target.oauth && !retried_401;
        let may_repeat = replayable && (oauth_retry || attempt < outgoing.retries);
        let headers_now = if may_repeat && !headers.is_empty() {
            headers.clone()
        } else {
            // Nothing to copy when empty: the map itself goes, with the room
            // it has for what is added to it.
            std::mem::take(&mut headers)
        };
        let mut request =
            OutboundRequest::new(outgoing.method.clone(), url.clone()).with_headers(headers_now);
        request = match body.take() {
            Some(CallerBody::Whole(bytes)) => {
                body = Some(CallerBody::Whole(bytes.clone()));
                request.body(bytes)
            }
            Some(CallerBody::Streamed { stream, length }) => {
                if let Some(length) = length {
                    request = request
                        .header_value(http::header::CONTENT_LENGTH, HeaderValue::from(length));
                }
                request.body_stream(stream)
            }
            None => request,
        };
        let response = app
            .outbound
            .open(request.shared_credential(credential_now))
            .await
            .map_err(|e| upstream_error(&e))?;
        if response.status == 401 && prepared.target.oauth && !retried_401 {
            // The provider refused a token Plugboard thought good: one
            // refresh, and one retry when the body can be sent again (a
            // streamed one is gone: the answer goes back, and the next call
            // has the new token).
            retried_401 = true;
            let renew = version.map_or(Renew::Again, Renew::Rejected);
            (credential_now, version) = credential(app, prepared, renew).await?;
            if !replayable {
                return Ok(response);
            }
            continue;
        }
        let retryable = response.status == 429 || response.status >= 500;
        if retryable && replayable && attempt < outgoing.retries {
            if let Some(delay) = retry_delay(&response, attempt) {
                attempt += 1;
                drop(response);
                tokio::time::sleep(delay).await;
                (credential_now, version) = credential(app, prepared, Renew::Again).await?;
                continue;
            }
        }
        return Ok(response);
    }
}

/// The connection's base URL, as its calls use it.
pub(crate) async fn base_url(app: &App, connection: &ConnectionRow) -> ApiResult<String> {
    Ok(prepare(app, &connection.project_id, &connection.id)
        .await?
        .target
        .base
        .clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_base_are_refused() {
        for ok in [
            "/",
            "/me",
            "/v2/users/42",
            "/files/a%20b.txt",
            "/a/b/",
            "/@me",
            "/a.b/..c",
        ] {
            assert_eq!(path_problem(ok), None, "{ok}");
        }
        for bad in [
            "/../x",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/.%2e/x",
            "/./x",
            "/a/%2f/b",
            "/a%2F..%2Fb",
            "//evil.example/x",
            "/a//b",
            "/a\\b",
            "/%5c..",
            "/a/..",
            "/a/%2E",
            "//",
            "/a//",
            "me",
        ] {
            assert!(path_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn caller_headers_that_route_or_authenticate_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "evil.example"),
            ("authorization", "Bearer mine"),
            ("cookie", "a=b"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=10.0.0.1"),
            ("transfer-encoding", "chunked"),
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
            ("plugboard-retries", "2"),
            ("accept", "application/json"),
            ("x-request-for-upstream", "kept"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        keep_forwarded(&mut headers);
        // Fields of different names have no order (RFC 9110 5.3).
        let mut kept: Vec<String> = headers.keys().map(|n| n.to_string()).collect();
        kept.sort();
        assert_eq!(kept, ["accept", "x-request-for-upstream"]);
    }

    #[test]
    fn an_answer_loses_its_hop_by_hop_headers_and_those_its_connection_names() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-request-id", "42"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        drop_hop_by_hop(&mut headers);
        // Fields of different names have no order; a name's values keep theirs.
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        let mut kept: Vec<String> = headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            [
                "content-type: application/json",
                "set-cookie: a=1",
                "set-cookie: b=2",
                "x-request-id: 42"
            ]
        );
    }
}
