//! Projects: the tenants. Their rules, shared by the HTTP API and the CLI.

use crate::error::{ApiError, ApiResult};

/// A project's name: 1 to 200 characters, without control characters; trimmed.
pub fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "must be 1 to 200 characters without control characters",
        ));
    }
    Ok(name.to_string())
}
