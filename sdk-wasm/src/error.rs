//! Errors as JavaScript sees them: an `Error` named `PlugboardError` with a
//! stable `code` from the product's one list (and `providerCode` / `fields`
//! when the server gave them).

use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

/// Codes the SDK itself raises (the rest come from the server).
pub const POPUP_BLOCKED: &str = "popup_blocked";
pub const USER_CANCELLED: &str = "user_cancelled";
pub const CONNECT_IN_PROGRESS: &str = "connect_in_progress";
pub const NETWORK_ERROR: &str = "network_error";
pub const VALIDATION_FAILED: &str = "validation_failed";
pub const NOT_FOUND: &str = "not_found";
pub const ACCOUNT_AMBIGUOUS: &str = "account_ambiguous";
pub const INTERNAL: &str = "internal";

pub fn error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("PlugboardError");
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

/// An error from the server's `{"error": {...}}` body.
pub fn from_body(status: u16, body: &JsValue) -> JsValue {
    let inner = Reflect::get(body, &"error".into()).unwrap_or(JsValue::UNDEFINED);
    let code = get_string(&inner, "code").unwrap_or_else(|| {
        if status >= 500 {
            "upstream_error".into()
        } else {
            INTERNAL.into()
        }
    });
    let message =
        get_string(&inner, "message").unwrap_or_else(|| format!("the server answered {status}"));
    let e = error(&code, &message);
    if let Some(provider_code) = get_string(&inner, "provider_code") {
        let _ = Reflect::set(&e, &"providerCode".into(), &provider_code.into());
    }
    let fields = Reflect::get(&inner, &"fields".into()).unwrap_or(JsValue::UNDEFINED);
    if fields.is_object() {
        let _ = Reflect::set(&e, &"fields".into(), &fields);
    }
    e
}

pub fn get_string(value: &JsValue, key: &str) -> Option<String> {
    if !value.is_object() {
        return None;
    }
    Reflect::get(value, &key.into())
        .ok()
        .and_then(|v| v.as_string())
}

/// A plain object with the given string fields.
pub fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &(*k).into(), v);
    }
    o.into()
}
