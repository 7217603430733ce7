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
use crate::credentials::{self, Form, Shown};
use crate::error::ApiResult;
use crate::http::error::{Json, Path, Query};
use crate::ids;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connect/{attempt_id}", get(popup).post(bind))
        .route(
            "/connect/{attempt_id}/form",
            get(credential_form).post(submit_credential_form),
        )
        .route("/oauth/callback/{integration_id}", get(callback))
}

#[utoipa::path(get, path = "/connect/{attempt_id}", tag = "popup", summary = "The popup's first page: asks its opener for the attempt's proof", params(("attempt_id" = String, Path, description = "The attempt's id")), responses((status = 200, description = "A page for people", content_type = "text/html", body = String), (status = 400, description = "A page for people saying why not", content_type = "text/html", body = String)))]
async fn popup(State(app): State<AppState>, Path(attempt_id): Path<String>) -> ApiResult<Response> {
    Ok(render(&app, connect::open_popup(&app, &attempt_id).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
struct BindBody {
    proof: String,
}

/// The popup presents the proof its opener gave it; the answer binds the
/// attempt to this browser (a cookie) and names the provider's page to go to.
#[utoipa::path(post, path = "/connect/{attempt_id}", tag = "popup", summary = "The popup presents its proof; answers where to go next", request_body = BindBody, params(("attempt_id" = String, Path, description = "The attempt's id")), responses((status = 200, description = "The next page's URL", body = serde_json::Value), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
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

#[utoipa::path(get, path = "/oauth/callback/{integration_id}", tag = "popup", summary = "The provider's redirect back (the integration's redirect URI)", params(("integration_id" = String, Path, description = "The integration's id"), ("code" = Option<String>, Query, description = "The authorization code"), ("state" = Option<String>, Query, description = "The attempt's state"), ("error" = Option<String>, Query, description = "The provider's error"), ("error_description" = Option<String>, Query, description = "Its description"), ("iss" = Option<String>, Query, description = "The issuer")), responses((status = 200, description = "A page for people", content_type = "text/html", body = String), (status = 400, description = "A page for people saying why not", content_type = "text/html", body = String)))]
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

/// The credential form, for the browser its attempt is bound to.
#[utoipa::path(get, path = "/connect/{attempt_id}/form", tag = "popup", summary = "The credential form (the auth types without OAuth)", params(("attempt_id" = String, Path, description = "The attempt's id")), responses((status = 200, description = "A page for people", content_type = "text/html", body = String), (status = 400, description = "A page for people saying why not", content_type = "text/html", body = String)))]
async fn credential_form(
    State(app): State<AppState>,
    Path(attempt_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let binding = bindings(&headers).remove(&attempt_id);
    let shown = credentials::show(&app, &attempt_id, binding.as_deref()).await?;
    Ok(render_shown(&app, shown))
}

/// The credential form, submitted. Only a form posted by Plugboard's own
/// page counts: the browser's `Origin` must be Plugboard's, the binding
/// cookie (`SameSite=Lax`, so never sent with another site's POST) must be
/// this attempt's, and the form must carry the token derived from it.
#[utoipa::path(post, path = "/connect/{attempt_id}/form", tag = "popup", summary = "The credential form, submitted (form-encoded, from its own page)", request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The form's fields and its form_token"), params(("attempt_id" = String, Path, description = "The attempt's id")), responses((status = 200, description = "A page for people", content_type = "text/html", body = String), (status = 400, description = "A page for people saying why not", content_type = "text/html", body = String), (status = 422, description = "The form again, saying what to correct", content_type = "text/html", body = String)))]
async fn submit_credential_form(
    State(app): State<AppState>,
    Path(attempt_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let own_origin = app.settings.public_url.origin().ascii_serialization();
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o == own_origin);
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !origin_ok || !form_encoded {
        let page = Page {
            ok: false,
            title: "This form was not sent from its own window".into(),
            message: "Use the window the app opened, or start again from the app.".into(),
            post: None,
            binding: None,
            handshake: None,
        };
        return Ok(render(&app, page));
    }
    let mut values = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(&body) {
        // A field sent twice is ambiguous: the first value counts.
        values
            .entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    let binding = bindings(&headers).remove(&attempt_id);
    let shown = credentials::submit(&app, &attempt_id, binding.as_deref(), &values).await?;
    Ok(render_shown(&app, shown))
}

fn render_shown(app: &App, shown: Shown) -> Response {
    match shown {
        Shown::Done(page) => render(app, page),
        Shown::Form(form) => render_form(&form),
    }
}

/// The cookie that binds an attempt to a browser is `pb_connect_{attempt id}`.
const BINDING_COOKIE_PREFIX: &str = "pb_connect_";

/// It is sent to the OAuth callbacks only, or to its attempt's credential form.
const BINDING_COOKIE_PATH: &str = "/oauth/callback/";

fn set_cookie(app: &App, binding: &connect::Binding) -> String {
    let secure = if app.settings.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let path = if binding.form {
        credentials::form_path(&binding.attempt_id)
    } else {
        BINDING_COOKIE_PATH.to_string()
    };
    format!(
        "{BINDING_COOKIE_PREFIX}{}={}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
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

const PAGE_STYLE: &str = "body{font:16px system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#222}\
label{display:block;font-weight:600;margin-top:1rem}\
input{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;margin-top:.25rem}\
.error{color:#a00;margin:.25rem 0 0}\
#pb-message{padding:.5rem;border-left:4px solid #a00;background:#fff4f4}\
button{margin-top:1.5rem;padding:.6rem 1.2rem;font:inherit}";

/// The credential form: plain HTML, no script. Secret fields are masked and
/// always empty; only a URL, a region and a name are shown again.
fn render_form(form: &Form) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Not `no-referrer`: under it a browser sends `Origin: null` with the
    // form's POST, and the origin check needs the real one. Nothing leaves
    // the origin (the docs link is `noreferrer`).
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let mut body = String::with_capacity(4096);
    let verb = if form.reconnecting {
        "Reconnect"
    } else {
        "Connect"
    };
    body.push_str(&format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{verb} {app}</title><style>{PAGE_STYLE}</style></head><body>\
         <h1 id=\"pb-title\">{verb} {app}</h1>",
        app = escape(&form.app_label),
    ));
    if let Some(help) = &form.help {
        body.push_str(&format!("<p id=\"pb-help\">{}</p>", escape(help)));
    }
    if let Some(docs) = &form.docs_url {
        body.push_str(&format!(
            "<p><a id=\"pb-docs\" href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">Where to find these details</a></p>",
            escape(docs)
        ));
    }
    if let Some(message) = &form.message {
        body.push_str(&format!(
            "<p id=\"pb-message\" role=\"alert\">{}</p>",
            escape(message)
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}\" autocomplete=\"off\">\
         <input type=\"hidden\" name=\"{token_name}\" value=\"{token}\">",
        action = escape(&credentials::form_path(&form.attempt_id)),
        token_name = credentials::TOKEN_FIELD,
        token = escape(&form.token),
    ));
    for field in &form.fields {
        let input_type = match field.kind {
            crate::auth::FieldKind::Secret => "password",
            crate::auth::FieldKind::Url => "url",
            _ => "text",
        };
        let value = field
            .value
            .as_deref()
            .map(|v| format!(" value=\"{}\"", escape(v)))
            .unwrap_or_default();
        let placeholder = field
            .placeholder
            .as_deref()
            .map(|v| format!(" placeholder=\"{}\"", escape(v)))
            .unwrap_or_default();
        let required = if field.required { " required" } else { "" };
        let described = if field.error.is_some() {
            format!(
                " aria-invalid=\"true\" aria-describedby=\"error-{}\"",
                field.name
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<label for=\"field-{name}\">{label}</label>\
             <input id=\"field-{name}\" name=\"{name}\" type=\"{input_type}\"{value}{placeholder}{required}{described} \
             autocomplete=\"off\" autocapitalize=\"off\" spellcheck=\"false\">",
            name = field.name,
            label = escape(field.label),
        ));
        if let Some(error) = &field.error {
            body.push_str(&format!(
                "<p class=\"error\" id=\"error-{}\">{} {}</p>",
                field.name,
                escape(field.label),
                escape(error)
            ));
        }
    }
    body.push_str(&format!(
        "<button type=\"submit\" id=\"pb-submit\">{verb}</button></form></body></html>\n"
    ));
    let status = if form.message.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, headers, body).into_response()
}
