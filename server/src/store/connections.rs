//! Connections: one set of credentials at a provider, for an end user or for the project.

use std::collections::BTreeMap;

use sqlx::FromRow;

use super::events::insert_event;
use super::{announce, from_json, on_pool, to_json, EventKind, NewEvent, Store, StoreResult};
use crate::cache::Topic;
use crate::secret::Secret;
use crate::vault::KeyRing;

pub(crate) const SECRETS_TABLE: &str = "connection_secrets";

#[derive(Debug, Clone)]
pub struct ConnectionRow {
    pub id: String,
    pub project_id: String,
    pub integration_id: String,
    /// The integration's key, as clients name it.
    pub integration: String,
    pub end_user_id: Option<String>,
    pub subject: Option<String>,
    pub label: Option<String>,
    pub status: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The generation of its integration's OAuth client it was made with.
    pub client_generation: i64,
}

#[derive(FromRow)]
struct ConnectionRecord {
    id: String,
    project_id: String,
    integration_id: String,
    integration: String,
    end_user_id: Option<String>,
    subject: Option<String>,
    label: Option<String>,
    status: String,
    scopes: String,
    created_at: i64,
    updated_at: i64,
    client_generation: i64,
}

impl ConnectionRecord {
    fn into_row(self) -> StoreResult<ConnectionRow> {
        Ok(ConnectionRow {
            scopes: from_json("connections.scopes", &self.scopes)?,
            id: self.id,
            project_id: self.project_id,
            integration_id: self.integration_id,
            integration: self.integration,
            end_user_id: self.end_user_id,
            subject: self.subject,
            label: self.label,
            status: self.status,
            created_at: self.created_at,
            updated_at: self.updated_at,
            client_generation: self.client_generation,
        })
    }
}

const SELECT: &str =
    "SELECT c.id, c.project_id, c.integration_id, i.key AS integration, c.end_user_id, c.subject, c.label, \
     c.status, c.scopes, c.created_at, c.updated_at, c.client_generation \
     FROM connections c JOIN integrations i ON i.id = c.integration_id";

/// A connection to create, with its credentials in the clear (sealed on write).
pub struct NewConnection<'a> {
    pub project_id: &'a str,
    pub integration_id: &'a str,
    pub integration_key: &'a str,
    pub end_user_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub label: Option<&'a str>,
    pub scopes: &'a [String],
    pub secrets: &'a [(&'a str, &'a str)],
    pub now: i64,
}

/// A page position: the last row seen, by creation time then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCursor {
    pub created_at: i64,
    pub id: String,
}

impl Store {
    /// Creates a connection, seals its credentials and records `connection.created`.
    pub async fn insert_connection(
        &self,
        vault: &KeyRing,
        new: NewConnection<'_>,
    ) -> StoreResult<String> {
        let id = crate::ids::new_id("conn");
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO connections (id, project_id, integration_id, end_user_id, subject, label, status, scopes, \
                 created_at, updated_at, client_generation) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $8, \
                 (SELECT client_generation FROM integrations WHERE id = $3))",
            )
            .bind(&id)
            .bind(new.project_id)
            .bind(new.integration_id)
            .bind(new.end_user_id)
            .bind(new.subject)
            .bind(new.label)
            .bind(to_json(&new.scopes))
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
            for (field, value) in new.secrets {
                insert_sealed!(tx, vault, SECRETS_TABLE, "connection_id", &id, field, value);
            }
            insert_event!(
                &mut *tx,
                NewEvent {
                    project_id: new.project_id,
                    kind: EventKind::ConnectionCreated,
                    connection_id: Some(&id),
                    integration: Some(new.integration_key),
                    end_user_id: new.end_user_id,
                    data: serde_json::json!({}),
                    now: new.now,
                }
            );
            tx.commit().await?;
        });
        Ok(id)
    }

    pub async fn get_connection(
        &self,
        project_id: &str,
        id: &str,
    ) -> StoreResult<Option<ConnectionRow>> {
        let record = on_pool!(self, |pool| {
            sqlx::query_as::<_, ConnectionRecord>(&format!(
                "{SELECT} WHERE c.project_id = $1 AND c.id = $2"
            ))
            .bind(project_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        record.map(ConnectionRecord::into_row).transpose()
    }

    /// A page of connections, oldest first, after `cursor`.
    pub async fn list_connections(
        &self,
        project_id: &str,
        end_user_id: Option<&str>,
        integration_key: Option<&str>,
        cursor: Option<&ConnectionCursor>,
        limit: i64,
    ) -> StoreResult<Vec<ConnectionRow>> {
        let (after_time, after_id) = match cursor {
            Some(c) => (c.created_at, c.id.as_str()),
            None => (i64::MIN, ""),
        };
        let records = on_pool!(self, |pool| {
            sqlx::query_as::<_, ConnectionRecord>(&format!(
                "{SELECT} WHERE c.project_id = $1 \
                 AND ($2 IS NULL OR c.end_user_id = $2) \
                 AND ($3 IS NULL OR i.key = $3) \
                 AND (c.created_at > $4 OR (c.created_at = $4 AND c.id > $5)) \
                 ORDER BY c.created_at, c.id LIMIT $6"
            ))
            .bind(project_id)
            .bind(end_user_id)
            .bind(integration_key)
            .bind(after_time)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        records
            .into_iter()
            .map(ConnectionRecord::into_row)
            .collect()
    }

    /// A connection's credentials, decrypted.
    pub async fn connection_secrets(
        &self,
        vault: &KeyRing,
        id: &str,
    ) -> StoreResult<BTreeMap<String, Secret>> {
        self.open_sealed(vault, SECRETS_TABLE, "connection_id", id)
            .await
    }

    /// Deletes a connection and records `connection.deleted`. False when there was none.
    pub async fn delete_connection(
        &self,
        project_id: &str,
        id: &str,
        now: i64,
        data: serde_json::Value,
    ) -> StoreResult<bool> {
        let Some(connection) = self.get_connection(project_id, id).await? else {
            return Ok(false);
        };
        Ok(on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM connections WHERE id = $1 AND project_id = $2")
                .bind(id)
                .bind(project_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            insert_event!(
                &mut *tx,
                NewEvent {
                    project_id,
                    kind: EventKind::ConnectionDeleted,
                    connection_id: Some(id),
                    integration: Some(&connection.integration),
                    end_user_id: connection.end_user_id.as_deref(),
                    data,
                    now,
                }
            );
            announce!(tx, Topic::Connection(id.to_string()));
            tx.commit().await?;
            self.changed(&Topic::Connection(id.to_string()));
            true
        }))
    }
}

/// An end user's account to save as a connection, with its credentials.
pub struct SavedConnection<'a> {
    pub project_id: &'a str,
    pub integration_id: &'a str,
    pub integration_key: &'a str,
    pub end_user_id: &'a str,
    /// Reconnecting this connection in place, when set.
    pub reconnect_id: Option<&'a str>,
    /// The provider's stable id for the account, when it told us (an OAuth
    /// subject, or the value at a `test_request`'s `label_pointer`).
    pub subject: Option<&'a str>,
    pub label: Option<&'a str>,
    pub scopes: &'a [String],
    /// The integration's client generation the credentials were made with.
    pub client_generation: i64,
    pub credentials: SavedCredentials<'a>,
    pub now: i64,
}

/// What a connection holds.
pub enum SavedCredentials<'a> {
    /// Tokens from an OAuth 2.0 authorization.
    Tokens {
        access_token: &'a str,
        refresh_token: Option<&'a str>,
        token_type: &'a str,
        token_expires_at: Option<i64>,
    },
    /// The fields an end user typed into the credential form; they replace
    /// every field the connection held.
    Fields(&'a [(&'a str, Secret)]),
}

/// What the account rules decide from: the facts, read inside the saving transaction.
#[derive(Debug)]
pub struct AccountFacts<'a> {
    /// The provider's id for the account signed in, when it told us.
    pub subject: Option<&'a str>,
    /// The end user's connection of this same provider account, if any.
    pub same_account: Option<String>,
    /// Whether a named connection is being reconnected.
    pub reconnecting: bool,
    /// That named connection, when it is the end user's on this integration.
    pub named: Option<NamedConnection>,
    /// How many connections the end user has on this integration.
    pub connected: i64,
    /// The oldest of them, if any.
    pub existing: Option<String>,
}

/// A connection named for reconnecting.
#[derive(Debug)]
pub struct NamedConnection {
    pub id: String,
    pub subject: Option<String>,
}

/// What the account rules chose.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountDecision {
    /// Update this connection in place.
    Update(String),
    Create,
    Refuse(SaveOutcome),
}

/// What saving an authorization did, by the contract's rules.
#[derive(Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    Created(String),
    /// The same provider account (or the named connection) was updated in place.
    Updated(String),
    /// `multiple_accounts` is off and the end user already has another account connected.
    AccountLimit,
    /// Reconnecting a named connection with a different provider account.
    AccountMismatch,
    /// The connection named for reconnecting is not the end user's (or is gone).
    ReconnectTargetMissing,
}

/// Replaces one sealed field of a connection inside a transaction.
macro_rules! put_connection_secret {
    ($tx:expr, $vault:expr, $id:expr, $field:expr, $value:expr) => {{
        sqlx::query("DELETE FROM connection_secrets WHERE connection_id = $1 AND field = $2")
            .bind($id)
            .bind($field)
            .execute(&mut *$tx)
            .await?;
        insert_sealed!(
            $tx,
            $vault,
            SECRETS_TABLE,
            "connection_id",
            $id,
            $field,
            $value
        );
    }};
}
pub(crate) use put_connection_secret;

impl Store {
    /// Saves an end user's authorization: gathers the facts the account rules
    /// need, lets `decide` (the rules, which are the domain's) choose, then
    /// updates that connection, creates one, or refuses. One transaction;
    /// saves for the same integration are serialised, so two racing
    /// authorizations cannot both slip past `account_limit`.
    pub async fn save_connection(
        &self,
        vault: &KeyRing,
        c: SavedConnection<'_>,
        decide: impl Fn(&AccountFacts<'_>) -> AccountDecision,
    ) -> StoreResult<SaveOutcome> {
        let scopes = to_json(&c.scopes);
        let (token_type, token_expires_at) = match &c.credentials {
            SavedCredentials::Tokens {
                token_type,
                token_expires_at,
                ..
            } => (Some(*token_type), *token_expires_at),
            SavedCredentials::Fields(_) => (None, None),
        };
        Ok(on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE integrations SET updated_at = updated_at WHERE id = $1")
                .bind(c.integration_id)
                .execute(&mut *tx)
                .await?;
            let same_account: Option<(String,)> = match c.subject {
                Some(subject) => sqlx::query_as(
                    "SELECT id FROM connections WHERE integration_id = $1 AND end_user_id = $2 AND subject = $3",
                )
                .bind(c.integration_id)
                .bind(c.end_user_id)
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await?,
                None => None,
            };
            let named: Option<(String, Option<String>)> = match c.reconnect_id {
                Some(reconnect_id) => sqlx::query_as(
                    "SELECT id, subject FROM connections WHERE id = $1 AND project_id = $2 AND integration_id = $3 AND end_user_id = $4",
                )
                .bind(reconnect_id)
                .bind(c.project_id)
                .bind(c.integration_id)
                .bind(c.end_user_id)
                .fetch_optional(&mut *tx)
                .await?,
                None => None,
            };
            let (connected,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM connections WHERE integration_id = $1 AND end_user_id = $2",
            )
            .bind(c.integration_id)
            .bind(c.end_user_id)
            .fetch_one(&mut *tx)
            .await?;
            let existing: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM connections WHERE integration_id = $1 AND end_user_id = $2 \
                 ORDER BY created_at, id LIMIT 1",
            )
            .bind(c.integration_id)
            .bind(c.end_user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let facts = AccountFacts {
                subject: c.subject,
                same_account: same_account.map(|(id,)| id),
                reconnecting: c.reconnect_id.is_some(),
                named: named.map(|(id, subject)| NamedConnection { id, subject }),
                connected,
                existing: existing.map(|(id,)| id),
            };
            let target = match decide(&facts) {
                AccountDecision::Update(id) => Some(id),
                AccountDecision::Create => None,
                AccountDecision::Refuse(outcome) => return Ok(outcome),
            };
            let mut recovered = false;
            let (id, created) = match target {
                Some(id) => {
                    let (was,): (String,) =
                        sqlx::query_as("SELECT status FROM connections WHERE id = $1")
                            .bind(&id)
                            .fetch_one(&mut *tx)
                            .await?;
                    recovered = was == "needs_reauth";
                    // New tokens: a new version, so a refresh that was under way stores nothing.
                    sqlx::query(
                        "UPDATE connections SET subject = COALESCE($1, subject), label = COALESCE($2, label), \
                         status = 'active', scopes = $3, token_type = $4, token_expires_at = $5, updated_at = $6, \
                         token_obtained_at = $6, client_generation = $8, token_version = token_version + 1, refresh_lease_holder = NULL, \
                         refresh_lease_until = NULL, refresh_failures = 0, refresh_retry_at = NULL WHERE id = $7",
                    )
                    .bind(c.subject)
                    .bind(c.label)
                    .bind(&scopes)
                    .bind(token_type)
                    .bind(token_expires_at)
                    .bind(c.now)
                    .bind(&id)
                    .bind(c.client_generation)
                    .execute(&mut *tx)
                    .await?;
                    (id, false)
                }
                None => {
                    let id = crate::ids::new_id("conn");
                    sqlx::query(
                        "INSERT INTO connections (id, project_id, integration_id, end_user_id, subject, label, status, \
                         scopes, token_type, token_expires_at, created_at, updated_at, token_obtained_at, client_generation) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $10, $10, $10, $11)",
                    )
                    .bind(&id)
                    .bind(c.project_id)
                    .bind(c.integration_id)
                    .bind(c.end_user_id)
                    .bind(c.subject)
                    .bind(c.label)
                    .bind(&scopes)
                    .bind(token_type)
                    .bind(token_expires_at)
                    .bind(c.now)
                    .bind(c.client_generation)
                    .execute(&mut *tx)
                    .await?;
                    (id, true)
                }
            };
            let kind = if created {
                EventKind::ConnectionCreated
            } else {
                EventKind::ConnectionUpdated
            };
            match &c.credentials {
                SavedCredentials::Tokens {
                    access_token,
                    refresh_token,
                    ..
                } => {
                    put_connection_secret!(tx, vault, &id, "access_token", *access_token);
                    // A provider that sends no new refresh token keeps the old one valid.
                    if let Some(refresh_token) = refresh_token {
                        put_connection_secret!(tx, vault, &id, "refresh_token", *refresh_token);
                    }
                }
                SavedCredentials::Fields(fields) => {
                    sqlx::query("DELETE FROM connection_secrets WHERE connection_id = $1")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    for (field, value) in fields.iter() {
                        insert_sealed!(
                            tx,
                            vault,
                            SECRETS_TABLE,
                            "connection_id",
                            &id,
                            field,
                            value.expose()
                        );
                    }
                }
            }
            insert_event!(
                &mut *tx,
                NewEvent {
                    project_id: c.project_id,
                    kind,
                    connection_id: Some(&id),
                    integration: Some(c.integration_key),
                    end_user_id: Some(c.end_user_id),
                    data: serde_json::json!({ "label": c.label, "scopes": c.scopes }),
                    now: c.now,
                }
            );
            if recovered {
                insert_event!(
                    &mut *tx,
                    NewEvent {
                        project_id: c.project_id,
                        kind: EventKind::ConnectionRecovered,
                        connection_id: Some(&id),
                        integration: Some(c.integration_key),
                        end_user_id: Some(c.end_user_id),
                        data: serde_json::json!({ "status": "active" }),
                        now: c.now,
                    }
                );
            }
            announce!(tx, Topic::Connection(id.clone()));
            tx.commit().await?;
            self.changed(&Topic::Connection(id.clone()));
            if created {
                SaveOutcome::Created(id)
            } else {
                SaveOutcome::Updated(id)
            }
        }))
    }
}
