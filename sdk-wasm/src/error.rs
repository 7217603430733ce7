//! Errors as JavaScript sees them: an `Error` named `PlugboardError` with a
//! stable `code` from the product's one list (and `providerCode` / `fields`
//! when the server gave them).

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::js::{TextMap, ToJs};
use crate::model::ErrorBody;

/// Codes the SDK itself raises (the rest come from the server).
pub const POPUP_BLOCKED: &str = "popup_blocked";
pub const USER_CANCELLED: &str = "user_cancelled";
pub const ABORTED: &str = "aborted";
pub const CONNECT_IN_PROGRESS: &str = "connect_in_progress";
pub const NETWORK_ERROR: &str = "network_error";
pub const VALIDATION_FAILED: &str = "validation_failed";
pub const NOT_FOUND: &str = "not_found";
pub const ACCOUNT_AMBIGUOUS: &str = "account_ambiguous";
pub const SESSION_EXPIRED: &str = "session_expired";
pub const SESSION_TOKEN_FAILED: &str = "session_token_failed";
pub const UPSTREAM_ERROR: &str = "upstream_error";
pub const INTERNAL: &str = "internal";

/// A failure, typed until it leaves for JavaScript.
pub struct SdkError {
    pub code: String,
    pub message: String,
    pub provider_code: Option<String>,
    pub fields: Option<TextMap>,
    /// What failed underneath, such as the page's own error.
    pub cause: Option<JsValue>,
    /// `upstream_error`'s upstream status and body excerpt, when it had an answer.
    pub upstream: Option<(JsValue, JsValue)>,
}

impl SdkError {
    pub fn new(code: &str, message: impl Into<String>) -> SdkError {
        SdkError {
            code: code.into(),
            message: message.into(),
            provider_code: None,
            fields: None,
            cause: None,
            upstream: None,
        }
    }

    pub fn with_cause(mut self, cause: JsValue) -> SdkError {
        self.cause = Some(cause);
        self
    }

    /// From the server's `{"error": {...}}` body (or its absence) and status.
    pub fn from_body(status: u16, body: ErrorBody) -> SdkError {
        match body.error {
            Some(e) => SdkError {
                code: e.code,
                message: e.message,
                provider_code: e.provider_code,
                fields: e.fields,
                cause: None,
                upstream: Some(e.upstream),
            },
            None => SdkError::new(
                if status >= 500 {
                    UPSTREAM_ERROR
                } else {
                    INTERNAL
                },
                format!("the server answered {status}"),
            ),
        }
    }
}

impl From<SdkError> for JsValue {
    fn from(e: SdkError) -> JsValue {
        let js = js_sys::Error::new(&e.message);
        js.set_name("PlugboardError");
        let set = |key: &str, value: JsValue| {
            let _ = Reflect::set(&js, &key.into(), &value);
        };
        set("code", e.code.into());
        if let Some(provider_code) = e.provider_code {
            set("providerCode", provider_code.into());
        }
        if let Some(fields) = e.fields {
            set("fields", fields.to_js());
        }
        if let Some(cause) = e.cause {
            set("cause", cause);
        }
        if let Some((status, body)) = e.upstream.filter(|(s, _)| !s.is_undefined()) {
            set("upstreamStatus", status);
            set("upstreamBody", body);
        }
        js.into()
    }
}

/// The JavaScript error for `code`.
pub fn error(code: &str, message: &str) -> JsValue {
    SdkError::new(code, message).into()
}
