//! OAuth 2.0 and OpenID Connect, client side: the authorization request, the
//! code exchange (with the `oauth2` crate, over the outbound client), the ID
//! token checks and the userinfo call.

use std::future::Future;
use std::pin::Pin;

use base64::Engine;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet,
    EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::auth::oauth2::{CodeSpec, TokenAuthMethod, TokenEndpoint};
use crate::auth::ConnectionCredential;
use crate::error::ErrorCode;
use crate::outbound::{Outbound, OutboundError, OutboundRequest};
use crate::redact::Redactor;
use crate::secret::Secret;

/// Why an authorization did not produce credentials, in the contract's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A code of the contract's list: `provider_error`, `access_denied`, …
    pub code: ErrorCode,
    /// For people; never holds a secret.
    pub message: String,
    /// The provider's own error code, when it gave one.
    pub provider_code: Option<String>,
}

impl Failure {
    pub fn provider(message: impl Into<String>, provider_code: Option<String>) -> Failure {
        Failure {
            code: ErrorCode::ProviderError,
            message: message.into(),
            provider_code,
        }
    }
}

/// A fresh PKCE pair: the S256 challenge for the URL and the verifier to keep.
pub fn new_pkce() -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (
        challenge.as_str().to_string(),
        verifier.secret().to_string(),
    )
}

/// The authorization request URL. The integration's extra parameters go
/// first; the ones the flow depends on are set last and cannot be overridden.
pub fn authorization_url(
    settings: &CodeSpec,
    redirect_uri: &str,
    state: &str,
    code_challenge: &str,
    nonce: Option<&str>,
) -> Result<String, Failure> {
    let mut url = Url::parse(&settings.authorization_url)
        .map_err(|_| Failure::provider("the integration's authorization_url is invalid", None))?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in &settings.authorization_params {
            query.append_pair(name, value);
        }
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        if !settings.scopes.is_empty() {
            query.append_pair("scope", &settings.scopes.join(&settings.scope_separator));
        }
        if let Some(nonce) = nonce {
            query.append_pair("nonce", nonce);
        }
    }
    Ok(url.into())
}

/// The `id_token` field of a token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenResponseWithIdToken = StandardTokenResponse<IdTokenField, BasicTokenType>;

type CodeClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponseWithIdToken,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The `oauth2` crate's HTTP client: Plugboard's outbound client.
struct OAuthHttp<'a>(&'a Outbound);

impl<'c> AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = OutboundError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, OutboundError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.0.send(OutboundRequest::try_from(request)?).await?;
            // A server error says nothing about the request: it may pass.
            if response.status >= 500 {
                return Err(OutboundError::Transport(format!(
                    "the provider answered {}",
                    response.status
                )));
            }
            let mut builder = http::Response::builder().status(response.status);
            if let Some(headers) = builder.headers_mut() {
                *headers = response.headers;
            }
            builder
                .body(response.body)
                .map_err(|e| OutboundError::Transport(e.to_string()))
        })
    }
}

/// What a successful code exchange gave.
pub struct Tokens {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub token_type: String,
    pub expires_in: Option<u64>,
    /// The scopes granted, when the provider said; else those requested.
    pub scopes: Vec<String>,
    pub id_token: Option<Secret>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

fn outbound_failure(step: &str, e: &OutboundError) -> Failure {
    let message = match e {
        OutboundError::Timeout => format!("the provider's {step} did not answer in time"),
        OutboundError::TooLarge(n) => {
            format!("the provider's {step} answered with more than {n} bytes")
        }
        OutboundError::Refused { .. } => {
            // Which internal address a name resolved to is for the operator,
            // not for whoever reads this message.
            tracing::warn!(step, error = %e, "an outbound call to an internal address was refused");
            format!("the provider's {step} is at an address Plugboard may not call")
        }
        other => format!("the provider's {step} could not be reached: {other}"),
    };
    Failure::provider(message, None)
}

/// Exchanges an authorization code for tokens at the integration's token endpoint.
pub async fn exchange_code(
    outbound: &Outbound,
    settings: &CodeSpec,
    client_secret: &str,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<Tokens, Failure> {
    let redirect = RedirectUrl::new(redirect_uri.to_string())
        .map_err(|_| Failure::provider("the integration's callback URL is invalid", None))?;
    let client =
        token_client(&settings.token_endpoint(), client_secret)?.set_redirect_uri(redirect);
    let result = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
        .request_async(&OAuthHttp(outbound))
        .await;
    // A provider may echo the request in its error: nothing Plugboard sent is repeated.
    let redactor = Redactor::new()
        .secret(code)
        .secret(verifier)
        .basic_credentials(&settings.client_id, client_secret);
    let response = match result {
        Ok(response) => response,
        Err(RequestTokenError::ServerResponse(err)) => {
            let provider_code = redactor.clean(err.error().as_ref(), 64);
            let description = err.error_description().map(|d| redactor.clean(d, 300));
            let message = match description {
                Some(d) => {
                    format!("the provider refused the authorization code: {provider_code}: {d}")
                }
                None => format!("the provider refused the authorization code: {provider_code}"),
            };
            return Err(Failure::provider(message, Some(provider_code)));
        }
        Err(RequestTokenError::Request(e)) => return Err(outbound_failure("token endpoint", &e)),
        Err(RequestTokenError::Parse(e, _body)) => {
            // The body is never echoed: it may hold a token.
            return Err(Failure::provider(
                format!("the provider's token response is not valid ({})", e.path()),
                None,
            ));
        }
        Err(RequestTokenError::Other(message)) => {
            return Err(Failure::provider(
                format!(
                    "the provider's token response is not usable: {}",
                    redactor.clean(&message, 300)
                ),
                None,
            ))
        }
    };
    tokens_from(&response, &settings.scopes)
}

/// The `oauth2` client for the integration's token endpoint.
fn token_client(settings: &TokenEndpoint, client_secret: &str) -> Result<CodeClient, Failure> {
    let token_url = TokenUrl::new(settings.token_url.clone())
        .map_err(|_| Failure::provider("the integration's token_url is invalid", None))?;
    let auth_type = match settings.token_auth_method {
        TokenAuthMethod::ClientSecretPost => AuthType::RequestBody,
        TokenAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
    };
    Ok(
        oauth2::Client::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(client_secret.to_string()))
            .set_auth_type(auth_type)
            .set_token_uri(token_url),
    )
}

/// The tokens of a successful token response (`requested`: the scopes asked
/// for, granted when the response does not say otherwise).
fn tokens_from(
    response: &TokenResponseWithIdToken,
    requested: &[String],
) -> Result<Tokens, Failure> {
    let access_token = response.access_token().secret().to_string();
    if access_token.is_empty() {
        return Err(Failure::provider(
            "the provider's token response has an empty access_token",
            None,
        ));
    }
    let token_type = match response.token_type() {
        BasicTokenType::Bearer => "Bearer".to_string(),
        BasicTokenType::Mac => "MAC".to_string(),
        BasicTokenType::Extension(other) => other.clone(),
    };
    Ok(Tokens {
        access_token: Secret::new(access_token),
        refresh_token: response
            .refresh_token()
            .map(|t| Secret::new(t.secret().as_str())),
        token_type,
        expires_in: response.expires_in().map(|d| d.as_secs()),
        scopes: match response.scopes() {
            Some(scopes) => scopes.iter().map(|s| s.to_string()).collect(),
            None => requested.to_vec(),
        },
        id_token: response.extra_fields().id_token.clone().map(Secret::new),
    })
}

/// Why a refresh did not give new tokens.
#[derive(Debug)]
pub enum RefreshError {
    /// The provider no longer honours the grant (`invalid_grant`): only the
    /// end user can restore it, by connecting again.
    Revoked(Failure),
    /// It may pass: a timeout, a connection failure, a 5xx.
    Transient(Failure),
    /// The provider refused for another reason (for example `invalid_client`):
    /// the integration's settings, not the grant, need attention.
    Refused(Failure),
}

/// Uses a refresh token at the integration's token endpoint (RFC 6749, section 6).
pub async fn refresh_tokens(
    outbound: &Outbound,
    endpoint: &TokenEndpoint,
    client_secret: &str,
    refresh_token: &str,
) -> Result<Tokens, RefreshError> {
    let client = token_client(endpoint, client_secret).map_err(RefreshError::Refused)?;
    let result = client
        .exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
        .request_async(&OAuthHttp(outbound))
        .await;
    let redactor = Redactor::new()
        .secret(refresh_token)
        .basic_credentials(&endpoint.client_id, client_secret);
    grant_outcome(result, &redactor, &endpoint.scopes, "the refresh")
}

/// Asks for a token with the client's own credentials (RFC 6749, section 4.4).
pub async fn client_credentials_tokens(
    outbound: &Outbound,
    endpoint: &TokenEndpoint,
    client_secret: &str,
) -> Result<Tokens, RefreshError> {
    let client = token_client(endpoint, client_secret).map_err(RefreshError::Refused)?;
    let result = client
        .exchange_client_credentials()
        .add_scopes(endpoint.scopes.iter().cloned().map(Scope::new))
        .request_async(&OAuthHttp(outbound))
        .await;
    let redactor = Redactor::new().basic_credentials(&endpoint.client_id, client_secret);
    grant_outcome(result, &redactor, &endpoint.scopes, "the token request")
}

type GrantResult =
    Result<TokenResponseWithIdToken, RequestTokenError<OutboundError, BasicErrorResponse>>;

/// A token response of a grant without an end user, classified: what may
/// pass, what only the end user (or the developer) can fix.
fn grant_outcome(
    result: GrantResult,
    redactor: &Redactor,
    requested: &[String],
    what: &str,
) -> Result<Tokens, RefreshError> {
    match result {
        Ok(response) => tokens_from(&response, requested).map_err(RefreshError::Refused),
        Err(RequestTokenError::ServerResponse(err)) => {
            let provider_code = redactor.clean(err.error().as_ref(), 64);
            let description = err.error_description().map(|d| redactor.clean(d, 300));
            let message = match description {
                Some(d) => format!("the provider refused {what}: {provider_code}: {d}"),
                None => format!("the provider refused {what}: {provider_code}"),
            };
            let failure = Failure::provider(message, Some(provider_code.clone()));
            if provider_code == "invalid_grant" {
                Err(RefreshError::Revoked(failure))
            } else {
                Err(RefreshError::Refused(failure))
            }
        }
        Err(RequestTokenError::Request(e)) => Err(RefreshError::Transient(outbound_failure(
            "token endpoint",
            &e,
        ))),
        Err(RequestTokenError::Parse(e, _body)) => Err(RefreshError::Refused(Failure::provider(
            format!("the provider's token response is not valid ({})", e.path()),
            None,
        ))),
        Err(RequestTokenError::Other(message)) => Err(RefreshError::Refused(Failure::provider(
            format!(
                "the provider's token response is not usable: {}",
                redactor.clean(&message, 300)
            ),
            None,
        ))),
    }
}

/// The claims of an ID token Plugboard reads.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Audience,
    pub exp: Option<i64>,
    pub nonce: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
}

/// `aud` is a string or a list of strings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

impl Audience {
    fn contains(&self, client_id: &str) -> bool {
        match self {
            Audience::One(a) => a == client_id,
            Audience::Many(list) => list.iter().any(|a| a == client_id),
            Audience::None => false,
        }
    }
}

fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Checks an ID token from the token endpoint: `iss`, `aud`, `exp`, `nonce`,
/// and its signature against the provider's keys when a JWKS URL is set.
pub async fn check_id_token(
    outbound: &Outbound,
    settings: &CodeSpec,
    id_token: &str,
    expected_nonce: Option<&str>,
    now: i64,
) -> Result<IdClaims, Failure> {
    let bad =
        |why: &str| Failure::provider(format!("the provider's ID token was refused: {why}"), None);
    let parts: Vec<&str> = id_token.split('.').collect();
    if parts.len() != 3 {
        return Err(bad("it is not a signed JWT"));
    }
    let claims: IdClaims =
        decode_segment(parts[1]).ok_or_else(|| bad("its claims cannot be read"))?;
    if settings.issuer.is_none() || claims.iss != settings.issuer {
        return Err(bad("`iss` is not the integration's issuer"));
    }
    if !claims.aud.contains(&settings.client_id) {
        return Err(bad("`aud` does not name this client"));
    }
    match claims.exp {
        Some(exp) if exp > now => {}
        _ => return Err(bad("it has expired")),
    }
    if let Some(expected) = expected_nonce {
        if claims.nonce.as_deref() != Some(expected) {
            return Err(bad("`nonce` does not match this sign-in"));
        }
    }
    if claims.sub.as_deref().is_none_or(str::is_empty) {
        return Err(bad("it has no `sub`"));
    }
    if let Some(jwks_url) = settings.jwks_url.as_deref() {
        verify_signature(outbound, jwks_url, id_token).await?;
    }
    Ok(claims)
}

async fn verify_signature(
    outbound: &Outbound,
    jwks_url: &str,
    id_token: &str,
) -> Result<(), Failure> {
    let bad = |why: String| {
        Failure::provider(format!("the provider's ID token was refused: {why}"), None)
    };
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|_| bad("its header cannot be read".into()))?;
    // Only public-key signatures prove the provider signed it; an HMAC "verified"
    // with a key from a public JWKS would prove nothing.
    use jsonwebtoken::Algorithm as A;
    if !matches!(
        header.alg,
        A::RS256
            | A::RS384
            | A::RS512
            | A::PS256
            | A::PS384
            | A::PS512
            | A::ES256
            | A::ES384
            | A::EdDSA
    ) {
        return Err(bad(format!(
            "its signature algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let url =
        Url::parse(jwks_url).map_err(|_| bad("the integration's jwks_url is invalid".into()))?;
    let response = outbound
        .send(OutboundRequest::get(url))
        .await
        .map_err(|e| outbound_failure("JWKS endpoint", &e))?;
    if response.status != 200 {
        return Err(Failure::provider(
            format!("the provider's JWKS endpoint answered {}", response.status),
            None,
        ));
    }
    let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&response.body)
        .map_err(|_| bad("the provider's JWKS cannot be read".into()))?;
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None => keys.keys.first(),
    }
    .ok_or_else(|| bad("no key of the provider's JWKS matches its `kid`".into()))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)
        .map_err(|_| bad("the provider's key is not usable".into()))?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    // The claims were checked above against Plugboard's clock; only the signature is checked here.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &validation)
        .map_err(|e| bad(format!("its signature does not verify ({e})")))?;
    Ok(())
}

/// The account's claims from the userinfo endpoint.
pub async fn fetch_userinfo(
    outbound: &Outbound,
    userinfo_url: &str,
    access_token: &Secret,
) -> Result<IdClaims, Failure> {
    let url = Url::parse(userinfo_url)
        .map_err(|_| Failure::provider("the integration's userinfo_url is invalid", None))?;
    let request = OutboundRequest::get(url)
        .header("accept", "application/json")
        .map_err(|e| outbound_failure("userinfo endpoint", &e))?
        .credential(ConnectionCredential::AccessToken(access_token.clone()));
    let response = outbound
        .send(request)
        .await
        .map_err(|e| outbound_failure("userinfo endpoint", &e))?;
    if response.status != 200 {
        return Err(Failure::provider(
            format!(
                "the provider's userinfo endpoint answered {}",
                response.status
            ),
            None,
        ));
    }
    serde_json::from_slice(&response.body)
        .map_err(|_| Failure::provider("the provider's userinfo answer is not a JSON object", None))
}

/// Revokes a token at the provider (RFC 7009), authenticating as the
/// integration's client the way its token requests do.
pub async fn revoke(
    outbound: &Outbound,
    settings: &CodeSpec,
    client_secret: &str,
    token: &str,
    hint: &str,
) -> Result<(), Failure> {
    let url = Url::parse(settings.revocation_url.as_deref().unwrap_or_default())
        .map_err(|_| Failure::provider("the integration's revocation_url is invalid", None))?;
    let client_id = settings.client_id.as_str();
    let by_post = settings.token_auth_method == TokenAuthMethod::ClientSecretPost;
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token)
            .append_pair("token_type_hint", hint);
        if by_post {
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", client_secret);
        }
        form.finish()
    };
    let fail = |e: OutboundError| outbound_failure("revocation endpoint", &e);
    let mut request = OutboundRequest::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .map_err(fail)?
        .body(body);
    if !by_post {
        // RFC 6749 section 2.3.1: both parts are form-encoded before Basic encoding.
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(client_id),
            encode(client_secret)
        ));
        request = request
            .header("authorization", &format!("Basic {credentials}"))
            .map_err(fail)?;
    }
    let response = outbound.send(request).await.map_err(fail)?;
    if (200..300).contains(&response.status) {
        return Ok(());
    }
    let redactor = Redactor::new()
        .secret(token)
        .basic_credentials(client_id, client_secret);
    let provider_code = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(|s| redactor.clean(s, 64)));
    Err(Failure::provider(
        format!(
            "the provider's revocation endpoint answered {}",
            response.status
        ),
        provider_code,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::AddressClass;

    #[test]
    fn a_refused_internal_address_is_not_named_to_the_end_user() {
        let refused = OutboundError::Refused {
            host: "runsc".into(),
            class: AddressClass::Loopback,
        };
        let failure = outbound_failure("token endpoint", &refused);
        assert!(
            !failure.message.contains("runsc") && !failure.message.contains("Loopback"),
            "{}",
            failure.message
        );
        assert!(failure.message.contains("token endpoint"));
    }
}
