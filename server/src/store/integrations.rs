//! Integrations: their non-secret settings as a JSON document, their secrets
//! sealed one field per row in `integration_secrets`.

use std::collections::BTreeMap;

use sqlx::FromRow;

use super::events::insert_event;
use super::{on_pool, NewEvent, Store, StoreResult};
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
}

/// How deleting an integration went.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteIntegration {
    Deleted {
        connections_deleted: usize,
    },
    NotFound,
    /// It still has this many connections and `cascade` was not asked for.
    HasConnections(i64),
}

const COLUMNS: &str = "id, project_id, key, auth_type, config, created_at, updated_at";

/// Secret field values to write: `Some` sets the field, `None` removes it.
pub type SecretChanges<'a> = &'a [(&'a str, Option<&'a str>)];

impl Store {
    pub async fn insert_integration(
        &self,
        vault: &KeyRing,
        row: &IntegrationRow,
        secrets: SecretChanges<'_>,
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
            tx.commit().await?;
        });
        Ok(())
    }

    /// Replaces an integration's settings and applies secret changes, atomically.
    pub async fn update_integration(
        &self,
        vault: &KeyRing,
        project_id: &str,
        id: &str,
        config: &str,
        now: i64,
        secrets: SecretChanges<'_>,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE integrations SET config = $1, updated_at = $2 WHERE id = $3 AND project_id = $4",
            )
            .bind(config)
            .bind(now)
            .bind(id)
            .bind(project_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            for (field, value) in secrets {
                sqlx::query(
                    "DELETE FROM integration_secrets WHERE integration_id = $1 AND field = $2",
                )
                .bind(id)
                .bind(*field)
                .execute(&mut *tx)
                .await?;
                if let Some(value) = value {
                    insert_sealed!(tx, vault, SECRETS_TABLE, "integration_id", id, field, value);
                }
            }
            tx.commit().await?;
            true
        }))
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
    ) -> StoreResult<BTreeMap<String, String>> {
        self.open_sealed(vault, SECRETS_TABLE, "integration_id", id)
            .await
    }

    /// Deletes an integration. With connections left, only when `cascade`:
    /// then they are deleted first, each recorded in the event log.
    pub async fn delete_integration(
        &self,
        project_id: &str,
        key: &str,
        cascade: bool,
        now: i64,
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
            let connections: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT id, end_user_id FROM connections WHERE integration_id = $1 ORDER BY created_at, id",
            )
            .bind(&integration_id)
            .fetch_all(&mut *tx)
            .await?;
            if !connections.is_empty() && !cascade {
                return Ok(DeleteIntegration::HasConnections(connections.len() as i64));
            }
            for (connection_id, end_user_id) in &connections {
                sqlx::query("DELETE FROM connections WHERE id = $1")
                    .bind(connection_id)
                    .execute(&mut *tx)
                    .await?;
                let event = NewEvent {
                    project_id,
                    kind: "connection.deleted",
                    connection_id: Some(connection_id),
                    integration: Some(key),
                    end_user_id: end_user_id.as_deref(),
                    data: serde_json::json!({ "reason": "integration_deleted" }),
                    now,
                };
                insert_event!(&mut *tx, event);
            }
            sqlx::query("DELETE FROM integrations WHERE id = $1")
                .bind(&integration_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            DeleteIntegration::Deleted {
                connections_deleted: connections.len(),
            }
        }))
    }
}
