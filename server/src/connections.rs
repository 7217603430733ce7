//! Connections: whose they are, and how they end.
//!
//! Ownership: to an end user's session, a connection is reachable only when
//! it is that end user's and its app is one the session allows; anything
//! else answers exactly like a connection that does not exist.
//!
//! Disconnecting: revoke the connection's tokens at the provider where it
//! offers revocation, then delete the connection. A failed revocation does not
//! keep the connection: it is deleted all the same, and the failure is recorded
//! in the event log. Deleting an integration with `cascade` disconnects each
//! of its connections this way; no path deletes one without revoking it.

use serde_json::json;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::integrations::IntegrationSpec;
use crate::oauth;
use crate::store::{
    AccountDecision, AccountFacts, ConnectionRow, DeleteIntegration, SaveOutcome, SessionRow,
    StoreError, StoreResult,
};

/// Whether a connect session may use the app (integration) `app_key`.
pub fn session_allows(session: &SessionRow, app_key: &str) -> bool {
    session
        .integrations
        .as_ref()
        .is_none_or(|list| list.iter().any(|k| k == app_key))
}

/// The session's end user's own connections, of one app or of all, at most
/// 200 (a person's accounts, not a data set). An app that does not exist and
/// one outside the session's integrations answer alike: `not_found`.
pub async fn end_users_connections(
    app: &App,
    session: &SessionRow,
    app_key: Option<&str>,
) -> ApiResult<Vec<ConnectionRow>> {
    if let Some(key) = app_key {
        let exists = app
            .store
            .get_integration_by_key(&session.project_id, key)
            .await?
            .is_some();
        if !exists || !session_allows(session, key) {
            return Err(ApiError::not_found("app"));
        }
    }
    let rows = app
        .store
        .list_connections(
            &session.project_id,
            Some(&session.end_user_id),
            app_key,
            None,
            200,
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| session_allows(session, &r.integration))
        .collect())
}

/// The session's end user's own connection `id` (of `app_key` when given),
/// or `not_found`.
pub async fn end_users_connection(
    app: &App,
    session: &SessionRow,
    id: &str,
    app_key: Option<&str>,
) -> ApiResult<ConnectionRow> {
    app.store
        .get_connection(&session.project_id, id)
        .await?
        .filter(|c| c.end_user_id.as_deref() == Some(session.end_user_id.as_str()))
        .filter(|c| session_allows(session, &c.integration))
        .filter(|c| app_key.is_none_or(|key| c.integration == key))
        .ok_or_else(|| ApiError::not_found("connected account"))
}

/// The account rules, when an authorization is saved: connecting the same
/// provider account again updates its connection; reconnecting a named
/// connection needs the same account (`account_mismatch`) and the connection
/// to still be the end user's; a new account is refused when the app allows
/// one account (`multiple_accounts` false) and the end user has one —
/// except that credentials which name no account (a key or password whose
/// integration has no `test_request` label) replace the end user's one
/// connection's (`replaces_unnamed`, the credential form's rule).
pub fn account_rule(
    facts: &AccountFacts<'_>,
    multiple_accounts: bool,
    replaces_unnamed: bool,
) -> AccountDecision {
    if facts.reconnecting {
        let Some(named) = &facts.named else {
            return AccountDecision::Refuse(SaveOutcome::ReconnectTargetMissing);
        };
        let other_account = match (&named.subject, facts.subject) {
            (Some(old), Some(new)) => old != new,
            _ => false,
        };
        let is_another_connection = facts
            .same_account
            .as_ref()
            .is_some_and(|other| *other != named.id);
        if other_account || is_another_connection {
            return AccountDecision::Refuse(SaveOutcome::AccountMismatch);
        }
        return AccountDecision::Update(named.id.clone());
    }
    if let Some(id) = &facts.same_account {
        return AccountDecision::Update(id.clone());
    }
    if !multiple_accounts && facts.connected > 0 {
        if let (None, true, Some(existing)) = (facts.subject, replaces_unnamed, &facts.existing) {
            return AccountDecision::Update(existing.clone());
        }
        return AccountDecision::Refuse(SaveOutcome::AccountLimit);
    }
    AccountDecision::Create
}

/// How deleting an integration went.
#[derive(Debug, PartialEq, Eq)]
pub enum IntegrationDeleted {
    Deleted,
    NotFound,
    /// It still has this many connections and `cascade` was not asked for.
    HasConnections(i64),
}

/// Deletes an integration; with `cascade`, first disconnects every one of its
/// connections (revoked, then deleted, each recorded).
pub async fn delete_integration(
    app: &App,
    project_id: &str,
    key: &str,
    cascade: bool,
) -> ApiResult<IntegrationDeleted> {
    // A connection made while this runs is disconnected in the next round.
    for _ in 0..10 {
        if cascade {
            loop {
                let page = app
                    .store
                    .list_connections(project_id, None, Some(key), None, 200)
                    .await?;
                if page.is_empty() {
                    break;
                }
                for connection in &page {
                    disconnect(app, connection, "integration_deleted").await?;
                }
            }
        }
        match app.store.delete_integration(project_id, key).await? {
            DeleteIntegration::Deleted => return Ok(IntegrationDeleted::Deleted),
            DeleteIntegration::NotFound => return Ok(IntegrationDeleted::NotFound),
            DeleteIntegration::HasConnections(n) if !cascade => {
                return Ok(IntegrationDeleted::HasConnections(n))
            }
            DeleteIntegration::HasConnections(_) => continue,
        }
    }
    Err(ApiError::conflict(
        "connections keep being added to this integration; try again",
    ))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NamedConnection;

    fn facts<'a>(subject: Option<&'a str>) -> AccountFacts<'a> {
        AccountFacts {
            subject,
            same_account: None,
            reconnecting: false,
            named: None,
            connected: 0,
            existing: None,
        }
    }

    #[test]
    fn the_account_rules() {
        assert_eq!(
            account_rule(&facts(Some("a")), false, false),
            AccountDecision::Create
        );
        let mut same = facts(Some("a"));
        same.same_account = Some("conn_a".into());
        same.connected = 1;
        assert_eq!(
            account_rule(&same, false, false),
            AccountDecision::Update("conn_a".into())
        );
        let mut second = facts(Some("b"));
        second.connected = 1;
        assert_eq!(
            account_rule(&second, false, false),
            AccountDecision::Refuse(SaveOutcome::AccountLimit)
        );
        assert_eq!(account_rule(&second, true, false), AccountDecision::Create);

        let mut reconnect = facts(Some("a"));
        reconnect.reconnecting = true;
        assert_eq!(
            account_rule(&reconnect, true, false),
            AccountDecision::Refuse(SaveOutcome::ReconnectTargetMissing)
        );
        reconnect.named = Some(NamedConnection {
            id: "conn_a".into(),
            subject: Some("a".into()),
        });
        assert_eq!(
            account_rule(&reconnect, true, false),
            AccountDecision::Update("conn_a".into())
        );
        let mut other = facts(Some("b"));
        other.reconnecting = true;
        other.named = reconnect.named.take();
        assert_eq!(
            account_rule(&other, true, false),
            AccountDecision::Refuse(SaveOutcome::AccountMismatch)
        );
        // The account signed in already has another connection of its own.
        other.subject = Some("a");
        other.same_account = Some("conn_other".into());
        assert_eq!(
            account_rule(&other, true, false),
            AccountDecision::Refuse(SaveOutcome::AccountMismatch)
        );

        // A key that names no account replaces the one connection's where
        // one account is allowed, and adds one where several are.
        let mut unnamed = facts(None);
        unnamed.connected = 1;
        unnamed.existing = Some("conn_key".into());
        assert_eq!(
            account_rule(&unnamed, false, true),
            AccountDecision::Update("conn_key".into())
        );
        assert_eq!(account_rule(&unnamed, true, true), AccountDecision::Create);
        assert_eq!(
            account_rule(&unnamed, false, false),
            AccountDecision::Refuse(SaveOutcome::AccountLimit)
        );
        // One that names another account is still refused.
        unnamed.subject = Some("b");
        assert_eq!(
            account_rule(&unnamed, false, true),
            AccountDecision::Refuse(SaveOutcome::AccountLimit)
        );
    }
}
