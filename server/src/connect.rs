//! The connect flow: an attempt started by the SDK, the popup that binds it to
//! one browser and sends it to the provider, and the callback that ends it.
//!
//! Rules (README, "How an end user connects an account"): an attempt is
//! single-use and lives 10 minutes; its `state`, PKCE verifier and nonces are
//! spent by the first callback that passes the browser-binding check, whatever
//! its outcome; a callback without the binding cookie spends nothing.

use std::collections::BTreeMap;

use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::auth::oauth2::CodeSpec;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids;
use crate::integrations::IntegrationSpec;
use crate::oauth::{self, Failure};
use crate::secret::Secret;
use crate::store::{
    AttemptOutcome, AttemptRow, AttemptStatus, NewAttempt, SaveOutcome, SavedConnection,
    SavedCredentials, SessionRow,
};

/// How long an attempt may take, from start to callback.
pub const ATTEMPT_TTL_SECONDS: i64 = 600;

/// The secret that binds an attempt to the browser that opened its popup
/// (the HTTP layer keeps it in an `HttpOnly` cookie sent to the callbacks
/// only). An empty `value` with `max_age` 0 forgets it.
pub struct Binding {
    pub attempt_id: String,
    pub value: String,
    pub max_age: i64,
    /// Whether it is presented to the credential form (else to the OAuth callback).
    pub form: bool,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("attempt_id", &self.attempt_id)
            .field("value", &"[redacted]")
            .field("max_age", &self.max_age)
            .field("form", &self.form)
            .finish()
    }
}

/// A started attempt, as the SDK needs it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartedAttempt {
    pub attempt_id: String,
    pub popup_url: String,
    /// The SDK hands this to its own popup when asked, and never puts it in a
    /// URL: it proves the popup was opened by the page that started the attempt.
    pub popup_proof: String,
    /// Echoed in the popup's message, so the SDK can tell its own result apart.
    pub nonce: String,
    pub expires_at: String,
}

/// Starts an attempt for the session's end user at the integration `app_key`.
pub async fn start(
    app: &App,
    session: &SessionRow,
    origin: &str,
    app_key: &str,
    reconnect_id: Option<&str>,
    params: &BTreeMap<String, String>,
) -> ApiResult<StartedAttempt> {
    // An app outside the session answers exactly like one that does not exist.
    let integration = match crate::connections::session_allows(session, app_key) {
        true => {
            app.store
                .get_integration_by_key(&session.project_id, app_key)
                .await?
        }
        false => None,
    }
    .ok_or_else(|| ApiError::not_found("app"))?;
    if let Some(id) = reconnect_id {
        crate::connections::end_users_connection(app, session, id, Some(app_key)).await?;
    }
    let spec = IntegrationSpec::parse(&integration.auth_type, &integration.config)
        .map_err(ApiError::internal)?;
    if spec.auth_type.is_project_level() {
        return Err(ApiError::not_found("app"));
    }
    let now = app.now();
    let attempt_id = ids::new_id("att");
    let proof = ids::random_base32(32);
    let state = ids::random_base32(32);
    let mut secrets: Vec<(&str, String)> = Vec::new();
    // The page the proven popup goes to: the provider's consent screen, or
    // Plugboard's own credential form for the types without OAuth.
    let redirect_uri = match spec.oauth2_code() {
        Ok(settings) => {
            let (challenge, verifier) = oauth::new_pkce();
            let nonce = settings.wants_openid().then(|| ids::random_base32(24));
            let redirect_uri = crate::app::callback_url(&app.settings, &integration.id);
            let authorization_url = oauth::authorization_url(
                settings,
                &redirect_uri,
                &state,
                &challenge,
                nonce.as_deref(),
            )
            .map_err(|f| ApiError::internal(f.message))?;
            secrets.push(("pkce_verifier", verifier.to_string()));
            secrets.push(("authorization_url", authorization_url));
            if let Some(nonce) = nonce {
                secrets.push(("oidc_nonce", nonce));
            }
            redirect_uri
        }
        Err(_) => {
            secrets.push((
                "authorization_url",
                app.settings
                    .public_url_for(&crate::credentials::form_path(&attempt_id)),
            ));
            String::new()
        }
    };
    let row = AttemptRow {
        id: attempt_id.clone(),
        project_id: session.project_id.clone(),
        session_id: session.id.clone(),
        integration_id: integration.id.clone(),
        end_user_id: session.end_user_id.clone(),
        origin: origin.to_string(),
        message_nonce: ids::random_base32(16),
        binding_hash: None,
        redirect_uri,
        reconnect_id: reconnect_id.map(str::to_string),
        params: serde_json::to_string(params).unwrap_or_else(|_| "{}".into()),
        status: AttemptStatus::Pending.as_str().into(),
        error_code: None,
        error_message: None,
        provider_code: None,
        connection_id: None,
        created_at: now,
        // An attempt lives 10 minutes, or until its session ends if sooner.
        expires_at: (now + ATTEMPT_TTL_SECONDS).min(session.expires_at),
        opened_at: None,
        spent_at: None,
        completed_at: None,
        client_generation: integration.client_generation,
        proof_hash: Some(ids::hash_secret(&proof)),
    };
    let secrets: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.store
        .insert_attempt(
            &app.vault,
            NewAttempt {
                row: &row,
                state_hash: &ids::hash_secret(&state),
                secrets: &secrets,
            },
        )
        .await?;
    Ok(StartedAttempt {
        popup_url: app
            .settings
            .public_url_for(&format!("/connect/{attempt_id}")),
        attempt_id,
        popup_proof: proof,
        nonce: row.message_nonce,
        expires_at: crate::clock::rfc3339(row.expires_at),
    })
}

/// The message the popup posts to the page that started the attempt: ids, a
/// status, an error code and the nonce — never a code or a token.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PopupMessage {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attempt_id: String,
    pub status: String,
    pub connected_account_id: Option<String>,
    pub error: Option<String>,
    pub nonce: String,
}

/// A page the popup shows: for people, and with a message for the opener when there is one to send.
pub struct Page {
    pub ok: bool,
    pub title: String,
    pub message: String,
    /// The exact origin to post to, and what.
    pub post: Option<(String, PopupMessage)>,
    /// The binding to set or forget in this browser.
    pub binding: Option<Binding>,
    /// The popup's first page: ask the opener for the attempt's proof.
    pub handshake: Option<Handshake>,
}

/// What the popup's first page needs to ask its opener for the proof.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The only origin asked, and the only one whose answer is read.
    pub origin: String,
    pub attempt_id: String,
    /// Where the proof is presented (same origin as the page).
    pub bind_url: String,
}

impl Page {
    fn refused(title: &str, message: impl Into<String>) -> Page {
        Page {
            ok: false,
            title: title.into(),
            message: message.into(),
            post: None,
            binding: None,
            handshake: None,
        }
    }
}

pub(crate) fn failed_message(attempt: &AttemptRow, code: &str) -> PopupMessage {
    PopupMessage {
        kind: "plugboard:connect",
        attempt_id: attempt.id.clone(),
        status: AttemptStatus::Failed.as_str().into(),
        connected_account_id: None,
        error: Some(code.to_string()),
        nonce: attempt.message_nonce.clone(),
    }
}

/// The session's end user's attempt; anyone else's answers `not_found`,
/// exactly like an id that does not exist.
pub async fn session_attempt(
    app: &App,
    session: &SessionRow,
    attempt_id: &str,
) -> ApiResult<AttemptRow> {
    app.store
        .get_attempt(attempt_id)
        .await?
        .filter(|a| a.project_id == session.project_id && a.end_user_id == session.end_user_id)
        .ok_or_else(|| ApiError::not_found("connect attempt"))
}

/// An attempt's status as its page sees it: a pending one past its time is `expired`.
pub fn visible_status(attempt: &AttemptRow, now: i64) -> &str {
    if attempt.status() == AttemptStatus::Pending && attempt.expires_at <= now {
        "expired"
    } else {
        &attempt.status
    }
}

/// Whether the attempt's popup went on to the provider: its page proved its
/// opener and received the authorization URL. Before that, a closed popup
/// means the user gave up; after it, a popup that looks closed may only have
/// been severed from the page by the provider's `Cross-Origin-Opener-Policy`.
/// A credential form's popup never leaves Plugboard's origin, so it never
/// reaches a provider: closed, it was closed.
pub fn reached_provider(attempt: &AttemptRow) -> bool {
    attempt.opened_at.is_some() && !is_credential_form(attempt)
}

/// Whether the attempt's popup shows Plugboard's credential form (it has no
/// OAuth redirect URI).
pub fn is_credential_form(attempt: &AttemptRow) -> bool {
    attempt.redirect_uri.is_empty()
}

/// The page gave up on the attempt (the SDK's `signal` aborted): a pending
/// attempt no callback has spent becomes `cancelled` and can create nothing.
/// One a callback got to first keeps its course. Answers the attempt as it
/// now stands.
pub async fn cancel(app: &App, session: &SessionRow, attempt_id: &str) -> ApiResult<AttemptRow> {
    let attempt = session_attempt(app, session, attempt_id).await?;
    app.store.cancel_attempt(&attempt.id, app.now()).await?;
    session_attempt(app, session, attempt_id).await
}

/// The popup's first page (SECURITY 33). It binds nothing yet: it asks its
/// opener, at the exact origin that started the attempt, for the proof the
/// SDK received when it started the attempt, and presents it with
/// [`bind_popup`]. A link opened anywhere else — in another browser, with no
/// opener, or from a page on another origin — never gets the proof, so it
/// cannot complete the attempt, and spends nothing.
pub async fn open_popup(app: &App, attempt_id: &str) -> ApiResult<Page> {
    match usable_attempt(app, attempt_id).await? {
        Err(page) => Ok(page),
        Ok(attempt) => Ok(Page {
            ok: true,
            title: "Connecting".into(),
            message: "Waiting for the app…".into(),
            post: None,
            binding: None,
            handshake: Some(Handshake {
                origin: attempt.origin,
                attempt_id: attempt.id.clone(),
                bind_url: format!("/connect/{}", attempt.id),
            }),
        }),
    }
}

/// An attempt a popup may still bind, or the page that says why not.
pub(crate) async fn usable_attempt(
    app: &App,
    attempt_id: &str,
) -> ApiResult<Result<AttemptRow, Page>> {
    let Some(attempt) = app.store.get_attempt(attempt_id).await? else {
        return Ok(Err(Page::refused(
            "This sign-in link is not valid",
            "Start again from the app.",
        )));
    };
    if attempt.expires_at <= app.now() {
        let mut page = Page::refused(
            "This sign-in link has expired",
            "Close this window and start again from the app.",
        );
        page.post = Some((
            attempt.origin.clone(),
            failed_message(&attempt, "session_expired"),
        ));
        return Ok(Err(page));
    }
    if attempt.binding_hash.is_some() || attempt.status() != AttemptStatus::Pending {
        // Opened before, perhaps in another browser: the first one keeps it.
        return Ok(Err(Page::refused(
            "This sign-in link was already used",
            "Close this window and start again from the app.",
        )));
    }
    Ok(Ok(attempt))
}

/// What the popup learns once its proof is accepted.
pub struct Bound {
    /// The provider's authorization URL, where the popup goes next.
    pub authorization_url: String,
    /// The binding to keep in this browser.
    pub binding: Binding,
}

/// Binds the attempt to this browser, given the proof the popup got from its
/// opener: sets the binding cookie and answers the authorization URL.
pub async fn bind_popup(app: &App, attempt_id: &str, proof: &str) -> ApiResult<Bound> {
    let refused = |message: &str| ApiError::new(ErrorCode::Forbidden, message);
    let attempt = match usable_attempt(app, attempt_id).await? {
        Ok(attempt) => attempt,
        Err(page) => return Err(refused(&format!("{}. {}", page.title, page.message))),
    };
    let proven = attempt
        .proof_hash
        .as_deref()
        .is_some_and(|h| bool::from(ids::hash_secret(proof).as_slice().ct_eq(h)));
    if !proven {
        return Err(refused(
            "This window was not opened by the app that started the sign-in. \
             Close it and start again from the app.",
        ));
    }
    let binding = ids::random_base32(32);
    let now = app.now();
    if !app
        .store
        .open_attempt(&attempt.id, &ids::hash_secret(&binding), now)
        .await?
    {
        return Err(refused(
            "This sign-in link was already used. Close this window and start again from the app.",
        ));
    }
    let secrets = app.store.attempt_secrets(&app.vault, &attempt.id).await?;
    let Some(url) = secrets.get("authorization_url") else {
        return Err(ApiError::internal(
            "a pending attempt has no authorization URL",
        ));
    };
    Ok(Bound {
        authorization_url: url.expose().to_string(),
        binding: Binding {
            attempt_id: attempt.id.clone(),
            value: binding,
            max_age: (attempt.expires_at - now).clamp(1, ATTEMPT_TTL_SECONDS),
            form: is_credential_form(&attempt),
        },
    })
}

/// The callback's query parameters.
#[derive(Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code and the state are bearer values: only whether they came.
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .field("iss", &self.iss)
            .finish()
    }
}

/// Handles the provider's redirect back to `/oauth/callback/{integration_id}`.
pub async fn callback(
    app: &App,
    integration_id: &str,
    params: &CallbackParams,
    // The bindings this browser presented, by attempt id.
    bindings: &BTreeMap<String, String>,
) -> ApiResult<Page> {
    let invalid = || {
        Page::refused(
            "This sign-in link is not valid",
            "Close this window and start again from the app.",
        )
    };
    let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(invalid());
    };
    let Some(attempt) = app
        .store
        .find_attempt_by_state(&ids::hash_secret(state))
        .await?
    else {
        return Ok(invalid());
    };
    // The state of one integration's attempt arriving at another's callback is a mix-up.
    if attempt.integration_id != integration_id {
        return Ok(invalid());
    }
    let presented = bindings.get(&attempt.id).map(|v| ids::hash_secret(v));
    let bound = match (&presented, &attempt.binding_hash) {
        (Some(p), Some(b)) => bool::from(p.as_slice().ct_eq(b.as_slice())),
        _ => false,
    };
    if !bound {
        // Nothing is spent: the browser that started the attempt can still finish it.
        return Ok(Page::refused(
            "This sign-in did not start in this browser",
            "Finish signing in from the window the app opened, or start again from the app.",
        ));
    }
    if attempt.status() == AttemptStatus::Cancelled {
        return Ok(Page::refused(
            "This sign-in was cancelled",
            "The app stopped waiting for it. Close this window and start again from the app.",
        ));
    }
    let now = app.now();
    if !app.store.spend_attempt(&attempt.id, now).await? {
        return Ok(Page::refused(
            "This sign-in link was already used",
            "Close this window; the app has the result.",
        ));
    }
    let secrets = app.store.attempt_secrets(&app.vault, &attempt.id).await?;
    let outcome = finish(app, &attempt, params, &secrets, now).await;
    conclude(app, &attempt, outcome, now).await
}

/// Ends a spent attempt with `outcome` (the connection id and whether it is
/// new, or why not): records it, and answers the page that tells the person
/// and posts the result to the page that started it. The OAuth callback and
/// the credential form both end here.
pub(crate) async fn conclude(
    app: &App,
    attempt: &AttemptRow,
    outcome: Result<(String, bool), Failure>,
    now: i64,
) -> ApiResult<Page> {
    let forget = Binding {
        attempt_id: attempt.id.clone(),
        value: String::new(),
        max_age: 0,
        form: is_credential_form(attempt),
    };
    let (ok, title, message, connection_id, failure) = match outcome {
        Ok((connection_id, created)) => (
            true,
            "Account connected".to_string(),
            if created {
                "You can close this window."
            } else {
                "The account was updated. You can close this window."
            }
            .to_string(),
            Some(connection_id),
            None,
        ),
        Err(failure) => (
            false,
            "The account was not connected".to_string(),
            failure.message.clone(),
            None,
            Some(failure),
        ),
    };
    app.store
        .finish_attempt(
            &attempt.id,
            AttemptOutcome {
                status: if ok {
                    AttemptStatus::Succeeded
                } else {
                    AttemptStatus::Failed
                },
                error_code: failure.as_ref().map(|f| f.code.as_str()),
                error_message: failure.as_ref().map(|f| f.message.as_str()),
                provider_code: failure.as_ref().and_then(|f| f.provider_code.as_deref()),
                connection_id: connection_id.as_deref(),
                now,
            },
        )
        .await?;
    let post = PopupMessage {
        kind: "plugboard:connect",
        attempt_id: attempt.id.clone(),
        status: if ok {
            AttemptStatus::Succeeded
        } else {
            AttemptStatus::Failed
        }
        .as_str()
        .into(),
        connected_account_id: connection_id,
        error: failure.as_ref().map(|f| f.code.as_str().to_string()),
        nonce: attempt.message_nonce.clone(),
    };
    Ok(Page {
        ok,
        title,
        message,
        post: Some((attempt.origin.clone(), post)),
        binding: Some(forget),
        handshake: None,
    })
}

/// A failure inside Plugboard, logged; the end user sees a plain message.
pub(crate) fn internal_failure(attempt: &AttemptRow, e: &dyn std::fmt::Display) -> Failure {
    tracing::error!(error = %e, attempt = %attempt.id, "connect attempt failed inside Plugboard");
    Failure {
        code: ErrorCode::Internal,
        message: "Plugboard could not finish the sign-in.".into(),
        provider_code: None,
    }
}

pub(crate) fn failure(code: ErrorCode, message: &str) -> Failure {
    Failure {
        code,
        message: message.into(),
        provider_code: None,
    }
}

/// Everything after the attempt is spent: checks, the code exchange, the
/// account, the account rules. Answers the connection id and whether it is new.
async fn finish(
    app: &App,
    attempt: &AttemptRow,
    params: &CallbackParams,
    secrets: &BTreeMap<String, Secret>,
    now: i64,
) -> Result<(String, bool), Failure> {
    let internal = |e: &dyn std::fmt::Display| internal_failure(attempt, e);
    still_valid(app, attempt, now).await?;
    let integration = app
        .store
        .get_integration_by_id(&attempt.integration_id)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| failure(ErrorCode::NotFound, "The app was removed."))?;
    // The code goes to the client the authorization request was made for,
    // even if the integration has moved to another one since.
    let client = app
        .store
        .oauth_client(&app.vault, &integration, attempt.client_generation)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| internal(&"the attempt's OAuth client is gone"))?;
    let client_spec =
        IntegrationSpec::parse(&integration.auth_type, &client.config).map_err(|e| internal(&e))?;
    let settings = client_spec.oauth2_code().map_err(|e| internal(&e))?;
    let multiple_accounts = IntegrationSpec::parse(&integration.auth_type, &integration.config)
        .map_err(|e| internal(&e))?
        .multiple_accounts;
    let code = accepted_code(params, settings)?;
    let verifier = secrets
        .get("pkce_verifier")
        .ok_or_else(|| internal(&"no PKCE verifier"))?;
    let client_secret = client
        .secrets
        .get("client_secret")
        .cloned()
        .unwrap_or_default();
    let tokens = oauth::exchange_code(
        &app.outbound,
        settings,
        &client_secret,
        code,
        verifier,
        &attempt.redirect_uri,
    )
    .await?;
    let nonce = secrets.get("oidc_nonce").map(Secret::expose);
    let account = identify_account(app, settings, &tokens, nonce, now).await?;
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
                scopes: &tokens.scopes,
                client_generation: attempt.client_generation,
                credentials: SavedCredentials::Tokens {
                    access_token: &tokens.access_token,
                    refresh_token: tokens.refresh_token.as_deref(),
                    token_type: &tokens.token_type,
                    token_expires_at: tokens
                        .expires_in
                        .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
                },
                now,
            },
            |facts| crate::connections::account_rule(facts, multiple_accounts, false),
        )
        .await
        .map_err(|e| internal(&e))?;
    saved(outcome)
}

/// A saved account as the attempt's outcome, by the contract's account rules.
pub(crate) fn saved(outcome: SaveOutcome) -> Result<(String, bool), Failure> {
    match outcome {
        SaveOutcome::Created(id) => Ok((id, true)),
        SaveOutcome::Updated(id) => Ok((id, false)),
        SaveOutcome::AccountLimit => Err(failure(
            ErrorCode::AccountLimit,
            "Only one account can be connected to this app; disconnect the other one first.",
        )),
        SaveOutcome::AccountMismatch => Err(failure(
            ErrorCode::AccountMismatch,
            "You signed in with a different account than the one being reconnected.",
        )),
        SaveOutcome::ReconnectTargetMissing => Err(failure(
            ErrorCode::NotFound,
            "The account being reconnected no longer exists.",
        )),
    }
}

/// The attempt, and the session it belongs to, have not expired.
pub(crate) async fn still_valid(app: &App, attempt: &AttemptRow, now: i64) -> Result<(), Failure> {
    let expired = |what: &str| {
        failure(
            ErrorCode::SessionExpired,
            &format!("The {what} expired before the sign-in finished. Start again from the app."),
        )
    };
    if attempt.expires_at <= now {
        return Err(expired("sign-in link"));
    }
    let session = app
        .store
        .get_session(&attempt.session_id)
        .await
        .map_err(|e| internal_failure(attempt, &e))?;
    if session.is_none_or(|s| s.expires_at <= now) {
        return Err(expired("connect session"));
    }
    Ok(())
}

/// The authorization response's code, once the response passed its checks:
/// the issuer it names (RFC 9207), and no error from the provider.
fn accepted_code<'p>(params: &'p CallbackParams, settings: &CodeSpec) -> Result<&'p str, Failure> {
    // A response that names another issuer is never exchanged.
    if let (Some(iss), Some(expected)) = (params.iss.as_deref(), settings.issuer.as_deref()) {
        if iss != expected {
            return Err(Failure::provider(
                "The response came from a different issuer than the app's; it was not used.",
                Some("invalid_issuer".into()),
            ));
        }
    }
    if let Some(error) = params.error.as_deref() {
        // The provider's words, minus what the authorization request carried.
        let redactor =
            crate::redact::Redactor::new().secret(params.state.as_deref().unwrap_or_default());
        let description = params
            .error_description
            .as_deref()
            .map(|d| redactor.clean(d, 300));
        let error = redactor.clean(error, 64);
        if error == "access_denied" {
            return Err(Failure {
                code: ErrorCode::AccessDenied,
                message: description.unwrap_or_else(|| "Access was not granted.".into()),
                provider_code: Some(error),
            });
        }
        let message = match description {
            Some(d) => format!("The provider reported an error: {error}: {d}"),
            None => format!("The provider reported an error: {error}"),
        };
        return Err(Failure::provider(message, Some(error)));
    }
    params
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Failure::provider("The provider sent no authorization code.", None))
}

/// Who signed in: the provider's subject and a label for people.
struct Account {
    subject: Option<String>,
    label: Option<String>,
}

/// Learns the account from the ID token (checked) and the userinfo endpoint.
async fn identify_account(
    app: &App,
    settings: &CodeSpec,
    tokens: &oauth::Tokens,
    nonce: Option<&str>,
    now: i64,
) -> Result<Account, Failure> {
    let mut subject = None;
    let mut label = None;
    if let Some(id_token) = tokens.id_token.as_deref() {
        let claims = oauth::check_id_token(&app.outbound, settings, id_token, nonce, now).await?;
        label = claims
            .email
            .clone()
            .or(claims.preferred_username.clone())
            .or(claims.name.clone());
        subject = claims.sub;
    } else if settings.wants_openid() {
        return Err(Failure::provider(
            "The provider sent no ID token although openid was asked for.",
            None,
        ));
    }
    if let Some(userinfo_url) = settings.userinfo_url.as_deref() {
        let info = oauth::fetch_userinfo(&app.outbound, userinfo_url, &tokens.access_token).await?;
        if let (Some(known), Some(theirs)) = (&subject, &info.sub) {
            if known != theirs {
                return Err(Failure::provider(
                    "The provider's userinfo names another account than its ID token.",
                    None,
                ));
            }
        }
        subject = subject.or(info.sub.clone());
        label = info
            .email
            .or(info.preferred_username)
            .or(info.name)
            .or(label);
    }
    // A label is for display only: what could make it look like another account goes.
    let label = label
        .or_else(|| subject.clone())
        .map(|l| crate::text::display_label(&l))
        .filter(|l| !l.is_empty());
    Ok(Account { subject, label })
}
