//! Calls to Plugboard's SDK endpoints with the session token, renewing it
//! through `fetchSessionToken` when the server says it expired.

use std::cell::RefCell;

use js_sys::{Function, Promise, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, RequestMode, Response};

use crate::error::{self, error, NETWORK_ERROR};

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

    /// Sends a request; answers the parsed JSON body (or `undefined` for none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&JsValue>,
    ) -> Result<JsValue, JsValue> {
        let mut renewed = false;
        loop {
            let (status, value) = self.send(method, path, body).await?;
            if (200..300).contains(&status) {
                return Ok(value);
            }
            let err = error::from_body(status, &value);
            let code = error::get_string(&err, "code");
            if code.as_deref() == Some("session_expired") && !renewed {
                if let Some(fetch) = &self.fetch_token {
                    self.renew(fetch).await?;
                    renewed = true;
                    continue;
                }
            }
            return Err(err);
        }
    }

    async fn renew(&self, fetch: &Function) -> Result<(), JsValue> {
        let returned = fetch.call0(&JsValue::NULL)?;
        let token = JsFuture::from(Promise::resolve(&returned)).await?;
        match token.as_string().filter(|t| !t.is_empty()) {
            Some(t) => {
                *self.token.borrow_mut() = t;
                Ok(())
            }
            None => Err(error(
                "session_expired",
                "fetchSessionToken did not return a session token",
            )),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&JsValue>,
    ) -> Result<(u16, JsValue), JsValue> {
        let window = web_sys::window().ok_or_else(|| error(NETWORK_ERROR, "no window"))?;
        let headers = Headers::new()?;
        headers.set("authorization", &format!("Bearer {}", self.token.borrow()))?;
        let init = RequestInit::new();
        init.set_method(method);
        init.set_mode(RequestMode::Cors);
        if let Some(body) = body {
            headers.set("content-type", "application/json")?;
            init.set_body(&JSON::stringify(body)?.into());
        }
        init.set_headers(&headers);
        let url = format!("{}{}", self.server_url, path);
        let network = |_| {
            error(
                NETWORK_ERROR,
                &format!("could not reach Plugboard at {}", self.server_url),
            )
        };
        let response: Response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
            .await
            .map_err(network)?
            .dyn_into()?;
        let text = JsFuture::from(response.text()?).await.map_err(network)?;
        let text = text.as_string().unwrap_or_default();
        let value = if text.is_empty() {
            JsValue::UNDEFINED
        } else {
            JSON::parse(&text).unwrap_or(JsValue::UNDEFINED)
        };
        Ok((response.status(), value))
    }
}
