//! Connect attempts: single-use, short-lived records of one trip through a
//! provider's consent screen. The `state` is stored only as a hash; the PKCE
//! verifier and the OpenID nonce are sealed in the vault.

use std::collections::BTreeMap;

use sqlx::FromRow;

use super::{on_pool, Store, StoreResult};
use crate::secret::Secret;
use crate::vault::KeyRing;

pub(crate) const SECRETS_TABLE: &str = "connect_attempt_secrets";

#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub id: String,
    pub project_id: String,
    pub session_id: String,
    pub integration_id: String,
    pub end_user_id: String,
    pub origin: String,
    pub message_nonce: String,
    pub binding_hash: Option<Vec<u8>>,
    /// The OAuth redirect URI sent with the authorization request; empty for
    /// an attempt whose popup shows Plugboard's credential form instead.
    pub redirect_uri: String,
    pub reconnect_id: Option<String>,
    pub params: String,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub provider_code: Option<String>,
    pub connection_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub opened_at: Option<i64>,
    pub spent_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// The OAuth client generation the authorization request was made for.
    pub client_generation: i64,
    /// The hash of the secret the popup must get from its opener.
    pub proof_hash: Option<Vec<u8>>,
}

const COLUMNS: &str = "id, project_id, session_id, integration_id, end_user_id, origin, message_nonce, binding_hash, \
     redirect_uri, reconnect_id, params, status, error_code, error_message, provider_code, connection_id, \
     created_at, expires_at, opened_at, spent_at, completed_at, client_generation, proof_hash";

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    Pending,
    Succeeded,
    Failed,
    /// Given up by the page before a callback spent it; creates nothing.
    Cancelled,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Pending => "pending",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Failed => "failed",
            AttemptStatus::Cancelled => "cancelled",
        }
    }
}

impl AttemptRow {
    /// The recorded status; anything unknown reads as failed.
    pub fn status(&self) -> AttemptStatus {
        match self.status.as_str() {
            "pending" => AttemptStatus::Pending,
            "succeeded" => AttemptStatus::Succeeded,
            "cancelled" => AttemptStatus::Cancelled,
            _ => AttemptStatus::Failed,
        }
    }
}

/// An attempt to record, with its secrets in the clear (sealed on write).
pub struct NewAttempt<'a> {
    pub row: &'a AttemptRow,
    pub state_hash: &'a [u8],
    pub secrets: &'a [(&'a str, &'a str)],
}

/// How an attempt ended, to record.
pub struct AttemptOutcome<'a> {
    pub status: AttemptStatus,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub provider_code: Option<&'a str>,
    pub connection_id: Option<&'a str>,
    pub now: i64,
}

impl Store {
    pub async fn insert_attempt(&self, vault: &KeyRing, new: NewAttempt<'_>) -> StoreResult<()> {
        let r = new.row;
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO connect_attempts (id, project_id, session_id, integration_id, end_user_id, origin, \
                 message_nonce, state_hash, redirect_uri, reconnect_id, params, status, created_at, expires_at, \
                 client_generation, proof_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&r.id)
            .bind(&r.project_id)
            .bind(&r.session_id)
            .bind(&r.integration_id)
            .bind(&r.end_user_id)
            .bind(&r.origin)
            .bind(&r.message_nonce)
            .bind(new.state_hash)
            .bind(&r.redirect_uri)
            .bind(&r.reconnect_id)
            .bind(&r.params)
            .bind(&r.status)
            .bind(r.created_at)
            .bind(r.expires_at)
            .bind(r.client_generation)
            .bind(&r.proof_hash)
            .execute(&mut *tx)
            .await?;
            for (field, value) in new.secrets {
                insert_sealed!(tx, vault, SECRETS_TABLE, "attempt_id", &r.id, field, value);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn get_attempt(&self, id: &str) -> StoreResult<Option<AttemptRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, AttemptRow>(&format!(
                "SELECT {COLUMNS} FROM connect_attempts WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn find_attempt_by_state(
        &self,
        state_hash: &[u8],
    ) -> StoreResult<Option<AttemptRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, AttemptRow>(&format!(
                "SELECT {COLUMNS} FROM connect_attempts WHERE state_hash = $1"
            ))
            .bind(state_hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Binds a pending attempt to the browser that opened its popup first.
    /// False when it was already opened (or is no longer pending).
    pub async fn open_attempt(&self, id: &str, binding_hash: &[u8], now: i64) -> StoreResult<bool> {
        let updated = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE connect_attempts SET binding_hash = $1, opened_at = $2 \
                 WHERE id = $3 AND binding_hash IS NULL AND status = 'pending'",
            )
            .bind(binding_hash)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Spends an attempt: true for exactly one caller, ever.
    pub async fn spend_attempt(&self, id: &str, now: i64) -> StoreResult<bool> {
        let updated = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE connect_attempts SET spent_at = $1 WHERE id = $2 AND spent_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Cancels a pending attempt that no callback has spent, spending it so
    /// that none can, and forgets its secrets. False when a callback got there
    /// first (or the attempt had already ended).
    pub async fn cancel_attempt(&self, id: &str, now: i64) -> StoreResult<bool> {
        let cancelled = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE connect_attempts SET status = 'cancelled', spent_at = $1, completed_at = $1 \
                 WHERE id = $2 AND status = 'pending' AND spent_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 1 {
                sqlx::query("DELETE FROM connect_attempt_secrets WHERE attempt_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            updated == 1
        });
        Ok(cancelled)
    }

    /// The attempt's sealed values (PKCE verifier, OpenID nonce), opened.
    pub async fn attempt_secrets(
        &self,
        vault: &KeyRing,
        id: &str,
    ) -> StoreResult<BTreeMap<String, Secret>> {
        self.open_sealed(vault, SECRETS_TABLE, "attempt_id", id)
            .await
    }

    /// Records how an attempt ended and forgets its secrets, which are spent.
    pub async fn finish_attempt(&self, id: &str, outcome: AttemptOutcome<'_>) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE connect_attempts SET status = $1, error_code = $2, error_message = $3, provider_code = $4, \
                 connection_id = $5, completed_at = $6 WHERE id = $7",
            )
            .bind(outcome.status.as_str())
            .bind(outcome.error_code)
            .bind(outcome.error_message)
            .bind(outcome.provider_code)
            .bind(outcome.connection_id)
            .bind(outcome.now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM connect_attempt_secrets WHERE attempt_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
