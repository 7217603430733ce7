//! Plugboard's browser SDK: the page's side of connecting, listing and
//! disconnecting an end user's accounts. Compiled to WebAssembly; `npm/`
//! wraps these bindings in the public ES module `@plugboard/sdk`.
//!
//! The popup rules (README, "The SDK in a web page"): the popup opens synchronously inside the
//! caller's click; one attempt at a time; the outcome comes from the popup's
//! message (exact origin, the popup as source, matching nonce) or, when the
//! popup looks closed, from the server's attempt status: `user_cancelled` at
//! once if the attempt never reached the provider; otherwise (a provider's
//! `Cross-Origin-Opener-Policy` severs the popup from the page) the SDK waits
//! for the attempt's outcome or its expiry. Aborting `signal` cancels the
//! attempt on the server, unless it already ended.

mod error;
mod http;
mod js;
mod model;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{AbortSignal, MessageEvent, Window};

use crate::error::{error, SdkError};
use crate::http::{read, Api};
use crate::js::{from_js, TextMap, ToJs};
use crate::model::{
    App, AttemptState, AttemptStatus, ConnectedAccount, PopupMessage, ProofMessage, StartAttempt,
    StartedAttempt,
};

/// How often the SDK looks at the popup and the server.
const TICK_MS: i32 = 200;
/// An attempt expires on the server after ten minutes; the SDK waits a little longer.
const ATTEMPT_LIMIT_MS: f64 = 11.0 * 60.0 * 1000.0;
/// How often the SDK asks the server while a severed popup is at the provider.
const SEVERED_POLL_MS: i32 = 1000;
const ABORTED_MESSAGE: &str = "connectApp was aborted through its signal";

struct Inner {
    api: Api,
    /// The origin of the server: the only one whose messages are read.
    server_origin: String,
    busy: Cell<bool>,
    popup: RefCell<Option<Window>>,
}

/// A promise of `future`'s value as JavaScript, or of its error as a `PlugboardError`.
fn promise<T: ToJs>(
    future: impl std::future::Future<Output = Result<T, SdkError>> + 'static,
) -> Promise {
    settle(Box::pin(async move { future.await.map(|v| v.to_js()) }))
}

/// One instance of the promise machinery for every method (it is large).
fn settle(
    future: std::pin::Pin<Box<dyn std::future::Future<Output = Result<JsValue, SdkError>>>>,
) -> Promise {
    future_to_promise(async move { future.await.map_err(JsValue::from) })
}

/// The SDK's client for one session. The public, documented surface is the
/// `Plugboard` class of the npm package, which wraps this.
#[wasm_bindgen]
pub struct Client {
    inner: Rc<Inner>,
}

fn window() -> Result<Window, SdkError> {
    web_sys::window().ok_or_else(|| {
        SdkError::new(
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
        let invalid = || {
            error(
                error::VALIDATION_FAILED,
                "serverUrl must be an absolute http(s) URL",
            )
        };
        let url = web_sys::Url::new(&server_url).map_err(|_| invalid())?;
        if url.protocol() != "http:" && url.protocol() != "https:" {
            return Err(invalid());
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
        promise(async move { read::<Vec<App>>(inner.api.call("GET", "/v1/sdk/apps", None).await?) })
    }

    /// The end user's connected accounts, of one app or of all.
    #[wasm_bindgen(js_name = getConnectedAccounts)]
    pub fn get_connected_accounts(&self, app_key: Option<String>) -> Promise {
        let inner = self.inner.clone();
        promise(async move { accounts(&inner, app_key.as_deref()).await })
    }

    /// Disconnects one of the end user's accounts; resolves with it. Without
    /// an id, the app must have exactly one connected account.
    #[wasm_bindgen(js_name = disconnectApp)]
    pub fn disconnect_app(&self, app_key: String, connected_account_id: Option<String>) -> Promise {
        let inner = self.inner.clone();
        promise(async move { disconnect(&inner, &app_key, connected_account_id).await })
    }

    /// Runs a function the project declared on one of the end user's
    /// accounts (the one named, else their only one on its app): `request`
    /// is `{input, connectedAccountId?, page?}` and `name` a function's name
    /// (`[a-z0-9_.-]`, checked by the package). Resolves `{output, nextPage}`
    /// as the server answers it.
    #[wasm_bindgen(js_name = invokeFunction)]
    pub fn invoke_function(&self, name: String, request: JsValue) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let path = format!("/v1/sdk/functions/{name}/invoke");
            inner.api.call("POST", &path, Some(&request)).await
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
        signal: Option<AbortSignal>,
    ) -> Promise {
        let inner = self.inner.clone();
        if signal.as_ref().is_some_and(AbortSignal::aborted) {
            return Promise::reject(&error(error::ABORTED, ABORTED_MESSAGE));
        }
        if inner.busy.get() {
            if let Some(popup) = inner.popup.borrow().as_ref() {
                let _ = popup.focus();
            }
            return Promise::reject(&error(
                error::CONNECT_IN_PROGRESS,
                "a connect popup is already open",
            ));
        }
        let params = if params.is_undefined() || params.is_null() {
            TextMap::default()
        } else {
            match from_js::<TextMap>(params) {
                Some(params) => params,
                None => {
                    return Promise::reject(&error(
                        error::VALIDATION_FAILED,
                        "params must map names to strings",
                    ))
                }
            }
        };
        let opened = window().ok().and_then(|w| {
            w.open_with_url_and_target_and_features(
                "",
                "plugboard-connect",
                "popup=yes,width=520,height=720",
            )
            .ok()
            .flatten()
        });
        let Some(popup) = opened else {
            return Promise::reject(&error(
                error::POPUP_BLOCKED,
                "the browser blocked the connect popup; call connectApp from a click handler",
            ));
        };
        inner.busy.set(true);
        *inner.popup.borrow_mut() = Some(popup.clone());
        promise(async move {
            let request = StartAttempt {
                app: app_key,
                connected_account_id,
                params,
            };
            let result = connect(&inner, &popup, request, signal.as_ref()).await;
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

async fn accounts(inner: &Inner, app_key: Option<&str>) -> Result<Vec<ConnectedAccount>, SdkError> {
    let path = match app_key {
        Some(key) => format!("/v1/sdk/connections?app={}", encode(key)),
        None => "/v1/sdk/connections".to_string(),
    };
    read(inner.api.call("GET", &path, None).await?)
}

/// Disconnects one of the end user's accounts of `app_key` (the only one
/// when no id is given); answers the account as it was.
async fn disconnect(
    inner: &Inner,
    app_key: &str,
    connected_account_id: Option<String>,
) -> Result<ConnectedAccount, SdkError> {
    let list = accounts(inner, Some(app_key)).await?;
    let mut matching = list
        .into_iter()
        .filter(|a| connected_account_id.as_ref().is_none_or(|id| *id == a.id));
    let account = match (matching.next(), matching.next()) {
        (Some(account), None) => account,
        (Some(_), Some(_)) => {
            return Err(SdkError::new(
                error::ACCOUNT_AMBIGUOUS,
                format!("several accounts are connected to {app_key}: pass connectedAccountId"),
            ))
        }
        (None, _) => {
            return Err(SdkError::new(
                error::NOT_FOUND,
                format!("no such connected account for {app_key}"),
            ))
        }
    };
    let path = format!("/v1/sdk/connections/{}", encode(&account.id));
    inner.api.call("DELETE", &path, None).await?;
    Ok(account)
}

async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// How an attempt ended, as the popup or the server told it.
struct Outcome {
    succeeded: bool,
    connected_account_id: Option<String>,
    error: Option<String>,
}

impl From<AttemptStatus> for Outcome {
    fn from(status: AttemptStatus) -> Outcome {
        Outcome {
            succeeded: status.status == AttemptState::Succeeded,
            connected_account_id: status.connected_account_id,
            error: status.error.map(|e| e.code),
        }
    }
}

async fn attempt_status(inner: &Inner, attempt_id: &str) -> Result<AttemptStatus, SdkError> {
    let path = format!("/v1/sdk/connect/{}", encode(attempt_id));
    read(inner.api.call("GET", &path, None).await?)
}

async fn connect(
    inner: &Rc<Inner>,
    popup: &Window,
    request: StartAttempt,
    signal: Option<&AbortSignal>,
) -> Result<ConnectedAccount, SdkError> {
    let started: StartedAttempt = read(
        inner
            .api
            .call("POST", "/v1/sdk/connect", Some(&request))
            .await?,
    )?;
    if popup.closed().unwrap_or(true) {
        return Err(SdkError::new(
            error::USER_CANCELLED,
            "the connect popup was closed",
        ));
    }

    // The fast path: the popup's message, accepted only from the server's
    // origin, from this popup, for this attempt, with this nonce.
    let received: Rc<RefCell<Option<Outcome>>> = Rc::new(RefCell::new(None));
    let listener = {
        let received = received.clone();
        let popup = popup.clone();
        let origin = inner.server_origin.clone();
        let attempt_id = started.attempt_id.clone();
        let nonce = started.nonce.clone();
        // Given only to this popup, when its page asks: it proves the popup was
        // opened by this page (a popup URL opened anywhere else cannot go on).
        let proof = started.popup_proof.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if event.origin() != origin || !event.source().is_some_and(|s| Object::is(&s, &popup)) {
                return;
            }
            let Some(message) = from_js::<PopupMessage>(event.data()) else {
                return;
            };
            if message.attempt_id != attempt_id {
                return;
            }
            match message.kind.as_str() {
                "plugboard:connect" if message.nonce.as_deref() == Some(nonce.as_str()) => {
                    *received.borrow_mut() = Some(Outcome {
                        succeeded: message.status == Some(AttemptState::Succeeded),
                        connected_account_id: message.connected_account_id,
                        error: message.error,
                    });
                }
                "plugboard:hello" => {
                    let answer = ProofMessage {
                        attempt_id: &attempt_id,
                        proof: &proof,
                    };
                    // To the server's origin only: a popup that went elsewhere gets nothing.
                    let _ = popup.post_message(&answer.to_js(), &origin);
                }
                _ => {}
            }
        })
    };
    let js = |_| SdkError::new(error::INTERNAL, "the browser refused the popup");
    let window = window()?;
    window
        .add_event_listener_with_callback("message", listener.as_ref().unchecked_ref())
        .map_err(js)?;
    popup.location().set_href(&started.popup_url).map_err(js)?;
    let started_at = js_sys::Date::now();
    let aborted = || signal.is_some_and(AbortSignal::aborted);
    let mut gave_up = false;
    loop {
        sleep(TICK_MS).await;
        if received.borrow().is_some() {
            break;
        }
        if aborted() {
            gave_up = true;
            break;
        }
        if popup.closed().unwrap_or(true) || js_sys::Date::now() - started_at > ATTEMPT_LIMIT_MS {
            break;
        }
    }
    let _ =
        window.remove_event_listener_with_callback("message", listener.as_ref().unchecked_ref());
    drop(listener);

    let message = received.borrow_mut().take();
    if let Some(outcome) = message {
        let _ = popup.close();
        return finish(inner, &request.app, &started.attempt_id, outcome).await;
    }
    if gave_up {
        let _ = popup.close();
        return give_up(inner, &request.app, &started.attempt_id).await;
    }
    // The popup looks closed without a message reaching us: the user closed
    // it, or a provider's `Cross-Origin-Opener-Policy` severed it from this
    // page while the user signs in. The server knows which and how it ended.
    loop {
        let status = attempt_status(inner, &started.attempt_id).await?;
        match status.status {
            AttemptState::Succeeded | AttemptState::Failed => {
                let _ = popup.close();
                return finish(inner, &request.app, &started.attempt_id, status.into()).await;
            }
            AttemptState::Pending if status.reached_provider => {}
            _ => {
                let _ = popup.close();
                return Err(SdkError::new(
                    error::USER_CANCELLED,
                    "the connect popup was closed before the account was connected",
                ));
            }
        }
        // At the provider: wait for the outcome, the attempt's expiry, or the signal.
        sleep(SEVERED_POLL_MS).await;
        if aborted() {
            let _ = popup.close();
            return give_up(inner, &request.app, &started.attempt_id).await;
        }
    }
}

/// The page aborted: the attempt is cancelled on the server, unless it
/// already ended (or a callback is finishing it), whose outcome then stands.
async fn give_up(
    inner: &Inner,
    app_key: &str,
    attempt_id: &str,
) -> Result<ConnectedAccount, SdkError> {
    let path = format!("/v1/sdk/connect/{}/cancel", encode(attempt_id));
    let mut status: AttemptStatus = read(inner.api.call("POST", &path, None).await?)?;
    loop {
        match status.status {
            AttemptState::Succeeded | AttemptState::Failed => {
                return finish(inner, app_key, attempt_id, status.into()).await;
            }
            // A callback spent it first and is finishing: its outcome stands.
            AttemptState::Pending => {
                sleep(TICK_MS).await;
                status = attempt_status(inner, attempt_id).await?;
            }
            _ => return Err(SdkError::new(error::ABORTED, ABORTED_MESSAGE)),
        }
    }
}

/// Turns an attempt's outcome into the connected account, or the error.
async fn finish(
    inner: &Inner,
    app_key: &str,
    attempt_id: &str,
    outcome: Outcome,
) -> Result<ConnectedAccount, SdkError> {
    if !outcome.succeeded {
        // The server has the human message for the code.
        let detail = attempt_status(inner, attempt_id)
            .await
            .ok()
            .and_then(|s| s.error)
            .unwrap_or_default();
        let code = outcome
            .error
            .or_else(|| Some(detail.code).filter(|c| !c.is_empty()))
            .unwrap_or_else(|| error::INTERNAL.into());
        let mut e = SdkError::new(&code, detail.message);
        if e.message.is_empty() {
            e.message = format!("the account was not connected: {code}");
        }
        e.provider_code = detail.provider_code;
        return Err(e);
    }
    let id = outcome.connected_account_id.unwrap_or_default();
    accounts(inner, Some(app_key))
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| SdkError::new(error::NOT_FOUND, "the connected account is no longer there"))
}
