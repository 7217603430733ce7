//! One module per auth family: its fields (validated and typed), how a
//! credential is placed on an outbound request, and, as the families grow,
//! how one is obtained and revoked.

pub mod oauth2;

use crate::outbound::{Credential, OutboundError, Prepared};
use crate::secret::Secret;

/// A connection's credential as it goes on a request to the provider: one
/// variant per auth family, each placed by its family's module.
pub enum ConnectionCredential {
    /// An OAuth 2.0 access token.
    AccessToken(Secret),
}

impl Credential for ConnectionCredential {
    fn place(&self, request: &mut Prepared<'_>) -> Result<(), OutboundError> {
        match self {
            ConnectionCredential::AccessToken(token) => oauth2::place_access_token(token, request),
        }
    }
}
