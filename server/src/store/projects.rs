//! Projects (tenants) and their secret keys.

use sqlx::FromRow;

use super::{announce, on_pool, Store, StoreResult};
use crate::cache::Topic;
use crate::ids::{self, MintedSecret, SecretKind};

#[derive(Debug, Clone, FromRow)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct SecretKeyRow {
    pub id: String,
    pub project_id: String,
    pub prefix: String,
    pub created_at: i64,
}

#[derive(FromRow)]
struct KeyHashRow {
    project_id: String,
    hash: Vec<u8>,
}

/// A secret key that authenticated: its hash and its project.
pub(crate) struct KnownKey {
    project_id: String,
    hash: Vec<u8>,
}

/// How revoking a key went.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteKey {
    Deleted,
    NotFound,
    /// It is the project's last key, which is never revoked.
    LastKey,
}

impl Store {
    /// Creates a project with its first secret key; returns the key's token once.
    pub async fn create_project(
        &self,
        name: &str,
        now: i64,
    ) -> StoreResult<(ProjectRow, SecretKeyRow, MintedSecret)> {
        let project = ProjectRow {
            id: ids::new_id("prj"),
            name: name.to_string(),
            created_at: now,
        };
        let minted = ids::mint_secret(SecretKind::SecretKey);
        let key = SecretKeyRow {
            id: ids::new_id("key"),
            project_id: project.id.clone(),
            prefix: minted.prefix.clone(),
            created_at: now,
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&project.id)
                .bind(&project.name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO secret_keys (id, project_id, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.id)
            .bind(&key.project_id)
            .bind(&key.prefix)
            .bind(&minted.hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok((project, key, minted))
    }

    pub async fn get_project(&self, id: &str) -> StoreResult<Option<ProjectRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, ProjectRow>(
                "SELECT id, name, created_at FROM projects WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// The project a presented secret key belongs to. Every presented value,
    /// whatever its shape, takes one lookup by prefix and one constant-time compare.
    pub async fn authenticate_secret_key(&self, presented: &str) -> StoreResult<Option<String>> {
        let prefix = ids::lookup_prefix(SecretKind::SecretKey, presented);
        if let Some(known) = self.keys.get(&prefix) {
            if ids::verify_secret(presented, Some(&known.hash)) {
                return Ok(Some(known.project_id.clone()));
            }
        }
        let ticket = self.keys.ticket();
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, KeyHashRow>(
                "SELECT project_id, hash FROM secret_keys WHERE prefix = $1",
            )
            .bind(prefix.as_ref())
            .fetch_optional(pool)
            .await?
        });
        let ok = ids::verify_secret(presented, row.as_ref().map(|r| r.hash.as_slice()));
        let Some(row) = row.filter(|_| ok) else {
            return Ok(None);
        };
        // Only a key that verified is kept: unknown prefixes never fill the cache.
        let known = std::sync::Arc::new(KnownKey {
            project_id: row.project_id.clone(),
            hash: row.hash,
        });
        let topic = Topic::SecretKeys(row.project_id.clone());
        self.keys.put(ticket, &prefix, known, vec![topic]);
        Ok(Some(row.project_id))
    }

    pub async fn create_secret_key(
        &self,
        project_id: &str,
        now: i64,
    ) -> StoreResult<(SecretKeyRow, MintedSecret)> {
        let minted = ids::mint_secret(SecretKind::SecretKey);
        let key = SecretKeyRow {
            id: ids::new_id("key"),
            project_id: project_id.to_string(),
            prefix: minted.prefix.clone(),
            created_at: now,
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO secret_keys (id, project_id, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.id)
            .bind(&key.project_id)
            .bind(&key.prefix)
            .bind(&minted.hash)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok((key, minted))
    }

    pub async fn list_secret_keys(&self, project_id: &str) -> StoreResult<Vec<SecretKeyRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, SecretKeyRow>(
                "SELECT id, project_id, prefix, created_at FROM secret_keys WHERE project_id = $1 ORDER BY created_at, id",
            )
            .bind(project_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Revokes a key unless it is the project's last.
    pub async fn delete_secret_key(
        &self,
        project_id: &str,
        key_id: &str,
    ) -> StoreResult<DeleteKey> {
        Ok(on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Touching the project row first serialises concurrent revocations
            // (a row lock on PostgreSQL, the write lock on SQLite), so two
            // requests can never revoke the last two keys together.
            sqlx::query("UPDATE projects SET name = name WHERE id = $1")
                .bind(project_id)
                .execute(&mut *tx)
                .await?;
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT id FROM secret_keys WHERE id = $1 AND project_id = $2")
                    .bind(key_id)
                    .bind(project_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Ok(DeleteKey::NotFound);
            }
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM secret_keys WHERE project_id = $1")
                    .bind(project_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if count <= 1 {
                return Ok(DeleteKey::LastKey);
            }
            sqlx::query("DELETE FROM secret_keys WHERE id = $1 AND project_id = $2")
                .bind(key_id)
                .bind(project_id)
                .execute(&mut *tx)
                .await?;
            announce!(tx, Topic::SecretKeys(project_id.to_string()));
            tx.commit().await?;
            self.changed(&Topic::SecretKeys(project_id.to_string()));
            DeleteKey::Deleted
        }))
    }
}
