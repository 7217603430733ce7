//! API keys and HTTP Basic credentials — the families `api_key`,
//! `api_key_secret`, `api_key_url`, `basic`, `basic_url` and `basic_api_key`:
//! how each credential is placed on a request. A key goes in a header or a
//! query parameter under the integration's name, after its prefix; Basic is
//! `Authorization: Basic base64(user ":" password)` (RFC 7617, UTF-8).
//! A caller's own header or parameter of the same name is replaced, never
//! kept beside the credential.

use base64::Engine;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use url::Url;

use serde_json::Value;

use crate::integrations::validate::{UrlUse, Validator};
use crate::integrations::AuthType;
use crate::outbound::{OutboundError, Prepared};
use crate::secret::Secret;

/// Headers a key may not be placed in: the request's framing and routing.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
];

/// Validates the integration fields of the API-key and Basic families:
/// where and under which name a key goes (`api_key_in`, `api_key_name`,
/// `api_key_prefix`, and `api_secret_name` for key-and-secret), and what the
/// credential form shows (`docs_url`, `credential_help`).
pub(crate) fn validate(v: &mut Validator<'_>, family: AuthType) {
    let has_key = matches!(
        family,
        AuthType::ApiKey | AuthType::ApiKeySecret | AuthType::ApiKeyUrl | AuthType::BasicApiKey
    );
    if has_key {
        let location = v
            .string("api_key_in", false, 16)
            .unwrap_or_else(|| "header".into());
        let location = match location.as_str() {
            "header" => Some(KeyLocation::Header),
            "query" => Some(KeyLocation::Query),
            _ => {
                v.fail("api_key_in", "must be header or query");
                None
            }
        };
        v.out.insert(
            "api_key_in".into(),
            Value::String(match location {
                Some(KeyLocation::Query) => "query".into(),
                _ => "header".into(),
            }),
        );
        for name in ["api_key_name", "api_secret_name"] {
            let wanted = name == "api_key_name" || family == AuthType::ApiKeySecret;
            if !wanted {
                continue;
            }
            if let Some(value) = v.string(name, true, 128) {
                match key_name_problem(&value, location) {
                    Some(problem) => v.fail(name, problem),
                    None => {
                        v.out.insert(name.into(), Value::String(value));
                    }
                }
            }
        }
        if family != AuthType::BasicApiKey {
            // Kept as given: a prefix's trailing space (`"Token "`) is part of it.
            match v.get("api_key_prefix") {
                None | Some(Value::Null) => {}
                Some(Value::String(prefix)) if prefix.chars().count() > 64 => {
                    v.fail("api_key_prefix", "must be at most 64 characters")
                }
                Some(Value::String(prefix)) if prefix.chars().any(char::is_control) => {
                    v.fail("api_key_prefix", "must not hold control characters")
                }
                Some(Value::String(prefix)) => {
                    if !prefix.is_empty() {
                        v.out.insert("api_key_prefix".into(), Value::String(prefix));
                    }
                }
                Some(_) => v.fail("api_key_prefix", "must be a string"),
            }
        }
    }
    v.url("docs_url", false, UrlUse::Display);
    v.optional_string("credential_help", 2000);
}

/// Why a key may not go under `name`, if it may not.
fn key_name_problem(name: &str, location: Option<KeyLocation>) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    match location {
        Some(KeyLocation::Header) => {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                Some("must be a valid HTTP header name")
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                Some("is a header that frames or routes the request; a key cannot go there")
            } else {
                None
            }
        }
        _ if name
            .chars()
            .any(|c| c.is_control() || c == '&' || c == '=' || c == '#') =>
        {
            Some("must not hold control characters, `&`, `=` or `#`")
        }
        _ => None,
    }
}

/// Where a key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation {
    Header,
    Query,
}

/// How an integration places one of its keys.
#[derive(Debug, Clone)]
pub struct KeyPlacement {
    pub location: KeyLocation,
    /// The header or query parameter's name.
    pub name: String,
    /// Put before the value, as given (for example `"Bearer "` or `"Token token="`).
    pub prefix: String,
}

fn invalid(what: &str) -> OutboundError {
    OutboundError::Transport(format!("the credential cannot be placed: {what}"))
}

/// Places `value` as `placement` says.
pub fn place_key(
    placement: &KeyPlacement,
    value: &Secret,
    request: &mut Prepared<'_>,
) -> Result<(), OutboundError> {
    let mut full = String::with_capacity(placement.prefix.len() + value.expose().len());
    full.push_str(&placement.prefix);
    full.push_str(value.expose());
    match placement.location {
        KeyLocation::Header => {
            let name = HeaderName::from_bytes(placement.name.as_bytes())
                .map_err(|_| invalid("the key's header name is not valid"))?;
            let mut value = HeaderValue::from_str(&full)
                .map_err(|_| invalid("the key is not a valid header value"))?;
            value.set_sensitive(true);
            request.headers.insert(name, value);
        }
        KeyLocation::Query => set_query_param(request.url, &placement.name, &full),
    }
    Ok(())
}

/// Sets `name` in the URL's query to `value` alone, dropping any other value of it.
fn set_query_param(url: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (k, v) in &kept {
        pairs.append_pair(k, v);
    }
    pairs.append_pair(name, value);
}

/// Places HTTP Basic credentials, replacing any `Authorization` the request had.
pub fn place_basic(
    username: &Secret,
    password: &Secret,
    request: &mut Prepared<'_>,
) -> Result<(), OutboundError> {
    let pair = format!("{}:{}", username.expose(), password.expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| invalid("the Basic credentials are not a valid header value"))?;
    value.set_sensitive(true);
    request.headers.insert(AUTHORIZATION, value);
    Ok(())
}

/// An API-key or Basic integration's settings, typed: how each of a
/// connection's keys is placed, and whether Basic credentials go first.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// HTTP Basic (`basic`, `basic_url`, `basic_api_key`).
    pub basic: bool,
    /// Where the connection's `api_key` goes, for the types that have one.
    pub key: Option<KeyPlacement>,
    /// Where its `api_secret` goes (`api_key_secret`): like the key, under
    /// `api_secret_name`, without the prefix.
    pub secret: Option<KeyPlacement>,
}

impl KeySpec {
    /// Reads the stored (validated) settings of an integration of `family`.
    pub fn from_config(
        family: AuthType,
        config: &serde_json::Map<String, Value>,
    ) -> Result<KeySpec, String> {
        let text = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_string);
        let location = match text("api_key_in").as_deref() {
            Some("query") => KeyLocation::Query,
            _ => KeyLocation::Header,
        };
        let basic = matches!(
            family,
            AuthType::Basic | AuthType::BasicUrl | AuthType::BasicApiKey
        );
        let has_key = matches!(
            family,
            AuthType::ApiKey | AuthType::ApiKeySecret | AuthType::ApiKeyUrl | AuthType::BasicApiKey
        );
        let key = if has_key {
            Some(KeyPlacement {
                location,
                name: text("api_key_name").ok_or("integration settings: no api_key_name")?,
                prefix: text("api_key_prefix").unwrap_or_default(),
            })
        } else {
            None
        };
        let secret = if family == AuthType::ApiKeySecret {
            Some(KeyPlacement {
                location,
                name: text("api_secret_name").ok_or("integration settings: no api_secret_name")?,
                prefix: String::new(),
            })
        } else {
            None
        };
        Ok(KeySpec { basic, key, secret })
    }
}
