//! Integrations as clients write and read them: the fields of each auth type,
//! their validation, and the merge a PATCH makes.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use url::Url;

use crate::outbound::{self, AllowList};
use crate::secret::Secret;

/// Every auth type of the product. Only those in [`SUPPORTED_AUTH_TYPES`] can be created yet.
pub const AUTH_TYPES: [&str; 10] = [
    "oauth2_authorization_code",
    "oauth2_client_credentials",
    "oauth2_refresh_token",
    "api_key",
    "api_key_secret",
    "api_key_url",
    "basic",
    "basic_url",
    "basic_api_key",
    "aws_sigv4",
];

pub const SUPPORTED_AUTH_TYPES: [&str; 1] = ["oauth2_authorization_code"];

/// Fields every integration has (besides `key` and `auth_type`).
const COMMON_FIELDS: [&str; 9] = [
    "label",
    "description",
    "logo_url",
    "provider",
    "api_base_url",
    "tenant_id",
    "multiple_accounts",
    "refresh_buffer_seconds",
    "test_request",
];

const OAUTH2_CODE_FIELDS: [&str; 11] = [
    "authorization_url",
    "token_url",
    "client_id",
    "scopes",
    "scope_separator",
    "authorization_params",
    "token_auth_method",
    "issuer",
    "jwks_url",
    "userinfo_url",
    "revocation_url",
];

/// Write-only fields: stored in the vault, never read back.
pub const SECRET_FIELDS: [&str; 1] = ["client_secret"];

/// Fields of a read integration that a client may send back unchanged; they are ignored.
const READ_ONLY_FIELDS: [&str; 4] = ["id", "callback_url", "created_at", "updated_at"];

/// Parameters the authorization request sets itself; an integration may not override them.
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

/// An integration that passed validation.
#[derive(Debug)]
pub struct ValidIntegration {
    pub key: String,
    pub auth_type: String,
    /// The non-secret settings, normalised.
    pub config: Map<String, Value>,
    /// Secret fields given in this request, in the clear (sealed by the store).
    pub secrets: Vec<(&'static str, Secret)>,
}

/// Validates a whole integration. `existing_secrets` names the secret fields
/// already stored (on PATCH), which then need not be sent again.
pub fn validate(
    input: &Map<String, Value>,
    existing_secrets: &[String],
    allow: &AllowList,
) -> Result<ValidIntegration, BTreeMap<String, String>> {
    let mut v = Validator {
        input,
        errors: BTreeMap::new(),
        out: Map::new(),
        allow,
    };
    let key = v.key();
    let auth_type = v.auth_type();

    for name in input.keys() {
        let known = name == "key"
            || name == "auth_type"
            || COMMON_FIELDS.contains(&name.as_str())
            || READ_ONLY_FIELDS.contains(&name.as_str())
            || (auth_type.as_deref() == Some("oauth2_authorization_code")
                && (OAUTH2_CODE_FIELDS.contains(&name.as_str())
                    || SECRET_FIELDS.contains(&name.as_str())));
        if !known && !v.errors.contains_key(name) {
            let reason = match auth_type.as_deref() {
                Some(t) => format!("unknown field for auth_type {t}"),
                None => "unknown field".to_string(),
            };
            v.errors.insert(name.clone(), reason);
        }
    }

    let label = v
        .string("label", false, 200)
        .map(|l| crate::text::display_label(&l))
        .filter(|l| !l.is_empty());
    v.out.insert(
        "label".into(),
        Value::String(label.or_else(|| key.clone()).unwrap_or_default()),
    );
    v.optional_string("description", 2000);
    v.url("logo_url", false, UrlUse::Display);
    if v.present("provider") {
        v.errors.insert(
            "provider".into(),
            "the provider catalog is not available yet: configure the integration's URLs directly"
                .into(),
        );
    }
    v.url("api_base_url", false, UrlUse::ApiBase);
    v.optional_string("tenant_id", 200);
    let multiple = v.boolean("multiple_accounts", false);
    v.out
        .insert("multiple_accounts".into(), Value::Bool(multiple));
    let buffer = v.integer("refresh_buffer_seconds", 300, 0, 86_400);
    v.out
        .insert("refresh_buffer_seconds".into(), Value::from(buffer));
    v.test_request();

    let mut secrets = Vec::new();
    if auth_type.as_deref() == Some("oauth2_authorization_code") {
        v.url("authorization_url", true, UrlUse::Browser);
        v.no_reserved_query("authorization_url");
        v.url("token_url", true, UrlUse::Server);
        v.string("client_id", true, 1024)
            .map(|s| v.out.insert("client_id".into(), Value::String(s)));
        match v.string("client_secret", false, 4096) {
            Some(secret) => secrets.push(("client_secret", Secret::new(secret))),
            None if existing_secrets.iter().any(|s| s == "client_secret") => {}
            None if !v.errors.contains_key("client_secret") => {
                v.errors
                    .insert("client_secret".into(), "is required".into());
            }
            None => {}
        }
        v.scopes();
        let separator = v
            .string("scope_separator", false, 4)
            .unwrap_or_else(|| " ".into());
        v.out
            .insert("scope_separator".into(), Value::String(separator));
        v.authorization_params();
        let method = v
            .string("token_auth_method", false, 64)
            .unwrap_or_else(|| "client_secret_basic".into());
        if !["client_secret_basic", "client_secret_post"].contains(&method.as_str()) {
            v.errors.insert(
                "token_auth_method".into(),
                "must be client_secret_basic or client_secret_post".into(),
            );
        }
        v.out
            .insert("token_auth_method".into(), Value::String(method));
        v.url("issuer", false, UrlUse::Issuer);
        let asks_openid = v
            .out
            .get("scopes")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|x| x == "openid"));
        if asks_openid && !v.out.contains_key("issuer") && !v.errors.contains_key("issuer") {
            v.errors.insert(
                "issuer".into(),
                "is required when scopes include openid: the ID token's `iss` is checked against it".into(),
            );
        }
        v.url("jwks_url", false, UrlUse::Server);
        v.url("userinfo_url", false, UrlUse::Server);
        v.url("revocation_url", false, UrlUse::Server);
    }

    match (key, auth_type, v.errors.is_empty()) {
        (Some(key), Some(auth_type), true) => Ok(ValidIntegration {
            key,
            auth_type,
            config: v.out,
            secrets,
        }),
        _ => Err(v.errors),
    }
}

/// The fields whose URL receives a credential: the client secret (token,
/// revocation), an access token (userinfo, the API), or decides which keys and
/// issuer are trusted (JWKS, issuer). Changing one re-points where secrets go.
pub const CREDENTIAL_URL_FIELDS: [&str; 6] = [
    "token_url",
    "revocation_url",
    "userinfo_url",
    "jwks_url",
    "issuer",
    "api_base_url",
];

/// The credential-receiving URL fields whose value differs between two
/// versions of an integration's settings.
pub fn repointed_fields(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<&'static str> {
    CREDENTIAL_URL_FIELDS
        .into_iter()
        .filter(|f| old.get(*f) != new.get(*f))
        .collect()
}

/// Whether the OAuth client changed: another client id, or a re-pointed URL.
/// Connections made before keep the client they were made with.
pub fn client_changed(old: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    old.get("client_id") != new.get("client_id") || !repointed_fields(old, new).is_empty()
}

/// Applies a PATCH (JSON merge patch: a field set to `null` is removed) to
/// the stored settings, giving the whole integration to validate again.
pub fn merge_patch(
    key: &str,
    auth_type: &str,
    stored: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    if patch.get("key").is_some_and(|k| k.as_str() != Some(key)) {
        errors.insert(
            "key".into(),
            "cannot be changed; create a new integration instead".into(),
        );
    }
    if patch
        .get("auth_type")
        .is_some_and(|t| t.as_str() != Some(auth_type))
    {
        errors.insert(
            "auth_type".into(),
            "cannot be changed; create a new integration instead".into(),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut merged = stored.clone();
    merged.insert("key".into(), Value::String(key.into()));
    merged.insert("auth_type".into(), Value::String(auth_type.into()));
    for (name, value) in patch {
        if value.is_null() {
            merged.remove(name);
        } else {
            merged.insert(name.clone(), value.clone());
        }
    }
    Ok(merged)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum UrlUse {
    /// Shown to people (a logo): any http(s) URL.
    Display,
    /// Opened by the end user's browser: https, or http on a loopback host.
    Browser,
    /// Called by the server: https (or http on an allow-listed host), never an internal address unless allow-listed.
    Server,
    /// As `Server`, and may hold `{variables}` filled per connection.
    ApiBase,
    /// An OpenID issuer identifier: as `Browser`, without query or fragment.
    Issuer,
}

struct Validator<'a> {
    input: &'a Map<String, Value>,
    errors: BTreeMap<String, String>,
    out: Map<String, Value>,
    allow: &'a AllowList,
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn host_allow_listed(url: &Url, allow: &AllowList) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => allow.allows_name(d),
        Some(url::Host::Ipv4(ip)) => allow.allows_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => allow.allows_ip(ip.into()),
        None => false,
    }
}

impl Validator<'_> {
    fn present(&self, name: &str) -> bool {
        self.input.get(name).is_some_and(|v| !v.is_null())
    }

    fn fail(&mut self, name: &str, reason: impl Into<String>) {
        self.errors
            .entry(name.to_string())
            .or_insert_with(|| reason.into());
    }

    fn string(&mut self, name: &str, required: bool, max: usize) -> Option<String> {
        match self.input.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(name, "is required");
                }
                None
            }
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    if required {
                        self.fail(name, "must not be empty");
                    }
                    None
                } else if s.chars().count() > max {
                    self.fail(name, format!("must be at most {max} characters"));
                    None
                } else if s.chars().any(char::is_control) {
                    self.fail(name, "must not contain control characters");
                    None
                } else {
                    Some(s.to_string())
                }
            }
            Some(_) => {
                self.fail(name, "must be a string");
                None
            }
        }
    }

    fn optional_string(&mut self, name: &str, max: usize) {
        if let Some(s) = self.string(name, false, max) {
            self.out.insert(name.into(), Value::String(s));
        }
    }

    fn key(&mut self) -> Option<String> {
        let key = self.string("key", true, 64)?;
        let ok = key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && key.as_bytes()[0].is_ascii_alphanumeric();
        if !ok {
            self.fail(
                "key",
                "must use a-z, 0-9, '_' and '-', starting with a letter or digit",
            );
            return None;
        }
        Some(key)
    }

    fn auth_type(&mut self) -> Option<String> {
        let t = self.string("auth_type", true, 64)?;
        if !AUTH_TYPES.contains(&t.as_str()) {
            self.fail(
                "auth_type",
                format!("must be one of: {}", AUTH_TYPES.join(", ")),
            );
            None
        } else if !SUPPORTED_AUTH_TYPES.contains(&t.as_str()) {
            self.fail(
                "auth_type",
                format!(
                    "{t} integrations are not supported yet; supported: {}",
                    SUPPORTED_AUTH_TYPES.join(", ")
                ),
            );
            None
        } else {
            Some(t)
        }
    }

    fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.input.get(name) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.fail(name, "must be true or false");
                default
            }
        }
    }

    fn integer(&mut self, name: &str, default: i64, min: i64, max: i64) -> i64 {
        match self.input.get(name) {
            None | Some(Value::Null) => default,
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => n,
                _ => {
                    self.fail(name, format!("must be a whole number from {min} to {max}"));
                    default
                }
            },
        }
    }

    fn url(&mut self, name: &str, required: bool, use_: UrlUse) {
        let Some(text) = self.string(name, required, 2048) else {
            return;
        };
        // Connection variables such as `{region}` are filled in later; check the URL with a stand-in.
        let checked = if use_ == UrlUse::ApiBase {
            let mut s = String::new();
            let mut in_var = false;
            for c in text.chars() {
                match (c, in_var) {
                    ('{', false) => in_var = true,
                    ('}', true) => {
                        in_var = false;
                        s.push('x');
                    }
                    (_, true) => {}
                    (c, false) => s.push(c),
                }
            }
            s
        } else {
            text.clone()
        };
        let url = match Url::parse(&checked) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            _ => return self.fail(name, "must be an absolute http(s) URL"),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return self.fail(name, "must not contain a user name or password");
        }
        if url.fragment().is_some() {
            return self.fail(name, "must not contain a fragment");
        }
        let plain_http_ok = match use_ {
            UrlUse::Display => true,
            UrlUse::Browser | UrlUse::Issuer => is_loopback_host(&url),
            UrlUse::Server | UrlUse::ApiBase => {
                is_loopback_host(&url) || host_allow_listed(&url, self.allow)
            }
        };
        if url.scheme() == "http" && !plain_http_ok {
            return self.fail(name, "must use https");
        }
        if use_ == UrlUse::Issuer && url.query().is_some() {
            return self.fail(name, "must not contain a query");
        }
        if matches!(use_, UrlUse::Server | UrlUse::ApiBase) {
            if let Err(e) = outbound::check_url_target(&url, self.allow) {
                return self.fail(name, e.to_string());
            }
        }
        self.out.insert(name.into(), Value::String(text));
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
        let scopes = match self.input.get("scopes") {
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
        let params = match self.input.get("authorization_params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => {
                for (name, value) in map {
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

    fn test_request(&mut self) {
        let Some(value) = self.input.get("test_request").filter(|v| !v.is_null()) else {
            return;
        };
        let Some(map) = value.as_object() else {
            return self.fail(
                "test_request",
                "must be an object { method, path, expect_status }",
            );
        };
        if let Some(extra) = map
            .keys()
            .find(|k| !["method", "path", "expect_status"].contains(&k.as_str()))
        {
            return self.fail("test_request", format!("unknown field `{extra}`"));
        }
        let method = map
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_ascii_uppercase();
        if !["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            return self.fail(
                "test_request",
                "method must be GET, HEAD, POST, PUT, PATCH or DELETE",
            );
        }
        let Some(path) = map
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        else {
            return self.fail(
                "test_request",
                "path must be a path starting with '/', relative to the connection's base URL",
            );
        };
        let status = match map.get("expect_status") {
            None => 200,
            Some(v) => match v.as_u64() {
                Some(s) if (100..=599).contains(&s) => s,
                _ => {
                    return self.fail(
                        "test_request",
                        "expect_status must be an HTTP status (100-599)",
                    )
                }
            },
        };
        self.out.insert(
            "test_request".into(),
            serde_json::json!({ "method": method, "path": path, "expect_status": status }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn minimal() -> Value {
        json!({
            "key": "teamleader", "auth_type": "oauth2_authorization_code",
            "client_id": "id", "client_secret": "secret",
            "authorization_url": "https://focus.example.com/oauth2/authorize",
            "token_url": "https://focus.example.com/oauth2/access_token"
        })
    }

    #[test]
    fn accepts_a_minimal_integration_with_defaults() {
        let v = validate(&obj(minimal()), &[], &AllowList::default()).unwrap();
        assert_eq!(v.key, "teamleader");
        assert_eq!(v.config["label"], "teamleader");
        assert_eq!(v.config["token_auth_method"], "client_secret_basic");
        assert_eq!(v.config["refresh_buffer_seconds"], 300);
        assert_eq!(v.secrets, vec![("client_secret", Secret::new("secret"))]);
        assert!(!v.config.contains_key("client_secret"));
    }

    #[test]
    fn names_each_failing_field() {
        let mut input = obj(minimal());
        input.insert("token_url".into(), json!("http://10.0.0.8/token"));
        input.insert("scopes".into(), json!("a b"));
        input.insert("refresh_buffer_seconds".into(), json!(-1));
        input.insert("authorization_params".into(), json!({"redirect_uri": "x"}));
        input.insert("colour".into(), json!("red"));
        input.insert("provider".into(), json!("hubspot"));
        input.remove("client_secret");
        let errors = validate(&input, &[], &AllowList::default()).unwrap_err();
        for field in [
            "token_url",
            "scopes",
            "refresh_buffer_seconds",
            "authorization_params",
            "colour",
            "provider",
            "client_secret",
        ] {
            assert!(errors.contains_key(field), "{field} in {errors:?}");
        }
    }

    #[test]
    fn server_called_urls_refuse_internal_literals_unless_allow_listed() {
        let mut input = obj(minimal());
        input.insert("token_url".into(), json!("http://127.0.0.2:9000/token"));
        let allow = AllowList::parse("127.0.0.1").unwrap();
        assert!(validate(&input, &[], &allow)
            .unwrap_err()
            .contains_key("token_url"));
        input.insert("token_url".into(), json!("http://127.0.0.1:9000/token"));
        assert!(validate(&input, &[], &allow).is_ok());
        input.insert(
            "api_base_url".into(),
            json!("https://{region}.s3.example.com"),
        );
        assert!(validate(&input, &[], &allow).is_ok());
    }

    #[test]
    fn patch_keeps_key_and_auth_type() {
        let stored = obj(json!({"label": "A"}));
        let merged = merge_patch(
            "k",
            "oauth2_authorization_code",
            &stored,
            &obj(json!({"label": null, "scopes": ["x"]})),
        )
        .unwrap();
        assert!(!merged.contains_key("label"));
        assert_eq!(merged["scopes"], json!(["x"]));
        assert!(merge_patch(
            "k",
            "oauth2_authorization_code",
            &stored,
            &obj(json!({"key": "other"}))
        )
        .is_err());
    }
}

/// The stored settings of an integration, typed (what `validate` produced).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Settings {
    pub label: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub logo_url: Option<String>,
    #[serde(default)]
    pub multiple_accounts: bool,
    #[serde(default)]
    pub authorization_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "default_separator")]
    pub scope_separator: String,
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    #[serde(default)]
    pub token_auth_method: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub userinfo_url: Option<String>,
    #[serde(default)]
    pub revocation_url: Option<String>,
}

fn default_separator() -> String {
    " ".to_string()
}

impl Settings {
    pub fn parse(config: &str) -> Result<Settings, String> {
        serde_json::from_str(config).map_err(|e| format!("integration settings: {e}"))
    }

    /// Whether the integration asks for an OpenID Connect ID token.
    pub fn wants_openid(&self) -> bool {
        self.scopes.iter().any(|s| s == "openid")
    }
}
