//! Calls to Plugboard's SDK endpoints with the session token, renewing it
//! through `fetchSessionToken` when the server says it expired. The browser's
//! `fetch` sends them (through `web-sys`: `gloo-net` measured 3.2 KB gzipped
//! for this one call site, a tenth of the package's budget) and parses the
//! JSON; the models read the parsed value (`crate::js`).

use std::cell::RefCell;

use js_sys::{Function, Promise, JSON};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

use crate::error::{SdkError, INTERNAL, NETWORK_ERROR, SESSION_EXPIRED, SESSION_TOKEN_FAILED};
use crate::js::{from_js, FromJs, ToJs};

/// The server's answer read as `T`.
pub fn read<T: FromJs>(value: JsValue) -> Result<T, SdkError> {
    T::from_js(value).map_err(|_| SdkError::new(INTERNAL, "the server's answer was not understood"))
}

pub struct Api {
    /// The server's base URL, without a trailing slash.
    pub server_url: String,
    token: RefCell<String>,
    fetch_token: Option<Function>,
}

impl Api {
    pub fn new(server_url: String, token: String, fetch_token: Option<Function>) -> Api {
        Api {
            server_url,
            token: RefCell::new(token),
            fetch_token,
        }
    }

    /// Sends a request; answers the parsed JSON body (`undefined` for none).
    /// Read it with [`read`]: this stays one function, not one per model.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&dyn ToJs>,
    ) -> Result<JsValue, SdkError> {
        let body = body
            .map(|b| JSON::stringify(&b.to_js()).map(String::from))
            .transpose()
            .map_err(|_| SdkError::new(INTERNAL, "a request body could not be written"))?;
        let mut renewed = false;
        loop {
            let (status, value) = self.exchange(method, path, body.as_deref()).await?;
            if (200..300).contains(&status) {
                return Ok(value);
            }
            let err = SdkError::from_body(status, from_js(value).unwrap_or_default());
            if err.code == SESSION_EXPIRED && !renewed {
                if let Some(fetch) = &self.fetch_token {
                    self.renew(fetch).await?;
                    renewed = true;
                    continue;
                }
            }
            return Err(err);
        }
    }

    async fn renew(&self, fetch: &Function) -> Result<(), SdkError> {
        let failed = |cause| {
            SdkError::new(SESSION_TOKEN_FAILED, "fetchSessionToken failed").with_cause(cause)
        };
        let returned = fetch.call0(&JsValue::NULL).map_err(failed)?;
        let token = JsFuture::from(Promise::resolve(&returned))
            .await
            .map_err(failed)?;
        match token.as_string().filter(|t| !t.is_empty()) {
            Some(t) => {
                *self.token.borrow_mut() = t;
                Ok(())
            }
            None => Err(SdkError::new(
                SESSION_TOKEN_FAILED,
                "fetchSessionToken did not return a session token",
            )),
        }
    }

    /// One request and its answer: the status and the parsed JSON body
    /// (`undefined` when there is none).
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, JsValue), SdkError> {
        let network = |_| {
            SdkError::new(
                NETWORK_ERROR,
                format!("could not reach Plugboard at {}", self.server_url),
            )
        };
        let window = web_sys::window().ok_or_else(|| network(JsValue::UNDEFINED))?;
        let headers = Headers::new().map_err(network)?;
        let bearer = format!("Bearer {}", self.token.borrow());
        headers.set("authorization", &bearer).map_err(network)?;
        let init = RequestInit::new();
        init.set_method(method);
        if let Some(body) = body {
            headers
                .set("content-type", "application/json")
                .map_err(network)?;
            init.set_body(&JsValue::from_str(body));
        }
        init.set_headers(&headers);
        let url = format!("{}{}", self.server_url, path);
        let response: Response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
            .await
            .map_err(network)?
            .unchecked_into();
        let text = JsFuture::from(response.text().map_err(network)?)
            .await
            .map_err(network)?
            .as_string()
            .unwrap_or_default();
        let value = if text.is_empty() {
            JsValue::UNDEFINED
        } else {
            JSON::parse(&text).unwrap_or(JsValue::UNDEFINED)
        };
        Ok((response.status(), value))
    }
}
