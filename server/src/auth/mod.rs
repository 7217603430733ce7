//! One module per auth family: its fields (validated and typed), and, as the
//! families grow, how a credential is obtained, placed on a request and revoked.

pub mod oauth2;
