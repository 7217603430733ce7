//! Background loops, each reading the time from the app's `Clock`: purging
//! expired connect sessions and the sealed values of expired attempts, and
//! refreshing tokens before anyone needs them.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;

/// How often the purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// How long an expired connect session (and its attempts' statuses) is kept.
pub const PURGE_AFTER_SECONDS: i64 = 86_400;

/// How often the proactive refresh looks for tokens falling due.
const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// It looks this far ahead: the default buffer plus one pass, so that a token
/// is refreshed by the job before a use would have to.
pub const REFRESH_HORIZON_SECONDS: i64 = 300 + 30;
/// At most this many connections per pass.
pub const REFRESH_BATCH: i64 = 100;

/// Starts the background loops; they stop when the returned handle is aborted.
pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let purge = {
            let app = app.clone();
            async move {
                let mut every = tokio::time::interval(PURGE_EVERY);
                loop {
                    every.tick().await;
                    match app
                        .store
                        .purge_expired(app.now(), PURGE_AFTER_SECONDS)
                        .await
                    {
                        Ok(purged) => tracing::debug!(?purged, "purged expired connect sessions"),
                        Err(e) => {
                            tracing::warn!(error = %e, "purging expired connect sessions failed")
                        }
                    }
                }
            }
        };
        let refresh = async move {
            // The first pass one period after start: a process starting (or
            // restarting) does not storm the providers before serving.
            let mut every = tokio::time::interval_at(
                tokio::time::Instant::now() + REFRESH_EVERY,
                REFRESH_EVERY,
            );
            loop {
                every.tick().await;
                refresh_pass(&app).await;
            }
        };
        tokio::join!(purge, refresh);
    })
}

/// One pass of the proactive refresh: each connection through the same path
/// as any use, so single-flight holds between the job, the requests and the
/// other replicas, and a dead grant is found (`needs_reauth`) before a user
/// needs the connection.
pub async fn refresh_pass(app: &App) {
    match crate::tokens::refresh_due(app, REFRESH_HORIZON_SECONDS, REFRESH_BATCH).await {
        Ok((0, 0)) => {}
        Ok((fresh, failed)) => tracing::info!(fresh, failed, "proactive token refresh"),
        Err(e) => tracing::warn!(error = %e.message, "proactive token refresh failed"),
    }
}
