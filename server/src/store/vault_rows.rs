//! The store's side of the vault: which key ids the stored secrets use, and
//! moving them all to the active key.

use std::collections::BTreeMap;

use super::{on_pool, Store, StoreError, StoreResult};
use crate::vault::{self, Binding, KeyRing};

/// Every table that holds sealed values, with the column naming the row it belongs to.
const SEALED_TABLES: [(&str, &str); 4] = [
    (super::integrations::SECRETS_TABLE, "integration_id"),
    (super::integrations::CLIENT_SECRETS_TABLE, "oauth_client_id"),
    (super::connections::SECRETS_TABLE, "connection_id"),
    (super::attempts::SECRETS_TABLE, "attempt_id"),
];

/// What a re-encryption pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reencrypted {
    /// Values moved to the active key.
    pub moved: u64,
    /// Values already under the active key.
    pub unchanged: u64,
}

impl Store {
    /// Every sealed value of one row of `table` (`owner` names the row's id
    /// column), opened. `table` and `owner` are the store's constants, never input.
    pub(crate) async fn open_sealed(
        &self,
        vault: &KeyRing,
        table: &str,
        owner: &str,
        id: &str,
    ) -> StoreResult<BTreeMap<String, String>> {
        let rows: Vec<(String, Vec<u8>)> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT field, ciphertext FROM {table} WHERE {owner} = $1"
            ))
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        let mut out = BTreeMap::new();
        for (field, ciphertext) in rows {
            let value = vault.open_string(
                Binding {
                    table,
                    row: id,
                    field: &field,
                },
                &ciphertext,
            )?;
            out.insert(field, value);
        }
        Ok(out)
    }

    /// How many sealed values use each key id.
    pub async fn vault_key_usage(&self) -> StoreResult<BTreeMap<String, u64>> {
        let mut usage = BTreeMap::new();
        for (table, _) in SEALED_TABLES {
            let rows: Vec<(Vec<u8>,)> = on_pool!(self, |pool| {
                sqlx::query_as(&format!("SELECT ciphertext FROM {table}"))
                    .fetch_all(pool)
                    .await?
            });
            for (ciphertext,) in rows {
                let id = vault::key_id_of(&ciphertext).unwrap_or("(unreadable)");
                *usage.entry(id.to_string()).or_insert(0) += 1;
            }
        }
        Ok(usage)
    }

    /// Refuses a key ring that lacks a key id the stored values use.
    pub async fn check_vault_keys(&self, ring: &KeyRing) -> StoreResult<()> {
        let usage = self.vault_key_usage().await?;
        let missing: Vec<String> = usage
            .iter()
            .filter(|(id, _)| !ring.contains(id))
            .map(|(id, n)| format!("`{id}` ({n} values)"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Vault(vault::VaultError::InvalidKey(format!(
                "stored secrets use vault key id {} that the master key ring does not contain; \
                 add it back to PLUGBOARD_MASTER_KEY (after the active key) and run `plugboard vault reencrypt`",
                missing.join(", ")
            ))))
        }
    }

    /// Re-seals every value not under the active key. Each row is replaced only
    /// if it still holds the ciphertext that was read, so a write racing with
    /// the pass is never overwritten; the server keeps serving meanwhile.
    pub async fn reencrypt_vault(&self, ring: &KeyRing) -> StoreResult<Reencrypted> {
        let mut done = Reencrypted::default();
        for (table, owner) in SEALED_TABLES {
            let rows: Vec<(String, String, Vec<u8>)> = on_pool!(self, |pool| {
                sqlx::query_as(&format!("SELECT {owner}, field, ciphertext FROM {table}"))
                    .fetch_all(pool)
                    .await?
            });
            for (row, field, ciphertext) in rows {
                if vault::key_id_of(&ciphertext) == Some(ring.active_key_id()) {
                    done.unchanged += 1;
                    continue;
                }
                let binding = Binding {
                    table,
                    row: &row,
                    field: &field,
                };
                let plaintext = ring.open(binding, &ciphertext)?;
                let sealed = ring.seal(binding, &plaintext);
                on_pool!(self, |pool| {
                    sqlx::query(&format!(
                        "UPDATE {table} SET ciphertext = $1 WHERE {owner} = $2 AND field = $3 AND ciphertext = $4"
                    ))
                    .bind(&sealed)
                    .bind(&row)
                    .bind(&field)
                    .bind(&ciphertext)
                    .execute(pool)
                    .await?;
                });
                done.moved += 1;
            }
        }
        Ok(done)
    }
}
