//! Plugboard's browser SDK: the page's side of connecting, listing and
//! disconnecting an end user's accounts. Compiled to WebAssembly; `npm/`
//! wraps these bindings in the public ES module `@plugboard/sdk`.
//!
//! The popup rules (README, "The SDK in a web page"): the popup opens synchronously inside the
//! caller's click; one attempt at a time; the outcome comes from the popup's
//! message (exact origin, the popup as source, matching nonce) or, when the
//! popup reports closed, from the server's attempt status, polled for up to
//! three seconds before `user_cancelled`.

mod error;
mod http;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{MessageEvent, Window};

use crate::error::{error, get_string, object};
use crate::http::Api;

/// How long the SDK keeps asking the server after the popup reports closed.
const CLOSED_GRACE_MS: f64 = 3000.0;
/// How often the SDK looks at the popup and the server.
const TICK_MS: i32 = 200;
/// An attempt expires on the server after ten minutes; the SDK waits a little longer.
const ATTEMPT_LIMIT_MS: f64 = 11.0 * 60.0 * 1000.0;

struct Inner {
    api: Api,
    /// The origin of the server: the only one whose messages are read.
    server_origin: String,
    busy: Cell<bool>,
    popup: RefCell<Option<Window>>,
}

/// The SDK's client for one session. The public, documented surface is the
/// `Plugboard` class of the npm package, which wraps this.
#[wasm_bindgen]
pub struct Client {
    inner: Rc<Inner>,
}

fn window() -> Result<Window, JsValue> {
    web_sys::window().ok_or_else(|| {
        error(
            error::INTERNAL,
            "the Plugboard SDK runs in a browser window",
        )
    })
}

#[wasm_bindgen]
impl Client {
    #[wasm_bindgen(constructor)]
    pub fn new(
        server_url: String,
        session_token: String,
        fetch_session_token: Option<js_sys::Function>,
    ) -> Result<Client, JsValue> {
        let url = web_sys::Url::new(&server_url).map_err(|_| {
            error(
                error::VALIDATION_FAILED,
                "serverUrl must be an absolute http(s) URL",
            )
        })?;
        if url.protocol() != "http:" && url.protocol() != "https:" {
            return Err(error(
                error::VALIDATION_FAILED,
                "serverUrl must be an absolute http(s) URL",
            ));
        }
        if session_token.is_empty() {
            return Err(error(error::VALIDATION_FAILED, "sessionToken is required"));
        }
        let base = format!("{}{}", url.origin(), url.pathname().trim_end_matches('/'));
        Ok(Client {
            inner: Rc::new(Inner {
                api: Api::new(base, session_token, fetch_session_token),
                server_origin: url.origin(),
                busy: Cell::new(false),
                popup: RefCell::new(None),
            }),
        })
    }

    /// The apps the session may connect.
    #[wasm_bindgen(js_name = listApps)]
    pub fn list_apps(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { inner.api.call("GET", "/v1/sdk/apps", None).await })
    }

    /// The end user's connected accounts, of one app or of all.
    #[wasm_bindgen(js_name = getConnectedAccounts)]
    pub fn get_connected_accounts(&self, app_key: Option<String>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { accounts(&inner, app_key.as_deref()).await })
    }

    /// Disconnects one of the end user's accounts. Without an id, the app must
    /// have exactly one connected account.
    #[wasm_bindgen(js_name = disconnectApp)]
    pub fn disconnect_app(&self, app_key: String, connected_account_id: Option<String>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let id = match connected_account_id {
                Some(id) => id,
                None => {
                    let list: Array = accounts(&inner, Some(&app_key)).await?.into();
                    match list.length() {
                        0 => return Err(error(error::NOT_FOUND, &format!("no connected account for {app_key}"))),
                        1 => get_string(&list.get(0), "id").unwrap_or_default(),
                        _ => {
                            return Err(error(
                                error::ACCOUNT_AMBIGUOUS,
                                &format!("several accounts are connected to {app_key}: pass connectedAccountId"),
                            ))
                        }
                    }
                }
            };
            let path = format!("/v1/sdk/connections/{}", encode(&id));
            inner.api.call("DELETE", &path, None).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Connects an account: opens the popup now (inside the caller's click),
    /// then starts the attempt and waits for its outcome.
    #[wasm_bindgen(js_name = connectApp)]
    pub fn connect_app(
        &self,
        app_key: String,
        connected_account_id: Option<String>,
        params: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        if inner.busy.get() {
            if let Some(popup) = inner.popup.borrow().as_ref() {
                let _ = popup.focus();
            }
            return Promise::reject(&error(
                error::CONNECT_IN_PROGRESS,
                "a connect popup is already open",
            ));
        }
        let popup =
            match window().and_then(|w| {
                w.open_with_url_and_target_and_features(
                    "",
                    "plugboard-connect",
                    "popup=yes,width=520,height=720",
                )
            }) {
                Ok(Some(popup)) => popup,
                _ => return Promise::reject(&error(
                    error::POPUP_BLOCKED,
                    "the browser blocked the connect popup; call connectApp from a click handler",
                )),
            };
        inner.busy.set(true);
        *inner.popup.borrow_mut() = Some(popup.clone());
        future_to_promise(async move {
            let result = connect(&inner, &popup, &app_key, connected_account_id, params).await;
            inner.busy.set(false);
            *inner.popup.borrow_mut() = None;
            if result.is_err() {
                let _ = popup.close();
            }
            result
        })
    }
}

fn encode(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

async fn accounts(inner: &Inner, app_key: Option<&str>) -> Result<JsValue, JsValue> {
    let path = match app_key {
        Some(key) => format!("/v1/sdk/connections?app={}", encode(key)),
        None => "/v1/sdk/connections".to_string(),
    };
    inner.api.call("GET", &path, None).await
}

async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// What the popup told the page.
struct PopupResult {
    status: String,
    connected_account_id: Option<String>,
    error: Option<String>,
}

async fn connect(
    inner: &Rc<Inner>,
    popup: &Window,
    app_key: &str,
    connected_account_id: Option<String>,
    params: JsValue,
) -> Result<JsValue, JsValue> {
    let mut body = vec![("app", JsValue::from_str(app_key))];
    if let Some(id) = &connected_account_id {
        body.push(("connectedAccountId", JsValue::from_str(id)));
    }
    if params.is_object() {
        body.push(("params", params));
    }
    let started = inner
        .api
        .call("POST", "/v1/sdk/connect", Some(&object(&body)))
        .await?;
    let attempt_id = get_string(&started, "attemptId").unwrap_or_default();
    let nonce = get_string(&started, "nonce").unwrap_or_default();
    let popup_url = get_string(&started, "popupUrl").unwrap_or_default();
    // Given only to this popup, when its page asks: it proves the popup was
    // opened by this page (a popup URL opened anywhere else cannot go on).
    let proof = get_string(&started, "popupProof").unwrap_or_default();
    if popup.closed().unwrap_or(true) {
        return Err(error(error::USER_CANCELLED, "the connect popup was closed"));
    }

    // The fast path: the popup's message, accepted only from the server's
    // origin, from this popup, for this attempt, with this nonce.
    let received: Rc<RefCell<Option<PopupResult>>> = Rc::new(RefCell::new(None));
    let listener = {
        let received = received.clone();
        let popup = popup.clone();
        let origin = inner.server_origin.clone();
        let attempt_id = attempt_id.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if event.origin() != origin {
                return;
            }
            let from_popup = event.source().is_some_and(|s| Object::is(&s, &popup));
            let data = event.data();
            let matches = get_string(&data, "type").as_deref() == Some("plugboard:connect")
                && get_string(&data, "nonce").as_deref() == Some(nonce.as_str())
                && get_string(&data, "attemptId").as_deref() == Some(attempt_id.as_str());
            if from_popup && matches {
                *received.borrow_mut() = Some(PopupResult {
                    status: get_string(&data, "status").unwrap_or_default(),
                    connected_account_id: get_string(&data, "connectedAccountId"),
                    error: get_string(&data, "error"),
                });
            }
            let hello = get_string(&data, "type").as_deref() == Some("plugboard:hello")
                && get_string(&data, "attemptId").as_deref() == Some(attempt_id.as_str());
            if from_popup && hello {
                let answer = object(&[
                    ("type", JsValue::from_str("plugboard:proof")),
                    ("attemptId", JsValue::from_str(&attempt_id)),
                    ("proof", JsValue::from_str(&proof)),
                ]);
                // To the server's origin only: a popup that went elsewhere gets nothing.
                let _ = popup.post_message(&answer, &origin);
            }
        })
    };
    let window = window()?;
    window.add_event_listener_with_callback("message", listener.as_ref().unchecked_ref())?;
    popup.location().set_href(&popup_url)?;
    let started_at = js_sys::Date::now();
    let mut closed = false;
    loop {
        sleep(TICK_MS).await;
        if received.borrow().is_some() {
            break;
        }
        if popup.closed().unwrap_or(true) {
            closed = true;
            break;
        }
        if js_sys::Date::now() - started_at > ATTEMPT_LIMIT_MS {
            break;
        }
    }
    let _ =
        window.remove_event_listener_with_callback("message", listener.as_ref().unchecked_ref());
    drop(listener);

    let message = received.borrow_mut().take();
    if let Some(result) = message {
        let _ = popup.close();
        return finish(inner, app_key, &attempt_id, result).await;
    }
    // The popup closed (or lost its opener to a provider's COOP header) without
    // a message reaching us: the server knows how the attempt ended.
    let deadline = js_sys::Date::now() + if closed { CLOSED_GRACE_MS } else { 0.0 };
    loop {
        let status = inner
            .api
            .call(
                "GET",
                &format!("/v1/sdk/connect/{}", encode(&attempt_id)),
                None,
            )
            .await?;
        let state = get_string(&status, "status").unwrap_or_default();
        if state == "succeeded" || state == "failed" {
            let err = Reflect::get(&status, &"error".into()).unwrap_or(JsValue::UNDEFINED);
            let result = PopupResult {
                status: state,
                connected_account_id: get_string(&status, "connectedAccountId"),
                error: get_string(&err, "code"),
            };
            return finish(inner, app_key, &attempt_id, result).await;
        }
        if js_sys::Date::now() >= deadline {
            let _ = popup.close();
            return Err(error(
                error::USER_CANCELLED,
                "the connect popup was closed before the account was connected",
            ));
        }
        sleep(500).await;
    }
}

/// Turns an attempt's outcome into the connected account, or the error.
async fn finish(
    inner: &Inner,
    app_key: &str,
    attempt_id: &str,
    result: PopupResult,
) -> Result<JsValue, JsValue> {
    if result.status != "succeeded" {
        // The server has the human message for the code.
        let status = inner
            .api
            .call(
                "GET",
                &format!("/v1/sdk/connect/{}", encode(attempt_id)),
                None,
            )
            .await
            .ok();
        let err = status
            .as_ref()
            .and_then(|s| Reflect::get(s, &"error".into()).ok())
            .unwrap_or(JsValue::UNDEFINED);
        let code = result
            .error
            .or_else(|| get_string(&err, "code"))
            .unwrap_or_else(|| error::INTERNAL.into());
        let message = get_string(&err, "message")
            .unwrap_or_else(|| format!("the account was not connected: {code}"));
        let e = error(&code, &message);
        if let Some(provider_code) = get_string(&err, "providerCode") {
            let _ = Reflect::set(&e, &"providerCode".into(), &provider_code.into());
        }
        return Err(e);
    }
    let id = result.connected_account_id.unwrap_or_default();
    let list: Array = accounts(inner, Some(app_key)).await?.into();
    list.iter()
        .find(|a| get_string(a, "id").as_deref() == Some(id.as_str()))
        .ok_or_else(|| error(error::NOT_FOUND, "the connected account is no longer there"))
}
