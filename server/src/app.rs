//! The application: everything the CLI, the HTTP layer, the background jobs
//! and the tests use — the store, the vault, the clock, the outbound client,
//! the settings and the rate limiters — built in one place.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::outbound::Outbound;
use crate::ratelimit::Limiters;
use crate::store::Store;
use crate::tokens::Refreshes;
use crate::vault::KeyRing;

/// Everything a request handler may use.
pub struct App {
    pub store: Store,
    pub vault: Arc<KeyRing>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub outbound: Outbound,
    pub limiters: Limiters,
    /// This process's side of single-flight token refresh.
    pub refreshes: Refreshes,
    /// Connections prepared for calls, kept until a write changes them.
    pub calls: crate::proxy::Calls,
}

impl App {
    pub fn new(
        store: Store,
        vault: KeyRing,
        clock: Arc<dyn Clock>,
        settings: Settings,
        outbound: Outbound,
    ) -> App {
        App {
            limiters: Limiters::new(&settings.limits),
            calls: crate::cache::Cache::new(store.changes()),
            store,
            vault: Arc::new(vault),
            clock,
            settings,
            outbound,
            refreshes: Refreshes::default(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// The current time in fractional seconds, for rate limits.
    pub fn now_precise(&self) -> f64 {
        self.clock.now().unix_timestamp_nanos() as f64 / 1e9
    }
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The redirect URI to register at the provider: one per integration, so a
/// code can only ever reach the token endpoint of the integration it was issued for.
pub fn callback_url(settings: &Settings, integration_id: &str) -> String {
    settings.public_url_for(&format!("/oauth/callback/{integration_id}"))
}
