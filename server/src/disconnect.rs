//! Disconnecting: revoke the connection's tokens at the provider where it
//! offers revocation, then delete the connection. A failed revocation does not
//! keep the connection: it is deleted all the same, and the failure is recorded
//! in the event log.

use serde_json::json;

use crate::app::App;
use crate::integrations::IntegrationSpec;
use crate::oauth;
use crate::store::{ConnectionRow, StoreError, StoreResult};

/// What revocation at the provider did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The integration has no revocation endpoint.
    NotOffered,
    Revoked,
    Failed(String),
}

/// Revokes the connection's refresh and access tokens at the provider.
pub async fn revoke(app: &App, connection: &ConnectionRow) -> StoreResult<Revocation> {
    let Some(integration) = app
        .store
        .get_integration_by_id(&connection.integration_id)
        .await?
    else {
        return Ok(Revocation::NotOffered);
    };
    // The connection's own client: a URL set after it was made never receives its tokens.
    let client = match app
        .store
        .oauth_client(&app.vault, &integration, connection.client_generation)
        .await
    {
        Ok(Some(client)) => client,
        Ok(None) => return Ok(Revocation::NotOffered),
        Err(StoreError::Vault(e)) => {
            tracing::error!(connection = %connection.id, error = %e, "a stored client secret cannot be opened");
            return Ok(Revocation::Failed(format!(
                "the integration's client secret could not be opened: {e}"
            )));
        }
        Err(e) => return Err(e),
    };
    let spec = match IntegrationSpec::parse(&integration.auth_type, &client.config) {
        Ok(spec) => spec,
        Err(_) => return Ok(Revocation::NotOffered),
    };
    let settings = match spec.oauth2_code() {
        Ok(s) if s.revocation_url.is_some() => s,
        _ => return Ok(Revocation::NotOffered),
    };
    let client_secret = client
        .secrets
        .get("client_secret")
        .cloned()
        .unwrap_or_default();
    let tokens = match app
        .store
        .connection_secrets(&app.vault, &connection.id)
        .await
    {
        Ok(tokens) => tokens,
        // A value that cannot be opened (SECURITY 36) cannot be revoked; the
        // connection is deleted all the same, and the error names the value.
        Err(StoreError::Vault(e)) => {
            tracing::error!(connection = %connection.id, error = %e, "a stored token cannot be opened");
            return Ok(Revocation::Failed(format!(
                "the stored tokens could not be opened: {e}"
            )));
        }
        Err(e) => return Err(e),
    };
    // The refresh token first: revoking it ends the grant at most providers.
    for (field, hint) in [
        ("refresh_token", "refresh_token"),
        ("access_token", "access_token"),
    ] {
        if let Some(token) = tokens.get(field) {
            if let Err(failure) =
                oauth::revoke(&app.outbound, settings, &client_secret, token, hint).await
            {
                tracing::warn!(connection = %connection.id, error = %failure.message, "revocation failed");
                return Ok(Revocation::Failed(failure.message));
            }
        }
    }
    Ok(Revocation::Revoked)
}

/// Revokes, then deletes, recording `connection.deleted` with how revocation went.
/// False when the connection was already gone.
pub async fn disconnect(app: &App, connection: &ConnectionRow, reason: &str) -> StoreResult<bool> {
    let revocation = revoke(app, connection).await?;
    let data = match &revocation {
        Revocation::NotOffered => json!({ "reason": reason, "revocation": "not_offered" }),
        Revocation::Revoked => json!({ "reason": reason, "revocation": "revoked" }),
        Revocation::Failed(message) => {
            json!({ "reason": reason, "revocation": "failed", "revocation_error": message })
        }
    };
    app.store
        .delete_connection(&connection.project_id, &connection.id, app.now(), data)
        .await
}
