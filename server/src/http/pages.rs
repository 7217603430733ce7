//! The popup's pages: `/connect/{attempt_id}` (binds the attempt to this
//! browser and goes to the provider) and `/oauth/callback/{integration_id}`
//! (the provider's redirect back). They are for people: plain HTML, every
//! value escaped, a strict Content-Security-Policy, and a script that posts
//! the result to the one origin that started the attempt.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::app::App;
use crate::connect::{self, CallbackParams, Page};
use crate::error::ApiResult;
use crate::http::error::{Json, Path, Query};
use crate::ids;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connect/{attempt_id}", get(popup).post(bind))
        .route("/oauth/callback/{integration_id}", get(callback))
}

async fn popup(State(app): State<AppState>, Path(attempt_id): Path<String>) -> ApiResult<Response> {
    Ok(render(&app, connect::open_popup(&app, &attempt_id).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BindBody {
    proof: String,
}

/// The popup presents the proof its opener gave it; the answer binds the
/// attempt to this browser (a cookie) and names the provider's page to go to.
async fn bind(
    State(app): State<AppState>,
    Path(attempt_id): Path<String>,
    Json(body): Json<BindBody>,
) -> ApiResult<Response> {
    let bound = connect::bind_popup(&app, &attempt_id, &body.proof).await?;
    let mut headers = HeaderMap::new();
    if let Ok(cookie) = HeaderValue::from_str(&set_cookie(&app, &bound.binding)) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    Ok((
        headers,
        Json(serde_json::json!({ "authorizationUrl": bound.authorization_url })),
    )
        .into_response())
}

async fn callback(
    State(app): State<AppState>,
    Path(integration_id): Path<String>,
    query: Result<Query<CallbackParams>, crate::error::ApiError>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // A query that does not even parse is a callback without a usable state.
    let params = query.map(|Query(p)| p).unwrap_or_default();
    Ok(render(
        &app,
        connect::callback(&app, &integration_id, &params, &bindings(&headers)).await?,
    ))
}

/// The cookie that binds an attempt to a browser is `pb_connect_{attempt id}`.
const BINDING_COOKIE_PREFIX: &str = "pb_connect_";

/// It is sent to the callbacks only.
const BINDING_COOKIE_PATH: &str = "/oauth/callback/";

fn set_cookie(app: &App, binding: &connect::Binding) -> String {
    let secure = if app.settings.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{BINDING_COOKIE_PREFIX}{}={}; Path={BINDING_COOKIE_PATH}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        binding.attempt_id, binding.value, binding.max_age
    )
}

/// The bindings a browser presents, by attempt id.
fn bindings(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter_map(|(k, v)| {
            k.trim()
                .strip_prefix(BINDING_COOKIE_PREFIX)
                .map(|id| (id.to_string(), v.trim().to_string()))
        })
        .collect()
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe to place inside a `<script>` element.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

const SCRIPT: &str = r#"(function () {
  var data = JSON.parse(document.getElementById('pb-result').textContent);
  var sent = false;
  if (data && window.opener) {
    try { window.opener.postMessage(data.message, data.origin); sent = true; } catch (e) {}
  }
  if (sent) { window.close(); }
  else { document.getElementById('pb-return').hidden = false; }
})();"#;

/// The popup's first page: asks its opener — only at the attempt's origin —
/// for the proof, and presents it. Without an opener, or without an answer
/// from the right origin and window, it says so and does nothing.
const HANDSHAKE_SCRIPT: &str = r#"(function () {
  var data = JSON.parse(document.getElementById('pb-handshake').textContent);
  var done = false;
  function refuse(text) {
    done = true;
    document.getElementById('pb-message').textContent = text;
    document.getElementById('pb-title').textContent = 'This sign-in cannot continue here';
  }
  var elsewhere = 'Open this window from the app, with its Connect button. A sign-in link opened on its own cannot be used.';
  if (!window.opener) { refuse(elsewhere); return; }
  window.addEventListener('message', function (event) {
    if (done || event.source !== window.opener || event.origin !== data.origin) return;
    var m = event.data;
    if (!m || m.type !== 'plugboard:proof' || m.attemptId !== data.attemptId || typeof m.proof !== 'string') return;
    done = true;
    fetch(data.bindUrl, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ proof: m.proof })
    }).then(function (r) {
      return r.json().then(function (body) {
        if (r.ok && body.authorizationUrl) { window.location.replace(body.authorizationUrl); }
        else { refuse(body && body.error ? body.error.message : 'This sign-in could not start.'); }
      });
    }).catch(function () { refuse('This sign-in could not start. Close this window and try again from the app.'); });
  });
  window.opener.postMessage({ type: 'plugboard:hello', attemptId: data.attemptId }, data.origin);
  setTimeout(function () { if (!done) refuse(elsewhere); }, 5000);
})();"#;

fn render(app: &App, page: Page) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(cookie) = page
        .binding
        .as_ref()
        .and_then(|b| HeaderValue::from_str(&set_cookie(app, b)).ok())
    {
        headers.insert(header::SET_COOKIE, cookie);
    }
    let nonce = ids::random_base32(16);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Some(handshake) = &page.handshake {
        return render_handshake(&page, handshake, headers);
    }
    let result = match &page.post {
        Some((origin, message)) => serde_json::json!({ "origin": origin, "message": message }),
        None => serde_json::Value::Null,
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}}</style>\
         </head><body><h1>{title}</h1><p>{message}</p>\
         <p id=\"pb-return\" hidden>Return to the app to continue; you can close this window.</p>\
         <script type=\"application/json\" id=\"pb-result\">{result}</script>\
         <script nonce=\"{nonce}\">{SCRIPT}</script></body></html>\n",
        title = escape(&page.title),
        message = escape(&page.message),
        result = script_json(&result),
    );
    let status = if page.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, headers, body).into_response()
}

fn render_handshake(
    page: &Page,
    handshake: &connect::Handshake,
    mut headers: HeaderMap,
) -> Response {
    let nonce = ids::random_base32(16);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; connect-src 'self'; style-src 'unsafe-inline'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let data = serde_json::to_value(handshake).unwrap_or(serde_json::Value::Null);
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}}</style>\
         </head><body><h1 id=\"pb-title\">{title}</h1><p id=\"pb-message\">{message}</p>\
         <script type=\"application/json\" id=\"pb-handshake\">{data}</script>\
         <script nonce=\"{nonce}\">{HANDSHAKE_SCRIPT}</script></body></html>\n",
        title = escape(&page.title),
        message = escape(&page.message),
        data = script_json(&data),
    );
    (StatusCode::OK, headers, body).into_response()
}
