//! Plugboard's server: holds integrations' client secrets and end users'
//! credentials encrypted, runs the connect flows, and acts on connected accounts.
//!
//! `main.rs` only calls [`cli::run`]; the tests build the same
//! [`http::application`] and [`http::router`].

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod auth;
pub mod cache;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod connections;
pub mod credentials;
pub mod error;
#[cfg(feature = "fault-hooks")]
pub mod faults;
pub mod functions;
pub mod http;
pub mod ids;
pub mod integrations;
pub mod jobs;
pub mod oauth;
pub mod outbound;
pub mod projects;
pub mod proxy;
pub mod ratelimit;
pub mod redact;
pub mod secret;
pub mod store;
pub mod text;
pub mod tokens;
pub mod vault;

/// A fault hook (`faults::point`) with the `fault-hooks` feature; nothing without it.
#[macro_export]
macro_rules! fault_point {
    ($name:literal) => {
        #[cfg(feature = "fault-hooks")]
        $crate::faults::point($name);
    };
}
