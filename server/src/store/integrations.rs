//! Integrations: their non-secret settings as a JSON document, their secrets
//! sealed one field per row in `integration_secrets`.

use std::collections::BTreeMap;

use sqlx::FromRow;

use super::events::{insert_event, EventKind, NewEvent};
use super::{announce, on_pool, Store, StoreResult};
use crate::cache::Topic;
use crate::secret::Secret;
use crate::vault::KeyRing;

pub(crate) const SECRETS_TABLE: &str = "integration_secrets";

#[derive(Debug, Clone, FromRow)]
pub struct IntegrationRow {
    pub id: String,
    pub project_id: String,
    pub key: String,
    pub auth_type: String,
    /// The non-secret settings, a JSON object.
    pub config: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Which OAuth client generation is current (see `oauth_clients`).
    pub client_generation: i64,
}

/// How deleting an integration went.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteIntegration {
    Deleted,
    NotFound,
    /// It still has this many connections.
    HasConnections(i64),
}

const COLUMNS: &str =
    "id, project_id, key, auth_type, config, created_at, updated_at, client_generation";

pub(crate) const CLIENT_SECRETS_TABLE: &str = "oauth_client_secrets";

/// The current OAuth client of an integration, retired by an update: its
/// settings and secret as they were, kept for the connections made with it.
pub struct RetiredClient<'a> {
    pub client_id: &'a str,
    pub config: &'a str,
    pub client_secret: Option<&'a str>,
}

/// An integration's new settings and secrets.
pub struct IntegrationUpdate<'a> {
    pub project_id: &'a str,
    pub id: &'a str,
    pub config: &'a str,
    pub now: i64,
    pub secrets: SecretChanges<'a>,
    /// The client generation the update was computed from; if another update
    /// changed it meanwhile, nothing is written.
    pub generation: i64,
    /// Retires the current client and starts the next generation.
    pub retire: Option<RetiredClient<'a>>,
    /// A new client secret for this client id: it also reaches the retired
    /// clients with the same client id (secret rotation).
    pub rotate: Option<(&'a str, &'a str)>,
}

/// How an update went.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated,
    NotFound,
    /// Another update changed the integration's client meanwhile.
    Raced,
}

/// The OAuth client a connection or attempt uses: settings and secrets.
#[derive(Debug)]
pub struct ClientRecord {
    pub config: String,
    pub secrets: BTreeMap<String, Secret>,
}

/// The connection a grant without an end user gets when its integration is
/// saved, with the token obtained for it (sealed on write).
pub struct ProjectConnection<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub scopes: &'a [String],
    pub token_type: &'a str,
    pub token_expires_at: Option<i64>,
    pub secrets: &'a [(&'a str, &'a str)],
}

/// Secret field values to write: `Some` sets the field, `None` removes it.
pub type SecretChanges<'a> = &'a [(&'a str, Option<&'a str>)];

impl Store {
    /// Inserts an integration with its secrets and, for a grant without an
    /// end user, its project-level connection: one transaction.
    pub async fn insert_integration(
        &self,
        vault: &KeyRing,
        row: &IntegrationRow,
        secrets: SecretChanges<'_>,
        connection: Option<&ProjectConnection<'_>>,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO integrations (id, project_id, key, auth_type, config, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&row.id)
            .bind(&row.project_id)
            .bind(&row.key)
            .bind(&row.auth_type)
            .bind(&row.config)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(&mut *tx)
            .await?;
            for (field, value) in secrets {
                if let Some(value) = value {
                    insert_sealed!(
                        tx,
                        vault,
                        SECRETS_TABLE,
                        "integration_id",
                        &row.id,
                        field,
                        value
                    );
                }
            }
            if let Some(c) = connection {
                sqlx::query(
                    "INSERT INTO connections (id, project_id, integration_id, end_user_id, subject, label, status, \
                     scopes, token_type, token_expires_at, token_obtained_at, created_at, updated_at, client_generation) \
                     VALUES ($1, $2, $3, NULL, NULL, $4, 'active', $5, $6, $7, $8, $8, $8, 0)",
                )
                .bind(c.id)
                .bind(&row.project_id)
                .bind(&row.id)
                .bind(c.label)
                .bind(serde_json::to_string(c.scopes).unwrap_or_else(|_| "[]".into()))
                .bind(c.token_type)
                .bind(c.token_expires_at)
                .bind(row.created_at)
                .execute(&mut *tx)
                .await?;
                for (field, value) in c.secrets {
                    insert_sealed!(
                        tx,
                        vault,
                        super::connections::SECRETS_TABLE,
                        "connection_id",
                        c.id,
                        field,
                        value
                    );
                }
                insert_event!(
                    &mut *tx,
                    NewEvent {
                        project_id: &row.project_id,
                        kind: EventKind::ConnectionCreated,
                        connection_id: Some(c.id),
                        integration: Some(&row.key),
                        end_user_id: None,
                        data: serde_json::json!({ "scopes": c.scopes }),
                        now: row.created_at,
                    }
                );
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Replaces an integration's settings and applies secret changes,
    /// atomically; retires its current OAuth client when asked.
    pub async fn update_integration(
        &self,
        vault: &KeyRing,
        u: IntegrationUpdate<'_>,
    ) -> StoreResult<UpdateOutcome> {
        let next = if u.retire.is_some() {
            u.generation + 1
        } else {
            u.generation
        };
        Ok(on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE integrations SET config = $1, updated_at = $2, client_generation = $3 \
                 WHERE id = $4 AND project_id = $5 AND client_generation = $6",
            )
            .bind(u.config)
            .bind(u.now)
            .bind(next)
            .bind(u.id)
            .bind(u.project_id)
            .bind(u.generation)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                let exists: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM integrations WHERE id = $1 AND project_id = $2")
                        .bind(u.id)
                        .bind(u.project_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Ok(match exists {
                    Some(_) => UpdateOutcome::Raced,
                    None => UpdateOutcome::NotFound,
                });
            }
            if let Some(retired) = &u.retire {
                let client_row = crate::ids::new_id("ocl");
                sqlx::query(
                    "INSERT INTO oauth_clients (id, integration_id, generation, client_id, config, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&client_row)
                .bind(u.id)
                .bind(u.generation)
                .bind(retired.client_id)
                .bind(retired.config)
                .bind(u.now)
                .execute(&mut *tx)
                .await?;
                if let Some(secret) = retired.client_secret {
                    insert_sealed!(
                        tx,
                        vault,
                        CLIENT_SECRETS_TABLE,
                        "oauth_client_id",
                        &client_row,
                        "client_secret",
                        secret
                    );
                }
            }
            if let Some((client_id, secret)) = u.rotate {
                let same_client: Vec<(String,)> = sqlx::query_as(
                    "SELECT id FROM oauth_clients WHERE integration_id = $1 AND client_id = $2",
                )
                .bind(u.id)
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await?;
                for (client_row,) in &same_client {
                    sqlx::query(
                        "DELETE FROM oauth_client_secrets WHERE oauth_client_id = $1 AND field = 'client_secret'",
                    )
                    .bind(client_row)
                    .execute(&mut *tx)
                    .await?;
                    insert_sealed!(
                        tx,
                        vault,
                        CLIENT_SECRETS_TABLE,
                        "oauth_client_id",
                        client_row,
                        "client_secret",
                        secret
                    );
                }
            }
            for (field, value) in u.secrets {
                sqlx::query(
                    "DELETE FROM integration_secrets WHERE integration_id = $1 AND field = $2",
                )
                .bind(u.id)
                .bind(*field)
                .execute(&mut *tx)
                .await?;
                if let Some(value) = value {
                    insert_sealed!(
                        tx,
                        vault,
                        SECRETS_TABLE,
                        "integration_id",
                        u.id,
                        field,
                        value
                    );
                }
            }
            announce!(tx, Topic::Integration(u.id.to_string()));
            tx.commit().await?;
            self.changed(&Topic::Integration(u.id.to_string()));
            UpdateOutcome::Updated
        }))
    }

    /// The settings (no secrets) of `generation` of an integration: what a
    /// connection made with that generation is called with.
    pub async fn client_config(
        &self,
        integration: &IntegrationRow,
        generation: i64,
    ) -> StoreResult<Option<String>> {
        if generation == integration.client_generation {
            return Ok(Some(integration.config.clone()));
        }
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, (String,)>(
                "SELECT config FROM oauth_clients WHERE integration_id = $1 AND generation = $2",
            )
            .bind(&integration.id)
            .bind(generation)
            .fetch_optional(pool)
            .await?
        })
        .map(|(config,)| config))
    }

    /// The OAuth client of `generation` of an integration: the integration's
    /// own settings when that generation is current, else the retired client's.
    pub async fn oauth_client(
        &self,
        vault: &KeyRing,
        integration: &IntegrationRow,
        generation: i64,
    ) -> StoreResult<Option<ClientRecord>> {
        if generation == integration.client_generation {
            return Ok(Some(ClientRecord {
                config: integration.config.clone(),
                secrets: self.integration_secrets(vault, &integration.id).await?,
            }));
        }
        let row: Option<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, config FROM oauth_clients WHERE integration_id = $1 AND generation = $2",
            )
            .bind(&integration.id)
            .bind(generation)
            .fetch_optional(pool)
            .await?
        });
        let Some((id, config)) = row else {
            return Ok(None);
        };
        let secrets = self
            .open_sealed(vault, CLIENT_SECRETS_TABLE, "oauth_client_id", &id)
            .await?;
        Ok(Some(ClientRecord { config, secrets }))
    }

    pub async fn get_integration_by_key(
        &self,
        project_id: &str,
        key: &str,
    ) -> StoreResult<Option<IntegrationRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, IntegrationRow>(&format!(
                "SELECT {COLUMNS} FROM integrations WHERE project_id = $1 AND key = $2"
            ))
            .bind(project_id)
            .bind(key)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// An integration by its id alone (the callback URL carries only the id).
    pub async fn get_integration_by_id(&self, id: &str) -> StoreResult<Option<IntegrationRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, IntegrationRow>(&format!(
                "SELECT {COLUMNS} FROM integrations WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn list_integrations(&self, project_id: &str) -> StoreResult<Vec<IntegrationRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, IntegrationRow>(&format!(
                "SELECT {COLUMNS} FROM integrations WHERE project_id = $1 ORDER BY key"
            ))
            .bind(project_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The names of the secret fields an integration has set.
    pub async fn integration_secret_fields(&self, id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT field FROM integration_secrets WHERE integration_id = $1 ORDER BY field",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(f,)| f).collect())
    }

    /// An integration's secrets, decrypted.
    pub async fn integration_secrets(
        &self,
        vault: &KeyRing,
        id: &str,
    ) -> StoreResult<BTreeMap<String, Secret>> {
        self.open_sealed(vault, SECRETS_TABLE, "integration_id", id)
            .await
    }

    /// Deletes an integration that has no connections left. Connections are
    /// never deleted here: disconnecting revokes them first (`connections`).
    pub async fn delete_integration(
        &self,
        project_id: &str,
        key: &str,
    ) -> StoreResult<DeleteIntegration> {
        Ok(on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let found: Option<(String,)> =
                sqlx::query_as("SELECT id FROM integrations WHERE project_id = $1 AND key = $2")
                    .bind(project_id)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((integration_id,)) = found else {
                return Ok(DeleteIntegration::NotFound);
            };
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM connections WHERE integration_id = $1")
                    .bind(&integration_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if count > 0 {
                return Ok(DeleteIntegration::HasConnections(count));
            }
            sqlx::query("DELETE FROM integrations WHERE id = $1")
                .bind(&integration_id)
                .execute(&mut *tx)
                .await?;
            announce!(tx, Topic::Integration(integration_id.clone()));
            tx.commit().await?;
            self.changed(&Topic::Integration(integration_id.clone()));
            DeleteIntegration::Deleted
        }))
    }
}
