//! A connection's token state, and what single-flight refresh needs from the
//! database: a lease in the connection's row, held by one process at a time
//! until it expires, and a version that each stored refresh advances. A
//! refresh is stored only by the lease's holder and only if the version is
//! still the one it read (compare-and-swap), so two processes can never both
//! store, and no transaction stays open while the provider is called.

use sqlx::FromRow;

use super::connections::{put_connection_secret, SECRETS_TABLE};
use super::events::{insert_event, EventKind, NewEvent};
use super::{announce, on_pool, Store, StoreResult};
use crate::cache::Topic;
use crate::vault::KeyRing;

/// What deciding about a connection's token needs.
#[derive(Debug, Clone, FromRow)]
pub struct TokenState {
    pub id: String,
    pub project_id: String,
    pub integration_id: String,
    pub integration: String,
    pub end_user_id: Option<String>,
    pub status: String,
    pub token_type: Option<String>,
    pub token_expires_at: Option<i64>,
    pub token_obtained_at: Option<i64>,
    pub token_version: i64,
    pub refresh_lease_until: Option<i64>,
    pub refresh_failures: i64,
    pub refresh_retry_at: Option<i64>,
    pub client_generation: i64,
}

/// A refresh to store.
pub struct Refreshed<'a> {
    pub id: &'a str,
    /// The version the lease was taken at.
    pub version: i64,
    pub holder: &'a str,
    pub access_token: &'a str,
    /// `None` keeps the refresh token the connection has.
    pub refresh_token: Option<&'a str>,
    pub token_type: &'a str,
    pub expires_at: Option<i64>,
    pub now: i64,
}

/// New credentials for a project-level connection, from its integration's
/// changed settings.
pub struct ReplacedTokens<'a> {
    pub connection_id: &'a str,
    pub project_id: &'a str,
    pub integration_key: &'a str,
    pub client_generation: i64,
    pub scopes: &'a [String],
    pub token_type: &'a str,
    pub expires_at: Option<i64>,
    pub access_token: &'a str,
    /// `None` removes the refresh token the connection had.
    pub refresh_token: Option<&'a str>,
    pub now: i64,
}

/// How a refresh failed, to record with the lease's release.
pub struct RefreshFailure<'a> {
    pub state: &'a TokenState,
    pub holder: &'a str,
    /// The grant is dead: the connection needs its end user again.
    pub needs_reauth: bool,
    pub data: serde_json::Value,
    /// For a failure that may pass: when the next try may be made.
    pub retry_at: Option<i64>,
    pub now: i64,
}

const COLUMNS: &str =
    "c.id, c.project_id, c.integration_id, i.key AS integration, c.end_user_id, c.status, \
     c.token_type, c.token_expires_at, c.token_obtained_at, c.token_version, c.refresh_lease_until, c.refresh_failures, \
     c.refresh_retry_at, c.client_generation";

impl Store {
    pub async fn token_state(&self, id: &str) -> StoreResult<Option<TokenState>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, TokenState>(&format!(
                "SELECT {COLUMNS} FROM connections c JOIN integrations i ON i.id = c.integration_id \
                 WHERE c.id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Takes the connection's refresh lease until `until`, if it is free (or
    /// expired), the connection is active and its version is still `version`.
    pub async fn take_refresh_lease(
        &self,
        id: &str,
        version: i64,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        let taken = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE connections SET refresh_lease_holder = $1, refresh_lease_until = $2 \
                 WHERE id = $3 AND token_version = $4 AND status = 'active' \
                 AND (refresh_lease_until IS NULL OR refresh_lease_until <= $5)",
            )
            .bind(holder)
            .bind(until)
            .bind(id)
            .bind(version)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(taken == 1)
    }

    /// Stores a refresh and releases the lease, in one transaction; false
    /// (nothing stored) when the lease or the version is no longer this one's.
    pub async fn store_refresh(&self, vault: &KeyRing, r: Refreshed<'_>) -> StoreResult<bool> {
        Ok(on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE connections SET token_version = token_version + 1, token_type = $1, \
                 token_expires_at = $2, token_obtained_at = $3, refresh_lease_holder = NULL, refresh_lease_until = NULL, \
                 refresh_failures = 0, refresh_retry_at = NULL, updated_at = $3 \
                 WHERE id = $4 AND token_version = $5 AND refresh_lease_holder = $6",
            )
            .bind(r.token_type)
            .bind(r.expires_at)
            .bind(r.now)
            .bind(r.id)
            .bind(r.version)
            .bind(r.holder)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                return Ok(false);
            }
            put_connection_secret!(tx, vault, r.id, "access_token", r.access_token);
            // A response without a refresh token keeps the one the connection has.
            if let Some(refresh_token) = r.refresh_token {
                put_connection_secret!(tx, vault, r.id, "refresh_token", refresh_token);
            }
            announce!(tx, Topic::Connection(r.id.to_string()));
            tx.commit().await?;
            self.changed(&Topic::Connection(r.id.to_string()));
            true
        }))
    }

    /// Records a failed refresh and releases the lease: a dead grant makes the
    /// connection `needs_reauth` (once, with its event); a failure that may
    /// pass counts one more and sets when to try again.
    pub async fn record_refresh_failure(&self, f: RefreshFailure<'_>) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let (status, kind) = if f.needs_reauth {
                ("needs_reauth", EventKind::ConnectionNeedsReauth)
            } else {
                ("active", EventKind::ConnectionRefreshFailed)
            };
            let updated = sqlx::query(
                "UPDATE connections SET status = $1, refresh_lease_holder = NULL, refresh_lease_until = NULL, \
                 refresh_failures = refresh_failures + 1, refresh_retry_at = $2, updated_at = $3 \
                 WHERE id = $4 AND refresh_lease_holder = $5 AND status = 'active'",
            )
            .bind(status)
            .bind(f.retry_at)
            .bind(f.now)
            .bind(&f.state.id)
            .bind(f.holder)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 1 {
                insert_event!(
                    &mut *tx,
                    NewEvent {
                        project_id: &f.state.project_id,
                        kind,
                        connection_id: Some(&f.state.id),
                        integration: Some(&f.state.integration),
                        end_user_id: f.state.end_user_id.as_deref(),
                        data: f.data.clone(),
                        now: f.now,
                    }
                );
            }
            announce!(tx, Topic::Connection(f.state.id.clone()));
            tx.commit().await?;
            self.changed(&Topic::Connection(f.state.id.clone()));
        });
        Ok(())
    }

    /// The project-level connection (no end user) of an integration.
    pub async fn project_connection_id(&self, integration_id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id FROM connections WHERE integration_id = $1 AND end_user_id IS NULL \
                 ORDER BY created_at LIMIT 1",
            )
            .bind(integration_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(id,)| id))
    }

    /// Replaces a project-level connection's credentials (its integration's
    /// settings changed and gave a new token): a new version, so a refresh
    /// under way stores nothing; active again; `connection.updated`.
    pub async fn replace_tokens(&self, vault: &KeyRing, r: ReplacedTokens<'_>) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE connections SET status = 'active', scopes = $1, token_type = $2, token_expires_at = $3, \
                 token_obtained_at = $4, updated_at = $4, client_generation = $5, token_version = token_version + 1, \
                 refresh_lease_holder = NULL, refresh_lease_until = NULL, refresh_failures = 0, \
                 refresh_retry_at = NULL WHERE id = $6",
            )
            .bind(serde_json::to_string(r.scopes).unwrap_or_else(|_| "[]".into()))
            .bind(r.token_type)
            .bind(r.expires_at)
            .bind(r.now)
            .bind(r.client_generation)
            .bind(r.connection_id)
            .execute(&mut *tx)
            .await?;
            put_connection_secret!(tx, vault, r.connection_id, "access_token", r.access_token);
            match r.refresh_token {
                Some(token) => {
                    put_connection_secret!(tx, vault, r.connection_id, "refresh_token", token)
                }
                None => {
                    sqlx::query(
                        "DELETE FROM connection_secrets WHERE connection_id = $1 AND field = 'refresh_token'",
                    )
                    .bind(r.connection_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            insert_event!(
                &mut *tx,
                NewEvent {
                    project_id: r.project_id,
                    kind: EventKind::ConnectionUpdated,
                    connection_id: Some(r.connection_id),
                    integration: Some(r.integration_key),
                    end_user_id: None,
                    data: serde_json::json!({ "scopes": r.scopes, "reason": "integration_changed" }),
                    now: r.now,
                }
            );
            announce!(tx, Topic::Connection(r.connection_id.to_string()));
            tx.commit().await?;
            self.changed(&Topic::Connection(r.connection_id.to_string()));
        });
        Ok(())
    }

    /// Active connections whose access token expires before `before`, that
    /// have a way to a new one (a refresh token, or client credentials) and
    /// that no process is refreshing or waiting to retry, oldest expiry first.
    pub async fn connections_due(
        &self,
        before: i64,
        now: i64,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id FROM connections WHERE status = 'active' AND token_expires_at IS NOT NULL \
                 AND token_expires_at < $1 \
                 AND (refresh_lease_until IS NULL OR refresh_lease_until <= $2) \
                 AND (refresh_retry_at IS NULL OR refresh_retry_at <= $2) \
                 AND (EXISTS (SELECT 1 FROM connection_secrets s \
                              WHERE s.connection_id = connections.id AND s.field = 'refresh_token') \
                      OR EXISTS (SELECT 1 FROM integrations i WHERE i.id = connections.integration_id \
                                 AND i.auth_type = 'oauth2_client_credentials')) \
                 ORDER BY token_expires_at LIMIT $3",
            )
            .bind(before)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
