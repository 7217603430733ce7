//! The credential form: how an end user connects an account whose auth type
//! has no OAuth (API keys, Basic, key with URL, AWS keys). It is the popup's
//! page for those types, in place of a provider's consent screen, reached the
//! same way — the popup proves its opener, the attempt is bound to this
//! browser — and it ends the same way (`connect::conclude`).
//!
//! Submitting it: every field is checked (a URL by the outbound rules of
//! SECURITY 16, a region as a region); the integration's `test_request`, if
//! it has one, is sent with the credentials and must answer as expected
//! before anything is saved; its `label_pointer` value names and identifies
//! the account. Until then the attempt stays open, so the end user can
//! correct a field. A submitted credential is never put back into a page.

use std::collections::BTreeMap;

use base64::Engine;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::auth::{self, ConnectionCredential, CredentialField, FieldKind};
use crate::connect::{self, Page};
use crate::error::{ApiResult, ErrorCode};
use crate::ids;
use crate::integrations::{IntegrationSpec, TestRequest};
use crate::oauth::Failure;
use crate::outbound::{OutboundError, OutboundRequest};
use crate::redact::Redactor;
use crate::secret::Secret;
use crate::store::{AttemptRow, AttemptStatus, SavedConnection, SavedCredentials};

/// Where an attempt's credential form is served.
pub fn form_path(attempt_id: &str) -> String {
    format!("/connect/{attempt_id}/form")
}

/// The optional name an end user may give an account whose integration
/// learns none from its `test_request`.
pub const NAME_FIELD: &str = "account_name";

/// The form's anti-forgery field.
pub const TOKEN_FIELD: &str = "form_token";

/// One field as the form shows it.
#[derive(Debug, Clone)]
pub struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    /// What the end user typed, shown again after a refusal — only for
    /// fields that hold no secret (a URL, a region, a name).
    pub value: Option<String>,
    pub placeholder: Option<String>,
    pub error: Option<String>,
}

/// The credential form of one attempt.
#[derive(Debug, Clone)]
pub struct Form {
    pub attempt_id: String,
    /// The integration's label, as the end user knows the app.
    pub app_label: String,
    pub docs_url: Option<String>,
    pub help: Option<String>,
    pub fields: Vec<FormField>,
    /// Why the last submission was refused, as a whole.
    pub message: Option<String>,
    /// Derived from this browser's binding: a form posted from anywhere else lacks it.
    pub token: String,
    pub reconnecting: bool,
}

/// What the popup shows next.
pub enum Shown {
    Form(Form),
    /// The attempt ended (or cannot go on): the popup's result page.
    Done(Page),
}

fn form_token(binding: &str) -> String {
    let digest = ids::hash_secret(&format!("credential-form:{binding}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

fn refused(title: &str, message: &str) -> Shown {
    Shown::Done(refused_page(title, message))
}

fn refused_page(title: &str, message: &str) -> Page {
    Page {
        ok: false,
        title: title.into(),
        message: message.into(),
        post: None,
        binding: None,
        handshake: None,
    }
}

/// The attempt behind a form request, when this browser holds its binding.
async fn bound_attempt(
    app: &App,
    attempt_id: &str,
    binding: Option<&str>,
) -> ApiResult<Result<AttemptRow, Shown>> {
    let Some(attempt) = app.store.get_attempt(attempt_id).await? else {
        return Ok(Err(refused(
            "This sign-in link is not valid",
            "Start again from the app.",
        )));
    };
    let presented = binding.map(ids::hash_secret);
    let bound = match (&presented, &attempt.binding_hash) {
        (Some(p), Some(b)) => bool::from(p.as_slice().ct_eq(b.as_slice())),
        _ => false,
    };
    if !connect::is_credential_form(&attempt) || !bound {
        return Ok(Err(refused(
            "This form did not open in this browser",
            "Use the window the app opened, or start again from the app.",
        )));
    }
    if attempt.status() == AttemptStatus::Cancelled {
        return Ok(Err(refused(
            "This sign-in was cancelled",
            "The app stopped waiting for it. Close this window and start again from the app.",
        )));
    }
    if attempt.spent_at.is_some() || attempt.status() != AttemptStatus::Pending {
        return Ok(Err(refused(
            "This form was already sent",
            "Close this window; the app has the result.",
        )));
    }
    if attempt.expires_at <= app.now() {
        // The app learns it too, as from an OAuth popup that came back late.
        let mut page = refused_page(
            "This sign-in link has expired",
            "Close this window and start again from the app.",
        );
        page.post = Some((
            attempt.origin.clone(),
            connect::failed_message(&attempt, "session_expired"),
        ));
        return Ok(Err(Shown::Done(page)));
    }
    Ok(Ok(attempt))
}

/// The integration settings the attempt was started with.
async fn attempt_spec(app: &App, attempt: &AttemptRow) -> ApiResult<Option<IntegrationSpec>> {
    let Some(integration) = app
        .store
        .get_integration_by_id(&attempt.integration_id)
        .await?
    else {
        return Ok(None);
    };
    let Some(client) = app
        .store
        .oauth_client(&app.vault, &integration, attempt.client_generation)
        .await?
    else {
        return Ok(None);
    };
    Ok(IntegrationSpec::parse(&integration.auth_type, &client.config).ok())
}

fn blank_form(attempt: &AttemptRow, spec: &IntegrationSpec, binding: &str) -> Form {
    let mut fields: Vec<FormField> = auth::credential_fields(spec.auth_type)
        .iter()
        .map(|f: &CredentialField| FormField {
            name: f.name,
            label: f.label,
            kind: f.kind,
            required: true,
            value: None,
            placeholder: match f.kind {
                FieldKind::Url => Some(
                    spec.api_base_url
                        .clone()
                        .unwrap_or_else(|| "https://".into()),
                ),
                FieldKind::Region => Some("eu-west-1".into()),
                _ => None,
            },
            error: None,
        })
        .collect();
    let names_itself = spec
        .test_request
        .as_ref()
        .is_some_and(|t| t.label_pointer.is_some());
    if !names_itself {
        fields.push(FormField {
            name: NAME_FIELD,
            label: "A name for this account (optional)",
            kind: FieldKind::Identifier,
            required: false,
            value: None,
            placeholder: None,
            error: None,
        });
    }
    Form {
        attempt_id: attempt.id.clone(),
        app_label: spec.label.clone(),
        docs_url: spec.docs_url.clone(),
        help: spec.credential_help.clone(),
        fields,
        message: None,
        token: form_token(binding),
        reconnecting: attempt.reconnect_id.is_some(),
    }
}

/// The form, for the browser the attempt is bound to.
pub async fn show(app: &App, attempt_id: &str, binding: Option<&str>) -> ApiResult<Shown> {
    let attempt = match bound_attempt(app, attempt_id, binding).await? {
        Ok(attempt) => attempt,
        Err(shown) => return Ok(shown),
    };
    let Some(spec) = attempt_spec(app, &attempt).await? else {
        return Ok(refused(
            "This app is no longer available",
            "Close this window and start again from the app.",
        ));
    };
    Ok(Shown::Form(blank_form(
        &attempt,
        &spec,
        binding.unwrap_or_default(),
    )))
}

/// The form as submitted: the fields' values, by name.
pub async fn submit(
    app: &App,
    attempt_id: &str,
    binding: Option<&str>,
    values: &BTreeMap<String, String>,
) -> ApiResult<Shown> {
    let attempt = match bound_attempt(app, attempt_id, binding).await? {
        Ok(attempt) => attempt,
        Err(shown) => return Ok(shown),
    };
    let binding = binding.unwrap_or_default();
    let token_ok = values
        .get(TOKEN_FIELD)
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(form_token(binding).as_bytes())));
    if !token_ok {
        return Ok(refused(
            "This form was not sent from its own window",
            "Use the window the app opened, or start again from the app.",
        ));
    }
    let Some(spec) = attempt_spec(app, &attempt).await? else {
        return Ok(refused(
            "This app is no longer available",
            "Close this window and start again from the app.",
        ));
    };
    let mut form = blank_form(&attempt, &spec, binding);
    let mut fields: BTreeMap<String, Secret> = BTreeMap::new();
    let mut name = None;
    let allow = app.outbound.allow_list();
    for field in &mut form.fields {
        let raw = values.get(field.name).map(String::as_str).unwrap_or("");
        let keeps_value =
            matches!(field.kind, FieldKind::Url | FieldKind::Region) || field.name == NAME_FIELD;
        if keeps_value && !raw.is_empty() && raw.chars().count() <= 2048 {
            field.value = Some(crate::text::display_label(raw));
        }
        if field.name == NAME_FIELD {
            let label = crate::text::display_label(raw);
            if label.chars().count() > 200 {
                field.error = Some("must be at most 200 characters".into());
            } else if !label.is_empty() {
                name = Some(label);
            }
            continue;
        }
        let spec_field = CredentialField {
            name: field.name,
            label: field.label,
            kind: field.kind,
        };
        match auth::check_field(&spec_field, raw, allow) {
            Ok(value) => {
                fields.insert(field.name.to_string(), Secret::new(value));
            }
            Err(reason) => field.error = Some(reason),
        }
    }
    if form.fields.iter().any(|f| f.error.is_some()) {
        form.message = Some("Check the fields marked below.".into());
        return Ok(Shown::Form(form));
    }
    let now = app.now();
    if let Err(failure) = connect::still_valid(app, &attempt, now).await {
        return end(app, &attempt, Err(failure), now).await;
    }
    let credential = match ConnectionCredential::from_fields(&spec.auth, &fields, app.clock.now()) {
        Ok(c) => c,
        Err(e) => {
            let failure = connect::internal_failure(&attempt, &e);
            return end(app, &attempt, Err(failure), now).await;
        }
    };
    let mut account = Account {
        subject: None,
        label: None,
    };
    if let Some(test) = &spec.test_request {
        if let Err(wait) = app
            .limiters
            .credential_checks
            .take(&attempt.id, app.now_precise())
        {
            form.message = Some(format!(
                "Too many tries. Wait {wait} seconds, then try again."
            ));
            return Ok(Shown::Form(form));
        }
        let base = spec.connection_base_url(&fields);
        match run_test_request(app, test, base.as_deref(), credential, &fields).await {
            Ok(found) => account = found,
            Err(message) => {
                form.message = Some(message);
                return Ok(Shown::Form(form));
            }
        }
    }
    if account.label.is_none() {
        account.label = name;
    }
    let saved: Vec<(&str, Secret)> = auth::credential_fields(spec.auth_type)
        .iter()
        .filter_map(|f| fields.get(f.name).map(|v| (f.name, v.clone())))
        .collect();
    let outcome = save(app, &attempt, &spec, &account, &saved, now).await;
    end(app, &attempt, outcome, now).await
}

/// Spends the attempt and ends it with `outcome`; a second submission that
/// raced this one finds it spent.
async fn end(
    app: &App,
    attempt: &AttemptRow,
    outcome: Result<(String, bool), Failure>,
    now: i64,
) -> ApiResult<Shown> {
    if !app.store.spend_attempt(&attempt.id, now).await? {
        return Ok(refused(
            "This form was already sent",
            "Close this window; the app has the result.",
        ));
    }
    Ok(Shown::Done(
        connect::conclude(app, attempt, outcome, now).await?,
    ))
}

/// The account the credentials belong to.
struct Account {
    /// The `label_pointer` value: the same value is the same account.
    subject: Option<String>,
    label: Option<String>,
}

async fn save(
    app: &App,
    attempt: &AttemptRow,
    spec: &IntegrationSpec,
    account: &Account,
    fields: &[(&str, Secret)],
    now: i64,
) -> Result<(String, bool), Failure> {
    let internal = |e: &dyn std::fmt::Display| connect::internal_failure(attempt, e);
    let integration = app
        .store
        .get_integration_by_id(&attempt.integration_id)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| connect::failure(ErrorCode::NotFound, "The app was removed."))?;
    // The current settings decide how many accounts the end user may have.
    let multiple_accounts = IntegrationSpec::parse(&integration.auth_type, &integration.config)
        .map(|s| s.multiple_accounts)
        .unwrap_or(spec.multiple_accounts);
    let outcome = app
        .store
        .save_connection(
            &app.vault,
            SavedConnection {
                project_id: &attempt.project_id,
                integration_id: &integration.id,
                integration_key: &integration.key,
                end_user_id: &attempt.end_user_id,
                reconnect_id: attempt.reconnect_id.as_deref(),
                subject: account.subject.as_deref(),
                label: account.label.as_deref(),
                scopes: &[],
                client_generation: attempt.client_generation,
                credentials: SavedCredentials::Fields(fields),
                now,
            },
            |facts| crate::connections::account_rule(facts, multiple_accounts, true),
        )
        .await
        .map_err(|e| internal(&e))?;
    connect::saved(outcome)
}

/// Sends the integration's `test_request` with the credentials. Answers the
/// account it names, or the message the form shows.
async fn run_test_request(
    app: &App,
    test: &TestRequest,
    base: Option<&str>,
    credential: ConnectionCredential,
    fields: &BTreeMap<String, Secret>,
) -> Result<Account, String> {
    let unreachable = "Plugboard could not check these credentials with the service. \
                       Try again in a moment.";
    let Some(base) = base else {
        tracing::error!("a test_request without a base URL");
        return Err(unreachable.into());
    };
    let url = crate::outbound::append_path(base, &test.path).ok_or_else(|| {
        tracing::error!(base, path = %test.path, "a test_request's URL cannot be built");
        unreachable.to_string()
    })?;
    let method = http::Method::from_bytes(test.method.as_bytes()).unwrap_or(http::Method::GET);
    let host = url.host_str().unwrap_or_default().to_string();
    let request = OutboundRequest::new(method, url)
        .header("accept", "application/json")
        .map_err(|_| unreachable.to_string())?
        .credential(credential);
    let response = match app.outbound.send(request).await {
        Ok(r) => r,
        Err(e @ (OutboundError::Refused { .. } | OutboundError::Unlisted(_))) => {
            // The detail is for the operator; the end user learns only that it cannot be used.
            tracing::warn!(error = %e, "a credential form's URL is not one Plugboard calls");
            return Err("This URL cannot be used: Plugboard does not call that address.".into());
        }
        Err(OutboundError::Timeout) => {
            return Err(format!(
                "{host} did not answer in time. Check the URL and try again."
            ))
        }
        Err(OutboundError::Resolve(_)) => {
            return Err(format!(
                "{host} could not be found. Check the URL and try again."
            ))
        }
        Err(OutboundError::TooLarge(_)) => {
            return Err(format!("{host} answered with more than Plugboard reads."))
        }
        Err(_) => {
            return Err(format!(
                "{host} could not be reached. Check the URL and try again."
            ))
        }
    };
    let redactor = redactor(fields);
    if response.status != test.expect_status {
        let excerpt = redactor.clean(
            &String::from_utf8_lossy(&response.body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            200,
        );
        let said = if excerpt.is_empty() {
            String::new()
        } else {
            format!(" It said: {excerpt}")
        };
        return Err(format!(
            "{host} did not accept these credentials (HTTP {}).{said}",
            response.status
        ));
    }
    let Some(pointer) = &test.label_pointer else {
        return Ok(Account {
            subject: None,
            label: None,
        });
    };
    let body: serde_json::Value = serde_json::from_slice(&response.body).map_err(|_| {
        format!("{host} accepted these credentials, but its answer was not JSON, so the account could not be named.")
    })?;
    let value = match body.pointer(pointer) {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    // An answer that echoes a credential must not make it a label.
    let value = redactor.clean(&value, 500);
    if value.is_empty() {
        return Err(format!(
            "{host} accepted these credentials, but its answer did not name the account."
        ));
    }
    Ok(Account {
        label: Some(crate::text::display_label(&value)).filter(|l| !l.is_empty()),
        subject: Some(value),
    })
}

/// Every secret among a connection's fields (all but its URL and region),
/// and the Basic pair they make, in every spelling they are sent.
pub(crate) fn redactor(fields: &BTreeMap<String, Secret>) -> Redactor {
    let mut redactor = Redactor::new();
    for (name, value) in fields {
        if matches!(name.as_str(), "base_url" | "region") {
            continue;
        }
        redactor = redactor.secret(value.expose());
    }
    if let (Some(user), Some(password)) = (fields.get("username"), fields.get("password")) {
        let pair = format!("{}:{}", user.expose(), password.expose());
        redactor =
            redactor.secret(&base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
    }
    redactor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::append_path;

    #[test]
    fn a_test_path_is_appended_to_the_base_and_keeps_its_host() {
        assert_eq!(
            append_path("https://api.example.com/v2", "/me")
                .unwrap()
                .as_str(),
            "https://api.example.com/v2/me"
        );
        assert_eq!(
            append_path("https://api.example.com/v2/", "/me?x=1")
                .unwrap()
                .as_str(),
            "https://api.example.com/v2/me?x=1"
        );
        assert_eq!(
            append_path("http://127.0.0.1:8080", "/user")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/user"
        );
        // A base without a path cannot be turned into another host by a path.
        assert!(append_path("https://api.example.com", "@evil.example/x").is_none());
        assert!(append_path("https://api.example.com", ".evil.example/x").is_none());
        assert!(append_path("https://api.example.com:443", ":8443/x").is_none());
    }

    #[test]
    fn the_redactor_removes_every_submitted_secret_and_basic_pair() {
        let fields: BTreeMap<String, Secret> = [
            ("username", "canary-user"),
            ("password", "canary-pass"),
            ("base_url", "https://acme.example.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Secret::new(v)))
        .collect();
        let pair = base64::engine::general_purpose::STANDARD.encode("canary-user:canary-pass");
        let cleaned = redactor(&fields).clean(
            &format!("user canary-user pass canary-pass basic {pair} at https://acme.example.com"),
            500,
        );
        assert!(!cleaned.contains("canary"), "{cleaned}");
        assert!(!cleaned.contains(&pair), "{cleaned}");
        assert!(cleaned.contains("https://acme.example.com"), "{cleaned}");
    }
}
