//! Connect sessions: short-lived tokens a customer's backend mints for one end user.

use sqlx::FromRow;

use super::{from_json, on_pool, to_json, Store, StoreResult};
use crate::ids::{self, MintedSecret, SecretKind};

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub project_id: String,
    pub end_user_id: String,
    /// The integration keys the session may connect; `None` means all of the project's.
    pub integrations: Option<Vec<String>>,
    pub allowed_origins: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(FromRow)]
struct SessionRecord {
    id: String,
    project_id: String,
    hash: Vec<u8>,
    end_user_id: String,
    integrations: Option<String>,
    allowed_origins: String,
    created_at: i64,
    expires_at: i64,
}

impl SessionRecord {
    fn into_row(self) -> StoreResult<SessionRow> {
        Ok(SessionRow {
            integrations: self
                .integrations
                .as_deref()
                .map(|t| from_json("connect_sessions.integrations", t))
                .transpose()?,
            allowed_origins: from_json("connect_sessions.allowed_origins", &self.allowed_origins)?,
            id: self.id,
            project_id: self.project_id,
            end_user_id: self.end_user_id,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

pub struct NewSession<'a> {
    pub project_id: &'a str,
    pub end_user_id: &'a str,
    pub integrations: Option<&'a [String]>,
    pub allowed_origins: &'a [String],
    pub now: i64,
    pub expires_at: i64,
}

/// How a presented session token fared.
#[derive(Debug)]
pub enum SessionLookup {
    Valid(SessionRow),
    Expired,
    Unknown,
}

impl Store {
    pub async fn create_session(
        &self,
        new: NewSession<'_>,
    ) -> StoreResult<(SessionRow, MintedSecret)> {
        let minted = ids::mint_secret(SecretKind::SessionToken);
        let row = SessionRow {
            id: ids::new_id("cs"),
            project_id: new.project_id.to_string(),
            end_user_id: new.end_user_id.to_string(),
            integrations: new.integrations.map(<[String]>::to_vec),
            allowed_origins: new.allowed_origins.to_vec(),
            created_at: new.now,
            expires_at: new.expires_at,
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO connect_sessions (id, project_id, prefix, hash, end_user_id, integrations, allowed_origins, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&row.id)
            .bind(&row.project_id)
            .bind(&minted.prefix)
            .bind(&minted.hash)
            .bind(&row.end_user_id)
            .bind(row.integrations.as_ref().map(to_json))
            .bind(to_json(&row.allowed_origins))
            .bind(row.created_at)
            .bind(row.expires_at)
            .execute(pool)
            .await?;
        });
        Ok((row, minted))
    }

    pub async fn get_session(&self, id: &str) -> StoreResult<Option<SessionRow>> {
        let record = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionRecord>(
                "SELECT id, project_id, hash, end_user_id, integrations, allowed_origins, created_at, expires_at \
                 FROM connect_sessions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        record.map(SessionRecord::into_row).transpose()
    }

    /// The session a presented token belongs to: one lookup by prefix and one
    /// constant-time compare, whatever the token's shape.
    pub async fn authenticate_session(
        &self,
        presented: &str,
        now: i64,
    ) -> StoreResult<SessionLookup> {
        let prefix = ids::lookup_prefix(SecretKind::SessionToken, presented);
        let record = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionRecord>(
                "SELECT id, project_id, hash, end_user_id, integrations, allowed_origins, created_at, expires_at \
                 FROM connect_sessions WHERE prefix = $1",
            )
            .bind(prefix.as_ref())
            .fetch_optional(pool)
            .await?
        });
        if !ids::verify_secret(presented, record.as_ref().map(|r| r.hash.as_slice())) {
            return Ok(SessionLookup::Unknown);
        }
        let Some(record) = record else {
            return Ok(SessionLookup::Unknown);
        };
        if record.expires_at <= now {
            return Ok(SessionLookup::Expired);
        }
        Ok(SessionLookup::Valid(record.into_row()?))
    }
}

/// What a purge removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub attempt_secrets: u64,
}

impl Store {
    /// Forgets what has expired: the sealed PKCE verifiers and nonces of
    /// attempts past their expiry (no callback can use them any more), and
    /// sessions expired for longer than `keep_seconds`, with their attempts.
    pub async fn purge_expired(&self, now: i64, keep_seconds: i64) -> StoreResult<Purged> {
        Ok(on_pool!(self, |pool| {
            let attempt_secrets = sqlx::query(
                "DELETE FROM connect_attempt_secrets WHERE attempt_id IN \
                 (SELECT id FROM connect_attempts WHERE expires_at <= $1)",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
            let sessions = sqlx::query("DELETE FROM connect_sessions WHERE expires_at <= $1")
                .bind(now - keep_seconds)
                .execute(pool)
                .await?
                .rows_affected();
            Purged {
                sessions,
                attempt_secrets,
            }
        }))
    }
}
