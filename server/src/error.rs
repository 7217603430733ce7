//! The product's one list of error codes, with their HTTP statuses, and the
//! error every layer returns. No web framework here: `http::error` turns an
//! [`ApiError`] into the wire shape `{"error":{"code","message",...}}`.

use std::collections::BTreeMap;

/// The stable error codes of the public contract. New codes are added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthorized,
    SessionExpired,
    Forbidden,
    OriginNotAllowed,
    NotFound,
    MethodNotAllowed,
    Conflict,
    AccountAmbiguous,
    AccountLimit,
    AccountMismatch,
    ValidationFailed,
    BadRequest,
    PayloadTooLarge,
    /// The body did not arrive in time (408).
    RequestTimeout,
    /// The request target is too long (414).
    UriTooLong,
    /// The headers are too large (431).
    HeadersTooLarge,
    RateLimited,
    ProviderError,
    UpstreamError,
    Internal,
    /// The connection must be reconnected.
    NeedsReauth,
    /// The database is unreachable, or the server is shutting down.
    Unavailable,
    /// The end user refused consent: a connect attempt's outcome.
    AccessDenied,
}

/// Codes only the SDK raises, never an HTTP answer.
pub const SDK_ONLY_CODES: [&str; 7] = [
    "popup_blocked",
    "user_cancelled",
    "connect_in_progress",
    "network_error",
    "aborted",
    "unsupported_environment",
    "session_token_failed",
];

impl ErrorCode {
    /// Every variant.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::Unauthorized,
        ErrorCode::SessionExpired,
        ErrorCode::Forbidden,
        ErrorCode::OriginNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::AccountAmbiguous,
        ErrorCode::AccountLimit,
        ErrorCode::AccountMismatch,
        ErrorCode::ValidationFailed,
        ErrorCode::BadRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RequestTimeout,
        ErrorCode::UriTooLong,
        ErrorCode::HeadersTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::ProviderError,
        ErrorCode::UpstreamError,
        ErrorCode::Internal,
        ErrorCode::NeedsReauth,
        ErrorCode::Unavailable,
        ErrorCode::AccessDenied,
    ];
}

/// Every code of the public contract, HTTP and SDK alike, sorted: the list
/// `npm/index.d.ts` and the SDK are checked against (`tests/error_codes.rs`).
pub fn contract_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    codes.extend(SDK_ONLY_CODES);
    codes.sort_unstable();
    codes.dedup();
    codes
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::AccountAmbiguous => "account_ambiguous",
            ErrorCode::AccountLimit => "account_limit",
            ErrorCode::AccountMismatch => "account_mismatch",
            // A body that is not JSON, or too large, is still a validation
            // failure in the contract's list; only the status differs.
            ErrorCode::ValidationFailed
            | ErrorCode::BadRequest
            | ErrorCode::PayloadTooLarge
            | ErrorCode::RequestTimeout
            | ErrorCode::UriTooLong
            | ErrorCode::HeadersTooLarge => "validation_failed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::Internal => "internal",
            ErrorCode::NeedsReauth => "needs_reauth",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::AccessDenied => "access_denied",
        }
    }

    /// The HTTP status this code answers with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized | ErrorCode::SessionExpired => 401,
            ErrorCode::Forbidden | ErrorCode::OriginNotAllowed => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict
            | ErrorCode::AccountAmbiguous
            | ErrorCode::AccountLimit
            | ErrorCode::AccountMismatch
            | ErrorCode::NeedsReauth => 409,
            ErrorCode::ValidationFailed => 422,
            ErrorCode::BadRequest => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::UriTooLong => 414,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::RateLimited => 429,
            ErrorCode::ProviderError | ErrorCode::UpstreamError => 502,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            // An outcome of a connect attempt, not an HTTP answer; were it
            // one, the end user's refusal would be a 403.
            ErrorCode::AccessDenied => 403,
        }
    }
}

/// An error as the HTTP API answers it.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub fields: Option<BTreeMap<String, String>>,
    pub provider_code: Option<String>,
    /// Seconds after which the request may be retried (`Retry-After`).
    pub retry_after: Option<u64>,
    /// An API call's answer that was not a success (`upstream_error`): its
    /// status, and the start of its body with the credentials removed.
    pub upstream: Option<Box<(u16, String)>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            fields: None,
            provider_code: None,
            retry_after: None,
            upstream: None,
        }
    }

    /// Over a rate limit: `429 rate_limited` with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(ErrorCode::RateLimited, message);
        e.retry_after = Some(retry_after);
        e
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing or invalid credentials in the Authorization header",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// A 422 naming each failing field.
    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        ApiError {
            code: ErrorCode::ValidationFailed,
            message: format!("invalid fields: {}", names.join(", ")),
            fields: Some(fields),
            provider_code: None,
            retry_after: None,
            upstream: None,
        }
    }

    pub fn field(name: &str, problem: impl Into<String>) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert(name.to_string(), problem.into());
        Self::validation(fields)
    }

    /// An unexpected failure. The cause is logged here; the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        ApiError::internal(err)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
