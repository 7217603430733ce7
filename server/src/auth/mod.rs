//! One module per auth family: its fields (validated and typed), how a
//! credential is placed on an outbound request, and, as the families grow,
//! how one is obtained and revoked.

pub mod api_key;
pub mod aws;
pub mod oauth2;

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
