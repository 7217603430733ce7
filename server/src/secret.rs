//! A secret value in memory: a client secret, a token, a verifier. Its
//! `Debug` prints `[redacted]`, so no struct that holds one can leak it
//! through a log line or a panic message; reading it is explicit.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends or seals it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Secret {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Secret {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("client-secret-canary-9Zx");
        let holder = Some(vec![("client_secret", secret.clone())]);
        let shown = format!("{secret:?} {holder:?} {holder:#?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert_eq!(secret.expose(), "client-secret-canary-9Zx");
        assert_eq!(secret, "client-secret-canary-9Zx");
    }
}
