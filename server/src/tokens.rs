//! Fresh credentials for a connection, and the token lifecycle behind them.
//!
//! Every use of a connection's access token goes through [`fresh_access_token`]:
//! a token that expires within the integration's `refresh_buffer_seconds` is
//! refreshed first. The refresh is single-flight per connection: within a
//! process, callers queue on one lock and the ones after the first find the
//! token it stored; across processes sharing a database, a lease in the
//! connection's row lets one process call the provider while the others wait
//! for the version it stores (`store::tokens`). No transaction stays open
//! while the provider is called.
//!
//! `invalid_grant` marks the connection `needs_reauth` (with its event) and
//! stops further calls until the end user connects it again. A failure that
//! may pass (a timeout, a 5xx) leaves it active: it is retried with backoff
//! within the call, then recorded, and the background job tries again later.
//! A response without a new refresh token keeps the old one; one without
//! `expires_in` leaves the token without an expiry, used until a provider
//! refuses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::json;

use crate::app::App;
use crate::auth::oauth2::TokenEndpoint;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::integrations::{AuthSpec, AuthType, IntegrationSpec};
use crate::oauth::{self, Failure, RefreshError};
use crate::secret::Secret;
use crate::store::{RefreshFailure, Refreshed, TokenState};

/// How long a process may hold a connection's refresh lease: longer than a
/// refresh can take (its tries stop after [`TRY_FOR`]), short enough that a
/// process that died holding it delays the others only briefly.
const LEASE_SECONDS: i64 = 45;
/// A refresh retries failures that may pass for this long at most.
const TRY_FOR: Duration = Duration::from_secs(15);
fn lease_seconds() -> i64 {
    // A crash test cannot wait out a real lease left by the process it killed.
    #[cfg(feature = "fault-hooks")]
    if let Some(seconds) = crate::faults::seconds("LEASE_SECONDS") {
        return seconds;
    }
    LEASE_SECONDS
}

/// Pauses between tries of one refresh.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];
/// How often a caller waiting for another process's refresh looks again.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// An access token ready to use.
#[derive(Clone)]
pub struct AccessToken {
    pub access_token: Secret,
    pub token_type: String,
    /// Unix seconds; `None` when the provider gave no expiry.
    pub expires_at: Option<i64>,
    /// The connection's token version it is: a caller whose token the
    /// provider rejects names it to [`replace_rejected_token`].
    pub version: i64,
    /// Unix seconds from which a caller keeping it must ask for a fresh one
    /// (its refresh is due); `None` when it never expires.
    pub due_at: Option<i64>,
}

/// What a caller needs to call the provider itself with a connection.
pub enum FreshCredentials {
    /// An OAuth connection's access token, refreshed first when due.
    AccessToken(AccessToken),
    /// The fields of a key, password or AWS connection, in the order its
    /// auth type lists them (`auth::credential_fields`).
    Fields(Vec<(&'static str, Secret)>),
}

/// The connection's credentials for use: every OAuth use goes through
/// [`fresh_access_token`]; the other types' fields are as the end user saved them.
pub async fn fresh_credentials(
    app: &App,
    connection_id: &str,
    auth_type: crate::integrations::AuthType,
) -> ApiResult<FreshCredentials> {
    if auth_type.is_oauth() {
        return Ok(FreshCredentials::AccessToken(
            fresh_access_token(app, connection_id).await?,
        ));
    }
    let stored = app
        .store
        .connection_secrets(&app.vault, connection_id)
        .await?;
    let fields = crate::auth::credential_fields(auth_type)
        .iter()
        .map(|f| {
            stored
                .get(f.name)
                .cloned()
                .map(|v| (f.name, v))
                .ok_or_else(|| ApiError::internal(format!("the connection has no {}", f.name)))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(FreshCredentials::Fields(fields))
}

/// This process's side of single-flight refresh: its name as a lease holder,
/// and one lock per connection being refreshed.
pub struct Refreshes {
    holder: String,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Default for Refreshes {
    fn default() -> Self {
        Refreshes {
            holder: crate::ids::new_id("proc"),
            locks: Mutex::new(HashMap::new()),
        }
    }
}

impl Refreshes {
    fn lock_for(&self, connection_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = locks.get(connection_id).and_then(Weak::upgrade) {
            return lock;
        }
        locks.retain(|_, weak| weak.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(connection_id.to_string(), Arc::downgrade(&lock));
        lock
    }
}

fn needs_reauth(message: impl Into<String>, provider_code: Option<String>) -> ApiError {
    let mut error = ApiError::new(ErrorCode::NeedsReauth, message);
    error.provider_code = provider_code;
    error
}

fn not_found() -> ApiError {
    ApiError::not_found("connection")
}

/// Whether a token expiring at `expires_at` should be refreshed before use:
/// within `buffer` seconds of its expiry, or within half its lifetime when
/// that is shorter (a token that lives less than the buffer would otherwise
/// be refreshed at every use).
fn due(expires_at: Option<i64>, obtained_at: Option<i64>, buffer: i64, now: i64) -> bool {
    due_at(expires_at, obtained_at, buffer).is_some_and(|at| at <= now)
}

/// From when a token is due (see [`due`]); `None` when it never expires.
fn due_at(expires_at: Option<i64>, obtained_at: Option<i64>, buffer: i64) -> Option<i64> {
    let at = expires_at?;
    let buffer = match obtained_at {
        Some(from) if at > from => buffer.min((at - from) / 2),
        _ => buffer,
    };
    Some(at.saturating_sub(buffer))
}

/// Where a connection's next access token comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Its refresh token (the authorization code's, or the one a developer
    /// pasted into an `oauth2_refresh_token` integration).
    RefreshToken,
    /// The client's own credentials: a new token whenever one is needed.
    ClientCredentials,
}

/// What refreshing needs to know about the connection's integration.
struct Grant {
    endpoint: TokenEndpoint,
    /// Its integration: the client secret is read from it only when the
    /// provider is called.
    integration: crate::store::IntegrationRow,
    buffer: i64,
    source: Source,
}

async fn grant(app: &App, state: &TokenState) -> ApiResult<Grant> {
    let integration = app
        .store
        .get_integration_by_id(&state.integration_id)
        .await?
        .ok_or_else(not_found)?;
    let spec = IntegrationSpec::parse(&integration.auth_type, &integration.config)
        .map_err(ApiError::internal)?;
    // The refresh goes to the client the connection was made with.
    let config = app
        .store
        .client_config(&integration, state.client_generation)
        .await?
        .ok_or_else(|| ApiError::internal("the connection's OAuth client is gone"))?;
    let client_spec =
        IntegrationSpec::parse(&integration.auth_type, &config).map_err(ApiError::internal)?;
    let source = match client_spec.auth {
        AuthSpec::OAuth2ClientCredentials(_) => Source::ClientCredentials,
        _ => Source::RefreshToken,
    };
    Ok(Grant {
        endpoint: client_spec.token_endpoint().ok_or_else(|| {
            ApiError::internal("the connection's integration has no token endpoint")
        })?,
        buffer: spec.refresh_buffer_seconds,
        source,
        integration,
    })
}

impl Grant {
    /// The client secret of the connection's client generation.
    async fn client_secret(&self, app: &App, generation: i64) -> ApiResult<Secret> {
        let client = app
            .store
            .oauth_client(&app.vault, &self.integration, generation)
            .await?
            .ok_or_else(|| ApiError::internal("the connection's OAuth client is gone"))?;
        Ok(client
            .secrets
            .get("client_secret")
            .cloned()
            .unwrap_or_default())
    }
}

/// The connection's access token, refreshed first when it is due.
pub async fn fresh_access_token(app: &App, connection_id: &str) -> ApiResult<AccessToken> {
    access_token(app, connection_id, None).await
}

/// A new access token for a connection whose token `rejected` (its
/// version) the provider refused (an API answered 401 to it): refreshed now,
/// single-flight like every refresh — unless another caller already
/// replaced it, whose token is then this caller's too.
pub async fn replace_rejected_token(
    app: &App,
    connection_id: &str,
    rejected: i64,
) -> ApiResult<AccessToken> {
    access_token(app, connection_id, Some(rejected)).await
}

async fn access_token(
    app: &App,
    connection_id: &str,
    rejected: Option<i64>,
) -> ApiResult<AccessToken> {
    let state = app
        .store
        .token_state(connection_id)
        .await?
        .ok_or_else(not_found)?;
    let grant = grant(app, &state).await?;
    if rejected.is_none() {
        if let Some(token) = usable(app, &state, &grant, false).await? {
            return Ok(token);
        }
    }
    let seen = rejected.unwrap_or(state.token_version);
    // Due: one caller per process at a time from here.
    let lock = app.refreshes.lock_for(connection_id);
    let _turn = lock.lock().await;
    let started = tokio::time::Instant::now();
    loop {
        let state = app
            .store
            .token_state(connection_id)
            .await?
            .ok_or_else(not_found)?;
        // Refreshed by another caller since this one looked: its result is
        // this caller's too (never a second refresh), unless already expired.
        // A rejected token is never handed out again.
        let replaced = state.token_version != seen;
        if rejected.is_none() || replaced {
            if let Some(token) = usable(app, &state, &grant, replaced).await? {
                return Ok(token);
            }
        } else {
            refreshable(app, &state, &grant).await?;
        }
        let now = app.now();
        // A refresh failed a moment ago for a reason that may pass: wait out
        // its backoff rather than call the provider at every use.
        if let Some(retry_at) = state.refresh_retry_at.filter(|at| *at > now) {
            let mut error = ApiError::new(
                ErrorCode::UpstreamError,
                "the provider could not refresh this connection's token a moment ago; \
                 it will be tried again shortly",
            );
            error.retry_after = u64::try_from(retry_at - now).ok();
            return Err(error);
        }
        // Read before the lease is taken: a secret that cannot be opened
        // fails the use without leaving a lease behind.
        let client_secret = grant.client_secret(app, state.client_generation).await?;
        let holder = &app.refreshes.holder;
        if app
            .store
            .take_refresh_lease(
                &state.id,
                state.token_version,
                holder,
                now,
                now + lease_seconds(),
            )
            .await?
        {
            return refresh(app, &state, &grant, &client_secret).await;
        }
        // Another process holds the lease: wait for the version it stores
        // (or for its lease to lapse, if it died).
        if started.elapsed() > Duration::from_secs(lease_seconds().unsigned_abs() + 5) {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the connection's token is being refreshed; try again shortly",
            ));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// The stored token, if it may be used as it is (`just_refreshed`: any
/// token that has not expired); `needs_reauth` for a connection that needs
/// its end user again.
async fn usable(
    app: &App,
    state: &TokenState,
    grant: &Grant,
    just_refreshed: bool,
) -> ApiResult<Option<AccessToken>> {
    if state.status == "needs_reauth" {
        return Err(needs_reauth(
            "the provider no longer accepts this connection's grant; the end user must connect this account again",
            None,
        ));
    }
    let now = app.now();
    let secrets = app.store.connection_secrets(&app.vault, &state.id).await?;
    let access_token = secrets.get("access_token").cloned().unwrap_or_default();
    let buffer = if just_refreshed { 0 } else { grant.buffer };
    let mut token = AccessToken {
        access_token,
        token_type: state.token_type.clone().unwrap_or_else(|| "Bearer".into()),
        expires_at: state.token_expires_at,
        version: state.token_version,
        due_at: due_at(state.token_expires_at, state.token_obtained_at, buffer),
    };
    if !due(state.token_expires_at, state.token_obtained_at, buffer, now) {
        return Ok(Some(token));
    }
    if grant.source == Source::RefreshToken && !secrets.contains_key("refresh_token") {
        // Nothing to refresh with: usable until it expires.
        if state.token_expires_at.is_some_and(|at| at > now) {
            token.due_at = state.token_expires_at;
            return Ok(Some(token));
        }
        return Err(needs_reauth(
            "the connection's access token has expired and the provider gave no refresh token; \
             the end user must connect it again",
            None,
        ));
    }
    Ok(None)
}

/// Whether a token the provider rejected can be replaced: the connection
/// still has its grant, and something to refresh with.
async fn refreshable(app: &App, state: &TokenState, grant: &Grant) -> ApiResult<()> {
    if state.status == "needs_reauth" {
        return Err(needs_reauth(
            "the provider no longer accepts this connection's grant; the end user must connect this account again",
            None,
        ));
    }
    if grant.source == Source::RefreshToken {
        let secrets = app.store.connection_secrets(&app.vault, &state.id).await?;
        if !secrets.contains_key("refresh_token") {
            return Err(needs_reauth(
                "the provider rejected the connection's access token and gave no refresh token; \
                 the end user must connect it again",
                None,
            ));
        }
    }
    Ok(())
}

/// Calls the provider while holding the lease; stores the result or the failure.
async fn refresh(
    app: &App,
    state: &TokenState,
    grant: &Grant,
    client_secret: &Secret,
) -> ApiResult<AccessToken> {
    let holder = &app.refreshes.holder;
    let secrets = app.store.connection_secrets(&app.vault, &state.id).await?;
    let refresh_token = secrets.get("refresh_token").cloned().unwrap_or_default();
    let started = tokio::time::Instant::now();
    let mut tries = 0;
    let outcome = loop {
        let result = match grant.source {
            Source::RefreshToken => {
                oauth::refresh_tokens(
                    &app.outbound,
                    &grant.endpoint,
                    client_secret,
                    &refresh_token,
                )
                .await
            }
            Source::ClientCredentials => {
                oauth::client_credentials_tokens(&app.outbound, &grant.endpoint, client_secret)
                    .await
            }
        };
        match result {
            Err(RefreshError::Transient(_))
                if tries < RETRY_DELAYS.len() && started.elapsed() < TRY_FOR =>
            {
                tokio::time::sleep(RETRY_DELAYS[tries]).await;
                tries += 1;
            }
            other => break other,
        }
    };
    let now = app.now();
    match outcome {
        Ok(tokens) => {
            // The provider has answered (and may have rotated the refresh
            // token); nothing is stored yet. SECURITY 27 kills the process here.
            crate::fault_point!("after-refresh-response");
            let expires_at = tokens
                .expires_in
                .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX)));
            let stored = app
                .store
                .store_refresh(
                    &app.vault,
                    Refreshed {
                        id: &state.id,
                        version: state.token_version,
                        holder,
                        access_token: &tokens.access_token,
                        refresh_token: tokens.refresh_token.as_deref(),
                        token_type: &tokens.token_type,
                        expires_at,
                        now,
                    },
                )
                .await?;
            if !stored {
                // The connection changed under the lease (reconnected, or the
                // lease lapsed and another process stored first).
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "the connection changed while its token was refreshed; try again",
                ));
            }
            Ok(AccessToken {
                access_token: tokens.access_token,
                token_type: tokens.token_type,
                expires_at,
                version: state.token_version + 1,
                due_at: due_at(expires_at, Some(now), grant.buffer),
            })
        }
        Err(RefreshError::Revoked(failure)) => {
            record(app, state, true, &failure, None, now).await?;
            Err(needs_reauth(
                format!(
                    "{}; the end user must connect this account again",
                    failure.message
                ),
                failure.provider_code,
            ))
        }
        Err(RefreshError::Transient(failure)) | Err(RefreshError::Refused(failure)) => {
            let retry_at = now + backoff_seconds(state.refresh_failures + 1);
            record(app, state, false, &failure, Some(retry_at), now).await?;
            let mut error = ApiError::new(
                ErrorCode::UpstreamError,
                format!("the token could not be refreshed: {}", failure.message),
            );
            error.provider_code = failure.provider_code;
            Err(error)
        }
    }
}

/// Seconds before the job tries again after `failures` failures in a row:
/// 30 s, doubling, at most an hour.
fn backoff_seconds(failures: i64) -> i64 {
    let exponent = u32::try_from(failures.saturating_sub(1).clamp(0, 7)).unwrap_or(7);
    (30_i64 << exponent).min(3600)
}

async fn record(
    app: &App,
    state: &TokenState,
    revoked: bool,
    failure: &Failure,
    retry_at: Option<i64>,
    now: i64,
) -> ApiResult<()> {
    app.store
        .record_refresh_failure(RefreshFailure {
            state,
            holder: &app.refreshes.holder,
            needs_reauth: revoked,
            data: json!({
                "reason": failure.message,
                "provider_code": failure.provider_code,
            }),
            retry_at,
            now,
        })
        .await?;
    Ok(())
}

/// A project-level connection's first credentials, obtained while its
/// integration is being saved (nothing is saved unless this succeeds).
pub struct FirstGrant {
    pub scopes: Vec<String>,
    pub token_type: String,
    pub expires_at: Option<i64>,
    /// Sealed into the connection: the access token, and the refresh token
    /// (the provider's new one, else the one the developer gave).
    pub secrets: Vec<(&'static str, Secret)>,
}

/// Obtains the first token of a grant without an end user with the settings
/// and secrets being saved. A refusal is `validation_failed` naming the
/// fields it concerns, with the provider's error code.
pub async fn first_grant(
    app: &App,
    auth_type: AuthType,
    config: &serde_json::Map<String, serde_json::Value>,
    secrets: &[(&'static str, Secret)],
) -> ApiResult<FirstGrant> {
    let spec = crate::auth::oauth2::GrantSpec::from_config(config).map_err(ApiError::internal)?;
    let secret = |name: &str| {
        secrets
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let client_secret = secret("client_secret");
    let given_refresh_token = secret("refresh_token");
    let result = match auth_type {
        AuthType::OAuth2RefreshToken => {
            oauth::refresh_tokens(
                &app.outbound,
                &spec.endpoint,
                &client_secret,
                &given_refresh_token,
            )
            .await
        }
        _ => oauth::client_credentials_tokens(&app.outbound, &spec.endpoint, &client_secret).await,
    };
    let tokens = match result {
        Ok(tokens) => tokens,
        Err(RefreshError::Revoked(f))
        | Err(RefreshError::Refused(f))
        | Err(RefreshError::Transient(f)) => {
            let fields: &[&str] = match f.provider_code.as_deref() {
                Some("invalid_client") | Some("unauthorized_client") => {
                    &["client_id", "client_secret"]
                }
                Some("invalid_grant") => &["refresh_token"],
                Some("invalid_scope") => &["scopes"],
                _ => &["token_url"],
            };
            let mut error = ApiError::validation(
                fields
                    .iter()
                    .map(|name| (name.to_string(), f.message.clone()))
                    .collect(),
            );
            error.message = format!("the provider did not issue a token: {}", f.message);
            error.provider_code = f.provider_code;
            return Err(error);
        }
    };
    let now = app.now();
    let mut kept = vec![("access_token", tokens.access_token)];
    match tokens.refresh_token {
        Some(rotated) => kept.push(("refresh_token", rotated)),
        None if auth_type == AuthType::OAuth2RefreshToken => {
            kept.push(("refresh_token", given_refresh_token))
        }
        None => {}
    }
    Ok(FirstGrant {
        scopes: tokens.scopes,
        token_type: tokens.token_type,
        expires_at: tokens
            .expires_in
            .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
        secrets: kept,
    })
}

/// The settings whose change means a grant integration needs a new token.
const GRANT_FIELDS: [&str; 4] = ["token_url", "client_id", "scopes", "token_auth_method"];

/// Whether a change to a grant integration needs a new token: a secret given,
/// or a setting of its token request changed.
pub fn grant_needs_new_token(
    old: &serde_json::Map<String, serde_json::Value>,
    new: &serde_json::Map<String, serde_json::Value>,
    secrets_given: bool,
) -> bool {
    secrets_given || GRANT_FIELDS.iter().any(|f| old.get(*f) != new.get(*f))
}

/// The secrets a grant integration's token request uses after a change:
/// those given with it, else the stored ones — and for a refresh-token
/// integration, the refresh token its connection holds now (the provider
/// may have rotated the one first given; sending that one again would be
/// reuse).
pub async fn grant_secrets_after_change(
    app: &App,
    integration_id: &str,
    auth_type: AuthType,
    given: &[(&'static str, Secret)],
) -> ApiResult<Vec<(&'static str, Secret)>> {
    let stored = app
        .store
        .integration_secrets(&app.vault, integration_id)
        .await?;
    let current_refresh = match (
        auth_type,
        app.store.project_connection_id(integration_id).await?,
    ) {
        (AuthType::OAuth2RefreshToken, Some(id)) => app
            .store
            .connection_secrets(&app.vault, &id)
            .await?
            .remove("refresh_token"),
        _ => None,
    };
    let mut secrets = Vec::new();
    for field in ["client_secret", "refresh_token"] {
        let value = given
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                (field == "refresh_token")
                    .then(|| current_refresh.clone())
                    .flatten()
            })
            .or_else(|| stored.get(field).cloned());
        if let Some(value) = value {
            secrets.push((field, value));
        }
    }
    Ok(secrets)
}

/// Puts a grant integration's new token on its project-level connection,
/// which from now on uses the integration's current client.
pub async fn store_new_grant(
    app: &App,
    project_id: &str,
    integration_id: &str,
    integration_key: &str,
    client_generation: i64,
    grant: &FirstGrant,
) -> ApiResult<()> {
    let Some(connection_id) = app.store.project_connection_id(integration_id).await? else {
        return Ok(());
    };
    let secret = |name: &str| {
        grant
            .secrets
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, v)| v.expose())
    };
    app.store
        .replace_tokens(
            &app.vault,
            crate::store::ReplacedTokens {
                connection_id: &connection_id,
                project_id,
                integration_key,
                client_generation,
                scopes: &grant.scopes,
                token_type: &grant.token_type,
                expires_at: grant.expires_at,
                access_token: secret("access_token").unwrap_or_default(),
                refresh_token: secret("refresh_token"),
                now: app.now(),
            },
        )
        .await?;
    Ok(())
}

/// One pass of the background refresh: connections whose tokens fall due
/// within `horizon` seconds, at most `batch`, each through the same path as
/// any use (so a dead grant is found before a user needs it). Answers how
/// many were refreshed and how many failed.
pub async fn refresh_due(app: &App, horizon: i64, batch: i64) -> ApiResult<(usize, usize)> {
    let now = app.now();
    let due = app.store.connections_due(now + horizon, now, batch).await?;
    let (mut refreshed, mut failed) = (0, 0);
    for id in due {
        match fresh_access_token(app, &id).await {
            Ok(_) => refreshed += 1,
            Err(_) => failed += 1,
        }
    }
    Ok((refreshed, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_due_within_the_buffer_and_never_without_an_expiry() {
        assert!(!due(None, None, 300, 1_000));
        assert!(!due(Some(1_400), None, 300, 1_000));
        assert!(due(Some(1_300), None, 300, 1_000));
        assert!(due(Some(900), None, 0, 1_000));
        assert!(!due(Some(1_001), None, 0, 1_000));
        // An hour-long token obtained at 0: due 300 s before it expires.
        assert!(!due(Some(3_600), Some(0), 300, 3_299));
        assert!(due(Some(3_600), Some(0), 300, 3_300));
    }

    #[test]
    fn a_token_shorter_lived_than_the_buffer_is_due_at_half_its_life() {
        // Two seconds of life, a five-minute buffer: due after one second, not at once.
        assert!(!due(Some(1_002), Some(1_000), 300, 1_000));
        assert!(due(Some(1_002), Some(1_000), 300, 1_001));
    }

    #[test]
    fn backoff_doubles_to_an_hour() {
        assert_eq!(backoff_seconds(1), 30);
        assert_eq!(backoff_seconds(2), 60);
        assert_eq!(backoff_seconds(5), 480);
        assert_eq!(backoff_seconds(50), 3600);
    }
}
