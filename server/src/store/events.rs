//! The event log: connection status changes, in the order they happened.

use sqlx::FromRow;

use super::{on_pool, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub connection_id: Option<String>,
    pub integration: Option<String>,
    pub end_user_id: Option<String>,
    pub data: String,
    pub created_at: i64,
}

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    ConnectionCreated,
    ConnectionUpdated,
    ConnectionDeleted,
    /// The provider refused the connection's grant: it needs the end user again.
    ConnectionNeedsReauth,
    /// A `needs_reauth` connection works again (reconnected).
    ConnectionRecovered,
    /// A refresh failed for a reason that may pass (a timeout, a 5xx).
    ConnectionRefreshFailed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ConnectionCreated => "connection.created",
            EventKind::ConnectionUpdated => "connection.updated",
            EventKind::ConnectionDeleted => "connection.deleted",
            EventKind::ConnectionNeedsReauth => "connection.needs_reauth",
            EventKind::ConnectionRecovered => "connection.recovered",
            EventKind::ConnectionRefreshFailed => "connection.refresh_failed",
        }
    }
}

/// An event to record, inside the transaction that made the change.
pub struct NewEvent<'a> {
    pub project_id: &'a str,
    pub kind: EventKind,
    pub connection_id: Option<&'a str>,
    pub integration: Option<&'a str>,
    pub end_user_id: Option<&'a str>,
    pub data: serde_json::Value,
    pub now: i64,
}

/// Inserts a `NewEvent` with the given executor (a transaction, usually).
macro_rules! insert_event {
    ($executor:expr, $event:expr) => {{
        let event: &$crate::store::NewEvent<'_> = &$event;
        sqlx::query(
            "INSERT INTO events (id, project_id, type, connection_id, integration, end_user_id, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($crate::ids::new_id("evt"))
        .bind(event.project_id)
        .bind(event.kind.as_str())
        .bind(event.connection_id)
        .bind(event.integration)
        .bind(event.end_user_id)
        .bind(event.data.to_string())
        .bind(event.now)
        .execute($executor)
        .await?;
    }};
}
pub(crate) use insert_event;

impl Store {
    pub async fn record_event(&self, event: NewEvent<'_>) -> StoreResult<()> {
        on_pool!(self, |pool| insert_event!(pool, event));
        Ok(())
    }

    /// Events after `after_seq`, oldest first.
    pub async fn list_events(
        &self,
        project_id: &str,
        connection_id: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, EventRow>(
                "SELECT seq, id, type, connection_id, integration, end_user_id, data, created_at FROM events \
                 WHERE project_id = $1 AND ($2 IS NULL OR connection_id = $2) AND seq > $3 \
                 ORDER BY seq LIMIT $4",
            )
            .bind(project_id)
            .bind(connection_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
