//! Text that came from a provider, made safe to show and store: anything
//! Plugboard sent it (client secret, authorization code, PKCE verifier,
//! tokens) is removed, in the spellings a provider may echo it in, and the
//! rest is cut to a bounded length.

use base64::Engine;

/// What replaces a value Plugboard sent.
pub const REDACTED: &str = "[redacted]";

/// The values to remove from provider text.
#[derive(Default)]
pub struct Redactor {
    values: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.values.len())
            .finish()
    }
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Removes `value` as sent, form-encoded, and percent-encoded. Values
    /// shorter than four characters are too likely to occur by chance to
    /// redact usefully, and carry no secret worth the name.
    pub fn secret(mut self, value: &str) -> Redactor {
        if value.chars().count() < 4 {
            return self;
        }
        let forms = [
            value.to_string(),
            form_encode(value),
            form_encode(value).replace('+', "%20"),
        ];
        for form in forms {
            if !self.values.contains(&form) {
                self.values.push(form);
            }
        }
        self
    }

    /// Removes HTTP Basic credentials built from a client id and secret
    /// (RFC 6749 section 2.3.1: each part form-encoded, then base64), and the
    /// secret itself.
    pub fn basic_credentials(self, client_id: &str, client_secret: &str) -> Redactor {
        let plain = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
        let encoded = base64::engine::general_purpose::STANDARD.encode(plain.as_bytes());
        self.secret(client_secret).secret(&encoded)
    }

    /// `text` without any of the values, cut to `max` characters.
    pub fn clean(&self, text: &str, max: usize) -> String {
        let mut values: Vec<&String> = self.values.iter().collect();
        // Longer first, so a value that contains another is removed whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_string();
        for value in values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REDACTED);
            }
        }
        truncate(&out, max)
    }
}

/// `text` cut to `max` characters, marked with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_every_spelling_of_what_was_sent() {
        let r = Redactor::new()
            .secret("code/with+plus")
            .basic_credentials("client 1", "s3cret&more");
        let echoed = "bad code=code%2Fwith%2Bplus (code/with+plus), secret s3cret%26more, \
                      auth Basic Y2xpZW50KzE6czNjcmV0JTI2bW9yZQ==";
        let cleaned = r.clean(echoed, 1000);
        for leaked in ["code/with+plus", "code%2Fwith%2Bplus", "s3cret", "Y2xpZW50"] {
            assert!(!cleaned.contains(leaked), "{leaked} in {cleaned}");
        }
        assert!(cleaned.contains(REDACTED));
    }

    #[test]
    fn cuts_long_text() {
        let cleaned = Redactor::new().clean(&"x".repeat(1000), 300);
        assert_eq!(cleaned.chars().count(), 300);
        assert!(cleaned.ends_with('…'));
        assert_eq!(Redactor::new().secret("ab").clean("ab", 10), "ab");
    }
}
