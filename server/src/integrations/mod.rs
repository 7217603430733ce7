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

    /// Whether integrations of this type can be created yet.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            AuthType::OAuth2AuthorizationCode
                | AuthType::OAuth2ClientCredentials
                | AuthType::OAuth2RefreshToken
        )
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
    pub auth: AuthSpec,
}

impl IntegrationSpec {
    /// Parses what `validate` stored for an integration of `auth_type`.
    pub fn parse(auth_type: &str, config: &str) -> Result<IntegrationSpec, String> {
        let map: Map<String, Value> =
            serde_json::from_str(config).map_err(|e| format!("integration settings: {e}"))?;
        let text = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_string);
        let auth = match AuthType::parse(auth_type) {
            Some(AuthType::OAuth2AuthorizationCode) => {
                AuthSpec::OAuth2AuthorizationCode(crate::auth::oauth2::CodeSpec::from_config(&map)?)
            }
            Some(AuthType::OAuth2ClientCredentials) => AuthSpec::OAuth2ClientCredentials(
                crate::auth::oauth2::GrantSpec::from_config(&map)?,
            ),
            Some(AuthType::OAuth2RefreshToken) => {
                AuthSpec::OAuth2RefreshToken(crate::auth::oauth2::GrantSpec::from_config(&map)?)
            }
            _ => {
                return Err(format!(
                    "integration settings: auth_type {auth_type} is not supported"
                ))
            }
        };
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

    /// Where the integration's tokens come from, for every OAuth family.
    pub fn token_endpoint(&self) -> crate::auth::oauth2::TokenEndpoint {
        match &self.auth {
            AuthSpec::OAuth2AuthorizationCode(spec) => spec.token_endpoint(),
            AuthSpec::OAuth2ClientCredentials(grant) | AuthSpec::OAuth2RefreshToken(grant) => {
                grant.endpoint.clone()
            }
        }
    }
}
