//! The values the SDK exchanges with the server, its popup and the page, as
//! typed Rust. Each says which JavaScript properties it reads or writes
//! (`crate::js`); the names are the contract's (`npm/index.d.ts`).

use wasm_bindgen::JsValue;

use crate::js::{object, FromJs, Mismatch, Record, TextMap, ToJs};

/// An app (a configured provider) the end user can connect: `App` in `index.d.ts`.
pub struct App {
    pub key: String,
    pub label: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub auth_type: String,
    pub multiple_accounts: bool,
}

impl FromJs for App {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        let r = Record::new(value)?;
        Ok(App {
            key: r.read("key")?,
            label: r.read("label")?,
            description: r.optional("description")?,
            logo_url: r.optional("logoUrl")?,
            auth_type: r.read("authType")?,
            multiple_accounts: r.flag("multipleAccounts")?,
        })
    }
}

impl ToJs for App {
    fn to_js(&self) -> JsValue {
        object(&[
            ("key", self.key.to_js()),
            ("label", self.label.to_js()),
            ("description", self.description.to_js()),
            ("logoUrl", self.logo_url.to_js()),
            ("authType", self.auth_type.to_js()),
            ("multipleAccounts", self.multiple_accounts.into()),
        ])
    }
}

/// One of the end user's accounts: `ConnectedAccount` in `index.d.ts`.
pub struct ConnectedAccount {
    pub id: String,
    pub app: String,
    pub label: Option<String>,
    pub status: String,
    pub scopes: Vec<String>,
    pub created_at: String,
}

impl FromJs for ConnectedAccount {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        let r = Record::new(value)?;
        Ok(ConnectedAccount {
            id: r.read("id")?,
            app: r.read("app")?,
            label: r.optional("label")?,
            status: r.read("status")?,
            scopes: r.read("scopes")?,
            created_at: r.read("createdAt")?,
        })
    }
}

impl ToJs for ConnectedAccount {
    fn to_js(&self) -> JsValue {
        object(&[
            ("id", self.id.to_js()),
            ("app", self.app.to_js()),
            ("label", self.label.to_js()),
            ("status", self.status.to_js()),
            ("scopes", self.scopes.to_js()),
            ("createdAt", self.created_at.to_js()),
        ])
    }
}

/// `POST /v1/sdk/connect`'s body.
pub struct StartAttempt {
    pub app: String,
    pub connected_account_id: Option<String>,
    pub params: TextMap,
}

impl ToJs for StartAttempt {
    fn to_js(&self) -> JsValue {
        let mut properties = vec![("app", self.app.to_js()), ("params", self.params.to_js())];
        if let Some(id) = &self.connected_account_id {
            properties.push(("connectedAccountId", id.to_js()));
        }
        object(&properties)
    }
}

/// `POST /v1/sdk/connect`'s answer.
pub struct StartedAttempt {
    pub attempt_id: String,
    pub popup_url: String,
    /// Given only to this attempt's popup, when its page asks.
    pub popup_proof: String,
    pub nonce: String,
}

impl FromJs for StartedAttempt {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        let r = Record::new(value)?;
        Ok(StartedAttempt {
            attempt_id: r.read("attemptId")?,
            popup_url: r.read("popupUrl")?,
            popup_proof: r.read("popupProof")?,
            nonce: r.read("nonce")?,
        })
    }
}

/// Where an attempt stands.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum AttemptState {
    /// Still waiting for the end user.
    Pending,
    Succeeded,
    Failed,
    /// Cancelled, expired, or a state this SDK does not know: it will not
    /// connect anything.
    Ended,
}

impl FromJs for AttemptState {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        Ok(match String::from_js(value)?.as_str() {
            "pending" => AttemptState::Pending,
            "succeeded" => AttemptState::Succeeded,
            "failed" => AttemptState::Failed,
            _ => AttemptState::Ended,
        })
    }
}

/// `GET /v1/sdk/connect/{id}`: how an attempt ended, or that it has not yet.
pub struct AttemptStatus {
    pub status: AttemptState,
    /// Whether the popup went on to the provider.
    pub reached_provider: bool,
    pub connected_account_id: Option<String>,
    pub error: Option<ErrorDetail>,
}

impl FromJs for AttemptStatus {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        let r = Record::new(value)?;
        Ok(AttemptStatus {
            status: r.read("status")?,
            reached_provider: r.optional("reachedProvider")?.unwrap_or(false),
            connected_account_id: r.optional("connectedAccountId")?,
            error: r.optional("error")?,
        })
    }
}

/// The server's error shape, `{"error": {...}}`.
#[derive(Default)]
pub struct ErrorBody {
    pub error: Option<ErrorDetail>,
}

impl FromJs for ErrorBody {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        Ok(ErrorBody {
            error: Record::new(value)?.optional("error")?,
        })
    }
}

#[derive(Default)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    pub provider_code: Option<String>,
    pub fields: Option<TextMap>,
    /// An API call's answer (`upstream_error`): its status and redacted body, as sent.
    pub upstream: (JsValue, JsValue),
}

impl FromJs for ErrorDetail {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        let r = Record::new(value)?;
        Ok(ErrorDetail {
            code: r.read("code")?,
            message: r.read("message")?,
            // `provider_code` over HTTP, `providerCode` in an attempt's status.
            provider_code: match r.optional("provider_code")? {
                Some(code) => Some(code),
                None => r.optional("providerCode")?,
            },
            fields: r.optional("fields")?,
            upstream: (r.read("upstream_status")?, r.read("upstream_body")?),
        })
    }
}

/// A message from a window: the popup's outcome (`plugboard:connect`) or its
/// request for the proof (`plugboard:hello`).
pub struct PopupMessage {
    pub kind: String,
    pub attempt_id: String,
    pub nonce: Option<String>,
    pub status: Option<AttemptState>,
    pub connected_account_id: Option<String>,
    pub error: Option<String>,
}

impl FromJs for PopupMessage {
    fn from_js(value: JsValue) -> Result<Self, Mismatch> {
        let r = Record::new(value)?;
        Ok(PopupMessage {
            kind: r.read("type")?,
            attempt_id: r.read("attemptId")?,
            nonce: r.optional("nonce")?,
            status: r.optional("status")?,
            connected_account_id: r.optional("connectedAccountId")?,
            error: r.optional("error")?,
        })
    }
}

/// The page's answer to the popup's `plugboard:hello`.
pub struct ProofMessage<'a> {
    pub attempt_id: &'a str,
    pub proof: &'a str,
}

impl ToJs for ProofMessage<'_> {
    fn to_js(&self) -> JsValue {
        object(&[
            ("type", "plugboard:proof".into()),
            ("attemptId", self.attempt_id.into()),
            ("proof", self.proof.into()),
        ])
    }
}
