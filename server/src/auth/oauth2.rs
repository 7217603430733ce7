//! OAuth 2.0 integrations — the authorization code, and the two grants with
//! no end user (client credentials; a refresh token the developer pastes):
//! their fields, validated and typed, and how an access token is placed on a
//! request. How a token is obtained, refreshed and revoked is the protocol's
//! (`crate::oauth`).

use std::collections::BTreeMap;

use http::header::{HeaderValue, AUTHORIZATION};
use serde_json::{Map, Value};
use url::Url;

use crate::integrations::validate::{UrlUse, Validator};
use crate::outbound::{OutboundError, Prepared};
use crate::secret::Secret;

/// Parameters the authorization request sets itself; an integration may not
/// set them, in `authorization_params` or in `authorization_url`'s own query.
const RESERVED_AUTHORIZATION_PARAMS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "request_uri",
];

/// How the client authenticates at the token and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenAuthMethod {
    /// HTTP Basic with the form-encoded client id and secret (RFC 6749 2.3.1).
    #[default]
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
}

impl TokenAuthMethod {
    pub fn parse(text: &str) -> Option<TokenAuthMethod> {
        match text {
            "client_secret_basic" => Some(TokenAuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(TokenAuthMethod::ClientSecretPost),
            _ => None,
        }
    }
}

/// An authorization-code integration's OAuth settings, typed: what the
/// protocol code needs, with nothing left to default at the point of use.
#[derive(Debug, Clone)]
pub struct CodeSpec {
    pub authorization_url: String,
    pub token_url: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub scope_separator: String,
    pub authorization_params: BTreeMap<String, String>,
    pub token_auth_method: TokenAuthMethod,
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub revocation_url: Option<String>,
}

impl CodeSpec {
    /// Whether the integration asks for an OpenID Connect ID token.
    pub fn wants_openid(&self) -> bool {
        self.scopes.iter().any(|s| s == "openid")
    }

    /// Reads the stored (validated) settings.
    pub fn from_config(config: &Map<String, Value>) -> Result<CodeSpec, String> {
        let text = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_string);
        let endpoint = TokenEndpoint::from_config(config)?;
        Ok(CodeSpec {
            authorization_url: text("authorization_url")
                .ok_or("integration settings: no authorization_url")?,
            token_url: endpoint.token_url,
            client_id: endpoint.client_id,
            scopes: endpoint.scopes,
            scope_separator: text("scope_separator").unwrap_or_else(|| " ".into()),
            authorization_params: config
                .get("authorization_params")
                .and_then(Value::as_object)
                .map(|map| {
                    map.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            token_auth_method: endpoint.token_auth_method,
            issuer: text("issuer"),
            jwks_url: text("jwks_url"),
            userinfo_url: text("userinfo_url"),
            revocation_url: text("revocation_url"),
        })
    }
}

/// Where and as whom Plugboard asks for tokens: what every OAuth family shares.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    pub token_url: String,
    pub client_id: String,
    pub token_auth_method: TokenAuthMethod,
    /// Scopes to ask for where the grant takes them (client credentials).
    pub scopes: Vec<String>,
}

impl TokenEndpoint {
    /// Reads the token request's stored (validated) settings.
    pub fn from_config(config: &Map<String, Value>) -> Result<TokenEndpoint, String> {
        let text = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_string);
        let required =
            |name: &str| text(name).ok_or_else(|| format!("integration settings: no {name}"));
        let method = text("token_auth_method").unwrap_or_else(|| "client_secret_basic".into());
        Ok(TokenEndpoint {
            token_url: required("token_url")?,
            client_id: required("client_id")?,
            token_auth_method: TokenAuthMethod::parse(&method)
                .ok_or_else(|| format!("integration settings: token_auth_method {method}"))?,
            scopes: config
                .get("scopes")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

impl CodeSpec {
    pub fn token_endpoint(&self) -> TokenEndpoint {
        TokenEndpoint {
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            token_auth_method: self.token_auth_method,
            scopes: self.scopes.clone(),
        }
    }
}

/// The settings of a grant without an end user: `oauth2_client_credentials`
/// or `oauth2_refresh_token` (whose refresh token is one of its secrets).
#[derive(Debug, Clone)]
pub struct GrantSpec {
    pub endpoint: TokenEndpoint,
}

impl GrantSpec {
    pub fn from_config(config: &Map<String, Value>) -> Result<GrantSpec, String> {
        Ok(GrantSpec {
            endpoint: TokenEndpoint::from_config(config)?,
        })
    }
}

/// Validates the fields of a grant without an end user; answers the secrets
/// given. `with_refresh_token`: the `oauth2_refresh_token` type, whose
/// refresh token is required (and write-only, like the client secret).
pub(crate) fn validate_grant(
    v: &mut Validator<'_>,
    existing_secrets: &[String],
    with_refresh_token: bool,
) -> Vec<(&'static str, Secret)> {
    let mut secrets = Vec::new();
    v.url("token_url", true, UrlUse::Server);
    if let Some(s) = v.string("client_id", true, 1024) {
        v.out.insert("client_id".into(), Value::String(s));
    }
    let mut secret =
        |v: &mut Validator<'_>, name: &'static str, max: usize| match v.string(name, false, max) {
            Some(value) => secrets.push((name, Secret::new(value))),
            None if existing_secrets.iter().any(|s| s == name) => {}
            None => v.fail(name, "is required"),
        };
    secret(v, "client_secret", 4096);
    if with_refresh_token {
        secret(v, "refresh_token", 8192);
    } else {
        v.scopes();
    }
    v.token_auth_method();
    secrets
}

/// Validates the authorization-code fields; answers the secrets given.
pub(crate) fn validate(
    v: &mut Validator<'_>,
    existing_secrets: &[String],
) -> Vec<(&'static str, Secret)> {
    let mut secrets = Vec::new();
    v.url("authorization_url", true, UrlUse::Browser);
    v.no_reserved_query("authorization_url");
    v.url("token_url", true, UrlUse::Server);
    if let Some(s) = v.string("client_id", true, 1024) {
        v.out.insert("client_id".into(), Value::String(s));
    }
    match v.string("client_secret", false, 4096) {
        Some(secret) => secrets.push(("client_secret", Secret::new(secret))),
        None if existing_secrets.iter().any(|s| s == "client_secret") => {}
        None => v.fail("client_secret", "is required"),
    }
    v.scopes();
    let separator = v
        .string("scope_separator", false, 4)
        .unwrap_or_else(|| " ".into());
    v.out
        .insert("scope_separator".into(), Value::String(separator));
    v.authorization_params();
    v.token_auth_method();
    v.url("issuer", false, UrlUse::Issuer);
    let asks_openid = v
        .out
        .get("scopes")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|x| x == "openid"));
    if asks_openid && !v.out.contains_key("issuer") {
        v.fail(
            "issuer",
            "is required when scopes include openid: the ID token's `iss` is checked against it",
        );
    }
    v.url("jwks_url", false, UrlUse::Server);
    v.url("userinfo_url", false, UrlUse::Server);
    v.url("revocation_url", false, UrlUse::Server);
    secrets
}

impl Validator<'_> {
    fn token_auth_method(&mut self) {
        let method = self
            .string("token_auth_method", false, 64)
            .unwrap_or_else(|| "client_secret_basic".into());
        if TokenAuthMethod::parse(&method).is_none() {
            self.fail(
                "token_auth_method",
                "must be client_secret_basic or client_secret_post",
            );
        }
        self.out
            .insert("token_auth_method".into(), Value::String(method));
    }

    /// The authorization request's own parameters may not come from the URL's
    /// query, where they would be sent before (and so may be read instead of)
    /// Plugboard's.
    fn no_reserved_query(&mut self, name: &str) {
        let Some(url) = self
            .out
            .get(name)
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
        else {
            return;
        };
        let reserved: Vec<String> = url
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .filter(|k| RESERVED_AUTHORIZATION_PARAMS.contains(&k.as_str()))
            .collect();
        if let Some(first) = reserved.first() {
            self.out.remove(name);
            self.fail(
                name,
                format!("its query must not set `{first}`: Plugboard sets it itself"),
            );
        }
    }

    fn scopes(&mut self) {
        let scopes = match self.get("scopes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut scopes = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s)
                            if !s.is_empty()
                                && s.len() <= 256
                                && s.bytes()
                                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') =>
                        {
                            if !scopes.iter().any(|x: &Value| x.as_str() == Some(s)) {
                                scopes.push(Value::String(s.to_string()));
                            }
                        }
                        _ => return self.fail(
                            "scopes",
                            "must be a list of scope names without spaces, quotes or backslashes",
                        ),
                    }
                }
                if scopes.len() > 100 {
                    return self.fail("scopes", "must list at most 100 scopes");
                }
                scopes
            }
            Some(_) => return self.fail("scopes", "must be a list of strings"),
        };
        self.out.insert("scopes".into(), Value::Array(scopes));
    }

    fn authorization_params(&mut self) {
        let params = match self.get("authorization_params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => {
                for (name, value) in &map {
                    if RESERVED_AUTHORIZATION_PARAMS.contains(&name.as_str()) {
                        return self.fail(
                            "authorization_params",
                            format!("`{name}` is set by Plugboard itself and cannot be overridden"),
                        );
                    }
                    if name.is_empty() || !value.is_string() {
                        return self.fail(
                            "authorization_params",
                            "must map parameter names to string values",
                        );
                    }
                }
                if map.len() > 50 {
                    return self.fail("authorization_params", "must have at most 50 parameters");
                }
                map.clone()
            }
            Some(_) => {
                return self.fail("authorization_params", "must be an object of string values")
            }
        };
        self.out
            .insert("authorization_params".into(), Value::Object(params));
    }
}

/// Places an OAuth 2.0 access token: `Authorization: Bearer` (RFC 6750,
/// section 2.1), replacing any `Authorization` the request had.
pub fn place_access_token(token: &Secret, request: &mut Prepared<'_>) -> Result<(), OutboundError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        OutboundError::Transport("the access token is not a valid header value".into())
    })?;
    value.set_sensitive(true);
    request.headers.insert(AUTHORIZATION, value);
    Ok(())
}
