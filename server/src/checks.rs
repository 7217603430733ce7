//! "Test" on an integration: the checks that need no browser, each reported
//! as a step a developer can act on — the request (its URL without secrets),
//! the HTTP status, the provider's error code and description, and a body
//! excerpt with every secret Plugboard sent, and every token it got, removed.
//!
//! - Authorization code: where an issuer is set, its discovery document is
//!   fetched and its issuer and endpoints compared with the integration's;
//!   then the token endpoint is sent a deliberately invalid code, where
//!   `invalid_grant` proves the client credentials are accepted and
//!   `invalid_client` that they are not.
//! - Client credentials: the token request itself (the token is discarded).
//! - Refresh token: the token endpoint with a deliberately invalid refresh
//!   token (the real one would be spent: providers rotate it), read like the
//!   authorization code's; the stored one is proven by its connection.

use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::app::App;
use crate::auth::oauth2::{TokenAuthMethod, TokenEndpoint};
use crate::error::{ApiError, ApiResult};
use crate::integrations::{AuthSpec, IntegrationSpec};
use crate::outbound::{OutboundRequest, OutboundResponse};
use crate::redact::Redactor;
use crate::store::IntegrationRow;

/// The code and refresh token sent to prove only the client's credentials.
const INVALID_GRANT_VALUE: &str = "plugboard-test-not-a-real-grant";

/// One step of a test, in the contract's shape.
#[derive(Debug, Serialize)]
pub struct Step {
    pub name: String,
    pub method: String,
    pub url: String,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_excerpt: Option<String>,
    /// What Plugboard concluded, for people.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct TestReport {
    pub ok: bool,
    pub steps: Vec<Step>,
}

/// A URL as a step shows it: without query or fragment (they may carry secrets).
fn shown(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// A body as a step shows it: tokens replaced, secrets removed, cut short.
fn excerpt(body: &[u8], redactor: &Redactor) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut map)) => {
            for field in ["access_token", "refresh_token", "id_token"] {
                if map.contains_key(field) {
                    map.insert(field.into(), Value::String("[redacted]".into()));
                }
            }
            Value::Object(map).to_string()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    Some(redactor.clean(&text, 500))
}

/// The OAuth error of a response body, if it has one.
fn oauth_error(body: &[u8], redactor: &Redactor) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let text = |k: &str| {
        map.get(k)
            .and_then(Value::as_str)
            .map(|s| redactor.clean(s, 300))
    };
    (text("error"), text("error_description"))
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A token request with the client authenticated as the integration says.
fn token_request(
    endpoint: &TokenEndpoint,
    client_secret: &str,
    mut form: Vec<(&str, String)>,
) -> Result<OutboundRequest, String> {
    let url = Url::parse(&endpoint.token_url).map_err(|_| "token_url is not a valid URL")?;
    let mut request = OutboundRequest::post(url);
    match endpoint.token_auth_method {
        TokenAuthMethod::ClientSecretBasic => {
            let pair = format!(
                "{}:{}",
                form_encode(&endpoint.client_id),
                form_encode(client_secret)
            );
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request
                .header("authorization", &format!("Basic {basic}"))
                .map_err(|e| e.to_string())?;
        }
        TokenAuthMethod::ClientSecretPost => {
            form.push(("client_id", endpoint.client_id.clone()));
            form.push(("client_secret", client_secret.to_string()));
        }
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .and_then(|r| r.header("accept", "application/json"))
        .map(|r| r.body(body))
        .map_err(|e| e.to_string())
}

/// Sends one request and reports it as a step; `judge` decides from the
/// answer whether the step passed, and says why.
async fn step(
    app: &App,
    name: &str,
    method: &str,
    url: &str,
    request: Result<OutboundRequest, String>,
    redactor: &Redactor,
    judge: impl Fn(&OutboundResponse, Option<&str>) -> (bool, String),
) -> Step {
    let mut step = Step {
        name: name.into(),
        method: method.into(),
        url: shown(url),
        status: None,
        ok: false,
        provider_code: None,
        provider_description: None,
        body_excerpt: None,
        detail: String::new(),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            step.detail = format!("the request could not be made: {e}");
            return step;
        }
    };
    match app.outbound.send(request).await {
        Ok(response) => {
            let (code, description) = oauth_error(&response.body, redactor);
            let (ok, detail) = judge(&response, code.as_deref());
            step.status = Some(response.status);
            step.ok = ok;
            step.provider_code = code;
            step.provider_description = description;
            step.body_excerpt = excerpt(&response.body, redactor);
            step.detail = detail;
        }
        Err(e) => step.detail = format!("no answer: {}", redactor.clean(&e.to_string(), 300)),
    }
    step
}

/// How a step's answer is read: whether it passed, and why.
type Judge = fn(&OutboundResponse, Option<&str>) -> (bool, String);

/// Reads a client-credentials token request's answer.
fn judge_issued(response: &OutboundResponse, code: Option<&str>) -> (bool, String) {
    match (response.status, code) {
        (200, None) => (true, "the provider issued a token".into()),
        (status, Some(code)) => (false, format!("the provider refused: {code} ({status})")),
        (status, None) => (false, format!("the provider answered {status}")),
    }
}

/// Reads a client's credentials from the answer to a deliberately invalid grant.
fn judge_client(response: &OutboundResponse, code: Option<&str>) -> (bool, String) {
    match (response.status, code) {
        (_, Some("invalid_grant")) => (
            true,
            "the provider accepted the client credentials (and refused the made-up grant, as it should)"
                .into(),
        ),
        (_, Some("invalid_client")) | (401, _) => (
            false,
            "the provider refused the client credentials: check client_id and client_secret".into(),
        ),
        (_, Some(other)) => (
            false,
            format!("the provider answered `{other}`, not the `invalid_grant` a made-up grant should get"),
        ),
        (status, None) => (
            false,
            format!("the provider answered {status} without an OAuth error: is token_url the token endpoint?"),
        ),
    }
}

/// The discovery document of `issuer`, compared with the integration's settings.
async fn discovery_step(
    app: &App,
    issuer: &str,
    expected: &[(&str, Option<&str>)],
    redactor: &Redactor,
) -> Step {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let request = Url::parse(&url)
        .map(OutboundRequest::get)
        .map_err(|_| "issuer is not a valid URL".to_string());
    let issuer = issuer.to_string();
    step(
        app,
        "discovery",
        "GET",
        &url,
        request,
        redactor,
        move |response, _| {
            if response.status != 200 {
                return (
                    false,
                    format!(
                        "the issuer's discovery document answered {}",
                        response.status
                    ),
                );
            }
            let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&response.body) else {
                return (false, "the discovery document is not a JSON object".into());
            };
            let mut differences = Vec::new();
            if doc.get("issuer").and_then(Value::as_str) != Some(issuer.as_str()) {
                differences.push("issuer".to_string());
            }
            for (field, ours) in expected {
                let Some(ours) = ours else { continue };
                if doc.get(*field).and_then(Value::as_str) != Some(*ours) {
                    differences.push(field.to_string());
                }
            }
            if differences.is_empty() {
                (
                    true,
                    "the issuer's metadata matches the integration's endpoints".into(),
                )
            } else {
                (
                    false,
                    format!(
                        "the issuer's metadata differs from the integration on: {}",
                        differences.join(", ")
                    ),
                )
            }
        },
    )
    .await
}

/// Runs the checks of `integration` (its current client).
pub async fn test_integration(app: &App, integration: &IntegrationRow) -> ApiResult<TestReport> {
    let spec = IntegrationSpec::parse(&integration.auth_type, &integration.config)
        .map_err(ApiError::internal)?;
    let secrets = app
        .store
        .integration_secrets(&app.vault, &integration.id)
        .await?;
    let client_secret = secrets.get("client_secret").cloned().unwrap_or_default();
    let Some(endpoint) = spec.token_endpoint() else {
        // Keys and passwords are the end user's: their integration's only
        // check is its test_request, made with them when they connect.
        return Ok(TestReport {
            ok: true,
            steps: Vec::new(),
        });
    };
    let mut redactor = Redactor::new()
        .secret(INVALID_GRANT_VALUE)
        .basic_credentials(&endpoint.client_id, &client_secret);
    if let Some(rt) = secrets.get("refresh_token") {
        redactor = redactor.secret(rt.expose());
    }
    let mut steps = Vec::new();
    let form = match &spec.auth {
        AuthSpec::OAuth2AuthorizationCode(code) => {
            if let Some(issuer) = &code.issuer {
                let expected = [
                    (
                        "authorization_endpoint",
                        Some(code.authorization_url.as_str()),
                    ),
                    ("token_endpoint", Some(code.token_url.as_str())),
                    ("jwks_uri", code.jwks_url.as_deref()),
                    ("userinfo_endpoint", code.userinfo_url.as_deref()),
                    ("revocation_endpoint", code.revocation_url.as_deref()),
                ];
                steps.push(discovery_step(app, issuer, &expected, &redactor).await);
            }
            let callback = crate::app::callback_url(&app.settings, &integration.id);
            vec![
                ("grant_type", "authorization_code".to_string()),
                ("code", INVALID_GRANT_VALUE.to_string()),
                ("redirect_uri", callback),
                (
                    "code_verifier",
                    format!("{INVALID_GRANT_VALUE}-verifier-0123456789abcdef"),
                ),
            ]
        }
        AuthSpec::OAuth2ClientCredentials(_) => {
            let mut form = vec![("grant_type", "client_credentials".to_string())];
            if !endpoint.scopes.is_empty() {
                form.push(("scope", endpoint.scopes.join(" ")));
            }
            form
        }
        AuthSpec::OAuth2RefreshToken(_) | AuthSpec::Keys(_) | AuthSpec::AwsSigV4(_) => vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", INVALID_GRANT_VALUE.to_string()),
        ],
    };
    // Client credentials: the real request; the others: a made-up grant.
    let (name, judge): (&str, Judge) = match &spec.auth {
        AuthSpec::OAuth2ClientCredentials(_) => ("token request", judge_issued),
        _ => ("token endpoint", judge_client),
    };
    let request = token_request(&endpoint, &client_secret, form);
    steps.push(
        step(
            app,
            name,
            "POST",
            &endpoint.token_url,
            request,
            &redactor,
            judge,
        )
        .await,
    );
    Ok(TestReport {
        ok: steps.iter().all(|s| s.ok),
        steps,
    })
}
