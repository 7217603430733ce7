//! The store's side of the vault: which key ids the stored secrets use, and
//! moving them all to the active key.

use std::collections::{BTreeMap, BTreeSet};

use super::{on_pool, Store, StoreError, StoreResult};
use crate::secret::Secret;
use crate::vault::{self, Binding, KeyRing};

/// Every table that holds sealed values, with the column naming the row it belongs to.
const SEALED_TABLES: [(&str, &str); 4] = [
    (super::integrations::SECRETS_TABLE, "integration_id"),
    (super::integrations::CLIENT_SECRETS_TABLE, "oauth_client_id"),
    (super::connections::SECRETS_TABLE, "connection_id"),
    (super::attempts::SECRETS_TABLE, "attempt_id"),
];

/// How many values of each key id are kept to try a key against.
const SAMPLES_PER_KEY: usize = 3;

/// What every key's check value holds.
const CHECK_TEXT: &[u8] = b"plugboard vault check";

fn check_binding(key_id: &str) -> Binding<'_> {
    Binding {
        table: "vault_checks",
        row: key_id,
        field: "check",
    }
}

/// A sealed value to try a key on: (table, row, field, ciphertext).
type Sample = (&'static str, String, String, Vec<u8>);

/// What a scan of the sealed values found.
#[derive(Default)]
struct VaultScan {
    usage: BTreeMap<String, u64>,
    /// Values that name no key, by table, row and field.
    unreadable: Vec<String>,
    /// A few values of each key id: (table, row, field, ciphertext).
    samples: BTreeMap<String, Vec<Sample>>,
    /// Each key id's check value.
    checks: BTreeMap<String, Vec<u8>>,
}

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
    ) -> StoreResult<BTreeMap<String, Secret>> {
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
            out.insert(field, Secret::from(value));
        }
        Ok(out)
    }

    /// Reads every sealed value's key id. Values too damaged to name one are
    /// listed by row and field, not counted.
    async fn scan_vault(&self) -> StoreResult<VaultScan> {
        let mut scan = VaultScan::default();
        for (table, owner) in SEALED_TABLES {
            let rows: Vec<(String, String, Vec<u8>)> = on_pool!(self, |pool| {
                sqlx::query_as(&format!("SELECT {owner}, field, ciphertext FROM {table}"))
                    .fetch_all(pool)
                    .await?
            });
            for (row, field, ciphertext) in rows {
                let Some(id) = vault::key_id_of(&ciphertext) else {
                    scan.unreadable.push(format!("{table} {row} field {field}"));
                    continue;
                };
                *scan.usage.entry(id.to_string()).or_insert(0) += 1;
                let samples = scan.samples.entry(id.to_string()).or_default();
                if samples.len() < SAMPLES_PER_KEY {
                    samples.push((table, row, field, ciphertext));
                }
            }
        }
        let checks: Vec<(String, Vec<u8>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT key_id, ciphertext FROM vault_checks")
                .fetch_all(pool)
                .await?
        });
        scan.checks = checks.into_iter().collect();
        Ok(scan)
    }

    /// How many sealed values use each key id (values too damaged to name a key are left out).
    pub async fn vault_key_usage(&self) -> StoreResult<BTreeMap<String, u64>> {
        Ok(self.scan_vault().await?.usage)
    }

    /// The key ids this database's sealed values and check values use: empty
    /// only when nothing was ever sealed in it.
    pub async fn sealed_key_ids(&self) -> StoreResult<BTreeSet<String>> {
        let scan = self.scan_vault().await?;
        let mut ids: BTreeSet<String> = scan.usage.into_keys().collect();
        ids.extend(scan.checks.into_keys());
        if ids.is_empty() && !scan.unreadable.is_empty() {
            ids.insert("(unknown)".to_string());
        }
        Ok(ids)
    }

    /// Refuses a key ring that cannot open this database (SECURITY 24, 35):
    /// a key id the stored values use is missing, or a key under a known id
    /// is another key than the one they were sealed with (its check value, or
    /// else a few of its values, do not open). A key that passes gets a
    /// check value. Values too damaged to name a key do not stop the start
    /// (SECURITY 36): each is logged by row and field, and fails when used.
    pub async fn check_vault_keys(&self, ring: &KeyRing, now: i64) -> StoreResult<()> {
        let scan = self.scan_vault().await?;
        for place in &scan.unreadable {
            tracing::error!(
                value = %place,
                "a stored value is not a vault ciphertext (truncated or corrupted); \
                 it fails when used, everything else works"
            );
        }
        let missing: Vec<String> = scan
            .usage
            .iter()
            .filter(|(id, _)| !ring.contains(id))
            .map(|(id, n)| format!("`{id}` ({n} values)"))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Vault(vault::VaultError::InvalidKey(format!(
                "stored secrets use vault key id {} that the master key ring does not contain; \
                 add it back to PLUGBOARD_MASTER_KEY (after the active key) and run `plugboard vault reencrypt`",
                missing.join(", ")
            ))));
        }
        for id in ring.key_ids() {
            let binding = check_binding(id);
            if let Some(check) = scan.checks.get(id) {
                match ring.open(binding, check) {
                    Ok(text) if text == CHECK_TEXT => continue,
                    _ => {
                        return Err(StoreError::Vault(vault::VaultError::WrongKey(
                            id.to_string(),
                        )))
                    }
                }
            }
            // No check value yet (a database sealed before they existed):
            // the key must open at least one of the values it sealed.
            if let Some(samples) = scan.samples.get(id) {
                let opens = samples.iter().any(|(table, row, field, ciphertext)| {
                    ring.open(Binding { table, row, field }, ciphertext).is_ok()
                });
                if !opens {
                    return Err(StoreError::Vault(vault::VaultError::WrongKey(
                        id.to_string(),
                    )));
                }
            }
            let Some(sealed) = ring.seal_with(id, binding, CHECK_TEXT) else {
                continue;
            };
            on_pool!(self, |pool| {
                sqlx::query(
                    "INSERT INTO vault_checks (key_id, ciphertext, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key_id) DO NOTHING",
                )
                .bind(id)
                .bind(&sealed)
                .bind(now)
                .execute(pool)
                .await?;
            });
        }
        Ok(())
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
