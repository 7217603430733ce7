//! API keys and HTTP Basic credentials — the families `api_key`,
//! `api_key_secret`, `api_key_url`, `basic`, `basic_url` and `basic_api_key`:
//! how each credential is placed on a request. A key goes in a header or a
//! query parameter under the integration's name, after its prefix; Basic is
//! `Authorization: Basic base64(user ":" password)` (RFC 7617, UTF-8).
//! A caller's own header or parameter of the same name is replaced, never
//! kept beside the credential.

use base64::Engine;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use url::Url;

use crate::outbound::{OutboundError, Prepared};
use crate::secret::Secret;

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
    let full = format!("{}{}", placement.prefix, value.expose());
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
