//! Integrations: one configured provider in a project. As clients write them
//! they are validated field by field (`validate`); as the code uses them they
//! are an [`IntegrationSpec`], parsed once from the stored settings, with
//! their auth family's typed settings in [`AuthSpec`].

pub mod validate;

use serde_json::{Map, Value};

pub use validate::{
    client_changed, merge_patch, repointed_fields, validate, ValidIntegration,
    CREDENTIAL_URL_FIELDS,
};

/// Every auth type of the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    ApiKey,
    ApiKeySecret,
    ApiKeyUrl,
    Basic,
    BasicUrl,
    BasicApiKey,
    AwsSigV4,
}

impl AuthType {
    pub const ALL: [AuthType; 10] = [
        AuthType::OAuth2AuthorizationCode,
        AuthType::OAuth2ClientCredentials,
        AuthType::OAuth2RefreshToken,
        AuthType::ApiKey,
        AuthType::ApiKeySecret,
        AuthType::ApiKeyUrl,
        AuthType::Basic,
        AuthType::BasicUrl,
        AuthType::BasicApiKey,
        AuthType::AwsSigV4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::OAuth2AuthorizationCode => "oauth2_authorization_code",
            AuthType::OAuth2ClientCredentials => "oauth2_client_credentials",
            AuthType::OAuth2RefreshToken => "oauth2_refresh_token",
            AuthType::ApiKey => "api_key",
            AuthType::ApiKeySecret => "api_key_secret",
            AuthType::ApiKeyUrl => "api_key_url",
            AuthType::Basic => "basic",
            AuthType::BasicUrl => "basic_url",
            AuthType::BasicApiKey => "basic_api_key",
            AuthType::AwsSigV4 => "aws_sigv4",
        }
    }

    pub fn parse(text: &str) -> Option<AuthType> {
        AuthType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether its connections are made by OAuth 2.0 (a token from the
    /// provider); the others hold what the end user typed into the credential form.
    pub fn is_oauth(self) -> bool {
        matches!(
            self,
            AuthType::OAuth2AuthorizationCode
                | AuthType::OAuth2ClientCredentials
                | AuthType::OAuth2RefreshToken
        )
    }

    /// Whether each connection has its own base URL (`… with URL`).
    pub fn has_connection_base_url(self) -> bool {
        crate::auth::credential_fields(self)
            .iter()
            .any(|f| f.name == "base_url")
    }

    /// Whether its connections belong to the project, not to an end user:
    /// made when the integration is saved, by obtaining a token.
    pub fn is_project_level(self) -> bool {
        matches!(
            self,
            AuthType::OAuth2ClientCredentials | AuthType::OAuth2RefreshToken
        )
    }
}

/// An auth family's typed settings.
#[derive(Debug, Clone)]
pub enum AuthSpec {
    OAuth2AuthorizationCode(crate::auth::oauth2::CodeSpec),
    OAuth2ClientCredentials(crate::auth::oauth2::GrantSpec),
    OAuth2RefreshToken(crate::auth::oauth2::GrantSpec),
    /// API keys and HTTP Basic (every `api_key*` and `basic*` type).
    Keys(crate::auth::api_key::KeySpec),
    AwsSigV4(crate::auth::aws::AwsSpec),
}

/// A request that must succeed with an end user's credentials before they
/// are saved; `label_pointer` points at the account's name in its answer.
#[derive(Debug, Clone)]
pub struct TestRequest {
    pub method: String,
    /// Appended to the connection's base URL, whose own path is kept.
    pub path: String,
    pub expect_status: u16,
    pub label_pointer: Option<String>,
}

/// An integration's stored settings, parsed once.
#[derive(Debug, Clone)]
pub struct IntegrationSpec {
    pub label: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub api_base_url: Option<String>,
    pub multiple_accounts: bool,
    pub refresh_buffer_seconds: i64,
    /// Where an end user finds the key, and how: shown in the credential form.
    pub docs_url: Option<String>,
    pub credential_help: Option<String>,
    pub test_request: Option<TestRequest>,
    pub auth_type: AuthType,
    pub auth: AuthSpec,
}

impl IntegrationSpec {
    /// Parses what `validate` stored for an integration of `auth_type`.
    pub fn parse(auth_type: &str, config: &str) -> Result<IntegrationSpec, String> {
        let map: Map<String, Value> =
            serde_json::from_str(config).map_err(|e| format!("integration settings: {e}"))?;
        let text = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_string);
        let parsed = AuthType::parse(auth_type)
            .ok_or_else(|| format!("integration settings: unknown auth_type {auth_type}"))?;
        let auth = match parsed {
            AuthType::OAuth2AuthorizationCode => {
                AuthSpec::OAuth2AuthorizationCode(crate::auth::oauth2::CodeSpec::from_config(&map)?)
            }
            AuthType::OAuth2ClientCredentials => AuthSpec::OAuth2ClientCredentials(
                crate::auth::oauth2::GrantSpec::from_config(&map)?,
            ),
            AuthType::OAuth2RefreshToken => {
                AuthSpec::OAuth2RefreshToken(crate::auth::oauth2::GrantSpec::from_config(&map)?)
            }
            AuthType::AwsSigV4 => AuthSpec::AwsSigV4(crate::auth::aws::AwsSpec::from_config(&map)?),
            family => AuthSpec::Keys(crate::auth::api_key::KeySpec::from_config(family, &map)?),
        };
        let test_request = map.get("test_request").and_then(Value::as_object).map(|t| {
            let text = |name: &str| t.get(name).and_then(Value::as_str).map(str::to_string);
            TestRequest {
                method: text("method").unwrap_or_else(|| "GET".into()),
                path: text("path").unwrap_or_else(|| "/".into()),
                expect_status: t
                    .get("expect_status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(200),
                label_pointer: text("label_pointer"),
            }
        });
        Ok(IntegrationSpec {
            label: text("label").unwrap_or_default(),
            description: text("description"),
            logo_url: text("logo_url"),
            api_base_url: text("api_base_url"),
            multiple_accounts: map
                .get("multiple_accounts")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            refresh_buffer_seconds: map
                .get("refresh_buffer_seconds")
                .and_then(Value::as_i64)
                .unwrap_or(300),
            docs_url: text("docs_url"),
            credential_help: text("credential_help"),
            test_request,
            auth_type: parsed,
            auth,
        })
    }

    /// The OAuth 2.0 authorization-code settings, for the flows that need them.
    pub fn oauth2_code(&self) -> Result<&crate::auth::oauth2::CodeSpec, String> {
        match &self.auth {
            AuthSpec::OAuth2AuthorizationCode(spec) => Ok(spec),
            _ => Err("the integration does not use the authorization code".into()),
        }
    }

    /// Where the integration's tokens come from, for the OAuth families.
    pub fn token_endpoint(&self) -> Option<crate::auth::oauth2::TokenEndpoint> {
        match &self.auth {
            AuthSpec::OAuth2AuthorizationCode(spec) => Some(spec.token_endpoint()),
            AuthSpec::OAuth2ClientCredentials(grant) | AuthSpec::OAuth2RefreshToken(grant) => {
                Some(grant.endpoint.clone())
            }
            AuthSpec::Keys(_) | AuthSpec::AwsSigV4(_) => None,
        }
    }

    /// The base URL of a connection's API calls, from its fields: its own
    /// `base_url` (the `… with URL` types), else the integration's
    /// `api_base_url` with the connection's `{variables}` filled (AWS: its
    /// `{region}`, or the service's regional endpoint when none is set).
    pub fn connection_base_url(
        &self,
        fields: &std::collections::BTreeMap<String, crate::secret::Secret>,
    ) -> Option<String> {
        if let Some(own) = fields.get("base_url") {
            return Some(own.expose().to_string());
        }
        let region = fields.get("region").map(|r| r.expose().to_string());
        match (&self.api_base_url, &self.auth, region) {
            (Some(base), _, Some(region)) => Some(base.replace("{region}", &region)),
            (Some(base), _, None) => Some(base.clone()),
            (None, AuthSpec::AwsSigV4(aws), Some(region)) => Some(aws.default_base_url(&region)),
            _ => None,
        }
    }
}
