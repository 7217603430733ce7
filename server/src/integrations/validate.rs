//! Validation of an integration as clients write it: every field checked,
//! every failure named, and PATCH as a JSON merge patch validated whole.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use url::Url;

use super::AuthType;
use crate::outbound::{self, AllowList};
use crate::secret::Secret;

/// Fields of a read integration that a client may send back unchanged; they are ignored.
const READ_ONLY_FIELDS: [&str; 4] = ["id", "callback_url", "created_at", "updated_at"];

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

/// Validates a whole integration: the fields every integration has, then its
/// auth family's (`auth::…::validate`); a field no check read is unknown.
/// `existing_secrets` names the secret fields already stored (on PATCH),
/// which then need not be sent again.
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
        read: BTreeSet::new(),
    };
    let key = v.key();
    let auth_type = v.auth_type();

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

    let secrets = match auth_type {
        Some(AuthType::OAuth2AuthorizationCode) => {
            crate::auth::oauth2::validate(&mut v, existing_secrets)
        }
        Some(AuthType::OAuth2ClientCredentials) => {
            crate::auth::oauth2::validate_grant(&mut v, existing_secrets, false)
        }
        Some(AuthType::OAuth2RefreshToken) => {
            crate::auth::oauth2::validate_grant(&mut v, existing_secrets, true)
        }
        Some(AuthType::AwsSigV4) => {
            crate::auth::aws::validate(&mut v);
            Vec::new()
        }
        Some(family) => {
            crate::auth::api_key::validate(&mut v, family);
            Vec::new()
        }
        None => Vec::new(),
    };

    for name in input.keys() {
        let known = v.read.contains(name.as_str()) || READ_ONLY_FIELDS.contains(&name.as_str());
        if !known && !v.errors.contains_key(name) {
            let reason = match auth_type {
                Some(t) => format!("unknown field for auth_type {}", t.as_str()),
                None => "unknown field".to_string(),
            };
            v.errors.insert(name.clone(), reason);
        }
    }

    if let Some(t) = auth_type {
        let own_base = t.has_connection_base_url() || t == AuthType::AwsSigV4;
        if !t.is_oauth()
            && !own_base
            && v.out.contains_key("test_request")
            && !v.out.contains_key("api_base_url")
        {
            v.fail(
                "api_base_url",
                "is required with a test_request: it is the URL the request's path is appended to",
            );
        }
    }

    match (key, auth_type, v.errors.is_empty()) {
        (Some(key), Some(auth_type), true) => Ok(ValidIntegration {
            key,
            auth_type: auth_type.as_str().to_string(),
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

/// A URL the server calls with a connection's credentials (an "… with URL"
/// connection's base URL): https, or http on a loopback or allow-listed
/// host; never an internal address unless allow-listed (SECURITY 16).
pub fn server_url(text: &str, allow: &AllowList) -> Result<Url, String> {
    let url = check_url(text, UrlUse::Server, allow)?;
    if url.query().is_some() {
        return Err("must not contain a query".into());
    }
    Ok(url)
}

fn check_url(text: &str, use_: UrlUse, allow: &AllowList) -> Result<Url, String> {
    let url = match Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        _ => return Err("must be an absolute http(s) URL".into()),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("must not contain a fragment".into());
    }
    let plain_http_ok = match use_ {
        UrlUse::Display => true,
        UrlUse::Browser | UrlUse::Issuer => is_loopback_host(&url),
        UrlUse::Server | UrlUse::ApiBase => {
            is_loopback_host(&url) || host_allow_listed(&url, allow)
        }
    };
    if url.scheme() == "http" && !plain_http_ok {
        return Err("must use https".into());
    }
    if use_ == UrlUse::Issuer && url.query().is_some() {
        return Err("must not contain a query".into());
    }
    if matches!(use_, UrlUse::Server | UrlUse::ApiBase) {
        if let Err(e) = outbound::check_url_target(&url, allow) {
            return Err(e.to_string());
        }
    }
    Ok(url)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlUse {
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

/// Reads an integration's input field by field, collecting every failure
/// and the normalised output; remembers which fields it read.
pub(crate) struct Validator<'a> {
    input: &'a Map<String, Value>,
    pub(crate) errors: BTreeMap<String, String>,
    pub(crate) out: Map<String, Value>,
    allow: &'a AllowList,
    read: BTreeSet<String>,
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
    /// The input's value of `name`, which is now known.
    pub(crate) fn get(&mut self, name: &str) -> Option<Value> {
        self.read.insert(name.to_string());
        self.input.get(name).cloned()
    }

    pub(crate) fn present(&mut self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_null())
    }

    pub(crate) fn fail(&mut self, name: &str, reason: impl Into<String>) {
        self.errors
            .entry(name.to_string())
            .or_insert_with(|| reason.into());
    }

    pub(crate) fn string(&mut self, name: &str, required: bool, max: usize) -> Option<String> {
        match self.get(name) {
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

    pub(crate) fn optional_string(&mut self, name: &str, max: usize) {
        if let Some(s) = self.string(name, false, max) {
            self.out.insert(name.into(), Value::String(s));
        }
    }

    pub(crate) fn key(&mut self) -> Option<String> {
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

    pub(crate) fn auth_type(&mut self) -> Option<AuthType> {
        let t = self.string("auth_type", true, 64)?;
        let all: Vec<&str> = AuthType::ALL.iter().map(|a| a.as_str()).collect();
        let parsed = AuthType::parse(&t);
        if parsed.is_none() {
            self.fail("auth_type", format!("must be one of: {}", all.join(", ")));
        }
        parsed
    }

    pub(crate) fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.get(name) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                self.fail(name, "must be true or false");
                default
            }
        }
    }

    pub(crate) fn integer(&mut self, name: &str, default: i64, min: i64, max: i64) -> i64 {
        match self.get(name) {
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

    pub(crate) fn url(&mut self, name: &str, required: bool, use_: UrlUse) {
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
        match check_url(&checked, use_, self.allow) {
            Ok(_) => {
                self.out.insert(name.into(), Value::String(text));
            }
            Err(reason) => self.fail(name, reason),
        }
    }

    /// `test_request`: `{ method, path, expect_status, label_pointer }`,
    /// each failure named `test_request.<field>`.
    pub(crate) fn test_request(&mut self) {
        let Some(value) = self.get("test_request").filter(|v| !v.is_null()) else {
            return;
        };
        let Some(map) = value.as_object() else {
            return self.fail(
                "test_request",
                "must be an object { method, path, expect_status, label_pointer }",
            );
        };
        let before = self.errors.len();
        for extra in map
            .keys()
            .filter(|k| !["method", "path", "expect_status", "label_pointer"].contains(&k.as_str()))
        {
            self.fail(&format!("test_request.{extra}"), "unknown field");
        }
        let method = match map.get("method") {
            None => Some("GET".to_string()),
            Some(Value::String(m))
                if ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                    .contains(&m.to_ascii_uppercase().as_str()) =>
            {
                Some(m.to_ascii_uppercase())
            }
            Some(_) => {
                self.fail(
                    "test_request.method",
                    "must be GET, HEAD, POST, PUT, PATCH or DELETE",
                );
                None
            }
        };
        let path = match map.get("path").and_then(Value::as_str) {
            Some(p) if !test_path_ok(p) => {
                self.fail(
                    "test_request.path",
                    "must be a path starting with '/', relative to the connection's base URL, \
                     without '//', '..' or '.' segments, a fragment or control characters",
                );
                None
            }
            Some(p) => Some(p.to_string()),
            None => {
                self.fail("test_request.path", "is required");
                None
            }
        };
        let status = match map.get("expect_status") {
            None => Some(200),
            Some(v) => match v.as_u64() {
                Some(s) if (100..=599).contains(&s) => Some(s),
                _ => {
                    self.fail(
                        "test_request.expect_status",
                        "must be an HTTP status (100-599)",
                    );
                    None
                }
            },
        };
        let pointer = match map.get("label_pointer") {
            None | Some(Value::Null) => None,
            Some(Value::String(p))
                if p.starts_with('/') && p.len() <= 200 && !p.chars().any(char::is_control) =>
            {
                Some(p.clone())
            }
            Some(_) => {
                self.fail(
                    "test_request.label_pointer",
                    "must be a JSON Pointer into the answer, such as /email (RFC 6901)",
                );
                None
            }
        };
        if self.errors.len() != before {
            return;
        }
        let mut out =
            serde_json::json!({ "method": method, "path": path, "expect_status": status });
        if let Some(pointer) = pointer {
            out["label_pointer"] = Value::String(pointer);
        }
        self.out.insert("test_request".into(), out);
    }
}

/// A `test_request` path: appended to a base URL, it cannot leave it for another host or climb out of its path.
fn test_path_ok(path: &str) -> bool {
    let bare = path.split(['?', '#']).next().unwrap_or_default();
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('#')
        && !path.contains('\\')
        && !path.chars().any(|c| c.is_control() || c.is_whitespace())
        && bare.split('/').all(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            decoded != "." && decoded != ".." && !decoded.contains('/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    pub(crate) fn minimal() -> Value {
        json!({
            "key": "teamleader", "auth_type": "oauth2_authorization_code",
            "client_id": "id", "client_secret": "secret",
            "authorization_url": "https://focus.example.com/oauth2/authorize",
            "token_url": "https://focus.example.com/oauth2/access_token"
        })
    }

    fn errors_of(input: Value) -> BTreeMap<String, String> {
        validate(&obj(input), &[], &AllowList::default()).unwrap_err()
    }

    #[test]
    fn the_credential_families_fields_are_checked() {
        for input in [
            json!({ "key": "k", "auth_type": "api_key", "api_key_name": "X-API-Key",
                    "api_key_prefix": "Token ", "docs_url": "https://docs.example.com/keys",
                    "credential_help": "Settings, then API." }),
            json!({ "key": "k", "auth_type": "api_key_secret", "api_key_in": "query",
                    "api_key_name": "key", "api_secret_name": "secret" }),
            json!({ "key": "k", "auth_type": "api_key_url", "api_key_name": "X-Key",
                    "test_request": { "path": "/me", "label_pointer": "/email" } }),
            json!({ "key": "k", "auth_type": "basic", "api_base_url": "https://api.example.com/v2",
                    "test_request": { "method": "get", "path": "/user", "expect_status": 200 } }),
            json!({ "key": "k", "auth_type": "basic_url" }),
            json!({ "key": "k", "auth_type": "basic_api_key", "api_key_name": "X-Tenant" }),
            json!({ "key": "k", "auth_type": "aws_sigv4", "aws_service": "s3",
                    "test_request": { "path": "/" } }),
        ] {
            let valid = validate(&obj(input.clone()), &[], &AllowList::default());
            assert!(valid.is_ok(), "{input}: {valid:?}");
        }
        // A prefix keeps its space.
        let valid = validate(
            &obj(
                json!({ "key": "k", "auth_type": "api_key", "api_key_name": "Authorization",
                         "api_key_prefix": "Token token=" }),
            ),
            &[],
            &AllowList::default(),
        )
        .unwrap();
        assert_eq!(valid.config["api_key_prefix"], "Token token=");
        // A test_request needs a base URL to go to, and each of its faults is named.
        let errors = errors_of(
            json!({ "key": "k", "auth_type": "api_key", "api_key_name": "X",
                                       "test_request": { "path": "/me" } }),
        );
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            ["api_base_url"],
            "{errors:?}"
        );
        let errors = errors_of(
            json!({ "key": "k", "auth_type": "api_key_url", "api_key_name": "X",
                                       "test_request": { "method": "TRACE", "path": "/a/../b",
                                                         "expect_status": 99, "label_pointer": "email",
                                                         "body": "x" } }),
        );
        for field in [
            "test_request.method",
            "test_request.path",
            "test_request.expect_status",
            "test_request.label_pointer",
            "test_request.body",
        ] {
            assert!(errors.contains_key(field), "{field} in {errors:?}");
        }
        for path in [
            "//evil.example/x",
            "/%2e%2e/x",
            "/a/./b",
            "me",
            "/a b",
            "/a#b",
        ] {
            let errors = errors_of(json!({ "key": "k", "auth_type": "basic_url",
                                           "test_request": { "path": path } }));
            assert!(
                errors.contains_key("test_request.path"),
                "{path}: {errors:?}"
            );
        }
        // Wrong ones are each named.
        let errors = errors_of(
            json!({ "key": "k", "auth_type": "api_key", "api_key_in": "body",
                                       "api_key_name": "Host", "api_key_prefix": "a\u{7}" }),
        );
        for field in ["api_key_in", "api_key_prefix"] {
            assert!(errors.contains_key(field), "{field} in {errors:?}");
        }
        let errors = errors_of(
            json!({ "key": "k", "auth_type": "api_key", "api_key_name": "Content-Length" }),
        );
        assert!(
            errors["api_key_name"].contains("frames or routes"),
            "{errors:?}"
        );
        let errors = errors_of(
            json!({ "key": "k", "auth_type": "api_key", "api_key_in": "query",
                                       "api_key_name": "a&b" }),
        );
        assert!(errors.contains_key("api_key_name"), "{errors:?}");
        let errors = errors_of(
            json!({ "key": "k", "auth_type": "api_key_secret", "api_key_name": "X-Key" }),
        );
        assert_eq!(errors["api_secret_name"], "is required");
        let errors = errors_of(
            json!({ "key": "k", "auth_type": "aws_sigv4", "aws_service": "S3!",
                                       "client_id": "x", "docs_url": "javascript:alert(1)" }),
        );
        for field in ["aws_service", "client_id", "docs_url"] {
            assert!(errors.contains_key(field), "{field} in {errors:?}");
        }
        let errors =
            errors_of(json!({ "key": "k", "auth_type": "basic", "api_key_name": "X-Key" }));
        assert!(
            errors["api_key_name"].starts_with("unknown field"),
            "{errors:?}"
        );
    }

    #[test]
    pub(crate) fn accepts_a_minimal_integration_with_defaults() {
        let v = validate(&obj(minimal()), &[], &AllowList::default()).unwrap();
        assert_eq!(v.key, "teamleader");
        assert_eq!(v.config["label"], "teamleader");
        assert_eq!(v.config["token_auth_method"], "client_secret_basic");
        assert_eq!(v.config["refresh_buffer_seconds"], 300);
        assert_eq!(v.secrets, vec![("client_secret", Secret::new("secret"))]);
        assert!(!v.config.contains_key("client_secret"));
    }

    #[test]
    pub(crate) fn names_each_failing_field() {
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
    pub(crate) fn server_called_urls_refuse_internal_literals_unless_allow_listed() {
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
    pub(crate) fn patch_keeps_key_and_auth_type() {
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
