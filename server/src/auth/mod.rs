//! One module per auth family: its fields (validated and typed), how a
//! credential is placed on an outbound request, and, as the families grow,
//! how one is obtained and revoked.

pub mod api_key;
pub mod aws;
pub mod oauth2;

use crate::integrations::AuthType;
use crate::outbound::{Credential, OutboundError, Prepared};
use crate::secret::Secret;

/// A connection's credential as it goes on a request to the provider: one
/// variant per auth family, each placed by its family's module.
pub enum ConnectionCredential {
    /// An OAuth 2.0 access token.
    AccessToken(Secret),
    /// API keys, each placed as its integration says (`api_key`,
    /// `api_key_secret`, `api_key_url`).
    Keys(Vec<(api_key::KeyPlacement, Secret)>),
    /// HTTP Basic, with API keys beside it for `basic_api_key` (`basic`,
    /// `basic_url`, `basic_api_key`).
    Basic {
        username: Secret,
        password: Secret,
        keys: Vec<(api_key::KeyPlacement, Secret)>,
    },
    /// AWS keys: the request is signed (Signature Version 4) as it will be
    /// sent, at `at` (the app's clock, read when the credential was taken).
    AwsSigV4 {
        credential: aws::AwsCredential,
        at: time::OffsetDateTime,
    },
}

impl Credential for ConnectionCredential {
    fn place(&self, request: &mut Prepared<'_>) -> Result<(), OutboundError> {
        match self {
            ConnectionCredential::AccessToken(token) => oauth2::place_access_token(token, request),
            ConnectionCredential::Keys(keys) => {
                for (placement, value) in keys {
                    api_key::place_key(placement, value, request)?;
                }
                Ok(())
            }
            ConnectionCredential::Basic {
                username,
                password,
                keys,
            } => {
                api_key::place_basic(username, password, request)?;
                for (placement, value) in keys {
                    api_key::place_key(placement, value, request)?;
                }
                Ok(())
            }
            ConnectionCredential::AwsSigV4 { credential, at } => {
                let payload = match request.body {
                    Some(bytes) => aws::Payload::Bytes(bytes),
                    // A streamed body is not hashed ahead of sending.
                    None => aws::Payload::Unsigned,
                };
                aws::sign(
                    credential,
                    request.method.as_str(),
                    request.url,
                    request.headers,
                    payload,
                    *at,
                )
                .map_err(|e| {
                    OutboundError::Transport(format!("the request could not be signed: {e}"))
                })
            }
        }
    }
}

/// A credential made ready for many calls: what it places as headers alone
/// (an access token, keys in headers, Basic) is built once — names parsed,
/// values encoded — and copied onto each request; the rest (keys in the
/// query, an AWS signature, which covers the request itself) is placed on
/// each request as [`ConnectionCredential`] places it.
pub struct ReadyCredential {
    credential: ConnectionCredential,
    /// What placing the credential puts on a request, when that is headers alone.
    headers: Option<Vec<(http::HeaderName, http::HeaderValue)>>,
}

impl ReadyCredential {
    pub fn new(credential: ConnectionCredential) -> ReadyCredential {
        let headers = match credential {
            ConnectionCredential::AwsSigV4 { .. } => None,
            _ => Self::placed_headers(&credential),
        };
        ReadyCredential {
            credential,
            headers,
        }
    }

    /// The headers `credential` places on a request when it changes nothing
    /// else of it: found by placing it on a blank request.
    fn placed_headers(
        credential: &ConnectionCredential,
    ) -> Option<Vec<(http::HeaderName, http::HeaderValue)>> {
        let blank = url::Url::parse("https://placement.invalid/").ok()?;
        let mut url = blank.clone();
        let mut headers = http::HeaderMap::new();
        credential
            .place(&mut Prepared {
                method: &http::Method::GET,
                url: &mut url,
                headers: &mut headers,
                body: None,
            })
            .ok()?;
        (url == blank).then(|| {
            headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect()
        })
    }
}

impl Credential for ReadyCredential {
    fn place(&self, request: &mut Prepared<'_>) -> Result<(), OutboundError> {
        let Some(headers) = &self.headers else {
            return self.credential.place(request);
        };
        // As placing does: each name's values replace the request's own.
        for (i, (name, value)) in headers.iter().enumerate() {
            if headers[..i].iter().any(|(seen, _)| seen == name) {
                request.headers.append(name.clone(), value.clone());
            } else {
                request.headers.insert(name.clone(), value.clone());
            }
        }
        Ok(())
    }
}

/// How a credential form field is shown and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Masked, never shown again, never put back into a page.
    Secret,
    /// A name that identifies the end user at the provider (a username, an
    /// access key id): typed in the clear, never put back into a page.
    Identifier,
    /// The account's own base URL: https (or an allow-listed host), never internal.
    Url,
    /// An AWS region, such as `eu-west-1`.
    Region,
}

/// One field an end user fills in to connect an account without OAuth.
#[derive(Debug, Clone, Copy)]
pub struct CredentialField {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: FieldKind,
}

const API_KEY: CredentialField = CredentialField {
    name: "api_key",
    label: "API key",
    kind: FieldKind::Secret,
};
const API_SECRET: CredentialField = CredentialField {
    name: "api_secret",
    label: "API secret",
    kind: FieldKind::Secret,
};
const BASE_URL: CredentialField = CredentialField {
    name: "base_url",
    label: "Your account's URL",
    kind: FieldKind::Url,
};
const USERNAME: CredentialField = CredentialField {
    name: "username",
    label: "Username",
    kind: FieldKind::Identifier,
};
const PASSWORD: CredentialField = CredentialField {
    name: "password",
    label: "Password",
    kind: FieldKind::Secret,
};
const ACCESS_KEY_ID: CredentialField = CredentialField {
    name: "access_key_id",
    label: "Access key ID",
    kind: FieldKind::Identifier,
};
const SECRET_ACCESS_KEY: CredentialField = CredentialField {
    name: "secret_access_key",
    label: "Secret access key",
    kind: FieldKind::Secret,
};
const REGION: CredentialField = CredentialField {
    name: "region",
    label: "Region",
    kind: FieldKind::Region,
};

/// The fields a connection of `auth_type` holds, in the order the form asks
/// for them; none for the OAuth families, whose credentials come from the provider.
pub fn credential_fields(auth_type: AuthType) -> &'static [CredentialField] {
    match auth_type {
        AuthType::OAuth2AuthorizationCode
        | AuthType::OAuth2ClientCredentials
        | AuthType::OAuth2RefreshToken => &[],
        AuthType::ApiKey => &[API_KEY],
        AuthType::ApiKeySecret => &[API_KEY, API_SECRET],
        AuthType::ApiKeyUrl => &[BASE_URL, API_KEY],
        AuthType::Basic => &[USERNAME, PASSWORD],
        AuthType::BasicUrl => &[BASE_URL, USERNAME, PASSWORD],
        AuthType::BasicApiKey => &[BASE_URL, USERNAME, PASSWORD, API_KEY],
        AuthType::AwsSigV4 => &[ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION],
    }
}

/// Checks one submitted field: the value to keep, or why it cannot be used.
pub fn check_field(
    field: &CredentialField,
    value: &str,
    allow: &crate::outbound::AllowList,
) -> Result<String, String> {
    // Keys are pasted: surrounding white space is never part of one.
    let value = value.trim();
    if value.is_empty() {
        return Err("is required".into());
    }
    let max = if field.kind == FieldKind::Url {
        2048
    } else {
        4096
    };
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters or line breaks".into());
    }
    match field.kind {
        FieldKind::Identifier if field.name == "username" && value.contains(':') => {
            Err("must not contain ':' (HTTP Basic cannot carry it in a username)".into())
        }
        FieldKind::Url => crate::integrations::validate::server_url(value, allow)
            .map(|url| url.as_str().trim_end_matches('/').to_string()),
        FieldKind::Region if !aws::is_region(value) => {
            Err("must be an AWS region, such as eu-west-1".into())
        }
        _ => Ok(value.to_string()),
    }
}

impl ConnectionCredential {
    /// The credential a connection of a non-OAuth type holds, from its stored
    /// fields, ready to place on a request made at `now`.
    pub fn from_fields(
        auth: &crate::integrations::AuthSpec,
        fields: &std::collections::BTreeMap<String, Secret>,
        now: time::OffsetDateTime,
    ) -> Result<ConnectionCredential, String> {
        use crate::integrations::AuthSpec;
        let field = |name: &str| {
            fields
                .get(name)
                .cloned()
                .ok_or_else(|| format!("the connection has no {name}"))
        };
        let keys = |spec: &api_key::KeySpec| -> Result<Vec<_>, String> {
            let mut keys = Vec::new();
            if let Some(placement) = &spec.key {
                keys.push((placement.clone(), field("api_key")?));
            }
            if let Some(placement) = &spec.secret {
                keys.push((placement.clone(), field("api_secret")?));
            }
            Ok(keys)
        };
        match auth {
            AuthSpec::Keys(spec) if spec.basic => Ok(ConnectionCredential::Basic {
                username: field("username")?,
                password: field("password")?,
                keys: keys(spec)?,
            }),
            AuthSpec::Keys(spec) => Ok(ConnectionCredential::Keys(keys(spec)?)),
            AuthSpec::AwsSigV4(spec) => Ok(ConnectionCredential::AwsSigV4 {
                credential: aws::AwsCredential {
                    access_key_id: field("access_key_id")?.expose().to_string(),
                    secret_access_key: field("secret_access_key")?,
                    session_token: None,
                    region: field("region")?.expose().to_string(),
                    service: spec.service.clone(),
                },
                at: now,
            }),
            _ => Err("an OAuth connection's credential is its access token".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::api_key::{KeyLocation, KeyPlacement};
    use super::*;

    fn key(location: KeyLocation, name: &str, prefix: &str, value: &str) -> (KeyPlacement, Secret) {
        let placement = KeyPlacement {
            location,
            name: name.into(),
            prefix: prefix.into(),
        };
        (placement, Secret::new(value))
    }

    /// A request the caller filled, with headers the credential must replace.
    fn placed(credential: &dyn Credential) -> (url::Url, http::HeaderMap) {
        let mut url = url::Url::parse("https://api.example/v1/items?page=2&key=caller").unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, "caller".parse().unwrap());
        headers.append("x-key", "caller-1".parse().unwrap());
        headers.append("x-key", "caller-2".parse().unwrap());
        headers.insert("x-other", "kept".parse().unwrap());
        credential
            .place(&mut Prepared {
                method: &http::Method::POST,
                url: &mut url,
                headers: &mut headers,
                body: Some(b"{}"),
            })
            .unwrap();
        (url, headers)
    }

    /// A credential of one kind, made afresh.
    type Make = fn() -> ConnectionCredential;

    fn every_kind() -> Vec<(&'static str, Make)> {
        vec![
            ("access token", || {
                ConnectionCredential::AccessToken(Secret::new("tok"))
            }),
            ("keys in headers", || {
                ConnectionCredential::Keys(vec![
                    key(KeyLocation::Header, "X-Key", "Token ", "k1"),
                    key(KeyLocation::Header, "X-Secret", "", "s1"),
                ])
            }),
            ("a key in the query", || {
                ConnectionCredential::Keys(vec![key(KeyLocation::Query, "key", "", "k1")])
            }),
            ("Basic and a key", || ConnectionCredential::Basic {
                username: Secret::new("ada"),
                password: Secret::new("pw"),
                keys: vec![key(KeyLocation::Header, "X-Key", "", "k1")],
            }),
            ("AWS", || ConnectionCredential::AwsSigV4 {
                credential: aws::AwsCredential {
                    access_key_id: "AKIDEXAMPLE".into(),
                    secret_access_key: Secret::new("secret"),
                    session_token: None,
                    region: "eu-west-1".into(),
                    service: "execute-api".into(),
                },
                at: time::OffsetDateTime::UNIX_EPOCH,
            }),
        ]
    }

    #[test]
    fn a_ready_credential_places_exactly_what_the_credential_places() {
        for (kind, make) in every_kind() {
            let (url, headers) = placed(&make());
            let (ready_url, ready_headers) = placed(&ReadyCredential::new(make()));
            assert_eq!(ready_url, url, "{kind}");
            assert_eq!(ready_headers, headers, "{kind}");
        }
    }

    #[test]
    fn only_header_credentials_are_built_ahead() {
        for (kind, make) in every_kind() {
            let ahead = ReadyCredential::new(make()).headers.is_some();
            let expected = !matches!(kind, "a key in the query" | "AWS");
            assert_eq!(ahead, expected, "{kind}");
        }
        let ready = ReadyCredential::new(ConnectionCredential::AccessToken(Secret::new("tok")));
        let headers = ready.headers.as_ref().unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].0, http::header::AUTHORIZATION);
        assert!(headers[0].1.is_sensitive());
    }
}
