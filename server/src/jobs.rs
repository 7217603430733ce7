//! Background loops, each reading the time from the app's `Clock`. For now:
//! purging expired connect sessions and the sealed values of expired attempts.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;

/// How often the purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// How long an expired connect session (and its attempts' statuses) is kept.
pub const PURGE_AFTER_SECONDS: i64 = 86_400;

/// Starts the background loops; they stop when the returned handle is aborted.
pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            every.tick().await;
            match app
                .store
                .purge_expired(app.now(), PURGE_AFTER_SECONDS)
                .await
            {
                Ok(purged) => tracing::debug!(?purged, "purged expired connect sessions"),
                Err(e) => tracing::warn!(error = %e, "purging expired connect sessions failed"),
            }
        }
    })
}
