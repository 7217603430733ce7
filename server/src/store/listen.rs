//! How replicas hear each other's writes (`crate::cache`). A write announces
//! its topic inside its transaction — on PostgreSQL with `pg_notify`, which
//! delivers at commit and never for a rollback; SQLite has one process and
//! nobody to tell — and again in this process after the commit. Each
//! PostgreSQL store keeps one connection listening; while it is down the
//! caches are off, and they come back empty once it listens again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;

use crate::cache::{Changes, Topic};

/// The channel writes are announced on.
pub(crate) const CHANNEL: &str = "plugboard_changes";

/// Announces a change to other replicas from inside a transaction.
pub(crate) trait Announce {
    fn announce(&mut self, topic: &Topic) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

impl Announce for sqlx::Transaction<'_, sqlx::Sqlite> {
    fn announce(&mut self, _topic: &Topic) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        std::future::ready(Ok(()))
    }
}

impl Announce for sqlx::Transaction<'_, sqlx::Postgres> {
    fn announce(&mut self, topic: &Topic) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        let payload = topic.payload();
        async move {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&mut **self)
                .await
                .map(|_| ())
        }
    }
}

/// Ends the listening task with the last clone of the store.
pub(crate) struct Listening(tokio::task::JoinHandle<()>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts listening on `pool` for the other replicas' changes.
pub(crate) fn start(pool: PgPool, changes: Arc<Changes>) -> Listening {
    Listening(tokio::spawn(listen(pool, changes)))
}

async fn listen(pool: PgPool, changes: Arc<Changes>) {
    while !pool.is_closed() {
        changes.suspend();
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for other replicas' changes; caches off");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "cannot listen for other replicas' changes; caches off");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        changes.resume();
        // Until the connection is lost: `try_recv` says so rather than
        // reconnecting quietly, and what was sent meanwhile is missed.
        while let Ok(Some(notification)) = listener.try_recv().await {
            changes.changed(&Topic::parse(notification.payload()));
        }
    }
    changes.suspend();
}
